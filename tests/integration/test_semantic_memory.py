"""Semantic memory over the embedded graph: the starter graph loads once and answers questions."""

from __future__ import annotations

from marketing_agents.domain.graph import GraphEdge, RelationType
from marketing_agents.memory.semantic import SemanticMemory, starter_graph
from marketing_agents.stores.postgres_graph import PostgresGraphStore


async def test_the_starter_graph_loads_once_and_never_resets_learned_weights(pool):
    store = PostgresGraphStore(pool)
    await store.clear()
    memory = SemanticMemory(store)
    nodes, edges = starter_graph()
    assert await memory.load_starter_graph() == (len(nodes), len(edges))
    learned = GraphEdge(source="industry:software", target="channel:email", type=RelationType.CONVERTS_TO,
                        weight=0.99, provenance="consolidator")
    await memory.learn([], [learned])
    assert await memory.load_starter_graph() == (0, 0)
    best = await memory.best_channels("software", "cmo", limit=5)
    email = next(r for r in best if r.channel.id == "channel:email")
    assert email.evidence[0].provenance == "consolidator"
    await store.clear()


async def test_the_starter_graph_covers_every_kind_and_relationship_type():
    nodes, edges = starter_graph()
    assert {n.kind.value for n in nodes} >= {"industry", "persona", "product", "channel", "content", "segment"}
    assert {e.type for e in edges} == set(RelationType)
    ids = {n.id for n in nodes}
    assert all(e.source in ids and e.target in ids for e in edges)


async def test_channel_reasoning_explains_itself(pool):
    store = PostgresGraphStore(pool)
    await store.clear()
    memory = SemanticMemory(store)
    await memory.load_starter_graph()
    best = await memory.best_channels("Software", "CTO", limit=3)
    assert len(best) == 3
    assert [r.score for r in best] == sorted((r.score for r in best), reverse=True)
    for r in best:
        assert r.score == round(r.evidence[0].weight * r.evidence[1].weight, 6)
    path = await memory.explain("industry:software", "product:crm_sync")
    assert path.nodes[0].id == "industry:software" and path.nodes[-1].id == "product:crm_sync"
    await store.clear()


async def test_an_industry_is_asked_by_any_spelling_the_graph_knows(pool):
    store = PostgresGraphStore(pool)
    await store.clear()
    memory = SemanticMemory(store)
    await memory.load_starter_graph()
    by_key = await memory.best_channels("software", "cto", limit=3)
    assert by_key
    assert await memory.best_channels("Information Technology", "cto", limit=3) == by_key
    assert await memory.best_channels("SaaS", "cto", limit=3) == by_key
    assert await memory.best_channels("Underwater basket weaving", "cto", limit=3) == []
    await store.clear()
