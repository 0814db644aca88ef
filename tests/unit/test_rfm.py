"""RFM against a dataset small enough to check by hand."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from marketing_agents.domain.rfm import Purchase
from marketing_agents.memory.rfm import compute_rfm, quintiles, segment

AS_OF = date(2026, 6, 30)


def buy(key: str, day: str, value: str) -> Purchase:
    return Purchase(key, datetime.fromisoformat(day).replace(tzinfo=UTC), Decimal(value))


# Five customers, one per quintile on every axis, so each score is checkable by hand:
#   a: last 2026-06-29 (1 day),  5 purchases, 500  -> R5 F5 M5 Champions
#   b: last 2026-06-20 (10 days), 4 purchases, 400 -> R4 F4 M4 Champions
#   c: last 2026-05-31 (30 days), 3 purchases, 300 -> R3 F3 M3 Needs attention
#   d: last 2026-03-02 (120 days), 2 purchases, 200 -> R2 F2 M2 Hibernating
#   e: last 2025-06-30 (365 days), 1 purchase, 100 -> R1 F1 M1 Hibernating
HAND_CHECKED = (
    [buy("a", f"2026-06-{d:02d}", "100") for d in (1, 8, 15, 22, 29)]
    + [buy("b", f"2026-06-{d:02d}", "100") for d in (2, 9, 16, 20)]
    + [buy("c", "2026-05-01", "100"), buy("c", "2026-05-15", "100"), buy("c", "2026-05-31", "100")]
    + [buy("d", "2026-01-10", "150"), buy("d", "2026-03-02", "50")]
    + [buy("e", "2025-06-30", "100")]
    + [buy("a", "2026-07-01", "9999")]  # after the reference date: ignored
)


def test_values_and_scores_match_the_definition_on_a_hand_checked_dataset():
    rows = {row.lead_key: row for row in compute_rfm(HAND_CHECKED, AS_OF)}
    got = {k: (r.recency_days, r.frequency, r.monetary, r.r_score, r.f_score, r.m_score, r.rfm_segment)
           for k, r in rows.items()}
    assert got == {
        "a": (1, 5, Decimal("500"), 5, 5, 5, "Champions"),
        "b": (10, 4, Decimal("400"), 4, 4, 4, "Champions"),
        "c": (30, 3, Decimal("300"), 3, 3, 3, "Needs attention"),
        "d": (120, 2, Decimal("200"), 2, 2, 2, "Hibernating"),
        "e": (365, 1, Decimal("100"), 1, 1, 1, "Hibernating"),
    }


def test_leads_without_a_purchase_by_the_reference_date_get_no_row():
    rows = compute_rfm([buy("late", "2026-07-02", "10"), buy("x", "2026-06-01", "10")], AS_OF)
    assert [r.lead_key for r in rows] == ["x"]


@pytest.mark.parametrize("n", [5, 7, 10, 23, 100])
def test_ties_never_leave_a_quintile_empty(n):
    # Everyone bought once, the same amount, on the same day: every metric is one big tie.
    rows = compute_rfm([buy(f"k{i:03d}", "2026-06-01", "10") for i in range(n)], AS_OF)
    for axis in ("r_score", "f_score", "m_score"):
        counts = Counter(getattr(r, axis) for r in rows)
        assert set(counts) == {1, 2, 3, 4, 5}
        assert max(counts.values()) - min(counts.values()) <= 1, "quintiles are as even as n allows"


def test_fewer_days_since_the_last_purchase_is_a_better_recency_score():
    rows = {r.lead_key: r for r in compute_rfm(
        [buy(k, d, "10") for k, d in [("old", "2025-01-01"), ("mid", "2026-01-01"), ("new", "2026-06-29"),
                                     ("o2", "2025-02-01"), ("n2", "2026-06-20")]], AS_OF)}
    assert rows["new"].r_score > rows["mid"].r_score > rows["old"].r_score


def test_quintile_of_ranks():
    assert quintiles(list("abcdefghij")) == {k: s for k, s in zip("abcdefghij", [1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
                                                                  strict=True)}


@pytest.mark.parametrize(("scores", "name"), [
    ((5, 5, 5), "Champions"), ((3, 4, 2), "Loyal"), ((5, 1, 3), "New"), ((4, 3, 1), "Potential loyalist"),
    ((1, 5, 5), "Can't lose"), ((2, 3, 1), "At risk"), ((1, 1, 1), "Hibernating"), ((3, 2, 2), "Needs attention"),
])
def test_segments_from_scores(scores, name):
    assert segment(*scores) == name
