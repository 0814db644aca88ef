"""Access control against hostile callers, over the real embedded PostgreSQL and Valkey: the policy under
a Serve route_prefix, made-up bearer tokens, and a flood of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from marketing_agents.domain.access import KeyCache, NewApiKey, generate_key
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.postgres_access import PostgresKeyStore
from tests.integration.test_api_keys_and_limits import ADMIN_KEY, make_app, name
from tests.support import free_port

PREFIX = "/marketing"


@pytest.fixture
def keys(pool) -> PostgresKeyStore:
    return PostgresKeyStore(pool)


@pytest.fixture
async def connections(migrated) -> AsyncIterator[StoreConnections]:
    connections = StoreConnections(migrated.settings(admin_api_key=ADMIN_KEY, api_key_cache_s=60))
    yield connections
    await connections.close()


@asynccontextmanager
async def served_under(app, prefix: str, key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` as Ray Serve runs it under a route_prefix: scope["path"] keeps the prefix and
    scope["root_path"] is the prefix (ray/serve/_private/proxy.py)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, root_path=prefix)
    async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


async def test_under_a_route_prefix_a_service_key_cannot_create_an_admin_key(connections, keys):
    app, _ = make_app(connections)
    service = await keys.create(NewApiKey(name=name(), role="service"), None)
    viewer = await keys.create(NewApiKey(name=name(), role="viewer"), None)
    async with served_under(app, PREFIX, service.key) as client:
        refused = await client.post(f"{PREFIX}/api/v1/keys", json={"name": name(), "role": "admin"})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["details"] == {"role": "service", "allowed_roles": ["admin"]}
        assert (await client.get(f"{PREFIX}/api/v1/audit")).status_code == 403
        assert (await client.post(f"{PREFIX}/api/v1/leads", json={})).status_code == 200
    async with served_under(app, PREFIX, viewer.key) as client:
        assert (await client.get(f"{PREFIX}/api/v1/leads")).status_code == 200
        assert (await client.post(f"{PREFIX}/api/v1/leads", json={})).status_code == 403
        assert (await client.get(f"{PREFIX}/healthz")).json() == {"status": "ok"}, "public under the prefix too"
    async with served_under(app, PREFIX, ADMIN_KEY) as admin:
        created = await admin.post(f"{PREFIX}/api/v1/keys", json={"name": name(), "role": "viewer"})
        assert created.status_code == 201, created.text
        assert (await admin.delete(f"{PREFIX}/api/v1/leads/{service.id}")).status_code == 200


async def test_a_route_no_rule_names_is_refused_to_every_role(connections, keys):
    app, _ = make_app(connections)

    @app.put("/api/v1/unlisted")
    async def unlisted() -> dict:
        return {"reached": True}

    operator = await keys.create(NewApiKey(name=name(), role="operator"), None)
    for key in (operator.key, ADMIN_KEY):
        async with served_under(app, "", key) as client:
            assert (await client.put("/api/v1/unlisted")).status_code == 403
            # A path no route takes is a typo, not a refusal: the app's own 404, under a prefix too.
            missing = await client.get("/api/v1/nothing-here")
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found", missing.text
    async with served_under(app, PREFIX, operator.key) as client:
        assert (await client.get(f"{PREFIX}/api/v1/nothing-here")).status_code == 404


async def test_tokens_that_cannot_be_keys_are_refused_without_asking_postgresql(migrated):
    down = StoreConnections(migrated.settings(admin_api_key=ADMIN_KEY,
                                              postgres_dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/none"))
    try:
        app, _ = make_app(down)
        for made_up in ("random-garbage", "mas_too_short", "x" * 47, "mas_" + "x" * 44):
            async with served_under(app, "", made_up) as client:
                response = await client.get("/api/v1/leads")
                assert response.status_code == 401, (made_up, response.text)  # a lookup would have been 503
                assert response.json()["error"]["code"] == "invalid_api_key"
        async with served_under(app, "", generate_key()) as client:
            assert (await client.get("/api/v1/leads")).status_code == 503, "a well-formed key still needs the lookup"
    finally:
        await down.close()


async def test_a_flood_of_made_up_keys_does_not_push_a_real_key_out_of_the_cache(connections, keys):
    app, service = make_app(connections)
    service.cache = KeyCache(60, max_entries=20, max_unknown=5)  # small bounds, so that a small flood overflows them
    real = await keys.create(NewApiKey(name=name(), role="viewer"), None)
    async with served_under(app, "", real.key) as client:
        assert (await client.get("/api/v1/leads")).status_code == 200  # verified, cached
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as flood:
        statuses = await asyncio.gather(*(
            flood.get("/api/v1/leads", headers={"Authorization": f"Bearer {generate_key()}"}) for _ in range(60)))
    assert {r.status_code for r in statuses} == {401}
    await keys.revoke(real.id)  # as another replica would: here it is still cached, within api_key_cache_s
    async with served_under(app, "", real.key) as client:
        assert (await client.get("/api/v1/leads")).status_code == 200, "the real key was pushed out by the flood"


# ---- decisions record the calling key ----

async def test_approvals_rollbacks_and_acknowledgements_record_the_calling_key_not_the_body(connections, keys, pool,
                                                                                              redis_client):
    from marketing_agents.flows.campaign_optimizer import CampaignOptimizer
    from marketing_agents.memory.event_bus import EventBus
    from marketing_agents.serve_app.campaigns import add_campaign_routes
    from marketing_agents.stores.postgres_campaigns import PostgresCampaignStore
    from marketing_agents.stores.redis import RedisShortTermStore
    from tests.integration.test_campaign_routes import CAMPAIGN, metric

    app, _ = make_app(connections)
    add_campaign_routes(app, CampaignOptimizer(PostgresCampaignStore(pool), EventBus(RedisShortTermStore(redis_client))))
    operator = await keys.create(NewApiKey(name=name(), role="operator"), None)
    actor = f"apikey:{operator.id}"
    async with served_under(app, "", operator.key) as http:
        created = (await http.post("/api/v1/campaigns", json={**CAMPAIGN, "budget": "400.00"})).json()
        base = f"/api/v1/campaigns/{created['id']}"
        rows = [metric(spend="100.00"), metric(variant="B", spend="100.00"), metric(channel="linkedin", spend="100.00"),
                metric(variant="B", channel="linkedin", spend="100.00")]
        assert (await http.post(f"{base}/metrics", json={"rows": rows})).status_code == 200
        proposal = (await http.post(f"{base}/optimize")).json()
        assert proposal["status"] == "proposed", proposal

        approved = await http.post(f"/api/v1/optimizations/{proposal['id']}/approve",
                                   json={"by": "the CEO", "note": "budget extended"})
        assert approved.status_code == 200, approved.text
        assert approved.json()["applied_by"] == actor
        assert [(e["acknowledged_by"], e["note"]) for e in approved.json()["escalations"]] == [
            (actor, f"approved optimization {proposal['id']}: budget extended (stated by: the CEO)")]

        rollback = await http.post(f"/api/v1/optimizations/{proposal['id']}/rollback", json={"by": "someone else"})
        assert rollback.status_code == 200, rollback.text
        assert (rollback.json()["created_by"], rollback.json()["applied_by"]) == (actor, actor)
    audited = await pool.fetch("SELECT action, inputs FROM agent_actions WHERE campaign_id = $1 AND action IN "
                               "('approve', 'rollback') ORDER BY created_at", created["id"])
    assert [(r["action"], r["inputs"]["by"], r["inputs"]["note"]) for r in audited] == [
        ("approve", actor, "budget extended (stated by: the CEO)"), ("rollback", actor, "(stated by: someone else)")]
