"""From interactions to episodes, and from episodes to patterns: the consolidator's pure logic.

Everything here is deterministic (episode ids are derived from their first interaction, patterns from
all episodes at once), which is what makes consolidation idempotent: running it again computes the
same episodes, the same patterns and the same weights.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import timedelta

from marketing_agents.domain.episode import (
    Episode,
    EpisodeOutcome,
    Insight,
    InsightKind,
    InteractionFact,
    LeadFacts,
)
from marketing_agents.domain.graph import GraphEdge, RelationType

EPISODE_NAMESPACE = uuid.UUID("5b0c3f0e-8d1a-4c55-9a3e-6d0a7f2b9c11")
JOURNEY_GAP = timedelta(days=30)  # silence this long ends an episode
MIN_PATTERN_SUPPORT = 3
MIN_WEIGHT_SUPPORT = 5
ENGAGING = {"reply", "click", "meeting", "form_submit", "visit"}


def market_tier(employees: int) -> str:
    """The coarse company tier a segment is named by (not the enrichment's finer employee bands)."""
    return "enterprise" if employees > 1000 else "mid_market" if employees > 200 else "smb"


def segment_of(lead: LeadFacts) -> str:
    return f"{lead.industry.lower()}/{market_tier(lead.company_size)}"


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


def _segment_insights(segment: str, group: list[Episode]) -> list[Insight]:
    """Success patterns (sequences that converted), lessons (sequences that never did) and the best
    practice (the opening channel that converts best), each only with enough journeys behind it."""
    insights: list[Insight] = []
    seen = Counter(channel_sequence(e) for e in group if channel_sequence(e))
    won = Counter(channel_sequence(e) for e in group if e.outcome is EpisodeOutcome.CONVERTED and channel_sequence(e))
    for sequence, journeys in sorted(seen.items()):
        path = " -> ".join(sequence)
        support = won[sequence]
        if support >= MIN_PATTERN_SUPPORT:
            rate = support / journeys
            insights.append(Insight(
                kind=InsightKind.SUCCESS_PATTERN, segment=segment, title=path,
                description=f"{support} of {journeys} journeys through {path} converted ({rate:.0%})",
                support=support, confidence=round(rate, 4), evidence={"converted": support, "journeys": journeys}))
        elif support == 0 and journeys >= MIN_PATTERN_SUPPORT:
            insights.append(Insight(
                kind=InsightKind.LESSON, segment=segment, title=f"{path} did not convert",
                description=f"none of {journeys} journeys through {path} converted; try another sequence",
                support=journeys, confidence=round(1 - 1 / (journeys + 1), 4), evidence={"journeys": journeys}))
    openers = Counter(channel_sequence(e)[0] for e in group if channel_sequence(e))
    opened_won = Counter(channel_sequence(e)[0] for e in group
                         if channel_sequence(e) and e.outcome is EpisodeOutcome.CONVERTED)
    rates = {c: opened_won[c] / n for c, n in openers.items() if n >= MIN_WEIGHT_SUPPORT}
    if rates and max(rates.values()) > 0:
        best = max(sorted(rates), key=lambda c: rates[c])
        insights.append(Insight(
            kind=InsightKind.BEST_PRACTICE, segment=segment, title="opening channel",
            description=f"open with {best}: {opened_won[best]} of {openers[best]} journeys that began there converted "
                        f"({rates[best]:.0%})",
            support=openers[best], confidence=round(rates[best], 4),
            evidence={c: {"journeys": openers[c], "converted": opened_won[c]} for c in sorted(rates)}))
    return insights


def mine_patterns(episodes: list[Episode]) -> tuple[list[Insight], list[GraphEdge]]:
    """Success patterns per segment, and CONVERTS_TO / PRECEDES weights learned from outcomes."""
    by_segment: dict[str, list[Episode]] = defaultdict(list)
    for episode in episodes:
        by_segment[episode.segment].append(episode)

    insights: list[Insight] = []
    for segment, group in sorted(by_segment.items()):
        insights += _segment_insights(segment, group)

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
