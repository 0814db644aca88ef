"""The lead orchestrator's flow: dedupe, triage, hand off, engage, and store it all at once.

The agents are reached through ports (plain async callables) so that this flow is the same whether
they are Serve deployments on a Ray cluster or functions in a unit test.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, overload
from uuid import UUID, uuid4

from pydantic import ValidationError

from marketing_agents.actors.handoff import HandoffDelivery, PreparedHandoff
from marketing_agents.actors.routing import ENGAGEMENT_AGENT, HUMAN_REVIEW, review_queue_for
from marketing_agents.domain import (
    HandoffPackage,
    Lead,
    LeadProcessingResult,
    LeadStatus,
    NewLead,
    ProvenanceEntry,
    TriageResult,
    utc_now,
)
from marketing_agents.domain.attribution import CampaignOffer
from marketing_agents.domain.field_errors import InvalidFields, ItemError, field_error, field_errors
from marketing_agents.domain.lead_views import LeadBatchItemResult, LeadBatchResult
from marketing_agents.domain.persona import persona_of
from marketing_agents.domain.recall import MemoryRecall
from marketing_agents.errors import LeadExists, MarketingAgentsError, StorageError
from marketing_agents.memory.event_bus import EventBus, OutgoingEvent, publish_after_commit
from marketing_agents.memory.manager import UnifiedMemoryManager
from marketing_agents.memory.ports import ShortTermPort
from marketing_agents.stores.postgres import LeadRepository

log = logging.getLogger(__name__)

# Leads of one batch in flight at once (each one's handoff, memory and PostgreSQL writes).
BATCH_CONCURRENCY = 16

TriagePort = Callable[[Lead, UUID | None], Awaitable[TriageResult]]
TriageManyPort = Callable[[list[tuple[Lead, UUID | None]]], Awaitable[list[TriageResult]]]
PreparePort = Callable[[Lead, TriageResult, list[ProvenanceEntry], MemoryRecall | None, CampaignOffer | None],
                       Awaitable[PreparedHandoff]]
# The campaign a lead names, with the allocation its arm is drawn by; None for an unknown campaign.
OffersPort = Callable[[UUID], Awaitable[CampaignOffer | None]]
DeliverPort = Callable[[HandoffPackage], Awaitable[HandoffDelivery]]
# Told how long each stage of a lead took (ms): admit, triage, recall, handoff_prepare, store,
# handoff_deliver, handoff_complete. The Serve deployment records them as metrics.
StageObserver = Callable[[str, float], None]


def request_fingerprint(new_lead: NewLead) -> str:
    """Two requests are 'the same' for idempotency when their validated leads are equal."""
    return hashlib.sha256(new_lead.model_dump_json().encode()).hexdigest()


class LeadOrchestrator:
    def __init__(
        self,
        triage: TriagePort,
        prepare: PreparePort,
        deliver: DeliverPort,
        leads: LeadRepository,
        short_term: ShortTermPort,
        memory: UnifiedMemoryManager | None = None,
        clock: Callable[[], datetime] = utc_now,
        triage_many: TriageManyPort | None = None,
        observe_stage: StageObserver | None = None,
        events: EventBus | None = None,
        offers: OffersPort | None = None,
    ) -> None:
        """``short_term`` caches each lead's working context; ``events``, when given, hears every lead
        and handoff announced once it is stored; ``offers`` finds the campaign a lead names (without it,
        a lead naming a campaign is refused)."""
        self._triage = triage
        self._triage_many = triage_many
        self._prepare = prepare
        self._deliver = deliver
        self._leads = leads
        self._short_term = short_term
        self._events = events
        self._memory = memory
        self._clock = clock
        self._observe_stage = observe_stage
        self._offers = offers

    @property
    def short_term(self) -> ShortTermPort:
        return self._short_term

    @property
    def events(self) -> EventBus | None:
        return self._events

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            if self._observe_stage is not None:
                self._observe_stage(name, (time.perf_counter() - started) * 1000)

    async def submit(self, new_lead: NewLead, idempotency_key: str | None = None) -> LeadProcessingResult:
        """Processes a new lead end to end and returns the seed's response.

        Raises LeadExists for a known ``external_id``, IdempotencyKeyReused for a key sent with a
        different body, StorageError when PostgreSQL is unreachable (nothing is then stored).
        """
        with self._stage("admit"):
            admitted = await self._admit(new_lead, idempotency_key)
        if isinstance(admitted, LeadProcessingResult):
            return admitted
        # Recall needs only the lead, so it runs while the lead is triaged; a lead that triage sends
        # anywhere but the engagement agent simply does not use it.
        recalling = self._start_recall(admitted.lead)
        with self._stage("triage"):
            triage = await self._triage(admitted.lead, admitted.duplicate_of)
        return await self._process(admitted, triage, recalling)

    async def submit_batch(self, items: list[dict[str, Any]], idempotency_key: str | None = None) -> LeadBatchResult:
        """Many leads at once: each validated and admitted on its own, all triaged in one call, then each
        processed exactly as ``submit`` processes one lead. A bad item is reported in its place.

        With an ``idempotency_key`` each item is kept under ``batch:<key>:<index>``, so sending the same
        batch again answers the items already stored with their first answer and stores only the rest.
        """
        started = time.perf_counter()
        outcomes: list[LeadBatchItemResult | None] = [None] * len(items)
        leads: dict[int, NewLead] = {}
        first_with: dict[str, int] = {}
        for index, raw in enumerate(items):
            try:
                new_lead = NewLead.model_validate(raw)
            except ValidationError as exc:
                outcomes[index] = _invalid(index, exc)
                continue
            earlier = first_with.setdefault(new_lead.external_id, index) if new_lead.external_id else index
            if earlier != index:
                outcomes[index] = LeadBatchItemResult(index=index, status="conflict", error=ItemError(
                    code=LeadExists.code, message=f"external_id '{new_lead.external_id}' is also given to item {earlier}",
                    details={"external_id": new_lead.external_id, "index": earlier}))
                continue
            leads[index] = new_lead

        limit = asyncio.Semaphore(BATCH_CONCURRENCY)

        async def admit(index: int) -> _Admitted | LeadProcessingResult | Exception:
            async with limit:
                try:
                    return await self._admit(leads[index], _item_key(idempotency_key, index))
                except Exception as exc:  # noqa: BLE001 - reported in the item's place
                    return exc

        admitted: dict[int, _Admitted] = {}
        for index, answer in zip(leads, await asyncio.gather(*(admit(i) for i in leads)), strict=True):
            if isinstance(answer, _Admitted):
                admitted[index] = answer
            else:
                outcomes[index] = _outcome(index, answer)
        _mark_duplicates_within(list(admitted.values()))

        scoring_model = None
        if admitted:
            try:
                triages = await self._triage_batch([(a.lead, a.duplicate_of) for a in admitted.values()])
            except Exception as exc:  # noqa: BLE001 - every admitted item fails with it, none is stored
                for index in admitted:
                    outcomes[index] = _outcome(index, exc)
                admitted = {}
            else:
                scoring_model = triages[0].scoring_model

                async def process(index: int, triage: TriageResult) -> LeadBatchItemResult:
                    async with limit:
                        try:
                            return _outcome(index, await self._process(admitted[index], triage))
                        except Exception as exc:  # noqa: BLE001 - reported in the item's place
                            return _outcome(index, exc)

                for item in await asyncio.gather(*(process(i, t) for i, t in zip(admitted, triages, strict=True))):
                    outcomes[item.index] = item
        results = [outcome for outcome in outcomes if outcome is not None]
        return LeadBatchResult(
            stored=sum(r.status == "stored" for r in results), invalid=sum(r.status == "invalid" for r in results),
            conflicts=sum(r.status == "conflict" for r in results), failed=sum(r.status == "failed" for r in results),
            scoring_model=scoring_model, processing_time_ms=_ms_since(started), results=results)

    async def _triage_batch(self, leads: list[tuple[Lead, UUID | None]]) -> list[TriageResult]:
        if self._triage_many is not None:
            with self._stage("triage"):
                return await self._triage_many(leads)
        return list(await asyncio.gather(*(self._triage(lead, duplicate_of) for lead, duplicate_of in leads)))

    async def _admit(self, new_lead: NewLead, idempotency_key: str | None) -> _Admitted | LeadProcessingResult:
        """Dedupes a request and makes it a lead: the earlier answer for a retried key, or the lead to triage."""
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
        offer = await self._campaign_offer(new_lead.campaign_id) if new_lead.campaign_id is not None else None
        lead = Lead(**new_lead.model_dump(), id=uuid4(), created_at=self._clock())
        duplicate_of = await self._leads.lead_id_for_email(lead.email)
        return _Admitted(lead, request_hash, idempotency_key, started, duplicate_of, offer)

    async def _campaign_offer(self, campaign_id: UUID) -> CampaignOffer:
        offer = await self._offers(campaign_id) if self._offers is not None else None
        if offer is None:
            raise InvalidFields.of([field_error("campaign_id", f"campaign {campaign_id} does not exist",
                                                "campaign_not_found")])
        return offer

    def _start_recall(self, lead: Lead) -> asyncio.Future[MemoryRecall] | None:
        if self._memory is None:
            return None
        recalling = asyncio.ensure_future(self._memory.recall(lead, persona_of(lead.job_title)))
        recalling.add_done_callback(lambda task: task.cancelled() or task.exception())  # read, if never awaited
        return recalling

    async def _process(self, admitted: _Admitted, triage: TriageResult,
                       recalling: Awaitable[MemoryRecall] | None = None) -> LeadProcessingResult:
        """Hands the triaged lead off, stores it all and engages it: the one path every new lead takes.

        ``recalling``: the lead's memory recall, already under way (else it is recalled here if needed).
        """
        lead, started = admitted.lead, admitted.started
        provenance = [ProvenanceEntry(agent="LeadOrchestrator", action="received", at=lead.created_at),
                      ProvenanceEntry(agent="TriageAgent", action="triaged", at=triage.triaged_at)]

        prepared = None
        if triage.route_to == ENGAGEMENT_AGENT:
            with self._stage("recall"):  # what is left of it once triage is done
                if recalling is None and self._memory is not None:
                    recalling = self._memory.recall(lead, persona_of(lead.job_title))
                recalled = await recalling if recalling is not None else None
            if recalled is not None:
                provenance.append(ProvenanceEntry(agent="UnifiedMemoryManager", action="recalled", at=self._clock()))
            with self._stage("handoff_prepare"):
                prepared = await self._prepare(lead, triage, provenance, recalled, admitted.offer)
        if triage.route_to is None:
            lead.status = LeadStatus.DISQUALIFIED
        elif prepared is not None and prepared.accepted:
            lead.status = LeadStatus.HANDING_OFF
        else:  # a human queue, a duplicate, or a package not good enough to hand off
            lead.status = LeadStatus.NEEDS_REVIEW

        result = LeadProcessingResult(
            success=True,
            lead_id=lead.id,
            triage_category=triage.triage_category,
            lead_score=triage.lead_score,
            status=lead.status,
            engagement_plan=None,
            next_actions=[],
            processing_time_ms=_ms_since(started),
        )
        # Accepted from here: the lead and its pending handoff are in PostgreSQL before anything is sent.
        with self._stage("store"):
            stored = await self._leads.save_processed(
                lead=lead,
                triage=triage,
                package=prepared.package if prepared else None,
                handoff=prepared.record if prepared else None,
                result=result,
                idempotency_key=admitted.idempotency_key,
                request_hash=admitted.request_hash,
                review_queue=review_queue_for(triage.route_to) if lead.status is LeadStatus.NEEDS_REVIEW else None,
            )
        if stored.lead_id != lead.id:
            return stored  # a concurrent request with the same key won; its answer is the answer
        # The events go out while the package travels; the handoff's outcome is announced after them.
        announced = asyncio.ensure_future(self._announce_stored(lead, triage, prepared))
        if prepared is not None and prepared.accepted:
            result = await self._finish_handoff(prepared.package, started, result, announced)
        await announced
        await asyncio.gather(self._cache_context(lead, triage, prepared, result), self._remember_score(lead, triage))
        return result

    async def _announce_stored(self, lead: Lead, triage: TriageResult, prepared: PreparedHandoff | None) -> None:
        events = [_triage_event(lead, triage)]
        if prepared is not None:
            events.append(_handoff_event(prepared.record.lead_id, prepared.record.id, prepared.record.status.value,
                                         prepared.record.quality.score))
        await publish_after_commit(self._events, events, f"lead {lead.id}")

    async def retriage(self, lead: Lead) -> TriageResult:
        """A stored lead triaged again as it is now (after a correction)."""
        earliest = await self._leads.lead_id_for_email(lead.email)
        return await self._triage(lead, earliest if earliest != lead.id else None)

    async def prepare_handoff(self, lead: Lead, triage: TriageResult,
                              provenance: list[ProvenanceEntry]) -> PreparedHandoff:
        """The package a stored lead would be handed off with now (a person's decision to engage it):
        recalled and quality-scored exactly as a new lead's, with the offer of the campaign it came from."""
        recalled = await self._memory.recall(lead, persona_of(lead.job_title)) if self._memory is not None else None
        offer = None
        if lead.campaign_id is not None and self._offers is not None:
            offer = await self._offers(lead.campaign_id)
        return await self._prepare(lead, triage, provenance, recalled, offer)

    async def finish_handoff(self, prepared: PreparedHandoff) -> None:
        """Announces a stored pending handoff, delivers it and stores its outcome, as intake does a new lead's."""
        record = prepared.record
        await publish_after_commit(self._events, [_handoff_event(record.lead_id, record.id, record.status.value,
                                                                 record.quality.score)], f"lead {record.lead_id}")
        await self._finish_handoff(prepared.package, None, None)

    async def resume_stalled_handoffs(self, limit: int = 20) -> int:
        """Finishes handoffs left pending by a process that died mid-handoff; returns how many."""
        packages = await self._leads.claim_stalled_handoffs(limit)
        for package in packages:
            log.info("resuming handoff %s of lead %s", package.handoff_id, package.lead.id)
            await self._finish_handoff(package, None, None)
        return len(packages)

    @overload
    async def _finish_handoff(self, package: HandoffPackage, started: float | None, result: LeadProcessingResult,
                              announced: Awaitable[None] | None = None) -> LeadProcessingResult: ...

    @overload
    async def _finish_handoff(self, package: HandoffPackage, started: float | None, result: None,
                              announced: Awaitable[None] | None = None) -> None: ...

    async def _finish_handoff(self, package: HandoffPackage, started: float | None,
                              result: LeadProcessingResult | None,
                              announced: Awaitable[None] | None = None) -> LeadProcessingResult | None:
        """Delivers a stored package and stores the outcome: fully engaged, or back to review.

        ``announced``: the lead's earlier events, which subscribers must see before the outcome.
        """
        lead_id, handoff_id = package.lead.id, package.handoff_id
        try:
            with self._stage("handoff_deliver"):
                delivery = await self._deliver(package)
            if delivery.plan is not None:
                elapsed = _ms_since(started) if started is not None else None
                with self._stage("handoff_complete"):
                    plan = await self._leads.complete_handoff(handoff_id, delivery.plan, delivery.attempts, elapsed)
                if plan is not None:
                    if announced is not None:
                        await announced
                    await self._announce_outcome(lead_id, handoff_id, "completed")
                    if result is not None:
                        return result.model_copy(update={
                            "status": LeadStatus.ENGAGED, "engagement_plan": plan,
                            "next_actions": plan.next_actions(), "processing_time_ms": elapsed})
            elif await self._leads.dead_letter_handoff(handoff_id, delivery.dead_letter_reason, delivery.attempts,
                                                       HUMAN_REVIEW):
                if announced is not None:
                    await announced
                await self._announce_outcome(lead_id, handoff_id, "dead_lettered")
                if result is not None:
                    return result.model_copy(update={"status": LeadStatus.NEEDS_REVIEW})
        except Exception as exc:  # noqa: BLE001 - the lead is accepted; recovery finishes what failed here
            log.warning("handoff %s of lead %s left pending for recovery: %s", handoff_id, lead_id, exc)
        return result

    async def _remember_score(self, lead: Lead, triage: TriageResult) -> None:
        if self._memory is None:
            return
        try:
            await self._memory.record_score(lead.id, triage.lead_score, triage.triaged_at)
        except StorageError as exc:
            log.warning("lead %s stored but its score history was not updated: %s", lead.id, exc)

    async def _announce_outcome(self, lead_id: UUID, handoff_id: UUID, status: str) -> None:
        await publish_after_commit(self._events, [_handoff_event(lead_id, handoff_id, status, None)],
                                   f"lead {lead_id}")

    async def _cache_context(self, lead: Lead, triage: TriageResult, prepared: PreparedHandoff | None,
                             result: LeadProcessingResult) -> None:
        """Caches the lead's working context for the agents that act on it next."""
        context = {
            "lead": lead.model_copy(update={"status": result.status}).model_dump(mode="json"),
            "triage": triage.model_dump(mode="json"),
            "handoff_id": str(prepared.record.id) if prepared else None,
            "plan_id": str(result.engagement_plan.id) if result.engagement_plan else None,
        }
        try:
            await self._short_term.cache_context(lead.id, context)
        except StorageError as exc:
            log.warning("lead %s stored but its context was not cached: %s", lead.id, exc)


def _triage_event(lead: Lead, triage: TriageResult) -> OutgoingEvent:
    return OutgoingEvent(("leads", f"lead:{lead.id}"), "lead.triaged", {
        "lead_id": str(lead.id), "triage_category": triage.triage_category.value,
        "lead_score": triage.lead_score, "status": lead.status.value, "route_to": triage.route_to})


def _handoff_event(lead_id: UUID, handoff_id: UUID, status: str, quality: float | None) -> OutgoingEvent:
    payload: dict[str, Any] = {"lead_id": str(lead_id), "handoff_id": str(handoff_id), "to_agent": ENGAGEMENT_AGENT}
    if quality is not None:
        payload["quality"] = quality
    return OutgoingEvent(("handoffs", f"lead:{lead_id}"), f"handoff.{status}", payload)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


@dataclass
class _Admitted:
    lead: Lead
    request_hash: str
    idempotency_key: str | None
    started: float
    duplicate_of: UUID | None
    offer: CampaignOffer | None = None


def _item_key(idempotency_key: str | None, index: int) -> str | None:
    return None if idempotency_key is None else f"batch:{idempotency_key}:{index}"


def _mark_duplicates_within(admitted: list[_Admitted]) -> None:
    """A lead whose email an earlier lead of the same batch has is that one's duplicate, as it would be
    had they come one after the other."""
    first: dict[str, UUID] = {}
    for item in admitted:
        earlier = first.setdefault(item.lead.email, item.lead.id)
        if item.duplicate_of is None and earlier != item.lead.id:
            item.duplicate_of = earlier


def _invalid(index: int, exc: ValidationError) -> LeadBatchItemResult:
    fields = field_errors(exc.errors(), f"body.leads.{index}", default_field="body")
    return LeadBatchItemResult(index=index, status="invalid", error=ItemError(
        code="validation_error", message="invalid fields: " + ", ".join(f["field"] for f in fields), details=fields))


def _outcome(index: int, answer: LeadProcessingResult | Exception) -> LeadBatchItemResult:
    if isinstance(answer, LeadProcessingResult):
        return LeadBatchItemResult(index=index, status="stored", result=answer)
    # An error raised in another Ray process arrives wrapped; the item reports the original.
    while isinstance(cause := getattr(answer, "cause", None), Exception):
        answer = cause
    if isinstance(answer, ValidationError):
        return _invalid(index, answer)
    if not isinstance(answer, MarketingAgentsError):
        log.error("lead %d of a batch failed", index, exc_info=answer)
        return LeadBatchItemResult(index=index, status="failed", error=ItemError(
            code="internal_error", message="an unexpected error occurred; it has been logged"))
    error = ItemError(code=answer.code, message=answer.message, details=answer.details)
    statuses: dict[int, Literal["conflict", "invalid", "failed"]] = {409: "conflict", 422: "invalid"}
    status = statuses.get(answer.status_code, "failed")
    return LeadBatchItemResult(index=index, status=status, error=error)
