"""The closed loop with production's own draw, counting and optimizer: it learns which variant sells."""

from __future__ import annotations

from marketing_agents.actors.campaign_loop import LoopScenario, simulate_loop


def test_a_run_is_reproducible_from_its_seed():
    scenario = LoopScenario(days=6, leads_per_day=100)
    assert simulate_loop(scenario, 3) == simulate_loop(scenario, 3)
    assert simulate_loop(scenario, 3).conversions != simulate_loop(scenario, 4).conversions


def test_the_better_variant_gets_a_growing_share_of_the_leads_and_beats_the_equal_split():
    results = [simulate_loop(LoopScenario(), seed) for seed in range(4)]
    for result in results:
        assert result.best_arm_share[0] == 0.5
        assert result.best_arm_share[-1] > 0.9 > result.best_arm_share[1]
        assert result.conversions["optimizer"] <= result.conversions["oracle"]
    assert sum(r.conversions["optimizer"] for r in results) > sum(r.conversions["equal_split"] for r in results)


def test_without_a_difference_to_find_the_loop_costs_nothing_against_the_equal_split():
    results = [simulate_loop(LoopScenario(lift=1.0, days=8), seed) for seed in range(4)]
    assert all(r.oracle_ratio > 0.85 for r in results)
