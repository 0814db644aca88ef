"""The unified memory manager: the one facade agents use to remember and to recall.

``recall`` asks every tier at once and waits no longer than its deadline: an agent would rather act
on three tiers now than on four too late, so the answer says which tier did not answer in time.
``forget`` and ``export`` are the right to be forgotten and the right of access across all tiers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from datetime import datetime
from typing import Any
from uuid import UUID

from marketing_agents.domain import Lead
from marketing_agents.domain.episode import Episode
from marketing_agents.domain.recall import MemoryRecall
from marketing_agents.memory.ports import EpisodicPort, LeadRecords, LongTermPort, SemanticPort, ShortTermPort

log = logging.getLogger(__name__)

TIERS = ("short_term", "long_term", "episodic", "semantic")


def situation_of(lead: Lead, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The features episodic memory compares situations by."""
    return {"industry": lead.industry.lower(), "country": lead.country, "source": lead.source,
            "company_size": lead.company_size, "channels": [c.value for c in lead.consent.channels()],
            **(extra or {})}


class UnifiedMemoryManager:
    def __init__(self, short_term: ShortTermPort, long_term: LongTermPort, episodic: EpisodicPort,
                 semantic: SemanticPort, leads: LeadRecords, deadline_s: float = 0.25) -> None:
        self.short_term = short_term
        self.long_term = long_term
        self.episodic = episodic
        self.semantic = semantic
        self.leads = leads
        self.deadline_s = deadline_s

    async def recall(self, lead: Lead, persona: str | None = None, situation: dict[str, Any] | None = None,
                     deadline_s: float | None = None) -> MemoryRecall:
        started = time.perf_counter()
        asks: dict[str, Awaitable[Any]] = {
            "short_term": self.short_term.context(lead.id),
            "long_term": self.long_term.profile(lead.id),
            "episodic": self.episodic.recall_similar(situation_of(lead, situation), 5),
        }
        if persona:
            asks["semantic"] = self.semantic.best_channels(lead.industry, persona, 3)
        tasks = {name: asyncio.ensure_future(ask) for name, ask in asks.items()}
        done, pending = await asyncio.wait(tasks.values(), timeout=deadline_s or self.deadline_s)
        for task in pending:
            task.cancel()
        answers: dict[str, Any] = {}
        missing: dict[str, str] = {}
        for name, task in tasks.items():
            if task in pending:
                missing[name] = f"no answer within {deadline_s or self.deadline_s:.3f} s"
            elif task.exception() is not None:
                missing[name] = f"{type(task.exception()).__name__}: {task.exception()}"
                log.warning("memory tier %s failed during recall: %s", name, task.exception())
            else:
                answers[name] = task.result()
        return MemoryRecall(
            lead_id=lead.id,
            context=answers.get("short_term"),
            profile=answers.get("long_term"),
            similar_episodes=answers.get("episodic") or [],
            best_channels=answers.get("semantic") or [],
            missing=missing,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
        )

    async def record_activity(self, lead_id: UUID, channel: str, at: datetime) -> None:
        await self.long_term.record_activity(lead_id, channel, at)

    async def record_score(self, lead_id: UUID, lead_score: float, at: datetime) -> None:
        await self.long_term.record_score(lead_id, lead_score, at)

    async def record_episode(self, episode: Episode) -> None:
        await self.episodic.record(episode)

    async def forget(self, lead_id: UUID) -> dict[str, int]:
        """Erases the lead from every tier; returns what was removed where.

        PostgreSQL goes first and in one transaction (the lead row cascades to its profile, episodes,
        interactions, handoffs, plans and touchpoints); then the short-term keys. The knowledge graph
        holds no personal data, so it has nothing to remove. PostgreSQL keeps a record of the erasure,
        so a call after a Redis failure gets the first call's report back, cleans Redis again (deleting
        what is gone already is harmless) and only then marks the erasure finished.
        """
        await self.short_term.seal_lead(lead_id)  # first: whatever is still under way cannot write back
        removed = await self.leads.erase(lead_id)
        keys = await self.short_term.forget_lead(lead_id)
        removed["short_term_keys"] = removed.get("short_term_keys", 0) + keys
        if removed.get("leads"):
            await self.leads.erasure_finished(lead_id, removed)
        return removed

    async def export(self, lead_id: UUID) -> dict[str, Any] | None:
        """Everything every tier holds about the lead, or None for an unknown lead."""
        stored = await self.leads.export(lead_id)
        if stored is None:
            return None
        stored["short_term"] = await self.short_term.export_lead(lead_id)
        stored["semantic"] = "the knowledge graph holds no personal data"
        return stored
