"""The WebSocket gateway's limits, as a client meets them: replicas (uvicorn servers in this process, each
with the real access control and gateway) over one real Valkey and PostgreSQL, and real API keys.

Sockets per API key across replicas, sockets per replica, leases a dead replica leaves behind, subscribe
messages per minute, and messages that are not this protocol's (too deep, too big, NaN, lone surrogates).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
import uvicorn
from fastapi import FastAPI

from marketing_agents.domain.access import NewApiKey
from marketing_agents.memory.event_bus import EventBus
from marketing_agents.memory.rate_limits import SocketSlots
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.serve_app.access_control import install_access_control
from marketing_agents.serve_app.websocket import (
    MAX_MESSAGE_CHARS,
    GatewayLimits,
    SocketAdmission,
    add_websocket_routes,
)
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.postgres_access import PostgresKeyStore
from marketing_agents.stores.redis import RedisShortTermStore
from tests.support import free_port, wait_for
from tests.websocket_support import EventClient, ws_url


@pytest.fixture
async def replica(migrated) -> AsyncIterator:
    """Starts a replica of the API with the given ws_* settings; returns its http URL."""
    running: list[tuple[uvicorn.Server, asyncio.Task, StoreConnections]] = []

    async def start(**ws_settings) -> str:
        settings = migrated.settings(**{"ws_heartbeat_s": 30.0, "ws_send_queue": 64, "ws_replay_events": 50,
                                        "ws_max_session_s": 0, **ws_settings})
        stores = StoreConnections(settings)
        app = FastAPI()
        install_access_control(app, stores, settings)
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
def new_key(pool):
    keys = PostgresKeyStore(pool)

    async def make() -> tuple[str, uuid.UUID]:
        created = await keys.create(NewApiKey(name=f"ws-{uuid.uuid4().hex[:8]}", role="viewer"), None)
        return created.key, created.id

    return make


@pytest.fixture
def publisher(redis_client) -> EventBus:
    return EventBus(RedisShortTermStore(redis_client), TtlPolicy(event_replay=50))


def lead_topic() -> str:
    return f"lead:{uuid.uuid4()}"


async def connect(url: str, key: str, **params) -> EventClient:
    return await EventClient.connect(ws_url(url, **params), headers={"Authorization": f"Bearer {key}"})


async def still_answers(client: EventClient) -> None:
    """The socket is open and in step: a ping is answered by the very next frame."""
    await client.send({"action": "ping"})
    await client.expect("pong")


# ---- sockets per API key and per replica ----

async def test_an_api_key_holds_at_most_ws_max_per_key_sockets_across_replicas(replica, new_key, redis_client):
    first, second = await replica(ws_max_per_key=2), await replica(ws_max_per_key=2)
    key, key_id = await new_key()
    one = await connect(first, key, topics="leads")
    two = await connect(second, key, topics="leads")
    await one.expect("subscribed")
    await two.expect("subscribed")

    third = await connect(first, key, topics="leads")
    code, reason, frames = await third.closed()
    assert code == 1008 and "MAS_WS_MAX_PER_KEY" in reason and "2" in reason
    assert [f["payload"]["code"] for f in frames] == ["too_many_sockets"]

    other_key, _ = await new_key()
    other = await connect(first, other_key, topics="leads")
    assert (await other.expect("subscribed"))["payload"]["topics"] == ["leads"], "another key has its own count"

    await one.close()
    await wait_for(lambda: _count_is(redis_client, key_id, 1), timeout_s=10, interval_s=0.05)
    again = await connect(first, key, topics="leads")
    await again.expect("subscribed")
    for client in (two, other, again):
        await client.close()


async def _count_is(redis_client, key_id, count: int) -> bool:
    return await redis_client.zcard(f"mas:sockets:{key_id}") == count


async def test_a_replica_serves_at_most_ws_max_per_replica_sockets(replica, new_key):
    full, spare = await replica(ws_max_per_replica=2), await replica(ws_max_per_replica=2)
    clients = []
    for _ in range(2):
        key, _ = await new_key()
        clients.append(await connect(full, key, topics="leads"))
        await clients[-1].expect("subscribed")
    key, _ = await new_key()
    refused = await connect(full, key, topics="leads")
    code, reason, frames = await refused.closed()
    assert code == 1013 and "MAS_WS_MAX_PER_REPLICA" in reason and "try again later" in reason
    assert [f["payload"]["code"] for f in frames] == ["replica_full"]
    elsewhere = await connect(spare, key, topics="leads")
    await elsewhere.expect("subscribed")
    await clients[0].close()
    await wait_for(lambda: _subscribes(full, key), timeout_s=10, interval_s=0.1)
    for client in (clients[1], elsewhere):
        await client.close()


async def _subscribes(url: str, key: str) -> bool:
    client = await connect(url, key, topics="leads")
    try:
        return (await client.frame())["type"] == "subscribed"
    finally:
        await client.close()


async def test_the_sockets_of_a_replica_that_died_stop_counting_once_their_leases_lapse(redis_client):
    slots = SocketSlots(RedisShortTermStore(redis_client), lease_s=0.5)
    key = f"test-{uuid.uuid4()}"
    assert (await slots.take(key, "dead-1", 2)).allowed and (await slots.take(key, "dead-2", 2)).allowed
    refused = await slots.take(key, "alive", 2)
    assert not refused.allowed and refused.holders == 2
    assert (await slots.take(key, "dead-1", 2)).allowed, "a holder renews its own lease even at the cap"
    # Nobody renews the two leases now, as a replica that died would not: their slots free themselves.
    await wait_for(lambda: _taken(slots, key, "alive"), timeout_s=10, interval_s=0.1)
    await slots.release(key, "alive")
    assert await redis_client.zcard(f"mas:sockets:{key}") == 0


async def _taken(slots: SocketSlots, key: str, holder: str) -> bool:
    return (await slots.take(key, holder, 2)).allowed


# ---- subscribe messages per minute ----

async def test_subscribe_messages_over_the_per_minute_limit_are_refused_and_replay_nothing(replica, new_key,
                                                                                           publisher):
    url = await replica(ws_subscribe_per_minute=3)
    key, _ = await new_key()
    topic = lead_topic()
    history = [await publisher.publish(topic, "tick", {"n": n}) for n in range(3)]
    client = await connect(url, key)
    await client.expect("subscribed")
    await client.send({"action": "subscribe", "topics": [topic], "last_event_id": "0"})
    assert (await client.expect("subscribed"))["payload"]["replay"]["events"] == 3
    assert [e["id"] for e in await client.events(3)] == [e.id for e in history]
    await client.send({"action": "unsubscribe", "topics": [topic]})
    await client.expect("unsubscribed")
    await client.send({"action": "subscribe", "topics": [topic], "last_event_id": "0"})
    await client.expect("subscribed")
    await client.events(3)
    await client.send({"action": "unsubscribe", "topics": [topic]})
    error = await client.expect("error")
    assert error["payload"]["code"] == "subscribe_rate_limited"
    assert "MAS_WS_SUBSCRIBE_PER_MINUTE" in error["payload"]["message"]
    assert 1 <= error["payload"]["retry_after_s"] <= 60
    await client.send({"action": "subscribe", "topics": [lead_topic()], "last_event_id": "0"})
    assert (await client.expect("error"))["payload"]["code"] == "subscribe_rate_limited"
    live = await publisher.publish(topic, "tick", {"n": 3})
    assert [e["id"] for e in await client.events(1)] == [live.id], "the refused unsubscribe changed nothing"
    await still_answers(client)
    await client.close()


# ---- messages that are not this protocol's ----

PERSONAL = "jane.doe@acme-robotics.com"


@pytest.mark.parametrize(("message", "code"), [
    ("[" * 10_000 + "]" * 10_000, "bad_message"),
    ('{"action": "subscribe", "topics": ' + "[" * 10_000 + "]" * 10_000 + "}", "bad_message"),
    ('{"action": "subscribe", "topics": ' + "[" * 100 + "]" * 100 + "}", "bad_message"),
    ('["subscribe", "leads"]', "bad_message"),
    ("42", "bad_message"),
    ('"' + PERSONAL + '"', "bad_message"),
    ("not json " + PERSONAL, "bad_message"),
    ('{"action": "subscribe", "topics": [NaN], "note": "' + PERSONAL + '"}', "bad_message"),
    ('{"action": "pong", "n": Infinity}', "bad_message"),
    ('{"action": "subscribe", "topics": ["lead:\\ud800' + PERSONAL + '"]}', "bad_message"),
    ('{"action": "subscribe", "topics": ["leads"], "last_event_id": ' + str(2**70) + "}", "bad_message"),
    ('{"action": "subscribe", "topics": ["leads"], "last_event_id": ' + "9" * 5000 + "}", "bad_message"),
    (json.dumps({"action": "ping", "pad": PERSONAL * (MAX_MESSAGE_CHARS // len(PERSONAL) + 1)}), "message_too_large"),
])
async def test_a_message_that_is_not_this_protocols_gets_its_error_and_the_socket_stays_open(
        replica, new_key, caplog, message, code):
    url = await replica()
    key, _ = await new_key()
    client = await connect(url, key, topics="leads")
    await client.expect("subscribed")
    with caplog.at_level(logging.INFO):
        await client.connection.send(message)
        error = await client.expect("error")
        assert error["payload"]["code"] == code
        assert PERSONAL not in json.dumps(error), "the answer names where and why, not the value"
        await still_answers(client)
    assert PERSONAL not in caplog.text and "Traceback" not in caplog.text
    await client.close()


async def test_a_last_event_id_beyond_what_an_event_id_can_be_is_refused_by_name(replica, new_key):
    url = await replica()
    key, _ = await new_key()
    client = await connect(url, key, topics="leads")
    await client.expect("subscribed")
    await client.send({"action": "subscribe", "topics": [lead_topic()], "last_event_id": 10**18})
    assert (await client.expect("error"))["payload"]["code"] == "bad_last_event_id"
    await still_answers(client)
    await client.close()


class Watched:
    """What SocketAdmission.keep tells a socket: an error and a close, recorded."""

    def __init__(self) -> None:
        self.said: list[tuple] = []

    def error(self, code: str, message: str) -> None:
        self.said.append(("error", code))

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        self.said.append(("close", code))


async def test_an_open_socket_renews_its_lease_so_it_keeps_counting_beyond_one_lease(redis_client):
    lease_s = 0.3
    slots = SocketSlots(RedisShortTermStore(redis_client), lease_s)
    admission = SocketAdmission(GatewayLimits(max_per_key=1, socket_lease_s=lease_s), slots)
    principal = SimpleNamespace(key_id=uuid.uuid4())
    assert await admission.admit(principal, "open") is None
    first_end = await redis_client.zscore(f"mas:sockets:{principal.key_id}", "open")
    watched = Watched()
    keeping = asyncio.create_task(admission.keep(principal, "open", watched))
    try:
        await wait_for(lambda: _lease_ends_after(redis_client, principal.key_id, first_end + 2 * lease_s * 1000),
                       timeout_s=10, interval_s=0.05)
        refused = await admission.admit(principal, "another")
        assert refused is not None and refused.code == "too_many_sockets" and refused.close_code == 1008
        assert watched.said == [] and admission.open == 1
    finally:
        keeping.cancel()
        await asyncio.gather(keeping, return_exceptions=True)
    await admission.release(principal, "open")
    assert admission.open == 0 and await redis_client.zcard(f"mas:sockets:{principal.key_id}") == 0


async def _lease_ends_after(redis_client, key_id, at_ms: float) -> bool:
    score = await redis_client.zscore(f"mas:sockets:{key_id}", "open")
    return score is not None and score > at_ms
