"""The WebSocket gateway's protocol logic without sockets or Redis: topics, flow control, deadlines."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from uuid import uuid4

import pytest

from marketing_agents.domain import Channel
from marketing_agents.flows.touchpoint_dispatcher import DispatchReport, TouchpointDelivery
from marketing_agents.memory.event_bus import EventBacklog
from marketing_agents.serve_app.dispatching import delivery_events
from marketing_agents.serve_app.websocket import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    GatewayLimits,
    Subscriber,
    may_see,
    parse_event_id,
    parse_topic,
)


class FakeSocket:
    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.closed: tuple[int, str] | None = None
        self.incoming: asyncio.Queue = asyncio.Queue()
        self._changed = asyncio.Condition()

    async def send_text(self, text: str) -> None:
        self.frames.append(json.loads(text))
        async with self._changed:
            self._changed.notify_all()

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        async with self._changed:
            self._changed.notify_all()

    async def receive(self) -> dict:
        return await self.incoming.get()

    async def until(self, predicate, timeout_s: float = 5.0) -> None:
        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)
        await asyncio.wait_for(wait(), timeout_s)

    def events(self) -> list[dict]:
        return [f for f in self.frames if f["id"] is not None]


class FakeMemory:
    def __init__(self, backlog: EventBacklog | None = None) -> None:
        self.backlog = backlog or EventBacklog(0, [])
        self.asked: list[tuple[list[str], int | None]] = []
        self.reading = asyncio.Event()
        self.gate: asyncio.Event | None = None

    async def event_backlog(self, topics, after, limit=None):
        self.asked.append((list(topics), after))
        self.reading.set()
        if self.gate is not None:
            await self.gate.wait()
        return self.backlog


class FakeHub:
    def __init__(self, memory: FakeMemory | None = None) -> None:
        self.memory = memory or FakeMemory()
        self.routes: dict[str, set] = {}

    async def start(self) -> None:
        return None

    def add(self, subscriber, topic):
        self.routes.setdefault(topic, set()).add(subscriber)

    def remove(self, subscriber, topic):
        self.routes.get(topic, set()).discard(subscriber)

    def detach(self, subscriber):
        for topic in list(subscriber.topics):
            self.remove(subscriber, topic)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def event(seq: int, kind: str = "lead.triaged") -> str:
    return json.dumps({"type": kind, "id": str(seq), "ts": "2026-01-01T00:00:00+00:00", "payload": {"n": seq}})


def subscriber(limits: GatewayLimits = GatewayLimits(heartbeat_s=10, send_queue=8, max_session_s=0),
               backlog: EventBacklog | None = None, principal=None, clock=None):
    socket = FakeSocket()
    hub = FakeHub(FakeMemory(backlog))
    return socket, hub, Subscriber(socket, hub, limits, principal, clock=clock or Clock())


def test_topics_are_the_five_shared_ones_or_a_lead_by_uuid():
    lead = uuid4()
    assert parse_topic("leads") == "leads" and parse_topic(" escalations ") == "escalations"
    assert parse_topic(f"lead:{str(lead).upper()}") == f"lead:{lead}"
    for bad in ("lead", "lead:42", "Leads", "touchpoint", "", None, 7, ["leads"]):
        assert parse_topic(bad) is None


def test_event_ids_are_non_negative_integers_as_strings_or_numbers():
    assert parse_event_id("42") == 42 and parse_event_id(0) == 0 and parse_event_id(" 7 ") == 7
    for bad in ("-1", "4x", "", "1" * 19, -3, True, None, 1.5):
        assert parse_event_id(bad) is None


def test_every_role_sees_every_topic_and_an_unknown_role_none():
    for role in ("admin", "operator", "viewer", "service"):
        assert may_see(SimpleNamespace(role=SimpleNamespace(value=role)), "leads")
        assert may_see({"role": role}, f"lead:{uuid4()}")
    assert may_see(None, "campaigns")  # no access control installed in front of the gateway
    assert not may_see(SimpleNamespace(role="guest"), "leads")


async def test_a_subscription_with_a_last_event_id_replays_then_goes_live_without_duplicates():
    backlog = EventBacklog(sequence=12, events=[("leads", 11, event(11)), ("handoffs", 12, event(12))])
    socket, hub, sub = subscriber(backlog=backlog)
    hub.memory.gate = asyncio.Event()
    subscribing = asyncio.create_task(sub.subscribe(["leads", "handoffs"], 10))
    await hub.memory.reading.wait()  # the subscription is registered and reading the history
    sub.offer("leads", 13, event(13))  # after the snapshot: follows the replay
    sub.offer("leads", 12, event(12))  # published before it: replayed, not sent twice
    hub.memory.gate.set()
    await subscribing
    pump = asyncio.create_task(sub.pump())
    await socket.until(lambda: len(socket.events()) == 3)
    sub.offer("handoffs", 9, event(9))  # older than the subscription: dropped
    sub.offer("handoffs", 14, event(14))
    await socket.until(lambda: len(socket.events()) == 4)
    assert socket.frames[0]["type"] == "subscribed"
    assert socket.frames[0]["payload"]["replay"] == {"after": "10", "events": 2, "truncated": False}
    assert [e["id"] for e in socket.events()] == ["11", "12", "13", "14"]
    pump.cancel()


async def test_unknown_topics_are_named_and_a_connection_with_only_those_is_closed_1008():
    socket, hub, sub = subscriber()
    await sub.subscribe(["leads", "nonsense", "lead:42"], None)
    assert sub.topics == {"leads"} and sub.closing is None
    error = json.loads(sub._first[0][0])
    assert error["type"] == "error" and error["payload"]["topics"] == ["nonsense", "lead:42"]
    assert "'nonsense'" in error["payload"]["message"]

    socket, hub, sub = subscriber()
    await sub.subscribe(["nonsense"], None)
    await sub.pump()
    assert socket.frames[0]["payload"]["code"] == "unknown_topic"
    assert socket.closed[0] == CLOSE_POLICY and "nonsense" in socket.closed[1]


async def test_a_role_that_may_not_see_a_topic_is_told_so():
    socket, hub, sub = subscriber(principal=SimpleNamespace(role="guest"))
    await sub.subscribe(["leads"], None)
    await sub.pump()
    assert socket.frames[0]["payload"]["code"] == "forbidden_topic"
    assert socket.closed[0] == CLOSE_POLICY


async def test_no_more_than_the_window_goes_out_unacknowledged_and_pongs_release_more():
    socket, hub, sub = subscriber(GatewayLimits(heartbeat_s=10, send_queue=8, max_session_s=0))
    await sub.subscribe(["leads"], None)
    for seq in range(1, 8):
        sub.offer("leads", seq, event(seq))
    pump = asyncio.create_task(sub.pump())
    await socket.until(lambda: sub.in_flight() >= 8)
    await asyncio.sleep(0)
    # subscribed + events, a ping after every quarter of the window (pings are not held back)
    pings = [f for f in socket.frames if f["type"] == "ping"]
    assert [p["payload"]["n"] for p in pings] == [3, 6, 9]
    assert len(socket.events()) == 5 and sub.waiting() == 2
    sub.pong(3)  # acknowledges the first three frames: three more may go
    await socket.until(lambda: len(socket.events()) == 7)
    assert sub.closing is None
    pump.cancel()


async def test_a_client_that_reads_nothing_is_disconnected_1013_once_its_queue_is_full():
    socket, hub, sub = subscriber(GatewayLimits(heartbeat_s=10, send_queue=8, max_session_s=0))
    await sub.subscribe(["leads"], None)
    pump = asyncio.create_task(sub.pump())
    for seq in range(1, 100):
        sub.offer("leads", seq, event(seq))
        await asyncio.sleep(0)
    await pump
    assert socket.closed[0] == CLOSE_TRY_AGAIN and "too slow" in socket.closed[1]
    assert sub.waiting() <= 9 and len(socket.frames) <= 8 + 3


async def test_a_ping_unanswered_for_two_heartbeats_closes_1008_and_the_session_limit_1001():
    clock = Clock()
    socket, hub, sub = subscriber(GatewayLimits(heartbeat_s=10, send_queue=8, max_session_s=0), clock=clock)
    await sub.subscribe(["leads"], None)
    pump = asyncio.create_task(sub.pump())
    clock.now += 10
    assert sub.tick() == pytest.approx(10)
    await socket.until(lambda: any(f["type"] == "ping" for f in socket.frames))
    clock.now += 15
    sub.tick()
    assert sub.closing is None, "a pong may take up to two heartbeats"
    clock.now += 5
    sub.tick()
    await pump
    assert socket.closed[0] == CLOSE_POLICY and "no pong" in socket.closed[1]

    socket, hub, sub = subscriber(GatewayLimits(heartbeat_s=10, send_queue=8, max_session_s=25), clock=clock)
    await sub.subscribe(["leads"], None)
    sub.pong(sub.sent)
    clock.now += 25
    sub.tick()
    await sub.pump()
    assert socket.closed[0] == CLOSE_GOING_AWAY and "last_event_id" in socket.closed[1]


async def test_requests_subscribe_unsubscribe_and_answer_pings():
    socket, hub, sub = subscriber()
    await sub.handle({"action": "subscribe", "topics": ["leads"]})
    lead_topic = f"lead:{uuid4()}"
    await sub.handle({"action": "subscribe", "topics": [lead_topic], "last_event_id": "5"})
    assert hub.memory.asked == [(["leads"], None), ([lead_topic], 5)]
    sub.offer("leads", 7, event(7))
    await sub.handle({"action": "unsubscribe", "topics": ["leads"]})
    await sub.handle({"action": "ping"})
    await sub.handle({"action": "subscribe", "topics": "leads"})
    await sub.handle({"action": "subscribe", "topics": ["leads"], "last_event_id": "x"})
    await sub.handle({"action": "dance"})
    sub.pong(99)
    sub.close(1000, "done", flush=True)
    await sub.pump()
    kinds = [f["type"] if f["type"] != "error" else f["payload"]["code"] for f in socket.frames if f["type"] != "ping"]
    assert kinds == ["subscribed", "subscribed", "unsubscribed", "pong", "bad_message", "bad_last_event_id",
                     "unknown_action", "bad_pong"]
    unsubscribed = next(f for f in socket.frames if f["type"] == "unsubscribed")
    assert unsubscribed["payload"] == {"topics": [lead_topic], "removed": ["leads"]}
    assert socket.events() == [], "an unsubscribed topic's queued events are dropped"
    assert hub.routes["leads"] == set()


def test_each_delivery_is_announced_on_touchpoints_and_on_the_lead():
    lead_id = uuid4()
    deliveries = [TouchpointDelivery(touchpoint_id=uuid4(), lead_id=lead_id, plan_id=uuid4(), step=step, channel=Channel.EMAIL,
                           status=status, attempts=1, at=datetime(2026, 1, 1, tzinfo=UTC))
                  for step, status in enumerate(("sent", "failed"))]
    events = [(topic, event.type, event.payload)
              for event in delivery_events(DispatchReport(sent=1, failed=1, deliveries=deliveries))
              for topic in event.topics]
    assert [(topic, kind) for topic, kind, _ in events] == [
        ("touchpoints", "touchpoint.sent"), (f"lead:{lead_id}", "touchpoint.sent"),
        ("touchpoints", "touchpoint.failed"), (f"lead:{lead_id}", "touchpoint.failed")]
    assert events[0][2]["touchpoint_id"] == str(deliveries[0].touchpoint_id) and events[0][2]["channel"] == "email"


async def test_one_replay_at_a_time_so_that_replays_cannot_pile_up_unread():
    backlog = EventBacklog(sequence=3, events=[("leads", 2, event(2)), ("leads", 3, event(3))])
    socket, hub, sub = subscriber(backlog=backlog)
    await sub.subscribe(["leads"], 1)
    second = f"lead:{uuid4()}"
    await sub.subscribe([second], 0)
    assert second not in sub.topics
    assert json.loads(sub._first[-1][0])["payload"]["code"] == "replay_in_progress"
    pump = asyncio.create_task(sub.pump())
    await socket.until(lambda: len(socket.events()) == 2)
    await sub.subscribe([second], 0)
    assert second in sub.topics
    pump.cancel()
