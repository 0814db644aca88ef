"""Triage with a scoring model's opinion: blended into lead_score, shown as a factor, consistent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from marketing_agents.actors.handoff import HandoffOrchestrator
from marketing_agents.actors.model_opinion import ModelOpinion
from marketing_agents.actors.triage import TriageAgent, TriageThresholds
from marketing_agents.domain import Lead, NewLead

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
LEAD = Lead(**NewLead(email="ana@northwind.io", first_name="Ana", last_name="Lima", company="Northwind",
                      job_title="VP Sales", industry="Software", company_size=300, country="DE", source="referral",
                      consent={"email": True}).model_dump(), id=uuid.uuid4(), created_at=NOW)


def opinion(p: float) -> ModelOpinion:
    return ModelOpinion(probability=p, version="v0002-test", synthetic=True, factors_for="seniority=vp (+0.6)",
                        factors_against="days_since_last_activity=0 (-0.1)")


def test_the_models_probability_moves_lead_score_and_is_explained():
    rules = TriageAgent(TriageThresholds()).triage(LEAD, NOW)
    keen = TriageAgent(TriageThresholds(), model=lambda lead, e: opinion(0.9)).triage(LEAD, NOW)
    doubtful = TriageAgent(TriageThresholds(), model=lambda lead, e: opinion(0.01)).triage(LEAD, NOW)
    assert doubtful.lead_score < keen.lead_score
    assert keen.lead_score == round(0.4 * keen.fit_score + 0.2 * keen.engagement_score + 0.4 * 90, 1)
    assert (keen.scoring_model, keen.model_probability) == ("rules-v1+v0002-test", 0.9)
    assert rules.scoring_model == "rules-v1" and rules.model_probability is None
    model_factor = next(f for f in keen.factors if f.name == "model")
    assert "synthetic" in model_factor.explanation and "seniority=vp" in model_factor.explanation


def test_no_registered_model_means_rules_alone():
    assert TriageAgent(TriageThresholds(), model=lambda lead, e: None).triage(LEAD, NOW).scoring_model == "rules-v1"


def test_a_blended_score_is_consistent_for_the_handoff():
    triage = TriageAgent(TriageThresholds(), model=lambda lead, e: opinion(0.7)).triage(LEAD, NOW)
    orchestrator = HandoffOrchestrator(0.6)
    package = orchestrator.build_package(LEAD, triage, [], NOW)
    quality = orchestrator.assess(package, NOW)
    assert quality.consistency == 1.0 and orchestrator.accepts(quality)
