"""The knowledge-graph contract: every adapter answers these the same way."""

from __future__ import annotations

import asyncio

import pytest

from marketing_agents.domain.graph import GraphEdge, GraphNode, NodeKind, RelationType
from marketing_agents.errors import RequestError, StorageError
from marketing_agents.stores.graph_port import GraphQueryTimeout
from marketing_agents.stores.neo4j_graph import Neo4jGraphStore

R = RelationType


def node(node_id: str, **properties) -> GraphNode:
    kind, key = node_id.split(":", 1)
    return GraphNode(id=node_id, kind=NodeKind(kind), name=key.replace("_", " ").title(), properties=properties)


def edge(source: str, target: str, rel: RelationType, weight: float = 0.5, provenance: str = "test") -> GraphEdge:
    return GraphEdge(source=source, target=target, type=rel, weight=weight, provenance=provenance)


NODES = [node("industry:software", synonyms=["saas", "tech"]), node("industry:retail"), node("persona:cto"),
         node("persona:cmo"), node("channel:email"), node("channel:linkedin"), node("channel:webinar"),
         node("channel:sms"), node("content:roi_guide"), node("product:analytics"), node("segment:enterprise")]
EDGES = [
    edge("industry:software", "persona:cto", R.RELATES_TO, 0.9),
    edge("persona:cto", "content:roi_guide", R.INFLUENCES, 0.6),
    edge("content:roi_guide", "product:analytics", R.RELATES_TO, 0.7),
    edge("product:analytics", "segment:enterprise", R.RELATES_TO, 0.8),
    edge("industry:software", "industry:retail", R.SIMILAR_TO, 0.3),
    edge("channel:email", "channel:linkedin", R.PRECEDES, 0.5),
    edge("industry:software", "channel:email", R.CONVERTS_TO, 0.8),
    edge("industry:software", "channel:linkedin", R.CONVERTS_TO, 0.5),
    edge("industry:software", "channel:webinar", R.CONVERTS_TO, 0.9),
    edge("persona:cto", "channel:email", R.CONVERTS_TO, 0.9),
    edge("persona:cto", "channel:linkedin", R.CONVERTS_TO, 0.4),
    edge("persona:cto", "channel:webinar", R.CONVERTS_TO, 0.5),
    edge("persona:cmo", "channel:sms", R.CONVERTS_TO, 0.9),
]


@pytest.fixture
async def seeded(graph):
    assert await graph.upsert_nodes(NODES) == len(NODES)
    assert await graph.upsert_edges(EDGES) == len(EDGES)
    return graph


async def test_nodes_round_trip_with_their_properties(seeded):
    assert await seeded.node("industry:software") == NODES[0]
    assert await seeded.node("industry:nonexistent") is None
    assert await seeded.counts() == (len(NODES), len(EDGES))


async def test_upserts_are_idempotent_and_update_in_place(seeded):
    await seeded.upsert_nodes([node("persona:cto", seniority="c-level")])
    await seeded.upsert_edges([edge("persona:cto", "channel:email", R.CONVERTS_TO, 0.95, "consolidator")])
    assert await seeded.counts() == (len(NODES), len(EDGES))
    assert (await seeded.node("persona:cto")).properties == {"seniority": "c-level"}
    recommendations = await seeded.best_channels("industry:software", "persona:cto", limit=1)
    assert recommendations[0].evidence[1].provenance == "consolidator"


async def test_a_relationship_to_a_missing_node_is_refused(seeded):
    with pytest.raises(StorageError, match="industry:ghost"):
        await seeded.upsert_edges([edge("industry:ghost", "persona:cto", R.RELATES_TO)])


async def test_neighbours_by_depth_at_their_shortest_distance_strongest_first(seeded):
    one_hop = [(n.node.id, n.distance, n.weight) for n in (await seeded.neighbours("persona:cto", 1)).neighbours]
    assert one_hop == [("channel:email", 1, 0.9), ("industry:software", 1, 0.9), ("content:roi_guide", 1, 0.6),
                       ("channel:webinar", 1, 0.5), ("channel:linkedin", 1, 0.4)]
    two_hops = {n.node.id: n.distance for n in (await seeded.neighbours("persona:cto", 2)).neighbours}
    assert two_hops["product:analytics"] == 2 and two_hops["industry:retail"] == 2
    assert two_hops["channel:email"] == 1, "a node reachable in 1 and 2 hops is at distance 1"
    assert "segment:enterprise" not in two_hops and "persona:cto" not in two_hops


async def test_neighbours_can_follow_chosen_relationship_types(seeded):
    found = (await seeded.neighbours("industry:software", 2, [R.SIMILAR_TO, R.RELATES_TO])).neighbours
    assert [n.node.id for n in found] == ["persona:cto", "industry:retail"]


async def test_depth_outside_1_to_6_is_a_request_error(seeded):
    with pytest.raises(RequestError, match="depth"):
        await seeded.neighbours("persona:cto", 0)
    with pytest.raises(RequestError, match="depth"):
        await seeded.shortest_path("persona:cto", "segment:enterprise", max_depth=40)


async def test_shortest_path_with_its_nodes_and_relationships(seeded):
    path = await seeded.shortest_path("industry:software", "segment:enterprise")
    assert [n.id for n in path.nodes] == ["industry:software", "persona:cto", "content:roi_guide",
                                          "product:analytics", "segment:enterprise"]
    assert [(e.source, e.type, e.target) for e in path.edges] == [
        ("industry:software", R.RELATES_TO, "persona:cto"),
        ("persona:cto", R.INFLUENCES, "content:roi_guide"),
        ("content:roi_guide", R.RELATES_TO, "product:analytics"),
        ("product:analytics", R.RELATES_TO, "segment:enterprise"),
    ]
    assert path.length == 4


async def test_a_path_is_found_against_the_direction_of_relationships(seeded):
    path = await seeded.shortest_path("segment:enterprise", "content:roi_guide")
    assert [n.id for n in path.nodes] == ["segment:enterprise", "product:analytics", "content:roi_guide"]


async def test_no_path_within_the_limit_is_none(seeded):
    assert await seeded.shortest_path("industry:software", "segment:enterprise", max_depth=3) is None
    assert await seeded.shortest_path("persona:cmo", "segment:enterprise") is None


async def test_best_channels_for_an_industry_and_persona_with_the_evidence(seeded):
    found = await seeded.best_channels("industry:software", "persona:cto", limit=3)
    assert [(r.channel.id, r.score) for r in found] == [
        ("channel:email", pytest.approx(0.72)), ("channel:webinar", pytest.approx(0.45)),
        ("channel:linkedin", pytest.approx(0.2))]
    email = found[0]
    assert [(e.source, e.target, e.type, e.weight) for e in email.evidence] == [
        ("industry:software", "channel:email", R.CONVERTS_TO, pytest.approx(0.8)),
        ("persona:cto", "channel:email", R.CONVERTS_TO, pytest.approx(0.9))]
    assert await seeded.best_channels("industry:retail", "persona:cmo") == []


async def test_nodes_of_one_kind_in_id_order(seeded):
    assert [n.id for n in await seeded.nodes_of_kind(NodeKind.PERSONA)] == ["persona:cmo", "persona:cto"]
    industries = await seeded.nodes_of_kind(NodeKind.INDUSTRY)
    assert [n.id for n in industries] == ["industry:retail", "industry:software"]
    assert industries[1].properties == {"synonyms": ["saas", "tech"]}


async def test_a_dense_graph_answers_at_depth_6_without_enumerating_its_paths(graph):
    """A clique of 30 has ~3.4e8 simple paths of up to 6 hops from any node: a traversal that walks paths
    never ends (nor does a cycle-free variable-length pattern); ring by ring over distinct nodes is instant."""
    ids = [f"segment:s{i:02d}" for i in range(30)]
    await graph.upsert_nodes([node(i) for i in ids])
    await graph.upsert_edges([edge(a, b, R.SIMILAR_TO, 0.5) for n, a in enumerate(ids) for b in ids[n + 1:]])
    near = await asyncio.wait_for(graph.neighbours(ids[0], 6), timeout=20)
    assert sorted(n.node.id for n in near.neighbours) == ids[1:] and {n.distance for n in near.neighbours} == {1}
    assert near.truncated is False
    path = await asyncio.wait_for(graph.shortest_path(ids[0], ids[-1], max_depth=6), timeout=20)
    assert [n.id for n in path.nodes] == [ids[0], ids[-1]]


async def test_a_neighbourhood_is_cut_at_its_limit_strongest_first_and_says_so(graph):
    spokes = [f"content:c{i}" for i in range(6)]
    await graph.upsert_nodes([node("segment:hub"), node("product:beyond"), *[node(s) for s in spokes]])
    await graph.upsert_edges([edge("segment:hub", s, R.RELATES_TO, round(0.1 * (i + 1), 1)) for i, s in enumerate(spokes)]
                             + [edge("content:c0", "product:beyond", R.RELATES_TO, 0.9)])
    cut = await graph.neighbours("segment:hub", 1, limit=3)
    assert [(n.node.id, n.weight) for n in cut.neighbours] == [
        ("content:c5", pytest.approx(0.6)), ("content:c4", pytest.approx(0.5)), ("content:c3", pytest.approx(0.4))]
    assert cut.truncated is True and cut.limit == 3
    ring = await graph.neighbours("segment:hub", 1, limit=6)
    assert ring.truncated is False and len(ring.neighbours) == 6
    two = await graph.neighbours("segment:hub", 2, limit=6)
    assert two.truncated is True, "the second ring did not fit"
    assert [n.node.id for n in two.neighbours] == [f"content:c{i}" for i in range(5, -1, -1)]
    everything = await graph.neighbours("segment:hub", 2, limit=7)
    assert everything.truncated is False and everything.neighbours[-1].node.id == "product:beyond"
    assert everything.neighbours[-1].distance == 2
    with pytest.raises(RequestError, match="limit"):
        await graph.neighbours("segment:hub", 1, limit=0)


async def test_neo4j_cancels_a_read_past_its_timeout(neo4j_uri):
    """The driver's transaction timeout reaches the server, which terminates the read: a GraphQueryTimeout."""
    store = Neo4jGraphStore.connect(neo4j_uri, query_timeout_s=0.5)
    try:
        with pytest.raises(GraphQueryTimeout, match="longer than 0.5 s"):
            await asyncio.wait_for(store._read("spin", "UNWIND range(1, 10000000000) AS x RETURN count(x) AS c"),
                                   timeout=30)
        assert await store.ping() > 0
    finally:
        await store.close()
