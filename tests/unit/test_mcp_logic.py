"""The MCP layer's pure logic: URI matching, roles, tool schemas, cursors, Origin patterns, JSON-RPC envelopes."""

from __future__ import annotations

from uuid import uuid4

import pytest
from mcp.shared.uri_template import UriTemplate

from marketing_agents.domain.graph import NodeKind
from marketing_agents.errors import NotFound
from marketing_agents.mcp.authorization import Forbidden, authorize_resource, authorize_tool
from marketing_agents.mcp.catalog import RESOURCES, TOOLS, match_resource
from marketing_agents.mcp.handlers import graph_id, tool_arguments_model, tool_description
from marketing_agents.mcp.server import envelope_problem, origin_allowed, role_of


def test_every_resource_uri_matches_itself_and_the_seed_families_are_there():
    for spec in RESOURCES:
        if not spec.is_template:
            assert match_resource(spec.uri)[0] is spec
            continue
        template = UriTemplate.parse(spec.uri)
        values = {name: ("industry:software" if "node" in name else "5") for name in template.variable_names}
        matched, params = match_resource(template.expand(values))
        assert matched.method == spec.method
        assert {k: v for k, v in params.items() if v} == values
    prefixes = {spec.uri.split("{")[0].rstrip("/") for spec in RESOURCES}
    assert {"db://leads", "db://campaigns", "db://interactions", "kg://semantic", "memory://short-term",
            "memory://episodic"} <= prefixes


def test_an_unknown_uri_is_not_found():
    with pytest.raises(NotFound, match="unknown resource"):
        match_resource("db://nothing/here")
    with pytest.raises(NotFound):
        match_resource("db://leads/a/b")


EVERYONE = {"admin", "operator", "service", "viewer"}
WRITERS = {"admin", "operator", "service"}
DECIDERS = {"admin", "operator"}
# Each resource and tool with the roles that may use it: what REST allows for the same data.
EXPECTED_ROLES = {
    "leads": EVERYONE, "leads-page": EVERYONE, "lead": EVERYONE, "campaigns": EVERYONE,
    "campaigns-page": EVERYONE, "campaign": EVERYONE, "knowledge-graph": EVERYONE, "graph-node": EVERYONE,
    "graph-neighbours": EVERYONE, "industry-channels": EVERYONE, "graph-path": EVERYONE, "graph-kind": EVERYONE,
    "episodic-insights": EVERYONE,
    # a person's interactions, sessions, conversations and episodes: what REST gives only with the export
    "interactions": DECIDERS, "short-term": DECIDERS, "similar-episodes": DECIDERS, "lead-episodes": DECIDERS,
    "triage_lead": WRITERS, "triage_leads": WRITERS,
    "score_leads": EVERYONE, "plan_engagement": EVERYONE, "query_graph": EVERYONE, "analyse_campaign": EVERYONE,
    "search_episodes": DECIDERS,
}


def test_every_resource_and_tool_has_the_roles_rest_gives_for_the_same_data():
    assert {spec.name for spec in RESOURCES} | {tool.name for tool in TOOLS} == set(EXPECTED_ROLES), \
        "a new resource or tool needs its REST equivalent in mcp.authorization and its roles here"
    for spec in RESOURCES:
        for role in EVERYONE:
            if role in EXPECTED_ROLES[spec.name]:
                authorize_resource(role, spec.name, spec.uri)
            else:
                with pytest.raises(Forbidden, match=f"the {role} role may not read"):
                    authorize_resource(role, spec.name, spec.uri)
        for role in (None, "", "guest"):
            with pytest.raises(Forbidden):
                authorize_resource(role, spec.name, spec.uri)
    for tool in TOOLS:
        assert tool.roles == EXPECTED_ROLES[tool.name]
        for role in EVERYONE:
            if role in EXPECTED_ROLES[tool.name]:
                authorize_tool(role, tool.name)
            else:
                with pytest.raises(Forbidden, match=f"{role} role may not call '{tool.name}'"):
                    authorize_tool(role, tool.name)


def test_a_resource_or_tool_without_a_rest_equivalent_is_refused_to_everyone():
    from marketing_agents.mcp.authorization import roles_for

    assert roles_for("no_such_tool") == frozenset()
    with pytest.raises(Forbidden):
        authorize_tool("admin", "no_such_tool")


def test_tool_arguments_are_the_methods_parameters_and_forbid_extras():
    assert list(tool_arguments_model("triage_lead").model_fields) == ["lead", "idempotency_key"]
    schema = tool_arguments_model("score_leads").model_json_schema()
    assert schema["properties"]["lead_ids"]["anyOf"][0]["maxItems"] == 1000
    assert all(tool_description(tool.name) for tool in TOOLS)
    with pytest.raises(ValueError):
        tool_arguments_model("plan_engagement").model_validate({"lead_id": str(uuid4()), "extra": 1})


def test_graph_ids():
    assert graph_id(NodeKind.INDUSTRY, "Professional Services") == "industry:professional_services"
    assert graph_id(NodeKind.PERSONA, "persona:cto") == "persona:cto"


def test_origin_patterns():
    allowed = ["http://localhost:*", "https://app.example.com"]
    assert origin_allowed("http://localhost:8080", allowed)
    assert not origin_allowed("http://localhost.evil.com:8080", allowed)
    assert not origin_allowed("http://localhost:80x", allowed)
    assert not origin_allowed("http://localhost", allowed)
    assert origin_allowed("https://app.example.com", allowed)
    assert origin_allowed("https://app.example.com/", allowed)
    assert not origin_allowed("https://app.example.com.evil", allowed)
    assert origin_allowed("https://anything", ["*"])


@pytest.mark.parametrize("message, problem", [
    ({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, None),
    ({"jsonrpc": "2.0", "method": "notifications/initialized"}, None),
    ({"jsonrpc": "2.0", "id": "a", "result": {}}, None),
    ({"jsonrpc": "2.0", "id": 1}, "a request needs a method"),
    ({"jsonrpc": "1.0", "id": 1, "method": "x"}, 'jsonrpc must be "2.0"'),
    ({"jsonrpc": "2.0", "id": True, "method": "x"}, "id must be a string or a number"),
    ({"jsonrpc": "2.0", "id": 1, "method": 7}, "method must be a non-empty string"),
    ({"jsonrpc": "2.0", "id": 1, "method": "x", "params": "p"}, "params must be an object"),
    ([{"jsonrpc": "2.0", "id": 1, "method": "x"}], "JSON-RPC batches are not supported"),
    ("text", "the body must be a JSON-RPC 2.0 message object"),
])
def test_json_rpc_envelopes(message, problem):
    found = envelope_problem(message)
    assert found == problem if problem is None else problem in found


def test_the_role_is_read_from_a_principal_model_or_mapping():
    class Principal:
        role = NodeKind.INDUSTRY  # any StrEnum: its value is the role

    assert role_of(None) is None
    assert role_of({"role": "viewer"}) == "viewer"
    assert role_of(Principal()) == "industry"
