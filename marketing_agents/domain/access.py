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
import secrets
import time
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


# The bootstrap admin key's row in api_keys has this fixed id, so every replica upserts the same row.
BOOTSTRAP_KEY_ID = UUID("00000000-0000-4000-8000-00000000a0a0")
BOOTSTRAP_KEY_NAME = "bootstrap admin (MAS_ADMIN_API_KEY)"
KEY_PREFIX = "mas_"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


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

# First match wins. What is not listed falls to the default: reads for every role, writes for writers.
POLICY: tuple[Rule, ...] = (
    Rule(None, "/api/v1/keys/**", ADMINS),
    Rule(None, "/api/v1/audit/**", ADMINS),
    Rule(_methods("DELETE"), "/api/v1/leads/{lead_id}", ADMINS),  # erasure across every tier
    Rule(READ_METHODS, "/api/v1/leads/{lead_id}/export", DECIDERS),  # everything held about a person
    Rule(WRITE_METHODS, "/api/v1/models/**", DECIDERS),  # register, promote, roll back
    Rule(WRITE_METHODS, "/api/v1/optimizations/{optimization_id}/approve", DECIDERS),
    Rule(WRITE_METHODS, "/api/v1/optimizations/{optimization_id}/rollback", DECIDERS),
    Rule(WRITE_METHODS, "/api/v1/escalations/{escalation_id}/acknowledge", DECIDERS),
    Rule(WRITE_METHODS, "/api/v1/memory/consolidate", DECIDERS),
    Rule(None, "/ws/**", ALL_ROLES),  # the gateway checks topics with the principal
    Rule(None, "/mcp/**", ALL_ROLES),  # the MCP server checks each resource and tool with the principal
)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS


def allowed_roles(method: str, path: str, policy: tuple[Rule, ...] = POLICY) -> frozenset[Role]:
    """The roles that may make this request (an empty set for none)."""
    method = method.upper()
    segments = [s for s in path.split("/") if s]
    for rule in policy:
        if rule.matches(method, segments):
            return rule.roles
    if method in READ_METHODS or method == WEBSOCKET:
        return ALL_ROLES
    return WRITERS


def is_write(method: str) -> bool:
    return method.upper() not in READ_METHODS and method.upper() != WEBSOCKET


# ---- The in-replica cache of verified keys ----

class KeyCache:
    """Verifications (a key's hash → its VerifiedKey, or None for unknown or revoked) kept ``ttl_s``.

    A request then costs no query; a key revoked on another replica stops working here within ``ttl_s``.
    Unknown keys are remembered too, so that a client retrying a bad key does not cost a query each time.
    """

    def __init__(self, ttl_s: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, VerifiedKey | None]] = {}

    def get(self, key_hash: str) -> tuple[bool, VerifiedKey | None]:
        """(found, value): found is False when the hash is not cached or its entry expired."""
        entry = self._entries.get(key_hash)
        if entry is None:
            return False, None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key_hash]
            return False, None
        return True, value

    def put(self, key_hash: str, value: VerifiedKey | None) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            now = self._clock()
            self._entries = {h: e for h, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[key_hash] = (self._clock() + self.ttl_s, value)

    def forget_key(self, key_id: UUID) -> None:
        """Drops the entries of one key (revoked here: it stops working at once on this replica)."""
        self._entries = {h: e for h, e in self._entries.items()
                         if e[1] is None or e[1].principal.key_id != key_id}
