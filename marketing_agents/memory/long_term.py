"""Long-term memory: what is known about a lead for good: profile, behaviour, RFM."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from marketing_agents.domain.rfm import RfmScore
from marketing_agents.memory.rfm import compute_rfm
from marketing_agents.stores.postgres_long_term import PostgresLongTermStore

RFM_COLUMNS = ("external_id", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "rfm_segment")


class LongTermMemory:
    def __init__(self, store: PostgresLongTermStore) -> None:
        self.store = store

    async def refresh_rfm(self, as_of: date) -> list[RfmScore]:
        """Recomputes every lead's RFM as of ``as_of`` from the purchases stored, and stores it."""
        scores = compute_rfm(await self.store.purchases(as_of), as_of)
        await self.store.write_rfm(scores, as_of)
        return scores

    async def rfm_rows(self) -> list[dict[str, Any]]:
        return await self.store.rfm_rows()

    async def record_activity(self, lead_id: UUID, channel: str, at: datetime) -> None:
        await self.store.record_activity(lead_id, channel, at)

    async def record_score(self, lead_id: UUID, lead_score: float, at: datetime) -> None:
        await self.store.record_score(lead_id, lead_score, at)

    async def profile(self, lead_id: UUID) -> dict[str, Any] | None:
        return await self.store.profile(lead_id)
