"""Who may read MCP resources and call MCP tools: the REST policy's answer for the request each equals.

MCP is another way in to the same data, so it has no rules of its own: every resource and tool names
the REST request that reads or writes what it does (``REST_EQUIVALENTS``), and its roles are
``domain.access.allowed_roles`` of that request. A viewer reads through MCP exactly what it reads
through REST: a lead's interactions, sessions, conversations and episodes are everything held about a
person, which REST gives only with the export (operator and admin). What has no REST route (the
knowledge graph, the aggregate insights) equals the ``/mcp`` rule itself. A resource or tool with no
entry is refused to everyone (deny by default).

The SDK's middleware (``mcp.server``) refuses a tool call before it runs, as JSON-RPC -32003; these
checks run again in the handlers because in-cluster agents call the ``McpServer`` deployment
directly, past the middleware.
"""

from __future__ import annotations

from marketing_agents.domain.access import EXPORT, INTERACTIONS, MCP, Role, allowed_roles
from marketing_agents.errors import RequestError

# What a resource (by its catalog name) or a tool (by its name) equals in REST: (method, path template).
_PERSON = ("GET", EXPORT)
_MCP_ONLY = ("GET", MCP)
REST_EQUIVALENTS: dict[str, tuple[str, str]] = {
    # resources
    "leads": ("GET", "/api/v1/leads"),
    "leads-page": ("GET", "/api/v1/leads"),
    "lead": ("GET", "/api/v1/leads/{lead_id}"),
    "campaigns": ("GET", "/api/v1/campaigns"),
    "campaigns-page": ("GET", "/api/v1/campaigns"),
    "campaign": ("GET", "/api/v1/campaigns/{campaign_id}"),
    "interactions": ("GET", INTERACTIONS),
    "knowledge-graph": _MCP_ONLY,
    "graph-node": _MCP_ONLY,
    "graph-neighbours": _MCP_ONLY,
    "industry-channels": _MCP_ONLY,
    "graph-path": _MCP_ONLY,
    "graph-kind": _MCP_ONLY,
    "short-term": _PERSON,
    "episodic-insights": _MCP_ONLY,
    "similar-episodes": _PERSON,  # other leads' episodes: their context and what was done to them
    "lead-episodes": _PERSON,
    # tools
    "triage_lead": ("POST", "/api/v1/leads"),
    "triage_leads": ("POST", "/api/v1/leads:batch"),
    "score_leads": ("GET", "/api/v1/leads/{lead_id}"),
    "plan_engagement": ("GET", "/api/v1/leads/{lead_id}"),
    "query_graph": _MCP_ONLY,
    "analyse_campaign": ("GET", "/api/v1/campaigns/{campaign_id}/performance"),
    "search_episodes": _PERSON,
}


class Forbidden(RequestError):
    status_code = 403
    code = "forbidden"


def roles_for(name: str) -> frozenset[str]:
    """The roles that may read the resource or call the tool ``name`` (empty for an unknown name)."""
    equivalent = REST_EQUIVALENTS.get(name)
    if equivalent is None:
        return frozenset()
    return frozenset(role.value for role in allowed_roles(*equivalent))


def authorize_resource(role: str | None, name: str, uri: str) -> None:
    if role not in {r.value for r in Role}:
        raise Forbidden("authenticate with an API key to read MCP resources", {"role": role})
    allowed = roles_for(name)
    if role not in allowed:
        raise Forbidden(f"the {role} role may not read '{uri}' (allowed: {', '.join(sorted(allowed))})",
                        {"resource": name, "role": role, "allowed_roles": sorted(allowed)})


def authorize_tool(role: str | None, name: str) -> None:
    allowed = roles_for(name)
    if role not in allowed:
        raise Forbidden(f"the {role or 'anonymous'} role may not call '{name}' "
                        f"(allowed: {', '.join(sorted(allowed))})",
                        {"tool": name, "role": role, "allowed_roles": sorted(allowed)})
