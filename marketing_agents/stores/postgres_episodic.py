"""The episodic memory port over PostgreSQL with pgvector: episodes, similarity search, insights."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from marketing_agents.domain.episode import Episode, EpisodeOutcome, Insight, InsightKind, SimilarEpisode
from marketing_agents.stores.postgres import translated_errors


def _vector(values: list[float]) -> str:
    return "[" + ",".join(f"{v:.6f}" for v in values) + "]"


def _episode(row: asyncpg.Record) -> Episode:
    return Episode.model_validate({k: row[k] for k in Episode.model_fields})


class PostgresEpisodicStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, episode: Episode, embedding: list[float]) -> None:
        """Stores the episode; storing the same episode id again changes nothing."""
        async with translated_errors("store an episode"):
            await self._pool.execute(
                """INSERT INTO episodes (id, lead_id, segment, context, actions, outcome, outcome_value,
                                         started_at, ended_at, embedding)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::vector) ON CONFLICT (id) DO NOTHING""",
                episode.id, episode.lead_id, episode.segment, episode.context, episode.actions,
                episode.outcome.value, episode.outcome_value, episode.started_at, episode.ended_at,
                _vector(embedding),
            )

    async def similar(self, embedding: list[float], limit: int, outcome: EpisodeOutcome | None) -> list[SimilarEpisode]:
        """The nearest episodes by cosine distance (HNSW index), optionally only those with ``outcome``."""
        async with translated_errors("search episodes"), self._pool.acquire() as conn, conn.transaction():
            # A filtered HNSW scan may stop early; iterative scans keep going until enough rows match.
            await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows = await conn.fetch(
                """SELECT *, 1 - (embedding <=> $1::vector) AS similarity FROM episodes
                   WHERE $2::text IS NULL OR outcome = $2
                   ORDER BY embedding <=> $1::vector LIMIT $3""",
                _vector(embedding), outcome.value if outcome else None, limit,
            )
        return [SimilarEpisode(episode=_episode(r), similarity=max(-1.0, min(1.0, r["similarity"]))) for r in rows]

    async def for_lead(self, lead_id: UUID) -> list[Episode]:
        async with translated_errors("read episodes"):
            rows = await self._pool.fetch("SELECT * FROM episodes WHERE lead_id = $1 ORDER BY started_at", lead_id)
        return [_episode(r) for r in rows]

    async def put_insight(self, insight: Insight) -> None:
        """Creates or replaces the insight with the same kind, segment and title."""
        async with translated_errors("store an insight"):
            await self._pool.execute(
                """INSERT INTO episodic_insights (kind, segment, title, description, support, confidence, evidence)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (kind, segment, title) DO UPDATE SET description = EXCLUDED.description,
                       support = EXCLUDED.support, confidence = EXCLUDED.confidence,
                       evidence = EXCLUDED.evidence, updated_at = now()
                   WHERE (episodic_insights.description, episodic_insights.support, episodic_insights.confidence,
                          episodic_insights.evidence)
                         IS DISTINCT FROM (EXCLUDED.description, EXCLUDED.support, EXCLUDED.confidence,
                                           EXCLUDED.evidence)""",
                insight.kind.value, insight.segment, insight.title, insight.description, insight.support,
                insight.confidence, insight.evidence,
            )

    async def insights(self, kind: InsightKind | None = None, segment: str | None = None) -> list[Insight]:
        async with translated_errors("read insights"):
            rows = await self._pool.fetch(
                """SELECT * FROM episodic_insights WHERE ($1::text IS NULL OR kind = $1)
                   AND ($2::text IS NULL OR segment = $2) ORDER BY confidence DESC, support DESC, title""",
                kind.value if kind else None, segment,
            )
        return [Insight.model_validate({k: r[k] for k in Insight.model_fields}) for r in rows]
