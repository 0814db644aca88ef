"""An engagement plan: the multi-channel sequence of touchpoints chosen for one lead."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import Field, StringConstraints

from marketing_agents.domain.common import Channel, DomainModel, Text


class TouchpointStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a dispatcher
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Touchpoint(DomainModel):
    """One contact in a sequence; stored in the ``touchpoints`` outbox until a dispatcher delivers it."""

    id: UUID
    lead_id: UUID
    plan_id: UUID
    step: int = Field(ge=0)
    channel: Channel
    template: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    subject: Annotated[str, StringConstraints(max_length=200)] | None = None
    body: Text
    scheduled_at: datetime
    status: TouchpointStatus = TouchpointStatus.PENDING
    campaign_id: UUID | None = Field(default=None, description="The campaign whose arm the lead was given.")
    arm: str | None = Field(default=None, description="That arm, variant/channel: what this touchpoint tests.")


class NextAction(DomainModel):
    """A touchpoint as the caller sees it: what happens next, where, and when."""

    action: str
    channel: Channel
    due_at: datetime
    touchpoint_id: UUID


class EngagementPlan(DomainModel):
    id: UUID
    lead_id: UUID
    handoff_id: UUID
    sequence: str = Field(description="The sequence template the plan was built from, e.g. 'hot-fast-track'.")
    rationale: Text
    touchpoints: list[Touchpoint]
    created_at: datetime
    campaign_id: UUID | None = Field(default=None, description="The lead's campaign, when it was given an arm of it.")
    arm: str | None = Field(default=None, description="The campaign's arm the lead was given (variant/channel).")

    def next_actions(self) -> list[NextAction]:
        return [
            NextAction(action=ACTION_BY_CHANNEL[tp.channel], channel=tp.channel, due_at=tp.scheduled_at, touchpoint_id=tp.id)
            for tp in sorted(self.touchpoints, key=lambda tp: (tp.scheduled_at, tp.step))
            if tp.status is TouchpointStatus.PENDING
        ]


ACTION_BY_CHANNEL: dict[Channel, str] = {
    Channel.EMAIL: "send_email",
    Channel.SMS: "send_sms",
    Channel.LINKEDIN: "send_linkedin_message",
    Channel.CALL: "create_call_task",
    Channel.WEBINAR: "send_webinar_invite",
}
