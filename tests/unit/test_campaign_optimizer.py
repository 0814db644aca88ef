"""AllocationOptimizer (the campaign optimizer's judgment): metric formulas, Thompson shares within bounds and
cap, evidence-gated pauses, escalations exactly at their thresholds, exact rollback, determinism."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

import numpy as np
import pytest
from pydantic import ValidationError

from marketing_agents.actors.campaign_allocation import AllocationOptimizer, cap_changes, clip_and_normalise
from marketing_agents.domain import CampaignMetrics, Channel
from marketing_agents.domain.optimization import (
    ActionKind,
    Allocation,
    Arm,
    EscalationKind,
    OptimizationDecision,
    OptimizerPolicy,
    analyse,
    apply_decision,
    invert,
)

CAMPAIGN = UUID("11111111-1111-4111-8111-111111111111")
DAY = date(2025, 3, 1)
A, B, C = "A/email", "B/linkedin", "C/sms"


def row(key: str, impressions: int, clicks: int, conversions: int, spend: str | Decimal = "0",
        revenue: str | Decimal = "0", day: int = 0, campaign: UUID = CAMPAIGN) -> CampaignMetrics:
    arm = Arm.from_key(key)
    return CampaignMetrics(
        campaign_id=campaign, variant=arm.variant, channel=arm.channel, metric_date=DAY + timedelta(days=day),
        impressions=impressions, clicks=clicks, conversions=conversions, spend=Decimal(spend),
        revenue=Decimal(revenue),
    )


def decide(rows, current=None, seed=0, budget=None, **policy):
    return AllocationOptimizer(OptimizerPolicy(**policy)).decide(rows, current, np.random.default_rng(seed),
                                                                budget=budget)


# -- performance -----------------------------------------------------------------------------------


def test_metrics_per_arm_and_total_are_hand_checked():
    report = analyse([
        row(A, 1000, 50, 5, "100.00", "150.00", day=0),
        row(A, 3000, 150, 15, "300.00", "450.00", day=1),
        row(B, 1000, 0, 0, "50.00", "0.00"),
        row(C, 0, 0, 0, "0.00", "0.00", day=2),
    ])
    assert report.campaign_id == CAMPAIGN
    assert (report.first_date, report.last_date) == (DAY, DAY + timedelta(days=2))
    assert [a.arm.key for a in report.arms] == [A, B, C]

    a = report.arm(A)
    assert (a.impressions, a.clicks, a.conversions, a.spend, a.revenue, a.days) == (
        4000, 200, 20, Decimal("400.00"), Decimal("600.00"), 2)
    assert (a.ctr, a.cvr, a.cpa, a.roas, a.roi) == (0.05, 0.1, 20.0, 1.5, 0.5)
    assert a.rate("impression") == 0.005 and a.rate("click") == 0.1

    b = report.arm(B)  # spend without a click: no CVR, no CPA; ROAS 0 and ROI -100% are real values
    assert (b.ctr, b.cvr, b.cpa, b.roas, b.roi) == (0.0, None, None, 0.0, -1.0)

    c = report.arm(C)  # nothing at all: every ratio undefined, never NaN or inf
    assert (c.ctr, c.cvr, c.cpa, c.roas, c.roi) == (None, None, None, None, None)

    t = report.total
    assert (t.impressions, t.clicks, t.conversions, t.spend, t.revenue) == (
        5000, 200, 20, Decimal("450.00"), Decimal("600.00"))
    assert (t.ctr, t.cvr, t.cpa) == (0.04, 0.1, 22.5)
    assert t.roas == pytest.approx(600 / 450) and t.roi == pytest.approx(150 / 450)


def test_no_metrics_give_zeros_and_no_ratios():
    report = analyse([])
    assert report.arms == [] and report.campaign_id is None and report.last_date is None
    assert report.total.impressions == 0 and report.total.spend == 0
    assert (report.total.ctr, report.total.cvr, report.total.cpa, report.total.roas, report.total.roi) == (
        None, None, None, None, None)


def test_one_campaign_and_one_row_per_arm_and_day():
    with pytest.raises(ValueError, match="campaigns"):
        analyse([row(A, 10, 1, 0), row(A, 10, 1, 0, campaign=UUID(int=7), day=1)])
    with pytest.raises(ValueError, match="two metric rows"):
        analyse([row(A, 10, 1, 0), row(A, 20, 2, 1)])


# -- share arithmetic ------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [[1.0, 0, 0, 0], [0.5, 0.3, 0.2, 0.0], [0.25] * 4, [0.9, 0.05, 0.05, 0.0]])
def test_clipped_shares_sum_to_one_within_bounds(weights):
    shares = clip_and_normalise(np.array(weights), 0.05, 0.6)
    assert shares.sum() == pytest.approx(1.0, abs=1e-12)
    assert shares.min() >= 0.05 - 1e-12 and shares.max() <= 0.6 + 1e-12
    # proportional between the bounds: order is kept
    assert list(np.argsort(-shares, kind="stable")) == list(np.argsort(-np.array(weights), kind="stable"))


def test_bounds_that_k_arms_cannot_meet_become_one_over_k():
    assert clip_and_normalise(np.array([1.0, 0.0]), 0.6, 0.9) == pytest.approx([0.5, 0.5])
    assert clip_and_normalise(np.array([1.0, 0.0, 0.0]), 0.0, 0.2) == pytest.approx([1 / 3] * 3)


def test_the_cap_limits_every_change_and_keeps_the_sum():
    previous = np.array([0.25, 0.25, 0.25, 0.25])
    shares, capped = cap_changes(np.array([0.85, 0.05, 0.05, 0.05]), previous, 0.2, 0.05, 1.0)
    assert capped
    assert shares.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.abs(shares - previous).max() <= 0.2 + 1e-12
    assert shares[0] == pytest.approx(0.45)
    assert shares[1:] == pytest.approx([0.55 / 3] * 3)


def test_the_cap_is_lifted_when_freed_budget_cannot_be_absorbed():
    # a paused arm freed 0.8 that a single remaining arm at 0.2 could only take 0.1 of
    shares, capped = cap_changes(np.array([1.0]), np.array([0.2]), 0.1, 0.0, 1.0)
    assert not capped and shares == pytest.approx([1.0])


# -- decisions: Thompson shares, pauses ------------------------------------------------------------


def varied_rows(seed: int, keys: list[str], days: int = 2, impressions: int = 1500) -> list[CampaignMetrics]:
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.005, 0.05, len(keys))
    rows = []
    for d in range(days):
        for key, rate in zip(keys, rates, strict=True):
            clicks = int(rng.binomial(impressions, 0.2))
            rows.append(row(key, impressions, clicks, int(rng.binomial(clicks, rate / 0.2)), day=d))
    return rows


FIVE = [f"V{i}/email" for i in range(5)]


@pytest.mark.parametrize("seed", range(8))
def test_thompson_shares_sum_to_one_and_respect_min_max_and_cap(seed):
    policy = dict(pause_below_p_best=0.0, min_share=0.05, max_share=0.6, max_daily_change=0.15)
    decision = decide(varied_rows(seed, FIVE), Allocation.equal(FIVE), seed=seed, **policy)
    shares = decision.proposed.shares
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(0.05 - 1e-9 <= s <= 0.6 + 1e-9 for s in shares.values())
    assert all(abs(shares[k] - 0.2) <= 0.15 + 1e-9 for k in FIVE)
    assert sum(decision.target_shares.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(0.05 - 1e-9 <= t <= 0.6 + 1e-9 for t in decision.target_shares.values())
    assert sum(decision.p_best.values()) == pytest.approx(1.0)


def test_the_share_follows_the_probability_to_be_best():
    rows = [row(A, 10_000, 2_000, 400), row(B, 10_000, 2_000, 300), row(C, 10_000, 2_000, 100)]
    decision = decide(rows, Allocation.equal([A, B, C]), pause_below_p_best=0.0, max_daily_change=1.0,
                      min_share=0.01)
    assert decision.p_best[A] == 1.0
    assert decision.proposed.shares == pytest.approx({A: 0.98, B: 0.01, C: 0.01})
    assert [a.action for a in decision.actions] == [ActionKind.INCREASE, ActionKind.DECREASE, ActionKind.DECREASE]


def test_a_clear_loser_with_enough_evidence_is_paused():
    rows = [row(A, 5_000, 1_000, 200), row(B, 5_000, 1_000, 180), row(C, 5_000, 1_000, 25)]
    decision = decide(rows, Allocation.equal([A, B, C]), min_impressions_to_pause=3_000)
    assert decision.paused_arms == [C]
    assert decision.proposed.shares[C] == 0.0 and decision.proposed.paused == (C,)
    assert sum(decision.proposed.shares.values()) == pytest.approx(1.0)
    pause = next(a for a in decision.actions if a.arm == C)
    assert pause.action is ActionKind.PAUSE and "P(best) 0.0% < 5.0%" in pause.reason
    # a paused arm stays paused on the next decision
    later = decide(rows, apply_decision(decision.previous, decision))
    assert later.proposed.shares[C] == 0.0 and C in later.proposed.paused and later.paused_arms == []


def test_a_loser_without_enough_evidence_is_not_paused():
    rows = [row(A, 5_000, 1_000, 200), row(B, 5_000, 1_000, 180), row(C, 2_999, 600, 0)]
    decision = decide(rows, Allocation.equal([A, B, C]), min_impressions_to_pause=3_000)
    assert decision.p_best[C] < 0.05
    assert decision.paused_arms == [] and decision.proposed.shares[C] > 0
    assert "not paused: 2,999 impressions" in next(a for a in decision.actions if a.arm == C).reason
    # nor with too few clicks
    rows[2] = row(C, 5_000, 29, 0)
    assert decide(rows, Allocation.equal([A, B, C]), min_clicks_to_pause=30).paused_arms == []


def test_the_leader_and_the_minimum_of_active_arms_are_never_paused():
    rows = [row(A, 5_000, 1_000, 200), row(B, 5_000, 1_000, 30), row(C, 5_000, 1_000, 20)]
    assert decide(rows, Allocation.equal([A, B, C]), min_active_arms=1).paused_arms == [C, B]
    two = decide(rows, Allocation.equal([A, B, C]), min_active_arms=2)
    assert two.paused_arms == [C] and two.proposed.active == [A, B]


def test_the_rate_basis_decides_what_best_means():
    # A converts more per impression (1.6% vs 1.0%); B converts more of its clicks (50% vs 8%)
    rows = [row(A, 10_000, 2_000, 160), row(B, 10_000, 200, 100)]
    per_impression = decide(rows, pause_below_p_best=0.0)
    per_click = decide(rows, pause_below_p_best=0.0, rate_basis="click")
    assert per_impression.p_best[A] > 0.99 and per_click.p_best[B] > 0.99


def test_no_arms_at_all_is_an_error():
    with pytest.raises(ValueError, match="no arms"):
        decide([], None)


def test_no_allocation_yet_means_equal_shares_before():
    decision = decide([row(A, 100, 10, 1), row(B, 100, 10, 1)], None)
    assert decision.previous == Allocation(shares={A: 0.5, B: 0.5})


def test_the_same_seed_gives_the_same_decision():
    rows = varied_rows(3, FIVE)
    first, second = decide(rows, Allocation.equal(FIVE), seed=42), decide(rows, Allocation.equal(FIVE), seed=42)
    assert first == second
    assert first.model_dump_json() == second.model_dump_json()


# -- escalations -----------------------------------------------------------------------------------


def kinds(decision) -> list[EscalationKind]:
    return [e.kind for e in decision.escalations]


def roi_rows(spend: str, revenue: str) -> list[CampaignMetrics]:
    return [row(A, 10_000, 1_000, 100, spend, revenue), row(B, 10_000, 1_000, 100, "0.00", "0.00")]


@pytest.mark.parametrize(("spend", "revenue", "fires"), [
    ("1000.00", "800.00", True),   # ROI exactly -20%
    ("1000.00", "700.00", True),   # -30%
    ("1000.00", "801.00", False),  # -19.9%
    ("999.99", "100.00", False),   # far below, but not enough spend yet
])
def test_low_roi_escalates_at_and_below_the_threshold_after_enough_spend(spend, revenue, fires):
    decision = decide(roi_rows(spend, revenue), escalate_roi_at=-0.2, roi_min_spend=Decimal("1000"))
    assert (EscalationKind.LOW_ROI in kinds(decision)) is fires
    assert decision.auto_applicable is not fires
    if fires:
        escalation = decision.escalations[0]
        assert escalation.threshold == -0.2
        assert escalation.observed == float((Decimal(revenue) - Decimal(spend)) / Decimal(spend))


@pytest.mark.parametrize(("spend", "budget", "fires"), [
    ("900.00", "1000", True), ("950.00", "1000", True), ("899.99", "1000", False),
    ("900.00", None, False), ("900.00", "0", False),
])
def test_budget_escalates_at_and_over_the_spent_fraction(spend, budget, fires):
    decision = decide(roi_rows(spend, "5000.00"), budget=None if budget is None else Decimal(budget))
    assert kinds(decision) == ([EscalationKind.BUDGET_NEARLY_SPENT] if fires else [])
    if fires:
        assert decision.escalations[0].observed == float(Decimal(spend) / Decimal(budget))
        assert decision.escalations[0].threshold == 0.9


LOSING_B = [row(A, 20_000, 4_000, 800), row(B, 20_000, 4_000, 100)]


@pytest.mark.parametrize(("share_b", "fires"), [(0.3, True), (0.5, True), (0.29, False)])
def test_pausing_a_large_arm_escalates_at_and_over_the_threshold(share_b, fires):
    current = Allocation(shares={A: 1.0 - share_b, B: share_b})
    decision = decide(LOSING_B, current, min_active_arms=1, escalate_pause_share_at=0.3,
                      escalate_share_drop_at=None)
    assert decision.paused_arms == [B]
    assert kinds(decision) == ([EscalationKind.LARGE_PAUSE] if fires else [])
    assert decision.auto_applicable is not fires
    if fires:
        assert (decision.escalations[0].arm, decision.escalations[0].observed) == (B, share_b)


@pytest.mark.parametrize(("share_b", "fires"), [(0.75, True), (0.74, False)])
def test_a_large_desired_cut_escalates_at_the_threshold(share_b, fires):
    # B loses everything it can: target = min share 0.25, so the wanted cut is share_b - 0.25
    current = Allocation(shares={A: 1.0 - share_b, B: share_b})
    decision = decide(LOSING_B, current, pause_below_p_best=0.0, min_share=0.25, max_share=0.75,
                      max_daily_change=1.0, escalate_share_drop_at=0.5)
    assert decision.target_shares == {A: 0.75, B: 0.25}
    assert kinds(decision) == ([EscalationKind.LARGE_SHIFT] if fires else [])
    if fires:
        assert (decision.escalations[0].arm, decision.escalations[0].observed) == (B, 0.5)


def test_an_ordinary_capped_rise_does_not_escalate():
    rows = [row(A, 5_000, 1_000, 200), row(B, 5_000, 1_000, 100), row(C, 5_000, 1_000, 100)]
    decision = decide(rows, Allocation.equal([A, B, C]), pause_below_p_best=0.0)
    assert decision.target_shares[A] - 1 / 3 > 0.2  # it wants much more than the cap allows ...
    assert decision.proposed.shares[A] == pytest.approx(1 / 3 + 0.2)  # ... gets the cap ...
    assert decision.escalations == [] and decision.auto_applicable  # ... and needs nobody for that


def test_an_escalated_decision_cannot_claim_to_be_automatic():
    decision = decide(roi_rows("1000.00", "100.00"))
    assert not decision.auto_applicable
    with pytest.raises(ValidationError, match="cannot be auto-applicable"):
        OptimizationDecision.model_validate({**decision.model_dump(), "auto_applicable": True})
    assert OptimizationDecision.model_validate(decision.model_dump()) == decision


# -- rollback --------------------------------------------------------------------------------------


def test_invert_restores_the_previous_allocation_exactly():
    rows = [row(A, 5_000, 1_000, 200), row(B, 5_000, 1_000, 170), row(C, 5_000, 1_000, 20)]
    before = Allocation(shares={A: 0.2, B: 0.3, C: 0.5})
    decision = decide(rows, before, escalate_pause_share_at=1.0)
    after = apply_decision(before, decision)
    assert after != before and C in after.paused

    rollback = invert(decision)
    assert rollback.is_rollback and rollback.auto_applicable and rollback.escalations == []
    assert apply_decision(after, rollback) == before  # shares and paused arms, bit for bit
    assert apply_decision(after, rollback).shares == {A: 0.2, B: 0.3, C: 0.5}
    assert invert(rollback).proposed == decision.proposed
    assert all(a.action is ActionKind.RESTORE for a in rollback.actions)


def test_a_decision_applies_only_to_the_allocation_it_was_made_from():
    decision = decide([row(A, 100, 10, 1), row(B, 100, 10, 1)], Allocation(shares={A: 0.5, B: 0.5}))
    with pytest.raises(ValueError, match="another allocation"):
        apply_decision(Allocation(shares={A: 0.6, B: 0.4}), decision)


def test_allocations_are_validated():
    with pytest.raises(ValidationError, match="sum to 1"):
        Allocation(shares={A: 0.5, B: 0.4})
    with pytest.raises(ValidationError, match="share 0"):
        Allocation(shares={A: 0.5, B: 0.5}, paused=(B,))
    with pytest.raises(ValidationError):
        Allocation(shares={"A/fax": 1.0})
    assert Arm.from_key("a/b/email") == Arm(variant="a/b", channel=Channel.EMAIL)
