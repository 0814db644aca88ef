"""Evaluation metrics for lead scores: capture, lift, the gains curve and the metrics summary.

* ``capture_at(y, scores, pct)``: the share of ALL positives found among the top ``pct``% of leads by
  score. The top ``pct``% is ``ceil(pct/100 * n)`` leads. Leads tied at the cut-off score are counted
  fractionally (as if ties were broken at random, in expectation), so the result does not depend on
  row order.
* ``lift_at(y, scores, pct)``: ``capture_at / (pct/100)``; 1.0 is what random contact achieves.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

PCTS = (5, 10, 20, 30)


def _check(y, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float).ravel()
    scores = np.asarray(scores, dtype=float).ravel()
    if y.shape != scores.shape:
        raise ValueError(f"labels and scores differ in length ({len(y)} vs {len(scores)})")
    if len(y) == 0:
        raise ValueError("no rows to evaluate")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1")
    if y.sum() == 0:
        raise ValueError("no positives: capture is undefined")
    return y, scores


def capture_at(y, scores, pct: float) -> float:
    """Share of all positives among the top ``pct`` percent of scores (ties at the cut-off shared)."""
    y, scores = _check(y, scores)
    if not 0 < pct <= 100:
        raise ValueError(f"pct must be in (0, 100], got {pct}")
    n = len(y)
    m = min(n, max(1, math.ceil(pct / 100 * n - 1e-9)))
    order = np.argsort(-scores, kind="stable")
    threshold = scores[order[m - 1]]
    above = scores > threshold
    tied = scores == threshold
    found = y[above].sum() + y[tied].sum() * (m - above.sum()) / tied.sum()
    return float(found / y.sum())


def capture_at_pct(y, scores, pcts=PCTS) -> dict[str, float]:
    return {str(p): capture_at(y, scores, p) for p in pcts}


def lift_at_pct(y, scores, pcts=PCTS) -> dict[str, float]:
    return {str(p): capture_at(y, scores, p) / (p / 100) for p in pcts}


def gains_curve(y, scores) -> tuple[np.ndarray, np.ndarray]:
    """``(share of leads contacted, cumulative share of positives)``, both from 0 to 1, best scores first."""
    y, scores = _check(y, scores)
    order = np.argsort(-scores, kind="stable")
    found = np.concatenate([[0.0], np.cumsum(y[order])]) / y.sum()
    contacted = np.arange(len(y) + 1) / len(y)
    return contacted, found


def summarize(y, probabilities, pcts=PCTS) -> dict:
    """The metrics of ``metrics.json`` for out-of-fold probabilities."""
    y, probabilities = _check(y, probabilities)
    return {
        "roc_auc": float(roc_auc_score(y, probabilities)),
        "pr_auc": float(average_precision_score(y, probabilities)),
        "brier": float(brier_score_loss(y, probabilities)),
        "capture_at_pct": capture_at_pct(y, probabilities, pcts),
        "lift_at_pct": lift_at_pct(y, probabilities, pcts),
        "base_rate": float(y.mean()),
        "n_rows": int(len(y)),
        "n_positives": int(y.sum()),
    }
