"""The knowledge-graph port over PostgreSQL tables: the embedded default.

Traversals are breadth-first over distinct nodes, one query per hop from the frontier (never a recursive
walk of every path, which grows exponentially with depth); reads run in a read-only transaction under
``SET LOCAL statement_timeout``; batches are written with ``unnest`` so one statement writes a whole batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from marketing_agents.domain.graph import (
    ChannelRecommendation,
    GraphEdge,
    GraphNode,
    GraphPath,
    Neighbourhood,
    NodeKind,
    RelationType,
)
from marketing_agents.errors import StorageError
from marketing_agents.stores.graph_port import (
    MAX_DEPTH,
    MAX_NEIGHBOURS,
    check_depth,
    ring_by_ring,
    timed_out,
)
from marketing_agents.stores.postgres import translated_errors

BATCH = 5000
DEFAULT_TIMEOUT_S = 5.0  # Settings.graph_query_timeout_s's default

# Every relationship touching the frontier ($1), from the frontier's end (a) to the other (b): the two
# halves use the primary key (source, ...) and idx_kg_edge_target, so a ring reads only the frontier's edges.
_FROM_FRONTIER = """
    SELECT source AS a, target AS b, source, target, type, weight FROM kg_edges WHERE source = ANY($1::text[])
    UNION ALL
    SELECT target AS a, source AS b, source, target, type, weight FROM kg_edges WHERE target = ANY($1::text[])
"""


def _node(row: asyncpg.Record) -> GraphNode:
    return GraphNode(id=row["id"], kind=row["kind"], name=row["name"], properties=row["properties"])


def _edge(row: asyncpg.Record) -> GraphEdge:
    return GraphEdge(source=row["source"], target=row["target"], type=row["type"], weight=row["weight"],
                     provenance=row["provenance"])


class PostgresGraphStore:
    def __init__(self, pool: asyncpg.Pool, query_timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._pool = pool
        self._timeout_s = query_timeout_s

    @asynccontextmanager
    async def _reading(self, action: str) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a read-only transaction whose statements PostgreSQL cancels after the timeout
        (SET LOCAL: the pool's connection goes back without it); a cancelled one is a GraphQueryTimeout."""
        async with translated_errors(action):
            try:
                async with self._pool.acquire() as conn, conn.transaction(readonly=True):
                    await conn.execute(f"SET LOCAL statement_timeout = {max(1, round(self._timeout_s * 1000))}")
                    yield conn
            except asyncpg.QueryCanceledError as exc:
                raise timed_out(action, self._timeout_s) from exc

    async def upsert_nodes(self, nodes: list[GraphNode]) -> int:
        async with translated_errors("write graph nodes"), self._pool.acquire() as conn:
            for start in range(0, len(nodes), BATCH):
                batch = nodes[start:start + BATCH]
                await conn.execute(
                    """INSERT INTO kg_nodes (id, kind, name, properties)
                       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[])
                       ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name,
                           properties = EXCLUDED.properties, updated_at = now()
                       WHERE (kg_nodes.kind, kg_nodes.name, kg_nodes.properties)
                             IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.name, EXCLUDED.properties)""",
                    [n.id for n in batch], [n.kind.value for n in batch], [n.name for n in batch],
                    [n.properties for n in batch],
                )
        return len(nodes)

    async def upsert_edges(self, edges: list[GraphEdge]) -> int:
        try:
            async with translated_errors("write graph relationships"), self._pool.acquire() as conn:
                for start in range(0, len(edges), BATCH):
                    batch = edges[start:start + BATCH]
                    await conn.execute(
                        """INSERT INTO kg_edges (source, target, type, weight, provenance)
                           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[])
                           ON CONFLICT (source, target, type) DO UPDATE SET weight = EXCLUDED.weight,
                               provenance = EXCLUDED.provenance, updated_at = now()
                           WHERE (kg_edges.weight, kg_edges.provenance)
                                 IS DISTINCT FROM (EXCLUDED.weight, EXCLUDED.provenance)""",
                        [e.source for e in batch], [e.target for e in batch], [e.type.value for e in batch],
                        [e.weight for e in batch], [e.provenance for e in batch],
                    )
        except asyncpg.ForeignKeyViolationError as exc:
            raise StorageError(f"a relationship names a node that does not exist: {exc.detail}") from exc
        return len(edges)

    async def node(self, node_id: str) -> GraphNode | None:
        async with self._reading("read a graph node") as conn:
            row = await conn.fetchrow("SELECT * FROM kg_nodes WHERE id = $1", node_id)
        return _node(row) if row else None

    async def nodes_of_kind(self, kind: NodeKind) -> list[GraphNode]:
        async with self._reading("read graph nodes") as conn:
            rows = await conn.fetch("SELECT * FROM kg_nodes WHERE kind = $1 ORDER BY id", kind.value)
        return [_node(r) for r in rows]

    async def neighbours(self, node_id: str, depth: int, types: list[RelationType] | None = None,
                         limit: int = MAX_NEIGHBOURS) -> Neighbourhood:
        type_names = [t.value for t in types] if types else None
        async with self._reading("traverse the graph") as conn:
            async def expand(frontier: list[str], seen: list[str], most: int) -> list[tuple[GraphNode, float]]:
                rows = await conn.fetch(
                    f"""WITH ring AS (
                            SELECT e.b AS id, max(e.weight) AS weight FROM ({_FROM_FRONTIER}) e
                            LEFT JOIN unnest($2::text[]) AS s(id) ON s.id = e.b
                            WHERE s.id IS NULL AND ($3::text[] IS NULL OR e.type = ANY($3::text[]))
                            GROUP BY e.b ORDER BY weight DESC, e.b LIMIT $4)
                        SELECT n.*, r.weight AS reached_by FROM ring r
                        CROSS JOIN LATERAL (SELECT * FROM kg_nodes k WHERE k.id = r.id) n
                        ORDER BY r.weight DESC, n.id""",
                    frontier, seen, type_names, most)
                return [(_node(r), float(r["reached_by"])) for r in rows]

            return await ring_by_ring(node_id, depth, limit, expand)

    async def shortest_path(self, source: str, target: str, max_depth: int = MAX_DEPTH) -> GraphPath | None:
        """Breadth-first from ``source`` over distinct nodes, one query per hop, each node remembering the
        relationship it was first reached by; the path is read back from ``target`` once it is reached."""
        check_depth(max_depth)
        async with self._reading("find a path") as conn:
            via: dict[str, tuple[str, str, str, str]] = {}  # node -> (previous node, source, target, type)
            seen, frontier = [source], [source]
            for _ in range(max_depth):
                if target in seen or not frontier:
                    break
                rows = await conn.fetch(
                    f"""SELECT DISTINCT ON (e.b) e.b, e.a, e.source, e.target, e.type FROM ({_FROM_FRONTIER}) e
                        LEFT JOIN unnest($2::text[]) AS s(id) ON s.id = e.b
                        WHERE s.id IS NULL ORDER BY e.b, e.a, e.source, e.target, e.type""",
                    frontier, seen)
                for r in rows:
                    via[r["b"]] = (r["a"], r["source"], r["target"], r["type"])
                frontier = [r["b"] for r in rows]
                seen += frontier
            if target not in seen:
                return None
            chain = [target]
            while chain[-1] != source:
                chain.append(via[chain[-1]][0])
            ids = chain[::-1]
            keys = [via[i][1:] for i in ids[1:]]
            node_rows = {r["id"]: r for r in await conn.fetch("SELECT * FROM kg_nodes WHERE id = ANY($1)", ids)}
            edge_rows = {(r["source"], r["target"], r["type"]): r for r in await conn.fetch(
                """SELECT * FROM kg_edges WHERE (source, target, type) IN
                   (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))""",
                [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])}
        if source not in node_rows:
            return None
        return GraphPath(nodes=[_node(node_rows[i]) for i in ids], edges=[_edge(edge_rows[k]) for k in keys])

    async def best_channels(self, industry: str, persona: str, limit: int = 3) -> list[ChannelRecommendation]:
        async with self._reading("recommend channels") as conn:
            rows = await conn.fetch(
                """SELECT c.*, i.weight * p.weight AS score,
                          i.source AS i_source, i.weight AS i_weight, i.provenance AS i_provenance,
                          p.source AS p_source, p.weight AS p_weight, p.provenance AS p_provenance
                   FROM kg_edges i JOIN kg_edges p ON p.target = i.target AND p.type = 'CONVERTS_TO'
                   JOIN kg_nodes c ON c.id = i.target AND c.kind = 'channel'
                   WHERE i.source = $1 AND i.type = 'CONVERTS_TO' AND p.source = $2
                   ORDER BY score DESC, c.id LIMIT $3""",
                industry, persona, limit,
            )
        return [
            ChannelRecommendation(
                channel=_node(r), score=round(float(r["score"]), 6),
                evidence=[
                    GraphEdge(source=r["i_source"], target=r["id"], type=RelationType.CONVERTS_TO,
                              weight=r["i_weight"], provenance=r["i_provenance"]),
                    GraphEdge(source=r["p_source"], target=r["id"], type=RelationType.CONVERTS_TO,
                              weight=r["p_weight"], provenance=r["p_provenance"]),
                ],
            )
            for r in rows
        ]

    async def counts(self) -> tuple[int, int]:
        async with self._reading("count the graph") as conn:
            row = await conn.fetchrow("SELECT (SELECT count(*) FROM kg_nodes) AS n, (SELECT count(*) FROM kg_edges) AS e")
        return row["n"], row["e"]

    async def clear(self) -> None:
        async with translated_errors("clear the graph"):
            await self._pool.execute("TRUNCATE kg_edges, kg_nodes")

    async def close(self) -> None:
        """The pool belongs to whoever passed it in."""
