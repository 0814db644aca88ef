"""Behavioural scoring against real PostgreSQL and Valkey: an interaction rescores its lead in the
transaction that stores it, a lead that turns hot gets one call task, duplicates and converted leads
change nothing.

Leads come from the real intake flow, as in test_engagement_feedback. The warm lead (Marketing Manager,
web_form, 40 employees, three channels) scores fit 69 and engagement 60, so 65.4; +11.5 engagement
(a form submission, 15) makes it hot. The passing of time is the rows' own: moving a lead's
interactions back in time is what months of quiet look like to the decay.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from marketing_agents.domain.lead_views import LeadProfile
from marketing_agents.memory.event_bus import event_channel
from marketing_agents.stores.postgres_long_term import PostgresLongTermStore
from tests.integration.feedback_support import WARM, event, touchpoints
from tests.support import wait_for


async def scores(pool, lead_id: UUID) -> dict:
    """What the lead's rows say about its score: the lead, its triage rows, its history, its audit."""
    lead = await pool.fetchrow("SELECT lead_score, triage_category FROM leads WHERE id = $1", lead_id)
    rows = await pool.fetch("SELECT lead_score, triage_category, scoring_model, result FROM triage_results "
                            "WHERE lead_id = $1 ORDER BY triaged_at, id", lead_id)
    history = await pool.fetchval("SELECT score_history FROM lead_profiles WHERE lead_id = $1", lead_id)
    rescored = await pool.fetch("SELECT agent, inputs, output, reason FROM agent_actions "
                                "WHERE lead_id = $1 AND action = 'rescored' ORDER BY id", lead_id)
    return {"lead_score": lead["lead_score"], "triage_category": lead["triage_category"], "triage": rows,
            "history": history or [], "rescored": rescored}


async def calls(pool, lead_id: UUID) -> list[dict]:
    return [tp for tp in await touchpoints(pool, lead_id) if tp["channel"] == "call"]


async def test_a_click_raises_the_score_and_the_factor_names_it(pool, feedback, new_lead, repository, redis_client):
    lead_id = await new_lead(**WARM)
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(event_channel(f"lead:{lead_id}"))
    received: list[dict] = []

    async def heard_both() -> bool:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            received.append(json.loads(message["data"]))
        return len(received) >= 2

    try:
        outcome = await feedback.record(event(lead_id, "click", channel="email", external_id="click-1"))
        await wait_for(heard_both, timeout_s=10, interval_s=0)
    finally:
        await pubsub.aclose()

    r = outcome.rescore
    assert r is not None and (r.lead_score_before, r.lead_score) == (65.4, 67.4)
    assert (r.engagement_score_before, r.engagement_score) == (60.0, 65.0)
    assert (r.triage_category_before, r.triage_category, r.touchpoint) == ("warm", "warm", None)
    assert r.factor.name == "behaviour" and r.factor.points == 5.0
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    assert r.factor.explanation.startswith(f"click on email {today}: +5.0; 1 interaction in all")

    stored = await scores(pool, lead_id)
    assert stored["lead_score"] == pytest.approx(67.4) and stored["triage_category"] == "warm"
    detail = await repository.get_detail(lead_id)  # what GET /api/v1/leads/{id} answers
    assert detail.triage.lead_score == 67.4 and detail.triage.scoring_model == "rules-v1+behaviour"
    assert {f.name for f in detail.triage.factors} >= {"source", "consent", "seniority", "behaviour"}
    [audit] = stored["rescored"]
    assert audit["agent"] == "TriageAgent" and audit["reason"] == r.factor.explanation
    assert audit["inputs"]["interaction_id"] == outcome.interaction_id and audit["output"]["lead_score"] == 67.4

    assert [e["type"] for e in received] == ["interaction.recorded", "lead.rescored"]
    payload = received[1]["payload"]
    assert (payload["lead_score_before"], payload["lead_score"], payload["triage_category"]) == (65.4, 67.4, "warm")
    assert payload["factor"]["name"] == "behaviour" and payload["touchpoint_id"] is None


async def test_enough_behaviour_turns_a_warm_lead_hot_with_one_call_task_and_a_second_crossing_adds_none(
        pool, feedback, new_lead):
    lead_id = await new_lead(**WARM)  # warm: email, linkedin, email; no call in the sequence
    assert await calls(pool, lead_id) == []

    outcome = await feedback.record(event(lead_id, "form_submit", channel="email", external_id="form-1"))

    r = outcome.rescore
    assert (r.triage_category_before, r.triage_category, r.lead_score) == ("warm", "hot", 71.4)
    [call] = await calls(pool, lead_id)
    assert (call["id"], call["template"], call["status"]) == (r.touchpoint.id, "discovery-call", "pending")
    now = await pool.fetchval("SELECT now()")
    assert now - timedelta(seconds=5) < call["scheduled_at"] <= now + timedelta(minutes=1)
    stored = await scores(pool, lead_id)
    assert stored["triage_category"] == "hot" and stored["lead_score"] == pytest.approx(71.4)
    intake, latest = stored["triage"]
    assert (intake["scoring_model"], latest["scoring_model"]) == ("rules-v1", "rules-v1+behaviour")
    assert latest["triage_category"] == "hot" and latest["result"]["route_to"] == intake["result"]["route_to"]
    [entry] = stored["history"]
    assert entry["lead_score"] == 71.4 and entry["triage_category"] == "hot" and entry["factor"]["name"] == "behaviour"
    profile = LeadProfile.from_row(lead_id, await PostgresLongTermStore(pool).profile(lead_id))
    [point] = profile.behaviour.score_history  # what GET /api/v1/leads/{id}/profile answers
    assert point.triage_category == "hot" and point.factor == r.factor

    # Four months of quiet: the form submission has faded to a sixteenth, so the next open finds a warm lead.
    await pool.execute("UPDATE interactions SET occurred_at = occurred_at - interval '120 days' WHERE lead_id = $1",
                       lead_id)
    cooled = await feedback.record(event(lead_id, "open", channel="email", external_id="open-1"))
    assert (cooled.rescore.triage_category_before, cooled.rescore.triage_category) == ("hot", "warm")
    assert cooled.rescore.lead_score == 66.2 and cooled.rescore.touchpoint is None

    again = await feedback.record(event(lead_id, "form_submit", channel="email", external_id="form-2"))
    assert (again.rescore.triage_category_before, again.rescore.triage_category) == ("warm", "hot")
    assert again.rescore.touchpoint is None and "has a call pending or done already" in again.rescore.reason
    assert [tp["id"] for tp in await calls(pool, lead_id)] == [call["id"]]
    stored = await scores(pool, lead_id)
    assert [row["triage_category"] for row in stored["triage"]] == ["warm", "hot", "warm", "hot"]
    assert [e["triage_category"] for e in stored["history"]] == ["hot", "warm", "hot"]


async def test_no_call_task_without_call_consent(pool, feedback, new_lead):
    lead_id = await new_lead(**WARM, consent={"email": True, "linkedin": True})  # engagement 50: 61.4, warm
    outcomes = [await feedback.record(event(lead_id, kind, channel="email", external_id=f"{kind}-1"))
                for kind in ("form_submit", "click", "visit")]
    assert [o.rescore.triage_category for o in outcomes] == ["warm", "warm", "hot"]
    assert outcomes[-1].rescore.lead_score == 70.6 and outcomes[-1].rescore.touchpoint is None
    assert "not consented to calls" in outcomes[-1].rescore.reason
    assert await calls(pool, lead_id) == []
    assert (await scores(pool, lead_id))["triage_category"] == "hot"


async def test_a_duplicate_interaction_changes_nothing(pool, feedback, new_lead):
    lead_id = await new_lead(**WARM)
    click = event(lead_id, "click", channel="email", external_id="click-7")
    first = await feedback.record(click)
    before = await scores(pool, lead_id)

    again = await feedback.record(click.model_copy())

    assert (first.status, again.status) == ("stored", "duplicate") and again.rescore is None
    assert await scores(pool, lead_id) == before
    assert len(before["triage"]) == 2 and len(before["history"]) == 1 and len(before["rescored"]) == 1


async def test_a_converted_lead_is_not_rescored(pool, feedback, new_lead):
    lead_id = await new_lead(**WARM)
    bought = await feedback.record(event(lead_id, "purchase", value=Decimal("990.00"), external_id="order-1"))
    later = await feedback.record(event(lead_id, "meeting", channel="call", external_id="meeting-1"))

    assert (bought.lead_status, later.lead_status) == ("converted", "converted")
    assert (bought.rescore, later.rescore) == (None, None)
    stored = await scores(pool, lead_id)
    assert len(stored["triage"]) == 1 and stored["history"] == [] and stored["rescored"] == []
    assert stored["lead_score"] == pytest.approx(65.4) and stored["triage_category"] == "warm"


async def test_a_lead_triage_never_saw_is_not_rescored(pool, feedback, new_lead):
    lead_id = await new_lead(**WARM)
    await pool.execute("DELETE FROM triage_results WHERE lead_id = $1", lead_id)  # as an imported placeholder
    outcome = await feedback.record(event(lead_id, "form_submit", channel="email", external_id="form-9"))
    assert outcome.status == "stored" and outcome.rescore is None
    assert (await scores(pool, lead_id))["rescored"] == []
