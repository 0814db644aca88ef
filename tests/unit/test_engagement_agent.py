"""EngagementAgent.plan: consent is law, the first touch is immediate, the rest keep their rhythm."""

from __future__ import annotations

from itertools import combinations

import pytest

from marketing_agents.actors.engagement import EngagementAgent
from marketing_agents.domain import Channel, TouchpointStatus, TriageCategory

PLANNED_CATEGORIES = [TriageCategory.HOT, TriageCategory.WARM, TriageCategory.NURTURE]
ALL_CHANNELS = frozenset(Channel)
# Every subset of channels, from no consent at all to consent on every channel (32 sets).
CONSENT_SETS = [frozenset(c) for n in range(len(Channel) + 1) for c in combinations(Channel, n)]


def consent_id(channels: frozenset) -> str:
    return "+".join(sorted(c.value for c in channels)) or "none"


@pytest.fixture
def agent() -> EngagementAgent:
    return EngagementAgent()


@pytest.fixture
def plan_for(agent, make_lead, make_triage, make_package, now):
    """Plans for a lead in ``category`` who consented to exactly ``channels``."""

    def _plan(category, channels, **lead_overrides):
        lead = make_lead(consent={c.value: True for c in channels}, **lead_overrides)
        package = make_package(lead, make_triage(lead, category))
        return agent.plan(package, now)

    return _plan


@pytest.mark.parametrize("channels", CONSENT_SETS, ids=consent_id)
@pytest.mark.parametrize("category", PLANNED_CATEGORIES)
def test_a_channel_without_consent_never_appears_in_a_plan(category, channels, plan_for):
    plan = plan_for(category, channels)

    assert {tp.channel for tp in plan.touchpoints} <= channels
    assert {action.channel for action in plan.next_actions()} <= channels


@pytest.mark.parametrize("channels", CONSENT_SETS, ids=consent_id)
@pytest.mark.parametrize("category", PLANNED_CATEGORIES)
def test_consent_removes_only_the_steps_it_must(category, channels, plan_for):
    full = plan_for(category, ALL_CHANNELS)
    plan = plan_for(category, channels)

    expected = [(tp.channel, tp.template) for tp in full.touchpoints if tp.channel in channels]
    assert [(tp.channel, tp.template) for tp in plan.touchpoints] == expected


@pytest.mark.parametrize("channels", [c for c in CONSENT_SETS if c], ids=consent_id)
@pytest.mark.parametrize("category", PLANNED_CATEGORIES)
def test_first_touchpoint_is_due_now_and_steps_keep_their_spacing(category, channels, plan_for, now):
    full = plan_for(category, ALL_CHANNELS)
    plan = plan_for(category, channels)
    kept = [tp for tp in full.touchpoints if tp.channel in channels]
    if not kept:  # this sequence uses none of the consented channels
        assert plan.touchpoints == []
        return

    assert plan.touchpoints[0].scheduled_at == now
    assert plan.next_actions()[0].due_at == now
    gaps = [b.scheduled_at - a.scheduled_at for a, b in zip(plan.touchpoints, plan.touchpoints[1:])]
    full_gaps = [b.scheduled_at - a.scheduled_at for a, b in zip(kept, kept[1:])]
    assert gaps == full_gaps
    assert all(tp.scheduled_at >= now for tp in plan.touchpoints)


@pytest.mark.parametrize("category", PLANNED_CATEGORIES)
def test_a_full_plan_starts_now_and_moves_forward_in_time(category, plan_for, now):
    plan = plan_for(category, ALL_CHANNELS)
    times = [tp.scheduled_at for tp in plan.touchpoints]

    assert len(times) >= 2
    assert times[0] == now
    assert times == sorted(times)
    assert times[-1] > now


@pytest.mark.parametrize("channels", CONSENT_SETS, ids=consent_id)
@pytest.mark.parametrize("category", PLANNED_CATEGORIES)
def test_steps_are_numbered_from_zero_without_gaps(category, channels, plan_for):
    plan = plan_for(category, channels)

    assert [tp.step for tp in plan.touchpoints] == list(range(len(plan.touchpoints)))


@pytest.mark.parametrize("category", PLANNED_CATEGORIES)
def test_touchpoints_belong_to_the_plan_and_lead_and_are_pending(category, agent, make_lead, make_triage,
                                                                 make_package, now):
    lead = make_lead(consent={c.value: True for c in Channel})
    package = make_package(lead, make_triage(lead, category))

    plan = agent.plan(package, now)

    assert plan.lead_id == lead.id
    assert plan.handoff_id == package.handoff_id
    assert plan.created_at == now
    assert plan.sequence
    assert plan.touchpoints
    assert len({tp.id for tp in plan.touchpoints}) == len(plan.touchpoints)
    for tp in plan.touchpoints:
        assert tp.plan_id == plan.id
        assert tp.lead_id == lead.id
        assert tp.status is TouchpointStatus.PENDING
    assert [a.touchpoint_id for a in plan.next_actions()] == [tp.id for tp in plan.touchpoints]


def test_each_category_gets_its_own_sequence(plan_for):
    sequences = {plan_for(category, ALL_CHANNELS).sequence for category in PLANNED_CATEGORIES}

    assert len(sequences) == len(PLANNED_CATEGORIES)


@pytest.mark.parametrize("category", PLANNED_CATEGORIES)
def test_templates_are_filled_with_the_leads_details(category, plan_for):
    plan = plan_for(category, ALL_CHANNELS, first_name="Zephyrine", company="Vortexa Labs")
    texts = [tp.body for tp in plan.touchpoints] + [tp.subject for tp in plan.touchpoints if tp.subject]

    assert all("$" not in text for text in texts)
    assert all("Zephyrine" in tp.body for tp in plan.touchpoints)
    assert all(tp.body.strip() for tp in plan.touchpoints)


def test_company_name_is_used_in_a_hot_plan(plan_for):
    plan = plan_for(TriageCategory.HOT, ALL_CHANNELS, first_name="Zephyrine", company="Vortexa Labs")
    texts = [tp.body for tp in plan.touchpoints] + [tp.subject for tp in plan.touchpoints if tp.subject]

    assert any("Vortexa Labs" in text for text in texts)


def test_a_dollar_sign_in_a_leads_name_does_not_break_the_templates(plan_for):
    plan = plan_for(TriageCategory.HOT, ALL_CHANNELS, company="$company Inc")

    assert plan.touchpoints
    assert any("$company Inc" in tp.body for tp in plan.touchpoints)


@pytest.mark.parametrize("category", PLANNED_CATEGORIES)
def test_rationale_names_every_channel_skipped_for_lack_of_consent(category, plan_for):
    full = plan_for(category, ALL_CHANNELS)
    used = {tp.channel for tp in full.touchpoints}
    only = next(iter(sorted(used)))

    plan = plan_for(category, frozenset({only}))

    skipped = used - {only}
    assert skipped
    for channel in skipped:
        assert channel.value in plan.rationale
    assert "consent" in plan.rationale


@pytest.mark.parametrize("category", PLANNED_CATEGORIES)
def test_rationale_does_not_claim_skips_when_everything_is_consented(category, plan_for):
    plan = plan_for(category, ALL_CHANNELS)

    assert plan.rationale
    assert "skipped" not in plan.rationale


def test_a_skipped_channel_is_named_once_even_if_the_sequence_uses_it_twice(plan_for):
    full = plan_for(TriageCategory.NURTURE, ALL_CHANNELS)
    assert [tp.channel for tp in full.touchpoints].count(Channel.EMAIL) > 1

    plan = plan_for(TriageCategory.NURTURE, frozenset({Channel.WEBINAR}))

    assert plan.rationale.count("email") == 1


@pytest.mark.parametrize("category", PLANNED_CATEGORIES)
def test_no_consent_gives_an_empty_plan_not_an_error(category, plan_for):
    plan = plan_for(category, frozenset())

    assert plan.touchpoints == []
    assert plan.next_actions() == []
    assert "skipped" in plan.rationale
