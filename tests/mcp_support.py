"""The MCP handlers (``mcp.handlers.McpServer``) over the real embedded stores, agents in-process, for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from marketing_agents.domain.optimization import OptimizerPolicy
from marketing_agents.flows.campaign_optimizer import CampaignOptimizer
from marketing_agents.mcp.handlers import McpServer
from marketing_agents.memory.event_bus import EventBus
from marketing_agents.memory.manager import UnifiedMemoryManager
from marketing_agents.memory.tier_actors import TIER_NAMES, build_tier
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.postgres_campaigns import PostgresCampaignStore
from marketing_agents.stores.postgres_lead_listing import LeadListing
from marketing_agents.stores.postgres_lead_reads import LeadReads
from tests.support import InProcessAgents


def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with a small synthetic model, trained once per test session."""
    from marketing_agents.scoring_models import ModelRegistry, ensure_default_model

    root = tmp_path_factory.getbasetemp() / "mcp-models"
    root.mkdir(exist_ok=True)
    ensure_default_model(ModelRegistry(root), rows=1000, seed=7, cv=3)
    return root


@dataclass
class RouterWorld:
    router: McpServer
    tiers: dict[str, Any]
    campaigns: CampaignOptimizer
    memory: UnifiedMemoryManager


@asynccontextmanager
async def router_world(migrated, pool, repository, models: Path | None) -> AsyncIterator[RouterWorld]:
    from marketing_agents.scoring_models import ModelRegistry

    settings = migrated.settings()
    stores = StoreConnections(settings)
    tiers = {name: await build_tier(name, settings, stores) for name in TIER_NAMES}
    memory = UnifiedMemoryManager(tiers["short_term"], tiers["long_term"], tiers["episodic"], tiers["semantic"],
                                  tiers["leads"], deadline_s=5)
    graph = tiers["semantic"]
    await graph.store.clear()
    await graph.load_starter_graph()
    intake = InProcessAgents().intake(repository, tiers["short_term"], memory=memory)
    events = EventBus(tiers["short_term"].store, tiers["short_term"].policy)
    campaigns = CampaignOptimizer(PostgresCampaignStore(pool), events, OptimizerPolicy())
    registry = ModelRegistry(models if models is not None else migrated.data_dir / "no-models")
    router = McpServer(settings=settings, leads=repository, listing=LeadListing(pool), reads=LeadReads(pool),
                       campaigns=campaigns, memory=memory, graph=graph, submit=intake.submit,
                       active_scorer=registry.active_scorer, industry_synonyms=await graph.industry_synonyms(),
                       recall_deadline_s=5)
    try:
        yield RouterWorld(router, tiers, campaigns, memory)
    finally:
        await graph.store.clear()
        await stores.close()
