"""Redis (Valkey embedded by default): the client pool and the lead's working-context cache."""

from __future__ import annotations

import json
import time
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from marketing_agents.errors import StorageError
from marketing_agents.settings import Settings


def create_client(settings: Settings) -> aioredis.Redis:
    """A client over a pool of at most ``MAS_REDIS_POOL_SIZE`` connections that waits for a free one."""
    if settings.redis_url is None:
        raise StorageError("MAS_REDIS_URL is not set; the launcher sets it for the embedded server")
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(), max_connections=settings.redis_pool_size, timeout=10
    )
    return aioredis.Redis(connection_pool=pool)


async def ping(client: aioredis.Redis) -> float:
    """Round-trip time of PING in milliseconds; raises StorageError when it fails."""
    started = time.perf_counter()
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise StorageError(f"Redis unavailable: {exc}") from exc
    return (time.perf_counter() - started) * 1000


def context_key(lead_id: UUID) -> str:
    return f"mas:lead:{lead_id}:context"


class ContextCache:
    """The working context of a lead the agents are busy with, kept for ``MAS_CONTEXT_TTL_S`` seconds."""

    def __init__(self, client: aioredis.Redis, ttl_s: int) -> None:
        self._client = client
        self._ttl_s = ttl_s

    async def put(self, lead_id: UUID, context: dict[str, Any]) -> None:
        try:
            await self._client.set(context_key(lead_id), json.dumps(context, default=str), ex=self._ttl_s)
        except (RedisError, OSError) as exc:
            raise StorageError(f"Redis unavailable while caching a lead's context: {exc}") from exc

    async def get(self, lead_id: UUID) -> dict[str, Any] | None:
        try:
            raw = await self._client.get(context_key(lead_id))
        except (RedisError, OSError) as exc:
            raise StorageError(f"Redis unavailable while reading a lead's context: {exc}") from exc
        return None if raw is None else json.loads(raw)
