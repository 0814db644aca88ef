"""Something a lead did or that happened to a lead: opens, clicks, replies, visits, purchases."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, StringConstraints

from marketing_agents.domain.common import Channel, DomainModel
from marketing_agents.domain.limits import MAX_CONVERSATION_ID_LENGTH


class InteractionType(StrEnum):
    OPEN = "open"
    CLICK = "click"
    REPLY = "reply"
    VISIT = "visit"
    FORM_SUBMIT = "form_submit"
    MEETING = "meeting"
    PURCHASE = "purchase"
    UNSUBSCRIBE = "unsubscribe"


# What counts in a lead's behaviour (engagement by channel, last activity): everything the lead did
# with us but leaving.
ENGAGEMENTS = frozenset(InteractionType) - {InteractionType.UNSUBSCRIBE}


class Interaction(DomainModel):
    lead_id: UUID
    type: InteractionType
    channel: Channel | None = None
    campaign_id: UUID | None = None
    conversation_id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONVERSATION_ID_LENGTH)] | None = None
    value: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)
    occurred_at: datetime
    attributes: dict[str, Any] = Field(default_factory=dict)
