"""The MCP server: the official SDK's ``MCPServer`` over our handlers, at ``/mcp`` (Streamable HTTP).

    POST /mcp ─► McpEndpoint: Origin check (403), an authenticated principal (401)
              ─► the SDK's session manager (stateless, JSON responses): JSON-RPC parsing, the protocol
                 version (2025-11-25 handshake or 2026-07-28 per-request), -32700/-32600/-32601/-32602
              ─► middleware: unknown tool -32602, a role that may not call the tool -32003
              ─► resource/tool functions generated from catalog.RESOURCES / catalog.TOOLS
              ─► backend.read_resource(uri, role) / backend.call_tool(name, args, role)

The backend is anything with the two entry points of ``handlers.McpServer``: the ``McpServer`` Serve
deployment's handle in the cluster (``serve_app.mcp_app``), or a ``handlers.McpServer`` in-process
(tests). Not to be confused with the SDK's ``MCPServer`` built here, which speaks the protocol and
calls the backend. Listing resources, templates and tools needs no backend: they come from
``mcp.catalog``'s tables.

Stateless mode keeps no session between requests, so any gateway replica can answer any request.

Authentication is the access-control middleware's: it authenticates the request and puts the caller
in ``scope["state"]["principal"]`` (with a ``role``). A request that reaches ``/mcp`` without one is
refused with 401, so the MCP server is never open even where that middleware is missing.
``MAS_MCP_ALLOWED_ORIGINS`` (comma-separated; ``*`` for any, ``http://host:*`` for any port) lists the
browser origins allowed; a request with no Origin header (not from a browser) is allowed.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Protocol
from uuid import UUID

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.shared.uri_template import UriTemplate
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    CallToolResult,
    ErrorData,
    JSONRPCError,
    TextContent,
    ToolAnnotations,
)
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

import marketing_agents
from marketing_agents.domain.field_errors import field_errors
from marketing_agents.domain.json_input import JsonProblem, UnsafeJson, decode_json
from marketing_agents.domain.limits import INT64_MAX
from marketing_agents.domain.text import storable_problem
from marketing_agents.errors import MarketingAgentsError, RequestError
from marketing_agents.mcp.authorization import Forbidden
from marketing_agents.mcp.catalog import RESOURCES, TOOLS, TOOLS_BY_NAME, ResourceSpec, ToolSpec
from marketing_agents.mcp.handlers import tool_description, tool_signature

PATH = "/mcp"
# Implementation-defined JSON-RPC server error (-32000..-32019 are the implementation's; the SDK
# uses -32000 and -32001 itself): the caller is authenticated but its role may not do this.
FORBIDDEN = -32003
DEFAULT_ALLOWED_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*",
                           "https://localhost:*", "https://127.0.0.1:*", "https://[::1]:*",
                           "http://localhost", "http://127.0.0.1", "https://localhost", "https://127.0.0.1")
INSTRUCTIONS = (
    "Marketing multi-agent system. Read leads, campaigns, interactions, the knowledge graph and the memory "
    "tiers as resources (db://, kg://, memory://); triage_lead and triage_leads run the real lead flow and "
    "store what they do; the other tools only read. Tools that take lists are the way to send batches."
)

_role: ContextVar[str | None] = ContextVar("mcp_caller_role", default=None)
# Where a tool that failed leaves its error's status and code for the audit (a dict, so that the
# middleware sees what the tool wrote even if the SDK ran it in a copy of the context).
_caller: ContextVar[UUID | None] = ContextVar("mcp_caller_key", default=None)
_failure: ContextVar[dict[str, Any] | None] = ContextVar("mcp_tool_failure", default=None)
AUDITED_METHODS = ("tools/call", "resources/read")
# A JSON-RPC error's status in the audit, as the HTTP API would answer the same refusal.
_JSONRPC_STATUS = {FORBIDDEN: 403, INVALID_PARAMS: 422, INVALID_REQUEST: 400, -32601: 404, -32700: 400}
_CODE_STATUS = {"not_found": 404, "conflict": 409, "forbidden": 403, "storage_unavailable": 503}


class Backend(Protocol):
    async def read_resource(self, uri: str, role: str | None) -> Any: ...

    async def call_tool(self, name: str, args: dict[str, Any], role: str | None, caller: UUID | None) -> Any: ...


# ---- who is calling ----

def principal_of(scope: Mapping[str, Any]) -> Any:
    state = scope.get("state")
    return state.get("principal") if isinstance(state, Mapping) else None


def key_id_of(principal: Any) -> UUID | None:
    key_id = principal.get("key_id") if isinstance(principal, Mapping) else getattr(principal, "key_id", None)
    return key_id if isinstance(key_id, UUID) else None


def role_of(principal: Any) -> str | None:
    if principal is None:
        return None
    role = principal.get("role") if isinstance(principal, Mapping) else getattr(principal, "role", None)
    return None if role is None else str(getattr(role, "value", role))


async def authorize(ctx, call_next):
    """SDK middleware: remembers the caller's role for this request; refuses unknown tools (-32602)
    and tools the role may not call (-32003) before anything runs; audits each tool call and resource
    read with its name and outcome (:func:`audited`)."""
    request = ctx.request
    role = role_of(principal_of(request.scope)) if request is not None else None
    token = _role.set(role)
    caller_token = _caller.set(key_id_of(principal_of(request.scope)) if request is not None else None)
    failure: dict[str, Any] = {}
    failure_token = _failure.set(failure)
    try:
        result = await _authorized(ctx, call_next, role)
    except MCPError as exc:
        data = exc.error.data if isinstance(exc.error.data, Mapping) else {}
        code = str(data.get("code") or ("forbidden" if exc.code == FORBIDDEN else exc.code))
        audited(ctx, _CODE_STATUS.get(code) or _JSONRPC_STATUS.get(exc.code, 500), code)
        raise
    except Exception:
        audited(ctx, 500, "internal_error")
        raise
    else:
        is_error = result.get("isError") if isinstance(result, Mapping) else getattr(result, "is_error", False)
        if is_error:
            audited(ctx, failure.get("status", 422), failure.get("code", "tool_error"))
        else:
            audited(ctx, 200, "ok")
        return result
    finally:
        _failure.reset(failure_token)
        _role.reset(token)
        _caller.reset(caller_token)


def audited(ctx, status: int, outcome: str) -> None:
    """One row in the API audit for a tool call or a resource read: method ``MCP``, path the JSON-RPC
    method and the tool's name or the resource's URI (with `` -> <code>`` when it failed), and the
    status the HTTP API would have answered. The access-control middleware leaves the recorder in
    ``scope["state"]["audit"]``; without it (in-process tests, in-cluster callers) nothing is written."""
    request = ctx.request
    state = request.scope.get("state") if request is not None else None
    record = state.get("audit") if isinstance(state, Mapping) else None
    if record is None or ctx.method not in AUDITED_METHODS or ctx.request_id is None:
        return
    params = ctx.params if isinstance(ctx.params, Mapping) else {}
    target = params.get("name") if ctx.method == "tools/call" else params.get("uri")
    path = f"{ctx.method} {str(target)[:500]}" + ("" if outcome == "ok" else f" -> {outcome}")
    record("MCP", path, status)


async def _authorized(ctx, call_next, role: str | None) -> Any:
    if ctx.method == "tools/call" and ctx.request_id is not None and isinstance(ctx.params, Mapping):
        name = ctx.params.get("name")
        if isinstance(name, str):
            spec = TOOLS_BY_NAME.get(name)
            if spec is None:
                raise MCPError(INVALID_PARAMS, f"Unknown tool: {name}",
                               {"tool": name, "known": sorted(TOOLS_BY_NAME)})
            if role not in spec.roles:
                raise MCPError(FORBIDDEN, f"Forbidden: the {role or 'anonymous'} role may not call '{name}'",
                               {"tool": name, "role": role, "allowed_roles": sorted(spec.roles)})
    return await call_next(ctx)


# ---- the SDK server, generated from the catalog's tables ----

def build_server(backend: Backend) -> MCPServer:
    server = MCPServer("marketing-agents", title="Marketing agents", version=marketing_agents.__version__,
                       instructions=INSTRUCTIONS, middleware=[authorize])
    for spec in RESOURCES:
        _add_resource(server, spec, backend)
    for tool in TOOLS:
        _add_tool(server, tool, backend)
    return server


def _add_resource(server: MCPServer, spec: ResourceSpec, backend: Backend) -> None:
    template = UriTemplate.parse(spec.uri) if spec.is_template else None

    async def read(**params: str | None) -> str:
        # The template's own expansion of the values the SDK matched: the same resource the client named.
        uri = template.expand({k: v for k, v in params.items() if v is not None}) if template else spec.uri
        try:
            data = await backend.read_resource(uri, _role.get())
        except Forbidden as exc:
            raise MCPError(FORBIDDEN, f"Forbidden: {exc.message}", exc.details) from None
        except RequestError as exc:  # an unknown id, a bad value in the URI
            raise MCPError(INVALID_PARAMS, exc.message, {"uri": uri, "code": exc.code, "details": exc.details}) \
                from None
        except MarketingAgentsError as exc:
            raise MCPError(INTERNAL_ERROR, exc.message, {"uri": uri, "code": exc.code}) from None
        return json.dumps(data, ensure_ascii=False)

    names = spec.parameters if template else []
    optional = spec.query_parameters
    parameters = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                    default=None if name in optional else inspect.Parameter.empty,
                                    annotation=str | None if name in optional else str) for name in names]
    _set_signature(read, spec.name.replace("-", "_"), inspect.Signature(parameters, return_annotation=str))
    server.resource(spec.uri, name=spec.name, title=spec.title, description=spec.description,
                    mime_type="application/json")(read)


def _add_tool(server: MCPServer, spec: ToolSpec, backend: Backend) -> None:
    async def call(**arguments: Any) -> dict[str, Any] | CallToolResult:
        try:
            return await backend.call_tool(spec.name, arguments, _role.get(), _caller.get())
        except Forbidden as exc:
            raise MCPError(FORBIDDEN, f"Forbidden: {exc.message}", exc.details) from None
        except MarketingAgentsError as exc:  # a tool execution error: the caller (often a model) reads it
            failure = _failure.get()
            if failure is not None:
                failure.update(status=exc.status_code, code=exc.code)
            error = {"code": exc.code, "message": exc.message, "details": exc.details}
            return CallToolResult(content=[TextContent(type="text", text=json.dumps(error, default=str))],
                                  is_error=True)

    _set_signature(call, spec.name, tool_signature(spec.name).replace(return_annotation=dict[str, Any]))
    server.add_tool(call, name=spec.name, title=spec.title, description=tool_description(spec.name),
                    annotations=ToolAnnotations(title=spec.title, read_only_hint=spec.read_only,
                                                destructive_hint=False, idempotent_hint=spec.idempotent,
                                                open_world_hint=False),
                    structured_output=True)


def _set_signature(fn, name: str, signature: inspect.Signature) -> None:
    """The SDK reads a function's parameters (for schemas and validation) from its signature."""
    fn.__name__ = fn.__qualname__ = name
    fn.__signature__ = signature
    fn.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()} | {
        "return": signature.return_annotation}


# ---- HTTP ----

def allowed_origins_from_env() -> list[str]:
    raw = os.environ.get("MAS_MCP_ALLOWED_ORIGINS")
    if raw is None or not raw.strip():
        return list(DEFAULT_ALLOWED_ORIGINS)
    return [origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip()]


def origin_allowed(origin: str, allowed: list[str]) -> bool:
    origin = origin.rstrip("/")
    for pattern in allowed:
        if pattern == "*" or origin == pattern:
            return True
        if pattern.endswith(":*"):
            base = pattern[:-2]
            port = origin[len(base) + 1:] if origin.startswith(base + ":") else ""
            if port.isdigit():
                return True
    return False


def _refusal(status: int, message: str, headers: dict[str, str] | None = None, request_id: Any = None,
             code: int = INVALID_REQUEST, data: Any = None) -> Response:
    body = JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message, data=data))
    return Response(body.model_dump_json(by_alias=True, exclude_unset=True), status_code=status,
                    media_type="application/json", headers=headers)


def unsafe_json_refusal(problems: list[JsonProblem], request_id: Any) -> Response:
    """JSON-RPC's answer to a message ``domain.json_input`` refuses: nesting too deep and NaN or
    Infinity (not JSON by RFC 8259) are -32700 Parse error; NUL, lone surrogates and integers beyond 64
    bits are -32602 Invalid params inside ``params``, else -32600 Invalid Request. ``data.errors``
    names each place as a 422 names a field (``params.arguments.lead.first_name``), never its value."""
    if any(p.type in ("json_too_deep", "json_not_finite") for p in problems):
        code, title = PARSE_ERROR, "Parse error"
    elif all(p.path[:1] == ("params",) for p in problems):
        code, title = INVALID_PARAMS, "Invalid params"
    else:
        code, title = INVALID_REQUEST, "Invalid Request"
    errors = field_errors([p.as_error() for p in problems], location="message")
    # An id is echoed only when it could be encoded: a refused string is no id to answer with.
    valid_id = (isinstance(request_id, int) and not isinstance(request_id, bool) and abs(request_id) <= INT64_MAX) or (
        isinstance(request_id, str) and storable_problem(request_id) is None)
    return _refusal(400, f"{title}: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                    request_id=request_id if valid_id and code != PARSE_ERROR else None, code=code,
                    data={"errors": errors})


def _request_id(body: bytes) -> Any:
    """The id of a message refused for its values, when its envelope still parses (for the answer)."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return message.get("id") if isinstance(message, dict) else None


def envelope_problem(message: Any) -> str | None:
    """Why a parsed body is not a JSON-RPC 2.0 request, notification or response (None when it is one).

    The SDK answers such bodies with -32602 on its handshake-era path; JSON-RPC 2.0 says -32600.
    """
    if isinstance(message, list):
        return "JSON-RPC batches are not supported by MCP; send one message per request"
    if not isinstance(message, dict):
        return "the body must be a JSON-RPC 2.0 message object"
    if message.get("jsonrpc") != "2.0":
        return 'jsonrpc must be "2.0"'
    if "id" in message and (isinstance(message["id"], bool) or not isinstance(message["id"], str | int)):
        return "id must be a string or a number"
    if "method" in message:
        if not isinstance(message["method"], str) or not message["method"]:
            return "method must be a non-empty string"
        if "params" in message and not isinstance(message["params"], dict | list):
            return "params must be an object"
        return None
    if "id" in message and ("result" in message) != ("error" in message):
        return None  # a response to a server request
    return "a request needs a method"


class McpEndpoint:
    """The ASGI app at ``/mcp``: checks Origin and the caller, then hands over to the SDK.

    The SDK's session manager needs a running task group. It is started on the first request, in the
    replica's event loop, and lives until :meth:`aclose` (or the loop ends): under Serve the mounted
    app has no lifespan of its own to start it in.
    """

    def __init__(self, server: MCPServer, allowed_origins: list[str]) -> None:
        # Host/Origin checks are ours (the SDK's also pins the Host header, which a cluster's
        # Service names would fail).
        server.streamable_http_app(streamable_http_path=PATH, stateless_http=True, json_response=True,
                                   transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        self.server = server
        self._manager = server.session_manager
        self._allowed_origins = allowed_origins
        self._started: asyncio.Future | None = None
        self._task: asyncio.Task | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        origin = next((v.decode("latin-1") for k, v in scope.get("headers") or [] if k == b"origin"), None)
        if origin is not None and not origin_allowed(origin, self._allowed_origins):
            await _refusal(403, f"Origin not allowed: {origin}")(scope, receive, send)
            return
        if role_of(principal_of(scope)) is None:
            await _refusal(401, "Unauthorized: send an API key as 'Authorization: Bearer <key>'",
                           {"WWW-Authenticate": 'Bearer realm="marketing-agents"'})(scope, receive, send)
            return
        if scope["method"] == "POST":
            body = await _read_body(receive)
            if body is None:
                return
            if len(body) > DEFAULT_MAX_REQUEST_BODY_SIZE:
                await _refusal(413, "Request body too large")(scope, receive, send)
                return
            try:
                message = decode_json(body)
            except UnsafeJson as exc:
                await unsafe_json_refusal(exc.problems, _request_id(body))(scope, receive, send)
                return
            except ValueError:
                message = None  # the SDK answers -32700 with where the JSON broke
            else:
                problem = envelope_problem(message)
                if problem is not None:
                    request_id = message.get("id") if isinstance(message, dict) else None
                    valid_id = isinstance(request_id, str | int) and not isinstance(request_id, bool)
                    await _refusal(400, f"Invalid Request: {problem}",
                                   request_id=request_id if valid_id else None)(scope, receive, send)
                    return
            receive = _replay(body, receive)
        await self._running()
        await self._manager.handle_request(scope, receive, send)

    async def _running(self) -> None:
        if self._started is None:
            loop = asyncio.get_running_loop()
            self._started = loop.create_future()
            self._task = loop.create_task(self._run(self._started), name="mcp-session-manager")
        await asyncio.shield(self._started)

    async def _run(self, started: asyncio.Future) -> None:
        try:
            async with self._manager.run():
                started.set_result(None)
                await anyio.sleep_forever()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client went away first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > DEFAULT_MAX_REQUEST_BODY_SIZE or not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def install(app, backend: Backend, allowed_origins: list[str] | None = None) -> McpEndpoint:
    """Serves the MCP server at ``/mcp`` in ``app`` (FastAPI or Starlette); returns the endpoint.

    A plain route, not an OpenAPI operation: MCP documents itself (tools/list, resources/list).
    """
    endpoint = McpEndpoint(build_server(backend), allowed_origins or allowed_origins_from_env())
    app.router.routes.append(Route(PATH, endpoint=endpoint, include_in_schema=False))
    return endpoint
