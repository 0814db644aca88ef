"""Which channel a lead is most likely to answer on, from what the memory tiers recalled.

Three kinds of evidence, each scored 0..1 per channel, then weighted:

- the knowledge graph (0.4): how well the channel converts for the lead's industry and persona;
- episodic memory (0.4): among similar leads that converted, the share of touches on the channel,
  each episode weighted by how similar its situation is to this lead's;
- the lead's own history (0.2): the share of its past interactions on the channel.

The similar converters weigh as much as the graph because they are this market's own recent record,
where the graph holds broader, slower-moving knowledge; the lead's history weighs least because most
new leads have none. A channel needs ``MIN_AFFINITY`` before it changes a plan: one stray episode
must not reorder a sequence a marketing team designed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from marketing_agents.domain import Channel
from marketing_agents.domain.episode import EpisodeOutcome
from marketing_agents.domain.recall import MemoryRecall

WEIGHTS = {"graph": 0.4, "similar_converters": 0.4, "own_history": 0.2}
MIN_AFFINITY = 0.15


@dataclass(frozen=True)
class ChannelAffinity:
    scores: dict[Channel, float] = field(default_factory=dict)
    reasons: dict[Channel, list[str]] = field(default_factory=dict)

    def best(self, allowed: set[Channel]) -> Channel | None:
        """The consented channel with the strongest evidence, if any has enough."""
        strongest = self.strongest(allowed)
        return strongest if strongest is not None and self.scores[strongest] >= MIN_AFFINITY else None

    def strongest(self, allowed: set[Channel]) -> Channel | None:
        """The consented channel with the strongest evidence, however weak."""
        candidates = [(score, channel.value, channel) for channel, score in self.scores.items() if channel in allowed]
        return max(candidates)[2] if candidates else None

    def evidence(self, channel: Channel) -> str:
        return f"affinity {self.scores[channel]:.2f}: {'; '.join(self.reasons[channel])}"

    def explain(self, channel: Channel) -> str:
        return f"{channel.value} first among follow-ups ({self.evidence(channel)})"


def _channel(value: Any) -> Channel | None:
    """'linkedin', 'channel:linkedin' or a graph node dict -> Channel; None for anything else (an episode's
    actions are free-form, so their channels are read this leniently)."""
    if isinstance(value, dict):
        value = value.get("id") or value.get("name")
    if not isinstance(value, str):
        return None
    try:
        return Channel(value.split(":", 1)[-1].strip().lower())
    except ValueError:
        return None


def _graph_scores(memory: MemoryRecall) -> dict[Channel, float]:
    scores: dict[Channel, float] = {}
    for recommendation in memory.best_channels:
        channel = _channel(recommendation.channel.id)
        if channel is not None:
            scores[channel] = max(scores.get(channel, 0.0), recommendation.score)
    return scores


def _converter_shares(memory: MemoryRecall) -> tuple[dict[Channel, float], int]:
    weights: dict[Channel, float] = defaultdict(float)
    converters = 0
    for similar in memory.similar_episodes:
        episode = similar.episode
        if episode.outcome is not EpisodeOutcome.CONVERTED:
            continue
        similarity = max(0.0, similar.similarity)
        touches = [c for c in (_channel(a.get("channel")) for a in episode.actions) if c]
        if not touches or similarity == 0:
            continue
        converters += 1
        for channel in touches:
            weights[channel] += similarity / len(touches)
    total = sum(weights.values())
    return ({channel: w / total for channel, w in weights.items()} if total else {}), converters


def _history_shares(memory: MemoryRecall) -> dict[Channel, float]:
    counts = (memory.profile or {}).get("engagement_by_channel") or {}
    by_channel = {c: float(n) for c, n in ((_channel(k), v) for k, v in counts.items()) if c is not None and n}
    total = sum(by_channel.values())
    return {channel: n / total for channel, n in by_channel.items()} if total else {}


def channel_affinity(memory: MemoryRecall | None) -> ChannelAffinity:
    """Scores every channel the recall has evidence for; a recall with no evidence scores nothing."""
    if memory is None:
        return ChannelAffinity()
    graph = _graph_scores(memory)
    converters, n_converters = _converter_shares(memory)
    history = _history_shares(memory)
    scores: dict[Channel, float] = {}
    reasons: dict[Channel, list[str]] = {}
    for channel in set(graph) | set(converters) | set(history):
        parts = []
        if channel in graph:
            parts.append(f"the knowledge graph rates it {graph[channel]:.2f} for this industry and persona")
        if channel in converters:
            parts.append(f"{converters[channel]:.0%} of the touches that converted {n_converters} similar lead(s)")
        if channel in history:
            parts.append(f"{history[channel]:.0%} of the lead's own past interactions")
        scores[channel] = round(WEIGHTS["graph"] * graph.get(channel, 0.0)
                                + WEIGHTS["similar_converters"] * converters.get(channel, 0.0)
                                + WEIGHTS["own_history"] * history.get(channel, 0.0), 4)
        reasons[channel] = parts
    return ChannelAffinity(scores, reasons)
