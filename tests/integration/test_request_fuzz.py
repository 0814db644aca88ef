"""Property-based: no request body or query of the REST API, and no MCP tool's arguments, gets a 5xx
(or, on /mcp, a crash: JSON-RPC -32603 or the SDK's bare "Error executing tool <name>").

The operations come from the app's own OpenAPI document and the tools from ``tools/list``, so a new
route or tool is fuzzed without touching this file. Requests go through the gateway's whole app
(access control, body limits, the strict input rule, the routes, the flows) over real PostgreSQL and
Valkey (``tests.gateway_support``); the values come from each schema mixed with hostile ones
(``tests.json_fuzz``). Hypothesis runs in a worker thread and sends each request into the test's event
loop, where the app and its store connections live.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketing_agents.mcp.catalog import TOOLS
from marketing_agents.stores.postgres import LeadRepository, init_connection
from tests.gateway_support import Gateway, gateway_app
from tests.json_fuzz import from_schema, hostile, to_json
from tests.mcp_support import trained_models
from tests.support import lead_payload

EXAMPLES = 20
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                suppress_health_check=list(HealthCheck))
JSON = {"Content-Type": "application/json"}
MCP = {**JSON, "Accept": "application/json, text/event-stream"}
# Operations the in-process app cannot serve as the cluster does; each says why it is left out.
LEFT_OUT = {
    ("post", "/api/v1/memory/consolidate"): "runs a whole memory pass on the consolidator deployment, which the "
                                            "in-process app does not have; its only input is a date",
}


@pytest.fixture(scope="module")
async def gateway(migrated, tmp_path_factory):
    models = trained_models(tmp_path_factory)
    pool = await asyncpg.create_pool(migrated.dsn, min_size=1, max_size=10, init=init_connection)
    repository = LeadRepository(pool, timedelta(hours=24))
    try:
        async with gateway_app(migrated, pool, repository, models, rate_limit_per_minute=1_000_000) as gateway:
            yield gateway
    finally:
        await pool.close()


@pytest.fixture(scope="module")
async def known_ids(gateway: Gateway) -> dict[str, str]:
    """Ids of things that exist, so that path parameters reach stored rows and not only 404s."""
    async with gateway.client() as http:
        lead = await http.post("/api/v1/leads", json=lead_payload(email="fuzz.known@acme-robotics.com"))
        campaign = await http.post("/api/v1/campaigns", json={"name": "Fuzz", "status": "active",
                                                             "channels": ["email", "linkedin"], "budget": "100.00",
                                                             "start_date": "2026-03-01"})
    assert lead.status_code == 200 and campaign.status_code == 201, (lead.text, campaign.text)
    return {"lead_id": lead.json()["lead_id"], "campaign_id": campaign.json()["id"]}


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation with a JSON body or query parameters."""
    found = []
    for path, item in openapi["paths"].items():
        for method, op in item.items():
            has_body = "application/json" in op.get("requestBody", {}).get("content", {})
            has_query = any(p.get("in") == "query" for p in op.get("parameters", []))
            if (has_body or has_query) and (method, path) not in LEFT_OUT:
                found.append((method, path, op))
    return found


def _query_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, allow_nan=True)


def _url(path: str, path_values: dict[str, str], query: dict[str, Any]) -> str:
    for name, value in path_values.items():
        path = path.replace("{" + name + "}", quote(value.encode("utf-8", "surrogatepass"), safe=""))
    pairs = [f"{quote(k)}={quote(_query_value(v).encode('utf-8', 'surrogatepass'), safe='')}"
             for k, v in query.items() if v is not None]
    return path + ("?" + "&".join(pairs) if pairs else "")


def request_strategy(op: dict[str, Any], openapi: dict[str, Any], known: dict[str, str]) -> st.SearchStrategy:
    params = op.get("parameters", [])
    path_values = st.fixed_dictionaries({
        p["name"]: (st.sampled_from([known[p["name"]]]) | st.uuids().map(str)) if p["name"] in known
        else st.uuids().map(str) | st.sampled_from(["v1", "latest", "x" * 300])
        for p in params if p.get("in") == "path"})
    query = st.fixed_dictionaries({}, optional={p["name"]: from_schema(p.get("schema", {}), openapi) | hostile
                                                for p in params if p.get("in") == "query"})
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    body = from_schema(content["schema"], openapi) if content else st.none()
    return st.tuples(path_values, query, body)


def run_in_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Any], Any]:
    return lambda coroutine: asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=120)


def check_all(checks: list[tuple[str, Callable[[], None]]]) -> list[str]:
    """Runs each hypothesis check; the failures, each with its falsifying example."""
    failures = []
    for name, check in checks:
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - a failed property: collected, so one run reports every route
            notes = "\n".join(getattr(exc, "__notes__", []))
            failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:600]}\n{notes[:2000]}")
    return failures


async def test_no_request_body_or_query_of_the_rest_api_gets_a_5xx(gateway, known_ids):
    openapi = gateway.app.openapi()
    ops = operations(openapi)
    bodies = {(method, path) for method, path, op in ops if "requestBody" in op}
    assert {("post", "/api/v1/leads"), ("post", "/api/v1/leads:batch"), ("post", "/api/v1/interactions"),
            ("post", "/api/v1/campaigns"), ("patch", "/api/v1/campaigns/{campaign_id}"),
            ("post", "/api/v1/keys")} <= bodies, bodies
    run = run_in_loop(asyncio.get_running_loop())

    async with gateway.client() as http:
        async def send(method: str, url: str, body: Any) -> tuple[int, str]:
            content = None if body is None else to_json(body)
            response = await http.request(method.upper(), url, content=content, headers=JSON if content else None)
            return response.status_code, response.text

        def check_of(method: str, path: str, op: dict[str, Any]) -> Callable[[], None]:
            @FUZZ
            @given(request_strategy(op, openapi, known_ids))
            def check(request: tuple[dict[str, str], dict[str, Any], Any]) -> None:
                path_values, query, body = request
                status, text = run(send(method, _url(path, path_values, query), body))
                assert status < 500, f"{method.upper()} {path} answered {status}: {text[:500]}"
                if status == 422:
                    assert all(e["field"] for e in json.loads(text)["error"]["details"]), text

            return check

        checks = [(f"{method.upper()} {path}", check_of(method, path, op)) for method, path, op in ops]
        failures = await asyncio.to_thread(check_all, checks)
    assert not failures, "\n\n".join(failures)


async def test_no_mcp_tool_arguments_get_a_5xx_or_crash_the_tool(gateway, known_ids):
    run = run_in_loop(asyncio.get_running_loop())
    ids = itertools.count(1)
    async with gateway.client() as http:
        listed = await http.post("/mcp", headers=MCP, json={"jsonrpc": "2.0", "id": 0, "method": "tools/list"})
        tools = {t["name"]: t["inputSchema"] for t in listed.json()["result"]["tools"]}
        assert set(tools) == {t.name for t in TOOLS}

        async def call(name: str, arguments: Any) -> tuple[int, str]:
            message = {"jsonrpc": "2.0", "id": next(ids), "method": "tools/call",
                       "params": {"name": name, "arguments": arguments}}
            response = await http.post("/mcp", headers=MCP, content=to_json(message))
            return response.status_code, response.text

        def check_of(name: str, schema: dict[str, Any]) -> Callable[[], None]:
            known = st.fixed_dictionaries({}, optional={k: st.just(v) for k, v in known_ids.items()
                                                        if k in schema.get("properties", {})})
            arguments = from_schema(schema, schema) | st.builds(lambda a, b: {**a, **b} if isinstance(a, dict) else a,
                                                                from_schema(schema, schema), known)

            @FUZZ
            @given(arguments)
            def check(args: Any) -> None:
                status, text = run(call(name, args))
                assert status < 500, f"{name} answered HTTP {status}: {text[:500]}"
                answer = json.loads(text)
                assert answer.get("error", {}).get("code") != -32603, f"{name}: internal error {text[:500]}"
                result = answer.get("result") or {}
                crashed = [c for c in result.get("content", []) if c.get("text") == f"Error executing tool {name}"]
                assert not crashed, f"{name} crashed (the SDK's bare tool error): {text[:500]}"

            return check

        failures = await asyncio.to_thread(check_all, [(name, check_of(name, schema)) for name, schema in tools.items()])
    assert not failures, "\n\n".join(failures)
