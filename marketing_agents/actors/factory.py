"""The one place an agent is put together from the settings.

Every process that holds an agent (the Serve deployments, the MCP server's dry runs, batch jobs)
builds it here, so a tunable set in ``MAS_*`` reaches all of them and a dry run answers as production
would. What needs I/O (the knowledge graph's industry spellings, the model registry, the queue
counts) is read by the caller and handed in: this module does none, so it stays importable anywhere
the agents are.
"""

from __future__ import annotations

from collections.abc import Mapping

from marketing_agents.actors.behaviour_scoring import BehaviourScorer
from marketing_agents.actors.engagement import ContactPolicy, EngagementAgent
from marketing_agents.actors.enrichment import Enricher
from marketing_agents.actors.handoff import HandoffOrchestrator, HandoffRetry
from marketing_agents.actors.model_opinion import ActiveModel
from marketing_agents.actors.rewriter import MessageRewriter
from marketing_agents.actors.routing import QueueLoad, Router, RoutingRules
from marketing_agents.actors.triage import TriageAgent, TriageThresholds
from marketing_agents.domain.behaviour import BehaviourRules
from marketing_agents.settings import Settings


def enricher(synonyms: Mapping[str, str] | None = None) -> Enricher:
    """``synonyms``: the graph's spellings of each industry (``SemanticMemory.industry_synonyms``);
    without them an industry is only lower-cased, and scores of the same lead would differ."""
    return Enricher(dict(synonyms or {}))


def triage_thresholds(settings: Settings) -> TriageThresholds:
    return TriageThresholds(settings.triage_hot_min, settings.triage_warm_min, settings.triage_nurture_min)


def routing_rules(settings: Settings) -> RoutingRules:
    """The rules of ``MAS_ROUTING_RULES_FILE``, else the bundled ones; ConfigError names a broken file."""
    return RoutingRules.load(settings.routing_rules_file)


def triage_agent(settings: Settings, synonyms: Mapping[str, str] | None, registry,
                 queue_load: QueueLoad = dict) -> TriageAgent:
    """``registry``: a ModelRegistry (its active version is asked per lead, so a promotion shows on
    the next one); ``queue_load``: how full each human queue is now, as the caller last counted."""
    return TriageAgent(triage_thresholds(settings), enricher(synonyms), ActiveModel(registry),
                       Router(routing_rules(settings), queue_load))


def handoff_orchestrator(settings: Settings) -> HandoffOrchestrator:
    return HandoffOrchestrator(settings.handoff_min_quality,
                               HandoffRetry(settings.handoff_attempts, settings.handoff_first_backoff_s))


def contact_policy(settings: Settings) -> ContactPolicy:
    """No ``MAS_*`` field tunes it yet; taking the settings keeps adding one a change here only."""
    return ContactPolicy()


def behaviour_scorer(settings: Settings, contact: ContactPolicy | None = None) -> BehaviourScorer:
    """The triage agent's rescoring by behaviour, with the thresholds triage uses; ``contact``: the policy
    the engagement feedback schedules by (the settings' one when left out). ConfigError names a
    ``MAS_BEHAVIOUR_POINTS`` key that is no interaction type or channel."""
    rules = BehaviourRules.from_settings(settings.behaviour_half_life_days, settings.behaviour_points)
    return BehaviourScorer(rules, triage_thresholds(settings), contact or contact_policy(settings))


def engagement_agent(settings: Settings) -> EngagementAgent:
    return EngagementAgent(contact_policy(settings))


def message_rewriter(settings: Settings) -> MessageRewriter | None:
    """None unless ``MAS_LLM_REWRITER_URL`` is set: templates are then sent as filled."""
    if not settings.llm_rewriter_url:
        return None
    return MessageRewriter(settings.llm_rewriter_url, settings.llm_rewriter_model, settings.llm_api_key,
                           settings.llm_rewriter_timeout_s)
