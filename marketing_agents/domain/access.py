"""Access control as plain logic: API keys, roles, the route policy table and the in-replica key cache.

No server is needed for anything here; the ASGI middleware (``serve_app.access_control``) and the key
store (``stores.postgres_access``) use it.

Keys are bearer tokens of 256 random bits (``mas_`` + 43 URL-safe characters). Only their SHA-256 is
stored, with a short prefix for people to tell keys apart; a plain hash suffices because the key has
full entropy (no salt or slow hash is needed against guessing). The bootstrap admin key
(``MAS_ADMIN_API_KEY``) is the one key a person may choose, hence its minimum length.

Roles:
    admin     everything, and the only role that manages keys, reads the audit log and erases a lead
    operator  reads and writes, and the human decisions: approving or rolling back an optimization,
              acknowledging an escalation, promoting or rolling back a model, running the consolidator
    service   reads and writes data (leads, interactions, campaign metrics): machine integrations
    viewer    reads only
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    SERVICE = "service"
    VIEWER = "viewer"


class Principal(BaseModel):
    """Who made a request: route handlers, the WebSocket gateway and the MCP server read it from
    ``scope["state"]["principal"]`` (``request.state.principal``)."""

    model_config = ConfigDict(frozen=True)

    key_id: UUID
    name: str
    role: Role


def actor_of(principal: Principal) -> str:
    """How a decision records who made it: the calling key, which names someone access control checked
    (its name and role are in ``GET /api/v1/keys/{id}``), never what the caller typed."""
    return f"apikey:{principal.key_id}"


def idempotency_scope(key_id: UUID | None, endpoint: str, key: str | None) -> str | None:
    """The stored name of a client's idempotency key: the client's own name for it, scoped to the calling
    API key and the endpoint. Clients pick their keys ("order-1", a counter), so two API keys, or one key
    on two endpoints, that chose the same name must not get each other's stored answers."""
    if key is None:
        return None
    return f"{key_id or 'anonymous'}/{endpoint}/{key}"


# The bootstrap admin key's row in api_keys has this fixed id, so every replica upserts the same row.
BOOTSTRAP_KEY_ID = UUID("00000000-0000-4000-8000-00000000a0a0")
BOOTSTRAP_KEY_NAME = "bootstrap admin (MAS_ADMIN_API_KEY)"
KEY_PREFIX = "mas_"


# What generate_key makes: the prefix and 32 random bytes in URL-safe base64, unpadded (43 characters).
_KEY_SHAPE = re.compile(r"mas_[A-Za-z0-9_-]{43}")


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def could_be_key(token: str) -> bool:
    """Whether ``token`` has the shape of a key generate_key made; a token that has not cannot be in
    api_keys, so it is refused without a lookup (only the bootstrap key is chosen freely, and it is
    compared before this)."""
    return _KEY_SHAPE.fullmatch(token) is not None


def hash_key(key: str) -> str:
    """The SHA-256 of the key, hex: what api_keys stores and what a presented key is looked up by."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    """Enough of the key to tell keys apart in a list, never enough to matter: at most a quarter of it."""
    return key[: min(12, len(key) // 4)]


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None for no header or another scheme."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


# ---- API key models (the /api/v1/keys contract) ----

class NewApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="What the key is for, or who holds it.")
    role: Role
    rate_limit_per_minute: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="Requests allowed in any sliding minute; unset: the role's or the system default "
                    "(MAS_RATE_LIMITS_BY_ROLE, MAS_RATE_LIMIT_PER_MINUTE).")


class ApiKeyInfo(BaseModel):
    id: UUID
    name: str
    role: Role
    prefix: str = Field(description="The key's first characters, to recognise it; the key itself is never stored.")
    rate_limit_per_minute: int | None = None
    created_at: datetime
    created_by: UUID | None = None
    revoked_at: datetime | None = None


class CreatedApiKey(ApiKeyInfo):
    key: str = Field(description="The secret. Shown only in this answer: store it now.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyInfo]


class AuditRecord(BaseModel):
    """One write request and who made it."""

    key_id: UUID
    method: str
    path: str
    status: int
    at: datetime


class AuditEntry(AuditRecord):
    id: int


class AuditList(BaseModel):
    items: list[AuditEntry]


@dataclass(frozen=True)
class VerifiedKey:
    """A key found active: who it is and its own rate limit (None: the role's or the default)."""

    principal: Principal
    rate_limit_per_minute: int | None = None


# by_role's keys are role names: plain str, or the Literal names of Settings.rate_limits_by_role.
def rate_limit_for(key: VerifiedKey, default: int, by_role: dict[Any, int] | None = None) -> int:
    if key.rate_limit_per_minute is not None:
        return key.rate_limit_per_minute
    return (by_role or {}).get(key.principal.role.value, default)


# ---- The route policy ----

ALL_ROLES = frozenset(Role)
WRITERS = frozenset({Role.ADMIN, Role.OPERATOR, Role.SERVICE})
DECIDERS = frozenset({Role.ADMIN, Role.OPERATOR})
ADMINS = frozenset({Role.ADMIN})

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WEBSOCKET = "WEBSOCKET"  # the method a WebSocket scope is looked up with
MCP = "/mcp"
EXPORT = "/api/v1/leads/{lead_id}/export"
INTERACTIONS = "/api/v1/leads/{lead_id}/interactions"

# Served to anyone, without a key.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


@dataclass(frozen=True)
class Rule:
    """``methods``: a set of HTTP methods (WEBSOCKET for a WebSocket), or None for any. ``pattern``: path
    segments, ``{name}`` matching one segment and a final ``**`` any number (zero included)."""

    methods: frozenset[str] | None
    pattern: str
    roles: frozenset[Role]

    def matches(self, method: str, segments: list[str]) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return _match(self.pattern.strip("/").split("/"), segments)


def _match(pattern: list[str], segments: list[str]) -> bool:
    for i, part in enumerate(pattern):
        if part == "**":
            return True
        if i >= len(segments):
            return False
        if not (part.startswith("{") and part.endswith("}")) and part != segments[i]:
            return False
    return len(pattern) == len(segments)


def _methods(*names: str) -> frozenset[str]:
    return frozenset(names)


WRITE_METHODS = _methods("POST", "PUT", "PATCH", "DELETE")
POST = _methods("POST")

# First match wins; a request no rule matches is refused (deny by default), so a new route needs its own
# rule here (tests/unit/test_route_policy.py names every route of the app and its roles). Paths are the
# routed path, without Serve's route_prefix (see routed_path).
POLICY: tuple[Rule, ...] = (
    Rule(READ_METHODS, "/api/v1/me", ALL_ROLES),  # who the calling key is: the console shows what its role may do
    Rule(None, "/api/v1/keys/**", ADMINS),
    Rule(READ_METHODS, "/api/v1/audit", ADMINS),
    # leads
    Rule(READ_METHODS, "/api/v1/leads", ALL_ROLES),
    Rule(POST, "/api/v1/leads", WRITERS),
    Rule(POST, "/api/v1/leads:batch", WRITERS),
    Rule(READ_METHODS, "/api/v1/leads/{lead_id}", ALL_ROLES),
    Rule(_methods("DELETE"), "/api/v1/leads/{lead_id}", ADMINS),  # erasure across every tier
    Rule(READ_METHODS, "/api/v1/leads/{lead_id}/profile", ALL_ROLES),
    Rule(READ_METHODS, EXPORT, DECIDERS),  # everything held about a person
    Rule(READ_METHODS, INTERACTIONS, DECIDERS),  # what a person did: as MCP's db://interactions
    Rule(POST, "/api/v1/leads/{lead_id}/unsubscribe", WRITERS),
    Rule(_methods("PATCH"), "/api/v1/leads/{lead_id}", WRITERS),  # corrections, consent given again
    # review queues: anyone may look; deciding a lead is a person's call
    Rule(READ_METHODS, "/api/v1/review-queues", ALL_ROLES),
    Rule(READ_METHODS, "/api/v1/review-queues/{name}/leads", ALL_ROLES),
    Rule(_methods("POST", "DELETE"), "/api/v1/leads/{lead_id}/claim", DECIDERS),
    Rule(POST, "/api/v1/leads/{lead_id}/review", DECIDERS),
    Rule(POST, "/api/v1/interactions", WRITERS),
    # campaigns, optimizations, escalations
    Rule(READ_METHODS, "/api/v1/campaigns", ALL_ROLES),
    Rule(POST, "/api/v1/campaigns", WRITERS),
    Rule(READ_METHODS, "/api/v1/campaigns/{campaign_id}", ALL_ROLES),
    Rule(_methods("PATCH"), "/api/v1/campaigns/{campaign_id}", WRITERS),
    Rule(POST, "/api/v1/campaigns/{campaign_id}/metrics", WRITERS),
    Rule(READ_METHODS, "/api/v1/campaigns/{campaign_id}/performance", ALL_ROLES),
    Rule(POST, "/api/v1/campaigns/{campaign_id}/optimize", WRITERS),
    Rule(READ_METHODS, "/api/v1/campaigns/{campaign_id}/optimizations", ALL_ROLES),
    Rule(READ_METHODS, "/api/v1/optimizations/{optimization_id}", ALL_ROLES),
    Rule(POST, "/api/v1/optimizations/{optimization_id}/approve", DECIDERS),
    Rule(POST, "/api/v1/optimizations/{optimization_id}/rollback", DECIDERS),
    Rule(READ_METHODS, "/api/v1/escalations", ALL_ROLES),
    Rule(POST, "/api/v1/escalations/{escalation_id}/acknowledge", DECIDERS),
    # models, memory, the system
    Rule(READ_METHODS, "/api/v1/models", ALL_ROLES),
    Rule(WRITE_METHODS, "/api/v1/models/**", DECIDERS),  # register, promote, roll back
    Rule(POST, "/api/v1/memory/consolidate", DECIDERS),
    Rule(READ_METHODS, "/api/v1/system/status", ALL_ROLES),
    Rule(READ_METHODS, "/metrics", ALL_ROLES),
    Rule(None, "/ws", ALL_ROLES),  # the gateway checks topics with the principal
    Rule(None, MCP, ALL_ROLES),  # the MCP server checks each resource and tool (mcp.authorization, from this table)
)


# The operator console's page and assets: they hold no data (every figure on it comes from the API, with
# the key the person signs in with), so the sign-in page must load without one.
CONSOLE = "/console"

# A browser cannot set headers on a WebSocket: it offers the key as a subprotocol instead (never in the
# URL, where proxies and logs keep it), beside WS_SUBPROTOCOL, the one the gateway answers with.
WS_SUBPROTOCOL = "mas.v1"
WS_KEY_SUBPROTOCOL_PREFIX = "mas.bearer."


class PolicyEntry(BaseModel):
    """One rule of POLICY as it applies to a role: a client (the console) that matches a request against
    these in order, first match winning, knows what the API will allow without a copy of the table."""

    methods: list[str] | None = Field(description="The HTTP methods (WEBSOCKET for /ws); null for any.")
    pattern: str = Field(description="Path segments; {name} matches one, a final ** any number.")
    allowed: bool


class Caller(Principal):
    """``GET /api/v1/me``: who the calling key is, and the policy as it applies to its role."""

    policy: list[PolicyEntry]


def caller(principal: Principal, policy: tuple[Rule, ...] = POLICY) -> Caller:
    return Caller(**principal.model_dump(), policy=[
        PolicyEntry(methods=sorted(rule.methods) if rule.methods is not None else None, pattern=rule.pattern,
                    allowed=principal.role in rule.roles) for rule in policy])


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path == CONSOLE or path.startswith(CONSOLE + "/")


def subprotocol_token(offered: str | None) -> str | None:
    """The key a browser offered in ``Sec-WebSocket-Protocol`` as ``mas.bearer.<key>``, if any."""
    for value in (offered or "").split(","):
        value = value.strip()
        if value.startswith(WS_KEY_SUBPROTOCOL_PREFIX) and len(value) > len(WS_KEY_SUBPROTOCOL_PREFIX):
            return value[len(WS_KEY_SUBPROTOCOL_PREFIX):]
    return None


def routed_path(path: str, root_path: str = "") -> str:
    """The path the app routes on: ``path`` without the ASGI ``root_path`` it is mounted at.

    Ray Serve keeps the full path in ``scope["path"]`` and puts a non-root ``route_prefix`` into
    ``scope["root_path"]`` (Ray Serve 2.x's proxy does, ``ray/serve/_private/proxy.py``); Starlette
    routes on what follows it. The policy must see the same path, or with a prefix no rule would match at all.
    """
    root = root_path.rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root):] or "/"
    return path


def allowed_roles(method: str, path: str, policy: tuple[Rule, ...] = POLICY) -> frozenset[Role]:
    """The roles that may make this request to the routed ``path``: an empty set when no rule names it."""
    method = method.upper()
    segments = [s for s in path.split("/") if s]
    for rule in policy:
        if rule.matches(method, segments):
            return rule.roles
    return frozenset()


def is_write(method: str) -> bool:
    return method.upper() not in READ_METHODS and method.upper() != WEBSOCKET


# ---- The in-replica cache of verified keys ----

class KeyCache:
    """Verifications (a key's hash → its VerifiedKey, or None for unknown or revoked) kept ``ttl_s``.

    A request then costs no query; a key revoked on another replica stops working here within ``ttl_s``.
    Unknown keys are remembered too, so that a client retrying a bad key does not cost a query each time,
    but apart and in a smaller bound (``max_unknown``, the oldest dropped first): anyone can make up
    tokens, and a flood of them must not push out the verified keys of real clients.
    """

    def __init__(self, ttl_s: float, max_entries: int = 10_000, max_unknown: int = 1_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_unknown = max_unknown
        self._clock = clock
        self._entries: dict[str, tuple[float, VerifiedKey]] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()

    def get(self, key_hash: str) -> tuple[bool, VerifiedKey | None]:
        """(found, value): found is False when the hash is not cached or its entry expired."""
        now = self._clock()
        entry = self._entries.get(key_hash)
        if entry is not None:
            if now < entry[0]:
                return True, entry[1]
            del self._entries[key_hash]
        expires = self._unknown.get(key_hash)
        if expires is not None:
            if now < expires:
                return True, None
            del self._unknown[key_hash]
        return False, None

    def put(self, key_hash: str, value: VerifiedKey | None) -> None:
        if self.ttl_s <= 0:
            return
        now = self._clock()
        if value is None:
            self._unknown.pop(key_hash, None)
            while len(self._unknown) >= self.max_unknown:
                self._unknown.popitem(last=False)
            self._unknown[key_hash] = now + self.ttl_s
            return
        self._unknown.pop(key_hash, None)
        if key_hash not in self._entries and len(self._entries) >= self.max_entries:
            self._entries = {h: e for h, e in self._entries.items() if e[0] > now}
            while len(self._entries) >= self.max_entries:  # only verified keys get here: drop the oldest
                del self._entries[next(iter(self._entries))]
        self._entries[key_hash] = (now + self.ttl_s, value)

    def forget_key(self, key_id: UUID) -> None:
        """Drops the entries of one key (revoked here: it stops working at once on this replica)."""
        self._entries = {h: e for h, e in self._entries.items() if e[1].principal.key_id != key_id}

    def __len__(self) -> int:
        return len(self._entries) + len(self._unknown)
