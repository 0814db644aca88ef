"""Redis (Valkey embedded by default): the client pool and the short-term store adapter.

The adapter speaks Redis and nothing else: JSON values and hashes with TTLs, locks that only their
holder can release, a sliding-window counter on a sorted set, pub/sub with a capped stream per channel
for replay. What to keep and for how long is the short-term memory tier's decision
(``marketing_agents.memory.short_term``).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
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


# Leases on a capped number of slots (open WebSockets of one API key, across replicas): a sorted set of
# holders scored by when their lease ends, on the server's clock so that replicas' clocks cannot disagree.
# Lapsed leases are dropped first, so the slots of a replica that died free themselves; a holder renews
# with the same call. KEYS: the set; ARGV: holder, limit, lease_ms. Returns {taken (1/0), holders}.
_LEASE_SLOT = """
local limit, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local count = redis.call('ZCARD', KEYS[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and count >= limit then
    return {0, count}
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
return {1, redis.call('ZCARD', KEYS[1])}
"""


# Publishing with replay, atomically: the next number of the global sequence becomes the event's id and
# its stream entry's id (<n>-0), the entry goes into the capped stream (XADD MAXLEN ~), and the message,
# with the id spliced between the JSON head and tail, goes to the channel. One script, so that messages
# reach subscribers in the order of their ids. If the sequence key was lost while a stream survived,
# the sequence jumps past the stream's last id rather than fail.
# Nothing is written when the key ARGV[6] exists (an erased lead's marker: its late events are dropped).
# KEYS: sequence, stream[, index set]; ARGV: channel, maxlen, ttl_s, head, tail, marker or ''. Returns the
# id, 0 when dropped.
_PUBLISH = """
if ARGV[6] ~= '' and redis.call('EXISTS', ARGV[6]) == 1 then
    return 0
end
local seq = redis.call('INCR', KEYS[1])
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if last[1] then
    local top = tonumber(string.match(last[1][1], '^(%d+)'))
    if top >= seq then
        seq = top + 1
        redis.call('SET', KEYS[1], seq)
    end
end
local id = string.format('%d', seq)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id .. '-0', 'h', ARGV[4], 't', ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[3])
if KEYS[3] then
    redis.call('SADD', KEYS[3], KEYS[2])
    if redis.call('TTL', KEYS[3]) < tonumber(ARGV[3]) then
        redis.call('EXPIRE', KEYS[3], ARGV[3])
    end
end
redis.call('PUBLISH', ARGV[1], ARGV[4] .. ',"id":"' .. id .. '"' .. ARGV[5])
return seq
"""

# What a reconnecting subscriber missed: the current sequence number and, per stream, its entries with
# an id above ARGV[1] (newest first, at most ARGV[2]) and whether entries above ARGV[1] were removed
# (trimmed by the cap, or erased). One script, so that the answer is one instant's state.
# KEYS: sequence, streams...; ARGV: after (-1: only the sequence), count.
_EVENTS_AFTER = """
local result = {tonumber(redis.call('GET', KEYS[1]) or '0')}
local after = tonumber(ARGV[1])
if after < 0 then
    return result
end
local start = string.format('%d', after + 1) .. '-0'
for i = 2, #KEYS do
    local entries = redis.call('XREVRANGE', KEYS[i], '+', start, 'COUNT', ARGV[2])
    local removed = 0
    if redis.call('EXISTS', KEYS[i]) == 1 then
        local info = redis.call('XINFO', 'STREAM', KEYS[i])
        for j = 1, #info, 2 do
            if info[j] == 'max-deleted-entry-id' then
                local top = tonumber(string.match(info[j + 1], '^(%d+)'))
                if top > after then
                    removed = 1
                end
            end
        end
    end
    table.insert(result, {removed, entries})
end
return result
"""

# Listing a key in an index set, which lives at least as long as its longest-lived member: a member
# written with a TTL of ARGV[2] s extends the set to that TTL (never shortens it), so the set expires
# with the last of them instead of outliving them forever. A set without a TTL (-1) gets one.
# Run in the write's transaction, after the write: when the key ARGV[3] exists (the lead was erased
# meanwhile), the member just written is deleted again and not listed.
# KEYS: index; ARGV: member, ttl_s, marker or ''.
_INDEX = """
if ARGV[3] ~= '' and redis.call('EXISTS', ARGV[3]) == 1 then
    redis.call('DEL', ARGV[1])
    return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
"""

# Erasure from shared streams: deletes every entry of KEYS whose fields contain ARGV[1]. Returns how many.
_DELETE_MENTIONING = """
local removed = 0
for i = 1, #KEYS do
    for _, entry in ipairs(redis.call('XRANGE', KEYS[i], '-', '+')) do
        local fields = entry[2]
        for j = 2, #fields, 2 do
            if string.find(fields[j], ARGV[1], 1, true) then
                redis.call('XDEL', KEYS[i], entry[1])
                removed = removed + 1
                break
            end
        end
    end
end
return removed
"""


@dataclass(frozen=True)
class StreamBacklog:
    """One stream's entries after an id, oldest first, as (id, head, tail); ``removed``: some are gone."""

    entries: list[tuple[int, str, str]]
    removed: bool


class RedisShortTermStore:
    """The short-term memory port over Redis. Every method raises StorageError when Redis fails."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._release = client.register_script(_RELEASE_LOCK)
        self._window = client.register_script(_SLIDING_WINDOW)
        self._publish = client.register_script(_PUBLISH)
        self._events_after = client.register_script(_EVENTS_AFTER)
        self._delete_mentioning = client.register_script(_DELETE_MENTIONING)
        self._index = client.register_script(_INDEX)
        self._lease_slot = client.register_script(_LEASE_SLOT)

    async def _call(self, action: str, operation):
        try:
            return await operation
        except (RedisError, OSError) as exc:
            raise StorageError(f"Redis unavailable while trying to {action}: {exc}") from exc

    async def put_json(self, key: str, value: Any, ttl_s: int, index: str | None = None,
                       unless: str | None = None) -> None:
        """Writes ``key`` and lists it in ``index``; when the key ``unless`` exists, nothing stays written."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.set(key, json.dumps(value, default=str), ex=ttl_s)
            if index is not None:
                await self._index(keys=[index], args=[key, ttl_s, unless or ""], client=pipe)
            await self._call("write a value", pipe.execute())

    async def get_json(self, key: str) -> Any | None:
        raw = await self._call("read a value", self._client.get(key))
        return None if raw is None else json.loads(raw)

    async def put_hash(self, key: str, fields: dict[str, Any], ttl_s: int, index: str | None = None,
                       unless: str | None = None) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={k: json.dumps(v, default=str) for k, v in fields.items()})
            pipe.expire(key, ttl_s)
            if index is not None:
                await self._index(keys=[index], args=[key, ttl_s, unless or ""], client=pipe)
            await self._call("write a hash", pipe.execute())

    async def append_to_hash(self, key: str, value: Any, ttl_s: int, index: str | None = None,
                             unless: str | None = None) -> int:
        """Stores ``value`` under the hash's next sequence number (1, 2, ...) and returns that number."""
        seq = await self._call("number a hash entry", self._client.hincrby(key, "_seq", 1))
        await self.put_hash(key, {f"{seq:08d}": value}, ttl_s, index, unless)
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

    async def lease_slot(self, key: str, holder: str, limit: int, lease_ms: int) -> tuple[bool, int]:
        """Takes or renews ``holder``'s lease on one of ``limit`` slots for ``lease_ms``; returns whether
        it holds one and how many holders there are."""
        taken, count = await self._call("lease a slot", self._lease_slot(keys=[key], args=[holder, limit, lease_ms]))
        return bool(taken), int(count)

    async def release_slot(self, key: str, holder: str) -> None:
        await self._call("release a slot", self._client.zrem(key, holder))

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        return await self._call("publish an event", self._client.publish(channel, json.dumps(message, default=str)))

    async def publish_numbered(self, sequence: str, stream: str, channel: str, head: str, tail: str, maxlen: int,
                               ttl_s: int, index: str | None = None, unless: str | None = None) -> int:
        """Numbers a message from ``sequence``, keeps it in ``stream`` (about ``maxlen`` entries, expiring
        ``ttl_s`` after the last one) and publishes ``head + ',"id":"<n>"' + tail`` on ``channel``; returns n.
        When the key ``unless`` exists, nothing is written or published and 0 is returned."""
        keys = [sequence, stream] + ([index] if index is not None else [])
        return int(await self._call("publish an event", self._publish(
            keys=keys, args=[channel, maxlen, ttl_s, head, tail, unless or ""])))

    async def set_marker(self, key: str, ttl_s: int) -> None:
        await self._call("set a marker", self._client.set(key, "1", ex=ttl_s))

    async def stream_backlog(self, sequence: str, streams: list[str], after: int | None,
                             count: int) -> tuple[int, dict[str, StreamBacklog]]:
        """The sequence's current number and, when ``after`` is given, each stream's newest ``count``
        entries numbered above it, read at one instant."""
        raw = await self._call("read the event history", self._events_after(
            keys=[sequence, *streams], args=[-1 if after is None else after, count]))
        backlog: dict[str, StreamBacklog] = {}
        if after is None:
            return int(raw[0]), backlog
        for stream, (removed, entries) in zip(streams, raw[1:], strict=True):
            parsed = []
            for entry_id, fields in reversed(entries):
                values = dict(zip(fields[::2], fields[1::2], strict=True))
                parsed.append((int(entry_id.split(b"-")[0]), values[b"h"].decode(), values[b"t"].decode()))
            backlog[stream] = StreamBacklog(parsed, bool(removed))
        return int(raw[0]), backlog

    async def delete_stream_entries_mentioning(self, streams: list[str], text: str) -> int:
        return int(await self._call("erase stream entries", self._delete_mentioning(keys=streams, args=[text])))

    async def listen(self, pattern: str, on_ready: Callable[[], None],
                     idle_check_s: float = 15.0) -> AsyncIterator[tuple[str, str]]:
        """Yields (channel, message) for every message on channels matching ``pattern``, forever; calls
        ``on_ready`` once the subscription is active. Raises StorageError when the connection fails."""
        pubsub = self._client.pubsub()
        try:
            await self._call("subscribe to events", pubsub.psubscribe(pattern))
            confirmed, quiet = False, 0
            while True:
                message = await self._call("receive events", pubsub.get_message(timeout=idle_check_s))
                if message is None:
                    # A silent connection is pinged; one that stays silent is dead.
                    quiet += 1
                    if quiet > 2:
                        raise StorageError("Redis did not answer on the event subscription")
                    await self._call("ping the event subscription", pubsub.ping())
                    continue
                quiet = 0
                if message["type"] == "psubscribe":
                    if confirmed:
                        # The client reconnected and subscribed again by itself: what was published in
                        # between never arrived, so the caller must learn of the gap.
                        raise StorageError("the event subscription was interrupted; events may have been missed")
                    confirmed = True
                    on_ready()
                elif message["type"] == "pmessage":
                    yield message["channel"].decode(), message["data"].decode()
        finally:
            await pubsub.aclose()

    async def read_indexed(self, index: str) -> dict[str, Any]:
        """The keys listed in the ``index`` set with their values (hashes as dicts), sorted by key."""
        members = await self._call("read an index", self._client.smembers(index))
        values: dict[str, Any] = {}
        for key in sorted(m.decode() for m in members):
            kind = await self._call("read a key's type", self._client.type(key))
            if kind == b"stream":
                entries = await self._call("read a stream", self._client.xrange(key))
                values[key] = [_stream_entry(entry_id, fields) for entry_id, fields in entries]
            else:
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


def _stream_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> Any:
    """A stream entry as it was published (a numbered message, see ``publish_numbered``), else its fields."""
    values = {k.decode(): v.decode() for k, v in fields.items()}
    if set(values) == {"h", "t"}:
        return json.loads(values["h"] + f',"id":"{entry_id.decode().split("-")[0]}"' + values["t"])
    return values
