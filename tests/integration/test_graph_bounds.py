"""Graph reads bounded by the caller's role, through the MCP handlers a key reaches (issue 14, item 9).

Against the real embedded PostgreSQL: a viewer key may not run a deep traversal, a neighbourhood is cut
at the role's size, strongest first, and says so, and a read that outlives the statement timeout is a
clear GraphQueryTimeout (503), not a connection stuck in a query.
"""

from __future__ import annotations

import asyncio

import pytest

from marketing_agents.domain.access import Role
from marketing_agents.domain.graph import GRAPH_BOUNDS, GraphEdge, GraphNode, NodeKind, RelationType
from marketing_agents.errors import RequestError
from marketing_agents.stores.graph_port import GraphQueryTimeout
from marketing_agents.stores.postgres_graph import PostgresGraphStore
from tests.mcp_support import router_world

SPOKES = 150  # more than a viewer's 100 nodes
HUB = "segment:hub"


@pytest.fixture
async def world(migrated, pool, repository):
    async with router_world(migrated, pool, repository, None) as world:
        spokes = [GraphNode(id=f"content:spoke_{i:03d}", kind=NodeKind.CONTENT, name=f"Spoke {i}")
                  for i in range(SPOKES)]
        await world.tiers["semantic"].learn(
            [GraphNode(id=HUB, kind=NodeKind.SEGMENT, name="Hub"), *spokes],
            [GraphEdge(source=HUB, target=s.id, type=RelationType.RELATES_TO, weight=round((i + 1) / SPOKES, 4),
                       provenance="test") for i, s in enumerate(spokes)])
        yield world


async def test_a_viewer_key_may_not_traverse_deeper_than_its_role_allows(world):
    router = world.router
    viewer = GRAPH_BOUNDS[Role.VIEWER].max_depth
    uri = "kg://semantic/node/industry:software/neighbours?depth={}"
    assert (await router.read_resource(uri.format(viewer), role="viewer"))["depth"] == viewer
    with pytest.raises(RequestError, match=f"depth must be at most {viewer} for the viewer role") as refused:
        await router.read_resource(uri.format(viewer + 1), role="viewer")
    assert refused.value.details == {"depth": viewer + 1, "max": viewer, "role": "viewer"}
    with pytest.raises(RequestError, match="for the viewer role"):
        await router.call_tool("query_graph", {"query": "neighbours", "node_id": "industry:software",
                                               "depth": viewer + 1}, role="viewer")
    admin = GRAPH_BOUNDS[Role.ADMIN].max_depth
    assert (await router.read_resource(uri.format(admin), role="admin"))["depth"] == admin
    with pytest.raises(RequestError, match=f"at most {admin} for the admin role"):
        await router.read_resource(uri.format(admin + 1), role="admin")


async def test_a_neighbourhood_is_cut_at_the_roles_size_strongest_first_and_says_so(world):
    router = world.router
    size = GRAPH_BOUNDS[Role.VIEWER].max_nodes
    near = await router.read_resource(f"kg://semantic/node/{HUB}/neighbours", role="viewer")
    assert near["truncated"] is True and near["limit"] == size and len(near["neighbours"]) == size
    weights = [n["weight"] for n in near["neighbours"]]
    assert weights == sorted(weights, reverse=True)
    assert near["neighbours"][0]["node"]["id"] == f"content:spoke_{SPOKES - 1:03d}", "the strongest comes first"
    assert min(weights) == pytest.approx((SPOKES - size + 1) / SPOKES), "what is cut is the weakest"

    tool = await router.call_tool("query_graph", {"query": "neighbours", "node_id": HUB}, role="viewer")
    assert tool["truncated"] is True and len(tool["neighbours"]) == size

    whole = await router.read_resource(f"kg://semantic/node/{HUB}/neighbours", role="admin")
    assert whole["truncated"] is False and len(whole["neighbours"]) == SPOKES
    with pytest.raises(RequestError, match=f"limit must be at most {size} for the viewer role"):
        await router.read_resource(f"kg://semantic/node/{HUB}/neighbours?limit={size + 1}", role="viewer")


async def test_a_path_is_searched_no_further_than_the_roles_depth(world):
    router = world.router
    # Two spokes meet at the hub: 2 hops. A third node one hop past a spoke is 3 hops from another spoke.
    await world.tiers["semantic"].learn(
        [GraphNode(id="product:far", kind=NodeKind.PRODUCT, name="Far")],
        [GraphEdge(source="content:spoke_000", target="product:far", type=RelationType.RELATES_TO, weight=0.5,
                   provenance="test")])
    uri = "kg://semantic/path/content:spoke_001/product:far"
    assert (await router.read_resource(uri, role="service"))["length"] == 3
    assert (await router.read_resource(uri, role="viewer"))["path"] is None


async def test_a_graph_read_past_the_statement_timeout_is_a_clear_503(migrated, pool):
    store = PostgresGraphStore(pool, query_timeout_s=0.2)
    async with pool.acquire() as locker, locker.transaction():
        # Holding the table makes the traversal wait, as a slow one would, until PostgreSQL cancels it.
        await locker.execute("LOCK TABLE kg_edges IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(GraphQueryTimeout, match="longer than 0.2 s") as timed_out:
            await asyncio.wait_for(store.neighbours("industry:software", 2), timeout=30)
    assert timed_out.value.status_code == 503 and timed_out.value.retry_after_s
    assert timed_out.value.code == "graph_query_timeout"
    assert (await store.neighbours("industry:software", 1)).depth == 1, "the pool's connection is usable again"
