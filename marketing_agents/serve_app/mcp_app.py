"""The MCP layer on Serve: the ``McpServer`` deployment (``mcp.handlers.McpServer``) and ``/mcp`` on the gateway.

    MCP client ─HTTP /mcp─► ApiGateway (access control, then the SDK: JSON-RPC, Origin, roles)
                              └─ handle ─► McpServer ─► PostgreSQL, memory tier actors,
                                                         the knowledge graph, the model registry
                                           ├─► LeadOrchestrator.submit   (triage_lead, triage_leads)
                                           └─► CampaignOptimizer         (campaigns, analyse_campaign)
    in-cluster agent ─ handle ─► McpServer.read_resource(uri) / call_tool(name, args)   (no HTTP hop)

The protocol layer is light and stateless, so it rides on the gateway's replicas (one ingress, one
port, one access-control middleware); the work behind each resource and tool runs on ``McpServer``
replicas, which Serve scales on their own (``ray_configs/serve_config.yaml``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID

from ray import serve
from ray.serve.handle import DeploymentHandle

from marketing_agents.mcp.handlers import McpServer
from marketing_agents.memory.semantic import SemanticMemory, graph_store_for
from marketing_agents.memory.tier_actors import memory_manager_on_ray
from marketing_agents.scoring_models.registry import ModelRegistry
from marketing_agents.serve_app.handles import Remote
from marketing_agents.settings import get_settings
from marketing_agents.stores.connection_budget import budgeted
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.postgres import LeadRepository
from marketing_agents.stores.postgres_lead_listing import LeadListing
from marketing_agents.stores.postgres_lead_reads import LeadReads


@serve.deployment(name="McpServer")
class McpServerDeployment:
    """The handlers behind the MCP server, callable by any replica or agent in the cluster.

    ``role`` is the caller's role (admin, operator, service, viewer); in-cluster agents are
    ``service``. Stores, the graph and the tier actors are opened on first use.
    """

    def __init__(self, orchestrator: DeploymentHandle, campaigns: DeploymentHandle) -> None:
        self._settings = budgeted(get_settings(), "McpServer")
        self._stores = StoreConnections(self._settings)
        self._orchestrator = Remote(orchestrator)
        self._campaigns = Remote(campaigns)
        self._server: McpServer | None = None
        self._opening = asyncio.Lock()

    async def _mcp_server(self) -> McpServer:
        if self._server is not None:
            return self._server
        async with self._opening:  # concurrent first calls open the stores once
            if self._server is not None:
                return self._server
            s = self._settings
            pool = await self._stores.pool()
            graph = SemanticMemory(graph_store_for(s, pool))
            self._server = McpServer(
                settings=s,
                leads=LeadRepository(pool, timedelta(seconds=s.idempotency_ttl_s)),
                listing=LeadListing(pool),
                reads=LeadReads(pool),
                campaigns=self._campaigns,
                memory=memory_manager_on_ray(),
                graph=graph,
                submit=self._orchestrator.submit,
                active_scorer=ModelRegistry(s.data_path / "models").active_scorer,
                industry_synonyms=await graph.industry_synonyms(),
            )
        return self._server

    async def read_resource(self, uri: str, role: str | None = "service") -> Any:
        return await (await self._mcp_server()).read_resource(uri, role)

    async def call_tool(self, name: str, args: dict[str, Any] | None = None, role: str | None = "service",
                        caller: UUID | None = None) -> Any:
        return await (await self._mcp_server()).call_tool(name, args, role, caller)


def install_mcp(app, mcp: DeploymentHandle | None) -> None:
    """Serves the MCP server at ``/mcp`` in the gateway's app, backed by the McpServer deployment."""
    if mcp is None:
        return
    from marketing_agents.mcp.server import install

    install(app, Remote(mcp))
