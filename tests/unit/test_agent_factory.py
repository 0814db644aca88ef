"""The agent factory: every tunable comes from the settings, and no interface builds an agent itself.

The second half is why the factory exists: the MCP dry runs once built their agents with other
settings than the Serve deployments, and nothing noticed.
"""

from __future__ import annotations

import ast
from uuid import uuid4

from marketing_agents.actors import factory
from marketing_agents.actors.routing import HUMAN_REVIEW
from marketing_agents.domain import Lead, utc_now
from marketing_agents.scoring_models.errors import ModelNotFoundError
from marketing_agents.settings import Settings
from tests.layers import PACKAGE_ROOT
from tests.support import lead_payload

AGENT_CLASSES = frozenset({"TriageAgent", "TriageThresholds", "Enricher", "ActiveModel", "Router", "RoutingRules",
                           "HandoffOrchestrator", "HandoffRetry", "EngagementAgent", "ContactPolicy",
                           "MessageRewriter"})


class NoModels:
    def active_scorer(self):
        raise ModelNotFoundError("none registered")


def test_the_triage_agent_takes_its_thresholds_synonyms_rules_and_queue_loads_from_what_it_is_given():
    settings = Settings(triage_hot_min=90, triage_warm_min=80, triage_nurture_min=10)
    agent = factory.triage_agent(settings, {"saas": "software"}, NoModels(), lambda: {"Sales": 3})
    assert (agent.thresholds.hot_min, agent.thresholds.warm_min, agent.thresholds.nurture_min) == (90, 80, 10)
    lead = Lead(**lead_payload(industry="SaaS"), id=uuid4(), created_at=utc_now())
    assert agent.enricher.enrich(lead).industry == "software"
    assert agent.router.queue_loads() == {"Sales": 3}
    assert agent.router.rules == factory.routing_rules(settings)
    duplicate = agent.triage(lead, utc_now(), agent.enricher.enrich(lead, uuid4()))
    assert duplicate.route_to == HUMAN_REVIEW
    assert duplicate.model_probability is None  # no registered model: the rules alone


def test_the_handoff_orchestrator_takes_its_quality_floor_and_retries_from_the_settings():
    orchestrator = factory.handoff_orchestrator(Settings(handoff_min_quality=0.75, handoff_attempts=2,
                                                         handoff_first_backoff_s=0.5))
    assert orchestrator.min_quality == 0.75
    assert (orchestrator.retry.attempts, orchestrator.retry.first_backoff_s) == (2, 0.5)


def test_the_engagement_agent_keeps_to_the_contact_policy_and_the_rewriter_is_off_unless_configured():
    assert factory.engagement_agent(Settings()).policy == factory.contact_policy(Settings())
    assert factory.message_rewriter(Settings(llm_rewriter_url=None)) is None
    assert factory.message_rewriter(Settings(llm_rewriter_url="http://127.0.0.1:9/v1")) is not None


def test_no_interface_builds_an_agent_but_through_the_factory():
    built = []
    for folder in ("serve_app", "mcp", "jobs"):
        for path in sorted((PACKAGE_ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                    if name in AGENT_CLASSES:
                        built.append(f"{path.relative_to(PACKAGE_ROOT)}:{node.lineno} {name}")
    assert built == []
