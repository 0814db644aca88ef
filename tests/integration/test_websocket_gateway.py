"""The WebSocket gateway served by uvicorn in this process, over a real Valkey, with a real client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
import uvicorn
from fastapi import FastAPI

from marketing_agents.memory.event_bus import EventBus
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.serve_app.websocket import add_websocket_routes
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.redis import RedisShortTermStore
from tests.support import free_port, wait_for
from tests.websocket_support import EventClient, ws_url


class RoleFromHeader:
    """Stands in for the access-control middleware: the role comes from a test header."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            role = dict(scope["headers"]).get(b"x-test-role")
            if role is not None:
                principal = SimpleNamespace(key_id=uuid.uuid4(), name="test", role=role.decode())
                scope = {**scope, "state": {**(scope.get("state") or {}), "principal": principal}}
        await self.app(scope, receive, send)


@pytest.fixture
async def serve_gateway(migrated) -> AsyncIterator:
    """Starts a gateway with the given ws_* settings; returns its http URL."""
    running: list[tuple[uvicorn.Server, asyncio.Task, StoreConnections]] = []

    async def start(**ws_settings) -> str:
        settings = migrated.settings(**{"ws_heartbeat_s": 30.0, "ws_send_queue": 16, "ws_replay_events": 50,
                                        "ws_max_session_s": 0, **ws_settings})
        stores = StoreConnections(settings)
        app = FastAPI()
        app.add_middleware(RoleFromHeader)
        add_websocket_routes(app, stores, settings)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="off", ws_ping_interval=None))
        task = asyncio.create_task(server.serve())
        running.append((server, task, stores))
        await wait_for(lambda: server.started, timeout_s=10, interval_s=0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, task, stores in running:
        server.should_exit = server.force_exit = True
        await asyncio.wait_for(task, 10)
        await stores.close()


@pytest.fixture
def publisher(redis_client) -> EventBus:
    return EventBus(RedisShortTermStore(redis_client), TtlPolicy(event_replay=50))


def lead_topic() -> str:
    return f"lead:{uuid.uuid4()}"


async def test_a_subscriber_receives_its_topics_events_in_order_and_no_others(serve_gateway, publisher):
    url = await serve_gateway()
    mine, other = lead_topic(), lead_topic()
    client = await EventClient.connect(ws_url(url, topics=f"{mine},leads"))
    subscribed = await client.expect("subscribed")
    assert subscribed["payload"]["topics"] == sorted([mine, "leads"]) and subscribed["payload"]["replay"] is None
    sent = []
    for kind, topic in (("lead.triaged", mine), ("x", other), ("handoff.pending", mine), ("handoff.completed", mine)):
        sent.append(await publisher.publish(topic, kind, {"topic": topic}))
    events = await client.events(3, where=lambda e: e["payload"].get("topic") == mine)
    assert [e["type"] for e in events] == ["lead.triaged", "handoff.pending", "handoff.completed"]
    assert [e["id"] for e in events] == [sent[0].id, sent[2].id, sent[3].id]
    assert events[0] == {"type": "lead.triaged", "id": sent[0].id, "ts": sent[0].ts, "payload": {"topic": mine}}
    await client.close()


async def test_reconnecting_with_the_last_event_id_replays_what_was_missed_then_goes_live(serve_gateway, publisher):
    url = await serve_gateway()
    topic = lead_topic()
    client = await EventClient.connect(ws_url(url, topics=topic))
    await client.expect("subscribed")
    seen = await publisher.publish(topic, "lead.triaged", {"n": 0})
    assert (await client.events(1))[0]["id"] == seen.id
    await client.close()

    missed = [await publisher.publish(topic, "handoff.pending", {"n": n}) for n in (1, 2)]
    client = await EventClient.connect(ws_url(url, topics=topic, last_event_id=seen.id))
    subscribed = await client.expect("subscribed")
    assert subscribed["payload"]["replay"] == {"after": seen.id, "events": 2, "truncated": False}
    assert [e["id"] for e in await client.events(2)] == [e.id for e in missed]
    live = await publisher.publish(topic, "handoff.completed", {})
    assert [e["id"] for e in await client.events(1)] == [live.id], "live after the replay, nothing twice"
    await client.close()

    missed = await publisher.publish(topic, "touchpoint.sent", {})
    client = await EventClient.connect(ws_url(url, topics=topic), headers={"Last-Event-ID": live.id})
    assert (await client.expect("subscribed"))["payload"]["replay"]["events"] == 1
    assert [e["id"] for e in await client.events(1)] == [missed.id]
    await client.close()


async def test_subscribe_and_unsubscribe_messages_and_a_lead_history_from_the_start(serve_gateway, publisher):
    url = await serve_gateway()
    topic = lead_topic()
    history = [await publisher.publish(topic, kind, {}) for kind in ("lead.triaged", "handoff.pending")]
    client = await EventClient.connect(ws_url(url))
    assert (await client.expect("subscribed"))["payload"]["topics"] == []
    await client.send({"action": "subscribe", "topics": [topic], "last_event_id": "0"})
    assert (await client.expect("subscribed"))["payload"]["replay"]["events"] == 2
    assert [e["type"] for e in await client.events(2)] == ["lead.triaged", "handoff.pending"]
    await client.send({"action": "unsubscribe", "topics": [topic]})
    assert (await client.expect("unsubscribed"))["payload"] == {"topics": [], "removed": [topic]}
    await publisher.publish(topic, "handoff.completed", {})
    await client.send({"action": "ping"})
    assert (await client.frame())["type"] == "pong", "nothing of the unsubscribed topic arrives"
    assert history
    await client.close()


async def test_unknown_topics_are_named_and_refused(serve_gateway):
    url = await serve_gateway()
    client = await EventClient.connect(ws_url(url, topics="leads,nonsense"))
    error = await client.expect("error")
    assert error["payload"]["code"] == "unknown_topic" and error["payload"]["topics"] == ["nonsense"]
    assert (await client.expect("subscribed"))["payload"]["topics"] == ["leads"]
    await client.close()

    client = await EventClient.connect(ws_url(url, topics="nonsense,lead:42"))
    code, reason, frames = await client.closed()
    assert code == 1008 and "nonsense" in reason and "lead:42" in reason
    assert frames[0]["payload"]["topics"] == ["nonsense", "lead:42"]

    client = await EventClient.connect(ws_url(url, topics="leads", last_event_id="yesterday"))
    code, _, frames = await client.closed()
    assert code == 1008 and frames[0]["payload"]["code"] == "bad_last_event_id"


async def test_a_role_that_may_not_see_a_topic_is_refused_it(serve_gateway):
    url = await serve_gateway()
    client = await EventClient.connect(ws_url(url, topics="leads"), headers={"x-test-role": "guest"})
    code, _, frames = await client.closed()
    assert code == 1008 and frames[0]["payload"]["code"] == "forbidden_topic"
    client = await EventClient.connect(ws_url(url, topics="leads"), headers={"x-test-role": "viewer"})
    assert (await client.expect("subscribed"))["payload"]["topics"] == ["leads"]
    await client.close()


async def test_a_client_that_reads_nothing_is_disconnected_1013_and_the_others_keep_theirs(serve_gateway, publisher):
    url = await serve_gateway(ws_send_queue=16)
    topic = lead_topic()
    slow = await EventClient.connect(ws_url(url, topics=topic), answer_pings=False)
    fast = await EventClient.connect(ws_url(url, topics=topic))
    await slow.expect("subscribed")
    await fast.expect("subscribed")
    sent, received = [], []
    for _batch in range(25):  # the fast client keeps up: it reads each batch before the next is published
        sent += [await publisher.publish(topic, "tick", {"n": n}) for n in range(8)]
        received += await fast.events(8)
    assert [e["id"] for e in received] == [e.id for e in sent]
    code, reason, frames = await slow.closed()
    assert code == 1013 and "too slow" in reason and "last_event_id" in reason
    assert len(frames) <= 16, "no more than the window went out unacknowledged"
    await fast.close()


async def test_a_client_that_never_answers_a_ping_is_disconnected_1008(serve_gateway):
    url = await serve_gateway(ws_heartbeat_s=0.2)
    client = await EventClient.connect(ws_url(url, topics=lead_topic()), answer_pings=False)
    code, reason, _ = await client.closed(timeout_s=10)
    assert code == 1008 and "no pong" in reason and client.pings >= 1

    client = await EventClient.connect(ws_url(url, topics=lead_topic()))
    await client.expect("subscribed")
    frames = asyncio.create_task(client.frame(timeout_s=10))
    await wait_for(lambda: client.pings >= 5, timeout_s=10, interval_s=0.05)
    assert not frames.done(), "a client that answers stays connected"
    frames.cancel()
    await client.close()


async def test_a_session_ends_1001_at_its_limit_and_resumes_with_the_last_event_id(serve_gateway, publisher):
    url = await serve_gateway(ws_max_session_s=0.5)
    topic = lead_topic()
    client = await EventClient.connect(ws_url(url, topics=topic))
    await client.expect("subscribed")
    first = await publisher.publish(topic, "tick", {})
    code, reason, frames = await client.closed(timeout_s=10)
    assert code == 1001 and "last_event_id" in reason and frames[0]["id"] == first.id
    later = await publisher.publish(topic, "tick", {})
    client = await EventClient.connect(ws_url(url, topics=topic, last_event_id=first.id))
    await client.expect("subscribed")
    assert [e["id"] for e in await client.events(1)] == [later.id]
    await client.close()


async def test_losing_the_event_bus_closes_1011_and_the_next_connection_listens_again(serve_gateway, publisher,
                                                                                      redis_client):
    url = await serve_gateway()
    topic = lead_topic()
    client = await EventClient.connect(ws_url(url, topics=topic))
    await client.expect("subscribed")
    await redis_client.client_kill_filter(_type="pubsub")
    code, reason, _ = await client.closed(timeout_s=20)
    assert code == 1011 and "last_event_id" in reason

    client = await EventClient.connect(ws_url(url, topics=topic))
    await client.expect("subscribed")
    event = await publisher.publish(topic, "tick", {})
    assert [e["id"] for e in await client.events(1)] == [event.id]
    await client.close()
