"""What the campaign optimizer agent takes and gives: campaigns as clients write them, metric rows,
stored allocations, optimizations and escalations.

The optimizer's judgment (``campaign_optimizer``) knows nothing of storage; these models add what a
stored decision needs: an id, a lifecycle and who did what when. The store, the agent and the HTTP
routes all speak them.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, StringConstraints, ValidationInfo, field_validator

from marketing_agents.domain import (
    Campaign,
    CampaignStatus,
    Channel,
    DomainModel,
)
from marketing_agents.domain.attribution import ObservedDay, ObservedPerformance
from marketing_agents.domain.campaign import MAX_VARIANTS, MetricsRow, Money, Variant
from marketing_agents.domain.common import Text
from marketing_agents.domain.field_errors import InvalidFields, field_error
from marketing_agents.domain.optimization import Allocation, EscalationKind, OptimizationDecision, PerformanceReport
from marketing_agents.domain.text import ONE_LINE

CampaignName = Annotated[str, StringConstraints(min_length=1, max_length=200), ONE_LINE]  # one line, as names are
Actor = Annotated[str, StringConstraints(min_length=1, max_length=200)]

OPTIMIZER = "optimizer"  # ``created_by`` / ``applied_by`` of what the optimizer did on its own


# --------------------------------------------------------------------------------------------------
# Campaigns
# --------------------------------------------------------------------------------------------------


def _distinct(values: list | None) -> list | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("a value is listed twice")
    return values


class NewCampaign(DomainModel):
    name: CampaignName
    status: CampaignStatus = CampaignStatus.DRAFT
    channels: list[Channel] = Field(min_length=1, description="The channels the campaign's arms may run on.")
    variants: list[Variant] = Field(
        default_factory=lambda: ["default"], min_length=1, max_length=MAX_VARIANTS,
        description="The variants the campaign tests (e.g. two subject lines); its arms are variants x channels, and "
                    "a lead of the campaign is given one arm.")
    objective: Text = ""
    budget: Money = Field(description="The campaign's total budget; 0 means not set (no budget escalation).")
    start_date: date
    end_date: date | None = None

    _listed_once = field_validator("channels", "variants")(_distinct)

    @field_validator("end_date")
    @classmethod
    def _not_before_start(cls, end_date: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start_date")
        if end_date is not None and start is not None and end_date < start:
            raise ValueError("end_date must not be before start_date")
        return end_date


class CampaignUpdate(DomainModel):
    """A PATCH: only the fields sent change; ``end_date: null`` removes the end date."""

    name: CampaignName | None = None
    status: CampaignStatus | None = None
    channels: list[Channel] | None = Field(default=None, min_length=1)
    variants: list[Variant] | None = Field(default=None, min_length=1, max_length=MAX_VARIANTS)
    objective: Text | None = None
    budget: Money | None = None
    start_date: date | None = None
    end_date: date | None = None

    _listed_once = field_validator("channels", "variants")(_distinct)

    @field_validator("name", "status", "channels", "variants", "objective", "budget", "start_date")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out but not set to null")
        return value

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}

    def apply_to(self, campaign: Campaign) -> Campaign:
        """The campaign with these changes; raises InvalidFields when the dates end up out of order."""
        merged = {**campaign.model_dump(), **self.changes()}
        if merged["end_date"] is not None and merged["end_date"] < merged["start_date"]:
            field = "end_date" if "end_date" in self.model_fields_set else "start_date"
            raise InvalidFields.of([field_error(field, "end_date must not be before start_date", "value_error")])
        return Campaign.model_validate(merged)


class CampaignList(DomainModel):
    campaigns: list[Campaign]
    next_offset: int | None = Field(default=None, description="Pass as offset for the next page; null on the last.")


class CampaignAllocation(DomainModel):
    """The budget split a campaign runs on now and the optimization that set it."""

    campaign_id: UUID
    allocation: Allocation
    optimization_id: UUID | None = Field(
        default=None, description="null: the equal split a campaign starts on, recorded with its first decision")
    updated_at: datetime


class CampaignDetail(DomainModel):
    campaign: Campaign
    allocation: CampaignAllocation | None = Field(default=None, description="null until the first stored decision")


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


class MetricsBatch(DomainModel):
    rows: list[MetricsRow] = Field(min_length=1, max_length=10_000)

    @field_validator("rows")
    @classmethod
    def _one_row_per_arm_and_day(cls, rows: list[MetricsRow]) -> list[MetricsRow]:
        seen: dict[tuple[str, date], int] = {}
        for n, row in enumerate(rows):
            first = seen.setdefault((row.arm_key, row.metric_date), n)
            if first != n:
                raise ValueError(f"rows {first} and {n} are both {row.arm_key} on {row.metric_date}")
        return rows


class CampaignPerformance(PerformanceReport):
    """The report over the metrics clients posted, and beside it what the system observed itself."""

    observed: ObservedPerformance = Field(description="Counted from the system's own leads, touchpoints, "
                                                      "interactions and conversions, per arm and in total; "
                                                      "as of the last refresh (the consolidator's or the optimizer's).")
    days: list[MetricsRow] = Field(default_factory=list,
                                   description="The rows clients posted, one per arm and day, oldest first: "
                                               "the totals above over time.")
    observed_days: list[ObservedDay] = Field(default_factory=list,
                                             description="The observed cohorts, one per arm and capture day, "
                                                         "oldest first.")


class MetricsIngested(DomainModel):
    campaign_id: UUID
    received: int
    inserted: int = Field(description="Days of an arm not seen before.")
    updated: int = Field(description="Days sent before whose numbers changed; the new numbers replace them.")
    unchanged: int = Field(description="Days sent again with the same numbers.")


# --------------------------------------------------------------------------------------------------
# Optimizations and escalations
# --------------------------------------------------------------------------------------------------


class OptimizationStatus(StrEnum):
    PROPOSED = "proposed"  # escalated: waits for a person's approval
    APPLIED = "applied"
    SUPERSEDED = "superseded"  # a later optimization changed the allocation, or a newer proposal replaced it
    ROLLED_BACK = "rolled_back"


class EscalationStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"


class EscalationRecord(DomainModel):
    id: UUID
    campaign_id: UUID
    optimization_id: UUID
    kind: EscalationKind
    arm: str | None = None
    threshold: float
    observed: float
    message: str
    status: EscalationStatus = EscalationStatus.OPEN
    created_at: datetime
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    note: str | None = None


class EscalationList(DomainModel):
    escalations: list[EscalationRecord]


class OptimizationRecord(DomainModel):
    """A decision as stored (or, for a dry run, as it would be stored: no id, nothing written)."""

    id: UUID | None = Field(default=None, description="null for a dry run")
    campaign_id: UUID
    status: OptimizationStatus | None = Field(default=None, description="null for a dry run")
    dry_run: bool = False
    decision: OptimizationDecision
    rollback_of: UUID | None = Field(default=None, description="the optimization this one rolled back")
    created_by: str = OPTIMIZER
    created_at: datetime
    applied_at: datetime | None = None
    applied_by: str | None = None
    superseded_at: datetime | None = None
    superseded_by: UUID | None = None
    rolled_back_at: datetime | None = None
    rolled_back_by: UUID | None = Field(default=None, description="the rollback optimization that undid this one")
    escalations: list[EscalationRecord] = Field(default_factory=list)


class OptimizationList(DomainModel):
    optimizations: list[OptimizationRecord]


class ActorNote(DomainModel):
    """A note for the record of a person's decision. Who decided is the calling API key, which the route
    records; ``by`` is still accepted from older clients, but only as part of the note: it is what the
    caller typed, not who the caller is."""

    by: Actor | None = None
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None

    def stated(self) -> str | None:
        """The note to keep: ``note``, with ``by`` as what the caller said about who acts."""
        parts = [self.note] if self.note else []
        if self.by:
            parts.append(f"(stated by: {self.by})")
        return " ".join(parts) or None


class Acknowledgement(ActorNote):
    """What acknowledging an escalation takes: an optional note."""
