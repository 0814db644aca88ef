"""Short-term memory against a real Valkey: TTLs, locks, the rate limiter, events, forgetting."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from marketing_agents.memory.event_bus import EventBus, event_channel
from marketing_agents.memory.locks import Lock, LockService
from marketing_agents.memory.rate_limits import RateLimiter
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.memory.short_term import ShortTermMemory, context_key
from marketing_agents.stores.redis import RedisShortTermStore
from tests.support import wait_for

POLICY = TtlPolicy(session_s=7200, cache_s=600, temp_s=90, lock_s=20, rate_window_s=60)


@pytest.fixture
def memory(redis_client) -> ShortTermMemory:
    return ShortTermMemory(RedisShortTermStore(redis_client), POLICY)


@pytest.fixture
def locks(redis_client) -> LockService:
    return LockService(RedisShortTermStore(redis_client), POLICY)


@pytest.fixture
def limiter(redis_client) -> RateLimiter:
    return RateLimiter(RedisShortTermStore(redis_client), POLICY)


@pytest.fixture
def bus(redis_client) -> EventBus:
    return EventBus(RedisShortTermStore(redis_client), POLICY)


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def ttl_of(redis_client, key: str) -> int:
    return await redis_client.ttl(key)


async def test_each_kind_of_data_gets_its_configured_ttl(memory, locks, limiter, redis_client):
    lead_id = uuid.uuid4()
    session, conversation, temp = name("s"), name("c"), name("t")
    await memory.cache_context(lead_id, {"stage": "triaged"})
    await memory.remember_session(session, {"page": "/pricing"}, lead_id)
    await memory.add_turn(lead_id, conversation, "lead", "Can I get a demo?")
    await memory.put_temp(temp, [1, 2, 3])
    lock = await locks.acquire(name("l"))
    await limiter.admit(name("r"), limit=3)

    assert 500 < await ttl_of(redis_client, context_key(lead_id)) <= 600
    assert 7100 < await ttl_of(redis_client, f"mas:session:{session}") <= 7200
    assert 7100 < await ttl_of(redis_client, f"mas:conversation:{conversation}") <= 7200
    assert 0 < await ttl_of(redis_client, f"mas:temp:{temp}") <= 90
    assert 0 < await ttl_of(redis_client, f"mas:lock:{lock.name}") <= 20
    rate_keys = [k async for k in redis_client.scan_iter(match="mas:rate:r-*")]
    assert rate_keys
    for key in rate_keys:
        assert 0 < await ttl_of(redis_client, key) <= 60


async def test_values_come_back_as_written(memory):
    lead_id = uuid.uuid4()
    conversation = name("c")
    await memory.cache_context(lead_id, {"score": 88.5, "tags": ["hot"]})
    await memory.remember_session("sess-" + conversation, {"page": "/pricing", "visits": 3})
    assert await memory.add_turn(lead_id, conversation, "agent", "Hi Jane") == 1
    assert await memory.add_turn(lead_id, conversation, "lead", "Hello") == 2
    assert await memory.context(lead_id) == {"score": 88.5, "tags": ["hot"]}
    assert await memory.session("sess-" + conversation) == {"page": "/pricing", "visits": 3}
    assert [(t.seq, t.role, t.text) for t in await memory.conversation(conversation)] == [
        (1, "agent", "Hi Jane"), (2, "lead", "Hello")]


async def test_a_lock_has_one_holder_and_only_that_holder_can_release_it(locks):
    resource = name("campaign")
    held = await locks.acquire(resource)
    assert held is not None
    assert await locks.acquire(resource) is None, "a second holder must wait"

    impostor = Lock(name=resource, token="not-the-holder", ttl_s=20)
    assert await locks.release(impostor) is False
    assert await locks.acquire(resource) is None, "the impostor's release freed nothing"

    assert await locks.release(held) is True
    assert await locks.acquire(resource) is not None


async def test_an_expired_holder_cannot_release_the_next_holders_lock(locks, redis_client):
    resource = name("lead")
    first = await locks.acquire(resource, ttl_s=1)
    await wait_for(lambda: locks.acquire(resource), timeout_s=5, interval_s=0.05)  # taken by a second holder
    assert await locks.release(first) is False
    assert await redis_client.exists(f"mas:lock:{resource}") == 1


async def test_the_rate_limiter_admits_exactly_the_limit_within_the_window(limiter):
    subject = name("key")
    decisions = [await limiter.admit(subject, limit=5) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert 0 < decisions[-1].retry_after_s <= 60
    assert (await limiter.admit(name("other"), limit=5)).allowed, "limits are per subject"


async def test_the_rate_limiter_holds_under_concurrent_callers(limiter):
    subject = name("burst")
    decisions = await asyncio.gather(*(limiter.admit(subject, limit=7) for _ in range(25)))
    assert sum(d.allowed for d in decisions) == 7


async def test_the_window_slides(limiter):
    subject = name("slide")
    assert (await limiter.admit(subject, limit=1, window_s=1)).allowed
    assert not (await limiter.admit(subject, limit=1, window_s=1)).allowed

    async def admitted_again():
        return (await limiter.admit(subject, limit=1, window_s=1)).allowed

    assert await wait_for(admitted_again, timeout_s=5, interval_s=0.1)


async def test_published_events_reach_every_subscriber_in_order(bus, redis_client):
    topic = name("leads")
    subscribers = [redis_client.pubsub() for _ in range(2)]
    for sub in subscribers:
        await sub.subscribe(event_channel(topic))
        assert (await sub.get_message(timeout=5))["type"] == "subscribe"
    sent = [await bus.publish(topic, "lead.triaged", {"n": n}) for n in range(3)]
    for sub in subscribers:
        received = []
        while len(received) < 3:
            message = await sub.get_message(ignore_subscribe_messages=True, timeout=5)
            assert message is not None, "an event was lost"
            received.append(json.loads(message["data"]))
        assert [e["id"] for e in received] == [e.id for e in sent]
        assert received[0] == {"type": "lead.triaged", "id": sent[0].id, "ts": sent[0].ts, "payload": {"n": 0}}
        await sub.aclose()


async def test_forgetting_a_lead_removes_every_key_about_it_and_nothing_else(memory, redis_client):
    lead_id, other = uuid.uuid4(), uuid.uuid4()
    conversation = name("c")
    await memory.cache_context(lead_id, {"x": 1})
    await memory.remember_session(name("s"), {"y": 2}, lead_id)
    await memory.add_turn(lead_id, conversation, "lead", "hi")
    await memory.put_temp(name("t"), {"z": 3}, lead_id)
    await memory.cache_context(other, {"keep": True})

    exported = await memory.export_lead(lead_id)
    assert len(exported) == 4 and {"x": 1} in exported.values()

    assert await memory.forget_lead(lead_id) >= 4
    assert [k async for k in redis_client.scan_iter(match=f"*{lead_id}*")] == []
    assert await memory.conversation(conversation) == []
    assert await memory.export_lead(lead_id) == {}
    assert await memory.context(other) == {"keep": True}
