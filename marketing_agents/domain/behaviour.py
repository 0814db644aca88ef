"""Behavioural scoring: what a lead's interactions add to its engagement score, and how that fades.

Triage scores a lead once, from who it is and how it arrived; what it does afterwards is evidence too,
and fresher evidence is better evidence. Each interaction is worth engagement points by its type
(optionally by type and channel), and its worth halves every ``half_life``, counted from when it
happened to the database's now, so that a click last week counts more than one last spring and a lead
that went quiet cools down again the next time it shows up.

The default points are the scale a marketing-automation user already knows (Marketo, HubSpot, Pardot
score alike): a reply or a meeting is a person talking to us, a form submission is a stated interest,
a click or a visit is curiosity, an open barely counts (mail clients prefetch images, so many opens
are no person at all). A purchase earns nothing here because it converts the lead, and a converted lead
is not scored any more; an unsubscribe earns nothing because leaving is not interest, whatever a
setting says.

Plain Python, no I/O: the stores read the interactions, ``actors.behaviour_scoring`` turns the points
into a lead score and a category.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from marketing_agents.domain.common import Channel
from marketing_agents.domain.interaction import InteractionType
from marketing_agents.domain.triage import ScoreFactor
from marketing_agents.errors import ConfigError

FACTOR = "behaviour"
DEFAULT_HALF_LIFE_DAYS = 30.0
DEFAULT_POINTS: Mapping[InteractionType, float] = MappingProxyType({
    InteractionType.OPEN: 1.0,
    InteractionType.CLICK: 5.0,
    InteractionType.VISIT: 3.0,
    InteractionType.FORM_SUBMIT: 15.0,
    InteractionType.REPLY: 20.0,
    InteractionType.MEETING: 30.0,
    InteractionType.PURCHASE: 0.0,
    InteractionType.UNSUBSCRIBE: 0.0,
})
# One interaction can be worth at most the whole engagement scale.
MAX_POINTS = 100.0
# Engagement is the same 0..100 scale triage uses.
MAX_ENGAGEMENT = 100.0
# The engagement factors triage gives at intake; every other factor is fit, the model or behaviour.
INTAKE_ENGAGEMENT_FACTORS = frozenset({"source", "consent"})


@dataclass(frozen=True)
class BehaviourEvent:
    """One stored interaction as scoring sees it."""

    type: InteractionType
    channel: Channel | None
    occurred_at: datetime


@dataclass(frozen=True)
class BehaviourRules:
    """Points per interaction type, overrides per type and channel, and the half-life of their worth."""

    half_life: timedelta = timedelta(days=DEFAULT_HALF_LIFE_DAYS)
    points: Mapping[InteractionType, float] = field(default_factory=lambda: DEFAULT_POINTS)
    by_channel: Mapping[tuple[InteractionType, Channel], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.half_life <= timedelta(0):
            raise ConfigError(f"the behaviour half-life must be positive, got {self.half_life}")

    @classmethod
    def from_settings(cls, half_life_days: float, overrides: Mapping[str, float]) -> BehaviourRules:
        """The rules of ``MAS_BEHAVIOUR_HALF_LIFE_DAYS`` and ``MAS_BEHAVIOUR_POINTS``, the overrides merged
        over the defaults; ConfigError names the first key or value that cannot be meant.

        Failing at start-up beats scoring every lead with a misspelt key silently ignored.
        """
        if not (math.isfinite(half_life_days) and half_life_days > 0):
            raise ConfigError(f"MAS_BEHAVIOUR_HALF_LIFE_DAYS must be a positive number of days, got {half_life_days}")
        points = dict(DEFAULT_POINTS)
        by_channel: dict[tuple[InteractionType, Channel], float] = {}
        for key, value in overrides.items():
            kind, channel = _parse_key(key)
            if isinstance(value, bool) or not (isinstance(value, int | float) and math.isfinite(value)
                                               and 0 <= value <= MAX_POINTS):
                raise ConfigError(f"MAS_BEHAVIOUR_POINTS['{key}'] must be a number from 0 to {MAX_POINTS:g}, "
                                  f"got {value!r}", {"key": key})
            if kind is InteractionType.UNSUBSCRIBE and value != 0:
                raise ConfigError(f"MAS_BEHAVIOUR_POINTS['{key}']: an unsubscribe earns no points, leaving is not "
                                  "interest", {"key": key})
            if channel is None:
                points[kind] = float(value)
            else:
                by_channel[(kind, channel)] = float(value)
        return cls(timedelta(days=half_life_days), MappingProxyType(points), MappingProxyType(by_channel))

    def points_for(self, kind: InteractionType, channel: Channel | None) -> float:
        """The undecayed worth of one interaction: its type and channel's override, else its type's."""
        if kind is InteractionType.UNSUBSCRIBE:
            return 0.0
        if channel is not None and (kind, channel) in self.by_channel:
            return self.by_channel[(kind, channel)]
        return self.points.get(kind, 0.0)

    def weight(self, occurred_at: datetime, now: datetime) -> float:
        """How much of its worth an interaction keeps at ``now``: 1 when fresh, halving every half-life.

        An interaction stamped slightly after ``now`` (the client's clock runs ahead) counts as fresh,
        never as more than its worth.
        """
        age = max(now - occurred_at, timedelta(0))
        return 0.5 ** (age / self.half_life)

    def decayed(self, event: BehaviourEvent, now: datetime) -> float:
        return self.points_for(event.type, event.channel) * self.weight(event.occurred_at, now)

    def total(self, events: Iterable[BehaviourEvent], now: datetime) -> float:
        """The decayed points of all ``events``, uncapped (the cap applies to the engagement score)."""
        return sum(self.decayed(event, now) for event in events)

    def describe_half_life(self) -> str:
        days = self.half_life / timedelta(days=1)
        return f"{days:g}-day half-life"


def intake_engagement(factors: Iterable[ScoreFactor]) -> float:
    """The engagement triage gave at intake (source and consent), capped as triage caps it.

    Read from the factors rather than the stored engagement score, because after a first rescoring the
    stored score already holds behaviour, and counting it again would compound.
    """
    return min(MAX_ENGAGEMENT, sum(f.points for f in factors if f.name in INTAKE_ENGAGEMENT_FACTORS))


def behaviour_engagement(rules: BehaviourRules, intake: float, events: list[BehaviourEvent],
                         latest: BehaviourEvent, now: datetime) -> tuple[float, ScoreFactor]:
    """The new engagement score (intake plus decayed behaviour, at most 100) and the ``behaviour`` factor
    that explains it, naming ``latest`` (the interaction that prompted the rescoring).

    The factor's points are what behaviour adds to engagement after the cap, so that the factors still
    add up to the engagement score as triage's own do.
    """
    engagement = min(MAX_ENGAGEMENT, round(intake + rules.total(events, now), 1))
    added = round(max(engagement - intake, 0.0), 1)
    worth = rules.decayed(latest, now)
    where = f" on {latest.channel.value}" if latest.channel is not None else ""
    this = (f"+{worth:.1f}" if rules.points_for(latest.type, latest.channel) > 0
            else "no points" + (" (leaving is not interest)" if latest.type is InteractionType.UNSUBSCRIBE else ""))
    capped = f" (engagement capped at {MAX_ENGAGEMENT:g})" if engagement >= MAX_ENGAGEMENT else ""
    explanation = (f"{latest.type.value}{where} {latest.occurred_at:%Y-%m-%d}: {this}; "
                   f"{len(events)} interaction{'s' if len(events) != 1 else ''} in all, decayed with a "
                   f"{rules.describe_half_life()}: +{added:.1f} engagement{capped}")
    return engagement, ScoreFactor(name=FACTOR, points=added, explanation=explanation)


def _parse_key(key: str) -> tuple[InteractionType, Channel | None]:
    kind, separator, channel = key.partition("/")
    types = ", ".join(t.value for t in InteractionType)
    channels = ", ".join(c.value for c in Channel)
    try:
        parsed_kind = InteractionType(kind)
    except ValueError:
        raise ConfigError(f"MAS_BEHAVIOUR_POINTS: '{key}' is not an interaction type (one of {types}), "
                          "optionally followed by /channel", {"key": key}) from None
    if not separator:
        return parsed_kind, None
    try:
        return parsed_kind, Channel(channel)
    except ValueError:
        raise ConfigError(f"MAS_BEHAVIOUR_POINTS: '{key}' names no channel (one of {channels}) after the "
                          "interaction type", {"key": key}) from None
