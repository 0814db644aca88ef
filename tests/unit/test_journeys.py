"""Episodes from interactions, and insights from episodes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from marketing_agents.domain.episode import EpisodeOutcome, InsightKind, InteractionFact, LeadFacts
from marketing_agents.memory.journeys import extract_episodes, mine_patterns

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEAD = LeadFacts(uuid.UUID(int=1), "Software", 300, "DE", "event")


def touches(*steps: tuple[int, str, str | None]) -> list[InteractionFact]:
    return [InteractionFact(n + 1, kind, channel, 100.0 if kind == "purchase" else 0.0, T0 + timedelta(days=day))
            for n, (day, kind, channel) in enumerate(steps)]


def test_a_purchase_closes_a_converted_episode_and_silence_closes_the_next():
    episodes = extract_episodes(LEAD, touches((0, "open", "email"), (2, "click", "email"), (3, "purchase", "email"),
                                              (10, "open", "linkedin"), (60, "open", "email")))
    assert [e.outcome for e in episodes] == [EpisodeOutcome.CONVERTED, EpisodeOutcome.NO_RESPONSE,
                                             EpisodeOutcome.NO_RESPONSE]
    assert episodes[0].outcome_value == 100.0 and episodes[0].segment == "software/mid_market"
    assert episodes == extract_episodes(LEAD, touches((0, "open", "email"), (2, "click", "email"),
                                                      (3, "purchase", "email"), (10, "open", "linkedin"),
                                                      (60, "open", "email"))), "ids are derived, not random"


def test_a_reply_makes_an_unconverted_journey_engaged_and_unsubscribing_ends_it():
    engaged, unsubscribed = extract_episodes(LEAD, touches((0, "reply", "email"), (40, "unsubscribe", "email")))
    assert (engaged.outcome, unsubscribed.outcome) == (EpisodeOutcome.ENGAGED, EpisodeOutcome.UNSUBSCRIBED)


def journeys(sequence: list[str], converted: bool, n: int, start: int = 0):
    out = []
    for k in range(n):
        lead = LeadFacts(uuid.UUID(int=start + k + 10), "Software", 300, "DE", "event")
        steps = [(d, "open", ch) for d, ch in enumerate(sequence)]
        if converted:
            steps.append((len(sequence), "purchase", None))
        out += extract_episodes(lead, touches(*steps))
    return out


def test_insights_name_what_converted_what_never_did_and_the_best_opening():
    episodes = (journeys(["email", "call"], True, 4) + journeys(["email", "call"], False, 1, 100)
                + journeys(["sms"], False, 5, 200))
    insights, edges = mine_patterns(episodes)
    by_kind = {(i.kind, i.title): i for i in insights}
    success = by_kind[(InsightKind.SUCCESS_PATTERN, "email -> call")]
    assert (success.support, success.confidence) == (4, 0.8)
    assert (InsightKind.LESSON, "sms did not convert") in by_kind
    best = by_kind[(InsightKind.BEST_PRACTICE, "opening channel")]
    assert "open with email" in best.description
    weights = {(e.source, e.target, e.type.value): e.weight for e in edges}
    assert weights[("industry:software", "channel:email", "CONVERTS_TO")] == 0.8
    assert weights[("industry:software", "channel:sms", "CONVERTS_TO")] == 0.0
    assert ("channel:email", "channel:call", "PRECEDES") not in weights, "fewer than 5 converting transitions"
