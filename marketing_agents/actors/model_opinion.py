"""What the active scoring model thinks of a lead, in the model's own feature vocabulary.

The default model is trained on synthetic leads (``scoring_models.synthetic``) whose columns are
industry, company_size, seniority, region, source, consented_channels, email_domain_type,
engagement_events_30d and days_since_last_activity; a model trained on a user's table can name other
columns, and then only those this mapping knows are filled (the rest arrive missing, which every
model here handles).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marketing_agents.domain import Lead
from marketing_agents.domain.triage import LeadEnrichment

# Our normalised industries -> the synthetic model's industries.
INDUSTRY = {"software": "software", "fintech": "financial_services", "insurance": "financial_services",
            "healthcare": "healthcare", "manufacturing": "manufacturing", "retail": "retail",
            "education": "education", "logistics": "other", "professional_services": "other", "media": "other"}
LATAM = frozenset("AR BO BR CL CO CR CU DO EC GT HN MX NI PA PE PR PY SV UY VE".split())
REGION = {"EMEA": "emea", "APAC": "apac"}


@dataclass(frozen=True)
class ModelOpinion:
    probability: float
    version: str
    synthetic: bool
    factors_for: str
    factors_against: str


def lead_features(lead: Lead, enrichment: LeadEnrichment) -> dict[str, Any]:
    from marketing_agents.scoring_models.synthetic import seniority_from_title

    region = "latam" if lead.country in LATAM else REGION.get(enrichment.region, "north_america")
    return {
        "industry": INDUSTRY.get(enrichment.industry, "other"),
        "company_size": lead.company_size,
        "seniority": seniority_from_title(lead.job_title),
        "region": region if enrichment.region != "unknown" else None,
        "source": lead.source,
        "consented_channels": len(lead.consent.channels()),
        "email_domain_type": enrichment.email_domain_type,
        "engagement_events_30d": 0,  # a new lead has done nothing with us yet
        "days_since_last_activity": 0,  # ... except arrive just now
    }


class ActiveModel:
    """The registry's active version, asked per lead; a promotion shows up on the next lead."""

    def __init__(self, registry) -> None:
        self.registry = registry

    def __call__(self, lead: Lead, enrichment: LeadEnrichment) -> ModelOpinion | None:
        """The active model's opinion, or None when no model is registered (triage then uses its rules)."""
        return self.many([(lead, enrichment)])[0]

    def many(self, leads: list[tuple[Lead, LeadEnrichment]]) -> list[ModelOpinion | None]:
        """The active model's opinion of each lead, from one scoring call over all of them."""
        from marketing_agents.scoring_models import ModelNotFoundError

        try:
            scorer = self.registry.active_scorer()
        except ModelNotFoundError:
            return [None] * len(leads)
        if not leads:
            return []
        scored = scorer.score_rows([lead_features(lead, enrichment) for lead, enrichment in leads], top=3)
        return [ModelOpinion(probability=row.probability, version=scorer.version, synthetic=scorer.synthetic,
                             factors_for=row.top_factors_for, factors_against=row.top_factors_against)
                for row in scored]
