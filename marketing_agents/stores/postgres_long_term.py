"""The long-term memory port over PostgreSQL: lead profiles, behaviour analytics and RFM columns."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from marketing_agents.domain.rfm import Purchase, RfmScore
from marketing_agents.stores.postgres import translated_errors

SCORE_HISTORY_LIMIT = 50


class PostgresLongTermStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def purchases(self, as_of: date) -> list[Purchase]:
        """Every purchase up to the end of ``as_of`` (UTC), keyed by lead id."""
        async with translated_errors("read purchases"):
            rows = await self._pool.fetch(
                """SELECT lead_id::text AS lead_key, occurred_at, coalesce(value, 0) AS value FROM interactions
                   WHERE type = 'purchase' AND occurred_at < ($1::date + 1)::timestamp AT TIME ZONE 'UTC'""",
                as_of,
            )
        return [Purchase(r["lead_key"], r["occurred_at"], r["value"]) for r in rows]

    async def write_rfm(self, scores: list[RfmScore], as_of: date) -> int:
        """Replaces every lead's RFM columns in one transaction: leads without a row lose stale scores."""
        async with translated_errors("write RFM scores"), self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """UPDATE lead_profiles SET recency_days = NULL, frequency = NULL, monetary = NULL, r_score = NULL,
                          f_score = NULL, m_score = NULL, rfm_segment = NULL, rfm_as_of = $1, updated_at = now()
                   WHERE rfm_as_of IS NOT NULL""",
                as_of,
            )
            await conn.executemany(
                """INSERT INTO lead_profiles (lead_id, recency_days, frequency, monetary, r_score, f_score, m_score,
                                              rfm_segment, rfm_as_of)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                   ON CONFLICT (lead_id) DO UPDATE SET
                       recency_days = EXCLUDED.recency_days, frequency = EXCLUDED.frequency,
                       monetary = EXCLUDED.monetary, r_score = EXCLUDED.r_score, f_score = EXCLUDED.f_score,
                       m_score = EXCLUDED.m_score, rfm_segment = EXCLUDED.rfm_segment,
                       rfm_as_of = EXCLUDED.rfm_as_of, updated_at = now()""",
                [(UUID(s.lead_key), s.recency_days, s.frequency, s.monetary, s.r_score, s.f_score, s.m_score,
                  s.rfm_segment, as_of) for s in scores],
            )
        return len(scores)

    async def rfm_rows(self) -> list[dict[str, Any]]:
        """The stored RFM of every lead that has one, with the lead's external id, in a stable order."""
        async with translated_errors("read RFM scores"):
            rows = await self._pool.fetch(
                """SELECT coalesce(l.external_id, l.id::text) AS external_id, p.recency_days, p.frequency,
                          p.monetary, p.r_score, p.f_score, p.m_score, p.rfm_segment
                   FROM lead_profiles p JOIN leads l ON l.id = p.lead_id
                   WHERE p.r_score IS NOT NULL ORDER BY 1"""
            )
        return [dict(r) for r in rows]

    async def record_activity(self, lead_id: UUID, channel: str | None, at: datetime) -> None:
        """Counts one engagement on ``channel`` and moves the last activity forward (never back)."""
        async with translated_errors("record activity"):
            await record_activity(self._pool, lead_id, channel, at)

    async def record_score(self, lead_id: UUID, lead_score: float, at: datetime) -> None:
        """Appends to the lead's score history, keeping the newest SCORE_HISTORY_LIMIT entries."""
        async with translated_errors("record a score"):
            await record_score(self._pool, lead_id, lead_score, at)

    async def merge_profile(self, lead_id: UUID, facts: dict[str, Any]) -> int:
        """Merges ``facts`` into the profile document; 1 if that changed anything, 0 otherwise."""
        async with translated_errors("update a profile"):
            status = await self._pool.execute(
                """INSERT INTO lead_profiles (lead_id, profile) SELECT id, $2::jsonb FROM leads WHERE id = $1
                   ON CONFLICT (lead_id) DO UPDATE SET profile = lead_profiles.profile || EXCLUDED.profile,
                       updated_at = now()
                   WHERE NOT lead_profiles.profile @> EXCLUDED.profile""",
                lead_id, facts)
        return int(status.split()[-1])

    async def profile(self, lead_id: UUID) -> dict[str, Any] | None:
        async with translated_errors("read a profile"):
            row = await self._pool.fetchrow("SELECT * FROM lead_profiles WHERE lead_id = $1", lead_id)
        return dict(row) if row is not None else None


_RECORD_ACTIVITY = """
INSERT INTO lead_profiles (lead_id, engagement_by_channel, last_activity_at)
VALUES ($1, CASE WHEN $2::text IS NULL THEN '{}'::jsonb ELSE jsonb_build_object($2::text, 1) END, $3)
ON CONFLICT (lead_id) DO UPDATE SET
    engagement_by_channel = CASE WHEN $2::text IS NULL THEN lead_profiles.engagement_by_channel
        ELSE lead_profiles.engagement_by_channel || jsonb_build_object(
            $2::text, coalesce((lead_profiles.engagement_by_channel ->> $2::text)::int, 0) + 1) END,
    last_activity_at = greatest(lead_profiles.last_activity_at, EXCLUDED.last_activity_at),
    updated_at = now()
"""


async def record_activity(db: asyncpg.Pool | asyncpg.Connection, lead_id: UUID, channel: str | None,
                          at: datetime) -> None:
    """One engagement of the lead: counted on ``channel`` when there is one, and the last activity
    moved forward (never back). Takes a connection too, so that an interaction and the behaviour it
    adds commit together (``stores.postgres_interactions``)."""
    await db.execute(_RECORD_ACTIVITY, lead_id, channel, at)


_RECORD_SCORE = """
INSERT INTO lead_profiles (lead_id, score_history) VALUES ($1, jsonb_build_array($2::jsonb))
ON CONFLICT (lead_id) DO UPDATE SET
    score_history = (SELECT coalesce(jsonb_agg(e ORDER BY n), '[]'::jsonb) FROM (
        SELECT e, n FROM jsonb_array_elements(lead_profiles.score_history || jsonb_build_array($2::jsonb))
            WITH ORDINALITY AS h(e, n)
        ORDER BY n DESC LIMIT $3) newest),
    updated_at = now()
"""


async def record_score(db: asyncpg.Pool | asyncpg.Connection, lead_id: UUID, lead_score: float, at: datetime, *,
                       triage_category: str | None = None, factor: dict[str, Any] | None = None) -> None:
    """Appends one entry to the lead's score history (``ScorePoint``), keeping the newest SCORE_HISTORY_LIMIT.

    Takes a connection too, so that a rescoring by behaviour and the interaction that caused it commit
    together (``stores.postgres_rescoring``); those entries also name the category and the factor.
    """
    entry: dict[str, Any] = {"lead_score": lead_score, "at": at.isoformat()}
    if triage_category is not None:
        entry["triage_category"] = triage_category
    if factor is not None:
        entry["factor"] = factor
    await db.execute(_RECORD_SCORE, lead_id, entry, SCORE_HISTORY_LIMIT)
