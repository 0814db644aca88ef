"""Capture and lift at k%, and the gains curve, on arrays small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from marketing_agents.scoring_models.metrics import capture_at, capture_at_pct, gains_curve, lift_at_pct, summarize

# ten leads, best score first; positives at ranks 1, 3 and 10
Y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_capture_counts_the_share_of_all_positives_in_the_top_k_percent():
    assert capture_at(Y, SCORES, 10) == pytest.approx(1 / 3)      # top 1 lead: 1 of 3 positives
    assert capture_at(Y, SCORES, 20) == pytest.approx(1 / 3)      # top 2 leads
    assert capture_at(Y, SCORES, 30) == pytest.approx(2 / 3)      # top 3 leads
    assert capture_at(Y, SCORES, 100) == pytest.approx(1.0)


def test_lift_is_capture_divided_by_the_share_contacted():
    lift = lift_at_pct(Y, SCORES, pcts=(10, 20, 30))
    assert lift == pytest.approx({"10": (1 / 3) / 0.1, "20": (1 / 3) / 0.2, "30": (2 / 3) / 0.3})
    assert set(capture_at_pct(Y, SCORES)) == {"5", "10", "20", "30"}


def test_capture_does_not_depend_on_row_order():
    order = np.random.default_rng(0).permutation(len(Y))
    assert capture_at_pct(Y[order], SCORES[order]) == pytest.approx(capture_at_pct(Y, SCORES))


def test_ties_at_the_cut_off_are_shared_so_a_constant_score_is_random_contact():
    constant = np.full(len(Y), 0.5)
    assert capture_at(Y, constant, 20) == pytest.approx(0.2)
    assert lift_at_pct(Y, constant, pcts=(20, 30)) == pytest.approx({"20": 1.0, "30": 1.0})
    # two leads tied at the cut-off, one of them positive: half of it counts
    y = np.array([1, 1, 0, 0])
    assert capture_at(y, np.array([0.9, 0.5, 0.5, 0.1]), 50) == pytest.approx((1 + 0.5) / 2)


def test_a_perfect_ranking_captures_everything_once_all_positives_fit():
    y = np.array([0] * 8 + [1] * 2)
    scores = np.linspace(0, 1, 10)
    assert capture_at(y, scores, 20) == pytest.approx(1.0)
    assert capture_at(y, scores, 10) == pytest.approx(0.5)


def test_gains_curve_runs_from_origin_to_one():
    contacted, found = gains_curve(Y, SCORES)
    assert contacted[0] == 0 and found[0] == 0 and contacted[-1] == 1 and found[-1] == 1
    assert found[3] == pytest.approx(2 / 3)
    assert np.all(np.diff(found) >= 0)


def test_summary_has_the_metrics_file_keys():
    summary = summarize(Y, SCORES)
    assert {"roc_auc", "pr_auc", "brier", "capture_at_pct", "lift_at_pct", "base_rate", "n_rows",
            "n_positives"} <= set(summary)
    assert summary["n_positives"] == 3 and summary["base_rate"] == pytest.approx(0.3)


@pytest.mark.parametrize("y, scores, message", [
    ([0, 0, 0], [0.1, 0.2, 0.3], "no positives"),
    ([0, 1], [0.1], "differ in length"),
    ([0, 2], [0.1, 0.2], "0/1"),
])
def test_metrics_refuse_meaningless_input(y, scores, message):
    with pytest.raises(ValueError, match=message):
        capture_at(y, scores, 10)


def test_isotonic_calibration_only_with_enough_positives():
    from marketing_agents.scoring_models.training import ISOTONIC_MIN_POSITIVES, calibration_method

    assert calibration_method(ISOTONIC_MIN_POSITIVES) == "isotonic"
    assert calibration_method(ISOTONIC_MIN_POSITIVES - 1) == "sigmoid"
