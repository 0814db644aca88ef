"""The knowledge-graph port: what semantic memory needs from a graph backend, and nothing more.

Two adapters implement it and pass one contract suite (tests/contract/test_graph_contract.py):
``stores.postgres_graph`` (tables and recursive queries; the embedded default) and ``stores.neo4j_graph``
(the official async driver; production). Traversals ignore direction: "neighbours" and "shortest path"
follow a relationship either way, as a marketer reads a graph.
"""

from __future__ import annotations

from typing import Protocol

from marketing_agents.domain.graph import (
    ChannelRecommendation,
    GraphEdge,
    GraphNode,
    GraphPath,
    Neighbour,
    NodeKind,
    RelationType,
)
from marketing_agents.errors import RequestError

MAX_DEPTH = 6


def check_depth(depth: int) -> None:
    """Both adapters refuse the same depths, with the same error."""
    if not 1 <= depth <= MAX_DEPTH:
        raise RequestError(f"depth must be between 1 and {MAX_DEPTH}, got {depth}", {"depth": depth})


class KnowledgeGraphStore(Protocol):
    async def upsert_nodes(self, nodes: list[GraphNode]) -> int:
        """Creates or updates nodes by id, in batches; returns how many were written."""

    async def upsert_edges(self, edges: list[GraphEdge]) -> int:
        """Creates or updates relationships by (source, target, type); both ends must exist.

        Raises StorageError naming a missing end.
        """

    async def node(self, node_id: str) -> GraphNode | None: ...

    async def nodes_of_kind(self, kind: NodeKind) -> list[GraphNode]:
        """Every node of one kind, ordered by id."""

    async def neighbours(
        self, node_id: str, depth: int, types: list[RelationType] | None = None
    ) -> list[Neighbour]:
        """Nodes within ``depth`` hops (1..MAX_DEPTH, so 1 to 6), each at its shortest distance, ordered by (distance, id)."""

    async def shortest_path(self, source: str, target: str, max_depth: int = MAX_DEPTH) -> GraphPath | None:
        """A shortest path of at most ``max_depth`` hops (1..MAX_DEPTH), or None."""

    async def best_channels(self, industry: str, persona: str, limit: int = 3) -> list[ChannelRecommendation]:
        """Channels that both the industry and the persona CONVERTS_TO, by the product of the two weights."""

    async def counts(self) -> tuple[int, int]:
        """(nodes, relationships)."""

    async def clear(self) -> None:
        """Removes every node and relationship (tests and re-seeding only)."""

    async def close(self) -> None:
        """Releases the backend's connections (PostgreSQL: the pool belongs to the caller, nothing to do)."""
