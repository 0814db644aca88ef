"""Enrichment without outside services: what can be known about a lead from what it already says.

Email domain type, company size band, the industry normalised through the knowledge graph's synonyms,
country to region and timezone, and whether the lead duplicates one already stored.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from uuid import UUID

from marketing_agents.domain import Lead
from marketing_agents.domain.triage import LeadEnrichment

FREE_EMAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "hotmail.com", "outlook.com", "live.com",
        "msn.com", "icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.de", "gmx.net",
        "web.de", "mail.ru", "yandex.ru", "qq.com", "163.com", "126.com", "zoho.com", "mail.com",
    }
)
SIZE_BANDS = ((10, "1-10"), (50, "11-50"), (200, "51-200"), (1000, "201-1000"), (5000, "1001-5000"))


@lru_cache(maxsize=1)
def countries() -> dict[str, dict[str, str]]:
    """ISO alpha-2 -> {"region": EMEA|AMER|APAC, "timezone": IANA zone}, shipped as data."""
    return json.loads(resources.files("marketing_agents.domain").joinpath("data/countries.json").read_text())


def size_band(employees: int) -> str:
    return next((band for upper, band in SIZE_BANDS if employees <= upper), "5000+")


class Enricher:
    def __init__(self, synonyms: dict[str, str] | None = None) -> None:
        self.synonyms = synonyms or {}

    def enrich(self, lead: Lead, duplicate_of: UUID | None = None) -> LeadEnrichment:
        raw_industry = lead.industry.strip().lower()
        industry = self.synonyms.get(raw_industry)
        place = countries().get(lead.country, {"region": "unknown", "timezone": "UTC"})
        return LeadEnrichment(
            email_domain=lead.email_domain,
            email_domain_type="free" if lead.email_domain in FREE_EMAIL_DOMAINS else "corporate",
            company_size_band=size_band(lead.company_size),
            industry=industry or raw_industry,
            industry_known=industry is not None,
            region=place["region"],
            timezone=place["timezone"],
            duplicate_of=duplicate_of,
        )
