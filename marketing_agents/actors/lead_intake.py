"""The lead orchestrator's flow: dedupe, triage, hand off, engage, and store it all at once.

The agents are reached through ports (plain async callables) so that this flow is the same whether
they are Serve deployments on a Ray cluster or functions in a unit test.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from uuid import UUID, uuid4

from marketing_agents.actors.handoff import HandoffOutcome
from marketing_agents.actors.routing import ENGAGEMENT_AGENT
from marketing_agents.domain import (
    Lead,
    LeadProcessingResult,
    LeadStatus,
    NewLead,
    ProvenanceEntry,
    TriageResult,
    utc_now,
)
from marketing_agents.errors import LeadExists, StorageError
from marketing_agents.memory.manager import UnifiedMemoryManager
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.stores.postgres import LeadRepository

log = logging.getLogger(__name__)


TriagePort = Callable[[Lead, UUID | None], Awaitable[TriageResult]]
HandoffPort = Callable[[Lead, TriageResult, list[ProvenanceEntry], dict], Awaitable[HandoffOutcome]]


def request_fingerprint(new_lead: NewLead) -> str:
    """Two requests are 'the same' for idempotency when their validated leads are equal."""
    return hashlib.sha256(new_lead.model_dump_json().encode()).hexdigest()


class LeadIntake:
    def __init__(
        self,
        triage: TriagePort,
        handoff: HandoffPort,
        leads: LeadRepository,
        short_term: ShortTermMemory,
        memory: UnifiedMemoryManager | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._triage = triage
        self._handoff = handoff
        self._leads = leads
        self._short_term = short_term
        self._memory = memory
        self._clock = clock

    async def submit(self, new_lead: NewLead, idempotency_key: str | None = None) -> LeadProcessingResult:
        """Processes a new lead end to end and returns the seed's response.

        Raises LeadExists for a known ``external_id``, IdempotencyKeyReused for a key sent with a
        different body, StorageError when PostgreSQL is unreachable (nothing is then stored).
        """
        started = time.perf_counter()
        request_hash = request_fingerprint(new_lead)
        if idempotency_key is not None:
            earlier = await self._leads.idempotent_response(idempotency_key, request_hash)
            if earlier is not None:
                return earlier
        if new_lead.external_id is not None:
            existing = await self._leads.lead_id_for_external_id(new_lead.external_id)
            if existing is not None:
                raise LeadExists(
                    f"a lead with external_id '{new_lead.external_id}' already exists",
                    {"external_id": new_lead.external_id, "lead_id": str(existing)},
                )

        received_at = self._clock()
        lead = Lead(**new_lead.model_dump(), id=uuid4(), created_at=received_at)
        provenance = [ProvenanceEntry(agent="LeadOrchestrator", action="received", at=received_at)]
        duplicate_of = await self._leads.lead_id_for_email(lead.email)
        triage = await self._triage(lead, duplicate_of)
        provenance.append(ProvenanceEntry(agent="TriageAgent", action="triaged", at=triage.triaged_at))

        outcome = None
        if triage.route_to == ENGAGEMENT_AGENT:
            recalled = await self._memory.recall(lead) if self._memory else None
            if recalled is not None:
                provenance.append(ProvenanceEntry(agent="UnifiedMemoryManager", action="recalled", at=self._clock()))
            memory = recalled.model_dump(mode="json") if recalled else {}
            outcome = await self._handoff(lead, triage, provenance, memory)
        plan = outcome.plan if outcome else None
        if triage.route_to is None:
            lead.status = LeadStatus.DISQUALIFIED
        elif plan is None:  # held for human review: a duplicate, or a package not good enough to hand off
            lead.status = LeadStatus.NEEDS_REVIEW
        else:
            lead.status = LeadStatus.ENGAGED

        result = LeadProcessingResult(
            success=True,
            lead_id=lead.id,
            triage_category=triage.triage_category,
            lead_score=triage.lead_score,
            engagement_plan=plan,
            next_actions=plan.next_actions() if plan else [],
            processing_time_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        stored = await self._leads.save_processed(
            lead=lead,
            triage=triage,
            package=outcome.package if outcome else None,
            handoff=outcome.record if outcome else None,
            plan=plan,
            result=result,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        if stored.lead_id == lead.id:
            await self._cache_and_announce(lead, triage, outcome)
            await self._remember_score(lead, triage)
        return stored

    async def _remember_score(self, lead: Lead, triage: TriageResult) -> None:
        if self._memory is None:
            return
        try:
            await self._memory.record_score(lead.id, triage.lead_score, triage.triaged_at)
        except StorageError as exc:
            log.warning("lead %s stored but its score history was not updated: %s", lead.id, exc)

    async def _cache_and_announce(self, lead: Lead, triage: TriageResult, outcome: HandoffOutcome | None) -> None:
        """Caches the working context and announces what happened (lead.triaged, handoff.*).

        Both only speed others up; the lead is already safe in PostgreSQL, so a failure is logged.
        """
        events = [("leads", "lead.triaged", {"lead_id": str(lead.id), "triage_category": triage.triage_category.value,
                                              "lead_score": triage.lead_score, "status": lead.status.value})]
        if outcome is not None:
            events.append(("handoffs", f"handoff.{outcome.record.status.value}",
                           {"lead_id": str(lead.id), "handoff_id": str(outcome.record.id),
                            "quality": outcome.record.quality.score, "to_agent": outcome.record.to_agent}))
        context = {
            "lead": lead.model_dump(mode="json"),
            "triage": triage.model_dump(mode="json"),
            "handoff_id": str(outcome.record.id) if outcome else None,
            "plan_id": str(outcome.plan.id) if outcome and outcome.plan else None,
        }
        try:
            await self._short_term.cache_context(lead.id, context)
            for topic, event_type, payload in events:
                await self._short_term.publish(topic, event_type, payload)
                await self._short_term.publish(f"lead:{lead.id}", event_type, payload)
        except StorageError as exc:
            log.warning("lead %s stored but its context was not cached or announced: %s", lead.id, exc)
