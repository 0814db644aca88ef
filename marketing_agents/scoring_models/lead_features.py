"""A lead as the scoring model sees it: triage's enrichment turned into the model's feature vocabulary.

One definition for every place a model meets a lead (triage, batch scoring, training from the
system's own conversions), so that a model is scored in production the way it was evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from marketing_agents.domain import Lead
from marketing_agents.domain.triage import LeadEnrichment, StoredLead
from marketing_agents.scoring_models.synthetic import seniority_from_title

# Our normalised industries -> the synthetic model's industries.
INDUSTRY = {"software": "software", "fintech": "financial_services", "insurance": "financial_services",
            "healthcare": "healthcare", "manufacturing": "manufacturing", "retail": "retail",
            "education": "education", "logistics": "other", "professional_services": "other", "media": "other"}
LATAM = frozenset("AR BO BR CL CO CR CU DO EC GT HN MX NI PA PE PR PY SV UY VE".split())
REGION = {"EMEA": "emea", "APAC": "apac"}



def lead_features(lead: Lead, enrichment: LeadEnrichment) -> dict[str, Any]:
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


def stored_lead_features(stored: StoredLead, enrich: Callable[[Lead], LeadEnrichment]) -> dict[str, Any] | None:
    """What triage gives the model for a stored lead: with the enrichment triage stored when there is
    one (the lead as it was scored), else ``enrich(lead)`` now. None when the row is no longer a Lead."""
    if stored.lead is None:
        return None
    return lead_features(stored.lead, stored.enrichment or enrich(stored.lead))


def model_frame(leads: list[StoredLead], enrich: Callable[[Lead], LeadEnrichment]) -> pd.DataFrame:
    """Stored leads as rows for the model, with their ``lead_id``; rows no longer a Lead are left out."""
    rows = []
    for stored in leads:
        features = stored_lead_features(stored, enrich)
        if features is not None:
            rows.append({"lead_id": stored.lead_id, **features})
    return pd.DataFrame(rows)
