"""What the memory consolidator reads and writes in PostgreSQL: changed leads, episodes, watermarks."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from marketing_agents.domain.episode import Episode, InteractionFact, LeadFacts
from marketing_agents.domain.situation import embed_situation
from marketing_agents.stores.postgres import translated_errors
from marketing_agents.stores.postgres_episodic import _vector


@dataclass(frozen=True)
class Progress:
    position: int
    target: int
    cursor: UUID | None


class PostgresConsolidationStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def progress(self, step: str) -> Progress:
        """Where the step stands; a run that finished last time starts a new one up to the newest interaction."""
        async with translated_errors("read a watermark"), self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT position, target, cursor FROM consolidation_watermarks WHERE step = $1", step)
            if row is not None and row["target"] is not None:
                return Progress(row["position"], row["target"], row["cursor"])
            position = row["position"] if row else 0
            target = await conn.fetchval("SELECT coalesce(max(id), 0) FROM interactions")
            await conn.execute(
                """INSERT INTO consolidation_watermarks (step, position, target) VALUES ($1, $2, $3)
                   ON CONFLICT (step) DO UPDATE SET target = EXCLUDED.target, cursor = NULL, updated_at = now()""",
                step, position, target)
        return Progress(position, target, None)

    async def next_leads(self, progress: Progress, limit: int) -> list[UUID]:
        """The next leads (by id, after the cursor) with interactions in (position, target]."""
        async with translated_errors("find changed leads"):
            rows = await self._pool.fetch(
                """SELECT DISTINCT lead_id FROM interactions
                   WHERE id > $1 AND id <= $2 AND ($3::uuid IS NULL OR lead_id > $3)
                   ORDER BY lead_id LIMIT $4""",
                progress.position, progress.target, progress.cursor, limit)
        return [r["lead_id"] for r in rows]

    async def finish(self, step: str, progress: Progress) -> None:
        async with translated_errors("advance a watermark"):
            await self._pool.execute(
                """UPDATE consolidation_watermarks SET position = $2, target = NULL, cursor = NULL, updated_at = now()
                   WHERE step = $1""", step, progress.target)

    async def journeys(self, lead_ids: list[UUID]) -> list[tuple[LeadFacts, list[InteractionFact]]]:
        async with translated_errors("read journeys"), self._pool.acquire() as conn:
            leads = await conn.fetch(
                "SELECT id, industry, company_size, country, source FROM leads WHERE id = ANY($1::uuid[])", lead_ids)
            rows = await conn.fetch(
                """SELECT id, lead_id, type, channel, coalesce(value, 0)::float8 AS value, occurred_at
                   FROM interactions WHERE lead_id = ANY($1::uuid[]) ORDER BY lead_id, occurred_at, id""", lead_ids)
        by_lead: dict[UUID, list[InteractionFact]] = defaultdict(list)
        for r in rows:
            by_lead[r["lead_id"]].append(InteractionFact(r["id"], r["type"], r["channel"], r["value"], r["occurred_at"]))
        return [(LeadFacts(r["id"], r["industry"], r["company_size"], r["country"], r["source"]), by_lead[r["id"]])
                for r in leads]

    async def save_episodes(self, episodes: list[Episode], step: str, cursor: UUID) -> None:
        """Upserts the episodes and moves the step's cursor past their leads, in one transaction."""
        rows = [(e.id, e.lead_id, e.segment, e.context, e.actions, e.outcome.value, e.outcome_value, e.started_at,
                 e.ended_at, _vector(embed_situation(e.context))) for e in episodes]
        async with translated_errors("store episodes"), self._pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                """INSERT INTO episodes (id, lead_id, segment, context, actions, outcome, outcome_value,
                                         started_at, ended_at, embedding)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::vector)
                   ON CONFLICT (id) DO UPDATE SET segment = EXCLUDED.segment, context = EXCLUDED.context,
                       actions = EXCLUDED.actions, outcome = EXCLUDED.outcome, outcome_value = EXCLUDED.outcome_value,
                       ended_at = EXCLUDED.ended_at, embedding = EXCLUDED.embedding
                   WHERE (episodes.actions, episodes.outcome, episodes.ended_at)
                         IS DISTINCT FROM (EXCLUDED.actions, EXCLUDED.outcome, EXCLUDED.ended_at)""",
                rows)
            await conn.execute(
                "UPDATE consolidation_watermarks SET cursor = $2, updated_at = now() WHERE step = $1", step, cursor)

    async def all_episodes(self) -> list[Episode]:
        async with translated_errors("read episodes"):
            rows = await self._pool.fetch(
                "SELECT id, lead_id, segment, context, actions, outcome, outcome_value, started_at, ended_at "
                "FROM episodes ORDER BY id")
        return [Episode.model_validate(dict(r)) for r in rows]

    async def prune_insights(self, keep: set[tuple[str, str, str]]) -> int:
        """Deletes the insights (kind, segment, title) that the latest mining no longer supports."""
        async with translated_errors("prune insights"):
            rows = await self._pool.fetch("SELECT kind, segment, title FROM episodic_insights")
            stale = [(r["kind"], r["segment"], r["title"]) for r in rows
                     if (r["kind"], r["segment"], r["title"]) not in keep]
            if stale:
                await self._pool.execute(
                    """DELETE FROM episodic_insights WHERE (kind, segment, title) IN
                       (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))""",
                    [k for k, _, _ in stale], [s for _, s, _ in stale], [t for _, _, t in stale])
        return len(stale)

    async def expire_idempotency_keys(self) -> int:
        async with translated_errors("expire idempotency keys"):
            return int((await self._pool.execute("DELETE FROM idempotency_keys WHERE expires_at <= now()")).split()[-1])
