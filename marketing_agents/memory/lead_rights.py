"""A lead's long-term profile, and the rights of access and erasure, as the API answers them.

Thin on purpose: the unified memory manager does the work (``export`` and ``forget`` over every
tier); this turns its answers into the API's models and an unknown lead into NotFound.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

from marketing_agents.domain import utc_now
from marketing_agents.domain.lead_views import LeadErasureReport, LeadExport, LeadProfile
from marketing_agents.errors import NotFound
from marketing_agents.memory.manager import UnifiedMemoryManager
from marketing_agents.stores.postgres import LEAD_TABLES


def _unknown(lead_id: UUID) -> NotFound:
    return NotFound(f"no lead with id {lead_id}", {"lead_id": str(lead_id)})


class LeadDataRights:
    def __init__(self, memory: UnifiedMemoryManager, lead_exists: Callable[[UUID], Awaitable[bool]]) -> None:
        self._memory = memory
        self._lead_exists = lead_exists

    async def profile(self, lead_id: UUID) -> LeadProfile:
        """What long-term memory holds; a known lead it has nothing on yet gets an empty profile."""
        row = await self._memory.long_term.profile(lead_id)
        if row is None and not await self._lead_exists(lead_id):
            raise _unknown(lead_id)
        return LeadProfile.from_row(lead_id, row)

    async def export(self, lead_id: UUID) -> LeadExport:
        stored = await self._memory.export(lead_id)
        if stored is None:
            raise _unknown(lead_id)
        return LeadExport(lead_id=lead_id, exported_at=utc_now(), lead=stored["lead"],
                          tables={table: stored.get(table, []) for table in LEAD_TABLES},
                          short_term=stored.get("short_term") or {}, semantic=stored.get("semantic", ""))

    async def erase(self, lead_id: UUID) -> LeadErasureReport:
        """Erases the lead from every tier; NotFound when there never was such a lead.

        Erasing an erased lead answers the erasure's report again (and cleans Redis again), so that a
        client whose first call failed half-way can retry until it gets an answer.
        """
        removed = await self._memory.forget(lead_id)
        if not removed.get("leads"):
            raise _unknown(lead_id)
        keys = removed.pop("short_term_keys", 0)
        by_tier = {"postgres": removed, "short_term": {"keys": keys}, "semantic": {}}
        return LeadErasureReport(lead_id=lead_id, erased_at=utc_now(), removed=by_tier,
                                 total=sum(removed.values()) + keys)
