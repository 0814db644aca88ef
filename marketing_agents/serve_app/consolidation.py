"""The memory consolidator as a Serve deployment: on a schedule inside the cluster, and on demand.

One replica is enough; a lock (``memory.locks``) makes sure that, even with more, only one
consolidation runs at a time across the cluster.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date

from ray import serve

from marketing_agents.errors import Conflict
from marketing_agents.memory.consolidator import ConsolidationReport, build_consolidator
from marketing_agents.memory.locks import LockService
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.settings import get_settings
from marketing_agents.stores.connection_budget import budgeted
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.redis import RedisShortTermStore

log = logging.getLogger(__name__)
LOCK = "memory-consolidator"
LOCK_TTL_S = 15 * 60


@serve.deployment(name="MemoryConsolidator")
class MemoryConsolidatorDeployment:
    async def __init__(self) -> None:  # type: ignore[misc]  # Ray Serve awaits an async __init__
        self._settings = budgeted(get_settings(), "MemoryConsolidator")
        self._stores = StoreConnections(self._settings)
        self._schedule = (asyncio.get_running_loop().create_task(self._every(self._settings.consolidate_every_s))
                          if self._settings.consolidate_every_s else None)

    async def _every(self, period_s: int) -> None:
        while True:
            await asyncio.sleep(period_s)
            try:
                report = await self.run_now()
                log.info("scheduled consolidation: %s", report.model_dump_json())
            except Conflict:
                log.info("scheduled consolidation skipped: another one is running")
            except Exception:
                log.exception("scheduled consolidation failed; the next run resumes where it stopped")

    async def run_now(self, as_of: date | None = None) -> ConsolidationReport:
        """Runs one consolidation; raises Conflict while another runs anywhere in the cluster."""
        locks = LockService(RedisShortTermStore(self._stores.redis()), TtlPolicy.from_settings(self._settings))
        lock = await locks.acquire(LOCK, ttl_s=LOCK_TTL_S)
        if lock is None:
            raise Conflict("a memory consolidation is already running", {"lock": LOCK})
        try:
            consolidator = build_consolidator(self._settings, await self._stores.pool(), self._stores.redis(),
                                              progress=log.info)
            return await consolidator.run(as_of or date.today())
        finally:
            await locks.release(lock)
