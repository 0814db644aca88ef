"""The MCP server at /mcp of the running system, through the official SDK's Streamable HTTP client unchanged:
every resource family listed and read, the templates listed, every tool called; then the refusals (a
foreign Origin, no credentials) and the JSON-RPC error codes of raw requests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from marketing_agents.mcp.catalog import RESOURCES, TOOLS
from tests.support import lead_payload

pytestmark = pytest.mark.e2e

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def mcp_client(system, mode: str = "auto", **headers: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {system.admin_key}", **headers}, timeout=120)
    return Client(streamable_http_client(f"{system.url}/mcp", http_client=http), mode=mode)


def data(result) -> dict:
    return json.loads(result.contents[0].text)


def unique_lead(**overrides) -> dict:
    return lead_payload(**{"email": f"mcp.{uuid.uuid4().hex[:10]}@acme-robotics.com", **overrides})


@pytest.fixture
def lead_id(api) -> str:
    lead = api.post("/api/v1/leads", json=unique_lead())
    assert lead.status_code == 200, lead.text
    lead_id = lead.json()["lead_id"]
    reply = api.post("/api/v1/interactions", json={
        "lead_id": lead_id, "type": "open", "channel": "email",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=2)).isoformat()})
    assert reply.status_code == 200, reply.text
    return lead_id


@pytest.fixture
def campaign_id(api) -> str:
    # A draft: the optimizer agent steps active campaigns on its own, and this test asks it by hand.
    created = api.post("/api/v1/campaigns", json={
        "name": f"mcp e2e {uuid.uuid4().hex[:6]}", "status": "draft", "channels": ["email", "linkedin"],
        "budget": "50000.00", "start_date": "2025-03-01"})
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    rows = [{"variant": v, "channel": c, "metric_date": "2025-03-01", "impressions": 5000, "clicks": 1000,
             "conversions": n, "spend": "25.00", "revenue": "100.00"}
            for (v, c), n in {("A", "email"): 200, ("B", "email"): 190, ("A", "linkedin"): 185,
                              ("B", "linkedin"): 20}.items()]
    assert api.post(f"/api/v1/campaigns/{campaign_id}/metrics", json={"rows": rows}).status_code == 200
    return campaign_id


async def test_every_resource_family_is_listed_and_read(system, api, lead_id, campaign_id):
    newer = api.post("/api/v1/leads", json=unique_lead()).json()["lead_id"]
    async with mcp_client(system) as client:
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        assert listed == {"db://leads", "db://campaigns", "kg://semantic", "memory://episodic"}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert templates == {s.uri for s in RESOURCES if s.is_template}

        assert lead_id in [lead["id"] for lead in data(await client.read_resource("db://leads"))["items"]]
        page = data(await client.read_resource("db://leads?limit=1"))
        assert [lead["id"] for lead in page["items"]] == [newer] and page["next_cursor"]
        after = data(await client.read_resource(f"db://leads?limit=1&cursor={page['next_cursor']}"))
        assert [lead["id"] for lead in after["items"]] == [lead_id]
        detail = data(await client.read_resource(f"db://leads/{lead_id}"))
        assert detail["lead"]["id"] == lead_id and detail["engagement_plan"]["touchpoints"]
        interactions = data(await client.read_resource(f"db://interactions/{lead_id}"))
        assert [i["type"] for i in interactions["interactions"]] == ["open"]

        campaigns = data(await client.read_resource("db://campaigns"))
        assert campaign_id in [c["id"] for c in campaigns["campaigns"]]
        assert data(await client.read_resource(f"db://campaigns/{campaign_id}"))["campaign"]["id"] == campaign_id

        graph = data(await client.read_resource("kg://semantic"))
        assert graph["nodes"] > 0 and graph["nodes_by_kind"]["channel"]
        channels = data(await client.read_resource("kg://semantic/industry/manufacturing/channels?persona=cmo"))
        assert channels["recommendations"]
        near = data(await client.read_resource("kg://semantic/node/industry:manufacturing/neighbours?depth=1"))
        assert near["neighbours"]

        short_term = data(await client.read_resource(f"memory://short-term/{lead_id}"))
        assert short_term["lead_context"]["lead"]["id"] == lead_id
        assert "insights" in data(await client.read_resource("memory://episodic"))
        similar = data(await client.read_resource(f"memory://episodic/similar/{lead_id}?limit=3"))
        assert similar["lead_id"] == lead_id and "similar_episodes" in similar


async def test_every_tool_is_listed_with_its_hints_and_called(system, lead_id, campaign_id):
    async with mcp_client(system) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {t.name for t in TOOLS}
        assert {name for name, t in tools.items() if t.annotations.read_only_hint} == {
            "score_leads", "plan_engagement", "query_graph", "analyse_campaign", "search_episodes"}

        triaged = await client.call_tool("triage_lead", {"lead": unique_lead()})
        assert not triaged.is_error, triaged.content
        assert triaged.structured_content["status"] == "engaged"
        new_id = triaged.structured_content["lead_id"]

        batch = await client.call_tool("triage_leads", {"leads": [unique_lead(), unique_lead(consent={})]})
        assert batch.structured_content["succeeded"] == 2
        assert [r["result"]["triage_category"] == "disqualified" for r in batch.structured_content["results"]] == [
            False, True]

        scored = await client.call_tool("score_leads", {"leads": [unique_lead()], "lead_ids": [new_id, lead_id]})
        assert not scored.is_error, scored.content
        assert [r["index"] for r in scored.structured_content["results"]] == [0, 1, 2]
        assert all(0 <= r["lead_score"] <= 100 for r in scored.structured_content["results"])

        plan = await client.call_tool("plan_engagement", {"lead_id": lead_id})
        assert plan.structured_content["dry_run"] is True and plan.structured_content["plan"]["touchpoints"]

        graph = await client.call_tool("query_graph", {"query": "best_channels", "industry": "software",
                                                       "persona": "cto", "limit": 2})
        assert len(graph.structured_content["recommendations"]) == 2

        analysis = await client.call_tool("analyse_campaign", {"campaign_id": campaign_id})
        assert not analysis.is_error, analysis.content
        assert analysis.structured_content["performance"]["campaign_id"] == campaign_id
        assert analysis.structured_content["dry_run_optimization"]["decision"]["paused_arms"] == ["B/linkedin"]

        episodes = await client.call_tool("search_episodes", {"lead_id": lead_id, "limit": 3})
        assert not episodes.is_error and "similar_episodes" in episodes.structured_content

        missing = await client.call_tool("plan_engagement", {"lead_id": str(uuid.uuid4())})
        assert missing.is_error and json.loads(missing.content[0].text)["code"] == "not_found"
        with pytest.raises(MCPError) as unknown:
            await client.read_resource(f"db://leads/{uuid.uuid4()}")
        assert unknown.value.error.code == -32602


async def test_the_handshake_generation_client_works_too(system, lead_id):
    async with mcp_client(system, mode="legacy") as client:
        assert data(await client.read_resource(f"db://leads/{lead_id}"))["lead"]["id"] == lead_id
        graph = await client.call_tool("query_graph", {"query": "node", "node_id": "persona:cmo"})
        assert graph.structured_content["node"]["name"]


def raw_post(system, body, **headers) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{system.url}/mcp", content=content, timeout=60,
                      headers={**ACCEPT, "Authorization": f"Bearer {system.admin_key}", **headers})


def test_a_foreign_origin_is_refused_and_a_local_one_allowed(system):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    refused = raw_post(system, body, Origin="https://evil.example")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == -32600
    allowed = raw_post(system, body, Origin="http://localhost:3000")
    assert allowed.status_code == 200 and allowed.json()["result"]["tools"]


def test_no_credentials_are_refused(system):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    anonymous = httpx.post(f"{system.url}/mcp", json=body, headers=ACCEPT, timeout=60)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    wrong_key = httpx.post(f"{system.url}/mcp", json=body, timeout=60,
                           headers={**ACCEPT, "Authorization": "Bearer mas_not_a_key_at_all_0000000000000"})
    assert wrong_key.status_code == 401


def test_json_rpc_error_codes(system):
    parse = raw_post(system, b'{"jsonrpc": "2.0", "id": 1, "method": ')
    assert parse.json()["error"]["code"] == -32700
    invalid = raw_post(system, {"jsonrpc": "2.0", "id": 2})
    assert invalid.json()["error"]["code"] == -32600 and invalid.json()["id"] == 2
    batch = raw_post(system, [{"jsonrpc": "2.0", "id": 3, "method": "tools/list"}])
    assert batch.json()["error"]["code"] == -32600
    unknown = raw_post(system, {"jsonrpc": "2.0", "id": 4, "method": "leads/drop"})
    assert unknown.json()["error"]["code"] == -32601 and unknown.json()["id"] == 4
    no_uri = raw_post(system, {"jsonrpc": "2.0", "id": 5, "method": "resources/read", "params": {}})
    assert no_uri.json()["error"]["code"] == -32602
    no_tool = raw_post(system, {"jsonrpc": "2.0", "id": 6, "method": "tools/call",
                                "params": {"name": "drop_everything", "arguments": {}}})
    assert no_tool.json()["error"]["code"] == -32602
