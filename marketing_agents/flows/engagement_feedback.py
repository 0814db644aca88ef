"""The engagement agent listening: how one interaction that comes back changes a lead's plan.

``FeedbackPolicy.decide`` is the judgment (plain Python, no I/O); ``EngagementFeedback`` stores each
interaction with its consequences in one transaction (``stores.postgres_interactions``) and announces
it afterwards. The rules, and why:

reply, meeting: the lead is in conversation.
    A person answered, so a person answers back: the automated sequence stops (every pending email,
    SMS, LinkedIn message and webinar invite is cancelled: a canned follow-up landing after "yes,
    let's talk" is what makes people unsubscribe), the status becomes ``in_conversation``, and a
    salesperson gets a ``call`` task soon (``call_after``, moved into the lead's business hours).
    Only with call consent: without it no call task is created and a pending one is cancelled; the
    salesperson answers on the channel the lead used, outside the outbox. An existing pending call
    task is kept (brought forward when later than "soon") rather than duplicated. A lead already in
    conversation gets no further call tasks for each new reply (its salesperson owns the thread); a
    converted lead stays converted.
purchase, or form_submit with a value: a conversion.
    A ``conversions`` row (value, channel, campaign; a purchase without a value counts as 0), status
    ``converted``, and every pending touchpoint is cancelled: prospecting a customer who just bought is
    noise (onboarding is another system's job). A repeat purchase is another conversion.
click, visit, or form_submit without a value: interest.
    The next pending touchpoint on a consented channel is brought forward to at most
    ``interest_window`` from now (never earlier than now), then into the lead's business hours, and only
    when the weekly frequency cap still holds. Interest older than ``interest_fresh_for`` (a late or
    replayed event) is recorded only, and so is interest from a lead in conversation or converted.
    A touchpoint waiting for a delivery retry keeps its backoff.
open: recorded and counted, nothing else.
    Since Apple Mail Privacy Protection (2021) a large share of "opens" are the mail client prefetching
    images, not a person reading, so an open alone never moves a plan.
unsubscribe: consent is withdrawn for the interaction's channel (every channel when it names none),
    exactly as ``POST /api/v1/leads/{id}/unsubscribe`` does (the same code runs), and every pending
    touchpoint on those channels is cancelled.

Consent is law throughout: no touchpoint is created or moved on a channel the lead has not consented
to, so a lead that opted out never gets one, whatever it does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from marketing_agents.actors.behaviour_scoring import BehaviourScorer
from marketing_agents.actors.engagement import ContactPolicy, fits_weekly_cap, lead_zone
from marketing_agents.domain import Channel, InteractionType, LeadStatus, Touchpoint
from marketing_agents.domain.common import utc_now
from marketing_agents.domain.feedback import (
    ConversionRecord,
    FeedbackEffect,
    InteractionBatchResult,
    InteractionItemResult,
    InteractionOutcome,
    LeadSnapshot,
    NewInteraction,
    PendingTouchpoint,
    PlanChange,
    RescheduledTouchpoint,
)
from marketing_agents.domain.field_errors import FieldError, InvalidFields, ItemError, field_error, field_errors
from marketing_agents.domain.interaction import InteractionWindow
from marketing_agents.errors import RequestError, StorageError
from marketing_agents.memory.event_bus import EventBus, OutgoingEvent, publish_after_commit
from marketing_agents.memory.ports import ShortTermPort
from marketing_agents.stores.postgres_interactions import InteractionRepository

log = logging.getLogger(__name__)

AGENT = "EngagementAgent"
CALL_TEMPLATE = "reply-follow-up-call"
AUTOMATED = frozenset({Channel.EMAIL, Channel.SMS, Channel.LINKEDIN, Channel.WEBINAR})
CONVERSATION = frozenset({InteractionType.REPLY, InteractionType.MEETING})
INTEREST = frozenset({InteractionType.CLICK, InteractionType.VISIT})


@dataclass(frozen=True)
class FeedbackPolicy:
    """The timing knobs of the rules in the module docstring."""

    call_after: timedelta = timedelta(minutes=15)
    interest_window: timedelta = timedelta(hours=1)
    interest_fresh_for: timedelta = timedelta(days=2)
    contact: ContactPolicy = field(default_factory=ContactPolicy)

    def decide(self, lead: LeadSnapshot, interaction: NewInteraction, now: datetime) -> PlanChange:
        """The change one interaction makes to the lead's plan, as of ``now`` (the database's clock)."""
        kind = interaction.type
        if kind is InteractionType.UNSUBSCRIBE:
            return self._unsubscribe(lead, interaction)
        if kind is InteractionType.PURCHASE or (kind is InteractionType.FORM_SUBMIT and interaction.value is not None):
            return self._conversion(lead, interaction)
        if kind in CONVERSATION:
            return self._conversation(lead, interaction, now)
        if kind in INTEREST or kind is InteractionType.FORM_SUBMIT:
            return self._interest(lead, interaction, now)
        return self._recorded(lead, f"{kind.value} recorded and counted; opens alone never move a plan "
                                    "(mail clients prefetch images, so many are not a person reading)")

    # -- the rules ---------------------------------------------------------------------------------

    def _unsubscribe(self, lead: LeadSnapshot, interaction: NewInteraction) -> PlanChange:
        channels = [interaction.channel] if interaction.channel is not None else list(Channel)
        cancelled = [tp.id for tp in lead.pending if tp.channel in channels]
        which = interaction.channel.value if interaction.channel is not None else "every channel"
        return PlanChange(effect=FeedbackEffect.UNSUBSCRIBE, status_before=lead.status, status=lead.status,
                          cancelled_touchpoints=cancelled, unsubscribe_channels=channels,
                          reason=f"the lead unsubscribed from {which}: consent withdrawn, "
                                 f"{len(cancelled)} pending touchpoint(s) there cancelled")

    def _conversion(self, lead: LeadSnapshot, interaction: NewInteraction) -> PlanChange:
        conversion = ConversionRecord(value=interaction.value or Decimal(0), channel=interaction.channel,
                                      campaign_id=interaction.campaign_id, converted_at=interaction.occurred_at)
        cancelled = [tp.id for tp in lead.pending]
        repeat = " (a repeat conversion)" if lead.status is LeadStatus.CONVERTED else ""
        return PlanChange(effect=FeedbackEffect.CONVERSION, status_before=lead.status, status=LeadStatus.CONVERTED,
                          cancelled_touchpoints=cancelled, conversion=conversion,
                          reason=f"{interaction.type.value} worth {conversion.value}{repeat}: the lead converted; "
                                 f"{len(cancelled)} pending touchpoint(s) cancelled, prospecting stops")

    def _conversation(self, lead: LeadSnapshot, interaction: NewInteraction, now: datetime) -> PlanChange:
        kind = interaction.type.value
        if lead.status is LeadStatus.CONVERTED:
            return self._recorded(lead, f"{kind} from a converted lead recorded; it stays converted")
        if lead.status is LeadStatus.IN_CONVERSATION:
            cancelled = [tp.id for tp in lead.pending if tp.channel in AUTOMATED]
            return PlanChange(effect=FeedbackEffect.CONVERSATION, status_before=lead.status, status=lead.status,
                              cancelled_touchpoints=cancelled,
                              reason=f"{kind} in an ongoing conversation: its salesperson already owns it, "
                                     "no new call task")
        cancelled = [tp.id for tp in lead.pending if tp.channel in AUTOMATED]
        calls = [tp for tp in lead.pending if tp.channel is Channel.CALL]
        rescheduled: list[RescheduledTouchpoint] = []
        created: list[Touchpoint] = []
        if not lead.consent.call:
            cancelled += [tp.id for tp in calls]
            call_note = "no call task: the lead has not consented to calls"
        else:
            when = self.contact.next_allowed(now + self.call_after, self._zone(lead))
            if calls:
                keep, *extra = sorted(calls, key=lambda tp: (tp.due_at, tp.step))
                cancelled += [tp.id for tp in extra]
                if keep.due_at > when and not keep.retrying:
                    rescheduled.append(_moved(keep, when))
                call_note = f"the pending call task is kept, due {min(keep.due_at, when):%Y-%m-%d %H:%M} UTC"
            elif lead.plan_id is None:
                call_note = "no call task: the lead has no engagement plan to add it to"
            else:
                created.append(self._call_task(lead, interaction, when))
                call_note = f"a call task is due {when:%Y-%m-%d %H:%M} UTC"
        return PlanChange(effect=FeedbackEffect.CONVERSATION, status_before=lead.status,
                          status=LeadStatus.IN_CONVERSATION, cancelled_touchpoints=cancelled,
                          rescheduled=rescheduled, new_touchpoints=created,
                          reason=f"the lead sent a {kind}: people talk now, so {len(cancelled)} pending "
                                 f"touchpoint(s) are cancelled; {call_note}")

    def _interest(self, lead: LeadSnapshot, interaction: NewInteraction, now: datetime) -> PlanChange:
        kind = interaction.type.value
        if lead.status in (LeadStatus.IN_CONVERSATION, LeadStatus.CONVERTED):
            return self._recorded(lead, f"{kind} recorded; the lead is {lead.status.value}, no sequence to speed up")
        if now - interaction.occurred_at > self.interest_fresh_for:
            return self._recorded(lead, f"{kind} recorded; it happened more than "
                                        f"{_hours(self.interest_fresh_for)} ago, too stale to act on")
        movable = sorted((tp for tp in lead.pending if getattr(lead.consent, tp.channel.value) and not tp.retrying),
                         key=lambda tp: (tp.due_at, tp.step))
        if not movable:
            return self._recorded(lead, f"{kind} recorded; no pending touchpoint on a consented channel to bring forward")
        nxt = movable[0]
        target = self.contact.next_allowed(max(now, min(nxt.due_at, now + self.interest_window)), self._zone(lead))
        if target >= nxt.due_at:
            return self._recorded(lead, f"{kind} recorded; the next touchpoint ({nxt.channel.value}) is already due "
                                        "as soon as the lead's business hours allow")
        others = [c.at for c in lead.contacts if c.touchpoint_id != nxt.id]
        if not fits_weekly_cap(target, others, self.contact.max_per_week):
            return self._recorded(lead, f"{kind} recorded; bringing the next touchpoint forward would exceed "
                                        f"{self.contact.max_per_week} contacts in 7 days")
        return PlanChange(effect=FeedbackEffect.INTEREST, status_before=lead.status, status=lead.status,
                          rescheduled=[_moved(nxt, target)],
                          reason=f"{kind} shows interest: the next touchpoint ({nxt.channel.value}) is brought "
                                 f"forward to {target:%Y-%m-%d %H:%M} UTC")

    def _recorded(self, lead: LeadSnapshot, reason: str) -> PlanChange:
        return PlanChange(effect=FeedbackEffect.RECORDED, status_before=lead.status, status=lead.status, reason=reason)

    # -- helpers -----------------------------------------------------------------------------------

    def _zone(self, lead: LeadSnapshot) -> ZoneInfo:
        return lead_zone(lead.timezone, lead.country)

    def _call_task(self, lead: LeadSnapshot, interaction: NewInteraction, when: datetime) -> Touchpoint:
        how = f" by {interaction.channel.value}" if interaction.channel is not None else ""
        what = "replied" if interaction.type is InteractionType.REPLY else "met with us"
        if lead.plan_id is None:  # _conversation creates a call task only for a lead with a plan
            raise ValueError(f"lead {lead.lead_id} has no engagement plan to add a call task to")
        return Touchpoint(
            id=uuid4(), lead_id=lead.lead_id, plan_id=lead.plan_id, step=lead.next_step, channel=Channel.CALL,
            template=CALL_TEMPLATE, subject=None, scheduled_at=when,
            body=(f"Call {lead.first_name} {lead.last_name} ({lead.job_title} at {lead.company}): they {what}{how} "
                  f"on {interaction.occurred_at:%Y-%m-%d %H:%M} UTC. The automated sequence is stopped; "
                  "follow up personally."),
        )


def _moved(touchpoint: PendingTouchpoint, when: datetime) -> RescheduledTouchpoint:
    return RescheduledTouchpoint(touchpoint_id=touchpoint.id, channel=touchpoint.channel,
                                 scheduled_at_before=touchpoint.due_at, scheduled_at=when)


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} hours"


# ---------------------------------------------------------------------------------------------------
# The service: store, then announce
# ---------------------------------------------------------------------------------------------------


class EngagementFeedback:
    """Records interactions through the repository and announces the stored ones.

    Events go out after the commit (``publish_after_commit``), on ``leads`` and ``lead:<id>``:
    ``interaction.recorded`` for every stored interaction, ``lead.converted`` as well for a conversion,
    ``lead.rescored`` when the interaction moved the lead's score or category.
    With a ``scorer`` (``actors.behaviour_scoring``), each stored interaction also rescores the lead by
    its behaviour, in the same transaction; without one, scores stay as triage set them.
    An interaction with a ``conversation_id`` is also a turn of that thread in short-term memory, where
    agents and the MCP resource ``memory://short-term/{conversation_id}`` read the conversation so far;
    PostgreSQL keeps the interaction itself, so a turn that Redis misses is only a slower read.
    With a ``window`` (domain/interaction.InteractionWindow, from the settings), an ``occurred_at`` outside
    it is refused, and so is a batch that would add more monthly partitions than it allows, before
    anything is written.
    """

    def __init__(self, interactions: InteractionRepository, events: EventBus | None = None,
                 policy: FeedbackPolicy | None = None, conversations: ShortTermPort | None = None,
                 scorer: BehaviourScorer | None = None, window: InteractionWindow | None = None) -> None:
        self._interactions = interactions
        self._events = events
        self._conversations = conversations
        self.policy = policy or FeedbackPolicy()
        self.scorer = scorer
        self.window = window

    async def record(self, interaction: NewInteraction) -> InteractionOutcome:
        """Stores one interaction and what it changes (all or nothing).

        Raises InvalidFields (422 naming ``interaction.occurred_at``) outside the window, NotFound for an
        unknown lead, RequestError for an unknown campaign, Conflict for an ``external_id`` already used
        by a different interaction of the lead, StorageError when PostgreSQL is unavailable; nothing is
        written in any of these cases.
        """
        if problems := self._outside_window(interaction, "interaction.occurred_at"):
            raise InvalidFields.of(problems)
        return await self._record(interaction)

    async def _record(self, interaction: NewInteraction) -> InteractionOutcome:
        outcome = await self._interactions.record(interaction, self.policy.decide, agent=AGENT,
                                                  rescore=self.scorer.rescore if self.scorer else None)
        if outcome.status == "stored":
            await self._remember_turn(interaction)
            await self._announce(outcome)
        return outcome

    async def _remember_turn(self, interaction: NewInteraction) -> None:
        if self._conversations is None or interaction.conversation_id is None:
            return
        try:
            await self._conversations.add_turn(interaction.lead_id, interaction.conversation_id, "lead",
                                               conversation_turn(interaction))
        except StorageError as exc:
            log.warning("interaction of lead %s is stored but its turn of conversation %s is not: %s",
                        interaction.lead_id, interaction.conversation_id, exc)

    async def record_batch(self, items: list[dict[str, Any]]) -> InteractionBatchResult:
        """Validates and records each item on its own, in order; a bad item is reported in its place.

        A StorageError stops the batch and propagates (the client sees 503): the items before it are
        stored, and sending the same batch again stores only the rest, because each stored item is
        then recognised as a duplicate. Every item is validated before any is recorded: a batch whose
        valid items fall in more months without a partition than the window allows is refused whole
        (InvalidFields naming ``batch.interactions``), with nothing written.
        """
        checked: list[NewInteraction | ItemError] = []
        for raw in items:
            try:
                interaction = NewInteraction.model_validate(raw)
            except ValidationError as exc:
                checked.append(_invalid(exc))
                continue
            problems = self._outside_window(interaction, "occurred_at")
            checked.append(_invalid_fields(problems) if problems else interaction)
        if self.window is not None:
            missing = await self._interactions.missing_months(
                i.occurred_at for i in checked if isinstance(i, NewInteraction))
            if problem := self.window.too_many_new_partitions(missing):
                raise InvalidFields.of([field_error("batch.interactions", problem, "value_error")])
        results: list[InteractionItemResult] = []
        for index, item in enumerate(checked):
            if isinstance(item, ItemError):
                results.append(InteractionItemResult(index=index, status="error", error=item))
                continue
            try:
                outcome = await self._record(item)
            except StorageError:
                raise
            except RequestError as exc:
                results.append(InteractionItemResult(
                    index=index, status="error", error=ItemError(code=exc.code, message=exc.message, details=exc.details)))
            else:
                results.append(InteractionItemResult(index=index, status=outcome.status, outcome=outcome))
        return InteractionBatchResult(
            stored=sum(r.status == "stored" for r in results), duplicates=sum(r.status == "duplicate" for r in results),
            errors=sum(r.status == "error" for r in results), results=results)

    def _outside_window(self, interaction: NewInteraction, field: str) -> list[FieldError]:
        if self.window is None or not (problem := self.window.problem(interaction.occurred_at, utc_now())):
            return []
        return [field_error(field, problem, "value_error")]

    async def _announce(self, outcome: InteractionOutcome) -> None:
        change = outcome.change
        payload = {"lead_id": str(outcome.lead_id), "interaction_id": outcome.interaction_id,
                   "type": outcome.type.value, "status": outcome.lead_status.value,
                   "effect": change.effect.value if change else None,
                   "cancelled_touchpoints": len(change.cancelled_touchpoints) if change else 0,
                   "rescheduled_touchpoints": len(change.rescheduled) if change else 0,
                   "new_touchpoints": len(change.new_touchpoints) if change else 0}
        topics = ("leads", f"lead:{outcome.lead_id}")
        events = [OutgoingEvent(topics, "interaction.recorded", payload)]
        if change is not None and change.conversion is not None:
            events.append(OutgoingEvent(topics, "lead.converted", {
                "lead_id": str(outcome.lead_id), "conversion_id": str(outcome.conversion_id),
                "value": str(change.conversion.value), "channel": change.conversion.channel,
                "campaign_id": str(change.conversion.campaign_id) if change.conversion.campaign_id else None}))
        if outcome.rescore is not None:
            rescore = outcome.rescore
            events.append(OutgoingEvent(topics, "lead.rescored", {
                "lead_id": str(outcome.lead_id), "lead_score_before": rescore.lead_score_before,
                "lead_score": rescore.lead_score, "triage_category_before": rescore.triage_category_before.value,
                "triage_category": rescore.triage_category.value, "factor": rescore.factor.model_dump(mode="json"),
                "touchpoint_id": str(rescore.touchpoint.id) if rescore.touchpoint else None}))
        await publish_after_commit(self._events, events,
                                   f"interaction {outcome.interaction_id} of lead {outcome.lead_id}")


def _invalid(exc: ValidationError) -> ItemError:
    return _invalid_fields(field_errors(exc.errors()))


def _invalid_fields(fields: list[FieldError]) -> ItemError:
    message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return ItemError(code="validation_error", message=f"invalid interaction: {message}", details=fields)


def conversation_turn(interaction: NewInteraction) -> str:
    """What the lead said, as far as the client told us (``text``, ``body`` or ``subject``), else what it did."""
    for key in ("text", "body", "subject"):
        value = interaction.attributes.get(key)
        if isinstance(value, str) and value.strip():
            return value
    where = f" on {interaction.channel.value}" if interaction.channel else ""
    return f"{interaction.type.value}{where} at {interaction.occurred_at.isoformat()}"
