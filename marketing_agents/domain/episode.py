"""An episode: one segment of a lead's journey, remembered with what was done and how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import Field

from marketing_agents.domain.common import DomainModel, Text


class EpisodeOutcome(StrEnum):
    CONVERTED = "converted"
    ENGAGED = "engaged"
    NO_RESPONSE = "no_response"
    UNSUBSCRIBED = "unsubscribed"
    LOST = "lost"


class Episode(DomainModel):
    id: UUID
    lead_id: UUID
    segment: str = Field(description="The segment the lead was in, e.g. 'software/enterprise'.")
    context: dict[str, Any] = Field(description="Lead and situation features the episode started from.")
    actions: list[dict[str, Any]] = Field(description="What the agents did, in order (channel, template, at).")
    outcome: EpisodeOutcome
    outcome_value: float = 0.0
    started_at: datetime
    ended_at: datetime


class SimilarEpisode(DomainModel):
    episode: Episode
    similarity: float = Field(ge=-1.0, le=1.0, description="Cosine similarity of the situations, 1 = identical.")


class InsightKind(StrEnum):
    SUCCESS_PATTERN = "success_pattern"
    BEST_PRACTICE = "best_practice"
    LESSON = "lesson"


class Insight(DomainModel):
    """A success pattern, best practice or lesson learned, with the evidence behind it."""

    kind: InsightKind
    segment: str
    title: str
    description: Text
    support: int = Field(ge=0, description="How many episodes back it.")
    confidence: float = Field(ge=0, le=1)
    evidence: dict[str, Any] = Field(default_factory=dict)


# What the consolidator reads of a lead and its interactions to cut them into episodes.
@dataclass(frozen=True)
class LeadFacts:
    lead_id: UUID
    industry: str
    company_size: int
    country: str
    source: str


@dataclass(frozen=True)
class InteractionFact:
    id: int
    type: str
    channel: str | None
    value: float
    occurred_at: datetime
