"""Read-only views the MCP handlers need beyond the lead listing: leads by id (batch scoring of
stored leads) and a lead's interactions (``db://interactions/{lead_id}``). Nothing here writes.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from marketing_agents.domain import Lead
from marketing_agents.stores.postgres import translated_errors


def lead_of(row: asyncpg.Record) -> Lead:
    return Lead.model_validate({key: row[key] for key in Lead.model_fields})


class LeadReads:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def leads(self, lead_ids: list[UUID]) -> dict[UUID, Lead]:
        """The stored leads among ``lead_ids``, by id (unknown ids are simply absent)."""
        async with translated_errors("read leads"):
            rows = await self._pool.fetch("SELECT * FROM leads WHERE id = ANY($1::uuid[])", lead_ids)
        return {row["id"]: lead_of(row) for row in rows}

    async def interactions(self, lead_id: UUID, limit: int) -> list[dict[str, Any]]:
        """The lead's interactions, newest first."""
        async with translated_errors("read interactions"):
            rows = await self._pool.fetch(
                """SELECT id, type, channel, campaign_id, conversation_id, value, occurred_at, attributes, recorded_at
                   FROM interactions WHERE lead_id = $1 ORDER BY occurred_at DESC, id DESC LIMIT $2""",
                lead_id, limit)
        return [dict(row) for row in rows]
