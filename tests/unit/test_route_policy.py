"""Every route of the gateway's FastAPI app has the roles it is meant to have, and the policy sees the
path the app routes on, under any Serve route_prefix.

The table below is the contract: a new route with no rule in ``domain.access.POLICY`` is refused to
everyone (deny by default), and a route missing here fails the first test, so no route gets its roles by
accident."""

from __future__ import annotations

import re
import uuid
from types import SimpleNamespace

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Mount, Route

from marketing_agents.domain.access import WEBSOCKET, Principal, Role, Rule, allowed_roles, caller, is_public, routed_path
from marketing_agents.serve_app.gateway import build_api
from marketing_agents.settings import Settings
from marketing_agents.stores.connections import StoreConnections

EVERYONE = {"admin", "operator", "service", "viewer"}
WRITERS = {"admin", "operator", "service"}
DECIDERS = {"admin", "operator"}
ADMIN = {"admin"}
PUBLIC = "public"

EXPECTED: dict[tuple[str, str], set[str] | str] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/console"): PUBLIC,  # the console's page and scripts hold no data; the API asks for the key
    ("GET", "/console/{path}"): PUBLIC,
    ("POST", "/api/v1/keys"): ADMIN,
    ("GET", "/api/v1/keys"): ADMIN,
    ("GET", "/api/v1/keys/{key_id}"): ADMIN,
    ("DELETE", "/api/v1/keys/{key_id}"): ADMIN,
    ("GET", "/api/v1/audit"): ADMIN,
    ("POST", "/api/v1/interactions"): WRITERS,
    ("POST", "/api/v1/campaigns"): WRITERS,
    ("GET", "/api/v1/campaigns"): EVERYONE,
    ("GET", "/api/v1/campaigns/{campaign_id}"): EVERYONE,
    ("PATCH", "/api/v1/campaigns/{campaign_id}"): WRITERS,
    ("POST", "/api/v1/campaigns/{campaign_id}/metrics"): WRITERS,
    ("GET", "/api/v1/campaigns/{campaign_id}/performance"): EVERYONE,
    ("POST", "/api/v1/campaigns/{campaign_id}/optimize"): WRITERS,
    ("GET", "/api/v1/campaigns/{campaign_id}/optimizations"): EVERYONE,
    ("GET", "/api/v1/optimizations/{optimization_id}"): EVERYONE,
    ("POST", "/api/v1/optimizations/{optimization_id}/approve"): DECIDERS,
    ("POST", "/api/v1/optimizations/{optimization_id}/rollback"): DECIDERS,
    ("GET", "/api/v1/escalations"): EVERYONE,
    ("POST", "/api/v1/escalations/{escalation_id}/acknowledge"): DECIDERS,
    ("POST", "/api/v1/leads:batch"): WRITERS,
    ("GET", "/api/v1/leads"): EVERYONE,
    ("POST", "/api/v1/leads"): WRITERS,
    ("GET", "/api/v1/leads/{lead_id}"): EVERYONE,
    ("DELETE", "/api/v1/leads/{lead_id}"): ADMIN,
    ("GET", "/api/v1/leads/{lead_id}/profile"): EVERYONE,
    ("GET", "/api/v1/leads/{lead_id}/export"): DECIDERS,
    ("GET", "/api/v1/leads/{lead_id}/interactions"): DECIDERS,
    ("POST", "/api/v1/leads/{lead_id}/unsubscribe"): WRITERS,
    ("PATCH", "/api/v1/leads/{lead_id}"): WRITERS,
    ("GET", "/api/v1/review-queues"): EVERYONE,
    ("GET", "/api/v1/review-queues/{name}/leads"): EVERYONE,
    ("POST", "/api/v1/leads/{lead_id}/claim"): DECIDERS,
    ("DELETE", "/api/v1/leads/{lead_id}/claim"): DECIDERS,
    ("POST", "/api/v1/leads/{lead_id}/review"): DECIDERS,
    ("GET", "/api/v1/me"): EVERYONE,
    ("GET", "/api/v1/models"): EVERYONE,
    ("POST", "/api/v1/models/rollback"): DECIDERS,
    ("POST", "/api/v1/models/{version}/promote"): DECIDERS,
    ("POST", "/api/v1/memory/consolidate"): DECIDERS,
    ("GET", "/api/v1/system/status"): EVERYONE,
    ("GET", "/metrics"): EVERYONE,
    (WEBSOCKET, "/ws"): EVERYONE,
    # the MCP server checks each resource and tool itself, from the same table (mcp.authorization)
    ("GET", "/mcp"): EVERYONE,
    ("POST", "/mcp"): EVERYONE,
    ("DELETE", "/mcp"): EVERYONE,
}


def the_app():
    """The gateway's app with every optional part installed; nothing here opens a store."""
    present = object()
    gateway = SimpleNamespace(_mcp=present, _models=present, _campaigns=present, _feedback=present,
                              _dispatcher=present, _orchestrator=present, _consolidator=present,
                              _stores=StoreConnections(Settings()), _max_body_bytes=1024 * 1024,
                              system_status=present)
    return build_api(gateway)


def requests_of(app) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        if isinstance(route, APIWebSocketRoute):
            found.append((WEBSOCKET, route.path))
        elif isinstance(route, APIRoute | Route):
            methods = route.methods or {"GET", "POST", "DELETE"}  # a plain ASGI endpoint (/mcp) takes any
            found += [(method, route.path) for method in methods if method != "HEAD"]
        elif isinstance(route, Mount):  # static files: read only
            found.append(("GET", f"{route.path}/{{path}}"))
    return found


def concrete(template: str) -> str:
    """A path the template routes, with each {name} filled in."""
    return re.sub(r"\{[^}]+\}", "6f1c0d4e-2a57-4f35-9a0c-0d5b2bb0c2a1", template)


def roles_of(method: str, path: str) -> set[str] | str:
    if method == "GET" and is_public(path):
        return PUBLIC
    return {role.value for role in allowed_roles(method, path)}


def test_every_route_of_the_app_has_its_expected_roles():
    requests = requests_of(the_app())
    assert set(requests) == set(EXPECTED), "a route was added or removed: give it its roles in POLICY and here"
    for method, template in requests:
        assert roles_of(method, concrete(template)) == EXPECTED[(method, template)], (method, template)


@pytest.mark.parametrize("prefix", ["", "/marketing", "/a/b"])
def test_the_policy_is_matched_on_the_routed_path_under_any_route_prefix(prefix):
    for (method, template), expected in EXPECTED.items():
        path = routed_path(prefix + concrete(template), prefix)
        assert roles_of(method, path) == expected, (prefix, method, template)


def test_a_request_no_rule_names_is_refused_to_everyone():
    for method, path in (("PUT", "/somewhere/unlisted"), ("POST", "/api/v1/leads/x/export"),
                         ("GET", "/api/v1/nothing"), ("DELETE", "/api/v1/campaigns/c1")):
        assert allowed_roles(method, path) == frozenset(), (method, path)


@pytest.mark.parametrize("path, root_path, routed", [
    ("/api/v1/keys", "", "/api/v1/keys"),
    ("/marketing/api/v1/keys", "/marketing", "/api/v1/keys"),
    ("/marketing", "/marketing", "/"),
    ("/marketing/", "/marketing/", "/"),
    ("/marketingx/api", "/marketing", "/marketingx/api"),  # not under the root: left as it is
    ("/api/v1/keys", "/marketing", "/api/v1/keys"),  # a server that already strips the prefix
])
def test_the_routed_path_is_the_path_below_the_root_path(path, root_path, routed):
    assert routed_path(path, root_path) == routed


@pytest.mark.parametrize("role", sorted(EVERYONE))
def test_the_policy_a_client_gets_from_me_allows_exactly_what_the_api_allows(role):
    """The console decides which controls to show from GET /api/v1/me's policy, matching it the way the
    server matches POLICY (first match wins): for every route, it must come to the server's answer."""
    me = caller(Principal(key_id=uuid.uuid4(), name="someone", role=Role(role)))
    for (method, template), expected in EXPECTED.items():
        if expected == PUBLIC:
            continue
        segments = [s for s in concrete(template).split("/") if s]
        first = next((entry for entry in me.policy if (entry.methods is None or method in entry.methods)
                      and Rule(None, entry.pattern, frozenset()).matches(method, segments)), None)
        assert (first is not None and first.allowed) == (role in expected), (role, method, template)
