"""Schema migrations against a real PostgreSQL: ordered, once each, safe when starters race."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import replace

import asyncpg
import pytest

from marketing_agents.errors import MigrationError
from marketing_agents.stores.migrations import Migration, apply_migrations, bundled_migrations
from tests.support import fresh_database

SEED_TABLES = {"leads", "campaigns", "interactions", "conversions", "lead_profiles", "agent_actions",
               "campaign_metrics", "handoffs", "touchpoints", "idempotency_keys"}
SEED_INDEXES = {"idx_lead_score", "idx_industry", "idx_campaign_date", "idx_conversation", "idx_handoff_time",
                "idx_optimization"}


async def test_seed_tables_and_indexes_exist(migrated, pool):
    tables = {r["tablename"] for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    indexes = {r["indexname"] for r in await pool.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    assert SEED_TABLES <= tables
    assert SEED_INDEXES <= indexes
    partitioned = await pool.fetchval(
        "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'interactions'::regclass"
    )
    assert partitioned in ("r", b"r")  # range-partitioned ("char" comes back as bytes)


async def test_interactions_land_in_their_month_and_old_rows_move_when_a_month_is_added(pool):
    lead_id = await pool.fetchval(
        """INSERT INTO leads (id, email, first_name, last_name, company, job_title, industry, company_size,
                              country, source, consent, status)
           VALUES (gen_random_uuid(), 'p@q.io', 'P', 'Q', 'Co', 'CEO', 'software', 5, 'US', 'web_form', '{}', 'triaged')
           RETURNING id"""
    )
    await pool.execute("INSERT INTO interactions (lead_id, type, occurred_at) VALUES ($1, 'open', '2015-06-15')", lead_id)
    assert await pool.fetchval("SELECT tableoid::regclass::text FROM interactions WHERE lead_id = $1", lead_id) == \
        "interactions_default"
    await pool.fetchval("SELECT mas_ensure_interaction_partitions('2015-06-01', '2015-06-30')")
    assert await pool.fetchval("SELECT tableoid::regclass::text FROM interactions WHERE lead_id = $1", lead_id) == \
        "interactions_2015_06"
    await pool.execute("DELETE FROM leads WHERE id = $1", lead_id)
    assert await pool.fetchval("SELECT count(*) FROM interactions WHERE lead_id = $1", lead_id) == 0


async def test_each_migration_is_applied_once_and_recorded(stores):
    dsn = await fresh_database(stores, "mig_once")
    conn = await asyncpg.connect(dsn)
    try:
        first = await apply_migrations(conn)
        second = await apply_migrations(conn)
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    assert first == [m.version for m in bundled_migrations()]
    assert second == []
    assert [(r["version"], r["checksum"]) for r in rows] == [(m.version, m.checksum) for m in bundled_migrations()]


async def test_two_processes_migrating_together_apply_each_migration_once(stores):
    dsn = await fresh_database(stores, "mig_race")
    env = {**os.environ, "MAS_POSTGRES_DSN": dsn}
    command = [sys.executable, "-m", "marketing_agents.cli", "migrate"]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    every = ", ".join(f"{m.version:04d}" for m in bundled_migrations())
    assert sorted(out for out, _err in outputs) == [f"applied: {every}\n", "schema up to date\n"]
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(bundled_migrations())
    finally:
        await conn.close()


async def test_a_changed_applied_migration_is_refused(stores):
    dsn = await fresh_database(stores, "mig_changed")
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
        edited = [replace(m, sql=m.sql + "\n-- edited") for m in bundled_migrations()]
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await apply_migrations(conn, edited)
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_no_trace(stores):
    dsn = await fresh_database(stores, "mig_fail")
    broken = Migration(9999, "broken", "CREATE TABLE half_done (id int); SELECT * FROM no_such_table;")
    conn = await asyncpg.connect(dsn)
    try:
        with pytest.raises(MigrationError, match="9999_broken failed"):
            await apply_migrations(conn, [*bundled_migrations(), broken])
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == bundled_migrations()[-1].version
        # The lock was released: another run can proceed.
        assert await asyncio.wait_for(apply_migrations(conn), 10) == []
    finally:
        await conn.close()
