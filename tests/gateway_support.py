"""The gateway's whole FastAPI app (``serve_app.gateway.build_api``: every route, the access control, the
body limits, ``/mcp``) in-process over the real embedded stores, for tests that go through the door a
client uses without a Ray cluster.

The deployments behind the routes are the deployments' own classes with their stores and agents set
in-process (no Ray), reached through :class:`LocalHandle`, which answers ``handle.method.remote(...)``
as a Serve handle does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from marketing_agents.mcp.server import McpEndpoint
from marketing_agents.memory.event_bus import EventBus
from marketing_agents.scoring_models import ModelRegistry
from marketing_agents.serve_app.agents import LeadOrchestratorDeployment
from marketing_agents.serve_app.gateway import ApiGateway, build_api
from marketing_agents.serve_app.interactions import EngagementFeedbackDeployment
from marketing_agents.serve_app.model_routes import ModelCatalog
from marketing_agents.stores.connections import StoreConnections
from tests.integration.feedback_support import ALWAYS_OPEN
from tests.mcp_support import router_world
from tests.support import InProcessAgents

ADMIN_KEY = "mas_gateway_support_admin_key_0123456789"


class _Method:
    def __init__(self, method: Any) -> None:
        self.remote = method

    def __call__(self, *args: Any) -> Any:
        return self.remote(*args)


class LocalHandle:
    """An object in-process, called as a Serve handle is (``handle.method.remote(*args)``) or directly."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> _Method:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Method(getattr(self._target, name))


def _bare(deployment: Any) -> Any:
    """The deployment's class, constructed without its ``__init__`` (which would open its own stores from
    the environment); the caller sets the attributes ``__init__`` would."""
    return object.__new__(deployment.func_or_class)


@dataclass
class Gateway:
    app: FastAPI
    stores: StoreConnections

    def client(self, key: str | None = ADMIN_KEY) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        return httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers, timeout=60)


@asynccontextmanager
async def gateway_app(migrated, pool, repository, models: Path | None, **overrides: Any) -> AsyncIterator[Gateway]:
    """The app as the ApiGateway replica builds it, with the admin key :data:`ADMIN_KEY`."""
    from marketing_agents.actors.factory import behaviour_scorer
    from marketing_agents.flows.engagement_feedback import EngagementFeedback
    from marketing_agents.stores.postgres_interactions import InteractionRepository

    settings = migrated.settings(admin_api_key=ADMIN_KEY, **overrides)
    stores = StoreConnections(settings)
    async with router_world(migrated, pool, repository, models) as world:
        short_term = world.tiers["short_term"]
        events = EventBus(short_term.store, short_term.policy)

        orchestrator = _bare(LeadOrchestratorDeployment)
        orchestrator._settings, orchestrator._stores, orchestrator._memory = settings, stores, world.memory
        orchestrator._leads, orchestrator._review = repository, None
        orchestrator._intake = InProcessAgents().intake(repository, short_term, memory=world.memory, events=events)

        feedback = _bare(EngagementFeedbackDeployment)
        feedback._feedback = EngagementFeedback(InteractionRepository(pool), events, ALWAYS_OPEN,
                                                conversations=short_term,
                                                scorer=behaviour_scorer(settings, ALWAYS_OPEN.contact))

        gateway = _bare(ApiGateway)
        gateway._orchestrator = LocalHandle(orchestrator)
        gateway._feedback = LocalHandle(feedback)
        gateway._campaigns = world.campaigns
        # An empty registry of its own: promoting or rolling back here changes no other test's model.
        gateway._models = ModelCatalog(ModelRegistry(migrated.data_dir / "gateway-support-models"))
        gateway._mcp = LocalHandle(world.router)
        gateway._consolidator = gateway._dispatcher = None  # their routes take no body; the tests leave them
        gateway._stores = stores
        gateway._max_body_bytes = settings.max_body_bytes
        app = build_api(gateway)
        try:
            yield Gateway(app, stores)
        finally:
            for route in app.router.routes:  # the MCP endpoint's session manager runs until closed
                if isinstance(getattr(route, "endpoint", None), McpEndpoint):
                    await route.endpoint.aclose()
            await stores.close()
