"""The dispatcher against a real SMTP server (aiosmtpd) and a real local webhook: each due touchpoint
is delivered exactly once, even when a delivery fails once, and never without consent."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from marketing_agents.domain import Channel, NewLead
from marketing_agents.flows.touchpoint_dispatcher import RetryPolicy, TouchpointDispatcher
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.stores.migrations import apply_migrations
from marketing_agents.stores.outbound_delivery import SmtpDelivery, WebhookDelivery
from marketing_agents.stores.postgres import LeadRepository, init_connection
from marketing_agents.stores.postgres_touchpoints import TouchpointOutbox
from marketing_agents.stores.redis import RedisShortTermStore
from tests.support import InProcessAgents, free_port, fresh_database, lead_payload


class Inbox:
    def __init__(self) -> None:
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
async def pool(migrated):
    """A database of its own: the dispatcher takes every due touchpoint it can see."""
    dsn = await fresh_database(migrated, "dispatcher")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=6, init=init_connection)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    yield pool
    await pool.close()


@pytest.fixture
def repository(pool) -> LeadRepository:
    return LeadRepository(pool, timedelta(hours=24))


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


class Webhook:
    """A provider endpoint that fails the first request it gets, then accepts."""

    def __init__(self) -> None:
        self.accepted: list[dict] = []
        self.refused = 0
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if webhook.refused == 0:
                    webhook.refused += 1
                    self.send_response(503)
                else:
                    webhook.accepted.append({"key": self.headers["Idempotency-Key"], **body})
                    self.send_response(202)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/deliver"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.server.shutdown()


async def engaged_lead(repository, redis_client, pool, email: str):
    consent = {"email": True, "sms": True, "linkedin": True, "call": True, "webinar": True}
    agents = InProcessAgents()
    flow = agents.intake(repository, ShortTermMemory(RedisShortTermStore(redis_client)))
    result = await flow.submit(NewLead(**lead_payload(email=email, consent=consent)))
    # Make the whole sequence due now.
    await pool.execute("UPDATE touchpoints SET scheduled_at = now() - interval '1 minute' WHERE lead_id = $1",
                       result.lead_id)
    return result


def dispatcher(pool, smtp, webhook) -> TouchpointDispatcher:
    controller, _ = smtp
    email = SmtpDelivery("127.0.0.1", controller.port, "marketing@example.com")
    hook = WebhookDelivery(webhook.url)
    adapters = {Channel.EMAIL: email, Channel.SMS: hook, Channel.LINKEDIN: hook, Channel.CALL: hook,
                Channel.WEBINAR: hook}
    return TouchpointDispatcher(TouchpointOutbox(pool), adapters, RetryPolicy(max_attempts=3, first_backoff=timedelta(0)))


async def test_each_due_touchpoint_is_delivered_exactly_once_even_after_a_failed_attempt(
        pool, repository, redis_client, smtp, webhook):
    result = await engaged_lead(repository, redis_client, pool, "deliver@acme-robotics.com")
    touchpoints = {tp.id: tp for tp in result.engagement_plan.touchpoints}
    worker = dispatcher(pool, smtp, webhook)

    reports = []
    while await pool.fetchval("SELECT count(*) FROM touchpoints WHERE lead_id = $1 AND status IN ('pending', 'sending')",
                              result.lead_id):
        # Two dispatchers at once: SKIP LOCKED keeps them off each other's touchpoints.
        reports += await asyncio.gather(worker.dispatch_due(), worker.dispatch_due())
        assert len(reports) < 20, "the outbox never drained"

    _, inbox = smtp
    emailed = [m["X-Touchpoint-Id"] for m in inbox.messages]
    hooked = [d["key"] for d in webhook.accepted]
    expected_email = sorted(str(i) for i, tp in touchpoints.items() if tp.channel is Channel.EMAIL)
    expected_hook = sorted(str(i) for i, tp in touchpoints.items() if tp.channel is not Channel.EMAIL)
    assert sorted(emailed) == expected_email
    assert sorted(hooked) == expected_hook, "one webhook call per touchpoint, the refused one retried once"
    assert webhook.refused == 1 and sum(r.retrying for r in reports) == 1
    statuses = await pool.fetch("SELECT status, attempts FROM touchpoints WHERE lead_id = $1", result.lead_id)
    assert {r["status"] for r in statuses} == {"sent"}
    assert sorted(r["attempts"] for r in statuses) == [1] * (len(statuses) - 1) + [2]
    assert inbox.messages[0]["To"] == "deliver@acme-robotics.com"


async def test_consent_withdrawn_after_planning_is_checked_at_sending_time(pool, repository, redis_client, smtp,
                                                                           webhook):
    result = await engaged_lead(repository, redis_client, pool, "changed-mind@acme-robotics.com")
    await pool.execute("UPDATE leads SET consent = consent || '{\"email\": false}' WHERE id = $1", result.lead_id)
    report = await dispatcher(pool, smtp, webhook).dispatch_due()
    _, inbox = smtp
    assert all(m["To"] != "changed-mind@acme-robotics.com" for m in inbox.messages)
    emails = [tp for tp in result.engagement_plan.touchpoints if tp.channel is Channel.EMAIL]
    assert report.cancelled_for_consent == len(emails)
    assert await pool.fetchval(
        "SELECT count(*) FROM touchpoints WHERE lead_id = $1 AND channel = 'email' AND status = 'cancelled'",
        result.lead_id) == len(emails)


async def test_an_unreachable_server_fails_the_touchpoint_after_the_last_attempt(pool, repository, redis_client,
                                                                                 webhook):
    result = await engaged_lead(repository, redis_client, pool, "bounce@acme-robotics.com")
    await pool.execute("UPDATE touchpoints SET status = 'cancelled' WHERE lead_id = $1 AND channel <> 'email'",
                       result.lead_id)
    dead_smtp = SmtpDelivery("127.0.0.1", free_port(), "marketing@example.com", timeout_s=2)
    worker = TouchpointDispatcher(TouchpointOutbox(pool), {Channel.EMAIL: dead_smtp},
                                  RetryPolicy(max_attempts=2, first_backoff=timedelta(0)))
    for _ in range(3):
        await worker.dispatch_due()
    rows = await pool.fetch("SELECT status, attempts, last_error FROM touchpoints WHERE lead_id = $1 AND channel = 'email'",
                            result.lead_id)
    assert {(r["status"], r["attempts"]) for r in rows} == {("failed", 2)}
    assert all("refused touchpoint" in r["last_error"] for r in rows)


async def test_an_opted_out_lead_gets_no_touchpoint_through_any_path(pool, redis_client, smtp, webhook):
    """No consent at intake, partial consent, unsubscribing while a handoff is stalled, or after it."""
    short_term = ShortTermMemory(RedisShortTermStore(redis_client))
    repository = LeadRepository(pool, timedelta(hours=1), handoff_lease=timedelta(0))
    agents = InProcessAgents()
    flow = agents.intake(repository, short_term)
    every = {"email": True, "sms": True, "linkedin": True, "call": True, "webinar": True}

    never_consented = await flow.submit(NewLead(**lead_payload(email="never@optout.io", consent={})))
    no_email_or_sms = await flow.submit(NewLead(**lead_payload(
        email="partial@optout.io", consent={"linkedin": True, "call": True})))
    engaged_then_left = await flow.submit(NewLead(**lead_payload(email="left@optout.io", consent=every)))
    await repository.unsubscribe(engaged_then_left.lead_id, None)

    # A handoff whose process died; the lead unsubscribes before recovery sends the stored package.
    died = InProcessAgents()

    async def process_died(package):
        raise ConnectionResetError("the orchestrator's process died")

    died.deliver = process_died
    stalled = await died.intake(repository, short_term).submit(
        NewLead(**lead_payload(email="stalled@optout.io", consent=every)))
    await repository.unsubscribe(stalled.lead_id, None)
    await agents.intake(repository, short_term).resume_stalled_handoffs(limit=1000)

    await pool.execute("UPDATE touchpoints SET scheduled_at = now() - interval '1 minute'")
    await dispatcher(pool, smtp, webhook).dispatch_due()
    await dispatcher(pool, smtp, webhook).dispatch_due()  # the webhook refuses its first request once

    _, inbox = smtp
    assert {m["To"] for m in inbox.messages}.isdisjoint(
        {"never@optout.io", "partial@optout.io", "left@optout.io", "stalled@optout.io"})
    reached = {(hook["touchpoint"]["lead_id"], hook["touchpoint"]["channel"]) for hook in webhook.accepted}
    opted_out = {str(r.lead_id) for r in (never_consented, engaged_then_left, stalled)}
    assert not {lead for lead, _ in reached} & opted_out
    assert {channel for lead, channel in reached if lead == str(no_email_or_sms.lead_id)} <= {"linkedin", "call"}
    assert no_email_or_sms.status == "engaged"
    sent = await pool.fetch("SELECT lead_id, channel FROM touchpoints WHERE status = 'sent'")
    assert not {str(r["lead_id"]) for r in sent} & opted_out
    assert {r["channel"] for r in sent if r["lead_id"] == no_email_or_sms.lead_id} <= {"linkedin", "call"}
    assert await pool.fetchval("SELECT status FROM handoffs WHERE lead_id = $1", stalled.lead_id) == "completed"
    assert await pool.fetchval("SELECT count(*) FROM touchpoints WHERE lead_id = $1 AND status <> 'cancelled'",
                               stalled.lead_id) == 0


async def test_a_touchpoint_waiting_for_a_retry_stops_once_the_lead_replies_or_buys(pool, repository, redis_client,
                                                                                     smtp, webhook):
    replied = await engaged_lead(repository, redis_client, pool, "replied-meanwhile@acme-robotics.com")
    bought = await engaged_lead(repository, redis_client, pool, "bought-meanwhile@acme-robotics.com")
    # As if each had been mid-send when the interaction cancelled the rest of its sequence.
    await pool.execute("UPDATE leads SET status = 'in_conversation' WHERE id = $1", replied.lead_id)
    await pool.execute("UPDATE leads SET status = 'converted' WHERE id = $1", bought.lead_id)

    report = await dispatcher(pool, smtp, webhook).dispatch_due()
    await dispatcher(pool, smtp, webhook).dispatch_due()  # the webhook refuses its first request once

    sent = await pool.fetch("SELECT lead_id, channel FROM touchpoints WHERE status = 'sent' AND lead_id = ANY($1)",
                            [replied.lead_id, bought.lead_id])
    assert {(r["lead_id"], r["channel"]) for r in sent} <= {(replied.lead_id, "call")}
    assert report.cancelled_for_status == sum(
        1 for r in (replied, bought) for tp in r.engagement_plan.touchpoints
        if not (r is replied and tp.channel is Channel.CALL))
    _, inbox = smtp
    assert {m["To"] for m in inbox.messages}.isdisjoint({"replied-meanwhile@acme-robotics.com",
                                                        "bought-meanwhile@acme-robotics.com"})
