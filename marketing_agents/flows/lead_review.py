"""People working the review queues: claims, decisions and corrections, announced on the ``reviews`` topic.

A decision goes back into the same flow a new lead takes: ``engage`` is a triage by a person (the
latest scores kept, the route theirs) handed off through the lead orchestrator's own stored handoff,
so that it is quality-scored, survives a crash and is recovered like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from marketing_agents.actors.routing import ENGAGEMENT_AGENT, HUMAN_REVIEW, RoutingRules, is_agent
from marketing_agents.domain import LeadDetail, ProvenanceEntry, utc_now
from marketing_agents.domain.access import Principal, actor_of
from marketing_agents.domain.field_errors import InvalidFields, field_error
from marketing_agents.domain.lead_views import LeadPage, LeadQuery
from marketing_agents.domain.review import (
    LeadCorrection,
    ReviewClaim,
    ReviewDecision,
    ReviewOutcome,
    ReviewQueue,
    ReviewQueueList,
    ReviewRequest,
)
from marketing_agents.errors import Conflict, NotFound
from marketing_agents.flows.lead_orchestrator import LeadOrchestrator
from marketing_agents.memory.event_bus import EventBus, OutgoingEvent, publish_after_commit
from marketing_agents.memory.ports import ShortTermPort
from marketing_agents.stores.postgres import LeadRepository
from marketing_agents.stores.postgres_lead_listing import LeadListing
from marketing_agents.stores.postgres_reviews import ReviewRepository, unknown_lead

REVIEWS_TOPIC = "reviews"


class HandoffRejected(Conflict):
    code = "handoff_rejected"


def queue_capacities(rules: RoutingRules) -> dict[str, int | None]:
    """Every queue people work, with its capacity: each human route of the rules, and HumanReview."""
    capacities: dict[str, int | None] = {HUMAN_REVIEW: None}
    for rule in rules.rules:
        if not is_agent(rule.route_to):
            capacities[rule.route_to] = capacities.get(rule.route_to) or rule.capacity
    return capacities


class LeadReview:
    def __init__(self, reviews: ReviewRepository, leads: LeadRepository, listing: LeadListing,
                 intake: LeadOrchestrator, capacities: dict[str, int | None], short_term: ShortTermPort,
                 events: EventBus | None = None, clock: Callable[[], datetime] = utc_now) -> None:
        self._reviews = reviews
        self._leads = leads
        self._listing = listing
        self._intake = intake
        self._capacities = capacities
        self._short_term = short_term
        self._events = events
        self._clock = clock

    async def queues(self) -> ReviewQueueList:
        """Every configured queue, and any other that still holds leads (say, from an earlier rules file)."""
        counts = await self._reviews.queue_counts()
        names = sorted(set(self._capacities) | set(counts))
        return ReviewQueueList(items=[
            ReviewQueue(name=name, open=counts.get(name, (0, None))[0], capacity=self._capacities.get(name),
                        oldest_waiting_at=counts.get(name, (0, None))[1]) for name in names])

    async def queue_leads(self, name: str, query: LeadQuery) -> LeadPage:
        if name not in self._capacities and name not in await self._reviews.queue_counts():
            raise NotFound(f"no review queue named '{name}'; the queues are {', '.join(sorted(self._capacities))}",
                           {"queue": name})
        return await self._listing.page(query.model_copy(update={"review_queue": name}))

    async def detail(self, lead_id: UUID) -> LeadDetail:
        detail = await self._leads.get_detail(lead_id)
        if detail is None:
            raise unknown_lead(lead_id, await self._reviews.merged_into(lead_id))
        detail.review = await self._reviews.state(lead_id)
        detail.history = await self._reviews.history(lead_id)
        return detail

    async def claim(self, lead_id: UUID, by: Principal) -> ReviewClaim:
        claim = await self._reviews.claim(lead_id, by)
        await self._announce("review.claimed", lead_id, {"held_by": claim.held_by, "expires_at":
                                                         claim.expires_at.isoformat()})
        return claim

    async def release(self, lead_id: UUID, by: Principal) -> bool:
        released = await self._reviews.release(lead_id, by)
        if released:
            await self._announce("review.released", lead_id, {"released_by": actor_of(by)})
        return released

    async def decide(self, lead_id: UUID, request: ReviewRequest, by: Principal) -> ReviewOutcome:
        """Applies a person's decision; the lead leaves its queue (or, reassigned, joins another)."""
        _check_fields(request, self._capacities)
        decided_at = self._clock()
        queue: str | None = None
        match request.decision:
            case ReviewDecision.ENGAGE:
                await self._engage(lead_id, by, request.note, decided_at)
            case ReviewDecision.REASSIGN:
                assert request.queue is not None
                await self._reviews.reassign(lead_id, by, request.queue, request.note)
                queue = request.queue
            case ReviewDecision.DISQUALIFY:
                await self._reviews.disqualify(lead_id, by, request.note)
            case ReviewDecision.MERGE:
                assert request.into is not None
                await self._reviews.merge(lead_id, request.into, by, request.note)
                await self._short_term.forget_lead(lead_id)  # its cached context and sessions name a gone id
        now = await self._leads.get_detail(request.into or lead_id)  # after a merge: the lead left
        assert now is not None
        plan = now.engagement_plan if request.decision is ReviewDecision.ENGAGE else None
        outcome = ReviewOutcome(lead_id=lead_id, decision=request.decision, status=now.lead.status, queue=queue,
                                merged_into=request.into, engagement_plan=plan, decided_by=actor_of(by),
                                decided_at=decided_at, note=request.note)
        await self._announce("review.decided", lead_id, {
            "decision": request.decision.value, "decided_by": outcome.decided_by, "status": outcome.status.value,
            "queue": queue, "merged_into": str(request.into) if request.into else None})
        return outcome

    async def _engage(self, lead_id: UUID, by: Principal, note: str | None, at: datetime) -> None:
        lead, triage, queue = await self._reviews.waiting(lead_id, by)
        routed = triage.model_copy(update={
            "route_to": ENGAGEMENT_AGENT, "routing_rule": None, "triaged_at": at,
            "reason": f"{triage.reason} A person ({actor_of(by)}) reviewed it in {queue} and engaged it."})
        provenance = [ProvenanceEntry(agent="LeadOrchestrator", action="received", at=lead.created_at),
                      ProvenanceEntry(agent=actor_of(by), action=f"reviewed in {queue}", at=at)]
        prepared = await self._intake.prepare_handoff(lead, routed, provenance)
        if not prepared.accepted:
            quality = prepared.record.quality
            raise HandoffRejected(f"the handoff package scored {quality.score:.2f}, below what may be sent: "
                                  f"{prepared.record.reason}; correct the lead (PATCH) and decide again",
                                  {"quality": quality.model_dump(mode="json")})
        await self._reviews.begin_engage(by, note, routed, prepared.record, prepared.package)
        await self._intake.finish_handoff(prepared)

    async def correct(self, lead_id: UUID, correction: LeadCorrection, by: Principal) -> LeadDetail:
        """Corrects the lead and records consent given again; with ``retriage``, scores it anew (a lead
        waiting for review stays in its queue: the new score informs the person, who decides)."""
        changes = correction.field_changes()
        if not changes and correction.consent is None and not correction.retriage:
            raise InvalidFields.of([field_error("body", "nothing to correct: give at least one field, consent "
                                                        "or retriage", "empty_correction")])
        await self._reviews.correct(lead_id, by, changes, correction.consent)
        if correction.retriage:
            detail = await self.detail(lead_id)
            triage = await self._intake.retriage(detail.lead)
            await self._reviews.retriaged(triage, by)
        await self._announce("lead.updated", lead_id, {"fields": sorted(changes), "consent_given": [
            c.value for c in correction.consent.channels] if correction.consent else [], "by": actor_of(by),
            "retriaged": correction.retriage})
        return await self.detail(lead_id)

    async def _announce(self, event_type: str, lead_id: UUID, payload: dict) -> None:
        await publish_after_commit(self._events, [OutgoingEvent((REVIEWS_TOPIC, f"lead:{lead_id}"), event_type,
                                                                {"lead_id": str(lead_id), **payload})],
                                   f"lead {lead_id}")


def _check_fields(request: ReviewRequest, capacities: dict[str, int | None]) -> None:
    """The fields each decision needs, and only those: 422 naming each problem, before anything is read."""
    problems = []
    needs = {ReviewDecision.REASSIGN: "queue", ReviewDecision.MERGE: "into"}.get(request.decision)
    for name in ("queue", "into"):
        given = getattr(request, name) is not None
        if name == needs and not given:
            problems.append(field_error(name, f"{request.decision.value} needs {name}", "missing"))
        elif name != needs and given:
            problems.append(field_error(name, f"{name} only goes with "
                                              f"{'reassign' if name == 'queue' else 'merge'}", "extra_forbidden"))
    if request.queue is not None and request.decision is ReviewDecision.REASSIGN and request.queue not in capacities:
        problems.append(field_error("queue", f"no review queue named '{request.queue}'; the queues are "
                                             f"{', '.join(sorted(capacities))}", "unknown_queue"))
    if problems:
        raise InvalidFields.of(problems)
