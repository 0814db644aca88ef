"""Access control against the real embedded PostgreSQL and Valkey: keys created, verified and revoked,
the sliding-window limiter per key, and the middleware in front of a FastAPI app over in-process ASGI
(401, 403, 429 with Retry-After, 503, the audit of writes, the principal handed to routes, WebSockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI, Request, WebSocket
from starlette.testclient import TestClient, WebSocketDenialResponse

from marketing_agents.domain.access import (
    BOOTSTRAP_KEY_ID,
    NewApiKey,
    Principal,
    Role,
    VerifiedKey,
    hash_key,
)
from marketing_agents.errors import Conflict, NotFound
from marketing_agents.serve_app.access_control import AccessService, install_access_control
from marketing_agents.serve_app.http_errors import install_error_handlers
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.postgres_access import PostgresKeyStore
from tests.support import free_port, wait_for

ADMIN_KEY = "mas_integration_admin_key_0123456789"


@pytest.fixture
def keys(pool) -> PostgresKeyStore:
    return PostgresKeyStore(pool)


@pytest.fixture
async def connections(migrated) -> AsyncIterator[StoreConnections]:
    connections = StoreConnections(migrated.settings(admin_api_key=ADMIN_KEY, api_key_cache_s=60))
    yield connections
    await connections.close()


def make_app(stores: StoreConnections, settings=None) -> tuple[FastAPI, AccessService]:
    app = FastAPI()
    install_error_handlers(app)
    service = install_access_control(app, stores, settings)

    @app.get("/api/v1/leads")
    async def read_things(request: Request) -> dict:
        return {"principal": request.state.principal.model_dump(mode="json")}

    @app.post("/api/v1/leads")
    async def write_thing() -> dict:
        return {"written": True}

    @app.delete("/api/v1/leads/{lead_id}")
    async def erase(lead_id: UUID) -> dict:
        return {"erased": str(lead_id)}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app, service


@asynccontextmanager
async def client_of(app: FastAPI, key: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
        yield client


def name() -> str:
    return f"it-{uuid4().hex[:8]}"


# ---- the key store ----

async def test_a_created_key_is_verified_by_its_hash_listed_without_its_secret_and_revoked(keys):
    created = await keys.create(NewApiKey(name=name(), role="operator", rate_limit_per_minute=7), None)
    assert created.key.startswith("mas_") and created.prefix == created.key[:11]
    stored = await keys._pool.fetchrow("SELECT * FROM api_keys WHERE id = $1", created.id)
    assert stored["key_hash"] == hash_key(created.key) and created.key not in str(dict(stored))

    verified = await keys.verify(hash_key(created.key))
    assert verified == VerifiedKey(Principal(key_id=created.id, name=created.name, role=Role.OPERATOR), 7)
    assert await keys.verify(hash_key(created.key + "x")) is None

    listed = {k.id: k for k in await keys.list()}
    assert listed[created.id].model_dump() == created.model_dump(exclude={"key"})
    assert "key" not in listed[created.id].model_dump()

    revoked = await keys.revoke(created.id)
    assert revoked.revoked_at is not None
    assert await keys.verify(hash_key(created.key)) is None
    assert (await keys.revoke(created.id)).revoked_at == revoked.revoked_at, "revoking twice changes nothing"
    assert created.id in {k.id for k in await keys.list()}
    assert created.id not in {k.id for k in await keys.list(include_revoked=False)}


async def test_an_unknown_key_is_404_and_the_bootstrap_key_cannot_be_revoked_through_the_api(keys):
    with pytest.raises(NotFound):
        await keys.revoke(uuid4())
    with pytest.raises(NotFound):
        await keys.get(uuid4())
    with pytest.raises(Conflict, match="MAS_ADMIN_API_KEY"):
        await keys.revoke(BOOTSTRAP_KEY_ID)


async def test_the_bootstrap_row_follows_mas_admin_api_key(keys):
    await keys.ensure_bootstrap(hash_key("first-bootstrap-key-0001"), "firs")
    assert (await keys.verify(hash_key("first-bootstrap-key-0001"))).principal.role is Role.ADMIN
    await keys.ensure_bootstrap(hash_key("second-bootstrap-key-002"), "seco")
    assert await keys.verify(hash_key("first-bootstrap-key-0001")) is None, "the old bootstrap key is gone"
    assert (await keys.verify(hash_key("second-bootstrap-key-002"))).principal.key_id == BOOTSTRAP_KEY_ID
    assert (await keys.get(BOOTSTRAP_KEY_ID)).prefix == "seco"


# ---- the rate limiter ----

async def test_each_key_has_its_own_sliding_window_in_redis(connections, redis_client):
    service = AccessService(connections)
    tight = VerifiedKey(Principal(key_id=uuid4(), name="tight", role=Role.SERVICE), 3)
    other = VerifiedKey(Principal(key_id=uuid4(), name="other", role=Role.SERVICE), 3)
    decisions = [await service.admit(tight) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert 0 < decisions[3].retry_after_s <= 60
    assert (await service.admit(other)).allowed, "another key's window is its own"
    assert await redis_client.zcard(f"mas:rate:apikey:{tight.principal.key_id}") == 3


async def test_without_its_own_limit_a_key_gets_its_roles_then_the_default(migrated):
    connections = StoreConnections(migrated.settings(rate_limit_per_minute=2, rate_limits_by_role={"service": 4}))
    try:
        service = AccessService(connections)
        viewer = VerifiedKey(Principal(key_id=uuid4(), name="v", role=Role.VIEWER))
        svc = VerifiedKey(Principal(key_id=uuid4(), name="s", role=Role.SERVICE))
        assert [(await service.admit(viewer)).allowed for _ in range(3)] == [True, True, False]
        assert [(await service.admit(svc)).allowed for _ in range(5)] == [True] * 4 + [False]
    finally:
        await connections.close()


# ---- the middleware ----

async def test_no_key_or_a_bad_key_is_401_in_the_error_shape_and_public_paths_need_none(connections):
    app, _ = make_app(connections)
    async with client_of(app) as anonymous:
        response = await anonymous.get("/api/v1/leads")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthenticated"
        assert set(response.json()["error"]) == {"code", "message", "details"}
        assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
        assert (await anonymous.get("/openapi.json")).status_code == 200
        basic = await anonymous.get("/api/v1/leads", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert basic.status_code == 401
    async with client_of(app, "mas_not_a_key_anyone_was_given") as stranger:
        response = await stranger.post("/api/v1/leads", json={})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_request_without_a_key_is_refused_before_its_body_is_read(connections):
    app, _ = make_app(connections)
    async with client_of(app) as anonymous:
        response = await anonymous.post("/api/v1/leads", content=b"x" * 10, headers={"Content-Type": "text/plain"})
    assert response.status_code == 401


async def test_routes_get_the_principal_and_roles_are_enforced(connections, keys):
    app, _ = make_app(connections)
    viewer = await keys.create(NewApiKey(name=name(), role="viewer"), None)
    operator = await keys.create(NewApiKey(name=name(), role="operator"), None)
    async with client_of(app, viewer.key) as client:
        answer = await client.get("/api/v1/leads")
        assert answer.status_code == 200
        assert answer.json()["principal"] == {"key_id": str(viewer.id), "name": viewer.name, "role": "viewer"}
        assert answer.headers["X-RateLimit-Limit"] == "600"
        refused = await client.post("/api/v1/leads", json={})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        assert refused.json()["error"]["details"] == {"role": "viewer", "allowed_roles": ["admin", "operator",
                                                                                           "service"]}
        assert (await client.get("/api/v1/keys")).status_code == 403
    async with client_of(app, operator.key) as client:
        assert (await client.post("/api/v1/leads", json={})).status_code == 200
        assert (await client.delete(f"/api/v1/leads/{uuid4()}")).status_code == 403
    async with client_of(app, ADMIN_KEY) as client:
        assert (await client.delete(f"/api/v1/leads/{uuid4()}")).status_code == 200


async def test_admins_create_list_and_revoke_keys_and_a_revoked_key_is_401_at_once(connections):
    app, _ = make_app(connections)
    async with client_of(app, ADMIN_KEY) as admin:
        created = await admin.post("/api/v1/keys", json={"name": name(), "role": "service"})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["key"].startswith("mas_") and body["created_by"] == str(BOOTSTRAP_KEY_ID)
        listed = (await admin.get("/api/v1/keys")).json()["items"]
        assert body["id"] in {k["id"] for k in listed} and str(BOOTSTRAP_KEY_ID) in {k["id"] for k in listed}
        assert all("key" not in k and "key_hash" not in k for k in listed)
        async with client_of(app, body["key"]) as service_client:
            assert (await service_client.post("/api/v1/leads", json={})).status_code == 200  # now cached
            revoked = await admin.delete(f"/api/v1/keys/{body['id']}")
            assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
            assert (await service_client.get("/api/v1/leads")).status_code == 401
        assert (await admin.delete(f"/api/v1/keys/{BOOTSTRAP_KEY_ID}")).status_code == 409
        assert (await admin.delete(f"/api/v1/keys/{uuid4()}")).status_code == 404
        bad = await admin.post("/api/v1/keys", json={"name": "x", "role": "superuser"})
        assert bad.status_code == 422


async def test_a_key_revoked_on_another_replica_stops_working_within_the_cache_time(migrated, keys):
    connections = StoreConnections(migrated.settings(admin_api_key=ADMIN_KEY, api_key_cache_s=0.5))
    try:
        app, _ = make_app(connections)
        created = await keys.create(NewApiKey(name=name(), role="viewer"), None)
        async with client_of(app, created.key) as client:
            assert (await client.get("/api/v1/leads")).status_code == 200
            await keys.revoke(created.id)  # as another replica would
            await wait_for(lambda: _status_is(client, 401), timeout_s=10, interval_s=0.1)
    finally:
        await connections.close()


async def _status_is(client: httpx.AsyncClient, status: int) -> bool:
    return (await client.get("/api/v1/leads")).status_code == status


async def test_a_key_over_its_limit_gets_429_with_retry_after(connections, keys):
    app, _ = make_app(connections)
    created = await keys.create(NewApiKey(name=name(), role="viewer", rate_limit_per_minute=2), None)
    async with client_of(app, created.key) as client:
        statuses = [(await client.get("/api/v1/leads")).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        refused = await client.get("/api/v1/leads")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        error = refused.json()["error"]
        assert error["code"] == "rate_limited" and error["details"]["limit"] == 2
    async with client_of(app, ADMIN_KEY) as admin:
        assert (await admin.get("/api/v1/leads")).status_code == 200, "other keys are not limited by it"


async def test_every_write_is_audited_with_its_key_and_reads_are_not(connections, keys, pool):
    app, service = make_app(connections)
    operator = await keys.create(NewApiKey(name=name(), role="operator"), None)
    viewer = await keys.create(NewApiKey(name=name(), role="viewer"), None)
    async with client_of(app, operator.key) as client:
        await client.get("/api/v1/leads")
        await client.post("/api/v1/leads", json={})
        await client.delete(f"/api/v1/leads/{uuid4()}")  # refused: audited with its 403
    async with client_of(app, viewer.key) as client:
        await client.post("/api/v1/leads", json={})
    await service.audit.flush()
    rows = await pool.fetch("SELECT key_id, method, path, status FROM api_audit WHERE key_id = ANY($1) ORDER BY id",
                            [operator.id, viewer.id])
    assert [(r["key_id"], r["method"], r["status"]) for r in rows] == [
        (operator.id, "POST", 200), (operator.id, "DELETE", 403), (viewer.id, "POST", 403)]
    assert rows[0]["path"] == "/api/v1/leads"
    async with client_of(app, ADMIN_KEY) as admin:
        listed = (await admin.get("/api/v1/audit", params={"key_id": str(operator.id)})).json()["items"]
        assert [(e["method"], e["status"]) for e in listed] == [("DELETE", 403), ("POST", 200)]
        first_page = (await admin.get("/api/v1/audit", params={"key_id": str(operator.id), "limit": 1})).json()
        assert [e["method"] for e in first_page["items"]] == ["DELETE"]
        next_page = await admin.get("/api/v1/audit", params={"key_id": str(operator.id),
                                                              "before_id": first_page["items"][0]["id"]})
        assert [e["method"] for e in next_page.json()["items"]] == ["POST"]


async def test_postgres_down_is_503_with_retry_after_and_redis_down_lets_requests_through(migrated, free_dsn):
    # "allow": the default, "reject", is tested in test_rate_limit_store_down.py
    down = StoreConnections(migrated.settings(admin_api_key=ADMIN_KEY, postgres_dsn=free_dsn,
                                              redis_url=f"redis://127.0.0.1:{free_port()}/0",
                                              rate_limit_when_store_down="allow"))
    try:
        app, _ = make_app(down)
        async with client_of(app, "mas_" + "d" * 43) as client:  # shaped like a key: only PostgreSQL can tell
            response = await client.get("/api/v1/leads")
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "5"
            assert response.json()["error"]["code"] == "storage_unavailable"
        async with client_of(app, ADMIN_KEY) as admin:
            assert (await admin.get("/api/v1/leads")).status_code == 200, "no limiter, no refusal"
    finally:
        await down.close()


@pytest.fixture
def free_dsn() -> str:
    return f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"


def test_the_openapi_document_names_the_bearer_scheme_and_the_refusals(connections):
    app, _ = make_app(connections)
    spec = app.openapi()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"]}
    create = spec["paths"]["/api/v1/keys"]["post"]
    assert create["security"] == [{"bearerAuth": []}]
    assert {"201", "401", "403", "422", "429"} <= set(create["responses"])
    assert create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("CreatedApiKey")
    assert "security" not in spec["paths"]["/healthz"]["get"]
    assert "ErrorResponse" in spec["components"]["schemas"]


# ---- WebSockets (TestClient runs the app in its own event loop, so it gets its own connections) ----

def websocket_app(migrated) -> FastAPI:
    connections = StoreConnections(migrated.settings(admin_api_key=ADMIN_KEY))

    @asynccontextmanager
    async def lifespan(_):
        yield
        await connections.close()

    app = FastAPI(lifespan=lifespan)
    install_access_control(app, connections)

    @app.websocket("/ws")
    async def events(websocket: WebSocket) -> None:
        principal: Principal = websocket.state.principal
        await websocket.accept()
        await websocket.send_json({"role": principal.role.value, "key_id": str(principal.key_id)})
        await websocket.close()

    return app


async def test_a_websocket_is_authenticated_by_header_or_token_and_refused_before_accept(migrated, keys):
    viewer = await keys.create(NewApiKey(name=name(), role="viewer"), None)

    def scenario() -> None:
        with TestClient(websocket_app(migrated)) as client:
            with client.websocket_connect("/ws", headers={"Authorization": f"Bearer {viewer.key}"}) as ws:
                assert ws.receive_json() == {"role": "viewer", "key_id": str(viewer.id)}
            with client.websocket_connect(f"/ws?topics=leads&token={ADMIN_KEY}") as ws:
                assert ws.receive_json()["role"] == "admin"
            with pytest.raises(WebSocketDenialResponse) as refused:
                with client.websocket_connect("/ws"):
                    pass
            assert refused.value.status_code == 401
            assert refused.value.json()["error"]["code"] == "unauthenticated"
            with pytest.raises(WebSocketDenialResponse) as refused:
                with client.websocket_connect("/ws?token=mas_wrong_key_for_this"):
                    pass
            assert refused.value.status_code == 401

    await asyncio.to_thread(scenario)
