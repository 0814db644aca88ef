"""Campaigns and their daily performance, per variant and channel."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self
from uuid import UUID

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from marketing_agents.domain.common import Channel, DomainModel, Text

Variant = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
MAX_VARIANTS = 20


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"


class Campaign(DomainModel):
    id: UUID
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    status: CampaignStatus = CampaignStatus.DRAFT
    channels: list[Channel] = Field(min_length=1)
    variants: list[Variant] = Field(default_factory=lambda: ["default"], min_length=1, max_length=MAX_VARIANTS)
    objective: Text = ""
    budget: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    start_date: date
    end_date: date | None = None
    created_at: datetime

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date must not be before start_date")
        return self


Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]


class MetricsRow(DomainModel):
    """One day of one arm (a variant on a channel), as a client sends it. A day sent again replaces it."""

    variant: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "default"
    channel: Channel
    metric_date: date
    impressions: int = Field(ge=0)
    clicks: int = Field(ge=0)
    conversions: int = Field(ge=0)
    spend: Money
    revenue: Money

    # Field validators, not a model validator, so that an error names the field that is wrong.
    @field_validator("clicks")
    @classmethod
    def _clicks_within_impressions(cls, clicks: int, info: ValidationInfo) -> int:
        impressions = info.data.get("impressions")
        if impressions is not None and clicks > impressions:
            raise ValueError(f"clicks ({clicks}) cannot exceed impressions ({impressions})")
        return clicks

    @field_validator("conversions")
    @classmethod
    def _conversions_within_clicks(cls, conversions: int, info: ValidationInfo) -> int:
        clicks = info.data.get("clicks")
        if clicks is not None and conversions > clicks:
            raise ValueError(f"conversions ({conversions}) cannot exceed clicks ({clicks})")
        return conversions

    @property
    def arm_key(self) -> str:
        return f"{self.variant}/{self.channel.value}"

    def for_campaign(self, campaign_id: UUID) -> CampaignMetrics:
        return CampaignMetrics(campaign_id=campaign_id, **self.model_dump())


class CampaignMetrics(MetricsRow):
    """One stored day of one arm of a campaign: the numbers the optimizer reasons over."""

    campaign_id: UUID
