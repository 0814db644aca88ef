"""The WebSocket gateway: ``/ws`` streams the event bus to browsers and API clients.

``add_websocket_routes(app, stores)`` (one line in ``build_api``) adds the route. Every frame is JSON text.

    connect  /ws?topics=leads,handoffs[&last_event_id=41]     (or the ``Last-Event-ID`` header)
    server   {"type": "lead.triaged", "id": "42", "ts": "...", "payload": {...}}    an event
             {"type": "subscribed", "id": null, "ts", "payload": {"topics", "added", "replay", "window",
              "heartbeat_s"}}                                                  answer to a subscription
             {"type": "unsubscribed", "id": null, "ts", "payload": {"topics", "removed"}}
             {"type": "ping", "id": null, "ts", "payload": {"n": 17}}        answer {"action": "pong", "n": 17}
             {"type": "pong", "id": null, "ts", "payload": {}}                answer to the client's ping
             {"type": "error", "id": null, "ts", "payload": {"code", "message", "topics"?}}
    client   {"action": "subscribe", "topics": ["lead:<id>"], "last_event_id": "41"}   (the id is optional)
             {"action": "unsubscribe", "topics": ["leads"]}
             {"action": "pong", "n": 17}
             {"action": "ping"}

Topics: ``leads``, ``handoffs``, ``touchpoints``, ``campaigns``, ``escalations``, ``reviews`` and ``lead:<uuid>``. An
unknown topic (or one the caller's role may not see, ``may_see``) is answered with an error naming it;
a connection asking only for such topics, with none subscribed, is closed with 1008.

Event ids come from one sequence shared by all topics (``EventBus.publish``): live events reach a
connection in increasing id order. A client that reconnects with the id of the last event it received
gets the events after it that it missed, oldest first, from each topic's replay buffer (the latest
``MAS_WS_REPLAY_EVENTS``), then the live ones, with no gap and no duplicate; the ``subscribed`` answer
says how many were replayed and whether the buffer no longer held some (``truncated``). Events replayed
by a later subscribe message are older than live events already received.

Flow control. Whatever a Serve replica sends goes into the proxy's buffers without limit, so a replica
never sees a slow client through its sends; the client's pongs are how it learns what was read. A ping
goes out every ``MAS_WS_HEARTBEAT_S`` seconds and after every quarter of the window; ``pong n``
acknowledges the first n frames of the connection. At most ``MAS_WS_SEND_QUEUE`` frames are in flight
unacknowledged, and at most as many events wait in the replica: a client that falls further behind is
disconnected with 1013 and reconnects with its last event id; one that answers no ping for twice the
heartbeat is disconnected with 1008. Close codes: 1001 session limit (``MAS_WS_MAX_SESSION_S``), 1008
bad request, missing pong, too many sockets of the API key, 1011 event bus unavailable, 1013 too slow,
replica full. Each reason says what to do.

Limits. An API key holds at most ``MAS_WS_MAX_PER_KEY`` sockets open at once across replicas (leases in
Redis, ``SocketSlots``, so that a replica that dies frees its sockets' slots within a minute), and a
replica serves at most ``MAS_WS_MAX_PER_REPLICA``: a socket over either is sent an error
(``too_many_sockets``, ``replica_full``) and closed, 1008 (close another of the key's sockets first) or
1013 (try again later, perhaps on another replica). Each subscribe or unsubscribe message may replay
events, so a socket may send at most ``MAS_WS_SUBSCRIBE_PER_MINUTE`` of them in any minute; one more is
answered with ``subscribe_rate_limited`` (with ``retry_after_s``) and changes nothing. A message is a
JSON object of at most ``MAX_MESSAGE_CHARS`` characters, decoded by the API's one rule
(``domain.json_input``: no NaN or Infinity, no lone surrogate or NUL, no integer beyond 64 bits, no
deep nesting); anything else is answered with ``bad_message`` or ``message_too_large`` and the socket
stays open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from fastapi import FastAPI, WebSocket

from marketing_agents.domain import utc_now
from marketing_agents.domain.access import ALL_ROLES, WS_SUBPROTOCOL
from marketing_agents.domain.field_errors import field_errors
from marketing_agents.domain.json_input import UnsafeJson, decode_json
from marketing_agents.errors import StorageError
from marketing_agents.memory.event_bus import EVENT_TOPICS, EventBacklog, EventBus
from marketing_agents.memory.rate_limits import SocketSlots
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.settings import Settings, get_settings
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.redis import RedisShortTermStore

log = logging.getLogger(__name__)

MAX_TOPICS = 100
# A subscribe message with MAX_TOPICS lead topics is about 4,500 characters; anything far beyond is not
# a request of this protocol and is refused before it is parsed.
MAX_MESSAGE_CHARS = 64 * 1024
MAX_EVENT_ID = 10**18 - 1  # what parse_event_id reads from a string (18 digits), for numbers too
MAX_SHOWN_CHARS = 80  # of a client's unknown topic, when an error names it
SOCKET_LEASE_S = 60.0  # how long a dead replica's sockets still count against their keys
HUB_START_TIMEOUT_S = 10.0
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013
TOPIC_HELP = f"topics are {', '.join(EVENT_TOPICS)} or lead:<uuid>"
ROLES_SEEING_EVENTS = ALL_ROLES  # every role sees the events; a narrower set would be a policy change


def parse_topic(raw: Any) -> str | None:
    """The topic in its canonical spelling, or None when there is no such topic."""
    if not isinstance(raw, str):
        return None
    raw = raw.strip()
    if raw in EVENT_TOPICS:
        return raw
    if raw.startswith("lead:"):
        try:
            return f"lead:{UUID(raw.removeprefix('lead:'))}"
        except ValueError:
            return None
    return None


def parse_event_id(raw: Any) -> int | None:
    """An event id as a client sends it back (``"42"`` or 42); None when it is not one."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 <= raw <= MAX_EVENT_ID else None
    if isinstance(raw, str) and raw.strip().isdigit() and len(raw.strip()) <= 18:
        return int(raw.strip())
    return None


def may_see(principal: Any, topic: str) -> bool:
    """The one place that decides whether a caller may subscribe to a topic. Every role sees every topic
    for now. ``principal`` is what the access-control middleware put into ``scope["state"]``; None when
    no access control is installed in front of the gateway (it refuses unauthenticated sockets itself)."""
    if principal is None:
        return True
    role = getattr(principal, "role", None)
    if role is None and isinstance(principal, dict):
        role = principal.get("role")
    return str(getattr(role, "value", role)) in ROLES_SEEING_EVENTS


def key_of(principal: Any) -> str | None:
    """The API key a socket counts against; None without access control in front of the gateway."""
    key_id = getattr(principal, "key_id", None)
    if key_id is None and isinstance(principal, dict):
        key_id = principal.get("key_id")
    return None if key_id is None else str(key_id)


def _shown(raw: Any) -> str:
    """A client's value as an error names it, cut short: the answer is not an echo service."""
    text = str(raw)
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS - 3] + "..."


@dataclass(frozen=True)
class GatewayLimits:
    heartbeat_s: float = 20.0
    send_queue: int = 256
    replay_events: int = 1000
    max_session_s: float = 55.0
    max_per_key: int = 20
    max_per_replica: int = 1000
    subscribe_per_minute: int = 60
    socket_lease_s: float = SOCKET_LEASE_S

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayLimits:
        return cls(settings.ws_heartbeat_s, settings.ws_send_queue, settings.ws_replay_events,
                   settings.ws_max_session_s, settings.ws_max_per_key, settings.ws_max_per_replica,
                   settings.ws_subscribe_per_minute)


class MessageThrottle:
    """At most ``limit`` messages in any ``window_s``, a sliding window on the connection's clock."""

    def __init__(self, limit: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._times: deque[float] = deque()

    def take(self) -> float:
        """Counts one message if the window has room and returns 0; else how many seconds until it has."""
        now = self.clock()
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return self._times[0] + self.window_s - now
        self._times.append(now)
        return 0.0


@dataclass(frozen=True)
class Refusal:
    """Why a socket may not open: the error frame's code and message, and the close code."""

    close_code: int
    code: str
    message: str


class SocketAdmission:
    """How many sockets are open: per replica, counted here; per API key, across replicas, in Redis leases
    (``SocketSlots``) that each socket renews while it is open."""

    def __init__(self, limits: GatewayLimits, slots: SocketSlots | Callable[[], SocketSlots] | None) -> None:
        self.limits = limits
        self._slots = slots
        self.open = 0

    @property
    def slots(self) -> SocketSlots | None:
        """The leases, made on first use (a replica may start while Redis is unset or down)."""
        if self._slots is not None and not isinstance(self._slots, SocketSlots):
            self._slots = self._slots()
        return self._slots

    async def admit(self, principal: Any, holder: str) -> Refusal | None:
        """Counts the socket in (and then ``release`` must follow), or says why it may not open."""
        cap = self.limits.max_per_replica
        if self.open >= cap:
            return Refusal(CLOSE_TRY_AGAIN, "replica_full", f"this replica serves at most {cap} sockets "
                                                            "(MAS_WS_MAX_PER_REPLICA): try again later")
        self.open += 1
        key = key_of(principal)
        if key is None:
            return None
        try:
            slots = self.slots
            decision = await slots.take(key, holder, self.limits.max_per_key) if slots is not None else None
        except StorageError as exc:
            self.open -= 1
            log.warning("WebSocket refused: its API key's sockets cannot be counted: %s", exc)
            return Refusal(CLOSE_INTERNAL, "event_bus_unavailable", "the event bus is unavailable: try again shortly")
        except BaseException:
            self.open -= 1
            raise
        if decision is not None and not decision.allowed:
            self.open -= 1
            return self.too_many(decision.limit)
        return None

    def too_many(self, limit: int) -> Refusal:
        return Refusal(CLOSE_POLICY, "too_many_sockets",
                       f"this API key has {limit} sockets open, the most it may (MAS_WS_MAX_PER_KEY): "
                       "close one before opening another")

    async def keep(self, principal: Any, holder: str, subscriber: Subscriber) -> None:
        """Renews the socket's lease until cancelled; a lease that lapsed and whose slot was taken closes it."""
        key, slots = key_of(principal), self.slots
        if key is None or slots is None:
            return
        while True:
            await asyncio.sleep(slots.renew_every_s)
            try:
                decision = await slots.take(key, holder, self.limits.max_per_key)
            except StorageError as exc:  # the lease may lapse; the event hub notices a lost Redis itself
                log.warning("a WebSocket's lease could not be renewed: %s", exc)
                continue
            if not decision.allowed:
                refusal = self.too_many(decision.limit)
                subscriber.error(refusal.code, refusal.message)
                subscriber.close(refusal.close_code, refusal.message, flush=True)
                return

    async def release(self, principal: Any, holder: str) -> None:
        self.open -= 1
        key, slots = key_of(principal), self.slots
        if key is None or slots is None:
            return
        try:
            await slots.release(key, holder)
        except StorageError as exc:
            log.warning("a closed WebSocket's slot is kept until its lease lapses: %s", exc)


def _frame(kind: str, payload: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "id": None, "ts": utc_now().isoformat(), "payload": payload})


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    encoded = text.encode()
    return text if len(encoded) <= 123 else encoded[:120].decode(errors="ignore") + "..."


class EventHub:
    """One Redis subscription per replica, shared by its WebSocket connections: each event is routed to
    the connections subscribed to its topic. Started by the first connection; if it fails, every
    connection is closed with 1011 (their clients reconnect and replay) and the next one starts it again."""

    def __init__(self, memory: EventBus | Callable[[], EventBus]) -> None:
        self._memory = memory
        self._by_topic: dict[str, set[Subscriber]] = defaultdict(set)
        self._task: asyncio.Task | None = None
        self._ready: asyncio.Future | None = None

    @property
    def memory(self) -> EventBus:
        """The event bus, made on first use (a replica may start while Redis is unset or down)."""
        if not isinstance(self._memory, EventBus):
            self._memory = self._memory()
        return self._memory

    async def start(self, timeout_s: float = HUB_START_TIMEOUT_S) -> None:
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._ready = loop.create_future()
            self._task = loop.create_task(self._listen(self._ready))
        ready = self._ready
        if ready is None:  # made together with the task
            raise RuntimeError("the event hub has a listener task but no readiness future")
        try:
            await asyncio.wait_for(asyncio.shield(ready), timeout_s)
        except TimeoutError as exc:
            raise StorageError(f"Redis did not confirm the event subscription within {timeout_s:g} s") from exc

    def add(self, subscriber: Subscriber, topic: str) -> None:
        self._by_topic[topic].add(subscriber)

    def remove(self, subscriber: Subscriber, topic: str) -> None:
        subscribers = self._by_topic.get(topic)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._by_topic[topic]

    def detach(self, subscriber: Subscriber) -> None:
        for topic in list(subscriber.topics):
            self.remove(subscriber, topic)

    def connections(self) -> int:
        return len({s for subscribers in self._by_topic.values() for s in subscribers})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _listen(self, ready: asyncio.Future) -> None:
        def on_ready() -> None:
            if not ready.done():
                ready.set_result(None)

        error: BaseException | None = None
        try:
            async for topic, text in self.memory.listen_events(on_ready):
                subscribers = self._by_topic.get(topic)
                if not subscribers:
                    continue
                try:
                    seq = int(json.loads(text)["id"])
                except (ValueError, KeyError, TypeError):
                    log.warning("an event on %s without a numeric id was not forwarded: %.200s", topic, text)
                    continue
                for subscriber in list(subscribers):
                    subscriber.offer(topic, seq, text)
            error = StorageError("the event subscription ended")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever broke the subscription, clients must learn of the gap
            error = exc
        log.warning("the WebSocket gateway's event subscription failed: %s", error)
        if not ready.done():
            ready.set_exception(error if isinstance(error, StorageError) else StorageError(str(error)))
        subscribers = {s for group in self._by_topic.values() for s in group}
        self._by_topic.clear()
        for subscriber in subscribers:
            subscriber.close(CLOSE_INTERNAL, "the event bus connection was lost: reconnect with last_event_id")


class Subscriber:
    """One WebSocket connection: its topics, its queues and its flow control (see the module's docstring).

    Only the pump task sends; the hub offers events, the receiver handles the client's requests, the
    heartbeat task asks for pings and watches the deadlines.
    """

    def __init__(self, websocket: Any, hub: EventHub, limits: GatewayLimits, principal: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.websocket = websocket
        self.hub = hub
        self.limits = limits
        self.principal = principal
        self.clock = clock
        self.window = limits.send_queue
        self.topics: set[str] = set()
        self._floor: dict[str, int] = {}
        self._pending: dict[str, list[tuple[int, str]]] = {}
        self._pending_count = 0
        self._first: deque[tuple[str, bool]] = deque()  # answers and replays: (frame, is a replayed event)
        self._replay_waiting = 0
        self._queue: deque[tuple[str, str | None]] = deque()  # live events and notices: (frame, topic)
        self._wake = asyncio.Event()
        self.closing: tuple[int, str, bool] | None = None
        self.sent = 0
        self.acked = 0
        self._pings: deque[tuple[int, float]] = deque()  # unacknowledged pings: (n, sent at)
        self._last_ping_n = 0
        self._last_ping_at = clock()
        self._ping_due = False
        self.started = clock()
        self.throttle = MessageThrottle(limits.subscribe_per_minute, 60.0, clock)

    # ---- What goes out ----

    def waiting(self) -> int:
        """Frames waiting in the replica, replayed events aside (those are bounded by the replay buffer)."""
        return len(self._first) - self._replay_waiting + len(self._queue) + self._pending_count

    def offer(self, topic: str, seq: int, text: str) -> None:
        """A live event from the hub; never blocks."""
        if self.closing is not None or topic not in self.topics:
            return
        pending = self._pending.get(topic)
        if pending is not None:
            pending.append((seq, text))
            self._pending_count += 1
        elif seq <= self._floor.get(topic, 0):
            return
        else:
            self._queue.append((text, topic))
        self._admit()

    def notify(self, kind: str, payload: dict[str, Any]) -> None:
        self._first.append((_frame(kind, payload), False))
        self._admit()

    def error(self, code: str, message: str, **details: Any) -> None:
        self.notify("error", {"code": code, "message": message, **details})

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        """Closes the connection once the pump gets to it: at once, or after what is queued (``flush``)."""
        if self.closing is None:
            self.closing = (code, _reason(reason), flush)
            self._wake.set()

    def _admit(self) -> None:
        if self.waiting() > self.limits.send_queue:
            self.close(CLOSE_TRY_AGAIN, f"too slow: over {self.limits.send_queue} events waiting; "
                                        "reconnect with last_event_id")
        self._wake.set()

    # ---- Subscriptions ----

    async def subscribe(self, raw_topics: Iterable[Any], last_event_id: int | None) -> None:
        valid: list[str] = []
        unknown: list[str] = []
        forbidden: list[str] = []
        for raw in raw_topics:
            topic = parse_topic(raw)
            if topic is None:
                unknown.append(_shown(raw))
            elif not may_see(self.principal, topic):
                forbidden.append(topic)
            elif topic not in valid:
                valid.append(topic)
        if unknown:
            self.error("unknown_topic", f"unknown topic{'s' if len(unknown) > 1 else ''} "
                                        f"{', '.join(repr(t) for t in unknown)}: {TOPIC_HELP}", topics=unknown)
        if forbidden:
            self.error("forbidden_topic", f"your role may not subscribe to {', '.join(forbidden)}", topics=forbidden)
        new = [topic for topic in valid if topic not in self.topics]
        if new and last_event_id is not None and self._replay_waiting:
            # One replay at a time keeps what waits in the replica within the replay buffer's size.
            self.error("replay_in_progress", "a replay is still being sent: subscribe again once it is received",
                       topics=new)
            return
        if len(self.topics) + len(new) > MAX_TOPICS:
            self.error("too_many_topics", f"a connection may have at most {MAX_TOPICS} topics")
            return
        if not self.topics and not valid and (unknown or forbidden):
            self.close(CLOSE_POLICY, f"no topic to subscribe to: {', '.join(unknown + forbidden)}", flush=True)
            return
        for topic in new:
            self._pending[topic] = []
            self.topics.add(topic)
            self.hub.add(self, topic)
        try:
            backlog = (await self.hub.memory.event_backlog(new, last_event_id, self.limits.replay_events)
                       if new else EventBacklog(0, []))
        except StorageError as exc:
            log.warning("a WebSocket subscription failed: %s", exc)
            self.close(CLOSE_INTERNAL, "the event history is unavailable: reconnect with last_event_id")
            return
        # Events that arrived while the history was read: those up to the snapshot are in it (or were
        # published before the subscription), the later ones follow it.
        carried = []
        for topic in new:
            self._floor[topic] = backlog.sequence
            for seq, text in self._pending.pop(topic):
                self._pending_count -= 1
                if seq > backlog.sequence:
                    carried.append((seq, topic, text))
        replay = None
        if last_event_id is not None:
            replay = {"after": str(last_event_id), "events": len(backlog.events), "truncated": backlog.truncated}
        self.notify("subscribed", {"topics": sorted(self.topics), "added": new, "replay": replay,
                                   "window": self.window, "heartbeat_s": self.limits.heartbeat_s})
        for _, _, text in backlog.events:
            self._first.append((text, True))
            self._replay_waiting += 1
        for _, topic, text in sorted(carried):
            self._queue.append((text, topic))
        self._admit()

    def unsubscribe(self, raw_topics: Iterable[Any]) -> None:
        removed, unknown = [], []
        for raw in raw_topics:
            topic = parse_topic(raw)
            if topic is None:
                unknown.append(_shown(raw))
            elif topic in self.topics:
                removed.append(topic)
        if unknown:
            self.error("unknown_topic", f"unknown topic{'s' if len(unknown) > 1 else ''} "
                                        f"{', '.join(repr(t) for t in unknown)}: {TOPIC_HELP}", topics=unknown)
        for topic in removed:
            self.topics.discard(topic)
            self.hub.remove(self, topic)
            self._floor.pop(topic, None)
        if removed:
            gone = set(removed)
            self._queue = deque(item for item in self._queue if item[1] not in gone)
        self.notify("unsubscribed", {"topics": sorted(self.topics), "removed": removed})

    # ---- Flow control ----

    def pong(self, n: Any) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= self.sent:
            self.error("bad_pong", "a pong answers a ping: {\"action\": \"pong\", \"n\": <the ping's n>}")
            return
        if n > self.acked:
            self.acked = n
            while self._pings and self._pings[0][0] <= n:
                self._pings.popleft()
            self._wake.set()

    def in_flight(self) -> int:
        return self.sent - self.acked

    def _next_frame(self) -> str | None:
        if self._first:
            text, replayed = self._first.popleft()
            if replayed:
                self._replay_waiting -= 1
            return text
        if self._queue:
            return self._queue.popleft()[0]
        return None

    async def pump(self) -> None:
        """Sends what is due while the client keeps up; then the close frame, if the server closes."""
        while True:
            if self.closing is not None:
                code, reason, flush = self.closing
                if not (flush and (self._first or self._queue)):
                    await self.websocket.close(code=code, reason=reason)
                    return
            if self._ping_due:
                self._ping_due = False
                await self._send(_frame("ping", {"n": self.sent + 1}))
                self._pings.append((self.sent, self.clock()))
                self._last_ping_n, self._last_ping_at = self.sent, self.clock()
                continue
            flushing = self.closing is not None
            if (self._first or self._queue) and (flushing or self.in_flight() < self.window):
                frame = self._next_frame()
                if frame is None:  # None only when both queues are empty, and one was not just above
                    raise RuntimeError("a frame was due but none was queued")
                await self._send(frame)
                if self.sent - self._last_ping_n >= max(1, self.window // 4):
                    self._ping_due = True
                continue
            self._wake.clear()
            await self._wake.wait()

    async def _send(self, text: str) -> None:
        await self.websocket.send_text(text)
        self.sent += 1

    def tick(self) -> float:
        """Checks the deadlines; returns how long until the next one."""
        now, hb = self.clock(), self.limits.heartbeat_s
        if self._pings and now - self._pings[0][1] >= 2 * hb:
            self.close(CLOSE_POLICY, f"no pong to ping {self._pings[0][0]} within {2 * hb:g} s")
            return hb
        max_s = self.limits.max_session_s
        if max_s and now - self.started >= max_s:
            self.close(CLOSE_GOING_AWAY, f"session limit of {max_s:g} s reached: reconnect with last_event_id")
            return hb
        if now - self._last_ping_at >= hb and not self._ping_due:
            self._ping_due = True
            self._wake.set()
        deadlines = [(now if self._ping_due else self._last_ping_at) + hb]
        if self._pings:
            deadlines.append(self._pings[0][1] + 2 * hb)
        if max_s:
            deadlines.append(self.started + max_s)
        return max(0.01, min(deadlines) - now)

    async def heartbeat(self) -> None:
        """Runs until cancelled: a close it decides on is sent by the pump."""
        while True:
            await asyncio.sleep(self.tick() if self.closing is None else self.limits.heartbeat_s)

    # ---- What comes in ----

    async def receive(self) -> None:
        """Handles the client's requests until it disconnects."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None and len(text) > MAX_MESSAGE_CHARS:
                self.error("message_too_large", f"a message is at most {MAX_MESSAGE_CHARS} characters")
                continue
            try:
                request = decode_json(text) if text is not None else None
            except UnsafeJson as exc:
                # Names where and why, never the value.
                self.error("bad_message", f"the message holds what this API does not take: {exc}",
                           fields=field_errors([p.as_error() for p in exc.problems], "message"))
                continue
            except ValueError:
                request = None
            if not isinstance(request, dict):
                self.error("bad_message", "send JSON objects as text frames, e.g. "
                                          "{\"action\": \"subscribe\", \"topics\": [\"leads\"]}")
                continue
            await self.handle(request)

    async def handle(self, request: dict[str, Any]) -> None:
        action = request.get("action")
        if action == "pong":
            self.pong(request.get("n"))
        elif action == "ping":
            self.notify("pong", {})
        elif action in ("subscribe", "unsubscribe"):
            wait_s = self.throttle.take()
            if wait_s:
                # Each may replay up to the replay buffer: refused before anything is read or changed.
                retry = max(1, math.ceil(wait_s))
                self.error("subscribe_rate_limited",
                           f"at most {self.throttle.limit} subscribe and unsubscribe messages a minute "
                           f"(MAS_WS_SUBSCRIBE_PER_MINUTE); retry in {retry} s", retry_after_s=retry)
                return
            topics = request.get("topics")
            if not isinstance(topics, list) or not topics:
                self.error("bad_message", f"{action} takes a non-empty list of topics: {TOPIC_HELP}")
                return
            if action == "unsubscribe":
                self.unsubscribe(topics)
                return
            last_event_id = None
            if request.get("last_event_id") is not None:
                last_event_id = parse_event_id(request["last_event_id"])
                if last_event_id is None:
                    self.error("bad_last_event_id", "last_event_id is the id of an event received, e.g. \"42\"")
                    return
            await self.subscribe(topics, last_event_id)
        else:
            self.error("unknown_action", "actions are subscribe, unsubscribe, pong and ping")

    # ---- The connection's life ----

    async def run(self, topics: list[str], last_event_id: int | None) -> None:
        pump = asyncio.create_task(self.pump())
        tasks = {pump}
        try:
            try:
                await self.hub.start()
            except StorageError as exc:
                log.warning("WebSocket refused: %s", exc)
                self.close(CLOSE_INTERNAL, "the event bus is unavailable: try again shortly")
            if self.closing is None:
                await self.subscribe(topics, last_event_id)
            receiver, heartbeat = asyncio.create_task(self.receive()), asyncio.create_task(self.heartbeat())
            tasks |= {receiver, heartbeat}
            # The pump ends with the close frame, the receiver when the client leaves.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None and task is not pump:
                    log.warning("a WebSocket connection failed: %r", task.exception())
            if heartbeat in done:
                self.close(CLOSE_INTERNAL, "the gateway failed: reconnect with last_event_id")
                await asyncio.wait({pump, receiver}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.hub.detach(self)


async def serve_events(websocket: WebSocket, hub: EventHub, limits: GatewayLimits,
                       admission: SocketAdmission | None = None) -> None:
    """One connection, from the handshake to the close."""
    params = websocket.query_params
    topics = [t for value in params.getlist("topics") for t in value.split(",") if t.strip()]
    raw_last = params.get("last_event_id") or websocket.headers.get("last-event-id")
    principal = (websocket.scope.get("state") or {}).get("principal")
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    # A browser that offered its key as a subprotocol needs one of its offers chosen, or it drops the socket.
    await websocket.accept(subprotocol=WS_SUBPROTOCOL if WS_SUBPROTOCOL in offered else None)
    # Accepted first so that the refusal reaches browsers too, which see a close code but no HTTP status.
    admission = admission or SocketAdmission(limits, None)
    holder = uuid4().hex
    refusal = await admission.admit(principal, holder)
    if refusal is not None:
        try:
            await websocket.send_text(_frame("error", {"code": refusal.code, "message": refusal.message}))
            await websocket.close(code=refusal.close_code, reason=_reason(refusal.message))
        except Exception as exc:  # noqa: BLE001 - a client that left before its refusal needs no answer
            log.debug("a refused WebSocket left before its refusal was sent: %r", exc)
        return
    try:
        subscriber = Subscriber(websocket, hub, limits, principal)
        last_event_id = None
        if raw_last:
            last_event_id = parse_event_id(raw_last)
            if last_event_id is None:
                subscriber.error("bad_last_event_id", "last_event_id is the id of an event received, e.g. 42")
                subscriber.close(CLOSE_POLICY, "bad last_event_id", flush=True)
        lease = asyncio.create_task(admission.keep(principal, holder, subscriber))
        try:
            await subscriber.run(topics, last_event_id)
        finally:
            lease.cancel()
            await asyncio.gather(lease, return_exceptions=True)
    finally:
        await admission.release(principal, holder)


def add_websocket_routes(app: FastAPI, stores: StoreConnections, settings: Settings | None = None) -> EventHub:
    """Adds ``/ws`` to the app; returns the replica's event hub (started by the first connection)."""
    settings = settings or get_settings()
    limits = GatewayLimits.from_settings(settings)
    hub = EventHub(lambda: EventBus(RedisShortTermStore(stores.redis()), TtlPolicy.from_settings(settings)))
    admission = SocketAdmission(limits, lambda: SocketSlots(RedisShortTermStore(stores.redis()), limits.socket_lease_s))

    @app.websocket("/ws")
    async def events(websocket: WebSocket) -> None:
        await serve_events(websocket, hub, limits, admission)

    return hub
