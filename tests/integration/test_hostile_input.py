"""Bad but valid-looking input through the gateway's whole app (in-process ASGI, real PostgreSQL and
Valkey): names that would break an email header, and JSON that parses but no store can take (NaN,
Infinity, NUL, lone surrogates, integers beyond 64 bits, huge offsets, deep nesting). Each is a 422 (or
JSON-RPC's error on /mcp) naming the field, stores nothing, and never echoes the value into the answer
or the log."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from marketing_agents.domain.json_input import MAX_JSON_DEPTH
from tests.gateway_support import gateway_app
from tests.support import lead_payload

JSON = {"Content-Type": "application/json"}
MCP = {**JSON, "Accept": "application/json, text/event-stream"}
SECRET = "Zebulon"  # a value that must never come back in an answer or a log line


@pytest.fixture
async def gateway(migrated, pool, repository):
    async with gateway_app(migrated, pool, repository, models=None) as gateway:
        yield gateway


@pytest.fixture
async def http(gateway):
    async with gateway.client() as client:
        yield client


def lead(**overrides) -> dict:
    return lead_payload(**{"email": f"hostile-{uuid.uuid4().hex[:10]}@acme-robotics.com", **overrides})


def fields(response) -> list[str]:
    return [e["field"] for e in response.json()["error"]["details"]]


async def lead_count(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM leads")


# ---- item 3: names reach email subjects and headers: one line, no control characters ----

NAME_FIELDS = ("first_name", "last_name", "company", "job_title", "industry")
BREAKING = ("\n", "\r", "\u2028", "\u2029", "\u0085", "\x1b", "\t", "\x7f", "\x00")


async def test_a_control_or_line_separator_character_in_a_name_is_422_naming_the_field(http, pool):
    before = await lead_count(pool)
    for field in NAME_FIELDS:
        for char in BREAKING:
            response = await http.post("/api/v1/leads", json=lead(**{field: f"{SECRET}{char}Bcc: all@example.com"}))
            assert response.status_code == 422, (field, char, response.text)
            assert fields(response) == [field], (field, char)
            assert SECRET not in response.text
    assert await lead_count(pool) == before
    accepted = await http.post("/api/v1/leads", json=lead(first_name="  José-María ", company="Müller & Söhne"))
    assert accepted.status_code == 200, accepted.text
    assert (await http.get(f"/api/v1/leads/{accepted.json()['lead_id']}")).json()["lead"]["first_name"] == "José-María"


async def test_the_same_rule_holds_for_each_lead_of_a_batch_and_for_the_mcp_tool(http, pool):
    batch = await http.post("/api/v1/leads:batch",
                            json={"leads": [lead(), lead(first_name="Jane\u2028Subject: win")]})
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["status"] for r in results] == ["stored", "invalid"]
    assert [e["field"] for e in results[1]["error"]["details"]] == ["first_name"]

    before = await lead_count(pool)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "triage_lead", "arguments": {"lead": lead(company="Acme\r\nBcc: x@y.z")}}}
    answer = (await http.post("/mcp", json=call, headers=MCP)).json()
    assert answer["result"]["isError"] is True
    assert "company" in answer["result"]["content"][0]["text"]
    assert await lead_count(pool) == before


# ---- item 16: JSON that parses but cannot be stored ----

HOSTILE_LEADS = [
    ('"attributes": {"score": NaN}', "attributes.score", "json_not_finite"),
    ('"attributes": {"score": -Infinity}', "attributes.score", "json_not_finite"),
    ('"attributes": {"score": 1e400}', "attributes.score", "json_not_finite"),
    ('"attributes": {"seats": 1180591620717411303424}', "attributes.seats", "json_int_too_big"),
    (f'"company_size": {"9" * 5000}', "company_size", "json_int_too_big"),
    ('"company": "Zebulon\\u0000Corp"', "company", "json_unstorable_string"),
    ('"first_name": "Zebulon\\ud800"', "first_name", "json_unstorable_string"),
    ('"attributes": {"note": "Zebulon\\udfff"}', "attributes.note", "json_unstorable_string"),
    ('"external_id": "Zebulon\\u0000"', "external_id", "json_unstorable_string"),
]


@pytest.mark.parametrize(("member", "field", "type_"), HOSTILE_LEADS)
async def test_a_value_no_store_can_take_is_422_naming_the_field_and_not_logged(http, pool, caplog, member, field,
                                                                                type_):
    body = json.dumps(lead())[:-1] + ", " + member + "}"  # the member last: it wins over the payload's own
    before = await lead_count(pool)
    with caplog.at_level(logging.DEBUG):
        response = await http.post("/api/v1/leads", content=body, headers=JSON)
    assert response.status_code == 422, response.text
    assert [(e["field"], e["location"], e["type"]) for e in response.json()["error"]["details"]] == [
        (field, "body", type_)]
    assert SECRET not in response.text and SECRET not in caplog.text
    assert await lead_count(pool) == before


async def test_every_body_gets_the_rule_campaign_metrics_interactions_and_batches(http):
    campaign = await http.post("/api/v1/campaigns", json={"name": "Fuzz", "channels": ["email"], "budget": "10.00",
                                                         "start_date": "2026-03-01"})
    assert campaign.status_code == 201, campaign.text
    metrics = ('{"rows": [{"variant": "A", "channel": "email", "metric_date": "2026-03-01", '
               '"impressions": 1180591620717411303424, "clicks": 1, "conversions": 0, "spend": "1", "revenue": "0"}]}')
    refused = await http.post(f"/api/v1/campaigns/{campaign.json()['id']}/metrics", content=metrics, headers=JSON)
    assert refused.status_code == 422, refused.text
    assert fields(refused) == ["rows.0.impressions"]

    interaction = ('{"lead_id": "' + str(uuid.uuid4()) + '", "type": "reply", "channel": "email", '
                   '"occurred_at": "2026-03-02T10:00:00Z", "attributes": {"text": "Zebulon\\u0000"}}')
    refused = await http.post("/api/v1/interactions", content=interaction, headers=JSON)
    assert refused.status_code == 422, refused.text
    assert fields(refused) == ["attributes.text"]

    batch = '{"leads": [' + json.dumps(lead()) + ', {"first_name": NaN}]}'
    refused = await http.post("/api/v1/leads:batch", content=batch, headers=JSON)
    assert refused.status_code == 422 and fields(refused) == ["leads.1.first_name"]


async def test_nul_in_a_query_or_path_and_huge_offsets_or_ids_are_422(http):
    for path, params, field in [
        ("/api/v1/leads", {"industry": "Soft\x00ware"}, "industry"),
        ("/api/v1/campaigns", {"offset": str(2**70)}, "offset"),
        ("/api/v1/campaigns", {"offset": "1000000000"}, "offset"),
        ("/api/v1/audit", {"before_id": str(2**70)}, "before_id"),
        ("/api/v1/models/v1%00/promote", {}, "version"),
    ]:
        method = http.post if path.endswith("promote") else http.get
        response = await method(path, params=params)
        assert response.status_code == 422, (path, response.text)
        assert fields(response) == [field], path


async def test_deep_nesting_is_422_on_rest_and_a_json_rpc_parse_error_on_mcp(http):
    for depth in (MAX_JSON_DEPTH + 1, 100_000):
        nested = "[" * depth + "]" * depth
        rest = await http.post("/api/v1/leads", content='{"attributes": ' + nested + "}", headers=JSON)
        assert rest.status_code == 422, rest.text
        assert rest.json()["error"]["details"][0]["type"] == "json_too_deep"

        rpc = await http.post("/mcp", headers=MCP, content='{"jsonrpc": "2.0", "id": 1, "method": "tools/call", '
                              '"params": {"name": "query_graph", "arguments": {"query": ' + nested + "}}}")
        assert rpc.status_code == 400, rpc.text
        assert rpc.json()["error"]["code"] == -32700


async def test_mcp_refuses_unstorable_arguments_with_invalid_params_naming_the_place(http, pool, caplog):
    before = await lead_count(pool)
    arguments = json.dumps({"lead": lead()})[:-2] + ', "first_name": "Zebulon\\u0000"}}'
    body = ('{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "triage_lead", "arguments": '
            + arguments + "}}")
    with caplog.at_level(logging.DEBUG):
        answer = await http.post("/mcp", content=body, headers=MCP)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], answer.json()["id"]) == (-32602, 7)
    assert [e["field"] for e in error["data"]["errors"]] == ["params.arguments.lead.first_name"]
    assert SECRET not in answer.text and SECRET not in caplog.text
    assert await lead_count(pool) == before

    nan = ('{"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "score_leads", '
           '"arguments": {"leads": [{"company_size": NaN}]}}}')
    answer = await http.post("/mcp", content=nan, headers=MCP)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == -32700
