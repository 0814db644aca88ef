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
    handoff = HandoffOrchestratorDeployment.bind(EngagementAgentDeployment.bind())
    triage = TriageAgentDeployment.bind()
    orchestrator = LeadOrchestratorDeployment.bind(triage, handoff)
    campaigns = CampaignOptimizerDeployment.bind()
    return ApiGateway.bind(orchestrator, MemoryConsolidatorDeployment.bind(), TouchpointDispatcherDeployment.bind(),
                           feedback=EngagementFeedbackDeployment.bind(),
                           campaigns=campaigns, models=triage, mcp=McpServerDeployment.bind(orchestrator, campaigns))
