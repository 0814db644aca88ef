"""What the triage agent concludes about a lead."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from pydantic import Field, ValidationError

from marketing_agents.domain.common import DomainModel, Score100, Text
from marketing_agents.domain.lead import Lead


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


@dataclass(frozen=True)
class StoredLead:
    """A stored lead row as batch scoring and training read it back.

    ``lead`` is None when the row no longer validates as a Lead (left out, for a person to fix);
    ``enrichment`` is the one triage stored first (the lead as it was scored), None when there is none;
    ``converted`` is only known to training from conversions.
    """

    lead_id: UUID
    lead: Lead | None
    enrichment: LeadEnrichment | None
    converted: bool | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredLead:
        """From a ``leads`` row with its ``stored_enrichment`` (and ``converted``, when asked for)."""
        try:
            lead = Lead.model_validate({key: row[key] for key in Lead.model_fields})
        except ValidationError:
            lead = None
        enrichment = None
        if row["stored_enrichment"] is not None:
            try:
                enrichment = LeadEnrichment.model_validate(row["stored_enrichment"])
            except ValidationError:
                enrichment = None
        converted = row.get("converted")
        return cls(row["id"], lead, enrichment, None if converted is None else bool(converted))
