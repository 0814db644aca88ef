"""The handoff orchestrator's judgment: build the package, score its quality, decide whether it may go.

The transfer itself (``ray.put`` and the call to the receiving agent) is wiring and lives with the
Serve deployment; what is decided here is plain logic that unit tests call without Ray. Persisting
the handoff is the lead orchestrator's: it stores the ``pending`` record before :meth:`deliver` runs
and the outcome after it, so that a handoff survives the death of any process on the way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from marketing_agents.actors.triage import blended_score
from marketing_agents.domain import (
    EngagementPlan,
    HandoffPackage,
    HandoffQuality,
    HandoffRecord,
    HandoffStatus,
    Lead,
    ProvenanceEntry,
    TriageCategory,
    TriageResult,
)
from marketing_agents.domain.attribution import CampaignOffer
from marketing_agents.domain.recall import MemoryRecall

log = logging.getLogger(__name__)

# Freshness is 1 while the triage is younger than this, then falls linearly to 0 at STALE_AFTER.
FRESH_FOR = timedelta(minutes=5)
STALE_AFTER = timedelta(hours=24)
WEIGHTS = {"completeness": 0.4, "freshness": 0.3, "consistency": 0.3}
# A package fails when any one part is this poor, however good the others: stale context is not
# made acceptable by complete context. A package that contradicts itself is never delivered.
DIMENSION_FLOOR = 0.5
_CONTACT_FIELDS = ("email", "first_name", "last_name", "company", "job_title", "industry", "country")


@dataclass(frozen=True)
class PreparedHandoff:
    """A scored package and its record: ``pending`` when it may be sent, ``rejected`` when not."""

    package: HandoffPackage
    record: HandoffRecord

    @property
    def accepted(self) -> bool:
        return self.record.status is HandoffStatus.PENDING


@dataclass(frozen=True)
class HandoffDelivery:
    """What came of sending a package: the receiver's plan, or the errors of every failed attempt."""

    plan: EngagementPlan | None
    attempts: int
    errors: tuple[str, ...] = ()
    latency_ms: float = 0.0

    @property
    def dead_letter_reason(self) -> str:
        return (f"the receiver failed {len(self.errors)} times; last error: {self.errors[-1]}; "
                "held for human review") if self.errors else "not delivered"


@dataclass(frozen=True)
class HandoffRetry:
    """How a failing receiver is retried, with exponential backoff, before the handoff is dead-lettered.

    The defaults wait 0.2 + 0.4 + 0.8 + 1.6 s between five attempts: long enough for Serve to replace a
    dead replica, short enough that the client's request does not time out.
    """

    attempts: int = 5
    first_backoff_s: float = 0.2
    attempt_timeout_s: float = 30.0


Send = Callable[[HandoffPackage], Awaitable[EngagementPlan]]


class HandoffOrchestrator:
    def __init__(self, min_quality: float, retry: HandoffRetry = HandoffRetry()) -> None:
        self.min_quality = min_quality
        self.retry = retry

    def prepare(self, lead: Lead, triage: TriageResult, provenance: list[ProvenanceEntry],
                memory: MemoryRecall | None, now: datetime, campaign: CampaignOffer | None = None) -> PreparedHandoff:
        """Packages and scores; the record is what gets persisted before anything is sent."""
        package = self.build_package(lead, triage, provenance, now, memory=memory, campaign=campaign)
        quality = self.assess(package, now)
        return PreparedHandoff(package, self.record(package, quality, package_bytes(package), now,
                                                    accepted=self.accepts(quality)))

    async def deliver(self, package: HandoffPackage, send: Send) -> HandoffDelivery:
        """Sends the package, retrying a failing or hanging receiver with backoff.

        Any exception counts as a failed attempt: a dead replica, a crash in the agent, a timeout. The
        receiver is pure (it only plans), so a retry after a failure cannot have done anything twice.
        """
        started = time.perf_counter()
        errors: list[str] = []
        for attempt in range(self.retry.attempts):
            if attempt:
                await asyncio.sleep(self.retry.first_backoff_s * 2 ** (attempt - 1))
            try:
                plan = await asyncio.wait_for(send(package), self.retry.attempt_timeout_s)
            except Exception as exc:  # noqa: BLE001 - whatever the receiver's failure, the handoff goes on
                errors.append(f"{type(exc).__name__}: {exc}"[:500])
                log.warning("handoff %s attempt %d failed: %s", package.handoff_id, attempt + 1, errors[-1])
                continue
            return HandoffDelivery(plan, attempt + 1, tuple(errors), _ms_since(started))
        return HandoffDelivery(None, self.retry.attempts, tuple(errors), _ms_since(started))

    def build_package(
        self, lead: Lead, triage: TriageResult, provenance: list[ProvenanceEntry], now: datetime,
        handoff_id: UUID | None = None, memory: MemoryRecall | None = None, campaign: CampaignOffer | None = None,
    ) -> HandoffPackage:
        return HandoffPackage(
            handoff_id=handoff_id or uuid4(),
            from_agent="TriageAgent",
            to_agent=triage.route_to or "",
            lead=lead,
            triage=triage,
            memory=memory,
            campaign=campaign,
            provenance=[*provenance, ProvenanceEntry(agent="HandoffOrchestrator", action="packaged", at=now)],
            created_at=now,
        )

    def assess(self, package: HandoffPackage, now: datetime) -> HandoffQuality:
        problems: list[str] = []
        lead, triage = package.lead, package.triage

        present = [bool(str(getattr(lead, name) or "").strip()) for name in _CONTACT_FIELDS]
        present.append(bool(lead.consent.channels()))
        present.append(bool(triage.factors))
        problems += [f"missing {name}" for name, ok in zip(_CONTACT_FIELDS, present, strict=False) if not ok]
        if not lead.consent.channels():
            problems.append("no consented channel")
        if not triage.factors:
            problems.append("triage gave no factors")
        completeness = sum(present) / len(present)

        age = now - triage.triaged_at
        if age <= FRESH_FOR:
            freshness = 1.0
        else:
            freshness = max(0.0, 1.0 - (age - FRESH_FOR) / (STALE_AFTER - FRESH_FOR))
            problems.append(f"triage is {int(age.total_seconds())} s old")

        checks = {
            "triage is about this lead": triage.lead_id == lead.id,
            "lead is not disqualified": triage.triage_category is not TriageCategory.DISQUALIFIED,
            "package goes where triage routed it": bool(package.to_agent) and package.to_agent == triage.route_to,
            "lead_score is the weighted sum of its parts": abs(
                triage.lead_score - blended_score(triage.fit_score, triage.engagement_score, triage.model_probability)
            ) <= 0.1,
        }
        problems += [f"inconsistent: {name}" for name, ok in checks.items() if not ok]
        consistency = sum(checks.values()) / len(checks)

        score = (
            WEIGHTS["completeness"] * completeness
            + WEIGHTS["freshness"] * freshness
            + WEIGHTS["consistency"] * consistency
        )
        return HandoffQuality(
            completeness=round(completeness, 4),
            freshness=round(freshness, 4),
            consistency=round(consistency, 4),
            score=round(score, 4),
            problems=problems,
        )

    def record(
        self, package: HandoffPackage, quality: HandoffQuality, package_bytes: int, now: datetime, accepted: bool
    ) -> HandoffRecord:
        if accepted:
            reason = f"quality {quality.score:.2f} meets the minimum {self.min_quality:.2f}"
        else:
            failures = [f"{name} is {value:.2f}" for name, value in _poor_dimensions(quality)]
            if quality.score < self.min_quality:
                failures.insert(0, f"quality {quality.score:.2f} is below the minimum {self.min_quality:.2f}")
            reason = (f"{'; '.join(failures)} ({'; '.join(quality.problems) or 'no detail'}); "
                      "held for human review")
        return HandoffRecord(
            id=package.handoff_id,
            lead_id=package.lead.id,
            from_agent=package.from_agent,
            to_agent=package.to_agent,
            status=HandoffStatus.PENDING if accepted else HandoffStatus.REJECTED,
            quality=quality,
            reason=reason,
            package_bytes=package_bytes,
            created_at=package.created_at,
        )

    def accepts(self, quality: HandoffQuality) -> bool:
        return quality.score >= self.min_quality and not _poor_dimensions(quality)


def package_bytes(package: HandoffPackage) -> int:
    """The package's size as stored and as it travels (its JSON), which decides how it travels."""
    return len(package.model_dump_json().encode())


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _poor_dimensions(quality: HandoffQuality) -> list[tuple[str, float]]:
    """Parts too poor to deliver: any below the floor, and any inconsistency at all."""
    return [
        (name, getattr(quality, name)) for name in WEIGHTS
        if getattr(quality, name) < DIMENSION_FLOOR or (name == "consistency" and quality.consistency < 1.0)
    ]
