"""Short-term memory: what the agents need for minutes to hours, in Redis, forgotten on schedule.

Owns the policy (key names, TTLs, what belongs to which lead); the Redis protocol is the store
adapter's (``stores.redis.RedisShortTermStore``). Everything about a lead is listed in the lead's
index set, so that erasing a lead finds every key without scanning the keyspace.

Events are numbered from one sequence shared by every topic, so an event's ``id`` is an increasing
integer (as a string) that also orders events across topics, and each topic keeps its latest events
in a capped stream: a subscriber that comes back with the last id it saw asks for what it missed
(``event_backlog``) and then hears the rest live (``listen_events``).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, Field

from marketing_agents.domain import utc_now
from marketing_agents.domain.common import DomainModel
from marketing_agents.settings import Settings
from marketing_agents.stores.redis import RedisShortTermStore

PREFIX = "mas"


@dataclass(frozen=True)
class TtlPolicy:
    session_s: int = 24 * 3600
    cache_s: int = 3600
    temp_s: int = 15 * 60
    lock_s: int = 30
    rate_window_s: int = 3600
    # Each event topic keeps about this many of its latest events for replay, for this long after its last.
    event_replay: int = 1000
    event_replay_s: int = 24 * 3600

    @classmethod
    def from_settings(cls, settings: Settings) -> TtlPolicy:
        return cls(settings.session_ttl_s, settings.cache_ttl_s, settings.temp_ttl_s, settings.lock_ttl_s,
                   settings.rate_limit_window_s, settings.ws_replay_events, settings.ws_replay_ttl_s)


class Lock(BaseModel):
    """A held lock; only the holder of ``token`` can release it."""

    name: str
    token: str
    ttl_s: int


class RateDecision(BaseModel):
    allowed: bool
    limit: int
    remaining: int = Field(ge=0)
    retry_after_s: float = Field(ge=0, description="0 when allowed; else when the oldest request leaves the window.")


class Turn(DomainModel):
    seq: int
    role: str
    text: str
    at: str


class Event(DomainModel):
    """An event as the WebSocket gateway and every subscriber receive it."""

    type: str
    id: str
    ts: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class EventBacklog:
    """What a subscriber missed: ``events`` as (topic, id, JSON text), oldest first; ``sequence``, the
    last id given out when it was read (anything later arrives live); ``truncated``, some events after
    the asked-for id are no longer kept (older than the replay buffer, or erased)."""

    sequence: int
    events: list[tuple[str, int, str]]
    truncated: bool = False


# The topics every replica publishes on, besides one per lead (``lead:<id>``).
EVENT_TOPICS = ("leads", "handoffs", "touchpoints", "campaigns", "escalations")
EVENT_SEQUENCE = f"{PREFIX}:event-seq"


def lead_index(lead_id: UUID) -> str:
    return f"{PREFIX}:lead:{lead_id}:keys"


def context_key(lead_id: UUID) -> str:
    return f"{PREFIX}:lead:{lead_id}:context"


class ShortTermMemory:
    def __init__(self, store: RedisShortTermStore, policy: TtlPolicy = TtlPolicy()) -> None:
        self.store = store
        self.policy = policy

    # Context cache: a lead's working context while agents handle it (cache TTL).
    async def cache_context(self, lead_id: UUID, context: dict[str, Any]) -> None:
        await self.store.put_json(context_key(lead_id), context, self.policy.cache_s, lead_index(lead_id))

    async def context(self, lead_id: UUID) -> dict[str, Any] | None:
        return await self.store.get_json(context_key(lead_id))

    # Sessions: a visitor's or an agent's session state, as a hash (session TTL).
    async def remember_session(self, session_id: str, fields: dict[str, Any], lead_id: UUID | None = None) -> None:
        index = lead_index(lead_id) if lead_id else None
        await self.store.put_hash(f"{PREFIX}:session:{session_id}", fields, self.policy.session_s, index)

    async def session(self, session_id: str) -> dict[str, Any]:
        return await self.store.get_hash(f"{PREFIX}:session:{session_id}")

    # Conversations: numbered turns in a hash (session TTL, renewed by each turn).
    async def add_turn(self, lead_id: UUID, conversation_id: str, role: str, text: str) -> int:
        key = f"{PREFIX}:conversation:{conversation_id}"
        value = {"role": role, "text": text, "at": utc_now().isoformat()}
        return await self.store.append_to_hash(key, value, self.policy.session_s, lead_index(lead_id))

    async def conversation(self, conversation_id: str) -> list[Turn]:
        raw = await self.store.get_hash(f"{PREFIX}:conversation:{conversation_id}")
        return [Turn(seq=int(seq), **turn) for seq, turn in sorted(raw.items())]

    # Temp data: intermediate results nobody needs for long (temp TTL).
    async def put_temp(self, name: str, value: Any, lead_id: UUID | None = None) -> None:
        await self.store.put_json(f"{PREFIX}:temp:{name}", value, self.policy.temp_s,
                                  lead_index(lead_id) if lead_id else None)

    async def temp(self, name: str) -> Any | None:
        return await self.store.get_json(f"{PREFIX}:temp:{name}")

    # Locks: one holder at a time across every replica (lock TTL, so a dead holder cannot block forever).
    async def acquire(self, name: str, ttl_s: int | None = None) -> Lock | None:
        ttl = ttl_s or self.policy.lock_s
        lock = Lock(name=name, token=secrets.token_hex(16), ttl_s=ttl)
        taken = await self.store.acquire_lock(f"{PREFIX}:lock:{name}", lock.token, ttl * 1000)
        return lock if taken else None

    async def release(self, lock: Lock) -> bool:
        """False when the lock had expired and is no longer (or never was) this holder's."""
        return await self.store.release_lock(f"{PREFIX}:lock:{lock.name}", lock.token)

    # Rate limiting: a sliding window on a sorted set (rate-limit window TTL).
    async def admit(self, subject: str, limit: int, window_s: int | None = None) -> RateDecision:
        window_ms = (window_s or self.policy.rate_window_s) * 1000
        allowed, count, retry_ms = await self.store.sliding_window(
            f"{PREFIX}:rate:{subject}", limit, window_ms, int(time.time() * 1000), uuid4().hex
        )
        return RateDecision(allowed=allowed, limit=limit, remaining=max(0, limit - count),
                            retry_after_s=retry_ms / 1000)

    # Events: published on one channel per topic; any replica can publish, every subscriber hears it.
    # Each is numbered and kept in its topic's capped stream, so that a subscriber can catch up.
    async def publish(self, topic: str, event_type: str, payload: dict[str, Any]) -> Event:
        ts = utc_now().isoformat()
        head = '{"type":' + json.dumps(event_type)
        tail = ',"ts":' + json.dumps(ts) + ',"payload":' + json.dumps(payload, default=str) + "}"
        seq = await self.store.publish_numbered(
            EVENT_SEQUENCE, event_stream(topic), event_channel(topic), head, tail,
            self.policy.event_replay, self.policy.event_replay_s, _lead_index_of_topic(topic))
        return Event(type=event_type, id=str(seq), ts=ts, payload=payload)

    async def event_backlog(self, topics: list[str], after: int | None, limit: int | None = None) -> EventBacklog:
        """The current sequence number and, when ``after`` is given, the topics' events numbered above it
        (the newest ``limit``, by default the replay buffer's size), read at one instant."""
        limit = limit or self.policy.event_replay
        streams = [event_stream(topic) for topic in topics]
        sequence, backlog = await self.store.stream_backlog(EVENT_SEQUENCE, streams, after, limit + 1)
        if after is None:
            return EventBacklog(sequence, [])
        events = sorted((seq, topic, head + f',"id":"{seq}"' + tail)
                        for topic, stream in zip(topics, streams, strict=True)
                        for seq, head, tail in backlog[stream].entries)
        truncated = len(events) > limit or any(b.removed or len(b.entries) > limit for b in backlog.values())
        return EventBacklog(sequence, [(topic, seq, text) for seq, topic, text in events[-limit:]], truncated)

    async def listen_events(self, on_ready: Callable[[], None]) -> AsyncIterator[tuple[str, str]]:
        """Every event any replica publishes, as (topic, JSON text), in the order of their ids; calls
        ``on_ready`` once listening. Raises StorageError when the subscription fails or was interrupted."""
        prefix = event_channel("")
        async for channel, message in self.store.listen(event_channel("*"), on_ready):
            yield channel[len(prefix):], message

    async def cached_lead_ids(self) -> list[UUID]:
        """Leads whose working context is still cached."""
        keys = await self.store.keys_matching(f"{PREFIX}:lead:*:context")
        return [UUID(key.split(":")[2]) for key in keys]

    async def forget_lead(self, lead_id: UUID) -> int:
        """Deletes every key the lead's index lists (its event stream too) and the lead's events from the
        shared topics' replay buffers; returns how many keys went."""
        await self.store.delete_stream_entries_mentioning([event_stream(t) for t in EVENT_TOPICS], str(lead_id))
        return await self.store.delete_indexed(lead_index(lead_id), context_key(lead_id))

    async def export_lead(self, lead_id: UUID) -> dict[str, Any]:
        """Every value the lead's index lists, by key."""
        return await self.store.read_indexed(lead_index(lead_id))


def event_channel(topic: str) -> str:
    return f"{PREFIX}:events:{topic}"


def event_stream(topic: str) -> str:
    """The capped stream of the topic's latest events (a key; channels are another namespace)."""
    return f"{PREFIX}:event-stream:{topic}"


def _lead_index_of_topic(topic: str) -> str | None:
    """A lead's own topic's stream is listed in the lead's index, so that erasing the lead deletes it."""
    if topic.startswith("lead:"):
        try:
            return lead_index(UUID(topic.removeprefix("lead:")))
        except ValueError:
            return None
    return None
