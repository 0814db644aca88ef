"""The handoff orchestrator's judgment: build the package, score its quality, decide whether it may go.

The transfer itself (``ray.put`` and the call to the receiving agent) is wiring and lives with the
Serve deployment; what is decided here is plain logic that unit tests call without Ray.
"""

from __future__ import annotations

import asyncio
import logging
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
class HandoffOutcome:
    package: HandoffPackage
    record: HandoffRecord
    plan: EngagementPlan | None


@dataclass(frozen=True)
class HandoffRetry:
    """How often a failing receiver is retried, with exponential backoff, before the handoff is dead-lettered."""

    attempts: int = 3
    first_backoff_s: float = 0.1


Send = Callable[[HandoffPackage], Awaitable[EngagementPlan]]


class HandoffOrchestrator:
    def __init__(self, min_quality: float, retry: HandoffRetry = HandoffRetry()) -> None:
        self.min_quality = min_quality
        self.retry = retry

    async def hand_off(self, lead: Lead, triage: TriageResult, provenance: list[ProvenanceEntry], memory: dict,
                       send: Send, clock: Callable[[], datetime]) -> HandoffOutcome:
        """Packages, scores, and sends the package to the receiver, retrying a failing receiver.

        A package below the quality bar is never sent. A receiver that keeps failing gets the
        handoff dead-lettered with the last error: the caller then stores the lead as waiting for
        review, never half-engaged, because nothing of the plan was kept.
        """
        now = clock()
        package = self.build_package(lead, triage, provenance, now, memory=memory)
        quality = self.assess(package, now)
        size = len(package.model_dump_json().encode())
        if not self.accepts(quality):
            return HandoffOutcome(package, self.record(package, quality, size, clock(), accepted=False), None)
        errors: list[str] = []
        for attempt in range(self.retry.attempts):
            if attempt:
                await asyncio.sleep(self.retry.first_backoff_s * 2 ** (attempt - 1))
            try:
                plan = await send(package)
            except Exception as exc:  # any receiver failure: a dead replica, a crash, a timeout
                errors.append(f"{type(exc).__name__}: {exc}")
                log.warning("handoff %s attempt %d failed: %s", package.handoff_id, attempt + 1, exc)
                continue
            return HandoffOutcome(package, self.record(package, quality, size, clock(), accepted=True), plan)
        record = self.record(package, quality, size, clock(), accepted=False).model_copy(update={
            "status": HandoffStatus.DEAD_LETTERED,
            "reason": f"the receiver failed {len(errors)} times; last error: {errors[-1]}; held for human review",
        })
        return HandoffOutcome(package, record, None)

    def build_package(
        self, lead: Lead, triage: TriageResult, provenance: list[ProvenanceEntry], now: datetime,
        handoff_id: UUID | None = None, memory: dict | None = None,
    ) -> HandoffPackage:
        return HandoffPackage(
            handoff_id=handoff_id or uuid4(),
            from_agent="TriageAgent",
            to_agent=triage.route_to or "",
            lead=lead,
            triage=triage,
            memory=memory or {},
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
            reason = f"quality {quality.score:.2f} meets the minimum {self.min_quality:.2f}; delivered by reference"
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
            status=HandoffStatus.COMPLETED if accepted else HandoffStatus.REJECTED,
            quality=quality,
            reason=reason,
            package_bytes=package_bytes,
            created_at=package.created_at,
            completed_at=now if accepted else None,
        )

    def accepts(self, quality: HandoffQuality) -> bool:
        return quality.score >= self.min_quality and not _poor_dimensions(quality)


def _poor_dimensions(quality: HandoffQuality) -> list[tuple[str, float]]:
    """Parts too poor to deliver: any below the floor, and any inconsistency at all."""
    return [
        (name, getattr(quality, name)) for name in WEIGHTS
        if getattr(quality, name) < DIMENSION_FLOOR or (name == "consistency" and quality.consistency < 1.0)
    ]
