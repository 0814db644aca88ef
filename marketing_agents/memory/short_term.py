"""Short-term memory: what the agents need for minutes to hours, in Redis, forgotten on schedule.

Owns the policy (key names, TTLs, what belongs to which lead); the Redis protocol is the store
adapter's (``stores.redis.RedisShortTermStore``). Everything about a lead is listed in the lead's
index set, so that erasing a lead finds every key without scanning the keyspace.

The event bus, the lock service and the rate limiter are ports of their own over the same adapter
(``event_bus``, ``locks``, ``rate_limits``); the key names they share with this one are in
``redis_layout``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from marketing_agents.domain import utc_now
from marketing_agents.domain.common import DomainModel
from marketing_agents.memory.redis_layout import (
    DEFAULT_POLICY,
    ERASED_MARKER_S,
    EVENT_TOPICS,
    PREFIX,
    TtlPolicy,
    erased_marker,
    event_stream,
    lead_index,
)
from marketing_agents.stores.redis import RedisShortTermStore

__all__ = ["ShortTermMemory", "Turn", "context_key"]


class Turn(DomainModel):
    seq: int
    role: str
    text: str
    at: str


def context_key(lead_id: UUID) -> str:
    return f"{PREFIX}:lead:{lead_id}:context"


class ShortTermMemory:
    def __init__(self, store: RedisShortTermStore, policy: TtlPolicy = DEFAULT_POLICY) -> None:
        self.store = store
        self.policy = policy

    # Context cache: a lead's working context while agents handle it (cache TTL).
    async def cache_context(self, lead_id: UUID, context: dict[str, Any]) -> None:
        await self.store.put_json(context_key(lead_id), context, self.policy.cache_s, lead_index(lead_id),
                                  erased_marker(lead_id))

    async def context(self, lead_id: UUID) -> dict[str, Any] | None:
        return await self.store.get_json(context_key(lead_id))

    # Sessions: a visitor's or an agent's session state, as a hash (session TTL).
    async def remember_session(self, session_id: str, fields: dict[str, Any], lead_id: UUID | None = None) -> None:
        index, marker = (lead_index(lead_id), erased_marker(lead_id)) if lead_id else (None, None)
        await self.store.put_hash(f"{PREFIX}:session:{session_id}", fields, self.policy.session_s, index, marker)

    async def session(self, session_id: str) -> dict[str, Any]:
        return await self.store.get_hash(f"{PREFIX}:session:{session_id}")

    # Conversations: numbered turns in a hash (session TTL, renewed by each turn).
    async def add_turn(self, lead_id: UUID, conversation_id: str, role: str, text: str) -> int:
        key = f"{PREFIX}:conversation:{conversation_id}"
        value = {"role": role, "text": text, "at": utc_now().isoformat()}
        return await self.store.append_to_hash(key, value, self.policy.session_s, lead_index(lead_id),
                                               erased_marker(lead_id))

    async def conversation(self, conversation_id: str) -> list[Turn]:
        raw = await self.store.get_hash(f"{PREFIX}:conversation:{conversation_id}")
        return [Turn(seq=int(seq), **turn) for seq, turn in sorted(raw.items())]

    # Temp data: intermediate results nobody needs for long (temp TTL).
    async def put_temp(self, name: str, value: Any, lead_id: UUID | None = None) -> None:
        await self.store.put_json(f"{PREFIX}:temp:{name}", value, self.policy.temp_s,
                                  lead_index(lead_id) if lead_id else None, erased_marker(lead_id) if lead_id else None)

    async def temp(self, name: str) -> Any | None:
        return await self.store.get_json(f"{PREFIX}:temp:{name}")

    async def cached_lead_ids(self) -> list[UUID]:
        """Leads whose working context is still cached."""
        keys = await self.store.keys_matching(f"{PREFIX}:lead:*:context")
        return [UUID(key.split(":")[2]) for key in keys]

    async def seal_lead(self, lead_id: UUID) -> None:
        """Marks the lead erased before its data goes, so that what work still under way writes about it
        while (or after) the erasure runs, an event, its context, a session or a conversation turn, is
        dropped instead of written back (``redis_layout.erased_marker``)."""
        await self.store.set_marker(erased_marker(lead_id), ERASED_MARKER_S)

    async def forget_lead(self, lead_id: UUID) -> int:
        """Deletes every key the lead's index lists (its event stream too) and the lead's events from the
        shared topics' replay buffers; returns how many keys went."""
        await self.store.delete_stream_entries_mentioning([event_stream(t) for t in EVENT_TOPICS], str(lead_id))
        return await self.store.delete_indexed(lead_index(lead_id), context_key(lead_id))

    async def export_lead(self, lead_id: UUID) -> dict[str, Any]:
        """Every value the lead's index lists, by key."""
        return await self.store.read_indexed(lead_index(lead_id))
