"""The consolidator against real PostgreSQL and Valkey: idempotent, resumable, and it learns."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis

from marketing_agents.memory.consolidator import MemoryConsolidator
from marketing_agents.memory.episodic import EpisodicMemory
from marketing_agents.memory.long_term import LongTermMemory
from marketing_agents.memory.semantic import SemanticMemory
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.stores.migrations import apply_migrations
from marketing_agents.stores.postgres import init_connection
from marketing_agents.stores.postgres_consolidation import PostgresConsolidationStore
from marketing_agents.stores.postgres_episodic import PostgresEpisodicStore
from marketing_agents.stores.postgres_graph import PostgresGraphStore
from marketing_agents.stores.postgres_long_term import PostgresLongTermStore
from marketing_agents.stores.redis import RedisShortTermStore
from tests.support import fresh_database

AS_OF = date(2026, 6, 30)
T0 = datetime(2026, 1, 5, tzinfo=UTC)
INDUSTRIES = ["software", "retail", "fintech"]


class Killed(Exception):
    pass


async def seeded_database(stores, name: str) -> asyncpg.Pool:
    """A fresh database with the same 60 leads and their journeys every time (seeded generator)."""
    dsn = await fresh_database(stores, name)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4, init=init_connection)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
        await conn.fetchval("SELECT mas_ensure_interaction_partitions($1, $2)", T0, T0 + timedelta(days=200))
    rng = random.Random(42)
    rows = []
    for n in range(60):
        lead_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        await pool.execute(
            """INSERT INTO leads (id, external_id, email, first_name, last_name, company, job_title, industry,
                                  company_size, country, source, consent, status)
               VALUES ($1, $2, 'x@y.io', 'X', 'Y', 'Co', 'CTO', $3, $4, 'DE', 'event', '{}', 'engaged')""",
            lead_id, f"L{n:03d}", INDUSTRIES[n % 3], rng.choice([50, 500, 5000]))
        at = T0 + timedelta(days=rng.randint(0, 20))
        for _step in range(rng.randint(2, 7)):
            channel = rng.choice(["email", "email", "linkedin", "webinar", "call"])
            kind = rng.choice(["open", "click", "reply"])
            rows.append((lead_id, kind, channel, None, at))
            at += timedelta(days=rng.choice([1, 2, 3, 45]))
        if rng.random() < 0.5:
            rows.append((lead_id, "purchase", "email", rng.choice([100, 250, 900]), at))
    await pool.executemany(
        "INSERT INTO interactions (lead_id, type, channel, value, occurred_at) VALUES ($1, $2, $3, $4, $5)", rows)
    return pool


def consolidator(pool, redis_client, batch: int = 10_000, progress=None) -> MemoryConsolidator:
    return MemoryConsolidator(PostgresConsolidationStore(pool), ShortTermMemory(RedisShortTermStore(redis_client)),
                        LongTermMemory(PostgresLongTermStore(pool)), EpisodicMemory(PostgresEpisodicStore(pool)),
                        SemanticMemory(PostgresGraphStore(pool)), batch=batch, progress=progress)


async def state(pool) -> dict:
    """Everything consolidation writes, without its own bookkeeping timestamps."""
    queries = {
        "episodes": "SELECT id, lead_id, segment, context, actions, outcome, outcome_value, started_at, ended_at, "
                    "embedding::text FROM episodes ORDER BY id",
        "profiles": "SELECT lead_id, profile, recency_days, frequency, monetary, r_score, f_score, m_score, "
                    "rfm_segment, rfm_as_of FROM lead_profiles ORDER BY lead_id",
        "insights": "SELECT kind, segment, title, description, support, confidence, evidence "
                    "FROM episodic_insights ORDER BY kind, segment, title",
        "edges": "SELECT source, target, type, weight, provenance FROM kg_edges ORDER BY source, target, type",
        "nodes": "SELECT id, kind, name, properties FROM kg_nodes ORDER BY id",
        "watermarks": "SELECT step, position, target, cursor FROM consolidation_watermarks ORDER BY step",
    }
    return {name: [dict(r) for r in await pool.fetch(q)] for name, q in queries.items()}


@pytest.fixture
async def redis_empty(migrated):
    client = aioredis.from_url(migrated.redis_url)
    yield client
    await client.aclose()


async def test_consolidation_learns_episodes_rfm_patterns_and_graph_weights(migrated, redis_empty):
    pool = await seeded_database(migrated, "consolidate_learns")
    try:
        report = await consolidator(pool, redis_empty).run(AS_OF)
        assert report.leads_replayed == 60 and report.episodes_written >= 60
        assert report.rfm_scored == await pool.fetchval(
            "SELECT count(DISTINCT lead_id) FROM interactions WHERE type = 'purchase' AND occurred_at < '2026-07-01Z'")
        outcomes = {r["outcome"] for r in await pool.fetch("SELECT DISTINCT outcome FROM episodes")}
        assert "converted" in outcomes and outcomes & {"engaged", "no_response"}
        learned = await pool.fetch("SELECT * FROM kg_edges WHERE provenance = 'consolidator'")
        assert {r["type"] for r in learned} == {"CONVERTS_TO", "PRECEDES"}
        assert all(0 <= r["weight"] <= 1 for r in learned)
        assert report.patterns == await pool.fetchval("SELECT count(*) FROM episodic_insights")
    finally:
        await pool.close()


async def test_running_twice_changes_nothing_the_second_time(migrated, redis_empty):
    pool = await seeded_database(migrated, "consolidate_twice")
    try:
        await consolidator(pool, redis_empty).run(AS_OF)
        first = await state(pool)
        again = await consolidator(pool, redis_empty).run(AS_OF)
        assert again.episodes_written == 0 and again.leads_replayed == 0
        assert await state(pool) == first
    finally:
        await pool.close()


async def test_a_run_killed_midway_and_rerun_ends_like_an_uninterrupted_run(migrated, redis_empty):
    whole = await seeded_database(migrated, "consolidate_whole")
    broken = await seeded_database(migrated, "consolidate_broken")
    try:
        await consolidator(whole, redis_empty, batch=20).run(AS_OF)

        batches = 0

        def kill_after_two_batches(message: str) -> None:
            nonlocal batches
            if message.startswith("episodes:"):
                batches += 1
                if batches == 2:
                    raise Killed()

        with pytest.raises(Killed):
            await consolidator(broken, redis_empty, batch=20, progress=kill_after_two_batches).run(AS_OF)
        cursor, position = await broken.fetchrow("SELECT cursor, position FROM consolidation_watermarks")
        assert cursor is not None and position == 0, "the cursor kept the progress of the committed batches"

        await consolidator(broken, redis_empty, batch=20).run(AS_OF)
        assert await state(broken) == await state(whole)
    finally:
        await whole.close()
        await broken.close()


async def test_new_interactions_extend_the_open_journey_under_the_same_episode(migrated, redis_empty):
    pool = await seeded_database(migrated, "consolidate_extend")
    try:
        await consolidator(pool, redis_empty).run(AS_OF)
        lead_id, ended = await pool.fetchrow(
            "SELECT lead_id, max(ended_at) FROM episodes WHERE outcome <> 'converted' GROUP BY lead_id LIMIT 1")
        episodes_before = await pool.fetchval("SELECT count(*) FROM episodes WHERE lead_id = $1", lead_id)
        await pool.execute("INSERT INTO interactions (lead_id, type, channel, value, occurred_at) "
                           "VALUES ($1, 'purchase', 'email', 500, $2)", lead_id, ended + timedelta(days=2))
        report = await consolidator(pool, redis_empty).run(AS_OF)
        assert report.leads_replayed == 1
        assert await pool.fetchval("SELECT count(*) FROM episodes WHERE lead_id = $1", lead_id) == episodes_before
        assert await pool.fetchval(
            "SELECT outcome FROM episodes WHERE lead_id = $1 ORDER BY ended_at DESC LIMIT 1", lead_id) == "converted"
    finally:
        await pool.close()
