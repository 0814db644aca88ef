"""Routing rules: every bundled rule is reachable, capacities overflow, and a broken file is named."""

from __future__ import annotations

from uuid import uuid4

import pytest

from marketing_agents.actors.enrichment import Enricher
from marketing_agents.actors.routing import (
    ENGAGEMENT_AGENT,
    HUMAN_REVIEW,
    Router,
    RoutingRules,
)
from marketing_agents.actors.triage import TriageAgent, TriageThresholds
from marketing_agents.domain import TriageCategory
from marketing_agents.domain.graph import industry_synonyms
from marketing_agents.errors import ConfigError
from marketing_agents.memory.semantic import starter_graph

BUNDLED = RoutingRules.load()
HOT = {"job_title": "Chief Technology Officer", "source": "demo_request", "consent": {"email": True, "call": True},
           "email": "cto@quuxcorp.io"}

# One lead profile per bundled rule, meant to be routed by that rule.
RULE_PROFILES = {
    "enterprise-hot": dict(HOT, company_size=3000, industry="Software", country="US"),
    "regulated-industries": dict(HOT, company_size=400, industry="Banking", country="DE"),
    "default": dict(HOT, company_size=400, industry="Software", country="US"),
}


def agent(queue_loads: dict[str, int] | None = None) -> TriageAgent:
    nodes, _ = starter_graph()
    return TriageAgent(TriageThresholds(), Enricher(industry_synonyms(nodes)),
                       router=Router(BUNDLED, lambda: queue_loads or {}))


def test_every_bundled_rule_has_a_profile_here():
    assert {rule.name for rule in BUNDLED.rules} == set(RULE_PROFILES)


@pytest.mark.parametrize("rule", [rule.name for rule in BUNDLED.rules])
def test_every_bundled_rule_is_reachable(rule, make_lead, now):
    result = agent().triage(make_lead(**RULE_PROFILES[rule]), now)

    (expected,) = [r for r in BUNDLED.rules if r.name == rule]
    assert result.routing_rule == rule
    assert result.route_to == expected.route_to
    assert f"routing rule '{rule}'" in result.reason


def test_a_full_queue_overflows_to_its_agent_and_says_so(make_lead, now):
    lead = make_lead(**RULE_PROFILES["enterprise-hot"])

    below = agent({"EnterpriseSales": 24}).triage(lead, now)
    full = agent({"EnterpriseSales": 25}).triage(lead, now)

    assert below.route_to == "EnterpriseSales"
    assert full.route_to == ENGAGEMENT_AGENT and full.routing_rule == "enterprise-hot"
    assert "queue EnterpriseSales is full (25 of 25)" in full.reason


def test_a_rule_only_matches_when_every_condition_holds(make_lead, now):
    # Banking, but in the US: the EMEA compliance rule does not apply.
    result = agent().triage(make_lead(**dict(RULE_PROFILES["regulated-industries"], country="US")), now)
    assert result.routing_rule == "default"


def test_a_duplicate_goes_to_human_review_before_any_rule(make_lead, now):
    triage = agent()
    lead = make_lead(**RULE_PROFILES["enterprise-hot"])
    result = triage.triage(lead, now, triage.enricher.enrich(lead, duplicate_of=uuid4()))
    assert result.route_to == HUMAN_REVIEW and result.routing_rule is None


def test_a_disqualified_lead_goes_nowhere_whatever_the_rules(make_lead, now):
    rules = RoutingRules.model_validate({"rules": [{"name": "all", "route_to": "Anyone"}]})
    triage = TriageAgent(TriageThresholds(), router=Router(rules))
    result = triage.triage(make_lead(consent={}), now)
    assert result.triage_category is TriageCategory.DISQUALIFIED and result.route_to is None


def test_a_rules_file_replaces_the_bundled_rules(tmp_path, make_lead, now):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: apac-desk\n    regions: [APAC]\n    route_to: ApacDesk\n"
                    "  - name: rest\n    route_to: EngagementAgent\n")
    triage = TriageAgent(TriageThresholds(), router=Router(RoutingRules.load(path)))
    assert triage.triage(make_lead(**dict(HOT, country="JP")), now).route_to == "ApacDesk"
    assert triage.triage(make_lead(**dict(HOT, country="FR")), now).route_to == ENGAGEMENT_AGENT


@pytest.mark.parametrize(("text", "problem"), [
    ("rules: [", "is not valid YAML"),
    ("rules: []", "rules: List should have at least 1 item"),
    ("rules:\n  - {name: a, categories: [disqualified], route_to: Q}\n  - {name: b, route_to: EngagementAgent}",
     "a disqualified lead is never routed"),
    (("rules:\n  - {name: a, capacity: 3, route_to: EngagementAgent, overflow_to: X}\n"
     "  - {name: b, route_to: EngagementAgent}"), "'EngagementAgent' is an agent"),
    ("rules:\n  - {name: a, capacity: 3, route_to: Desk}\n  - {name: b, route_to: EngagementAgent}",
     "needs overflow_to"),
    ("rules:\n  - {name: a, route_to: Desk}\n  - {name: a, route_to: EngagementAgent}", "must be unique"),
    ("rules:\n  - {name: a, regions: [EMEA], route_to: Desk}", "must have no conditions"),
    ("rules:\n  - {name: a, route_to: Desk, colour: red}", "rules.0.colour: Extra inputs are not permitted"),
])
def test_a_broken_rules_file_is_refused_with_its_problem(tmp_path, text, problem):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=str(path)) as raised:
        RoutingRules.load(path)
    assert problem in str(raised.value)


def test_a_missing_rules_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the routing rules file .*missing.yaml"):
        RoutingRules.load(tmp_path / "missing.yaml")
