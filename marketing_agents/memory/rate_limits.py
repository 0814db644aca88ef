"""The rate limiter over Redis: a sliding window per subject, shared by every replica; and the leases
that cap how many sockets a subject holds open at once, across replicas.

A sliding window on a sorted set rather than fixed buckets, so that a client cannot send twice its
limit around a bucket's edge; the set expires with its window, so idle subjects cost nothing.

When Redis does not answer, ``MeteredAdmission`` applies one deliberate rule
(``MAS_RATE_LIMIT_WHEN_STORE_DOWN``): ``reject`` refuses the request as unavailable (503 with
Retry-After), so that no key gets unmetered use while the counter is away; ``allow`` lets it through
unmetered. Either way a warning says so, at most every 30 seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Literal
from uuid import uuid4

from pydantic import BaseModel, Field

from marketing_agents.errors import StorageError
from marketing_agents.memory.redis_layout import DEFAULT_POLICY, PREFIX, TtlPolicy
from marketing_agents.stores.redis import RedisShortTermStore

log = logging.getLogger(__name__)

StoreDownPolicy = Literal["reject", "allow"]


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


class MeteredAdmission:
    """The rate limiter with a deadline and the rule for when Redis does not answer (see the module)."""

    def __init__(self, limiter: RateLimiter | Callable[[], RateLimiter], when_store_down: StoreDownPolicy = "reject",
                 timeout_s: float = 1.0, warn_every_s: float = 30.0) -> None:
        self._limiter = limiter
        self.when_store_down = when_store_down
        self.timeout_s = timeout_s
        self.warn_every_s = warn_every_s
        self._warned_at: float | None = None

    async def admit(self, subject: str, limit: int, window_s: int) -> RateDecision | None:
        """The limiter's decision; None when Redis did not answer and the rule is ``allow``. Raises
        StorageError (a 503 with Retry-After) when it did not answer and the rule is ``reject``."""
        try:
            if not isinstance(self._limiter, RateLimiter):  # made on first use: Redis may be unset or down
                self._limiter = self._limiter()
            return await asyncio.wait_for(self._limiter.admit(subject, limit, window_s), self.timeout_s)
        except (StorageError, TimeoutError) as exc:
            cause = str(exc) or f"no answer within {self.timeout_s:g} s"
            rejecting = self.when_store_down == "reject"
            self._warn(f"rate limiter unavailable, requests are {'refused' if rejecting else 'let through unmetered'}: "
                       f"{cause}")
            if rejecting:
                raise StorageError("requests cannot be counted against the rate limit now (Redis does not answer); "
                                   "retry shortly") from exc
            return None

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at > self.warn_every_s:
            self._warned_at = now
            log.warning("%s", message)


class SlotDecision(BaseModel):
    allowed: bool
    limit: int
    holders: int = Field(ge=0, description="How many hold a slot now, this one included when allowed.")


class SocketSlots:
    """At most ``limit`` open sockets per subject (an API key), counted in Redis across replicas.

    Each socket holds a lease of ``lease_s`` that it renews while open (``renew_every_s``) and releases
    when it closes; a replica that dies stops renewing, so its sockets stop counting once their leases
    lapse instead of holding the key's slots for ever.
    """

    def __init__(self, store: RedisShortTermStore, lease_s: float = 60.0) -> None:
        self.store = store
        self.lease_s = lease_s

    @property
    def renew_every_s(self) -> float:
        return self.lease_s / 3

    async def take(self, subject: str, holder: str, limit: int) -> SlotDecision:
        """Takes a slot for ``holder`` (or renews the one it holds) if fewer than ``limit`` are held."""
        allowed, holders = await self.store.lease_slot(_slots_key(subject), holder, limit, int(self.lease_s * 1000))
        return SlotDecision(allowed=allowed, limit=limit, holders=holders)

    async def release(self, subject: str, holder: str) -> None:
        await self.store.release_slot(_slots_key(subject), holder)


def _slots_key(subject: str) -> str:
    return f"{PREFIX}:sockets:{subject}"
