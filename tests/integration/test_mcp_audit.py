"""MCP calls in the API audit: each tool call and resource read with the calling key, its name and its
outcome, through the real access-control middleware in front of the MCP server over real stores."""

from __future__ import annotations

import uuid

import httpx2
import pytest
from fastapi import FastAPI
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from marketing_agents.domain.access import NewApiKey
from marketing_agents.mcp.server import FORBIDDEN, install
from marketing_agents.serve_app.access_control import install_access_control
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.postgres_access import PostgresKeyStore
from tests.mcp_support import router_world, trained_models
from tests.support import lead_payload


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return trained_models(tmp_path_factory)


@pytest.fixture
async def world(migrated, pool, repository, models):
    connections = StoreConnections(migrated.settings(admin_api_key="mas_audit_admin_key_0123456789"))
    async with router_world(migrated, pool, repository, models) as world:
        app = FastAPI()
        access = install_access_control(app, connections)
        endpoint = install(app, world.router, allowed_origins=["http://localhost:*"])
        yield app, access
        await endpoint.aclose()
    await connections.close()


def client(app, key: str) -> Client:
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app), base_url="http://testserver",
                              headers={"Authorization": f"Bearer {key}"}, timeout=60)
    return Client(streamable_http_client("http://testserver/mcp", http_client=http))


async def test_each_tool_call_and_resource_read_is_audited_with_its_key_name_and_outcome(world, pool):
    app, access = world
    keys = PostgresKeyStore(pool)
    service = await keys.create(NewApiKey(name=f"it-{uuid.uuid4().hex[:6]}", role="service"), None)
    viewer = await keys.create(NewApiKey(name=f"it-{uuid.uuid4().hex[:6]}", role="viewer"), None)
    async with client(app, service.key) as mcp:
        triaged = await mcp.call_tool("triage_lead", {"lead": lead_payload(email=f"a-{uuid.uuid4().hex[:8]}@acme.io")})
        lead_id = triaged.structured_content["lead_id"]
        missing = str(uuid.uuid4())
        assert (await mcp.call_tool("plan_engagement", {"lead_id": missing})).is_error
    async with client(app, viewer.key) as mcp:
        with pytest.raises(MCPError) as refused:
            await mcp.read_resource(f"db://interactions/{lead_id}")
        assert refused.value.error.code == FORBIDDEN
        await mcp.read_resource(f"db://leads/{lead_id}")
        with pytest.raises(MCPError):
            await mcp.call_tool("triage_lead", {"lead": lead_payload(email="v@acme.io")})
    await access.audit.flush()
    rows = await pool.fetch("SELECT key_id, method, path, status FROM api_audit WHERE key_id = ANY($1) ORDER BY id",
                            [service.id, viewer.id])
    calls = [(r["key_id"], r["path"], r["status"]) for r in rows if r["method"] == "MCP"]
    assert calls == [
        (service.id, "tools/call triage_lead", 200),
        (service.id, "tools/call plan_engagement -> not_found", 404),
        (viewer.id, f"resources/read db://interactions/{lead_id} -> forbidden", 403),
        (viewer.id, f"resources/read db://leads/{lead_id}", 200),
        (viewer.id, "tools/call triage_lead -> forbidden", 403),
    ]
