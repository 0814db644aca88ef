"""What the memory tiers recalled about a lead: made by the unified memory manager, carried in the
handoff package to the engagement agent, read back field by field.

It is domain vocabulary, not a memory detail, because it crosses layers: the manager (memory) makes
it, agents (which may not import memory) read it, and PostgreSQL keeps it in every stored handoff.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from marketing_agents.domain.episode import SimilarEpisode
from marketing_agents.domain.graph import ChannelRecommendation


class MemoryRecall(BaseModel):
    lead_id: UUID
    context: dict[str, Any] | None = Field(default=None, description="Short-term: the working context.")
    profile: dict[str, Any] | None = Field(default=None, description="Long-term: profile, behaviour, RFM.")
    similar_episodes: list[SimilarEpisode] = Field(default_factory=list, description="Episodic: like situations.")
    best_channels: list[ChannelRecommendation] = Field(default_factory=list, description="Semantic: channels.")
    missing: dict[str, str] = Field(default_factory=dict, description="Tier -> why it is absent (timeout, error).")
    elapsed_ms: float
