"""Something a lead did or that happened to a lead: opens, clicks, replies, visits, purchases."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, StringConstraints

from marketing_agents.domain.common import Channel, DomainModel
from marketing_agents.domain.limits import MAX_CLOCK_SKEW, MAX_CONVERSATION_ID_LENGTH


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


def partition_month(at: datetime) -> datetime:
    """The first instant (UTC) of ``at``'s month: interactions are stored in one partition per UTC month."""
    return at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class InteractionWindow:
    """When an interaction may have happened, and how many new monthly partitions one request may add.

    Each month an interaction falls in gets a partition of its own when it has none yet, so a date
    decades away, or a batch spread over hundreds of months, would add partitions (and the locks every
    query by lead then takes) for nothing anyone meant. Every door that writes interactions (the REST
    route, the file import) checks here, before it creates anything. ``earliest`` and
    ``max_new_partitions`` are the settings ``interactions_earliest`` and ``max_new_partitions_per_request``;
    the upper bound is ``MAX_CLOCK_SKEW`` into the future, as for every time a client sends.
    """

    earliest: date
    max_new_partitions: int

    @property
    def earliest_at(self) -> datetime:
        return datetime.combine(self.earliest, time(), UTC)

    def problem(self, occurred_at: datetime, now: datetime) -> str | None:
        """Why ``occurred_at`` is outside the window, or None when it is inside."""
        if occurred_at < self.earliest_at:
            return (f"occurred_at {occurred_at.isoformat()} is before {self.earliest.isoformat()}, the earliest "
                    "date an interaction may have (setting MAS_INTERACTIONS_EARLIEST)")
        if occurred_at > now + MAX_CLOCK_SKEW:
            return f"occurred_at {occurred_at.isoformat()} is in the future"
        return None

    def too_many_new_partitions(self, missing_months: Collection[datetime], per: str = "request") -> str | None:
        """Why a ``per`` (a request, a file) whose interactions fall in ``missing_months`` (months without a
        partition yet) is refused, or None when it may create them."""
        if len(missing_months) <= self.max_new_partitions:
            return None
        first, last = min(missing_months), max(missing_months)
        return (f"these interactions fall in {len(missing_months)} months that have no partition yet "
                f"({first:%Y-%m} to {last:%Y-%m}); one {per} may add at most {self.max_new_partitions} "
                f"(setting MAS_MAX_NEW_PARTITIONS_PER_REQUEST): send far-apart months in separate {per}s")
