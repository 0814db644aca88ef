"""Access control as plain logic: key hashing, bearer parsing, the route policy table, the key cache, the
rate-limit choice, the audit batching and the local run's bootstrap admin key file. No servers."""

from __future__ import annotations

import asyncio
import logging
import stat
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from pydantic import ValidationError

from marketing_agents.domain.access import (
    ALL_ROLES,
    POLICY,
    PUBLIC_PATHS,
    WEBSOCKET,
    KeyCache,
    NewApiKey,
    Principal,
    Role,
    VerifiedKey,
    allowed_roles,
    bearer_token,
    could_be_key,
    display_prefix,
    generate_key,
    hash_key,
    is_public,
    is_write,
    rate_limit_for,
)
from marketing_agents.errors import ConfigError
from marketing_agents.launcher import ADMIN_KEY_FILE, admin_key_for, ensure_admin_key
from marketing_agents.settings import Settings

A, O, S, V = Role.ADMIN, Role.OPERATOR, Role.SERVICE, Role.VIEWER
LEAD = "/api/v1/leads/6f1c0d4e-2a57-4f35-9a0c-0d5b2bb0c2a1"


# ---- keys ----

def test_generated_keys_are_long_random_and_prefixed():
    keys = {generate_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(k.startswith("mas_") and len(k) == 47 for k in keys)


def test_a_key_is_stored_as_its_sha256_and_shown_by_a_short_prefix():
    key = "mas_" + "x" * 43
    assert len(hash_key(key)) == 64
    assert hash_key(key) == hash_key(key) and hash_key(key) != hash_key(key + "y")
    assert all(c in "0123456789abcdef" for c in hash_key(key))
    assert display_prefix(key) == "mas_xxxxxxx"  # 11 characters of 47
    assert display_prefix("short-bootstrap-key") == "shor"  # never more than a quarter of a chosen key


def test_the_sha256_is_the_standard_one():
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("header, token", [
    ("Bearer abc123", "abc123"),
    ("bearer   abc123  ", "abc123"),
    ("BEARER abc", "abc"),
    ("Basic dXNlcjpwYXNz", None),
    ("Bearer", None),
    ("Bearer ", None),
    ("", None),
    (None, None),
])
def test_the_bearer_token_is_read_from_the_authorization_header(header, token):
    assert bearer_token(header) == token


def test_a_new_key_names_a_known_role_and_an_optional_positive_limit():
    assert NewApiKey(name="crm", role="service").rate_limit_per_minute is None
    assert NewApiKey(name="crm", role="service", rate_limit_per_minute=3).rate_limit_per_minute == 3
    for bad in ({"name": "x", "role": "root"}, {"name": "", "role": "viewer"},
                {"name": "x", "role": "viewer", "rate_limit_per_minute": 0},
                {"name": "x", "role": "viewer", "secret": "mine"}):
        with pytest.raises(ValidationError):
            NewApiKey(**bad)


# ---- the policy table ----

@pytest.mark.parametrize("method, path, roles", [
    # reads: every role
    ("GET", "/api/v1/leads", {A, O, S, V}),
    ("GET", LEAD, {A, O, S, V}),
    ("GET", f"{LEAD}/profile", {A, O, S, V}),
    ("HEAD", LEAD, {A, O, S, V}),
    ("GET", "/api/v1/campaigns", {A, O, S, V}),
    ("GET", "/api/v1/system/status", {A, O, S, V}),
    ("GET", "/api/v1/models", {A, O, S, V}),
    ("GET", "/metrics", {A, O, S, V}),
    # writes: operator, service, admin
    ("POST", "/api/v1/leads", {A, O, S}),
    ("POST", "/api/v1/leads:batch", {A, O, S}),
    ("POST", f"{LEAD}/unsubscribe", {A, O, S}),
    ("POST", "/api/v1/interactions", {A, O, S}),
    ("POST", "/api/v1/campaigns", {A, O, S}),
    ("PATCH", "/api/v1/campaigns/c1", {A, O, S}),
    ("POST", "/api/v1/campaigns/c1/metrics", {A, O, S}),
    ("POST", "/api/v1/campaigns/c1/optimize", {A, O, S}),
    ("PUT", "/somewhere/unlisted", set()),  # deny by default
    # people's decisions: operator, admin
    ("POST", "/api/v1/optimizations/o1/approve", {A, O}),
    ("POST", "/api/v1/optimizations/o1/rollback", {A, O}),
    ("POST", "/api/v1/escalations/e1/acknowledge", {A, O}),
    ("POST", "/api/v1/models/v0002/promote", {A, O}),
    ("POST", "/api/v1/models/rollback", {A, O}),
    ("POST", "/api/v1/models", {A, O}),
    ("POST", "/api/v1/memory/consolidate", {A, O}),
    ("GET", f"{LEAD}/export", {A, O}),
    # admin only
    ("DELETE", LEAD, {A}),
    ("GET", "/api/v1/keys", {A}),
    ("POST", "/api/v1/keys", {A}),
    ("GET", "/api/v1/keys/k1", {A}),
    ("DELETE", "/api/v1/keys/k1", {A}),
    ("GET", "/api/v1/keys/", {A}),
    ("GET", "/api/v1/audit", {A}),
    # the WebSocket and MCP paths: any role (they check topics, resources and tools themselves)
    (WEBSOCKET, "/ws", {A, O, S, V}),
    ("GET", "/mcp", {A, O, S, V}),
    ("POST", "/mcp", {A, O, S, V}),
    ("DELETE", "/mcp", {A, O, S, V}),
    ("POST", "/mcp/", {A, O, S, V}),
])
def test_the_policy_table(method, path, roles):
    assert allowed_roles(method, path) == roles


def test_lowercase_methods_are_looked_up_like_uppercase():
    assert allowed_roles("delete", LEAD) == {A}


def test_a_lead_id_segment_does_not_match_a_nested_path_and_batch_is_not_an_id():
    assert allowed_roles("POST", f"{LEAD}/unsubscribe") == {A, O, S}
    assert allowed_roles("DELETE", f"{LEAD}/unsubscribe") == set(), "not the erasure's rule: no rule at all"
    assert allowed_roles("DELETE", "/api/v1/leads:batch") == set()


def test_every_rule_allows_the_admin():
    assert all(Role.ADMIN in rule.roles for rule in POLICY)
    assert ALL_ROLES == {A, O, S, V}


def test_only_health_readiness_and_the_docs_are_public():
    assert PUBLIC_PATHS >= {"/healthz", "/readyz", "/docs", "/openapi.json"}
    assert is_public("/healthz") and is_public("/openapi.json")
    for private in ("/api/v1/leads", "/ws", "/mcp", "/metrics", "/healthz/x", "/"):
        assert not is_public(private)


def test_writes_are_every_method_but_reads():
    assert [m for m in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", WEBSOCKET) if is_write(m)] == \
        ["POST", "PUT", "PATCH", "DELETE"]


# ---- rate limits ----

def verified(role: Role, limit: int | None = None) -> VerifiedKey:
    return VerifiedKey(Principal(key_id=uuid4(), name="k", role=role), limit)


def test_a_keys_own_limit_wins_then_its_roles_then_the_default():
    by_role = {"service": 6000}
    assert rate_limit_for(verified(S, 5), 600, by_role) == 5
    assert rate_limit_for(verified(S), 600, by_role) == 6000
    assert rate_limit_for(verified(V), 600, by_role) == 600
    assert rate_limit_for(verified(V), 600, None) == 600


def test_per_role_limits_name_only_known_roles():
    assert Settings(rate_limits_by_role={"service": 10}).rate_limits_by_role == {"service": 10}
    with pytest.raises(ValidationError):
        Settings(rate_limits_by_role={"services": 10})
    with pytest.raises(ValidationError):
        Settings(admin_api_key="too-short")


# ---- the key cache ----

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_keeps_a_verification_for_its_ttl_then_forgets_it():
    clock = Clock()
    cache = KeyCache(5, clock=clock)
    key = verified(V)
    assert cache.get("h") == (False, None)
    cache.put("h", key)
    cache.put("unknown", None)
    clock.now += 4.9
    assert cache.get("h") == (True, key)
    assert cache.get("unknown") == (True, None)  # an unknown key is remembered too
    clock.now += 0.1
    assert cache.get("h") == (False, None)


def test_forgetting_a_key_drops_it_at_once_and_leaves_the_others():
    cache = KeyCache(60, clock=Clock())
    one, other = verified(V), verified(O)
    cache.put("one", one)
    cache.put("other", other)
    cache.put("unknown", None)
    cache.forget_key(one.principal.key_id)
    assert cache.get("one") == (False, None)
    assert cache.get("other") == (True, other)
    assert cache.get("unknown") == (True, None)


def test_a_zero_ttl_caches_nothing_and_a_full_cache_makes_room():
    uncached = KeyCache(0)
    uncached.put("h", verified(V))
    assert uncached.get("h") == (False, None)
    clock = Clock()
    cache = KeyCache(10, max_entries=3, clock=clock)
    for n in range(3):
        cache.put(f"h{n}", verified(V))
    clock.now += 11
    fresh = verified(V)
    cache.put("fresh", fresh)  # the expired ones make room
    assert cache.get("fresh") == (True, fresh) and len(cache) == 1
    for n in range(3):
        cache.put(f"k{n}", verified(V))
    assert cache.get("k2")[0] and len(cache) <= 3


def test_a_flood_of_unknown_keys_never_pushes_out_a_verified_one():
    clock = Clock()
    cache = KeyCache(60, max_entries=100, max_unknown=10, clock=clock)
    real = verified(S)
    cache.put("real", real)
    for n in range(10_000):
        cache.put(f"made-up-{n}", None)
    assert cache.get("real") == (True, real)
    assert len(cache) == 11, "the unknown ones stay within their own bound"
    assert cache.get("made-up-9999") == (True, None) and cache.get("made-up-0") == (False, None)


def test_only_tokens_shaped_like_a_generated_key_are_looked_up():
    assert all(could_be_key(generate_key()) for _ in range(100))
    for made_up in ("mas_short", "x" * 47, "mas_" + "x" * 42, "mas_" + "x" * 44, "mas_" + "x" * 42 + "!",
                    "MAS_" + "x" * 43, "", "mas_" + "x" * 42 + "\n"):
        assert not could_be_key(made_up), made_up


# ---- the audit log's batching ----

def audit_record(n: int):
    from marketing_agents.domain.access import AuditRecord

    return AuditRecord(key_id=uuid4(), method="POST", path=f"/api/v1/leads/{n}", status=200,
                       at=datetime(2026, 1, 1, tzinfo=UTC))


async def test_audit_records_are_written_in_batches_off_the_request():
    from marketing_agents.serve_app.access_control import AuditLog

    batches: list[list] = []
    gate = asyncio.Event()

    async def write(batch):
        await gate.wait()
        batches.append(batch)

    audit = AuditLog(write, max_batch=3)
    for n in range(7):
        audit.record(audit_record(n))  # never waits for the database
    gate.set()
    await audit.flush()
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [r.path for b in batches for r in b] == [f"/api/v1/leads/{n}" for n in range(7)]


async def test_an_audit_batch_that_cannot_be_written_is_retried_then_logged_in_full(caplog):
    from marketing_agents.serve_app.access_control import AuditLog

    calls = 0

    async def write(batch):
        nonlocal calls
        calls += 1
        raise OSError("database gone")

    audit = AuditLog(write, attempts=3, first_backoff_s=0)
    record = audit_record(1)
    with caplog.at_level(logging.ERROR, "marketing_agents.serve_app.access_control"):
        audit.record(record)
        await audit.flush()
    assert calls == 3
    assert "could not write 1 API audit records (database gone)" in caplog.text
    assert str(record.key_id) in caplog.text and "/api/v1/leads/1" in caplog.text


async def test_an_audit_record_beyond_the_backlog_is_logged_not_dropped_silently(caplog):
    from marketing_agents.serve_app.access_control import AuditLog

    gate = asyncio.Event()
    written: list = []

    async def write(batch):
        await gate.wait()
        written.extend(batch)

    audit = AuditLog(write, max_batch=1, max_pending=2)
    with caplog.at_level(logging.ERROR, "marketing_agents.serve_app.access_control"):
        for n in range(4):
            audit.record(audit_record(n))
            await asyncio.sleep(0)  # let the writer take the first one
        gate.set()
        await audit.flush()
    assert len(written) == 3
    assert "backlog full" in caplog.text and "/api/v1/leads/3" in caplog.text


# ---- the local run's bootstrap admin key ----

def test_the_local_run_generates_a_private_admin_key_once_and_reuses_it(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    assert admin_key_for(settings) is None
    key, created = ensure_admin_key(settings)
    assert created and key.startswith("mas_")
    path = tmp_path / "data" / ADMIN_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == key + "\n"
    assert ensure_admin_key(settings) == (key, False)
    assert admin_key_for(settings) == key


def test_mas_admin_api_key_wins_over_the_file_and_writes_nothing(tmp_path):
    settings = Settings(data_dir=tmp_path, admin_api_key="a-chosen-key-of-enough-length")
    assert ensure_admin_key(settings) == ("a-chosen-key-of-enough-length", False)
    assert not (tmp_path / ADMIN_KEY_FILE).exists()


def test_a_key_file_readable_by_others_is_made_private_and_a_broken_one_refused(tmp_path):
    path = tmp_path / ADMIN_KEY_FILE
    path.write_text("mas_a-key-someone-wrote-by-hand\n")
    path.chmod(0o644)
    assert ensure_admin_key(Settings(data_dir=tmp_path)) == ("mas_a-key-someone-wrote-by-hand", False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("short\n")
    with pytest.raises(ConfigError, match="delete it"):
        ensure_admin_key(Settings(data_dir=tmp_path))
