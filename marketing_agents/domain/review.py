"""People in the loop: review queues, claims on a lead, the decisions a person makes, and corrections.

A lead waits for a person when routing sends it to a human queue (``EnterpriseSales``,
``ComplianceReview``, ...), when it may be a duplicate, or when its handoff was rejected or
dead-lettered (``HumanReview``). It leaves its queue only through a decision: ``engage`` (handed to the
engagement agent through the normal stored handoff), ``reassign`` (to another queue), ``disqualify``
or ``merge`` (a duplicate folded into the lead it duplicates). Every decision and correction is made
by the calling API key, which is what the lead's history and the audit record.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import ConfigDict, Field, StringConstraints

from marketing_agents.domain.common import Channel, DomainModel, Name, Slug, Text
from marketing_agents.domain.engagement import EngagementPlan
from marketing_agents.domain.lead import MAX_ATTRIBUTES, AttributeKey, AttributeValue, CountryCode, LeadStatus
from marketing_agents.domain.text import ONE_LINE

QueueName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$")]


class ReviewDecision(StrEnum):
    ENGAGE = "engage"
    REASSIGN = "reassign"
    DISQUALIFY = "disqualify"
    MERGE = "merge"


class ReviewQueue(DomainModel):
    name: str
    open: int = Field(ge=0, description="Leads waiting in the queue now.")
    capacity: int | None = Field(description="At most this many open leads (its routing rule's); None: unbounded.")
    oldest_waiting_at: datetime | None = Field(description="When the lead that has waited longest joined it.")


class ReviewQueueList(DomainModel):
    items: list[ReviewQueue]


class ReviewClaim(DomainModel):
    """A person working a lead: others are refused (409) until it is released, decided or expires."""

    lead_id: UUID
    held_by: str = Field(description="The calling key that holds it, as apikey:<id>.")
    held_by_name: str = Field(description="That key's name.")
    expires_at: datetime


class ReviewRequest(DomainModel):
    """A person's decision on a lead waiting for review."""

    model_config = ConfigDict(extra="forbid")

    decision: ReviewDecision
    queue: QueueName | None = Field(default=None, description="reassign: the queue the lead goes to.")
    into: UUID | None = Field(default=None, description="merge: the lead this one duplicates; it is the one left.")
    note: Text | None = Field(default=None, description="Why, for the lead's history.")


class ReviewOutcome(DomainModel):
    lead_id: UUID
    decision: ReviewDecision
    status: LeadStatus = Field(description="The lead's status now (after merge: the lead it went into).")
    queue: str | None = Field(description="The queue the lead waits in now (reassign), else None.")
    merged_into: UUID | None = None
    engagement_plan: EngagementPlan | None = Field(default=None, description="engage: the plan the agent made.")
    decided_by: str
    decided_at: datetime
    note: str | None = None


class ConsentGrant(DomainModel):
    """Consent given again, on these channels, and where it was given: without a source it is not consent."""

    model_config = ConfigDict(extra="forbid")

    channels: list[Channel] = Field(min_length=1)
    source: Slug = Field(description="Where the person gave it, e.g. 'web_form', 'preference_center', 'call'.")


class LeadCorrection(DomainModel):
    """``PATCH /api/v1/leads/{id}``: the fields given are corrected; the others stay. The email is the
    lead's identity and is not corrected here (a new address is a new lead, merged if it is the same
    person); consent is only ever given again through ``consent`` (withdrawn through unsubscribe)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    first_name: Name | None = None
    last_name: Name | None = None
    company: Annotated[str, StringConstraints(min_length=1, max_length=200), ONE_LINE] | None = None
    job_title: Annotated[str, StringConstraints(min_length=1, max_length=150), ONE_LINE] | None = None
    industry: Name | None = None
    company_size: int | None = Field(default=None, ge=1, le=10_000_000)
    country: CountryCode | None = None
    attributes: dict[AttributeKey, AttributeValue] | None = Field(
        default=None, max_length=MAX_ATTRIBUTES, description="Replaces the lead's attributes.")
    consent: ConsentGrant | None = None
    retriage: bool = Field(default=False, description="Score and classify the corrected lead again now.")

    def field_changes(self) -> dict[str, Any]:
        """The lead's columns this correction sets."""
        return self.model_dump(exclude_none=True, exclude={"consent", "retriage"})


class LeadHistoryEntry(DomainModel):
    """One thing an agent or a person did about the lead."""

    at: datetime
    actor: str = Field(description="The agent, or apikey:<id> for a person's decision or correction.")
    action: str
    reason: str


class LeadReviewState(DomainModel):
    queue: str
    waiting_since: datetime
    claim: ReviewClaim | None
