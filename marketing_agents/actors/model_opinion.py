"""What the active scoring model thinks of a lead, in the model's own feature vocabulary.

The default model is trained on synthetic leads (``scoring_models.synthetic``) whose columns are
industry, company_size, seniority, region, source, consented_channels, email_domain_type,
engagement_events_30d and days_since_last_activity; a model trained on a user's table can name other
columns, and then only those this mapping knows are filled (the rest arrive missing, which every
model here handles).
"""

from __future__ import annotations

from dataclasses import dataclass

from marketing_agents.domain import Lead
from marketing_agents.domain.triage import LeadEnrichment
from marketing_agents.scoring_models.errors import ModelNotFoundError
from marketing_agents.scoring_models.lead_features import lead_features


@dataclass(frozen=True)
class ModelOpinion:
    probability: float
    version: str
    synthetic: bool
    factors_for: str
    factors_against: str


class ActiveModel:
    """The registry's active version, asked per lead; a promotion shows up on the next lead."""

    def __init__(self, registry) -> None:
        self.registry = registry

    def __call__(self, lead: Lead, enrichment: LeadEnrichment) -> ModelOpinion | None:
        """The active model's opinion, or None when no model is registered (triage then uses its rules)."""
        return self.many([(lead, enrichment)])[0]

    def many(self, leads: list[tuple[Lead, LeadEnrichment]]) -> list[ModelOpinion | None]:
        """The active model's opinion of each lead, from one scoring call over all of them."""
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
