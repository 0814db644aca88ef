"""The Serve application: ``import_path: marketing_agents.serve_app.app:build_app``.

    HTTP ─► ApiGateway ─► LeadOrchestrator ─► TriageAgent
                       │                   └► HandoffOrchestrator ─(object store ref)─► EngagementAgent
                       ├► TriageAgent (scoring model versions: list, promote, roll back)
                       ├► MemoryConsolidator (also runs on its own schedule)
                       ├► CampaignOptimizer (campaigns, metrics, optimizations, escalations)
                       └► McpServer (/mcp: MCP resources and tools) ─► LeadOrchestrator, CampaignOptimizer
    TouchpointDispatcher: drains the touchpoint outbox on its own schedule
    EngagementFeedback: interactions that come back (POST /api/v1/interactions) update the plan
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from marketing_agents.serve_app.agents import (
    EngagementAgentDeployment,
    HandoffOrchestratorDeployment,
    LeadOrchestratorDeployment,
    TriageAgentDeployment,
)
from marketing_agents.serve_app.campaigns import CampaignOptimizerDeployment
from marketing_agents.serve_app.consolidation import MemoryConsolidatorDeployment
from marketing_agents.serve_app.dispatching import TouchpointDispatcherDeployment
from marketing_agents.serve_app.gateway import ApiGateway
from marketing_agents.serve_app.interactions import EngagementFeedbackDeployment
from marketing_agents.serve_app.mcp_app import McpServerDeployment


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Composes the deployments; per-deployment settings come from the Serve config file."""
    # mypy ignores class decorators, so it does not see @serve.deployment turn each class into a
    # Deployment with .bind: hence the ignores below.
    handoff = HandoffOrchestratorDeployment.bind(EngagementAgentDeployment.bind())  # type: ignore[attr-defined]
    triage = TriageAgentDeployment.bind()  # type: ignore[attr-defined]
    orchestrator = LeadOrchestratorDeployment.bind(triage, handoff)  # type: ignore[attr-defined]
    campaigns = CampaignOptimizerDeployment.bind()  # type: ignore[attr-defined]
    return ApiGateway.bind(  # type: ignore[attr-defined]
        orchestrator, MemoryConsolidatorDeployment.bind(), TouchpointDispatcherDeployment.bind(),  # type: ignore[attr-defined]
        feedback=EngagementFeedbackDeployment.bind(),  # type: ignore[attr-defined]
        campaigns=campaigns, models=triage, mcp=McpServerDeployment.bind(orchestrator, campaigns))  # type: ignore[attr-defined]
