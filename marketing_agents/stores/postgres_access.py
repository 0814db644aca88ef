"""API keys and the write audit in PostgreSQL (tables from migration 0009).

Only a key's hash is ever written or looked up; the key itself never reaches this module except to be
hashed by the caller (``marketing_agents.domain.access``).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from uuid import UUID, uuid4

import asyncpg

from marketing_agents.domain.access import (
    BOOTSTRAP_KEY_ID,
    BOOTSTRAP_KEY_NAME,
    ApiKeyInfo,
    AuditEntry,
    AuditRecord,
    CreatedApiKey,
    NewApiKey,
    Principal,
    Role,
    VerifiedKey,
    display_prefix,
    generate_key,
    hash_key,
)
from marketing_agents.errors import Conflict, NotFound
from marketing_agents.stores.postgres import translated_errors

_KEY_COLUMNS = "id, name, role, prefix, rate_limit_per_minute, created_at, created_by, revoked_at"


def key_not_found(key_id: UUID) -> NotFound:
    return NotFound(f"no API key with id {key_id}", {"key_id": str(key_id)})


class PostgresKeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def ensure_bootstrap(self, key_hash: str, prefix: str) -> None:
        """The bootstrap admin key's row, with this hash: a changed MAS_ADMIN_API_KEY replaces the old one."""
        async with translated_errors("record the bootstrap admin key"):
            await self._pool.execute(
                """INSERT INTO api_keys (id, name, role, key_hash, prefix)
                   VALUES ($1, $2, 'admin', $3, $4)
                   ON CONFLICT (id) DO UPDATE
                       SET key_hash = EXCLUDED.key_hash, prefix = EXCLUDED.prefix, revoked_at = NULL,
                           role = 'admin'
                       WHERE api_keys.key_hash <> EXCLUDED.key_hash OR api_keys.revoked_at IS NOT NULL""",
                BOOTSTRAP_KEY_ID, BOOTSTRAP_KEY_NAME, key_hash, prefix,
            )

    async def create(self, new_key: NewApiKey, created_by: UUID | None) -> CreatedApiKey:
        secret = generate_key()
        async with translated_errors("create an API key"):
            row = await self._pool.fetchrow(
                f"""INSERT INTO api_keys (id, name, role, key_hash, prefix, rate_limit_per_minute, created_by)
                    VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_KEY_COLUMNS}""",
                uuid4(), new_key.name, new_key.role.value, hash_key(secret), display_prefix(secret),
                new_key.rate_limit_per_minute, created_by,
            )
        return CreatedApiKey(**_info(row).model_dump(), key=secret)

    async def verify(self, key_hash: str) -> VerifiedKey | None:
        """The active key with this hash, or None (unknown or revoked)."""
        async with translated_errors("verify an API key"):
            row = await self._pool.fetchrow(
                "SELECT id, name, role, rate_limit_per_minute FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                key_hash,
            )
        if row is None:
            return None
        principal = Principal(key_id=row["id"], name=row["name"], role=Role(row["role"]))
        return VerifiedKey(principal, row["rate_limit_per_minute"])

    async def get(self, key_id: UUID) -> ApiKeyInfo:
        async with translated_errors("read an API key"):
            row = await self._pool.fetchrow(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = $1", key_id)
        if row is None:
            raise key_not_found(key_id)
        return _info(row)

    async def list(self, include_revoked: bool = True) -> list[ApiKeyInfo]:
        """Oldest first."""
        async with translated_errors("list API keys"):
            rows = await self._pool.fetch(
                f"""SELECT {_KEY_COLUMNS} FROM api_keys WHERE $1 OR revoked_at IS NULL
                    ORDER BY created_at, id""", include_revoked,
            )
        return [_info(row) for row in rows]

    async def revoke(self, key_id: UUID) -> ApiKeyInfo:
        """Revokes the key (a second call changes nothing and answers the same)."""
        if key_id == BOOTSTRAP_KEY_ID:
            raise Conflict("the bootstrap admin key is set by MAS_ADMIN_API_KEY: change it there to replace it",
                           {"key_id": str(key_id)})
        async with translated_errors("revoke an API key"):
            row = await self._pool.fetchrow(
                f"""UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
                    RETURNING {_KEY_COLUMNS}""", key_id,
            )
        if row is None:
            raise key_not_found(key_id)
        return _info(row)

    async def write_audit(self, records: Sequence[AuditRecord]) -> None:
        async with translated_errors("write the API audit"):
            await self._pool.executemany(
                "INSERT INTO api_audit (key_id, method, path, status, at) VALUES ($1, $2, $3, $4, $5)",
                [(r.key_id, r.method, r.path, r.status, r.at) for r in records],
            )

    async def audit(self, key_id: UUID | None, limit: int, before_id: int | None = None) -> builtins.list[AuditEntry]:
        """Newest first; ``before_id`` pages on from the last entry of the previous page."""
        async with translated_errors("read the API audit"):
            rows = await self._pool.fetch(
                """SELECT id, key_id, method, path, status, at FROM api_audit
                   WHERE ($1::uuid IS NULL OR key_id = $1) AND ($2::bigint IS NULL OR id < $2)
                   ORDER BY id DESC LIMIT $3""", key_id, before_id, limit,
            )
        return [AuditEntry(**dict(row)) for row in rows]


def _info(row: asyncpg.Record) -> ApiKeyInfo:
    values = dict(row)
    values["role"] = Role(values["role"])
    return ApiKeyInfo(**values)
