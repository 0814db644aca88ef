"""The leads table as the batch scoring job sees it: pages of leads a model version has not scored yet."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pandas as pd

from marketing_agents.actors.enrichment import Enricher
from marketing_agents.stores.postgres import translated_errors

_PAGE = """
SELECT l.*,
       (SELECT t.result -> 'enrichment' FROM triage_results t WHERE t.lead_id = l.id
        ORDER BY t.triaged_at, t.id LIMIT 1) AS stored_enrichment
FROM leads l
WHERE l.model_version IS DISTINCT FROM $1 AND ($2::uuid IS NULL OR l.id > $2)
ORDER BY l.id LIMIT $3
"""


class LeadScoreStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._enricher = Enricher()

    async def scored_by(self, version: str) -> int:
        async with translated_errors("count scored leads"):
            return await self._pool.fetchval("SELECT count(*) FROM leads WHERE model_version = $1", version)

    async def unscored_count(self, version: str) -> int:
        async with translated_errors("count unscored leads"):
            return await self._pool.fetchval(
                "SELECT count(*) FROM leads WHERE model_version IS DISTINCT FROM $1", version)

    async def unscored_page(self, version: str, after: UUID | None, size: int) -> tuple[pd.DataFrame, UUID | None]:
        """The next ``size`` leads after ``after`` (by id) not scored by ``version``, as model features,
        and the last id read (None when there are no more). A stored row that no longer validates as a
        lead is left out of the frame, unscored, for a person to fix."""
        from marketing_agents.scoring_models.conversions import stored_lead_features

        async with translated_errors("read leads to score"):
            records = await self._pool.fetch(_PAGE, version, after, size)
        rows = []
        for record in records:
            features = stored_lead_features(record, self._enricher)
            if features is not None:
                rows.append({"lead_id": record["id"], **features})
        return pd.DataFrame(rows), (records[-1]["id"] if records else None)

    async def save(self, lead_ids: list[UUID], probabilities: list[float], version: str) -> int:
        """Writes one page of scores in one transaction; a lead already scored by ``version`` is left alone."""
        async with translated_errors("store model scores"), self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                """UPDATE leads l SET model_probability = s.p, model_version = $3, model_scored_at = now()
                   FROM unnest($1::uuid[], $2::real[]) AS s(id, p)
                   WHERE l.id = s.id AND l.model_version IS DISTINCT FROM $3""",
                lead_ids, probabilities, version)
        return int(status.split()[-1])
