"""A lead's Redis index set against a real Valkey: it expires with its members instead of outliving them.

The index lists every key about a lead so that erasure needs no scan; a set that never expired would
keep one key per lead ever seen, long after everything it lists has gone.
"""

from __future__ import annotations

import uuid

from marketing_agents.memory.event_bus import EventBus
from marketing_agents.memory.redis_layout import TtlPolicy, lead_index
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.stores.redis import RedisShortTermStore

POLICY = TtlPolicy(session_s=7200, cache_s=600, temp_s=90, event_replay=10, event_replay_s=3000)


async def test_the_index_lives_as_long_as_its_longest_lived_member_and_no_longer(redis_client):
    memory = ShortTermMemory(RedisShortTermStore(redis_client), POLICY)
    lead_id = uuid.uuid4()
    index = lead_index(lead_id)

    await memory.put_temp(f"t-{lead_id}", {"z": 3}, lead_id)
    assert 0 < await redis_client.ttl(index) <= POLICY.temp_s

    await memory.cache_context(lead_id, {"x": 1})
    assert POLICY.temp_s < await redis_client.ttl(index) <= POLICY.cache_s

    await memory.add_turn(lead_id, f"c-{lead_id}", "lead", "hi")
    assert POLICY.cache_s < await redis_client.ttl(index) <= POLICY.session_s

    # A shorter-lived member added later never shortens the set's life.
    await memory.put_temp(f"t2-{lead_id}", {"z": 4}, lead_id)
    ttl = await redis_client.ttl(index)
    assert POLICY.cache_s < ttl <= POLICY.session_s
    for member in await redis_client.smembers(index):
        assert 0 < await redis_client.ttl(member) <= ttl, member


async def test_the_lead_topic_stream_extends_its_index_and_an_index_without_ttl_gets_one(redis_client):
    store = RedisShortTermStore(redis_client)
    lead_id = uuid.uuid4()
    index = lead_index(lead_id)
    await redis_client.sadd(index, "mas:left-over")  # an index written before sets expired

    await EventBus(store, POLICY).publish(f"lead:{lead_id}", "lead.triaged", {"lead_id": str(lead_id)})

    assert POLICY.session_s > await redis_client.ttl(index) > POLICY.event_replay_s - 60
    assert len(await redis_client.smembers(index)) == 2

    await ShortTermMemory(store, POLICY).remember_session(f"s-{lead_id}", {"page": "/pricing"}, lead_id)
    assert await redis_client.ttl(index) > POLICY.event_replay_s
