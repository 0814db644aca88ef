"""The knowledge-graph contract: every adapter answers these the same way."""

from __future__ import annotations

import pytest

from marketing_agents.domain.graph import GraphEdge, GraphNode, NodeKind, RelationType
from marketing_agents.errors import RequestError, StorageError

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


async def test_neighbours_by_depth_at_their_shortest_distance(seeded):
    one_hop = [(n.node.id, n.distance) for n in await seeded.neighbours("persona:cto", 1)]
    assert one_hop == [("channel:email", 1), ("channel:linkedin", 1), ("channel:webinar", 1),
                       ("content:roi_guide", 1), ("industry:software", 1)]
    two_hops = {n.node.id: n.distance for n in await seeded.neighbours("persona:cto", 2)}
    assert two_hops["product:analytics"] == 2 and two_hops["industry:retail"] == 2
    assert two_hops["channel:email"] == 1, "a node reachable in 1 and 2 hops is at distance 1"
    assert "segment:enterprise" not in two_hops and "persona:cto" not in two_hops


async def test_neighbours_can_follow_chosen_relationship_types(seeded):
    found = [n.node.id for n in await seeded.neighbours("industry:software", 2, [R.SIMILAR_TO, R.RELATES_TO])]
    assert found == ["industry:retail", "persona:cto"]


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
