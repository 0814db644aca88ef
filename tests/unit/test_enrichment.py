"""Enrichment: what a lead's own fields reveal, normalised through the graph's synonyms."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from marketing_agents.actors.enrichment import Enricher, countries
from marketing_agents.actors.routing import ENGAGEMENT_AGENT, HUMAN_REVIEW
from marketing_agents.actors.triage import TriageAgent, TriageThresholds
from marketing_agents.domain import Lead, NewLead
from marketing_agents.domain.graph import industry_synonyms
from marketing_agents.memory.semantic import starter_graph

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
ENRICHER = Enricher(industry_synonyms(starter_graph()[0]))


def lead(**overrides) -> Lead:
    fields = dict(email="ana@northwind.io", first_name="Ana", last_name="Lima", company="Northwind",
                  job_title="VP Sales", industry="SaaS", company_size=300, country="BR", source="referral",
                  consent={"email": True})
    fields.update(overrides)
    return Lead(**NewLead(**fields).model_dump(), id=uuid.uuid4(), created_at=NOW)


@pytest.mark.parametrize(("spelling", "key"), [("SaaS", "software"), ("Tech", "software"), ("banking", "fintech"),
                                               ("E-Commerce", "retail"), ("Professional Services", "professional_services")])
def test_industries_are_normalised_through_the_graphs_synonyms(spelling, key):
    enrichment = ENRICHER.enrich(lead(industry=spelling))
    assert (enrichment.industry, enrichment.industry_known) == (key, True)


def test_an_unknown_industry_is_kept_and_said_to_be_unknown():
    enrichment = ENRICHER.enrich(lead(industry="Space Tourism"))
    assert (enrichment.industry, enrichment.industry_known) == ("space tourism", False)


@pytest.mark.parametrize(("country", "region", "tz"), [("DE", "EMEA", "Europe/Berlin"), ("BR", "AMER", "America/Sao_Paulo"),
                                                      ("JP", "APAC", "Asia/Tokyo"), ("AE", "EMEA", "Asia/Dubai")])
def test_country_gives_region_and_timezone(country, region, tz):
    enrichment = ENRICHER.enrich(lead(country=country))
    assert (enrichment.region, enrichment.timezone) == (region, tz)


def test_every_iso_country_has_a_region_and_a_real_timezone():
    import zoneinfo

    import pycountry

    table = countries()
    for country in pycountry.countries:
        assert table[country.alpha_2]["region"] in {"EMEA", "AMER", "APAC"}
        zoneinfo.ZoneInfo(table[country.alpha_2]["timezone"])


def test_email_domain_type_and_size_band():
    assert ENRICHER.enrich(lead(email="ana@gmail.com")).email_domain_type == "free"
    corporate = ENRICHER.enrich(lead(company_size=1200))
    assert (corporate.email_domain_type, corporate.company_size_band) == ("corporate", "1001-5000")


def test_a_duplicate_is_held_for_human_review_with_the_reason():
    agent = TriageAgent(TriageThresholds(), ENRICHER)
    first = uuid.uuid4()
    fresh = agent.triage(lead(), NOW)
    again = agent.triage(lead(), NOW, ENRICHER.enrich(lead(), duplicate_of=first))
    assert fresh.route_to == ENGAGEMENT_AGENT
    assert again.route_to == HUMAN_REVIEW and str(first) in again.reason
    assert again.triage_category == fresh.triage_category, "the score does not change, only the route"


def test_a_normalised_industry_counts_as_a_target_industry():
    agent = TriageAgent(TriageThresholds(), ENRICHER)
    fit = {f.name: f.points for f in agent.triage(lead(industry="Payments"), NOW).factors}
    unknown = {f.name: f.points for f in agent.triage(lead(industry="Space Tourism"), NOW).factors}
    assert fit["industry"] > unknown["industry"]
