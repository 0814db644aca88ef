"""Versioned schema migrations: numbered SQL files applied in order, each exactly once.

Files are named ``NNNN_description.sql``. Each is applied in its own transaction together with its row
in ``schema_migrations``, so a failed migration leaves nothing behind. A session-level advisory lock
serialises concurrent starters: the second process waits, then finds everything applied. A file that
changed after it was applied is refused, because the database no longer matches what the file says.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from marketing_agents.errors import MigrationError

# Any constant unique to this application; pg_advisory_lock takes a bigint.
_LOCK_ID = 0x6D61735F6D6967  # "mas_mig"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def bundled_migrations() -> list[Migration]:
    """The migrations shipped in ``marketing_agents/stores/migrations``, in version order."""
    found = []
    for entry in resources.files("marketing_agents.stores").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number", {"versions": versions})
    return found


async def apply_migrations(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Applies what is not applied yet; returns the versions this call applied.

    Raises MigrationError when an applied file has changed or a migration fails (its transaction is
    rolled back, so the schema stays at the last good version).
    """
    migrations = bundled_migrations() if migrations is None else migrations
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   checksum   text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        applied = {row["version"]: row["checksum"] for row in rows}
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} changed after it was applied",
                        {"version": migration.version},
                    )
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed: {exc}", {"version": migration.version}
                ) from exc
            applied_now.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied_now


async def migrate(dsn: str) -> list[int]:
    """Connects to ``dsn``, applies what is pending and returns the versions applied."""
    conn = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


def describe(applied: list[int]) -> str:
    return f"applied: {', '.join(f'{v:04d}' for v in applied)}" if applied else "schema up to date"
