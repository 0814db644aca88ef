"""The event bus: what one replica announces, every subscriber on any replica hears, over Redis.

Events are numbered from one sequence shared by every topic, so an event's ``id`` is an increasing
integer (as a string) that also orders events across topics, and each topic keeps its latest events
in a capped stream: a subscriber that comes back with the last id it saw asks for what it missed
(``event_backlog``) and then hears the rest live (``listen_events``).

Events are announcements of changes already committed to PostgreSQL, never the record of them:
``publish_after_commit`` is the one rule for sending them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from marketing_agents.domain import utc_now
from marketing_agents.domain.common import DomainModel
from marketing_agents.errors import StorageError
from marketing_agents.memory.redis_layout import (
    DEFAULT_POLICY,
    EVENT_TOPICS,
    PREFIX,
    TtlPolicy,
    erased_marker,
    event_stream,
    lead_index,
)
from marketing_agents.stores.redis import RedisShortTermStore

__all__ = ["EVENT_SEQUENCE", "EVENT_TOPICS", "Event", "EventBacklog", "EventBus", "OutgoingEvent", "event_channel",
           "event_stream", "publish_after_commit"]

log = logging.getLogger(__name__)

EVENT_SEQUENCE = f"{PREFIX}:event-seq"


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


@dataclass(frozen=True)
class OutgoingEvent:
    """One announcement, to be heard on each of ``topics`` (a shared topic and the lead's, say)."""

    topics: tuple[str, ...]
    type: str
    payload: dict[str, Any]


class EventBus:
    def __init__(self, store: RedisShortTermStore, policy: TtlPolicy = DEFAULT_POLICY) -> None:
        self.store = store
        self.policy = policy

    # Published on one channel per topic; any replica can publish, every subscriber hears it. Each event
    # is numbered and kept in its topic's capped stream, so that a subscriber can catch up.
    async def publish(self, topic: str, event_type: str, payload: dict[str, Any]) -> Event:
        ts = utc_now().isoformat()
        head = '{"type":' + json.dumps(event_type)
        tail = ',"ts":' + json.dumps(ts) + ',"payload":' + json.dumps(payload, default=str) + "}"
        lead = _lead_of(topic, payload)
        seq = await self.store.publish_numbered(
            EVENT_SEQUENCE, event_stream(topic), event_channel(topic), head, tail,
            self.policy.event_replay, self.policy.event_replay_s, _lead_index_of_topic(topic),
            unless=None if lead is None else erased_marker(lead))
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


async def publish_after_commit(bus: EventBus | None, events: Iterable[OutgoingEvent], what: str) -> None:
    """Announces changes that are already committed in PostgreSQL; ``what`` names what was stored.

    The commit is the fact and the event only tells others sooner (a subscriber that misses one finds
    the change in PostgreSQL, or replays it), so an event bus that is down must not turn a stored
    change into a failed request: a StorageError is logged and the next event is still tried. Any
    other exception is a bug in the caller and propagates. Events go out in the order given, each to
    all of its topics at once, so that a subscriber never hears a later event before an earlier one.
    """
    if bus is None:
        return
    for event in events:
        outcomes = await asyncio.gather(*(bus.publish(topic, event.type, event.payload) for topic in event.topics),
                                        return_exceptions=True)
        failures = [(topic, outcome) for topic, outcome in zip(event.topics, outcomes, strict=True)
                    if isinstance(outcome, BaseException)]
        for topic, failure in failures:
            if not isinstance(failure, StorageError):
                raise failure
            log.warning("%s is stored but not announced: could not publish %s on %s: %s", what, event.type, topic,
                        failure)


def event_channel(topic: str) -> str:
    return f"{PREFIX}:events:{topic}"


def _lead_of(topic: str, payload: dict[str, Any]) -> str | None:
    """The lead an event is about: its own topic's, else the payload's ``lead_id``. An event about a lead
    erased meanwhile is dropped (``redis_layout.erased_marker``), on every topic."""
    if topic.startswith("lead:"):
        return topic.removeprefix("lead:")
    lead = payload.get("lead_id")
    return None if lead is None else str(lead)


def _lead_index_of_topic(topic: str) -> str | None:
    """A lead's own topic's stream is listed in the lead's index, so that erasing the lead deletes it."""
    if topic.startswith("lead:"):
        try:
            return lead_index(UUID(topic.removeprefix("lead:")))
        except ValueError:
            return None
    return None
