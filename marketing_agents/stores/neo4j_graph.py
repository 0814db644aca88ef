"""The knowledge-graph port over Neo4j, through the official async driver: the production backend.

Nodes carry the label ``Entity`` and their kind as a property; relationship types are the seed's five,
validated by the RelationType enum before they are placed in a query (Cypher cannot parameterise a
type in MERGE). Writes go in UNWIND batches, one transaction each.

Reads run with the driver's transaction timeout (``Query(timeout=...)``, ``unit_of_work(timeout=...)``), so
the server terminates one that outlives Settings.graph_query_timeout_s; neighbourhoods grow ring by ring in
one read transaction (``graph_port.ring_by_ring``) instead of a variable-length pattern, which enumerates
every path. Credentials come from the settings or the URI's userinfo, which the driver itself refuses
(and would echo, password included, in its error).
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import unquote, urlsplit, urlunsplit

from neo4j import AsyncDriver, AsyncGraphDatabase, AsyncManagedTransaction, Query, unit_of_work
from neo4j.exceptions import ConfigurationError, DriverError, Neo4jError

from marketing_agents.domain.graph import (
    ChannelRecommendation,
    GraphEdge,
    GraphNode,
    GraphPath,
    Neighbourhood,
    NodeKind,
    RelationType,
)
from marketing_agents.errors import ConfigError, StorageError
from marketing_agents.settings import Settings
from marketing_agents.stores.graph_port import (
    MAX_DEPTH,
    MAX_NEIGHBOURS,
    check_depth,
    ring_by_ring,
    timed_out,
)

BATCH = 5000
DEFAULT_TIMEOUT_S = 5.0  # Settings.graph_query_timeout_s's default
DEFAULT_POOL_SIZE = 50  # Settings.neo4j_pool_size's default


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """(the URI without userinfo, its user, its password): neo4j://user:pass@host:7687 names its login."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri, None, None
    host = parts.netloc.rpartition("@")[2]
    return (urlunsplit(parts._replace(netloc=host)), unquote(parts.username or "") or None,
            unquote(parts.password) if parts.password is not None else None)


def credentials(settings: Settings) -> tuple[str, tuple[str, str] | None]:
    """The URI to connect to and the login: MAS_NEO4J_USER / MAS_NEO4J_PASSWORD win over the URI's userinfo;
    no user at all is a server without auth (the dev server, ``scripts/neo4j-dev``)."""
    if not settings.neo4j_uri:
        raise ConfigError("MAS_NEO4J_URI is not set", {"field": "neo4j_uri"})
    uri, user, password = split_credentials(settings.neo4j_uri)
    user = settings.neo4j_user or user
    if settings.neo4j_password is not None:
        password = settings.neo4j_password.get_secret_value()
    if user is None:
        return uri, None
    if password is None:
        raise ConfigError("Neo4j user given without a password: set MAS_NEO4J_PASSWORD", {"field": "neo4j_password"})
    return uri, (user, password)


def _is_timeout(exc: Neo4jError) -> bool:
    """The server terminated the transaction at its timeout (Neo.ClientError.Transaction.TransactionTimedOut*)."""
    return "TransactionTimedOut" in (exc.code or "")


def _node(record) -> GraphNode:
    return GraphNode(id=record["id"], kind=record["kind"], name=record["name"],
                     properties=dict(record.get("properties") or {}))


_NODE_FIELDS = "{id: n.id, kind: n.kind, name: n.name, properties: n.properties_json}"


class Neo4jGraphStore:
    def __init__(self, driver: AsyncDriver, database: str | None = None,
                 query_timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._driver = driver
        self._database = database
        self._timeout_s = query_timeout_s

    @classmethod
    def connect(cls, uri: str, auth: tuple[str, str] | None = None, *, pool_size: int = DEFAULT_POOL_SIZE,
                query_timeout_s: float = DEFAULT_TIMEOUT_S) -> Neo4jGraphStore:
        try:
            driver = AsyncGraphDatabase.driver(uri, auth=auth, max_connection_pool_size=pool_size)
        except ConfigurationError as exc:  # its message repeats the URI: say what is wrong without it
            raise ConfigError(f"MAS_NEO4J_URI is not a URI the Neo4j driver accepts: {type(exc).__name__}",
                              {"field": "neo4j_uri"}) from None
        return cls(driver, query_timeout_s=query_timeout_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> Neo4jGraphStore:
        uri, auth = credentials(settings)
        return cls.connect(uri, auth, pool_size=settings.neo4j_pool_size,
                           query_timeout_s=settings.graph_query_timeout_s)

    async def close(self) -> None:
        await self._driver.close()

    async def ping(self, timeout_s: float = 2.0) -> float:
        """Round-trip time of ``RETURN 1`` in milliseconds (the health check); StorageError when it fails,
        including a refused login, and TimeoutError when the server does not answer in ``timeout_s``."""
        started = time.perf_counter()
        await asyncio.wait_for(self._run("answer a health check", "RETURN 1 AS ok", timeout_s_=timeout_s), timeout_s)
        return (time.perf_counter() - started) * 1000

    async def _run(self, action: str, query: str, timeout_s_: float | None = None, **params) -> list:
        """One auto-retried transaction; reads pass the timeout (writes of a 5,000-row batch may take longer)."""
        try:
            records, _summary, _keys = await self._driver.execute_query(
                Query(query, timeout=timeout_s_) if timeout_s_ else query, params, database_=self._database)
        except (Neo4jError, DriverError, OSError) as exc:
            raise self._translated(action, exc, timeout_s_) from exc
        return records

    async def _read(self, action: str, query: str, **params) -> list:
        return await self._run(action, query, timeout_s_=self._timeout_s, **params)

    def _translated(self, action: str, exc: Neo4jError | DriverError | OSError,
                    timeout_s: float | None) -> StorageError:
        if isinstance(exc, Neo4jError) and _is_timeout(exc):
            return timed_out(action, timeout_s or self._timeout_s)
        if isinstance(exc, Neo4jError):
            return StorageError(f"Neo4j refused to {action}: {exc.message}")
        return StorageError(f"Neo4j unavailable while trying to {action}: {type(exc).__name__}: {exc}")

    async def ensure_schema(self) -> None:
        await self._run("create a constraint",
                        "CREATE CONSTRAINT entity_id IF NOT EXISTS FOR (n:Entity) REQUIRE n.id IS UNIQUE")

    async def upsert_nodes(self, nodes: list[GraphNode]) -> int:
        await self.ensure_schema()
        for start in range(0, len(nodes), BATCH):
            rows = [{"id": n.id, "kind": n.kind.value, "name": n.name, "properties": _json(n.properties)}
                    for n in nodes[start:start + BATCH]]
            await self._run("write graph nodes",
                            """UNWIND $rows AS row MERGE (n:Entity {id: row.id})
                               SET n.kind = row.kind, n.name = row.name, n.properties_json = row.properties""",
                            rows=rows)
        return len(nodes)

    async def upsert_edges(self, edges: list[GraphEdge]) -> int:
        by_type: dict[RelationType, list[GraphEdge]] = {}
        for edge in edges:
            by_type.setdefault(RelationType(edge.type), []).append(edge)
        for rel_type, group in by_type.items():
            for start in range(0, len(group), BATCH):
                rows = [e.model_dump(mode="json") for e in group[start:start + BATCH]]
                missing = await self._run(
                    "write graph relationships",
                    """UNWIND $rows AS row
                        OPTIONAL MATCH (a:Entity {id: row.source}) OPTIONAL MATCH (b:Entity {id: row.target})
                        WITH row, a, b WHERE a IS NULL OR b IS NULL
                        RETURN CASE WHEN a IS NULL THEN row.source ELSE row.target END AS id LIMIT 1""",
                    rows=rows)
                if missing:
                    raise StorageError(f"a relationship names a node that does not exist: {missing[0]['id']}")
                await self._run(
                    "write graph relationships",
                    f"""UNWIND $rows AS row
                        MATCH (a:Entity {{id: row.source}}) MATCH (b:Entity {{id: row.target}})
                        MERGE (a)-[r:{rel_type.value}]->(b)
                        SET r.weight = row.weight, r.provenance = row.provenance""",
                    rows=rows)
        return len(edges)

    async def node(self, node_id: str) -> GraphNode | None:
        records = await self._read("read a graph node", f"MATCH (n:Entity {{id: $id}}) RETURN {_NODE_FIELDS} AS n",
                                  id=node_id)
        return _node(_parsed(records[0]["n"])) if records else None

    async def nodes_of_kind(self, kind: NodeKind) -> list[GraphNode]:
        records = await self._read("read graph nodes",
                                  f"MATCH (n:Entity {{kind: $kind}}) RETURN {_NODE_FIELDS} AS n ORDER BY n.id",
                                  kind=kind.value)
        return [_node(_parsed(r["n"])) for r in records]

    async def neighbours(self, node_id: str, depth: int, types: list[RelationType] | None = None,
                         limit: int = MAX_NEIGHBOURS) -> Neighbourhood:
        rel = ":" + "|".join(t.value for t in types) if types else ""
        ring_query = f"""MATCH (f:Entity)-[r{rel}]-(n:Entity) WHERE f.id IN $frontier AND NOT n.id IN $seen
                         WITH n, max(r.weight) AS weight ORDER BY weight DESC, n.id LIMIT $most
                         RETURN {_NODE_FIELDS} AS n, weight"""

        @unit_of_work(timeout=self._timeout_s)
        async def traverse(tx: AsyncManagedTransaction) -> Neighbourhood:
            async def expand(frontier: list[str], seen: list[str], most: int) -> list[tuple[GraphNode, float]]:
                result = await tx.run(ring_query, frontier=frontier, seen=seen, most=most)
                return [(_node(_parsed(r["n"])), float(r["weight"])) for r in await result.fetch(most)]

            return await ring_by_ring(node_id, depth, limit, expand)

        try:
            async with self._driver.session(database=self._database) as session:
                return await session.execute_read(traverse)
        except (Neo4jError, DriverError, OSError) as exc:
            raise self._translated("traverse the graph", exc, self._timeout_s) from exc

    async def shortest_path(self, source: str, target: str, max_depth: int = MAX_DEPTH) -> GraphPath | None:
        check_depth(max_depth)
        if source == target:
            node = await self.node(source)
            return GraphPath(nodes=[node], edges=[]) if node else None
        records = await self._read(
            "find a path",
            f"""MATCH (a:Entity {{id: $source}}), (b:Entity {{id: $target}})
                MATCH p = shortestPath((a)-[*..{max_depth}]-(b))
                RETURN [n IN nodes(p) | {_NODE_FIELDS}] AS nodes,
                       [r IN relationships(p) | {{source: startNode(r).id, target: endNode(r).id, type: type(r),
                                                  weight: r.weight, provenance: r.provenance}}] AS edges""",
            source=source, target=target)
        if not records:
            return None
        return GraphPath(nodes=[_node(_parsed(n)) for n in records[0]["nodes"]],
                         edges=[GraphEdge(**e) for e in records[0]["edges"]])

    async def best_channels(self, industry: str, persona: str, limit: int = 3) -> list[ChannelRecommendation]:
        records = await self._read(
            "recommend channels",
            # Both ends are looked up and expanded towards the channels, then joined: left to itself the
            # planner walked every CONVERTS_TO into each of the persona's channels (9,400 rows for 2 at
            # the seed's scale) to find the industry's.
            f"""MATCH (i:Entity {{id: $industry}})-[ri:CONVERTS_TO]->(n:Entity {{kind: 'channel'}}),
                      (p:Entity {{id: $persona}})-[rp:CONVERTS_TO]->(n)
                USING JOIN ON n
                RETURN {_NODE_FIELDS} AS n, ri.weight * rp.weight AS score,
                       ri.weight AS i_weight, ri.provenance AS i_provenance,
                       rp.weight AS p_weight, rp.provenance AS p_provenance
                ORDER BY score DESC, n.id LIMIT $limit""",
            industry=industry, persona=persona, limit=limit)
        return [
            ChannelRecommendation(
                channel=_node(_parsed(r["n"])), score=round(float(r["score"]), 6),
                evidence=[
                    GraphEdge(source=industry, target=r["n"]["id"], type=RelationType.CONVERTS_TO,
                              weight=r["i_weight"], provenance=r["i_provenance"]),
                    GraphEdge(source=persona, target=r["n"]["id"], type=RelationType.CONVERTS_TO,
                              weight=r["p_weight"], provenance=r["p_provenance"]),
                ],
            )
            for r in records
        ]

    async def counts(self) -> tuple[int, int]:
        nodes = await self._read("count the graph", "MATCH (n:Entity) RETURN count(n) AS c")
        edges = await self._read("count the graph", "MATCH (:Entity)-[r]->(:Entity) RETURN count(r) AS c")
        return nodes[0]["c"], edges[0]["c"]

    async def clear(self) -> None:
        await self._run("clear the graph", "MATCH (n:Entity) DETACH DELETE n")


def _json(properties: dict) -> str:
    return json.dumps(properties, sort_keys=True)


def _parsed(node: dict) -> dict:
    """Neo4j properties cannot nest maps, so a node's free-form properties travel as one JSON string."""
    return {**node, "properties": json.loads(node["properties"]) if node.get("properties") else {}}
