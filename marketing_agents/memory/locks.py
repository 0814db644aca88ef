"""Locks over Redis: one holder at a time across every replica.

A lock expires (``TtlPolicy.lock_s`` unless the caller asks for another TTL), so a holder that dies
cannot block everyone forever; and only the holder of its token can release it, so a holder whose
lock expired and was taken by another cannot free the new holder's.
"""

from __future__ import annotations

import secrets

from pydantic import BaseModel

from marketing_agents.memory.redis_layout import DEFAULT_POLICY, PREFIX, TtlPolicy
from marketing_agents.stores.redis import RedisShortTermStore


class Lock(BaseModel):
    """A held lock; only the holder of ``token`` can release it."""

    name: str
    token: str
    ttl_s: int


class LockService:
    def __init__(self, store: RedisShortTermStore, policy: TtlPolicy = DEFAULT_POLICY) -> None:
        self.store = store
        self.policy = policy

    async def acquire(self, name: str, ttl_s: int | None = None) -> Lock | None:
        """None while another holder has it."""
        ttl = ttl_s or self.policy.lock_s
        lock = Lock(name=name, token=secrets.token_hex(16), ttl_s=ttl)
        taken = await self.store.acquire_lock(f"{PREFIX}:lock:{name}", lock.token, ttl * 1000)
        return lock if taken else None

    async def release(self, lock: Lock) -> bool:
        """False when the lock had expired and is no longer (or never was) this holder's."""
        return await self.store.release_lock(f"{PREFIX}:lock:{lock.name}", lock.token)
