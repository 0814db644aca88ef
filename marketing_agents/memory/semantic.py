"""Semantic memory: the knowledge graph of the marketing domain, and the reasoning agents ask of it.

The backend is chosen by configuration: Neo4j when ``MAS_NEO4J_URI`` is set, else graph tables in the
same PostgreSQL. Both pass one contract suite, so nothing above this line can tell which one runs.
"""

from __future__ import annotations

import json
import time
from importlib import resources

import asyncpg

from marketing_agents.domain.graph import (
    ChannelRecommendation,
    GraphEdge,
    GraphNode,
    GraphPath,
    Neighbour,
    Neighbourhood,
    NodeKind,
    RelationType,
    industry_synonyms,
)
from marketing_agents.settings import Settings
from marketing_agents.stores.graph_port import MAX_NEIGHBOURS, KnowledgeGraphStore
from marketing_agents.stores.neo4j_graph import Neo4jGraphStore
from marketing_agents.stores.postgres_graph import PostgresGraphStore


def graph_store_for(settings: Settings, pool: asyncpg.Pool) -> KnowledgeGraphStore:
    """Neo4j with the settings' login, pool size and query timeout; else the tables in ``pool``'s PostgreSQL."""
    if settings.neo4j_uri:
        return Neo4jGraphStore.from_settings(settings)
    return PostgresGraphStore(pool, settings.graph_query_timeout_s)


def starter_graph() -> tuple[list[GraphNode], list[GraphEdge]]:
    """The B2B starter graph shipped in memory/data/starter_graph.json."""
    data = json.loads(resources.files("marketing_agents.memory").joinpath("data/starter_graph.json").read_text())
    return ([GraphNode.model_validate(n) for n in data["nodes"]],
            [GraphEdge.model_validate(e) for e in data["edges"]])


# How long the graph's industry spellings are kept before they are read again: new industries and
# synonyms (the graph is edited, the consolidator learns) reach recalls within this time.
SYNONYMS_TTL_S = 60.0


class SemanticMemory:
    def __init__(self, store: KnowledgeGraphStore) -> None:
        self.store = store
        self._synonyms: dict[str, str] | None = None
        self._synonyms_read_at = 0.0

    async def load_starter_graph(self) -> tuple[int, int]:
        """Writes the starter graph unless the graph already has nodes: learned weights are never reset."""
        if (await self.store.counts())[0] > 0:
            return 0, 0
        nodes, edges = starter_graph()
        return await self.store.upsert_nodes(nodes), await self.store.upsert_edges(edges)

    async def learn(self, nodes: list[GraphNode], edges: list[GraphEdge]) -> None:
        if nodes:
            await self.store.upsert_nodes(nodes)
        if edges:
            await self.store.upsert_edges(edges)

    async def industry_synonyms(self) -> dict[str, str]:
        """Every spelling of an industry the graph knows -> the industry's key."""
        return industry_synonyms(await self.store.nodes_of_kind(NodeKind.INDUSTRY))

    async def neighbours(self, node_id: str, depth: int = 1, types: list[RelationType] | None = None) -> list[Neighbour]:
        """The strongest MAX_NEIGHBOURS nodes around ``node_id``, for agents; see :meth:`neighbourhood`."""
        return (await self.store.neighbours(node_id, depth, types)).neighbours

    async def neighbourhood(self, node_id: str, depth: int = 1, types: list[RelationType] | None = None,
                            limit: int = MAX_NEIGHBOURS) -> Neighbourhood:
        """At most ``limit`` nodes around ``node_id``, and whether more were cut (callers bound by role)."""
        return await self.store.neighbours(node_id, depth, types, limit)

    async def explain(self, source: str, target: str, max_depth: int = 6) -> GraphPath | None:
        return await self.store.shortest_path(source, target, max_depth)

    async def best_channels(self, industry: str, persona: str, limit: int = 3) -> list[ChannelRecommendation]:
        """Channels that convert best for this industry and persona, each with the edges that justify it.

        ``industry`` may be any spelling the graph knows ("Information Technology" is ``software``), as
        a lead states it; an unknown one finds nothing.
        """
        return await self.store.best_channels(_node_id(NodeKind.INDUSTRY, await self._industry_key(industry)),
                                              _node_id(NodeKind.PERSONA, persona), limit)

    async def _industry_key(self, industry: str) -> str:
        if industry.startswith(f"{NodeKind.INDUSTRY.value}:"):
            return industry
        if self._synonyms is None or time.monotonic() - self._synonyms_read_at > SYNONYMS_TTL_S:
            self._synonyms = await self.industry_synonyms()
            self._synonyms_read_at = time.monotonic()
        return self._synonyms.get(industry.strip().lower(), industry)


def _node_id(kind: NodeKind, key: str) -> str:
    return key if key.startswith(f"{kind.value}:") else f"{kind.value}:{key.lower().replace(' ', '_')}"
