"""What the API answers about a processed lead."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from marketing_agents.domain.common import Channel, DomainModel, Score100
from marketing_agents.domain.engagement import EngagementPlan, NextAction
from marketing_agents.domain.handoff import HandoffRecord
from marketing_agents.domain.lead import Lead, LeadStatus
from marketing_agents.domain.review import LeadHistoryEntry, LeadReviewState
from marketing_agents.domain.triage import TriageCategory, TriageResult


class LeadProcessingResult(DomainModel):
    """The seed's response to a new lead."""

    success: bool
    lead_id: UUID
    triage_category: TriageCategory
    lead_score: Score100
    status: LeadStatus = Field(description="engaged, needs_review, disqualified, or handing_off while the "
                                           "handoff is still being recovered after a failure.")
    engagement_plan: EngagementPlan | None = Field(description="None when the lead was disqualified or held for review.")
    next_actions: list[NextAction]
    processing_time_ms: float = Field(ge=0)


class LeadDetail(DomainModel):
    """A stored lead with everything the agents decided about it."""

    lead: Lead
    triage: TriageResult
    handoffs: list[HandoffRecord]
    engagement_plan: EngagementPlan | None
    review: LeadReviewState | None = Field(default=None, description="The queue the lead waits in, and who works it.")
    history: list[LeadHistoryEntry] = Field(default_factory=list,
                                            description="What agents and people did about the lead, oldest first.")


class UnsubscribeRequest(DomainModel):
    channels: list[Channel] | None = Field(default=None, description="Channels to opt out of; omitted means all.")


class UnsubscribeResult(DomainModel):
    lead_id: UUID
    channels: list[Channel] = Field(description="The channels the lead is now opted out of by this request.")
    cancelled_touchpoints: int = Field(ge=0, description="Pending touchpoints on those channels, now cancelled.")
