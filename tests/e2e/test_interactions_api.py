"""POST /api/v1/interactions over real HTTP, through the EngagementFeedback deployment on a real Ray cluster."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.support import lead_payload

pytestmark = pytest.mark.e2e


def new_lead(api) -> str:
    response = api.post("/api/v1/leads", json=lead_payload(email=f"fb.{uuid.uuid4().hex[:8]}@acme-robotics.com"))
    assert response.status_code == 200, response.text
    return response.json()["lead_id"]


def moments_ago(seconds: int = 5) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


async def test_a_reply_puts_the_lead_in_conversation_and_cancels_its_pending_touchpoints(api, db):
    lead_id = new_lead(api)
    pending_before = await db.fetchval(
        "SELECT count(*) FROM touchpoints WHERE lead_id = $1 AND status = 'pending' AND channel <> 'call'",
        uuid.UUID(lead_id))
    assert pending_before >= 1

    response = api.post("/api/v1/interactions", json={
        "lead_id": lead_id, "type": "reply", "channel": "email", "occurred_at": moments_ago(),
        "external_id": f"reply-{lead_id}", "attributes": {"subject": "Re: a quick idea"}})

    assert response.status_code == 200, response.text
    outcome = response.json()
    assert (outcome["status"], outcome["lead_status"], outcome["type"]) == ("stored", "in_conversation", "reply")
    assert outcome["change"]["effect"] == "conversation"
    assert len(outcome["change"]["cancelled_touchpoints"]) >= pending_before

    detail = api.get(f"/api/v1/leads/{lead_id}").json()
    assert detail["lead"]["status"] == "in_conversation"
    pending = [tp for tp in detail["engagement_plan"]["touchpoints"] if tp["status"] == "pending"]
    assert [tp["channel"] for tp in pending] == ["call"]  # a salesperson calls; the automated sequence stopped
    cancelled = {tp["id"] for tp in detail["engagement_plan"]["touchpoints"] if tp["status"] == "cancelled"}
    assert set(outcome["change"]["cancelled_touchpoints"]) <= cancelled

    again = api.post("/api/v1/interactions", json={
        "lead_id": lead_id, "type": "reply", "channel": "email", "occurred_at": outcome["occurred_at"],
        "external_id": f"reply-{lead_id}", "attributes": {"subject": "Re: a quick idea"}})
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert again.json()["interaction_id"] == outcome["interaction_id"]
    audit = await db.fetchval("SELECT count(*) FROM agent_actions WHERE lead_id = $1 AND action = 'plan_updated'",
                              uuid.UUID(lead_id))
    assert audit == 1


async def test_a_batch_reports_each_item_and_a_bad_one_blocks_nothing(api, db):
    lead_id = new_lead(api)
    response = api.post("/api/v1/interactions", json={"interactions": [
        {"lead_id": lead_id, "type": "open", "channel": "email", "occurred_at": moments_ago(60)},
        {"lead_id": lead_id, "type": "bounce", "occurred_at": moments_ago(50)},
        {"lead_id": lead_id, "type": "purchase", "value": 499.0, "channel": "email", "occurred_at": moments_ago(40)},
        {"lead_id": str(uuid.uuid4()), "type": "click", "occurred_at": moments_ago(30)},
    ]})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["stored"], body["duplicates"], body["errors"]) == (2, 0, 2)
    assert [r["status"] for r in body["results"]] == ["stored", "error", "stored", "error"]
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3]
    assert body["results"][1]["error"]["code"] == "validation_error" and "type" in body["results"][1]["error"]["message"]
    assert body["results"][3]["error"]["code"] == "not_found"
    assert body["results"][2]["outcome"]["lead_status"] == "converted"

    stored = await db.fetch("SELECT type FROM interactions WHERE lead_id = $1 ORDER BY id", uuid.UUID(lead_id))
    assert [r["type"] for r in stored] == ["open", "purchase"]
    conversion = await db.fetchrow("SELECT value, channel FROM conversions WHERE lead_id = $1", uuid.UUID(lead_id))
    assert (float(conversion["value"]), conversion["channel"]) == (499.0, "email")


def test_a_single_bad_interaction_is_refused_with_the_field_and_an_unknown_lead_is_404(api):
    bad = api.post("/api/v1/interactions", json={"lead_id": str(uuid.uuid4()), "type": "click",
                                                "occurred_at": "2025-03-03T09:00:00"})
    assert bad.status_code == 422
    assert [f["field"] for f in bad.json()["error"]["details"]] == ["interaction.occurred_at"]

    unknown = api.post("/api/v1/interactions", json={"lead_id": str(uuid.uuid4()), "type": "click",
                                                    "occurred_at": moments_ago()})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"

    too_many = api.post("/api/v1/interactions", json={"interactions": [{}] * 1001})
    assert too_many.status_code == 422
    assert [f["field"] for f in too_many.json()["error"]["details"]] == ["batch.interactions"]


def test_every_interaction_counts_in_the_leads_behaviour(api):
    """A click and a visit show in GET /api/v1/leads/{id}/profile at once: engagement by channel and
    the last activity, which never moves back for an older event; a duplicate counts nothing."""
    lead_id = new_lead(api)
    clicked = (datetime.now(UTC) - timedelta(minutes=2)).replace(microsecond=0)
    for body in ({"type": "click", "channel": "email", "occurred_at": clicked.isoformat(), "external_id": "c-1"},
                 {"type": "click", "channel": "email", "occurred_at": clicked.isoformat(), "external_id": "c-1"},
                 {"type": "open", "channel": "linkedin", "occurred_at": moments_ago(600)},
                 {"type": "visit", "occurred_at": moments_ago(900)}):
        assert api.post("/api/v1/interactions", json={"lead_id": lead_id, **body}).status_code == 200
    behaviour = api.get(f"/api/v1/leads/{lead_id}/profile").json()["behaviour"]
    assert behaviour["engagement_by_channel"] == {"email": 1, "linkedin": 1}
    assert datetime.fromisoformat(behaviour["last_activity_at"]) == clicked


def test_a_reply_thread_keeps_its_conversation_in_short_term_memory(api):
    """Two turns of one thread, the second without text: both are in the lead's short-term memory, in
    order, as GET /api/v1/leads/{id}/export shows it."""
    lead_id = new_lead(api)
    thread = f"thread-{lead_id}"
    for body in ({"type": "reply", "channel": "email", "occurred_at": moments_ago(60), "conversation_id": thread,
                  "attributes": {"text": "Yes, Tuesday works"}},
                 {"type": "meeting", "channel": "call", "occurred_at": moments_ago(30), "conversation_id": thread}):
        assert api.post("/api/v1/interactions", json={"lead_id": lead_id, **body}).status_code == 200
    short_term = api.get(f"/api/v1/leads/{lead_id}/export").json()["short_term"]
    turns = next(value for key, value in short_term.items() if key.endswith(f":conversation:{thread}"))
    texts = [turn["text"] for _, turn in sorted(turns.items(), key=lambda item: int(item[0]))]
    assert texts[0] == "Yes, Tuesday works" and texts[1].startswith("meeting on call at ")
    assert {turn["role"] for turn in turns.values()} == {"lead"}
