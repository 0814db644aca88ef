"""The knowledge-graph port: what semantic memory needs from a graph backend, and nothing more.

Two adapters implement it and pass one contract suite (tests/contract/test_graph_contract.py):
``stores.postgres_graph`` (tables and recursive queries; the embedded default) and ``stores.neo4j_graph``
(the official async driver; production). Traversals ignore direction: "neighbours" and "shortest path"
follow a relationship either way, as a marketer reads a graph.

Traversals never enumerate paths (a dense graph has exponentially many): neighbourhoods grow ring by ring
over distinct nodes (:func:`ring_by_ring`), each ring one query that ranks and limits, and every read runs
under the backend's own statement timeout, so a slow one is a :class:`GraphQueryTimeout`, never a stuck
connection. What a caller may ask for (depth, size) is its role's ``domain.graph.GRAPH_BOUNDS``; the
bounds here are the hard ones for every caller, agents included.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from marketing_agents.domain.graph import (
    ChannelRecommendation,
    GraphEdge,
    GraphNode,
    GraphPath,
    Neighbour,
    Neighbourhood,
    NodeKind,
    RelationType,
)
from marketing_agents.errors import RequestError, StorageError

MAX_DEPTH = 6
MAX_NEIGHBOURS = 1000


class GraphQueryTimeout(StorageError):
    """A graph read ran past Settings.graph_query_timeout_s and the backend cancelled it: 503 + Retry-After,
    since the same bounded request usually succeeds once the backend is less busy."""

    code = "graph_query_timeout"


def timed_out(action: str, timeout_s: float) -> GraphQueryTimeout:
    return GraphQueryTimeout(f"the knowledge graph took longer than {timeout_s:g} s to {action} and the query "
                             "was cancelled; try again, or ask for fewer hops or relationship types",
                             {"timeout_s": timeout_s})


def check_depth(depth: int) -> None:
    """Both adapters refuse the same depths, with the same error."""
    if not 1 <= depth <= MAX_DEPTH:
        raise RequestError(f"depth must be between 1 and {MAX_DEPTH}, got {depth}", {"depth": depth})


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_NEIGHBOURS:
        raise RequestError(f"limit must be between 1 and {MAX_NEIGHBOURS}, got {limit}", {"limit": limit})


# One ring: (frontier, every node seen so far, how many at most) -> the nodes one hop from the frontier
# that were not seen, each with its strongest relationship's weight, strongest first (ties by id).
Expand = Callable[[list[str], list[str], int], Awaitable[list[tuple[GraphNode, float]]]]


async def ring_by_ring(node_id: str, depth: int, limit: int, expand: Expand) -> Neighbourhood:
    """Breadth-first over distinct nodes: each ring is asked for one node more than the room left, so a
    cut is known (``truncated``) without reading what is cut. Work is bounded by ``limit``, not by paths."""
    check_depth(depth)
    check_limit(limit)
    seen, frontier = [node_id], [node_id]
    found: list[Neighbour] = []
    for distance in range(1, depth + 1):
        if not frontier:
            break
        room = limit - len(found)
        ring = await expand(frontier, seen, room + 1)
        found += [Neighbour(node=node, distance=distance, weight=weight) for node, weight in ring[:room]]
        if len(ring) > room:
            return Neighbourhood(node_id=node_id, depth=depth, limit=limit, truncated=True, neighbours=found)
        frontier = [node.id for node, _ in ring]
        seen += frontier
    return Neighbourhood(node_id=node_id, depth=depth, limit=limit, truncated=False, neighbours=found)


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
        self, node_id: str, depth: int, types: list[RelationType] | None = None, limit: int = MAX_NEIGHBOURS
    ) -> Neighbourhood:
        """Nodes within ``depth`` hops (1..MAX_DEPTH), each at its shortest distance, ordered by (distance,
        strongest relationship from the ring before, id); at most ``limit`` (1..MAX_NEIGHBOURS) of them."""

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
