"""Interactions coming back from the world, and how they change a lead's engagement plan.

``NewInteraction`` is what a client (an e-mail provider's webhook, a shop, a CRM) posts to
``POST /api/v1/interactions``; ``LeadSnapshot`` is what the engagement agent sees of the lead when it
judges one interaction; ``PlanChange`` is its decision; ``InteractionOutcome`` is the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from marketing_agents.domain.behaviour import BehaviourEvent
from marketing_agents.domain.common import Channel, DomainModel, Text, utc_now
from marketing_agents.domain.engagement import Touchpoint
from marketing_agents.domain.field_errors import ItemError
from marketing_agents.domain.interaction import Interaction, InteractionType
from marketing_agents.domain.lead import (
    MAX_ATTRIBUTES,
    AttributeKey,
    AttributeValue,
    Consent,
    LeadStatus,
)
from marketing_agents.domain.limits import MAX_CLOCK_SKEW, MAX_CONVERSATION_ID_LENGTH, MAX_INTERACTION_BATCH
from marketing_agents.domain.triage import ScoreFactor, TriageCategory, TriageResult

# Where the client's event id is kept, inside ``interactions.attributes``.
EXTERNAL_ID_ATTRIBUTE = "external_id"

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class NewInteraction(DomainModel):
    """One interaction as a client posts it.

    ``external_id`` makes a re-sent webhook harmless: a second interaction of the same lead with the
    same ``external_id`` is answered as a duplicate and changes nothing. Without it, the bulk
    importer's rule applies: same lead, type, ``occurred_at`` and value is the same interaction.
    """

    lead_id: UUID
    type: InteractionType
    channel: Channel | None = Field(default=None, description="Where it happened; for an unsubscribe, the "
                                                              "channel to opt out of (omitted: every channel).")
    campaign_id: UUID | None = Field(default=None, description="An existing campaign the interaction belongs to; "
                                                               "left out: the campaign of its touchpoint or lead.")
    touchpoint_id: UUID | None = Field(default=None, description="The lead's touchpoint this answers (the email "
                                                                 "opened or clicked, the message replied to); "
                                                                 "it must have been sent before occurred_at.")
    conversation_id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONVERSATION_ID_LENGTH)] | None = None
    value: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2,
                                  description="Money, for a purchase or a valued form submission (a conversion).")
    occurred_at: AwareDatetime = Field(description="When the lead did it, with a UTC offset.")
    external_id: ExternalId | None = Field(
        default=None, description="The event's id at the sender (e.g. the e-mail provider's event id), unique per "
                                  "lead: sending it again is recognised as a duplicate.")
    attributes: dict[AttributeKey, AttributeValue] = Field(
        default_factory=dict, description=f"Free-form extra facts, at most {MAX_ATTRIBUTES} keys.")

    @field_validator("occurred_at")
    @classmethod
    def _not_in_the_future(cls, occurred_at: datetime) -> datetime:
        if occurred_at > utc_now() + MAX_CLOCK_SKEW:
            raise ValueError("occurred_at is in the future")
        return occurred_at

    @field_validator("attributes")
    @classmethod
    def _bounded_attributes(cls, attributes: dict) -> dict:
        if len(attributes) > MAX_ATTRIBUTES:
            raise ValueError(f"at most {MAX_ATTRIBUTES} attributes are allowed, got {len(attributes)}")
        if EXTERNAL_ID_ATTRIBUTE in attributes:
            raise ValueError(f"'{EXTERNAL_ID_ATTRIBUTE}' is reserved: send it as the top-level field external_id")
        return attributes

    def stored_attributes(self) -> dict[str, Any]:
        """The attributes as stored: the client's, plus the external id when there is one."""
        extra = {EXTERNAL_ID_ATTRIBUTE: self.external_id} if self.external_id is not None else {}
        return {**self.attributes, **extra}

    def to_interaction(self) -> Interaction:
        return Interaction(lead_id=self.lead_id, type=self.type, channel=self.channel, campaign_id=self.campaign_id,
                           conversation_id=self.conversation_id, value=self.value, occurred_at=self.occurred_at,
                           attributes=self.stored_attributes())


class InteractionBatch(DomainModel):
    """Many interactions in one request. Items are validated and stored one by one, so that a bad item
    is reported in its place without blocking the others."""

    interactions: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_INTERACTION_BATCH,
        description=f"1 to {MAX_INTERACTION_BATCH} objects, each shaped like a single interaction (NewInteraction).")


class PendingTouchpoint(DomainModel):
    """A touchpoint still waiting in the outbox."""

    id: UUID
    plan_id: UUID
    step: int
    channel: Channel
    template: str
    due_at: datetime
    retrying: bool = Field(description="A delivery failed and it waits for its backoff: it is not moved.")


class ScheduledContact(DomainModel):
    """A contact that counts against the weekly cap: sent, being sent or pending."""

    touchpoint_id: UUID
    at: datetime


class LeadSnapshot(DomainModel):
    """What the engagement agent knows about a lead while it judges one interaction (read under a lock)."""

    lead_id: UUID
    status: LeadStatus
    consent: Consent
    country: str
    timezone: str | None = Field(description="From the lead's latest triage; None when it has none.")
    first_name: str
    last_name: str
    company: str
    job_title: str
    plan_id: UUID | None = Field(description="The latest engagement plan, where a new touchpoint goes.")
    next_step: int = Field(ge=0, description="The step number a new touchpoint of that plan gets.")
    pending: list[PendingTouchpoint]
    contacts: list[ScheduledContact]
    counts: dict[str, int] = Field(description="Interactions stored so far, by type.")


class FeedbackEffect(StrEnum):
    CONVERSATION = "conversation"  # reply, meeting: people talk now
    CONVERSION = "conversion"  # purchase, valued form submission
    INTEREST = "interest"  # click, visit, form submission without value
    UNSUBSCRIBE = "unsubscribe"
    RECORDED = "recorded"  # stored and counted, nothing else changes


class RescheduledTouchpoint(DomainModel):
    touchpoint_id: UUID
    channel: Channel
    scheduled_at_before: datetime
    scheduled_at: datetime


class ConversionRecord(DomainModel):
    value: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    channel: Channel | None
    campaign_id: UUID | None
    converted_at: datetime


class PlanChange(DomainModel):
    """What one interaction changes. Empty lists mean "nothing of that kind"."""

    effect: FeedbackEffect
    status_before: LeadStatus
    status: LeadStatus
    cancelled_touchpoints: list[UUID] = Field(default_factory=list)
    rescheduled: list[RescheduledTouchpoint] = Field(default_factory=list)
    new_touchpoints: list[Touchpoint] = Field(default_factory=list)
    conversion: ConversionRecord | None = None
    unsubscribe_channels: list[Channel] = Field(default_factory=list)
    reason: Text

    @model_validator(mode="after")
    def _unsubscribe_names_channels(self) -> PlanChange:
        if (self.effect is FeedbackEffect.UNSUBSCRIBE) != bool(self.unsubscribe_channels):
            raise ValueError("an unsubscribe, and only an unsubscribe, names the channels to opt out of")
        return self


class Rescore(DomainModel):
    """How one interaction moved the lead's score by its behaviour (``domain.behaviour``): before and after,
    the factor that explains it, and what a new category did to the plan."""

    lead_score_before: float
    lead_score: float
    engagement_score_before: float
    engagement_score: float
    triage_category_before: TriageCategory
    triage_category: TriageCategory
    factor: ScoreFactor = Field(description="The 'behaviour' factor now in the lead's triage.")
    touchpoint: Touchpoint | None = Field(
        default=None, description="The call task added because the lead turned hot while engaged.")
    reason: Text = Field(description="What the category means for the plan: a call task added, or why none was.")


@dataclass(frozen=True)
class RescoreContext:
    """What the triage agent sees when it rescores a lead, read after the interaction's plan change.

    ``lead``: the lead as the change left it (status, consent, pending touchpoints, contacts);
    ``triage``: its latest triage result; ``latest``: the interaction just stored; ``behaviour``: every
    interaction of the lead so far, this one included; ``plan_has_call``: the lead's plan has a call
    touchpoint pending, being sent or sent.
    """

    lead: LeadSnapshot
    triage: TriageResult
    latest: BehaviourEvent
    behaviour: list[BehaviourEvent]
    plan_has_call: bool
    now: datetime


@dataclass(frozen=True)
class RescoreDecision:
    """The rescoring's judgment: the triage result to store as the lead's latest, and the change to report."""

    triage: TriageResult
    rescore: Rescore


class InteractionOutcome(DomainModel):
    """The answer for one interaction: stored (with what it changed) or recognised as a duplicate."""

    status: Literal["stored", "duplicate"]
    lead_id: UUID
    interaction_id: int = Field(description="The stored interaction (for a duplicate: the one stored first).")
    type: InteractionType
    occurred_at: datetime
    lead_status: LeadStatus
    change: PlanChange | None = Field(default=None, description="None for a duplicate: it changed nothing.")
    conversion_id: UUID | None = None
    counts: dict[str, int] = Field(default_factory=dict,
                                   description="The lead's interactions by type, this one included.")
    rescore: Rescore | None = Field(default=None, description="How the interaction moved the lead's score; "
                                                             "null when it did not (or for a duplicate).")


class InteractionItemResult(DomainModel):
    index: int = Field(ge=0, description="The item's position in the request.")
    status: Literal["stored", "duplicate", "error"]
    outcome: InteractionOutcome | None = None
    error: ItemError | None = None


class InteractionBatchResult(DomainModel):
    stored: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    errors: int = Field(ge=0)
    results: list[InteractionItemResult]
