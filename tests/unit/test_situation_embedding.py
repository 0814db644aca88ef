"""The situation embedding: stable, unit length, and closer for situations that share features."""

from __future__ import annotations

import math

from marketing_agents.domain.situation import DIMENSIONS, embed_situation

BASE = {"industry": "software", "seniority": "vp", "country": "DE", "source": "referral", "company_size": 800,
        "lead_score": 82, "channels": ["email", "linkedin"]}


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_stable_across_calls_and_unit_length():
    v = embed_situation(BASE)
    assert v == embed_situation(dict(BASE))
    assert len(v) == DIMENSIONS
    assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0)


def test_sharing_more_features_means_more_similar():
    one_change = embed_situation({**BASE, "country": "FR"})
    many_changes = embed_situation({**BASE, "country": "FR", "industry": "retail", "seniority": "student",
                                    "source": "list_import", "company_size": 3, "lead_score": 10})
    assert cosine(embed_situation(BASE), one_change) > cosine(embed_situation(BASE), many_changes)


def test_an_empty_situation_does_not_divide_by_zero():
    assert embed_situation({}) == [0.0] * (DIMENSIONS - 4) + [0.0, 0.0, 0.0, 0.0]
