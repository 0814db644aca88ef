"""RFM: recency, frequency and monetary value of each lead's purchases, scored in quintiles.

Definition (as of a reference date; only purchases on or before it count):

- ``recency_days``: whole days from the lead's last purchase to the reference date;
- ``frequency``: the number of purchase events; ``monetary``: their total value;
- ``r_score``, ``f_score``, ``m_score``: quintiles 1..5 over all leads with at least one purchase, 5 best
  (for recency, fewest days is best). Quintiles are cut on ordinal ranks, ties broken by lead key, so
  ties can never leave a quintile empty: with n leads, rank i (1..n) scores ceil(5·i/n);
- ``rfm_segment``: named from the three scores by the first rule in SEGMENT_RULES that matches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal

from marketing_agents.domain.rfm import Purchase, RfmScore

# Ordered; the first matching rule names the segment.
SEGMENT_RULES: tuple[tuple[str, Callable[[int, int, int], bool]], ...] = (
    ("Champions", lambda r, f, m: r >= 4 and f >= 4 and m >= 4),
    ("Loyal", lambda r, f, m: r >= 3 and f >= 4),
    ("New", lambda r, f, m: r >= 4 and f == 1),
    ("Potential loyalist", lambda r, f, m: r >= 4 and f in (2, 3)),
    ("Can't lose", lambda r, f, m: r == 1 and f >= 4 and m >= 4),
    ("At risk", lambda r, f, m: r <= 2 and f >= 3),
    ("Hibernating", lambda r, f, m: r <= 2 and f <= 2),
    ("Needs attention", lambda r, f, m: True),
)


def segment(r: int, f: int, m: int) -> str:
    return next(name for name, rule in SEGMENT_RULES if rule(r, f, m))


def quintiles(keys_in_rank_order: list[str]) -> dict[str, int]:
    """Rank i of n (1-based, worst first) scores ceil(5·i/n)."""
    n = len(keys_in_rank_order)
    return {key: math.ceil(5 * rank / n) for rank, key in enumerate(keys_in_rank_order, start=1)}


def compute_rfm(purchases: Iterable[Purchase], as_of: date) -> list[RfmScore]:
    last: dict[str, date] = {}
    count: dict[str, int] = {}
    total: dict[str, Decimal] = {}
    for p in purchases:
        day = p.occurred_at.date()
        if day > as_of:
            continue
        last[p.lead_key] = max(last.get(p.lead_key, day), day)
        count[p.lead_key] = count.get(p.lead_key, 0) + 1
        total[p.lead_key] = total.get(p.lead_key, Decimal(0)) + Decimal(p.value)
    recency = {key: (as_of - day).days for key, day in last.items()}
    # Worst first: most days since the last purchase, fewest purchases, least spent.
    r = quintiles(sorted(recency, key=lambda k: (-recency[k], k)))
    f = quintiles(sorted(count, key=lambda k: (count[k], k)))
    m = quintiles(sorted(total, key=lambda k: (total[k], k)))
    return [
        RfmScore(lead_key=key, recency_days=recency[key], frequency=count[key], monetary=total[key],
                 r_score=r[key], f_score=f[key], m_score=m[key], rfm_segment=segment(r[key], f[key], m[key]))
        for key in sorted(recency)
    ]
