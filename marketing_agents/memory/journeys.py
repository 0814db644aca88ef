"""From interactions to episodes, and from episodes to patterns: the consolidator's pure logic.

Everything here is deterministic (episode ids are derived from their first interaction, patterns from
all episodes at once), which is what makes consolidation idempotent: running it again computes the
same episodes, the same patterns and the same weights.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from marketing_agents.domain.episode import Episode, EpisodeOutcome, Insight, InsightKind
from marketing_agents.domain.graph import GraphEdge, RelationType

EPISODE_NAMESPACE = uuid.UUID("5b0c3f0e-8d1a-4c55-9a3e-6d0a7f2b9c11")
JOURNEY_GAP = timedelta(days=30)  # silence this long ends an episode
MIN_PATTERN_SUPPORT = 3
MIN_WEIGHT_SUPPORT = 5
ENGAGING = {"reply", "click", "meeting", "form_submit", "visit"}


@dataclass(frozen=True)
class LeadFacts:
    lead_id: uuid.UUID
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


def size_band(employees: int) -> str:
    return "enterprise" if employees > 1000 else "mid_market" if employees > 200 else "smb"


def segment_of(lead: LeadFacts) -> str:
    return f"{lead.industry.lower()}/{size_band(lead.company_size)}"


def extract_episodes(lead: LeadFacts, interactions: list[InteractionFact]) -> list[Episode]:
    """Splits a lead's interactions into journey segments.

    A purchase closes an episode as converted, an unsubscribe as unsubscribed; a silence longer than
    JOURNEY_GAP closes it as engaged (if the lead replied, clicked, met or visited) or no_response.
    """
    episodes: list[Episode] = []
    current: list[InteractionFact] = []

    def close(outcome: EpisodeOutcome) -> None:
        if not current:
            return
        first, last = current[0], current[-1]
        value = sum(i.value for i in current if i.type == "purchase")
        episodes.append(Episode(
            id=uuid.uuid5(EPISODE_NAMESPACE, f"{lead.lead_id}:{first.id}"),
            lead_id=lead.lead_id,
            segment=segment_of(lead),
            context={"industry": lead.industry.lower(), "country": lead.country, "source": lead.source,
                     "company_size": lead.company_size, "touches": len(current),
                     "channels": sorted({i.channel for i in current if i.channel})},
            actions=[{"type": i.type, "channel": i.channel, "at": i.occurred_at.isoformat()} for i in current],
            outcome=outcome, outcome_value=float(value), started_at=first.occurred_at, ended_at=last.occurred_at,
        ))
        current.clear()

    for interaction in sorted(interactions, key=lambda i: (i.occurred_at, i.id)):
        if current and interaction.occurred_at - current[-1].occurred_at > JOURNEY_GAP:
            close(EpisodeOutcome.ENGAGED if any(i.type in ENGAGING for i in current) else EpisodeOutcome.NO_RESPONSE)
        current.append(interaction)
        if interaction.type == "purchase":
            close(EpisodeOutcome.CONVERTED)
        elif interaction.type == "unsubscribe":
            close(EpisodeOutcome.UNSUBSCRIBED)
    if current:
        # An open journey is remembered as it stands; the next run extends it under the same id.
        close(EpisodeOutcome.ENGAGED if any(i.type in ENGAGING for i in current) else EpisodeOutcome.NO_RESPONSE)
    return episodes


def channel_sequence(episode: Episode) -> tuple[str, ...]:
    """The channels in the order they were used, repeats in a row collapsed."""
    sequence: list[str] = []
    for action in episode.actions:
        channel = action.get("channel")
        if channel and (not sequence or sequence[-1] != channel):
            sequence.append(channel)
    return tuple(sequence)


def mine_patterns(episodes: list[dict[str, Any]] | list[Episode]) -> tuple[list[Insight], list[GraphEdge]]:
    """Success patterns per segment, and CONVERTS_TO / PRECEDES weights learned from outcomes."""
    by_segment: dict[str, list[Episode]] = defaultdict(list)
    for episode in episodes:
        by_segment[episode.segment].append(episode)

    insights: list[Insight] = []
    for segment, group in sorted(by_segment.items()):
        seen = Counter(channel_sequence(e) for e in group if channel_sequence(e))
        won = Counter(channel_sequence(e) for e in group if e.outcome is EpisodeOutcome.CONVERTED and channel_sequence(e))
        for sequence, support in sorted(won.items()):
            if support < MIN_PATTERN_SUPPORT:
                continue
            rate = support / seen[sequence]
            insights.append(Insight(
                kind=InsightKind.SUCCESS_PATTERN, segment=segment, title=" -> ".join(sequence),
                description=f"{support} of {seen[sequence]} journeys through {' -> '.join(sequence)} converted "
                            f"({rate:.0%})",
                support=support, confidence=round(rate, 4),
                evidence={"converted": support, "journeys": seen[sequence]},
            ))

    edges: list[GraphEdge] = []
    touched: Counter[tuple[str, str]] = Counter()
    converted: Counter[tuple[str, str]] = Counter()
    follows: Counter[tuple[str, str]] = Counter()
    leaves: Counter[str] = Counter()
    for episode in episodes:
        industry = str(episode.context.get("industry", "")).replace(" ", "_")
        sequence = channel_sequence(episode)
        for channel in set(sequence):
            touched[(industry, channel)] += 1
            if episode.outcome is EpisodeOutcome.CONVERTED:
                converted[(industry, channel)] += 1
        if episode.outcome is EpisodeOutcome.CONVERTED:
            for a, b in zip(sequence, sequence[1:], strict=False):
                follows[(a, b)] += 1
                leaves[a] += 1
    for (industry, channel), n in sorted(touched.items()):
        if n >= MIN_WEIGHT_SUPPORT and industry:
            edges.append(GraphEdge(source=f"industry:{industry}", target=f"channel:{channel}",
                                   type=RelationType.CONVERTS_TO, weight=round(converted[(industry, channel)] / n, 4),
                                   provenance="consolidator"))
    for (a, b), n in sorted(follows.items()):
        if leaves[a] >= MIN_WEIGHT_SUPPORT:
            edges.append(GraphEdge(source=f"channel:{a}", target=f"channel:{b}", type=RelationType.PRECEDES,
                                   weight=round(n / leaves[a], 4), provenance="consolidator"))
    return insights, edges
