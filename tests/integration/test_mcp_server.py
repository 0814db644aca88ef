"""The MCP server over Streamable HTTP, in-process: the SDK's own client against /mcp of an ASGI app whose
stand-in access-control middleware sets the caller (as the real one does), the router over real stores.

Covers the wiring the e2e suite cannot reach cheaply: each role's rights, both protocol generations
(2026-07-28 per-request and the 2025-11-25 handshake), Origin and credential refusals, and the JSON-RPC
error codes on raw requests.
"""

from __future__ import annotations

import json
import traceback
import uuid

import httpx
import httpx2
import pytest
from fastapi import FastAPI
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from marketing_agents.mcp.catalog import RESOURCES, TOOLS
from marketing_agents.mcp.server import FORBIDDEN, install
from tests.mcp_support import router_world, trained_models
from tests.support import lead_payload

ACCEPT = {"Accept": "application/json, text/event-stream"}


class StandInAccessControl:
    """What the access-control middleware leaves for the MCP server: ``scope["state"]["principal"]``."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            role = dict(scope["headers"]).get(b"x-test-role")
            if role:
                scope.setdefault("state", {})["principal"] = {"key_id": str(uuid.uuid4()), "name": "test",
                                                              "role": role.decode()}
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return trained_models(tmp_path_factory)


@pytest.fixture
async def app(migrated, pool, repository, models):
    async with router_world(migrated, pool, repository, models) as world:
        api = FastAPI()
        endpoint = install(api, world.router, allowed_origins=["http://localhost:*", "https://app.example.com"])
        api.add_middleware(StandInAccessControl)
        yield api
        await endpoint.aclose()


def sdk_client(app, role: str | None = "admin", mode: str = "auto", origin: str | None = None) -> Client:
    headers = {"x-test-role": role} if role else {}
    if origin:
        headers["Origin"] = origin
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app), base_url="http://testserver", headers=headers,
                              timeout=60)
    return Client(streamable_http_client("http://testserver/mcp", http_client=http), mode=mode)


def raw(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver", timeout=60)


def data(result) -> dict:
    return json.loads(result.contents[0].text)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_sdk_client_lists_reads_and_calls(app, mode):
    async with sdk_client(app, mode=mode) as client:
        resources = (await client.list_resources()).resources
        assert {str(r.uri) for r in resources} == {s.uri for s in RESOURCES if not s.is_template}
        assert all(r.mime_type == "application/json" for r in resources)
        templates = (await client.list_resource_templates()).resource_templates
        assert {t.uri_template for t in templates} == {s.uri for s in RESOURCES if s.is_template}
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {t.name for t in TOOLS}
        for spec in TOOLS:
            assert tools[spec.name].annotations.read_only_hint is spec.read_only
        assert tools["triage_lead"].input_schema["required"] == ["lead"]

        answer = await client.call_tool("triage_lead", {"lead": lead_payload(email=f"sdk-{uuid.uuid4().hex[:8]}@acme.io")})
        assert not answer.is_error
        lead_id = answer.structured_content["lead_id"]
        assert data(await client.read_resource(f"db://leads/{lead_id}"))["lead"]["id"] == lead_id
        assert data(await client.read_resource("kg://semantic"))["nodes"] > 0
        near = data(await client.read_resource("kg://semantic/node/industry:software/neighbours?depth=1"))
        assert near["neighbours"]
        assert data(await client.read_resource(f"memory://short-term/{lead_id}"))["lead_context"]["lead"]["id"] == lead_id
        scored = await client.call_tool("score_leads", {"lead_ids": [lead_id]})
        assert scored.structured_content["results"][0]["lead_id"] == lead_id


async def test_a_viewer_reads_and_calls_read_only_tools_but_may_not_triage(app):
    async with sdk_client(app, role="viewer") as client:
        assert data(await client.read_resource("db://leads"))["items"] is not None
        graph = await client.call_tool("query_graph", {"query": "node", "node_id": "persona:cto"})
        assert graph.structured_content["node"]["id"] == "persona:cto"
        with pytest.raises(MCPError) as refused:
            await client.call_tool("triage_lead", {"lead": lead_payload(email="viewer@acme.io")})
        assert refused.value.error.code == FORBIDDEN
        assert "viewer role may not call 'triage_lead'" in refused.value.error.message


async def test_errors_reach_the_client_as_mcp_errors_or_tool_errors(app):
    async with sdk_client(app) as client:
        with pytest.raises(MCPError) as unknown_lead:
            await client.read_resource(f"db://leads/{uuid.uuid4()}")
        assert unknown_lead.value.error.code == -32602 and "no lead" in unknown_lead.value.error.message
        with pytest.raises(MCPError) as unknown_uri:
            await client.read_resource("db://nothing")
        assert unknown_uri.value.error.code == -32602
        with pytest.raises(MCPError) as unknown_tool:
            await client.call_tool("nope", {})
        assert unknown_tool.value.error.code == -32602
        failed = await client.call_tool("plan_engagement", {"lead_id": str(uuid.uuid4())})
        assert failed.is_error and json.loads(failed.content[0].text)["code"] == "not_found"
        invalid = await client.call_tool("score_leads", {"lead_ids": ["not-a-uuid"]})
        assert invalid.is_error  # argument validation is a tool error the model can correct


async def test_no_credentials_is_401_and_a_foreign_origin_403(app):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with raw(app) as http:
        anonymous = await http.post("/mcp", json=body, headers=ACCEPT)
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
        assert anonymous.json()["error"]["code"] == -32600
        foreign = await http.post("/mcp", json=body, headers={**ACCEPT, "x-test-role": "admin",
                                                               "Origin": "https://evil.example"})
        assert foreign.status_code == 403
        for allowed in ("http://localhost:5173", "https://app.example.com"):
            ok = await http.post("/mcp", json=body, headers={**ACCEPT, "x-test-role": "admin", "Origin": allowed})
            assert ok.status_code == 200 and ok.json()["result"]["tools"]
    with pytest.raises(BaseException) as refused:  # the SDK client gives up on its connection
        async with sdk_client(app, origin="http://evil.example") as client:
            await client.list_tools()
    assert "Origin not allowed" in "".join(traceback.format_exception(refused.value))


async def rpc(http, body, **headers):
    return await http.post("/mcp", content=body if isinstance(body, bytes) else json.dumps(body),
                           headers={**ACCEPT, "Content-Type": "application/json", "x-test-role": "viewer", **headers})


async def test_json_rpc_error_codes_on_raw_requests(app):
    async with raw(app) as http:
        parse = await rpc(http, b'{"jsonrpc": "2.0", "id": 1, "method": ')
        assert parse.json()["error"]["code"] == -32700
        invalid = await rpc(http, {"jsonrpc": "2.0", "id": 2, "params": {}})
        assert invalid.json()["error"]["code"] == -32600
        wrong_version = await rpc(http, {"jsonrpc": "1.0", "id": 3, "method": "tools/list"})
        assert wrong_version.json()["error"]["code"] == -32600 and wrong_version.json()["id"] == 3
        batch = await rpc(http, [{"jsonrpc": "2.0", "id": 8, "method": "tools/list"}])
        assert batch.json()["error"]["code"] == -32600 and "batches" in batch.json()["error"]["message"]
        unknown = await rpc(http, {"jsonrpc": "2.0", "id": 4, "method": "leads/delete_everything"})
        assert unknown.json()["error"]["code"] == -32601 and unknown.json()["id"] == 4
        no_uri = await rpc(http, {"jsonrpc": "2.0", "id": 5, "method": "resources/read", "params": {}})
        assert no_uri.json()["error"]["code"] == -32602
        no_such_tool = await rpc(http, {"jsonrpc": "2.0", "id": 6, "method": "tools/call",
                                        "params": {"name": "nope", "arguments": {}}})
        assert no_such_tool.json()["error"]["code"] == -32602
        listed = await rpc(http, {"jsonrpc": "2.0", "id": 7, "method": "resources/templates/list"})
        assert len(listed.json()["result"]["resourceTemplates"]) == sum(1 for s in RESOURCES if s.is_template)

        # The 2026-07-28 generation: the version in a header and in every request's _meta.
        modern = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}
        unknown = await rpc(http, {"jsonrpc": "2.0", "id": 9, "method": "leads/delete_everything",
                                   "params": {"_meta": modern}},
                            **{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "leads/delete_everything"})
        assert unknown.json()["error"]["code"] == -32601
        no_uri = await rpc(http, {"jsonrpc": "2.0", "id": 10, "method": "resources/read", "params": {"_meta": modern}},
                           **{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "resources/read"})
        assert no_uri.json()["error"]["code"] == -32602
        invalid = await rpc(http, {"jsonrpc": "2.0", "id": 11}, **{"MCP-Protocol-Version": "2026-07-28"})
        assert invalid.json()["error"]["code"] == -32600


async def test_a_viewer_reads_through_mcp_only_what_rest_gives_it_and_not_a_persons_history(app):
    """REST gives a lead's interactions, sessions, conversations and episodes only with the export
    (operator, admin): MCP gives a viewer no more."""
    async with sdk_client(app, role="service") as client:
        triaged = await client.call_tool("triage_lead", {"lead": lead_payload(email=f"pii-{uuid.uuid4().hex[:8]}@acme.io")})
        lead_id = triaged.structured_content["lead_id"]
    personal = [f"db://interactions/{lead_id}", f"memory://short-term/{lead_id}",
                f"memory://episodic/lead/{lead_id}", f"memory://episodic/similar/{lead_id}"]
    async with sdk_client(app, role="viewer") as viewer:
        for uri in personal:
            with pytest.raises(MCPError) as refused:
                await viewer.read_resource(uri)
            assert refused.value.error.code == FORBIDDEN, uri
            assert "viewer role may not read" in refused.value.error.message
        with pytest.raises(MCPError) as refused:
            await viewer.call_tool("search_episodes", {"lead_id": lead_id})
        assert refused.value.error.code == FORBIDDEN
        assert data(await viewer.read_resource(f"db://leads/{lead_id}"))["lead"]["id"] == lead_id, \
            "what GET /api/v1/leads/{id} gives every role, MCP gives too"
    async with sdk_client(app, role="operator") as operator:
        for uri in personal:
            assert data(await operator.read_resource(uri))
        assert not (await operator.call_tool("search_episodes", {"lead_id": lead_id})).is_error
