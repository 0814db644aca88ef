"""Campaigns and their daily performance, per variant and channel."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self
from uuid import UUID

from pydantic import Field, StringConstraints, model_validator

from marketing_agents.domain.common import Channel, DomainModel, Text


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


class CampaignMetrics(DomainModel):
    """One day of one variant on one channel: the numbers the optimizer reasons over."""

    campaign_id: UUID
    variant: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "default"
    channel: Channel
    metric_date: date
    impressions: int = Field(ge=0)
    clicks: int = Field(ge=0)
    conversions: int = Field(ge=0)
    spend: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    revenue: Decimal = Field(ge=0, max_digits=14, decimal_places=2)

    @model_validator(mode="after")
    def _funnel_narrows(self) -> Self:
        if self.clicks > self.impressions:
            raise ValueError("clicks cannot exceed impressions")
        if self.conversions > self.clicks:
            raise ValueError("conversions cannot exceed clicks")
        return self
