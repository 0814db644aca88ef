"""What the triage agent concludes about a lead."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import Field

from marketing_agents.domain.common import DomainModel, Score100, Text


class TriageCategory(StrEnum):
    HOT = "hot"
    WARM = "warm"
    NURTURE = "nurture"
    DISQUALIFIED = "disqualified"


class ScoreFactor(DomainModel):
    """One reason behind a score, with the points it added: what a sales rep reads to trust it."""

    name: str
    points: float
    explanation: Text


class LeadEnrichment(DomainModel):
    """What triage inferred about the lead without asking any outside service."""

    email_domain: str
    email_domain_type: Literal["free", "corporate"]
    company_size_band: str
    industry: str = Field(description="Normalised through the knowledge graph's synonyms when it knows the term.")
    industry_known: bool
    region: str = Field(description="EMEA, AMER, APAC or unknown.")
    timezone: str = Field(description="IANA time zone of the lead's country, e.g. 'Europe/Berlin'.")
    duplicate_of: UUID | None = Field(default=None, description="An earlier lead with the same email address.")


class TriageResult(DomainModel):
    lead_id: UUID
    lead_score: Score100 = Field(description="0..100, higher means more likely to buy soon.")
    fit_score: Score100 = Field(description="How well the lead matches the ideal customer profile.")
    engagement_score: Score100 = Field(description="How reachable and interested the lead is.")
    triage_category: TriageCategory
    reason: Text = Field(description="Why the lead got its category, in one sentence.")
    factors: list[ScoreFactor] = Field(default_factory=list)
    route_to: str | None = Field(description="The agent or human queue that takes the lead next; None when nobody does.")
    routing_rule: str | None = Field(default=None, description="The routing rule that chose route_to, if one did.")
    scoring_model: str = Field(description="Which scorer produced lead_score, e.g. 'rules-v1+v0001-...'.")
    model_probability: float | None = Field(default=None, ge=0, le=1,
                                            description="The scoring model's calibrated conversion probability.")
    enrichment: LeadEnrichment | None = None
    triaged_at: datetime
