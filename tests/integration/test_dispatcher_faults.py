"""The dispatcher when touchpoints are hostile or the world changes under a batch, against real
PostgreSQL, a real SMTP server (aiosmtpd) and a real local webhook:

- a poison row (a line break in a name that reached a subject, an address with a line break, a row that
  is not a valid touchpoint) fails alone, counted against its attempts; the rest of its batch goes out;
- consent is read per touchpoint at the moment of sending: an unsubscribe or an erasure after the batch
  was claimed stops the claimed touchpoints;
- a lease that runs out mid-batch sends nothing twice; a crash between the receiver accepting and the
  outcome being recorded sends again, under the same idempotency key.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from uuid import UUID

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from marketing_agents.domain import Channel
from marketing_agents.flows.touchpoint_dispatcher import RetryPolicy, TouchpointDispatcher
from marketing_agents.stores.migrations import apply_migrations
from marketing_agents.stores.outbound_delivery import SmtpDelivery, WebhookDelivery
from marketing_agents.stores.postgres import LeadErasure, LeadRepository, init_connection
from marketing_agents.stores.postgres_touchpoints import TouchpointOutbox
from tests.integration.test_dispatcher import engaged_lead
from tests.support import free_port, fresh_database

GATE_TIMEOUT_S = 30  # only ever reached when the dispatcher never calls: the test then fails, not hangs


class Inbox:
    """Every message the SMTP server accepted, with the addresses it was accepted for."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"

    @property
    def messages(self) -> list[Message]:
        return [message for _, message in self.received]


class Receiver:
    """A provider's webhook that accepts everything. With ``gated``, the first request it gets waits
    (the receiver has it, the dispatcher does not have the answer yet) until the test releases it."""

    def __init__(self, gated: bool) -> None:
        self.accepted: list[dict] = []
        self.arrived, self.release = threading.Event(), threading.Event()
        if not gated:
            self.release.set()
        receiver, first = self, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.accepted.append({"key": self.headers["Idempotency-Key"], **body})
                if first.acquire(blocking=False):
                    receiver.arrived.set()
                    receiver.release.wait(GATE_TIMEOUT_S)
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/deliver"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    async def has_the_first(self) -> None:
        assert await asyncio.to_thread(self.arrived.wait, GATE_TIMEOUT_S), "the dispatcher never called the webhook"

    def keys(self) -> list[str]:
        return [request["key"] for request in self.accepted]


@pytest.fixture
async def pool(migrated):
    """A database of its own: the dispatcher takes every due touchpoint it can see."""
    dsn = await fresh_database(migrated, "dispatcher_faults")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=6, init=init_connection)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    yield pool
    await pool.close()


@pytest.fixture
def repository(pool) -> LeadRepository:
    return LeadRepository(pool, timedelta(hours=24))


@pytest.fixture
def inbox():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


@pytest.fixture
def receiver():
    receiver = Receiver(gated=False)
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def gate():
    receiver = Receiver(gated=True)
    yield receiver
    receiver.release.set()
    receiver.server.shutdown()


def dispatcher(pool, inbox: Inbox, webhook: Receiver, max_attempts: int = 3) -> TouchpointDispatcher:
    hook = WebhookDelivery(webhook.url)
    adapters = {Channel.EMAIL: SmtpDelivery("127.0.0.1", inbox.port, "marketing@example.com"),
                **{channel: hook for channel in Channel if channel is not Channel.EMAIL}}
    return TouchpointDispatcher(TouchpointOutbox(pool), adapters,
                                RetryPolicy(max_attempts=max_attempts, first_backoff=timedelta(0)))


async def first_in_line(pool, result) -> UUID:
    """Leaves the lead one webhook touchpoint, due before every other: the one a gated receiver holds."""
    touchpoint = next(tp for tp in result.engagement_plan.touchpoints if tp.channel is not Channel.EMAIL)
    await pool.execute("UPDATE touchpoints SET status = 'cancelled' WHERE lead_id = $1 AND id <> $2",
                       result.lead_id, touchpoint.id)
    await pool.execute("UPDATE touchpoints SET scheduled_at = now() - interval '10 minutes' WHERE id = $1",
                       touchpoint.id)
    return touchpoint.id


async def unfinished(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM touchpoints WHERE status IN ('pending', 'sending')")


def ids(result) -> set[str]:
    return {str(tp.id) for tp in result.engagement_plan.touchpoints}


def delivered(inbox: Inbox, webhook: Receiver) -> list[str]:
    return [m["X-Touchpoint-Id"] for m in inbox.messages] + webhook.keys()


# --- one poison touchpoint, never its batch ------------------------------------------------------------


async def test_a_line_break_in_a_stored_name_reaches_no_header_and_stalls_no_other_touchpoint(
        pool, repository, redis_client, inbox, receiver):
    line_feed = await engaged_lead(repository, redis_client, pool, "line-feed@acme-robotics.com")
    separator = await engaged_lead(repository, redis_client, pool, "separator@acme-robotics.com")
    neighbour = await engaged_lead(repository, redis_client, pool, "neighbour@acme-robotics.com")
    # Stored before names refused line breaks, or written by hand: the name reached the email subjects.
    for result, name in ((line_feed, "Ann\nBcc: spy@evil.example"), (separator, "Ann\u2028Bcc: spy@evil.example")):
        await pool.execute("UPDATE leads SET first_name = $2 WHERE id = $1", result.lead_id, name)
        await pool.execute("UPDATE touchpoints SET subject = $2 || ', a quick idea' WHERE lead_id = $1 AND channel = 'email'",
                           result.lead_id, name)

    report = await dispatcher(pool, inbox, receiver).dispatch_due()

    everyone = ids(line_feed) | ids(separator) | ids(neighbour)
    assert report.claimed == report.sent == len(everyone)
    assert sorted(delivered(inbox, receiver)) == sorted(everyone)
    assert await unfinished(pool) == 0
    poisoned = [(to, m) for to, m in inbox.received if to[0] in {"line-feed@acme-robotics.com",
                                                                 "separator@acme-robotics.com"}]
    assert poisoned, "the poisoned leads had email touchpoints"
    for to, message in poisoned:
        assert to == [message["To"]], "the envelope goes to the lead alone"
        assert message["Bcc"] is None
        assert message["Subject"] == "Ann Bcc: spy@evil.example, a quick idea", "one line, the name still in it"


async def test_a_stored_touchpoint_that_cannot_be_sent_fails_alone_after_its_attempts(
        pool, repository, redis_client, inbox, receiver):
    broken_address = await engaged_lead(repository, redis_client, pool, "broken-address@acme-robotics.com")
    broken_row = await engaged_lead(repository, redis_client, pool, "broken-row@acme-robotics.com")
    odd_consent = await engaged_lead(repository, redis_client, pool, "odd-consent@acme-robotics.com")
    healthy = await engaged_lead(repository, redis_client, pool, "healthy@acme-robotics.com")
    await pool.execute("""UPDATE leads SET consent = '"yes"' WHERE id = $1""", odd_consent.lead_id)
    await pool.execute("UPDATE leads SET email = 'broken-address@acme-robotics.com\nBcc: spy@evil.example' "
                       "WHERE id = $1", broken_address.lead_id)
    unreadable = next(tp for tp in broken_row.engagement_plan.touchpoints if tp.channel is Channel.EMAIL)
    await pool.execute("UPDATE touchpoints SET subject = repeat('long ', 100) WHERE id = $1", unreadable.id)

    worker = dispatcher(pool, inbox, receiver, max_attempts=3)
    for _ in range(3):  # every attempt a poison row has, each in a batch with the others
        await worker.dispatch_due()
    assert await unfinished(pool) == 0

    rows = {str(r["id"]): r for r in await pool.fetch("SELECT id, status, attempts, last_error FROM touchpoints")}
    bad_addresses = {str(tp.id) for tp in broken_address.engagement_plan.touchpoints if tp.channel is Channel.EMAIL}
    for poison in bad_addresses:
        assert (rows[poison]["status"], rows[poison]["attempts"]) == ("failed", 3)
        assert "To address" in rows[poison]["last_error"]
    assert (rows[str(unreadable.id)]["status"], rows[str(unreadable.id)]["attempts"]) == ("failed", 3)
    assert "subject" in rows[str(unreadable.id)]["last_error"]
    assert {rows[i]["status"] for i in ids(odd_consent)} == {"cancelled"}, "consent that cannot be read is none"
    rest = (ids(broken_address) | ids(broken_row) | ids(healthy)) - bad_addresses - {str(unreadable.id)}
    assert {(rows[i]["status"], rows[i]["attempts"]) for i in rest} == {("sent", 1)}
    assert sorted(delivered(inbox, receiver)) == sorted(rest), "each other touchpoint once"
    assert all("spy@evil.example" not in to for to, _ in inbox.received)


# --- consent at the moment of sending --------------------------------------------------------------------


async def test_an_unsubscribe_stops_touchpoints_a_dispatcher_has_already_claimed(
        pool, repository, redis_client, inbox, gate):
    first = await engaged_lead(repository, redis_client, pool, "first-in-line@acme-robotics.com")
    leaving = await engaged_lead(repository, redis_client, pool, "leaving@acme-robotics.com")
    await first_in_line(pool, first)

    batch = asyncio.create_task(dispatcher(pool, inbox, gate).dispatch_due())
    await gate.has_the_first()  # the batch is claimed and under way
    claimed = await pool.fetchval("SELECT count(*) FROM touchpoints WHERE lead_id = $1 AND status = 'sending'",
                                  leaving.lead_id)
    assert claimed == len(ids(leaving))
    unsubscribed = await repository.unsubscribe(leaving.lead_id, None)
    gate.release.set()
    report = await batch

    assert unsubscribed.cancelled_touchpoints == claimed
    assert report.sent == 1 and report.no_longer_claimed == claimed
    assert set(delivered(inbox, gate)).isdisjoint(ids(leaving))
    assert {r["status"] for r in await pool.fetch("SELECT status FROM touchpoints WHERE lead_id = $1",
                                                  leaving.lead_id)} == {"cancelled"}


async def test_an_erasure_stops_touchpoints_a_dispatcher_has_already_claimed(
        pool, repository, redis_client, inbox, gate):
    first = await engaged_lead(repository, redis_client, pool, "first-in-line@acme-robotics.com")
    erased = await engaged_lead(repository, redis_client, pool, "erased@acme-robotics.com")
    await first_in_line(pool, first)

    batch = asyncio.create_task(dispatcher(pool, inbox, gate).dispatch_due())
    await gate.has_the_first()
    await LeadErasure(pool).erase(erased.lead_id)
    gate.release.set()
    report = await batch

    assert report.sent == 1 and report.no_longer_claimed == len(ids(erased))
    assert set(delivered(inbox, gate)).isdisjoint(ids(erased))
    assert all(to != ["erased@acme-robotics.com"] for to, _ in inbox.received)


async def test_an_unsubscribe_during_a_send_waits_for_it_and_finds_it_sent(pool, repository, redis_client, inbox,
                                                                           gate):
    lead = await engaged_lead(repository, redis_client, pool, "mid-send@acme-robotics.com")
    touchpoint = await first_in_line(pool, lead)

    batch = asyncio.create_task(dispatcher(pool, inbox, gate).dispatch_due())
    await gate.has_the_first()  # the receiver has it; the dispatcher has not recorded it yet
    unsubscribe = asyncio.create_task(repository.unsubscribe(lead.lead_id, None))
    while not await pool.fetchval(  # the unsubscribe is waiting for the touchpoint being sent
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock'"""):
        assert not unsubscribe.done(), "the unsubscribe did not wait for the send in progress"
    gate.release.set()
    report, unsubscribed = await batch, await unsubscribe

    assert report.sent == 1 and unsubscribed.cancelled_touchpoints == 0
    assert await pool.fetchval("SELECT status FROM touchpoints WHERE id = $1", touchpoint) == "sent"


# --- exactly once among live dispatchers, at least once across a crash ------------------------------------


async def test_a_lease_that_runs_out_mid_batch_sends_nothing_twice(pool, repository, redis_client, inbox, gate):
    first = await engaged_lead(repository, redis_client, pool, "first-in-line@acme-robotics.com")
    others = [await engaged_lead(repository, redis_client, pool, f"other-{i}@acme-robotics.com") for i in range(2)]
    held = await first_in_line(pool, first)
    slow, other = dispatcher(pool, inbox, gate), dispatcher(pool, inbox, gate)

    batch = asyncio.create_task(slow.dispatch_due())
    await gate.has_the_first()
    # The slow dispatcher's lease runs out on every touchpoint it has not reached yet; the one it is
    # sending is locked (SKIP LOCKED leaves it, as a claim does).
    expired = await pool.fetchval(
        """WITH aged AS (UPDATE touchpoints SET claimed_at = now() - interval '1 hour'
                         WHERE id IN (SELECT id FROM touchpoints WHERE status = 'sending' FOR UPDATE SKIP LOCKED)
                         RETURNING id) SELECT count(*) FROM aged""")
    assert expired == sum(len(ids(r)) for r in others)
    taken_over = await other.dispatch_due()
    gate.release.set()
    report = await batch

    assert taken_over.claimed == taken_over.sent == expired
    assert report.sent == 1 and report.no_longer_claimed == expired
    sent = delivered(inbox, gate)
    assert sorted(sent) == sorted({str(held)} | set().union(*(ids(r) for r in others))), "each exactly once"
    rows = await pool.fetch("SELECT id, status, attempts FROM touchpoints WHERE status <> 'cancelled'")
    assert {(r["status"], r["attempts"]) for r in rows if r["id"] != held} == {("sent", 2)}


async def test_a_crash_after_the_receiver_accepted_sends_again_under_the_same_key(pool, repository, redis_client,
                                                                                  inbox, gate):
    first = await engaged_lead(repository, redis_client, pool, "first-in-line@acme-robotics.com")
    other = await engaged_lead(repository, redis_client, pool, "same-batch@acme-robotics.com")
    touchpoint = await first_in_line(pool, first)

    batch = asyncio.create_task(dispatcher(pool, inbox, gate).dispatch_due())
    await gate.has_the_first()
    # PostgreSQL drops the dispatcher's connection while the receiver holds the touchpoint.
    backend = await pool.fetchval("""SELECT pid FROM pg_stat_activity
                                     WHERE datname = current_database() AND state = 'idle in transaction'""")
    assert await pool.fetchval("SELECT pg_terminate_backend($1)", backend)
    gate.release.set()
    report = await batch

    assert report.unrecorded == 1 and report.sent == len(ids(other)), "the rest of the batch went out"
    assert await pool.fetchval("SELECT status FROM touchpoints WHERE id = $1", touchpoint) == "sending"
    await pool.execute("UPDATE touchpoints SET claimed_at = now() - interval '1 hour' WHERE id = $1", touchpoint)
    again = await dispatcher(pool, inbox, gate).dispatch_due()

    assert again.sent == 1
    assert gate.keys().count(str(touchpoint)) == 2, "at least once: the receiver got it twice..."
    requests = [r for r in gate.accepted if r["touchpoint"]["id"] == str(touchpoint)]
    assert [r["key"] for r in requests] == [str(touchpoint)] * 2, "...under the same key, so it can tell"
    assert await pool.fetchval("SELECT attempts FROM touchpoints WHERE id = $1", touchpoint) == 2
