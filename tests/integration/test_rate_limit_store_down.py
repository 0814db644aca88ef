"""The REST rate limiter when its Redis stops answering: a private Valkey, stopped under a running app,
and the two answers MAS_RATE_LIMIT_WHEN_STORE_DOWN chooses between (503 with Retry-After, or unmetered)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from marketing_agents.serve_app.access_control import install_access_control
from marketing_agents.serve_app.http_errors import install_error_handlers
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.embedded import EmbeddedValkey
from tests.support import free_port, wait_for

ADMIN_KEY = "mas_store_down_admin_key_0123456789"


@asynccontextmanager
async def admin_client(stores: StoreConnections) -> AsyncIterator[httpx.AsyncClient]:
    """The access control in front of two routes any admin may call; over in-process ASGI."""
    app = FastAPI()
    install_error_handlers(app)
    install_access_control(app, stores)

    @app.get("/api/v1/leads")
    async def read_leads() -> dict:
        return {"items": []}

    @app.post("/api/v1/leads")
    async def write_lead() -> dict:
        return {"written": True}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                 headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        yield client


@pytest.fixture
def private_valkey(tmp_path) -> Iterator[EmbeddedValkey]:
    """A Valkey of this test's own, so that stopping it stops nobody else's."""
    valkey = EmbeddedValkey(tmp_path / "valkey", free_port())
    valkey.start()
    yield valkey
    if valkey.pid() is not None:  # the test may have left it stopped
        valkey.stop()


async def _status(client, status: int) -> bool:
    return (await client.get("/api/v1/leads")).status_code == status


async def test_by_default_a_request_that_cannot_be_metered_is_503_with_retry_after_until_redis_is_back(
        migrated, private_valkey):
    stores = StoreConnections(migrated.settings(admin_api_key=ADMIN_KEY,
                                                redis_url=f"redis://127.0.0.1:{private_valkey.port}/0"))
    try:
        async with admin_client(stores) as client:
            metered = await client.get("/api/v1/leads")
            assert metered.status_code == 200 and metered.headers["X-RateLimit-Limit"] == "600"

            private_valkey.stop()
            refused = await client.get("/api/v1/leads")
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] == "5"
            error = refused.json()["error"]
            assert error["code"] == "storage_unavailable" and "rate limit" in error["message"]
            written = await client.post("/api/v1/leads", json={})
            assert written.status_code == 503, "writes are not let through unmetered either"

            private_valkey.start()
            await wait_for(lambda: _status(client, 200), timeout_s=20, interval_s=0.2)
            assert (await client.get("/api/v1/leads")).headers["X-RateLimit-Limit"] == "600"
    finally:
        await stores.close()


async def test_with_allow_a_request_that_cannot_be_metered_passes_unmetered(migrated, private_valkey):
    stores = StoreConnections(migrated.settings(admin_api_key=ADMIN_KEY, rate_limit_when_store_down="allow",
                                                redis_url=f"redis://127.0.0.1:{private_valkey.port}/0"))
    try:
        async with admin_client(stores) as client:
            assert (await client.get("/api/v1/leads")).headers["X-RateLimit-Remaining"] == "599"
            private_valkey.stop()
            unmetered = await client.get("/api/v1/leads")
            assert unmetered.status_code == 200
            assert "X-RateLimit-Limit" not in unmetered.headers, "no count, so no remaining budget is claimed"
            assert (await client.post("/api/v1/leads", json={})).status_code == 200
    finally:
        await stores.close()
