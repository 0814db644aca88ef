"""Access control on the API gateway: bearer API keys, roles per route, per-key rate limits, the write audit.

``install_access_control(app, stores)`` (one line in ``build_api``) adds

- the ASGI middleware ``AccessControl``, in front of every HTTP and WebSocket route: it authenticates
  the key (``Authorization: Bearer <key>``; a browser's WebSocket offers it as the subprotocol
  ``mas.bearer.<key>`` beside ``mas.v1``, or, for older clients, ``?token=<key>``), counts the request
  against the key's sliding-window limit in Redis, checks the role against the policy table
  (``marketing_agents.domain.access.POLICY``) and puts the ``Principal`` into
  ``scope["state"]["principal"]`` (``request.state.principal``) for the routes, the WebSocket gateway
  and the MCP server. ``/healthz``, ``/readyz``, ``/docs`` and ``/openapi.json`` stay public.
- ``GET /api/v1/me`` (any key: its id, name and role), and the key routes: ``POST /api/v1/keys`` (the
  secret is in that answer only), ``GET /api/v1/keys``,
  ``GET``/``DELETE /api/v1/keys/{key_id}``, and ``GET /api/v1/audit``; admin only.
- the bearer scheme and the 401/403/429 answers in the OpenAPI document.

Answers, in the shared error shape: 401 ``unauthenticated`` (no key) or ``invalid_api_key`` (unknown or
revoked), with ``WWW-Authenticate: Bearer``; 429 ``rate_limited`` with ``Retry-After``; 403
``forbidden``; 503 when the key cannot be checked because PostgreSQL is down. A WebSocket is refused
before it is accepted: with that HTTP answer where the server supports the denial-response extension,
else by closing with code 1008 (which the handshake reports as 403).

A replica remembers each verified (or unknown) key for ``MAS_API_KEY_CACHE_S`` seconds: a revoked key
stops working at once on the replica that revoked it and within that time on the others. When Redis
does not answer the rate limiter within a second, ``MAS_RATE_LIMIT_WHEN_STORE_DOWN`` decides: ``reject``
(the default) answers 503 with Retry-After, ``allow`` lets the request through unmetered; either way a
warning is logged (``memory.rate_limits.MeteredAdmission``).

Every write (any method but GET, HEAD and OPTIONS) that a key was authenticated for is audited in
``api_audit`` with the key, method, path and status (except those refused by the rate limiter). An app
may audit a request in its own terms instead, through ``scope["state"]["audit"]``: the MCP server
writes one row per tool call or resource read, e.g. ``MCP tools/call triage_lead`` 200 or
``MCP resources/read db://interactions/... -> forbidden`` 403. The
audit is written in batches after the answer has gone, so that it never fails a request; a batch that
cannot be written after three attempts is logged in full at ERROR level.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from enum import Enum
from typing import Annotated, Any
from urllib.parse import parse_qs
from uuid import UUID

from fastapi import FastAPI, Query, Request
from starlette.responses import Response
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from marketing_agents.domain import utc_now
from marketing_agents.domain.access import (
    BOOTSTRAP_KEY_ID,
    BOOTSTRAP_KEY_NAME,
    WEBSOCKET,
    ApiKeyInfo,
    ApiKeyList,
    AuditList,
    AuditRecord,
    Caller,
    CreatedApiKey,
    KeyCache,
    NewApiKey,
    Principal,
    Role,
    VerifiedKey,
    allowed_roles,
    bearer_token,
    caller,
    could_be_key,
    display_prefix,
    hash_key,
    is_public,
    is_write,
    rate_limit_for,
    routed_path,
    same_hash,
    subprotocol_token,
)
from marketing_agents.domain.limits import INT64_MAX
from marketing_agents.errors import StorageError
from marketing_agents.memory.rate_limits import MeteredAdmission, RateDecision, RateLimiter
from marketing_agents.serve_app.http_errors import ErrorResponse, error_response
from marketing_agents.settings import Settings
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.postgres_access import PostgresKeyStore
from marketing_agents.stores.redis import RedisShortTermStore

log = logging.getLogger(__name__)

RATE_WINDOW_S = 60
LIMITER_TIMEOUT_S = 1.0
VERIFY_CONCURRENCY = 4  # key lookups in PostgreSQL at once per replica
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)
}


class AuditLog:
    """Audit records written in batches by one background task per replica, off the request's path.

    A record never fails a request; a batch that cannot be written after ``attempts`` tries is logged
    in full at ERROR level, and so is a record that finds the backlog full: none is lost silently.
    """

    def __init__(self, write: Callable[[list[AuditRecord]], Awaitable[None]], max_batch: int = 500,
                 max_pending: int = 50_000, attempts: int = 3, first_backoff_s: float = 0.2) -> None:
        self._write = write
        self._pending: deque[AuditRecord] = deque()
        self._task: asyncio.Task | None = None
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.attempts = attempts
        self.first_backoff_s = first_backoff_s

    def record(self, record: AuditRecord) -> None:
        if len(self._pending) >= self.max_pending:
            log.error("API audit backlog full (%d); not written: %s", self.max_pending, record.model_dump_json())
            return
        self._pending.append(record)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def flush(self) -> None:
        """Waits until every record given so far is written (or logged as not written)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
            for attempt in range(1, self.attempts + 1):
                try:
                    await self._write(batch)
                    break
                except Exception as exc:  # noqa: BLE001 - whatever failed, the records must be logged
                    if attempt == self.attempts:
                        log.error("could not write %d API audit records (%s); they are: %s", len(batch), exc,
                                  "[" + ", ".join(r.model_dump_json() for r in batch) + "]")
                    else:
                        await asyncio.sleep(self.first_backoff_s * 2 ** (attempt - 1))


def caller_key_id(request: Request) -> UUID | None:
    """The calling API key's id; None where no access control stands in front (in-process tests)."""
    principal = getattr(request.state, "principal", None)
    return None if principal is None else principal.key_id


class AccessService:
    """Keys, the cache, the rate limiter and the audit of one replica, over its store connections."""

    def __init__(self, stores: StoreConnections, settings: Settings | None = None) -> None:
        self.settings = settings or stores.settings
        self._stores = stores
        admin_key = self.settings.admin_api_key
        self._admin_hash = hash_key(admin_key.get_secret_value()) if admin_key is not None else None
        self._admin_prefix = display_prefix(admin_key.get_secret_value()) if admin_key is not None else None
        if admin_key is None:
            log.warning("MAS_ADMIN_API_KEY is not set: only keys stored in api_keys are accepted")
        self.cache = KeyCache(self.settings.api_key_cache_s)
        self.audit = AuditLog(self._write_audit)
        self._keys: PostgresKeyStore | None = None
        self._limiter: MeteredAdmission | None = None
        self._bootstrapped = admin_key is None
        self._bootstrap_lock = asyncio.Lock()
        self._inflight: dict[str, asyncio.Future] = {}
        self._verifying = asyncio.Semaphore(VERIFY_CONCURRENCY)

    async def keys(self) -> PostgresKeyStore:
        """The key store, with the bootstrap admin key's row in place."""
        if self._keys is None:
            self._keys = PostgresKeyStore(await self._stores.pool())
        if not self._bootstrapped:
            async with self._bootstrap_lock:
                if not self._bootstrapped:
                    if self._admin_hash is None or self._admin_prefix is None:  # _bootstrapped starts True without one
                        raise RuntimeError("no bootstrap admin key to store")
                    await self._keys.ensure_bootstrap(self._admin_hash, self._admin_prefix)
                    self._bootstrapped = True
        return self._keys

    async def authenticate(self, token: str) -> VerifiedKey | None:
        """The active key for this token, or None. Raises StorageError when PostgreSQL cannot tell."""
        key_hash = hash_key(token)
        if self._admin_hash is not None and same_hash(key_hash, self._admin_hash):
            return VerifiedKey(Principal(key_id=BOOTSTRAP_KEY_ID, name=BOOTSTRAP_KEY_NAME, role=Role.ADMIN))
        found, verified = self.cache.get(key_hash)
        if found:
            return verified
        if not could_be_key(token):  # made up: no query, and nothing cached that could push out real keys
            return None
        lookup = self._inflight.get(key_hash)
        if lookup is None:  # concurrent requests with one uncached key share one query
            lookup = asyncio.ensure_future(self._verify(key_hash))
            self._inflight[key_hash] = lookup
            lookup.add_done_callback(lambda _: self._inflight.pop(key_hash, None))
        return await asyncio.shield(lookup)

    async def _verify(self, key_hash: str) -> VerifiedKey | None:
        # At most VERIFY_CONCURRENCY lookups at once: a flood of well-formed made-up keys waits here
        # instead of taking every connection of the pool from the requests of real keys.
        async with self._verifying:
            verified = await (await self.keys()).verify(key_hash)
        self.cache.put(key_hash, verified)
        return verified

    async def admit(self, key: VerifiedKey) -> RateDecision | None:
        """The rate limiter's decision for one more request; None when Redis did not answer in time and
        MAS_RATE_LIMIT_WHEN_STORE_DOWN is ``allow``; StorageError (503) when it is ``reject``."""
        limit = rate_limit_for(key, self.settings.rate_limit_per_minute, self.settings.rate_limits_by_role)
        if self._limiter is None:
            # The window is given with each call: the TTL policy plays no part.
            self._limiter = MeteredAdmission(lambda: RateLimiter(RedisShortTermStore(self._stores.redis())),
                                             self.settings.rate_limit_when_store_down, LIMITER_TIMEOUT_S)
        return await self._limiter.admit(f"apikey:{key.principal.key_id}", limit, RATE_WINDOW_S)

    async def revoke(self, key_id: UUID) -> ApiKeyInfo:
        info = await (await self.keys()).revoke(key_id)
        self.cache.forget_key(key_id)
        return info

    async def _write_audit(self, records: list[AuditRecord]) -> None:
        await (await self.keys()).write_audit(records)

    async def close(self) -> None:
        await self.audit.flush()


def _refusal(status: int, code: str, message: str, details: Any = None, retry_after_s: int | None = None,
             authenticate: str | None = None) -> Response:
    response = error_response(status, code, message, details, retry_after_s)
    if authenticate is not None:
        response.headers["WWW-Authenticate"] = authenticate
    return response


class AccessControl:
    """The ASGI middleware; see the module's docstring."""

    def __init__(self, app: ASGIApp, service: AccessService, router: Router | None = None) -> None:
        self.app = app
        self.service = service
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # The path the app routes on: under a Serve route_prefix, scope["path"] still starts with it.
        path = routed_path(scope["path"], scope.get("root_path", ""))
        if scope["type"] == "http" and is_public(path):
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["type"] == "http" else WEBSOCKET
        token = _token(scope)
        if token is None:
            await _refuse(scope, receive, send, _refusal(
                401, "unauthenticated", "send an API key: Authorization: Bearer <key>", authenticate="Bearer"))
            return
        try:
            key = await self.service.authenticate(token)
        except StorageError as exc:
            await _refuse(scope, receive, send, _refusal(503, exc.code, f"cannot check the API key now: {exc}",
                                                          retry_after_s=exc.retry_after_s or 5))
            return
        if key is None:
            await _refuse(scope, receive, send, _refusal(
                401, "invalid_api_key", "the API key is unknown or revoked",
                authenticate='Bearer error="invalid_token"'))
            return
        principal = key.principal
        try:
            decision = await self.service.admit(key)
        except StorageError as exc:  # Redis does not answer and MAS_RATE_LIMIT_WHEN_STORE_DOWN is reject
            await _refuse(scope, receive, send, _refusal(503, exc.code, str(exc), retry_after_s=exc.retry_after_s or 5))
            return
        if decision is not None and not decision.allowed:
            retry_after = max(1, math.ceil(decision.retry_after_s))
            await _refuse(scope, receive, send, _refusal(
                429, "rate_limited",
                f"this API key may make {decision.limit} requests a minute; retry in {retry_after} s",
                {"limit": decision.limit, "window_s": RATE_WINDOW_S, "retry_after_s": retry_after},
                retry_after_s=retry_after))
            return
        roles = allowed_roles(method, path)
        audited = scope["type"] == "http" and is_write(method)
        if not roles and not self._routed(scope):
            await self.app(scope, receive, send)  # no such route: the app's own 404 (or 405), not a 403
            return
        if principal.role not in roles:
            allowed = sorted(role.value for role in roles)
            await _refuse(scope, receive, send, _refusal(
                403, "forbidden", f"the role {principal.role.value} may not {method} {path}",
                {"role": principal.role.value, "allowed_roles": allowed}))
            if audited:
                self._audit(principal, method, path, 403)
            return

        detailed = False

        def audit_detail(what: str, where: str, outcome: int) -> None:
            """For the app to audit what a request did in its own terms (the MCP server: each tool call or
            resource read with its outcome) instead of the request's one row."""
            nonlocal detailed
            detailed = True
            self._audit(principal, what, where, outcome)

        scope = {**scope, "state": {**(scope.get("state") or {}), "principal": principal, "audit": audit_detail}}
        status = 500
        rate_headers = [] if decision is None else [
            (b"x-ratelimit-limit", str(decision.limit).encode()),
            (b"x-ratelimit-remaining", str(decision.remaining).encode()),
        ]

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *rate_headers]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_status if scope["type"] == "http" else send)
        finally:
            if audited and not detailed:
                self._audit(principal, method, path, status)

    def _routed(self, scope: Scope) -> bool:
        """Whether a route of the app takes this path (any method): the policy denies what it does not
        name, but a path no route takes is the client's typo, answered 404 by the app."""
        if self.router is None:
            return True
        return any(route.matches(scope)[0] is not Match.NONE for route in self.router.routes)

    def _audit(self, principal: Principal, method: str, path: str, status: int) -> None:
        self.service.audit.record(AuditRecord(key_id=principal.key_id, method=method, path=path, status=status,
                                              at=utc_now()))


def _token(scope: Scope) -> str | None:
    headers = dict(scope.get("headers") or [])
    token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
    if token is None and scope["type"] == "websocket":
        token = subprotocol_token(headers.get(b"sec-websocket-protocol", b"").decode("latin-1"))
    if token is None and scope["type"] == "websocket":
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        token = values[0] if values and values[0] else None
    return token


async def _refuse(scope: Scope, receive: Receive, send: Send, response: Response) -> None:
    if scope["type"] == "http":
        await response(scope, receive, send)
        return
    websocket = WebSocket(scope, receive, send)
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=1008, reason=f"{response.status_code}: refused by access control")


# ---- Key and audit routes ----

Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many entries.")]


def add_key_routes(app: FastAPI, service: AccessService) -> None:
    tags: list[str | Enum] = ["access"]  # FastAPI's type for tags

    @app.get("/api/v1/me", response_model=Caller, responses=ERRORS, tags=tags,
             summary="The calling key (id, name, role) and the route policy as it applies to that role")
    async def who_am_i(request: Request):
        return caller(request.state.principal)

    @app.post("/api/v1/keys", status_code=201, response_model=CreatedApiKey, responses=ERRORS, tags=tags,
              summary="Create an API key (admin). The secret is in this answer only: store it now")
    async def create_key(new_key: NewApiKey, request: Request):
        return await (await service.keys()).create(new_key, request.state.principal.key_id)

    @app.get("/api/v1/keys", response_model=ApiKeyList, responses=ERRORS, tags=tags,
             summary="Every API key, without its secret (admin)")
    async def list_keys(include_revoked: bool = True):
        return ApiKeyList(items=await (await service.keys()).list(include_revoked))

    @app.get("/api/v1/keys/{key_id}", response_model=ApiKeyInfo, responses=ERRORS, tags=tags,
             summary="One API key, without its secret (admin)")
    async def read_key(key_id: UUID):
        return await (await service.keys()).get(key_id)

    @app.delete("/api/v1/keys/{key_id}", response_model=ApiKeyInfo, responses=ERRORS, tags=tags,
                summary="Revoke an API key (admin): refused at once here, within MAS_API_KEY_CACHE_S everywhere")
    async def revoke_key(key_id: UUID):
        return await service.revoke(key_id)

    @app.get("/api/v1/audit", response_model=AuditList, responses=ERRORS, tags=tags,
             summary="Write requests and the key that made each, newest first (admin)")
    async def read_audit(key_id: UUID | None = None, limit: Limit = 100,
                         before_id: Annotated[int | None, Query(ge=1, le=INT64_MAX, description="Entries older than this id "
                                                                                    "(the previous page's last).")] = None):
        await service.audit.flush()
        return AuditList(items=await (await service.keys()).audit(key_id, limit, before_id))


def _secure_openapi(app: FastAPI) -> None:
    """The bearer scheme on every non-public operation, with its 401, 403 and 429 answers."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {})["bearerAuth"] = {
            "type": "http", "scheme": "bearer",
            "description": "An API key: `Authorization: Bearer <key>` (MAS_ADMIN_API_KEY or one from POST /api/v1/keys)",
        }
        schemas = components.setdefault("schemas", {})
        if "ErrorResponse" not in schemas:
            error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(error_schema.pop("$defs", {}))
            schemas["ErrorResponse"] = error_schema
        answer = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
        refusals = {"401": "No API key, or an unknown or revoked one", "403": "The key's role may not do this",
                    "429": "The key is over its rate limit; see Retry-After"}
        for path, operations in schema.get("paths", {}).items():
            if is_public(path):
                continue
            for operation in operations.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                operation.setdefault("security", [{"bearerAuth": []}])
                for status, description in refusals.items():
                    operation["responses"].setdefault(status, {"description": description, **answer})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema


def install_access_control(app: FastAPI, stores: StoreConnections, settings: Settings | None = None) -> AccessService:
    """Access control on ``app``; call it after the other middleware is added so that it runs first."""
    service = AccessService(stores, settings)
    app.add_middleware(AccessControl, service=service, router=app.router)
    add_key_routes(app, service)
    _secure_openapi(app)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any):
        async with inner(application) as state:
            yield state
        await service.close()

    app.router.lifespan_context = lifespan
    return service
