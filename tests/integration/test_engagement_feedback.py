"""Interactions coming back, against real PostgreSQL and Valkey: each one is stored with the plan change
it causes and its audit row in one transaction, duplicates change nothing, consent is law.

Leads are made by the real intake flow (agents in-process). The policy here has no quiet hours, so that
what a test sees does not depend on the time of day it runs; business hours are the unit tests' job.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from marketing_agents.errors import Conflict, NotFound, RequestError
from marketing_agents.flows.engagement_feedback import (
    AGENT,
    CALL_TEMPLATE,
)
from marketing_agents.memory.event_bus import event_channel
from marketing_agents.stores import postgres_interaction_import as interaction_import
from marketing_agents.stores.postgres_interactions import (
    PARTITION_LOCK_KEY,
)
from tests.integration.feedback_support import WARM, event, touchpoints
from tests.support import wait_for


async def totals(pool) -> dict[str, int]:
    return {table: await pool.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("interactions", "conversions", "touchpoints", "agent_actions")}


async def test_a_reply_cancels_the_pending_touchpoints_and_creates_a_call_task_with_call_consent(pool, feedback,
                                                                                                 new_lead):
    lead_id = await new_lead(**WARM)  # warm: email, linkedin, email; no call in the sequence
    before = await touchpoints(pool, lead_id)
    assert {tp["channel"] for tp in before} == {"email", "linkedin"} and {tp["status"] for tp in before} == {"pending"}

    outcome = await feedback.record(event(lead_id, "reply", channel="email", conversation_id="thread-1"))

    assert outcome.status == "stored" and outcome.lead_status == "in_conversation"
    after = await touchpoints(pool, lead_id)
    assert [tp["status"] for tp in after[:len(before)]] == ["cancelled"] * len(before)
    [call] = after[len(before):]
    assert (call["channel"], call["template"], call["status"], call["step"]) == \
        ("call", CALL_TEMPLATE, "pending", len(before))
    now = await pool.fetchval("SELECT now()")
    assert now < call["scheduled_at"] <= now + timedelta(minutes=16)
    assert await pool.fetchval("SELECT status FROM leads WHERE id = $1", lead_id) == "in_conversation"
    stored = await pool.fetchrow("SELECT type, channel, conversation_id FROM interactions WHERE id = $1",
                                 outcome.interaction_id)
    assert dict(stored) == {"type": "reply", "channel": "email", "conversation_id": "thread-1"}
    audit = await pool.fetchrow(
        "SELECT agent, action, inputs, output, reason FROM agent_actions WHERE lead_id = $1 ORDER BY id DESC LIMIT 1",
        lead_id)
    assert (audit["agent"], audit["action"]) == (AGENT, "plan_updated")
    assert audit["inputs"]["type"] == "reply" and audit["output"]["interaction_id"] == outcome.interaction_id
    assert audit["output"]["status"] == "in_conversation" and len(audit["output"]["cancelled_touchpoints"]) == 3
    assert "people talk now" in audit["reason"]


async def test_a_reply_keeps_the_call_task_of_a_hot_plan_and_creates_none_without_call_consent(pool, feedback,
                                                                                               new_lead):
    with_call = await new_lead()  # hot: email, call, linkedin, email
    await feedback.record(event(with_call, "reply"))
    pending = [tp for tp in await touchpoints(pool, with_call) if tp["status"] == "pending"]
    assert [(tp["channel"], tp["template"]) for tp in pending] == [("call", "discovery-call")]

    without_call = await new_lead(consent={"email": True, "linkedin": True})
    outcome = await feedback.record(event(without_call, "meeting"))
    assert outcome.lead_status == "in_conversation"
    after = await touchpoints(pool, without_call)
    assert {tp["status"] for tp in after} == {"cancelled"} and "call" not in {tp["channel"] for tp in after}


async def test_a_purchase_sent_twice_creates_exactly_one_conversion(pool, feedback, new_lead):
    lead_id = await new_lead()
    purchase = event(lead_id, "purchase", value=Decimal("1250.00"), channel="email", external_id="order-1001")

    first = await feedback.record(purchase)
    again = await feedback.record(purchase.model_copy())
    # Without the id, the bulk importer's rule (same lead, type, time and value) recognises it too.
    without_id = await feedback.record(purchase.model_copy(update={"external_id": None}))

    assert (first.status, again.status, without_id.status) == ("stored", "duplicate", "duplicate")
    assert again.interaction_id == first.interaction_id == without_id.interaction_id and again.change is None
    conversions = await pool.fetch("SELECT id, value, channel FROM conversions WHERE lead_id = $1", lead_id)
    assert [(c["id"], c["value"], c["channel"]) for c in conversions] == [(first.conversion_id, Decimal("1250.00"),
                                                                           "email")]
    assert await pool.fetchval("SELECT count(*) FROM interactions WHERE lead_id = $1 AND type = 'purchase'",
                               lead_id) == 1
    assert await pool.fetchval("SELECT status FROM leads WHERE id = $1", lead_id) == "converted"
    assert {tp["status"] for tp in await touchpoints(pool, lead_id)} == {"cancelled"}
    assert await pool.fetchval("SELECT count(*) FROM agent_actions WHERE lead_id = $1 AND action = 'plan_updated'",
                               lead_id) == 1


async def test_the_same_purchase_sent_concurrently_is_stored_once(pool, feedback, new_lead):
    lead_id = await new_lead()
    purchase = event(lead_id, "purchase", value=Decimal("80.00"), external_id="order-2002")
    outcomes = await asyncio.gather(*(feedback.record(purchase.model_copy()) for _ in range(4)))
    assert sorted(o.status for o in outcomes) == ["duplicate", "duplicate", "duplicate", "stored"]
    assert await pool.fetchval("SELECT count(*) FROM conversions WHERE lead_id = $1", lead_id) == 1


async def test_an_external_id_reused_for_a_different_interaction_is_a_conflict_and_writes_nothing(pool, feedback,
                                                                                               new_lead):
    lead_id = await new_lead()
    await feedback.record(event(lead_id, "purchase", value=Decimal("10.00"), external_id="order-3003"))
    before = await totals(pool)
    with pytest.raises(Conflict, match="order-3003"):
        await feedback.record(event(lead_id, "purchase", value=Decimal("99.00"), external_id="order-3003"))
    assert await totals(pool) == before


async def test_a_click_brings_the_next_pending_touchpoint_forward(pool, feedback, new_lead):
    lead_id = await new_lead()
    await pool.execute("UPDATE touchpoints SET status = 'sent', sent_at = now() WHERE lead_id = $1 AND step = 0",
                       lead_id)  # the dispatcher sent the first email
    call = next(tp for tp in await touchpoints(pool, lead_id) if tp["step"] == 1)
    assert call["channel"] == "call"

    outcome = await feedback.record(event(lead_id, "click", channel="email"))

    moved = next(tp for tp in await touchpoints(pool, lead_id) if tp["step"] == 1)
    now = await pool.fetchval("SELECT now()")
    assert moved["status"] == "pending" and moved["scheduled_at"] < call["scheduled_at"]
    assert now < moved["scheduled_at"] <= now + timedelta(hours=1)
    assert [m.touchpoint_id for m in outcome.change.rescheduled] == [call["id"]]
    later = [tp for tp in await touchpoints(pool, lead_id) if tp["step"] > 1]
    assert all(tp["status"] == "pending" for tp in later)
    assert outcome.lead_status == "engaged"


async def test_an_open_is_stored_and_counted_and_changes_no_touchpoint(pool, feedback, new_lead):
    lead_id = await new_lead()
    before = await touchpoints(pool, lead_id)
    first = await feedback.record(event(lead_id, "open", channel="email", external_id="open-1"))
    second = await feedback.record(event(lead_id, "open", channel="email", external_id="open-2"))
    assert (first.counts["open"], second.counts["open"]) == (1, 2)
    assert await touchpoints(pool, lead_id) == before
    assert second.change.effect == "recorded"


async def test_a_lead_that_opted_out_never_gets_a_touchpoint_from_an_interaction(pool, feedback, new_lead, repository):
    never = await new_lead(consent={})  # no consent at all: disqualified, no plan
    unsubscribed = await new_lead()
    await repository.unsubscribe(unsubscribed, None)
    for lead_id in (never, unsubscribed):
        before = await touchpoints(pool, lead_id)
        for kind in ("reply", "click", "visit", "meeting", "form_submit"):
            await feedback.record(event(lead_id, kind, channel="email", external_id=f"{kind}-1"))
        after = await touchpoints(pool, lead_id)
        assert [tp["id"] for tp in after] == [tp["id"] for tp in before]
        assert "pending" not in {tp["status"] for tp in after}


async def test_an_unsubscribe_interaction_withdraws_that_channel_like_the_unsubscribe_endpoint(pool, feedback,
                                                                                               new_lead):
    lead_id = await new_lead()
    occurred = datetime.now(UTC) - timedelta(hours=2)
    outcome = await feedback.record(event(lead_id, "unsubscribe", channel="email", occurred_at=occurred,
                                          external_id="unsub-1", attributes={"list": "newsletter"}))
    again = await feedback.record(event(lead_id, "unsubscribe", channel="email", occurred_at=occurred,
                                        external_id="unsub-1", attributes={"list": "newsletter"}))

    assert (outcome.status, again.status) == ("stored", "duplicate")
    consent = await pool.fetchval("SELECT consent FROM leads WHERE id = $1", lead_id)
    assert consent["email"] is False and consent["call"] is True
    statuses = {(tp["channel"], tp["status"]) for tp in await touchpoints(pool, lead_id)}
    assert statuses == {("email", "cancelled"), ("call", "pending"), ("linkedin", "pending")}
    rows = await pool.fetch("SELECT id, occurred_at, attributes FROM interactions WHERE lead_id = $1 "
                            "AND type = 'unsubscribe'", lead_id)
    assert len(rows) == 1 and rows[0]["id"] == outcome.interaction_id and rows[0]["occurred_at"] == occurred
    assert rows[0]["attributes"] == {"channels": ["email"], "list": "newsletter", "external_id": "unsub-1"}
    actions = [r["action"] for r in await pool.fetch(
        "SELECT action FROM agent_actions WHERE lead_id = $1 AND agent = $2 ORDER BY id", lead_id, AGENT)]
    assert actions[-2:] == ["unsubscribe", "plan_updated"]


async def test_an_unknown_lead_is_not_found_and_nothing_is_written(pool, feedback):
    before = await totals(pool)
    with pytest.raises(NotFound):
        await feedback.record(event(uuid4(), "purchase", value=Decimal("5.00")))
    assert await totals(pool) == before


async def test_an_unknown_campaign_is_refused_and_nothing_is_written(pool, feedback, new_lead):
    lead_id = await new_lead()
    before = await totals(pool)
    with pytest.raises(RequestError, match="campaign"):
        await feedback.record(event(lead_id, "purchase", value=Decimal("5.00"), campaign_id=uuid4()))
    assert await totals(pool) == before
    assert await pool.fetchval("SELECT status FROM leads WHERE id = $1", lead_id) == "engaged"


async def test_an_interaction_in_a_month_without_a_partition_gets_its_partition(pool, feedback, new_lead):
    lead_id = await new_lead()
    long_ago = datetime(2019, 5, 17, 12, 0, tzinfo=UTC)
    outcome = await feedback.record(event(lead_id, "visit", occurred_at=long_ago))
    partition = await pool.fetchval("SELECT tableoid::regclass::text FROM interactions WHERE id = $1",
                                    outcome.interaction_id)
    assert partition == "interactions_2019_05"
    assert outcome.change.effect == "recorded"  # years-old interest is too stale to act on


async def test_a_batch_stores_each_item_on_its_own(pool, feedback, new_lead):
    lead_id = await new_lead()
    at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    result = await feedback.record_batch([
        {"lead_id": str(lead_id), "type": "open", "occurred_at": at},
        {"lead_id": str(lead_id), "type": "purchase", "occurred_at": at, "value": "12.345"},
        {"lead_id": str(uuid4()), "type": "open", "occurred_at": at},
        {"lead_id": str(lead_id), "type": "open", "occurred_at": at},
        {"lead_id": str(lead_id), "type": "purchase", "occurred_at": at, "value": "12.34"},
    ])
    assert [r.status for r in result.results] == ["stored", "error", "error", "duplicate", "stored"]
    assert [r.error.code for r in result.results if r.error] == ["validation_error", "not_found"]
    assert await pool.fetchval("SELECT count(*) FROM interactions WHERE lead_id = $1", lead_id) == 2
    assert await pool.fetchval("SELECT count(*) FROM conversions WHERE lead_id = $1", lead_id) == 1


async def test_a_conversion_is_announced_after_it_is_stored(redis_client, feedback, new_lead):
    lead_id = await new_lead()
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(event_channel(f"lead:{lead_id}"))
    received: list[dict] = []

    async def heard_both() -> bool:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            received.append(json.loads(message["data"]))
        return len(received) >= 2

    try:
        await feedback.record(event(lead_id, "purchase", value=Decimal("42.00")))
        await wait_for(heard_both, timeout_s=10, interval_s=0)
    finally:
        await pubsub.aclose()
    assert [e["type"] for e in received] == ["interaction.recorded", "lead.converted"]
    assert received[1]["payload"]["value"] == "42.00" and received[0]["payload"]["status"] == "converted"


def test_partitions_are_created_under_the_importers_lock():
    assert PARTITION_LOCK_KEY == interaction_import._IMPORT_LOCK_KEY
