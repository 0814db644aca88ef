"""The rate limiter over Redis: a sliding window per subject, shared by every replica.

A sliding window on a sorted set rather than fixed buckets, so that a client cannot send twice its
limit around a bucket's edge; the set expires with its window, so idle subjects cost nothing.
"""

from __future__ import annotations

import time
from uuid import uuid4

from pydantic import BaseModel, Field

from marketing_agents.memory.redis_layout import DEFAULT_POLICY, PREFIX, TtlPolicy
from marketing_agents.stores.redis import RedisShortTermStore


class RateDecision(BaseModel):
    allowed: bool
    limit: int
    remaining: int = Field(ge=0)
    retry_after_s: float = Field(ge=0, description="0 when allowed; else when the oldest request leaves the window.")


class RateLimiter:
    def __init__(self, store: RedisShortTermStore, policy: TtlPolicy = DEFAULT_POLICY) -> None:
        self.store = store
        self.policy = policy

    async def admit(self, subject: str, limit: int, window_s: int | None = None) -> RateDecision:
        """Counts one more request of ``subject`` if fewer than ``limit`` are in the window (by default the
        policy's ``rate_window_s``)."""
        window_ms = (window_s or self.policy.rate_window_s) * 1000
        allowed, count, retry_ms = await self.store.sliding_window(
            f"{PREFIX}:rate:{subject}", limit, window_ms, int(time.time() * 1000), uuid4().hex
        )
        return RateDecision(allowed=allowed, limit=limit, remaining=max(0, limit - count),
                            retry_after_s=retry_ms / 1000)
