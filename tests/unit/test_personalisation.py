"""Personalised plans: the graph, similar converted leads and the lead's own history pick the first follow-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from marketing_agents.actors.engagement import EngagementAgent
from marketing_agents.actors.personalisation import MIN_AFFINITY, channel_affinity
from marketing_agents.domain import Channel, TriageCategory
from marketing_agents.domain.episode import Episode, SimilarEpisode
from marketing_agents.domain.graph import ChannelRecommendation, GraphNode
from marketing_agents.domain.recall import MemoryRecall

EVERY_CHANNEL = {c.value: True for c in Channel}
EPISODE_AT = datetime(2026, 1, 1, tzinfo=UTC)


def converted(similarity: float, *channels: str, outcome: str = "converted") -> SimilarEpisode:
    episode = Episode(id=uuid4(), lead_id=uuid4(), segment="software/enterprise", context={},
                      actions=[{"type": "click", "channel": channel} for channel in channels], outcome=outcome,
                      started_at=EPISODE_AT, ended_at=EPISODE_AT)
    return SimilarEpisode(similarity=similarity, episode=episode)


def graph(channel: str, score: float) -> ChannelRecommendation:
    return ChannelRecommendation(channel=GraphNode(id=f"channel:{channel}", kind="channel", name=channel.title()),
                                 score=score, evidence=[])


def recall(memory: dict) -> MemoryRecall:
    return MemoryRecall(lead_id=uuid4(), elapsed_ms=0.0, **memory)


@pytest.fixture
def plan_with(make_lead, make_triage, make_package, now):
    def _plan(category: TriageCategory, memory: dict, consent: dict = EVERY_CHANNEL):
        lead = make_lead(consent=consent)
        package = make_package(lead, make_triage(lead, category)).model_copy(update={"memory": recall(memory)})
        return EngagementAgent().plan(package, now)

    return _plan


def steps(plan) -> list[tuple[str, timedelta]]:
    start = plan.touchpoints[0].scheduled_at
    return [(tp.channel.value, tp.scheduled_at - start) for tp in plan.touchpoints]


def test_without_evidence_the_designed_sequence_is_kept(plan_with):
    plain = plan_with(TriageCategory.HOT, {})
    with_empty_recall = plan_with(TriageCategory.HOT, {"best_channels": [], "similar_episodes": [], "profile": None})
    assert steps(plain) == steps(with_empty_recall)
    assert "personalised" not in plain.rationale


def test_the_graphs_best_channel_becomes_the_first_follow_up_in_the_same_rhythm(plan_with):
    plain = plan_with(TriageCategory.HOT, {})
    plan = plan_with(TriageCategory.HOT, {"best_channels": [graph("sms", 0.9), graph("call", 0.1)]})

    assert [c for c, _ in steps(plan)][:2] == ["email", "sms"]
    assert [offset for _, offset in steps(plan)] == [offset for _, offset in steps(plain)], "same time slots"
    assert sorted(c for c, _ in steps(plan)) == sorted(c for c, _ in steps(plain)), "same steps, reordered"
    assert "sms first among follow-ups" in plan.rationale and "knowledge graph rates it 0.90" in plan.rationale


def test_a_channel_similar_converters_answered_on_is_added_when_the_sequence_lacks_it(plan_with):
    memory = {"similar_episodes": [converted(0.9, "linkedin", "linkedin"), converted(0.8, "linkedin", "email"),
                                   converted(0.95, "sms", outcome="lost")]}
    plan = plan_with(TriageCategory.NURTURE, memory)

    assert [c for c, _ in steps(plan)][:3] == ["email", "linkedin", "email"]
    assert "of the touches that converted 2 similar lead(s)" in plan.rationale
    assert "added to the sequence" in plan.rationale


def test_consent_outranks_evidence(plan_with):
    consent = {"email": True, "call": True}
    plan = plan_with(TriageCategory.HOT, {"best_channels": [graph("sms", 1.0)]}, consent)
    assert {tp.channel for tp in plan.touchpoints} <= {Channel.EMAIL, Channel.CALL}
    assert "personalised" not in plan.rationale


def test_weak_evidence_changes_nothing(plan_with):
    weak = (MIN_AFFINITY - 0.01) / 0.4
    assert steps(plan_with(TriageCategory.HOT, {"best_channels": [graph("sms", weak)]})) == \
        steps(plan_with(TriageCategory.HOT, {}))


def test_affinity_weighs_graph_converters_and_own_history():
    memory = {
        "best_channels": [graph("email", 0.5)],
        "similar_episodes": [converted(1.0, "email", "linkedin")],
        "profile": {"engagement_by_channel": {"email": 3, "linkedin": 1, "fax": 9}},
    }
    affinity = channel_affinity(recall(memory))
    assert affinity.scores[Channel.EMAIL] == pytest.approx(0.4 * 0.5 + 0.4 * 0.5 + 0.2 * 0.75)
    assert affinity.scores[Channel.LINKEDIN] == pytest.approx(0.4 * 0.5 + 0.2 * 0.25)
    assert affinity.best({Channel.EMAIL, Channel.LINKEDIN}) is Channel.EMAIL
    assert affinity.best({Channel.LINKEDIN}) is Channel.LINKEDIN
    assert affinity.best({Channel.SMS}) is None


def test_weak_evidence_is_named_in_the_rationale_without_changing_the_plan(plan_with):
    weak = (MIN_AFFINITY - 0.01) / 0.4
    plan = plan_with(TriageCategory.HOT, {"best_channels": [graph("sms", weak)]})
    assert "personalised" not in plan.rationale
    assert "memory: sms has the strongest evidence" in plan.rationale and "knowledge graph rates it" in plan.rationale


def test_evidence_for_the_channel_already_in_front_is_named(plan_with):
    plan = plan_with(TriageCategory.HOT, {"best_channels": [graph("email", 0.9)]})
    assert steps(plan) == steps(plan_with(TriageCategory.HOT, {}))
    assert "personalised: email opens the sequence" in plan.rationale
