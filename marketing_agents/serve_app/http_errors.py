"""Every error leaves the API in one shape: ``{"error": {"code", "message", "details"}}``.

Validation errors list each bad field with its location, what is wrong and the pydantic error type,
so that a client can show them next to the right input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketing_agents.domain.field_errors import request_field_errors
from marketing_agents.domain.json_input import UnsafeJson, decode_json
from marketing_agents.domain.text import storable_problem
from marketing_agents.errors import MarketingAgentsError

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


# The error answers every API route documents (OpenAPI): one shape, these statuses.
ROUTE_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 404, 409, 413, 415, 422, 500, 503)
}


def error_response(status: int, code: str, message: str, details: Any = None,
                   retry_after_s: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, details=details))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def unwrap(exc: BaseException) -> BaseException:
    """An error raised in another replica arrives wrapped by Ray; the client should see the original."""
    while isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    return exc


# Errors that say a replica or actor is gone or overloaded, not that the request was wrong.
TRANSIENT_CLUSTER_ERRORS = (RayActorError, ActorUnavailableError, BackPressureError, DeploymentUnavailableError,
                            ReplicaUnavailableError)
RETRY_AFTER_S = 2


def install_error_handlers(app: FastAPI) -> None:
    """The error answers of every route, and the decoding rule that turns bad but valid-looking input
    into them (:class:`StrictInputRoute`): call it before adding the routes."""
    app.router.route_class = StrictInputRoute

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = request_field_errors(exc.errors())
        invalid_json = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
        if invalid_json is not None:
            position = invalid_json.get("loc", ("body", None))[-1]
            return error_response(400, "malformed_json", f"the request body is not valid JSON (at character {position})",
                                  {"position": position, "error": invalid_json.get("ctx", {}).get("error")})
        bad = ", ".join(e["field"] for e in errors)
        return error_response(422, "validation_error", f"invalid fields: {bad}", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
                415: "unsupported_media_type"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        cause = unwrap(exc)
        if isinstance(cause, MarketingAgentsError):
            return error_response(cause.status_code, cause.code, cause.message, cause.details, cause.retry_after_s)
        if isinstance(cause, TRANSIENT_CLUSTER_ERRORS):
            # A replica died or is being replaced, or a queue is full: retrying (with the same
            # Idempotency-Key) is safe and will reach a healthy replica.
            log.warning("%s %s: %s: %s", request.method, request.url.path, type(cause).__name__, cause)
            return error_response(503, "temporarily_unavailable",
                                  "a part of the cluster is restarting or busy; retry shortly "
                                  "(with the same Idempotency-Key for a POST)",
                                  {"cause": type(cause).__name__}, RETRY_AFTER_S)
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=cause)
        return error_response(500, "internal_error", "an unexpected error occurred; it has been logged")


def _is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type in ("", "application/json") or media_type.endswith("+json")


def input_problems(request: Request, body: bytes) -> list[dict[str, Any]]:
    """What no store could take in a request: NaN, Infinity, integers beyond 64 bits, NUL and lone
    surrogates in its JSON body (``domain.json_input``), NUL in its query or path; in the shape of
    pydantic's ``errors()`` with the location first, as FastAPI's own validation reports them."""
    problems: list[dict[str, Any]] = []
    for where, params in (("path", request.path_params.items()), ("query", request.query_params.multi_items())):
        for name, value in params:
            problem = storable_problem(value) if isinstance(value, str) else None
            if problem is not None:
                problems.append({"loc": (where, name), "msg": problem, "type": "string_unstorable"})
    if body and _is_json(request):
        try:
            decode_json(body)
        except UnsafeJson as exc:
            problems.extend({**p.as_error(), "loc": ("body", *p.path)} for p in exc.problems)
        except ValueError:
            pass  # not JSON at all: FastAPI's own parsing answers it (400 malformed_json)
    return problems


class StrictInputRoute(APIRoute):
    """Every API route checks its request with :func:`input_problems` before FastAPI parses and
    validates it: a bad value is 422 naming the field, never a driver's error (a 500) later on.

    A route class, not a middleware, so that it covers exactly the API's routes: ``/mcp`` answers the
    same problems in JSON-RPC's terms (``mcp.server``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            problems = input_problems(request, await request.body())
            if problems:
                raise RequestValidationError(problems)
            return await handler(request)

        return strict


class BodyLimit:
    """Refuses bodies over ``max_bytes`` with 413 before any handler reads them.

    The declared Content-Length is checked first; a chunked body is counted as it arrives, so a
    client cannot get round the limit by not declaring a length.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "payload_too_large", f"the request body exceeds {self.max_bytes} bytes", {"max_bytes": self.max_bytes}
        )
        await response(scope, receive, send)


class RequireJson:
    """Refuses a request body that is not JSON with 415, before it is parsed as anything else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope.get("headers") or [])
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            media_type = content_type.split(";")[0].strip().lower()
            has_body = headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers
            if has_body and not (media_type == "application/json" or media_type.endswith("+json")):
                response = error_response(
                    415, "unsupported_media_type", "send the request body as application/json",
                    {"content_type": content_type or None},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
