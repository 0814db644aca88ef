"""Read-only views of leads and their interactions: pages of recent leads, leads by id, a lead's interactions.

The MCP resource router reads through these (``db://leads``, ``db://interactions/{lead_id}``, batch
scoring of stored leads); nothing here writes. Pages use keyset pagination on ``(created_at, id)``:
a page never repeats or skips a lead however many arrive while a client pages through.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from marketing_agents.domain import Lead
from marketing_agents.stores.postgres import translated_errors

SUMMARY_COLUMNS = ("id, external_id, email, first_name, last_name, company, job_title, industry, company_size, "
                   "country, source, status, lead_score, triage_category, created_at, updated_at")


def lead_of(row: asyncpg.Record) -> Lead:
    return Lead.model_validate({key: row[key] for key in Lead.model_fields})


class LeadReads:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def recent(self, limit: int, before: tuple[datetime, UUID] | None = None) -> list[dict[str, Any]]:
        """Lead summaries, newest first; ``before`` is the (created_at, id) of the previous page's last lead."""
        async with translated_errors("list leads"):
            if before is None:
                rows = await self._pool.fetch(
                    f"SELECT {SUMMARY_COLUMNS} FROM leads ORDER BY created_at DESC, id DESC LIMIT $1", limit)
            else:
                rows = await self._pool.fetch(
                    f"""SELECT {SUMMARY_COLUMNS} FROM leads WHERE (created_at, id) < ($2, $3)
                        ORDER BY created_at DESC, id DESC LIMIT $1""", limit, before[0], before[1])
        return [dict(row) for row in rows]

    async def count(self) -> int:
        async with translated_errors("count leads"):
            return await self._pool.fetchval("SELECT count(*) FROM leads")

    async def leads(self, lead_ids: list[UUID]) -> dict[UUID, Lead]:
        """The stored leads among ``lead_ids``, by id (unknown ids are simply absent)."""
        async with translated_errors("read leads"):
            rows = await self._pool.fetch("SELECT * FROM leads WHERE id = ANY($1::uuid[])", lead_ids)
        return {row["id"]: lead_of(row) for row in rows}

    async def exists(self, lead_id: UUID) -> bool:
        async with translated_errors("look up a lead"):
            return bool(await self._pool.fetchval("SELECT true FROM leads WHERE id = $1", lead_id))

    async def interactions(self, lead_id: UUID, limit: int) -> list[dict[str, Any]]:
        """The lead's interactions, newest first."""
        async with translated_errors("read interactions"):
            rows = await self._pool.fetch(
                """SELECT id, type, channel, campaign_id, conversation_id, value, occurred_at, attributes, recorded_at
                   FROM interactions WHERE lead_id = $1 ORDER BY occurred_at DESC, id DESC LIMIT $2""",
                lead_id, limit)
        return [dict(row) for row in rows]
