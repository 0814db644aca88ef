"""Numbered events and their replay buffer against a real Valkey: publish, backlog, erasure, listening."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from marketing_agents.errors import StorageError
from marketing_agents.memory.event_bus import EVENT_SEQUENCE, EventBus, event_channel, event_stream
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.stores.redis import RedisShortTermStore


def memory_with(redis_client, replay: int = 1000, replay_s: int = 3600) -> EventBus:
    return EventBus(RedisShortTermStore(redis_client), TtlPolicy(event_replay=replay, event_replay_s=replay_s))


def topic() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


async def test_events_are_numbered_from_one_sequence_across_topics_and_kept_per_topic(redis_client):
    memory = memory_with(redis_client, replay_s=600)
    a, b = topic(), topic()
    sent = [await memory.publish(t, "thing.happened", {"n": n}) for n, t in enumerate((a, b, a))]
    ids = [int(e.id) for e in sent]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert int(await redis_client.get(EVENT_SEQUENCE)) >= ids[-1]
    assert await redis_client.xlen(event_stream(a)) == 2 and await redis_client.xlen(event_stream(b)) == 1
    assert 0 < await redis_client.ttl(event_stream(a)) <= 600


async def test_the_backlog_after_an_id_is_what_was_missed_oldest_first_exactly_as_published_live(redis_client):
    memory = memory_with(redis_client)
    a, b = topic(), topic()
    sub = redis_client.pubsub()
    await sub.subscribe(event_channel(a), event_channel(b))
    for _ in range(2):
        assert (await sub.get_message(timeout=5))["type"] == "subscribe"
    first = await memory.publish(a, "lead.triaged", {"lead_id": "x", "score": 81.5})
    missed = [await memory.publish(b, "handoff.pending", {"n": 1}), await memory.publish(a, "handoff.completed", {})]
    live = []
    while len(live) < 3:
        message = await sub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message is not None, "an event was not published"
        live.append(message["data"].decode())
    await sub.aclose()

    backlog = await memory.event_backlog([a, b], int(first.id))
    assert [(t, seq) for t, seq, _ in backlog.events] == [(b, int(missed[0].id)), (a, int(missed[1].id))]
    assert [text for _, _, text in backlog.events] == live[1:], "a replayed event is the live one, byte for byte"
    assert json.loads(live[0]) == {"type": "lead.triaged", "id": first.id, "ts": first.ts,
                                   "payload": {"lead_id": "x", "score": 81.5}}
    assert backlog.sequence >= int(missed[1].id) and not backlog.truncated
    assert (await memory.event_backlog([a, b], int(missed[1].id))).events == []
    fresh = await memory.event_backlog([a, b], None)
    assert fresh.events == [] and fresh.sequence >= int(missed[1].id)


async def test_the_buffer_is_capped_and_a_client_too_far_behind_learns_that_it_missed_some(redis_client):
    memory = memory_with(redis_client, replay=10)
    t = topic()
    sent = [await memory.publish(t, "tick", {"n": n}) for n in range(300)]
    # MAXLEN ~ trims whole nodes of the stream: it holds about the cap, never everything.
    assert await redis_client.xlen(event_stream(t)) < 300
    behind = await memory.event_backlog([t], int(sent[0].id))
    assert behind.truncated and [seq for _, seq, _ in behind.events] == [int(e.id) for e in sent[-10:]]
    recent = await memory.event_backlog([t], int(sent[-4].id))
    assert not recent.truncated and [seq for _, seq, _ in recent.events] == [int(e.id) for e in sent[-3:]]


async def test_a_lost_sequence_key_never_reuses_an_id_a_stream_still_holds(redis_client):
    memory = memory_with(redis_client)
    t = topic()
    before = await memory.publish(t, "tick", {})
    saved = await redis_client.get(EVENT_SEQUENCE)
    await redis_client.delete(EVENT_SEQUENCE)
    try:
        after = await memory.publish(t, "tick", {})
        assert int(after.id) > int(before.id)
    finally:
        # Other tests share this server's sequence: put it back where it was (or further).
        await redis_client.set(EVENT_SEQUENCE, max(int(saved), int(await redis_client.get(EVENT_SEQUENCE))))


async def test_forgetting_a_lead_deletes_its_topic_and_its_events_in_the_shared_topics(redis_client):
    memory = memory_with(redis_client)
    short_term = ShortTermMemory(memory.store, memory.policy)
    lead_id, other = uuid.uuid4(), uuid.uuid4()
    marker = await memory.publish("leads", "lead.triaged", {"lead_id": str(other)})
    await memory.publish("leads", "lead.triaged", {"lead_id": str(lead_id)})
    await memory.publish("handoffs", "handoff.completed", {"lead_id": str(lead_id)})
    await memory.publish(f"lead:{lead_id}", "lead.triaged", {"lead_id": str(lead_id)})
    exported = await short_term.export_lead(lead_id)
    assert [e["type"] for e in exported[event_stream(f"lead:{lead_id}")]] == ["lead.triaged"]

    await short_term.forget_lead(lead_id)
    assert not await redis_client.exists(event_stream(f"lead:{lead_id}"))
    for shared in ("leads", "handoffs"):
        entries = await redis_client.xrange(event_stream(shared))
        assert not any(str(lead_id).encode() in b"".join(fields.values()) for _, fields in entries)
    kept = await memory.event_backlog(["leads"], int(marker.id) - 1)
    assert str(other) in kept.events[0][2]


async def test_listening_hears_every_topic_in_id_order_and_reports_an_interrupted_subscription(redis_client):
    memory = memory_with(redis_client)
    a, b = topic(), topic()
    ready = asyncio.Event()
    heard: list[tuple[str, str]] = []

    async def listen() -> None:
        async for t, text in memory.listen_events(ready.set):
            if t in (a, b):
                heard.append((t, text))
                if len(heard) == 3:
                    return

    listening = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 5)
    sent = [await memory.publish(t, "tick", {}) for t in (a, b, a)]
    await asyncio.wait_for(listening, 5)
    assert [(t, json.loads(text)["id"]) for t, text in heard] == [(t, e.id) for t, e in zip((a, b, a), sent)]

    ready.clear()
    interrupted = asyncio.create_task(anext(memory.listen_events(ready.set)))
    await asyncio.wait_for(ready.wait(), 5)
    await redis_client.client_kill_filter(_type="pubsub")
    with pytest.raises(StorageError, match="interrupted|unavailable"):
        await asyncio.wait_for(interrupted, 10)
