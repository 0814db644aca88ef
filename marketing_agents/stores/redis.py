"""Redis (Valkey embedded by default): the client pool and the short-term store adapter.

The adapter speaks Redis and nothing else: JSON values and hashes with TTLs, locks that only their
holder can release, a sliding-window counter on a sorted set, pub/sub. What to keep and for how long
is the short-term memory tier's decision (``marketing_agents.memory.short_term``).
"""

from __future__ import annotations

import json
import time
from typing import Any

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


# Deletes the lock only if it still holds the caller's token: a holder whose lock expired and was
# taken by someone else cannot release the new holder's lock.
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# Sliding window: drop entries older than the window, admit if fewer than the limit remain.
# Returns {admitted (1/0), count after the call, ms until the oldest entry leaves the window}.
_SLIDING_WINDOW = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
    redis.call('ZADD', KEYS[1], now, ARGV[4])
    redis.call('PEXPIRE', KEYS[1], window)
    return {1, count + 1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, count, math.max(0, tonumber(oldest[2]) + window - now)}
"""


class RedisShortTermStore:
    """The short-term memory port over Redis. Every method raises StorageError when Redis fails."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._release = client.register_script(_RELEASE_LOCK)
        self._window = client.register_script(_SLIDING_WINDOW)

    async def _call(self, action: str, operation):
        try:
            return await operation
        except (RedisError, OSError) as exc:
            raise StorageError(f"Redis unavailable while trying to {action}: {exc}") from exc

    async def put_json(self, key: str, value: Any, ttl_s: int, index: str | None = None) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.set(key, json.dumps(value, default=str), ex=ttl_s)
            if index is not None:
                pipe.sadd(index, key)
            await self._call("write a value", pipe.execute())

    async def get_json(self, key: str) -> Any | None:
        raw = await self._call("read a value", self._client.get(key))
        return None if raw is None else json.loads(raw)

    async def put_hash(self, key: str, fields: dict[str, Any], ttl_s: int, index: str | None = None) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={k: json.dumps(v, default=str) for k, v in fields.items()})
            pipe.expire(key, ttl_s)
            if index is not None:
                pipe.sadd(index, key)
            await self._call("write a hash", pipe.execute())

    async def append_to_hash(self, key: str, value: Any, ttl_s: int, index: str | None = None) -> int:
        """Stores ``value`` under the hash's next sequence number (1, 2, ...) and returns that number."""
        seq = await self._call("number a hash entry", self._client.hincrby(key, "_seq", 1))
        await self.put_hash(key, {f"{seq:08d}": value}, ttl_s, index)
        return seq

    async def get_hash(self, key: str) -> dict[str, Any]:
        raw = await self._call("read a hash", self._client.hgetall(key))
        return {k.decode(): json.loads(v) for k, v in raw.items() if k != b"_seq"}

    async def acquire_lock(self, key: str, token: str, ttl_ms: int) -> bool:
        return bool(await self._call("take a lock", self._client.set(key, token, nx=True, px=ttl_ms)))

    async def release_lock(self, key: str, token: str) -> bool:
        return bool(await self._call("release a lock", self._release(keys=[key], args=[token])))

    async def sliding_window(self, key: str, limit: int, window_ms: int, now_ms: int, member: str) -> tuple[bool, int, int]:
        admitted, count, retry_ms = await self._call(
            "count a rate window", self._window(keys=[key], args=[now_ms, window_ms, limit, member])
        )
        return bool(admitted), int(count), int(retry_ms)

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        return await self._call("publish an event", self._client.publish(channel, json.dumps(message, default=str)))

    async def read_indexed(self, index: str) -> dict[str, Any]:
        """The keys listed in the ``index`` set with their values (hashes as dicts), sorted by key."""
        members = await self._call("read an index", self._client.smembers(index))
        values: dict[str, Any] = {}
        for key in sorted(m.decode() for m in members):
            kind = await self._call("read a key's type", self._client.type(key))
            values[key] = await (self.get_hash(key) if kind == b"hash" else self.get_json(key))
        return values

    async def delete_indexed(self, index: str, *keys: str) -> int:
        """Deletes the keys listed in the ``index`` set, the given keys, and the index itself."""
        members = await self._call("read an index", self._client.smembers(index))
        doomed = [m.decode() for m in members] + list(keys) + [index]
        return await self._call("delete keys", self._client.delete(*doomed))

    async def keys_matching(self, pattern: str) -> list[str]:
        try:
            return [k.decode() async for k in self._client.scan_iter(match=pattern, count=500)]
        except (RedisError, OSError) as exc:
            raise StorageError(f"Redis unavailable while trying to list keys: {exc}") from exc
