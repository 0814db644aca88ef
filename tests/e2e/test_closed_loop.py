"""A fortnight in the life of a campaign, through the real API of the running system.

A campaign tests two variants of its email; one truly converts better. Leads of the campaign arrive day
by day (each day's leads captured on that day), each gets an arm from the engagement agent by the
campaign's allocation, and reacts by a fixed rule seeded by its email address: whether it clicks,
replies or buys depends only on that and on the variant it got. The optimizer runs on its own
(MAS_OPTIMIZER_EVERY_S) and a person approves what it escalates. The system's own counts must equal
what was posted, the better arm's share must grow, scores must move with behaviour, and no lead may be
contacted beyond the weekly cap or on a channel it did not consent to.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.support import lead_payload

pytestmark = pytest.mark.e2e

DAYS = 14
LEADS_PER_DAY = 10
CONVERTS = {"plain": 0.10, "story": 0.45}  # the truth the optimizer has to find
ORDER_VALUE = Decimal("120.00")
WAIT_S = 60


def point(email: str) -> float:
    """The lead's fixed point in [0, 1): its reactions follow from it and from its variant."""
    return int.from_bytes(hashlib.sha256(email.encode()).digest()[:8], "big") / 2**64


def reactions(email: str, variant: str) -> list[str]:
    u, p = point(email), CONVERTS[variant]
    kinds = ["open"]
    if u < p + 0.25:
        kinds.append("click")
    if u < p / 2:
        kinds.append("reply")
    if u < p:
        kinds.append("purchase")
    return kinds


def wait_for(probe, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {WAIT_S} s")


def step_of(api, campaign_id: str, day: str) -> dict:
    """The optimizer's own step on the evidence up to ``day``, approved as a person would if it escalated."""
    def stepped():
        listed = api.get(f"/api/v1/campaigns/{campaign_id}/optimizations").json()["optimizations"]
        return next((o for o in listed if o["decision"]["as_of"] == day and o["status"] != "superseded"), None)

    optimization = wait_for(stepped, f"the optimizer's step for {day}")
    assert optimization["created_by"] == "optimizer"
    if optimization["status"] == "proposed":
        approved = api.post(f"/api/v1/optimizations/{optimization['id']}/approve", json={"by": "e2e-marketer"})
        assert approved.status_code == 200, approved.text
        optimization = approved.json()
    assert optimization["status"] == "applied", optimization
    return optimization


async def test_a_fortnight_in_the_life_of_a_campaign(api, db):
    created = api.post("/api/v1/campaigns", json={
        "name": f"fortnight {uuid.uuid4().hex[:6]}", "status": "active", "channels": ["email"],
        "variants": ["plain", "story"], "budget": "0", "start_date": "2025-01-01"})
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    start = datetime.now(UTC) - timedelta(days=DAYS)

    arm_of: dict[str, str] = {}
    posted: dict[str, Counter] = defaultdict(Counter)
    story_share: list[float] = []
    story_leads_by_day: list[int] = []
    for day in range(DAYS):
        captured = start + timedelta(days=day, hours=1)
        emails = [f"loop.{uuid.uuid4().hex[:12]}@northwind-{day}.example.com" for _ in range(LEADS_PER_DAY)]
        # one lead a day consented to SMS only: no arm of an email campaign, and never an email
        leads = [lead_payload(email=email, company=f"Northwind {day}", company_size=120, source="web_form",
                              job_title="Marketing Manager", consent={"sms": True} if n == 0 else {"email": True},
                              campaign_id=campaign_id, captured_at=captured.isoformat())
                 for n, email in enumerate(emails)]
        batch = api.post("/api/v1/leads:batch", json={"leads": leads})
        assert batch.status_code == 200, batch.text
        results = batch.json()["results"]
        assert [r["status"] for r in results] == ["stored"] * LEADS_PER_DAY, results
        for item in results:
            plan = item["result"]["engagement_plan"]
            assert plan is not None, item
            if plan["arm"] is None:
                assert "no active arm on a channel the lead consented to" in plan["rationale"]
                continue
            assert plan["campaign_id"] == campaign_id
            assert f"arm {plan['arm']}" in plan["rationale"]
            assert {tp["arm"] for tp in plan["touchpoints"]} == {plan["arm"]}
            arm_of[item["result"]["lead_id"]] = plan["arm"]
            posted[plan["arm"]]["leads"] += 1
        story_leads_by_day.append(sum(1 for r in results if (r["result"]["engagement_plan"]["arm"] or "")
                                      .startswith("story/")))

        # the optimizer steps on its own once the day's leads are in; the day's reactions come after
        optimization = step_of(api, campaign_id, captured.date().isoformat())
        story_share.append(optimization["decision"]["proposed"]["shares"]["story/email"])

        interactions = []
        for email, item in zip(emails, results, strict=True):
            arm = item["result"]["engagement_plan"]["arm"]
            if arm is None:
                continue
            for n, kind in enumerate(reactions(email, arm.split("/")[0])):
                interaction = {"lead_id": item["result"]["lead_id"], "type": kind, "channel": "email",
                               "occurred_at": (captured + timedelta(hours=2, minutes=n)).isoformat(),
                               "external_id": f"{email}:{kind}"}
                if kind == "purchase":
                    interaction["value"] = str(ORDER_VALUE)
                    posted[arm]["revenue"] += int(ORDER_VALUE)
                interactions.append(interaction)
                posted[arm][kind] += 1
        answer = api.post("/api/v1/interactions", json={"interactions": interactions})
        assert answer.status_code == 200, answer.text
        assert answer.json()["stored"] == len(interactions), answer.json()

    # The better arm's share grew, and later leads got it more often than the first days' leads.
    assert story_share[-1] > max(0.8, story_share[0]), story_share
    assert sum(story_leads_by_day[-4:]) > sum(story_leads_by_day[:4]), story_leads_by_day

    # The system's own counts equal what was posted, once the consolidator has run.
    sent_before = await db.fetchval("SELECT count(*) FROM touchpoints WHERE campaign_id = $1 AND status = 'sent'",
                                    uuid.UUID(campaign_id))
    consolidated = api.post("/api/v1/memory/consolidate")
    assert consolidated.status_code == 200, consolidated.text
    assert consolidated.json()["campaign_rows_observed"] >= 2 * DAYS
    sent_after = await db.fetchval("SELECT count(*) FROM touchpoints WHERE campaign_id = $1 AND status = 'sent'",
                                   uuid.UUID(campaign_id))
    observed = api.get(f"/api/v1/campaigns/{campaign_id}/performance").json()["observed"]
    by_arm = {a["arm"]: a for a in observed["arms"]}
    assert set(by_arm) == {"plain/email", "story/email", None}
    for arm in ("plain/email", "story/email"):
        got, want = by_arm[arm], posted[arm]
        assert (got["leads"], got["opens"], got["clicks"], got["replies"], got["conversions"]) == (
            want["leads"], want["open"], want["click"], want["reply"], want["purchase"]), (arm, got, want)
        assert Decimal(got["revenue"]) == want["revenue"]
        assert got["leads_converted"] == want["purchase"]
    assert by_arm[None]["leads"] == DAYS and by_arm[None]["touchpoints_sent"] == 0
    assert observed["total"]["leads"] == DAYS * LEADS_PER_DAY
    assert sent_before <= observed["total"]["touchpoints_sent"] <= sent_after
    converted_story = by_arm["story/email"]["leads_converted"] / by_arm["story/email"]["leads"]
    converted_plain = by_arm["plain/email"]["leads_converted"] / by_arm["plain/email"]["leads"]
    assert converted_story > converted_plain

    # Scores moved with behaviour: the leads that clicked or replied were rescored, and their categories
    # are the ones their rescored scores give.
    rescored = await db.fetch(
        """SELECT DISTINCT ON (t.lead_id) t.lead_score, t.triage_category, l.lead_score AS now_score,
                  l.triage_category AS now_category, t.result -> 'factors' AS factors
           FROM triage_results t JOIN leads l ON l.id = t.lead_id
           WHERE l.campaign_id = $1 AND t.scoring_model LIKE '%+behaviour'
           ORDER BY t.lead_id, t.triaged_at DESC, t.id DESC""", uuid.UUID(campaign_id))
    assert len(rescored) >= sum(posted[arm]["click"] for arm in posted) // 2, len(rescored)
    for row in rescored:
        assert (row["now_score"], row["now_category"]) == (row["lead_score"], row["triage_category"])
        assert any(f["name"] == "behaviour" for f in row["factors"])

    # Nobody asked for these optimizations: every step is the agent's own.
    listed = api.get(f"/api/v1/campaigns/{campaign_id}/optimizations").json()["optimizations"]
    assert {o["created_by"] for o in listed} == {"optimizer"}
    assert await db.fetchval("SELECT count(*) FROM agent_actions WHERE campaign_id = $1 AND action = 'optimize'",
                             uuid.UUID(campaign_id)) + await db.fetchval(
        "SELECT count(*) FROM agent_actions WHERE campaign_id = $1 AND action = 'approve'",
        uuid.UUID(campaign_id)) == DAYS

    # No lead was contacted on a channel it did not consent to, nor more than 3 times in any 7 days.
    rows = await db.fetch(
        """SELECT l.id, l.consent, t.channel, coalesce(t.sent_at, t.scheduled_at) AS at
           FROM leads l JOIN touchpoints t ON t.lead_id = l.id
           WHERE l.campaign_id = $1 AND t.status IN ('pending', 'sending', 'sent')""", uuid.UUID(campaign_id))
    contacts: dict[uuid.UUID, list[datetime]] = defaultdict(list)
    for row in rows:
        assert row["consent"].get(row["channel"]) is True, dict(row)
        contacts[row["id"]].append(row["at"])
    for times in contacts.values():
        for first in times:
            assert sum(1 for t in times if first <= t < first + timedelta(days=7)) <= 3, sorted(times)

    # A rollback changes what the next leads get: the next lead draws by the restored shares.
    latest = next(o for o in listed if o["status"] == "applied")
    rolled_back = api.post(f"/api/v1/optimizations/{latest['id']}/rollback", json={"by": "e2e-marketer"})
    assert rolled_back.status_code == 200, rolled_back.text
    restored = rolled_back.json()["decision"]["proposed"]["shares"]
    assert restored != latest["decision"]["proposed"]["shares"]
    lead = api.post("/api/v1/leads", json=lead_payload(
        email=f"after.{uuid.uuid4().hex[:12]}@northwind.example.com", company="Northwind", company_size=120,
        source="web_form", job_title="Marketing Manager", consent={"email": True}, campaign_id=campaign_id))
    assert lead.status_code == 200, lead.text
    plan = lead.json()["engagement_plan"]
    assert f"by its share of {restored[plan['arm']]:.0%}" in plan["rationale"], (plan["rationale"], restored)


async def test_leads_and_interactions_of_unknown_campaigns_or_out_of_order_are_refused_per_item(api, db):
    unknown = str(uuid.uuid4())
    refused = api.post("/api/v1/leads", json=lead_payload(email=f"nocamp.{uuid.uuid4().hex[:8]}@example.com",
                                                           campaign_id=unknown))
    assert refused.status_code == 422, refused.text
    assert [d["field"] for d in refused.json()["error"]["details"]] == ["campaign_id"]
    future = api.post("/api/v1/leads", json=lead_payload(
        email=f"future.{uuid.uuid4().hex[:8]}@example.com",
        captured_at=(datetime.now(UTC) + timedelta(days=1)).isoformat()))
    assert future.status_code == 422
    assert "captured_at" in future.json()["error"]["details"][0]["field"]

    lead = api.post("/api/v1/leads", json=lead_payload(email=f"order.{uuid.uuid4().hex[:8]}@example.com"))
    assert lead.status_code == 200, lead.text
    lead_id = lead.json()["lead_id"]
    later = next(tp for tp in lead.json()["engagement_plan"]["touchpoints"] if tp["step"] == 1)  # due in days
    now = datetime.now(UTC) - timedelta(minutes=1)
    batch = api.post("/api/v1/interactions", json={"interactions": [
        {"lead_id": str(uuid.uuid4()), "type": "click", "channel": "email", "occurred_at": now.isoformat()},
        {"lead_id": lead_id, "type": "click", "channel": "email", "campaign_id": unknown,
         "occurred_at": now.isoformat()},
        {"lead_id": lead_id, "type": "click", "channel": later["channel"], "touchpoint_id": later["id"],
         "occurred_at": now.isoformat()},
        {"lead_id": lead_id, "type": "open", "channel": "email", "occurred_at": now.isoformat()},
    ]})
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["status"] for r in results] == ["error", "error", "error", "stored"]
    assert [r["error"]["code"] for r in results[:3]] == ["not_found", "bad_request", "bad_request"]
    assert "has not been sent" in results[2]["error"]["message"]
    assert results[2]["error"]["details"]["touchpoint_id"] == later["id"]
    stored = await db.fetch("SELECT type FROM interactions WHERE lead_id = $1", uuid.UUID(lead_id))
    assert [r["type"] for r in stored] == ["open"]
