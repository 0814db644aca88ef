"""Long-term memory against a real PostgreSQL: RFM from stored purchases, behaviour, score history."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from marketing_agents.memory.long_term import LongTermMemory
from marketing_agents.stores.postgres_long_term import SCORE_HISTORY_LIMIT, PostgresLongTermStore

AS_OF = date(2026, 6, 30)


async def new_lead(pool, external_id: str | None = None) -> uuid.UUID:
    return await pool.fetchval(
        """INSERT INTO leads (id, external_id, email, first_name, last_name, company, job_title, industry,
                              company_size, country, source, consent, status)
           VALUES (gen_random_uuid(), $1, 'x@y.io', 'X', 'Y', 'Co', 'CEO', 'software', 5, 'US', 'import', '{}',
                   'triaged') RETURNING id""",
        external_id,
    )


async def purchase(pool, lead_id, day: str, value: str) -> None:
    at = datetime.fromisoformat(day).replace(tzinfo=UTC)
    await pool.execute("SELECT mas_ensure_interaction_partitions($1, $1)", at)
    await pool.execute(
        "INSERT INTO interactions (lead_id, type, value, occurred_at) VALUES ($1, 'purchase', $2::numeric, $3)",
        lead_id, value, at)


@pytest.fixture
def memory(pool) -> LongTermMemory:
    return LongTermMemory(PostgresLongTermStore(pool))


@pytest.fixture
async def rfm_dataset(pool):
    """Five buyers with hand-checkable RFM (see tests/unit/test_rfm.py) and one lead who never bought."""
    await pool.execute("TRUNCATE interactions")
    tag = uuid.uuid4().hex[:6]
    leads = {key: await new_lead(pool, f"rfm-{tag}-{key}") for key in "abcdez"}
    for day in (1, 8, 15, 22, 29):
        await purchase(pool, leads["a"], f"2026-06-{day:02d}", "100")
    for day in (2, 9, 16, 20):
        await purchase(pool, leads["b"], f"2026-06-{day:02d}", "100")
    for day in ("2026-05-01", "2026-05-15", "2026-05-31"):
        await purchase(pool, leads["c"], day, "100")
    await purchase(pool, leads["d"], "2026-01-10", "150")
    await purchase(pool, leads["d"], "2026-03-02", "50")
    await purchase(pool, leads["e"], "2025-06-30", "100")
    await purchase(pool, leads["a"], "2026-07-01", "9999")  # after the reference date
    return tag, leads


async def test_rfm_from_stored_purchases_matches_the_definition(memory, rfm_dataset):
    tag, leads = rfm_dataset
    await memory.refresh_rfm(AS_OF)
    rows = {r["external_id"]: r for r in await memory.rfm_rows()}
    got = {k.rsplit("-", 1)[1]: (r["recency_days"], r["frequency"], int(r["monetary"]), r["r_score"], r["f_score"],
                                 r["m_score"], r["rfm_segment"]) for k, r in rows.items()}
    assert got == {
        "a": (1, 5, 500, 5, 5, 5, "Champions"),
        "b": (10, 4, 400, 4, 4, 4, "Champions"),
        "c": (30, 3, 300, 3, 3, 3, "Needs attention"),
        "d": (120, 2, 200, 2, 2, 2, "Hibernating"),
        "e": (365, 1, 100, 1, 1, 1, "Hibernating"),
    }


async def test_refreshing_at_a_later_date_replaces_every_score(memory, rfm_dataset, pool):
    tag, leads = rfm_dataset
    await memory.refresh_rfm(AS_OF)
    await memory.refresh_rfm(date(2025, 12, 31))  # only e had bought by then
    rows = await memory.rfm_rows()
    assert [(r["external_id"], r["recency_days"]) for r in rows] == [(f"rfm-{tag}-e", 184)]
    assert await pool.fetchval("SELECT count(*) FROM lead_profiles WHERE r_score IS NOT NULL") == 1


async def test_the_rfm_command_writes_one_row_per_buying_lead(rfm_dataset, migrated, tmp_path):
    out = tmp_path / "rfm.csv"
    result = subprocess.run(
        [sys.executable, "-m", "marketing_agents.cli", "rfm", "--as-of", "2026-06-30", "--out", str(out)],
        env={**os.environ, "MAS_POSTGRES_DSN": migrated.dsn}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "5 leads with purchases" in result.stdout
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["external_id", "recency_days", "frequency", "monetary", "r_score", "f_score",
                             "m_score", "rfm_segment"]
    champion = next(r for r in rows if r["external_id"].endswith("-a"))
    assert (champion["recency_days"], champion["frequency"], champion["rfm_segment"]) == ("1", "5", "Champions")


async def test_activity_counts_per_channel_and_last_activity_never_moves_back(memory, pool):
    lead_id = await new_lead(pool)
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    await memory.record_activity(lead_id, "email", t0)
    await memory.record_activity(lead_id, "email", t0 + timedelta(days=2))
    await memory.record_activity(lead_id, "linkedin", t0 - timedelta(days=5))
    profile = await memory.profile(lead_id)
    assert profile["engagement_by_channel"] == {"email": 2, "linkedin": 1}
    assert profile["last_activity_at"] == t0 + timedelta(days=2)


async def test_score_history_keeps_the_newest_entries(memory, pool):
    lead_id = await new_lead(pool)
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    for n in range(SCORE_HISTORY_LIMIT + 5):
        await memory.record_score(lead_id, float(n), t0 + timedelta(hours=n))
    history = (await memory.profile(lead_id))["score_history"]
    assert len(history) == SCORE_HISTORY_LIMIT
    assert [h["lead_score"] for h in history] == [float(n) for n in range(5, SCORE_HISTORY_LIMIT + 5)]
