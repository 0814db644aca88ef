"""Who may read MCP resources and call MCP tools, checked the same way on both paths in.

The SDK's middleware (``mcp.server``) refuses a tool call before it runs, as JSON-RPC -32003; these
checks run again in the handlers because in-cluster agents call the ``McpServer`` deployment
directly, past the middleware. The roles themselves are ``domain.access``'s, shared with the HTTP API
and the WebSocket gateway.
"""

from __future__ import annotations

from marketing_agents.domain.access import ALL_ROLES
from marketing_agents.errors import RequestError
from marketing_agents.mcp.catalog import ToolSpec


class Forbidden(RequestError):
    status_code = 403
    code = "forbidden"


def authorize_resource(role: str | None) -> None:
    if role not in ALL_ROLES:
        raise Forbidden("authenticate with an API key to read MCP resources", {"role": role})


def authorize_tool(role: str | None, spec: ToolSpec) -> None:
    if role not in spec.roles:
        raise Forbidden(f"the {role or 'anonymous'} role may not call '{spec.name}' "
                        f"(allowed: {', '.join(sorted(spec.roles))})",
                        {"tool": spec.name, "role": role, "allowed_roles": sorted(spec.roles)})
