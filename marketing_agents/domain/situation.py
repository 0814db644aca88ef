"""The embedding of a situation: lead and context features as a 32-dimensional unit vector.

No external model: categorical features are hashed into signed buckets (the hashing trick, with a
stable hash so every process agrees), numeric features are scaled into a few fixed dimensions. Two
situations that share industry, seniority, size band, country and channels point the same way.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

DIMENSIONS = 32
NUMERIC_DIMENSIONS = 4  # the last four: company size, lead score, consented channels, touches
_HASHED = DIMENSIONS - NUMERIC_DIMENSIONS
CATEGORICAL = ("industry", "seniority", "country", "source", "triage_category")


def _bucket(feature: str, value: str) -> tuple[int, float]:
    digest = hashlib.blake2b(f"{feature}={value}".lower().encode(), digest_size=8).digest()
    number = int.from_bytes(digest, "big")
    return number % _HASHED, 1.0 if (number >> 32) & 1 else -1.0


def embed_situation(features: dict[str, Any]) -> list[float]:
    vector = [0.0] * DIMENSIONS
    for name in CATEGORICAL:
        value = features.get(name)
        if value:
            index, sign = _bucket(name, str(value))
            vector[index] += sign
    for channel in features.get("channels", []) or []:
        index, sign = _bucket("channel", str(channel))
        vector[index] += 0.5 * sign
    numeric = (
        math.log10(max(1, int(features.get("company_size") or 1))) / 7,
        float(features.get("lead_score") or 0) / 100,
        len(features.get("channels", []) or []) / 5,
        min(1.0, float(features.get("touches") or 0) / 10),
    )
    vector[_HASHED:] = numeric
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector
