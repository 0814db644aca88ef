"""The memory tiers as ports: what the unified memory manager and every other caller may ask of a tier.

Each tier runs either in the caller's process (``ShortTermMemory``, ``LongTermMemory``,
``EpisodicMemory``, ``SemanticMemory``, and ``stores.postgres.LeadErasure`` for the lead records) or
as a Ray actor behind a proxy (``tier_actors``), and a caller must not be able to tell which it holds.
A Protocol per tier is that promise written down: both implementations provide each of its methods
with the same signature, and tests/unit/test_memory_ports.py holds them to it, so a method added to
one side only fails a test instead of a call on the cluster.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Protocol
from uuid import UUID

from marketing_agents.domain.episode import Episode, EpisodeOutcome, Insight, InsightKind, SimilarEpisode
from marketing_agents.domain.graph import (
    ChannelRecommendation,
    GraphEdge,
    GraphNode,
    GraphPath,
    Neighbour,
    Neighbourhood,
    RelationType,
)
from marketing_agents.domain.rfm import RfmScore
from marketing_agents.memory.short_term import Turn
from marketing_agents.stores.graph_port import MAX_NEIGHBOURS


class ShortTermPort(Protocol):
    async def cache_context(self, lead_id: UUID, context: dict[str, Any]) -> None: ...

    async def context(self, lead_id: UUID) -> dict[str, Any] | None: ...

    async def remember_session(self, session_id: str, fields: dict[str, Any], lead_id: UUID | None = None) -> None: ...

    async def session(self, session_id: str) -> dict[str, Any]: ...

    async def add_turn(self, lead_id: UUID, conversation_id: str, role: str, text: str) -> int: ...

    async def conversation(self, conversation_id: str) -> list[Turn]: ...

    async def put_temp(self, name: str, value: Any, lead_id: UUID | None = None) -> None: ...

    async def temp(self, name: str) -> Any | None: ...

    async def cached_lead_ids(self) -> list[UUID]: ...

    async def seal_lead(self, lead_id: UUID) -> None: ...

    async def forget_lead(self, lead_id: UUID) -> int: ...

    async def export_lead(self, lead_id: UUID) -> dict[str, Any]: ...


class LongTermPort(Protocol):
    async def refresh_rfm(self, as_of: date) -> list[RfmScore]: ...

    async def rfm_rows(self) -> list[dict[str, Any]]: ...

    async def record_activity(self, lead_id: UUID, channel: str, at: datetime) -> None: ...

    async def record_score(self, lead_id: UUID, lead_score: float, at: datetime) -> None: ...

    async def profile(self, lead_id: UUID) -> dict[str, Any] | None: ...


class EpisodicPort(Protocol):
    async def record(self, episode: Episode) -> None: ...

    async def recall_similar(
        self, situation: dict[str, Any], limit: int = 5, outcome: EpisodeOutcome | None = None
    ) -> list[SimilarEpisode]: ...

    async def episodes_of(self, lead_id: UUID) -> list[Episode]: ...

    async def learn(self, insight: Insight) -> None: ...

    async def insights(self, kind: InsightKind | None = None, segment: str | None = None) -> list[Insight]: ...


class SemanticPort(Protocol):
    async def load_starter_graph(self) -> tuple[int, int]: ...

    async def learn(self, nodes: list[GraphNode], edges: list[GraphEdge]) -> None: ...

    async def industry_synonyms(self) -> dict[str, str]: ...

    async def neighbours(self, node_id: str, depth: int = 1,
                         types: list[RelationType] | None = None) -> list[Neighbour]: ...

    async def neighbourhood(self, node_id: str, depth: int = 1, types: list[RelationType] | None = None,
                            limit: int = MAX_NEIGHBOURS) -> Neighbourhood: ...

    async def explain(self, source: str, target: str, max_depth: int = 6) -> GraphPath | None: ...

    async def best_channels(self, industry: str, persona: str, limit: int = 3) -> list[ChannelRecommendation]: ...


class LeadRecords(Protocol):
    """What the manager needs of the lead store for erasure and access."""

    async def erase(self, lead_id: UUID) -> dict[str, int]: ...

    async def erasure_finished(self, lead_id: UUID, removed: dict[str, int]) -> None: ...

    async def export(self, lead_id: UUID) -> dict[str, Any] | None: ...


# Each tier's port, by the name its actor is known by (``tier_actors.TIER_NAMES``).
TIER_PORTS: dict[str, type] = {"short_term": ShortTermPort, "long_term": LongTermPort, "episodic": EpisodicPort,
                               "semantic": SemanticPort, "leads": LeadRecords}
