"""The knowledge-graph port over Neo4j, through the official async driver: the production backend.

Nodes carry the label ``Entity`` and their kind as a property; relationship types are the seed's five,
validated by the RelationType enum before they are placed in a query (Cypher cannot parameterise a
type in MERGE). Writes go in UNWIND batches, one transaction each.
"""

from __future__ import annotations

import json

from neo4j import AsyncDriver, AsyncGraphDatabase
from neo4j.exceptions import Neo4jError, ServiceUnavailable

from marketing_agents.domain.graph import (
    ChannelRecommendation,
    GraphEdge,
    GraphNode,
    GraphPath,
    Neighbour,
    NodeKind,
    RelationType,
)
from marketing_agents.errors import StorageError
from marketing_agents.stores.graph_port import MAX_DEPTH, check_depth

BATCH = 5000


def _node(record) -> GraphNode:
    return GraphNode(id=record["id"], kind=record["kind"], name=record["name"],
                     properties=dict(record.get("properties") or {}))


_NODE_FIELDS = "{id: n.id, kind: n.kind, name: n.name, properties: n.properties_json}"


class Neo4jGraphStore:
    def __init__(self, driver: AsyncDriver, database: str | None = None) -> None:
        self._driver = driver
        self._database = database

    @classmethod
    def connect(cls, uri: str, auth: tuple[str, str] | None = None) -> Neo4jGraphStore:
        return cls(AsyncGraphDatabase.driver(uri, auth=auth))

    async def close(self) -> None:
        await self._driver.close()

    async def _run(self, action: str, query: str, **params) -> list:
        try:
            records, _summary, _keys = await self._driver.execute_query(query, params, database_=self._database)
        except (ServiceUnavailable, OSError) as exc:
            raise StorageError(f"Neo4j unavailable while trying to {action}: {exc}") from exc
        except Neo4jError as exc:
            raise StorageError(f"Neo4j refused to {action}: {exc.message}") from exc
        return records

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
        records = await self._run("read a graph node", f"MATCH (n:Entity {{id: $id}}) RETURN {_NODE_FIELDS} AS n",
                                  id=node_id)
        return _node(_parsed(records[0]["n"])) if records else None

    async def nodes_of_kind(self, kind: NodeKind) -> list[GraphNode]:
        records = await self._run("read graph nodes",
                                  f"MATCH (n:Entity {{kind: $kind}}) RETURN {_NODE_FIELDS} AS n ORDER BY n.id",
                                  kind=kind.value)
        return [_node(_parsed(r["n"])) for r in records]

    async def neighbours(self, node_id: str, depth: int, types: list[RelationType] | None = None) -> list[Neighbour]:
        check_depth(depth)
        pattern = "|".join(t.value for t in types) if types else ""
        rel = f":{pattern}" if pattern else ""
        records = await self._run(
            "traverse the graph",
            f"""MATCH p = (s:Entity {{id: $id}})-[{rel}*1..{depth}]-(n:Entity) WHERE n <> s
                WITH n, min(length(p)) AS distance
                RETURN {_NODE_FIELDS} AS n, distance ORDER BY distance, n.id""",
            id=node_id)
        return [Neighbour(node=_node(_parsed(r["n"])), distance=r["distance"]) for r in records]

    async def shortest_path(self, source: str, target: str, max_depth: int = MAX_DEPTH) -> GraphPath | None:
        check_depth(max_depth)
        if source == target:
            node = await self.node(source)
            return GraphPath(nodes=[node], edges=[]) if node else None
        records = await self._run(
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
        records = await self._run(
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
        nodes = await self._run("count the graph", "MATCH (n:Entity) RETURN count(n) AS c")
        edges = await self._run("count the graph", "MATCH (:Entity)-[r]->(:Entity) RETURN count(r) AS c")
        return nodes[0]["c"], edges[0]["c"]

    async def clear(self) -> None:
        await self._run("clear the graph", "MATCH (n:Entity) DETACH DELETE n")


def _json(properties: dict) -> str:
    return json.dumps(properties, sort_keys=True)


def _parsed(node: dict) -> dict:
    """Neo4j properties cannot nest maps, so a node's free-form properties travel as one JSON string."""
    return {**node, "properties": json.loads(node["properties"]) if node.get("properties") else {}}
