"""The leads table as the batch scoring job sees it: pages of leads a model version has not scored yet."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from marketing_agents.domain.triage import StoredLead
from marketing_agents.stores.postgres import translated_errors

# The enrichment triage stored first: the lead as it was when it was scored.
STORED_ENRICHMENT = """(SELECT t.result -> 'enrichment' FROM triage_results t WHERE t.lead_id = l.id
        ORDER BY t.triaged_at, t.id LIMIT 1) AS stored_enrichment"""

_PAGE = f"""
SELECT l.*, {STORED_ENRICHMENT}
FROM leads l
WHERE l.model_version IS DISTINCT FROM $1 AND ($2::uuid IS NULL OR l.id > $2)
ORDER BY l.id LIMIT $3
"""


class LeadScoreStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def scored_by(self, version: str) -> int:
        async with translated_errors("count scored leads"):
            return await self._pool.fetchval("SELECT count(*) FROM leads WHERE model_version = $1", version)

    async def unscored_count(self, version: str) -> int:
        async with translated_errors("count unscored leads"):
            return await self._pool.fetchval(
                "SELECT count(*) FROM leads WHERE model_version IS DISTINCT FROM $1", version)

    async def unscored_page(self, version: str, after: UUID | None, size: int) -> tuple[list[StoredLead], UUID | None]:
        """The next ``size`` leads after ``after`` (by id) not scored by ``version``, and the last id
        read (None when there are no more)."""
        async with translated_errors("read leads to score"):
            records = await self._pool.fetch(_PAGE, version, after, size)
        return [StoredLead.from_row(record) for record in records], (records[-1]["id"] if records else None)

    async def save(self, lead_ids: list[UUID], probabilities: list[float], version: str) -> int:
        """Writes one page of scores in one transaction; a lead already scored by ``version`` is left alone."""
        async with translated_errors("store model scores"), self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                """UPDATE leads l SET model_probability = s.p, model_version = $3, model_scored_at = now()
                   FROM unnest($1::uuid[], $2::real[]) AS s(id, p)
                   WHERE l.id = s.id AND l.model_version IS DISTINCT FROM $3""",
                lead_ids, probabilities, version)
        return int(status.split()[-1])


class ConversionReads:
    """Leads old enough to know their outcome, each labelled by a conversion within the window
    (see ``flows.conversion_training``)."""

    _LEADS = f"""
    SELECT l.*, {STORED_ENRICHMENT},
           EXISTS (SELECT 1 FROM conversions c
                   WHERE c.lead_id = l.id AND c.converted_at >= l.created_at
                     AND c.converted_at < l.created_at + make_interval(days => $1::integer)) AS converted
    FROM leads l
    WHERE l.created_at <= $2::timestamptz - make_interval(days => $1::integer)
      AND NOT coalesce((l.attributes ->> 'placeholder')::boolean, false)
    ORDER BY l.created_at, l.id
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def now(self) -> datetime:
        async with translated_errors("read the database clock"):
            return await self._pool.fetchval("SELECT now()")

    async def leads_with_outcome(self, window_days: int, as_of: datetime) -> list[StoredLead]:
        async with translated_errors("read leads and their conversions"):
            records = await self._pool.fetch(self._LEADS, window_days, as_of)
        return [StoredLead.from_row(record) for record in records]
