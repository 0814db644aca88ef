"""RFM values: a lead's purchases and its recency, frequency and monetary scores (see ``memory.rfm``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field


@dataclass(frozen=True)
class Purchase:
    lead_key: str
    occurred_at: datetime
    value: Decimal


class RfmScore(BaseModel):
    lead_key: str
    recency_days: int = Field(ge=0)
    frequency: int = Field(ge=1)
    monetary: Decimal
    r_score: int = Field(ge=1, le=5)
    f_score: int = Field(ge=1, le=5)
    m_score: int = Field(ge=1, le=5)
    rfm_segment: str
