"""The WebSocket gateway on the running system: a real `websockets` client through the Serve proxy."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
import websockets

from marketing_agents.memory.event_bus import EventBus
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.stores.redis import RedisShortTermStore
from tests.support import lead_payload
from tests.websocket_support import EventClient, ws_url

pytestmark = pytest.mark.e2e

LEAD_EVENTS = ["lead.triaged", "handoff.pending", "handoff.completed"]


def auth(system) -> dict[str, str]:
    return {"Authorization": f"Bearer {system.admin_key}"}


async def post_lead(api, prefix: str) -> str:
    email = f"{prefix}.{uuid.uuid4().hex[:8]}@acme-robotics.com"
    response = await asyncio.to_thread(api.post, "/api/v1/leads", json=lead_payload(email=email))
    assert response.status_code == 200, response.text
    return response.json()["lead_id"]


def of_lead(lead_id: str):
    return lambda event: event["payload"].get("lead_id") == lead_id


async def test_a_client_gets_a_posted_leads_events_in_order_and_what_it_missed_after_reconnecting(system, api):
    client = await EventClient.connect(ws_url(system.url, topics="leads,handoffs"), headers=auth(system))
    assert (await client.expect("subscribed"))["payload"]["topics"] == ["handoffs", "leads"]
    first = await post_lead(api, "ws-first")
    events = await client.events(3, where=of_lead(first))
    assert [e["type"] for e in events] == LEAD_EVENTS
    assert [int(e["id"]) for e in events] == sorted(int(e["id"]) for e in events)
    assert events[0]["payload"]["triage_category"] in ("hot", "warm")
    last_seen = events[-1]["id"]
    await client.close()

    missed = await post_lead(api, "ws-missed")
    client = await EventClient.connect(ws_url(system.url, topics="leads,handoffs", last_event_id=last_seen),
                                       headers=auth(system))
    replay = (await client.expect("subscribed"))["payload"]["replay"]
    assert replay["after"] == last_seen and replay["events"] >= 3 and not replay["truncated"]
    events = await client.events(3, where=of_lead(missed))
    assert [e["type"] for e in events] == LEAD_EVENTS
    assert all(int(e["id"]) > int(last_seen) for e in events)

    await client.close()

    # A lead's own topic, from the start of its history: then its first touchpoint goes out and says so.
    client = await EventClient.connect(ws_url(system.url, topics=f"lead:{missed}", last_event_id="0"),
                                       headers=auth(system))
    assert (await client.expect("subscribed"))["payload"]["replay"]["events"] >= 3
    assert [e["type"] for e in await client.events(3)] == LEAD_EVENTS
    sent = await client.events(1, where=lambda e: e["type"] == "touchpoint.sent", timeout_s=60)
    assert sent[0]["payload"]["lead_id"] == missed and sent[0]["payload"]["channel"] == "email"
    await client.close()


async def test_the_key_may_come_as_a_token_parameter_and_no_key_is_refused(system):
    client = await EventClient.connect(ws_url(system.url, topics="leads", token=system.admin_key))
    assert (await client.expect("subscribed"))["payload"]["topics"] == ["leads"]
    await client.close()
    with pytest.raises(websockets.InvalidStatus):
        await EventClient.connect(ws_url(system.url, topics="leads"))


async def test_an_unknown_topic_is_named_and_refused(system):
    client = await EventClient.connect(ws_url(system.url, topics="leads,touchpoint"), headers=auth(system))
    error = await client.expect("error")
    assert error["payload"]["code"] == "unknown_topic" and error["payload"]["topics"] == ["touchpoint"]
    assert (await client.expect("subscribed"))["payload"]["topics"] == ["leads"]
    await client.close()

    client = await EventClient.connect(ws_url(system.url, topics="bogus"), headers=auth(system))
    code, reason, frames = await client.closed()
    assert code == 1008 and "bogus" in reason and frames[0]["payload"]["topics"] == ["bogus"]


async def test_a_client_that_reads_nothing_is_disconnected_and_others_are_served(system):
    topic = f"lead:{uuid.uuid4()}"
    slow = await EventClient.connect(ws_url(system.url, topics=topic), headers=auth(system), answer_pings=False)
    await slow.expect("subscribed")
    redis_client = aioredis.from_url(system.redis_url)
    try:
        publisher = EventBus(RedisShortTermStore(redis_client), TtlPolicy())
        for n in range(1500):  # the window and the queue are 256 each by default
            await publisher.publish(topic, "load.test", {"n": n})
    finally:
        await redis_client.aclose()
    code, reason, frames = await slow.closed(timeout_s=60)
    assert code == 1013 and "too slow" in reason
    assert len(frames) <= 256, "no more than the window went out unacknowledged"

    client = await EventClient.connect(ws_url(system.url, topics=topic, last_event_id=frames[-1]["id"]),
                                       headers=auth(system))
    replay = (await client.expect("subscribed"))["payload"]["replay"]
    assert replay["events"] > 0, "the slow client can come back for what it missed"
    await client.close()
