"""Episodic memory against real PostgreSQL + pgvector: planted neighbours are found again."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from marketing_agents.domain.episode import Episode, EpisodeOutcome, Insight, InsightKind
from marketing_agents.memory.episodic import EpisodicMemory
from marketing_agents.stores.postgres_episodic import PostgresEpisodicStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)
INDUSTRIES = ["retail", "healthcare", "logistics", "education", "media", "insurance", "energy", "travel"]
SENIORITY = ["manager", "director", "individual contributor", "student"]


async def new_lead(pool) -> uuid.UUID:
    return await pool.fetchval(
        """INSERT INTO leads (id, email, first_name, last_name, company, job_title, industry, company_size,
                              country, source, consent, status)
           VALUES (gen_random_uuid(), 'e@p.io', 'E', 'P', 'Co', 'CTO', 'software', 50, 'DE', 'event', '{}', 'engaged')
           RETURNING id""")


def episode(lead_id, context, outcome=EpisodeOutcome.NO_RESPONSE) -> Episode:
    return Episode(id=uuid.uuid4(), lead_id=lead_id, segment=f"{context['industry']}/test", context=context,
                   actions=[{"channel": "email", "template": "intro-value"}], outcome=outcome,
                   started_at=T0, ended_at=T0 + timedelta(days=14))


@pytest.fixture
def memory(pool) -> EpisodicMemory:
    return EpisodicMemory(PostgresEpisodicStore(pool))


@pytest.fixture
async def planted(pool, memory):
    """200 unrelated episodes, and three close to a VP at a large German fintech who came by referral."""
    rng = random.Random(3)
    lead_id = await new_lead(pool)
    for _ in range(200):
        await memory.record(episode(lead_id, {
            "industry": rng.choice(INDUSTRIES), "seniority": rng.choice(SENIORITY),
            "country": rng.choice(["US", "BR", "IN", "JP"]), "source": rng.choice(["paid_search", "list_import"]),
            "company_size": rng.randint(1, 40), "lead_score": rng.uniform(0, 40), "channels": ["sms"]}))
    tag = uuid.uuid4().hex[:6]  # each test plants its own neighbours
    target = {"industry": f"fintech-{tag}", "seniority": f"vp-{tag}", "country": "DE", "source": f"referral-{tag}",
              "company_size": 2000, "lead_score": 85, "channels": ["email", "linkedin"], "triage_category": "hot"}
    near = [
        episode(lead_id, {**target, "lead_score": 80}, EpisodeOutcome.CONVERTED),
        episode(lead_id, {**target, "company_size": 1500}, EpisodeOutcome.CONVERTED),
        episode(lead_id, {**target, "channels": ["email"]}, EpisodeOutcome.NO_RESPONSE),
    ]
    for e in near:
        await memory.record(e)
    return target, near


async def test_the_planted_nearest_episodes_come_back_first(memory, planted):
    target, near = planted
    found = await memory.recall_similar(target, limit=3)
    assert {f.episode.id for f in found} == {e.id for e in near}
    assert all(f.similarity > 0.9 for f in found)
    assert [f.similarity for f in found] == sorted((f.similarity for f in found), reverse=True)


async def test_similar_episodes_can_be_filtered_by_outcome(memory, planted):
    target, near = planted
    converted = await memory.recall_similar(target, limit=2, outcome=EpisodeOutcome.CONVERTED)
    assert {f.episode.id for f in converted} == {near[0].id, near[1].id}
    assert all(f.episode.outcome is EpisodeOutcome.CONVERTED for f in converted)


async def test_the_search_uses_the_hnsw_index(pool):
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch(
            "EXPLAIN SELECT id FROM episodes ORDER BY embedding <=> (SELECT embedding FROM episodes LIMIT 1) LIMIT 5"))
    assert "idx_episode_embedding" in plan


async def test_recording_an_episode_twice_stores_it_once(pool, memory):
    lead_id = await new_lead(pool)
    e = episode(lead_id, {"industry": "software"})
    await memory.record(e)
    await memory.record(e)
    assert [x.id for x in await memory.episodes_of(lead_id)] == [e.id]


async def test_insights_are_replaced_not_duplicated(memory):
    segment = f"seg-{uuid.uuid4().hex[:6]}"
    first = Insight(kind=InsightKind.SUCCESS_PATTERN, segment=segment, title="email then call",
                    description="email, then a call within a day", support=12, confidence=0.4)
    await memory.learn(first)
    await memory.learn(first.model_copy(update={"support": 30, "confidence": 0.7}))
    stored = await memory.insights(InsightKind.SUCCESS_PATTERN, segment)
    assert [(i.title, i.support, i.confidence) for i in stored] == [("email then call", 30, pytest.approx(0.7))]
