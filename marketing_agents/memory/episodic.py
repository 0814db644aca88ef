"""Episodic memory: journeys remembered with their outcomes, found again by situation."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from marketing_agents.domain.episode import Episode, EpisodeOutcome, Insight, InsightKind, SimilarEpisode
from marketing_agents.domain.situation import embed_situation
from marketing_agents.stores.postgres_episodic import PostgresEpisodicStore


class EpisodicMemory:
    def __init__(self, store: PostgresEpisodicStore) -> None:
        self.store = store

    async def record(self, episode: Episode) -> None:
        await self.store.add(episode, embed_situation(episode.context))

    async def recall_similar(
        self, situation: dict[str, Any], limit: int = 5, outcome: EpisodeOutcome | None = None
    ) -> list[SimilarEpisode]:
        """The past episodes most like ``situation`` (lead and context features), best first."""
        return await self.store.similar(embed_situation(situation), limit, outcome)

    async def episodes_of(self, lead_id: UUID) -> list[Episode]:
        return await self.store.for_lead(lead_id)

    async def learn(self, insight: Insight) -> None:
        await self.store.put_insight(insight)

    async def insights(self, kind: InsightKind | None = None, segment: str | None = None) -> list[Insight]:
        return await self.store.insights(kind, segment)
