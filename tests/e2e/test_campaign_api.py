"""The campaign optimizer through the running system: real HTTP, the ApiGateway and CampaignOptimizer
deployments on a real Ray cluster, the embedded stores."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.e2e

ARMS = ["A/email", "A/linkedin", "B/email", "B/linkedin"]


def metric(arm: str, conversions: int, day: str = "2025-03-01", **overrides) -> dict:
    variant, channel = arm.split("/")
    return {"variant": variant, "channel": channel, "metric_date": day, "impressions": 5000, "clicks": 1000,
            "conversions": conversions, "spend": "25.00", "revenue": "100.00", **overrides}


def create_campaign(api) -> str:
    """A draft: the optimizer agent steps active campaigns on its own; these tests drive it by hand."""
    response = api.post("/api/v1/campaigns", json={
        "name": f"e2e {uuid.uuid4().hex[:6]}", "status": "draft", "channels": ["email", "linkedin"],
        "objective": "Book demos", "budget": "50000.00", "start_date": "2025-03-01"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_a_clear_loser_is_paused_and_one_call_rolls_it_back(api, db):
    campaign_id = create_campaign(api)
    assert api.get(f"/api/v1/campaigns/{campaign_id}").json()["allocation"] is None
    # B/linkedin converts 2% of its clicks where the others convert 18.5-20%
    posted = api.post(f"/api/v1/campaigns/{campaign_id}/metrics", json={"rows": [
        metric("A/email", 200), metric("B/email", 190), metric("A/linkedin", 185), metric("B/linkedin", 20)]})
    assert posted.status_code == 200, posted.text
    assert posted.json()["inserted"] == 4

    performance = api.get(f"/api/v1/campaigns/{campaign_id}/performance").json()
    assert {f"{a['arm']['variant']}/{a['arm']['channel']}": a["cvr"] for a in performance["arms"]} == {
        "A/email": 0.2, "A/linkedin": 0.185, "B/email": 0.19, "B/linkedin": 0.02}

    optimized = api.post(f"/api/v1/campaigns/{campaign_id}/optimize", params={"dry_run": "false"})
    assert optimized.status_code == 200, optimized.text
    optimization = optimized.json()
    assert optimization["status"] == "applied" and optimization["decision"]["paused_arms"] == ["B/linkedin"]

    allocation = api.get(f"/api/v1/campaigns/{campaign_id}").json()["allocation"]
    assert allocation["optimization_id"] == optimization["id"]
    shares = allocation["allocation"]["shares"]
    assert shares["B/linkedin"] == 0 and allocation["allocation"]["paused"] == ["B/linkedin"]
    assert shares["A/email"] > 0.25 and sum(shares.values()) == pytest.approx(1.0)

    rolled_back = api.post(f"/api/v1/optimizations/{optimization['id']}/rollback", json={"by": "e2e"})
    assert rolled_back.status_code == 200, rolled_back.text
    assert rolled_back.json()["rollback_of"] == optimization["id"]
    restored = api.get(f"/api/v1/campaigns/{campaign_id}").json()["allocation"]
    assert restored["allocation"] == {"shares": dict.fromkeys(ARMS, 0.25), "paused": []}
    assert restored["optimization_id"] == rolled_back.json()["id"]

    audit = await db.fetch("SELECT action FROM agent_actions WHERE campaign_id = $1 ORDER BY id", uuid.UUID(campaign_id))
    assert [a["action"] for a in audit] == ["optimize", "rollback"]
    statuses = await db.fetch("SELECT status FROM optimizations WHERE campaign_id = $1 ORDER BY created_at",
                              uuid.UUID(campaign_id))
    assert [s["status"] for s in statuses] == ["rolled_back", "applied"]
    again = api.post(f"/api/v1/optimizations/{optimization['id']}/rollback")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


async def test_bad_metrics_are_422_naming_the_field_and_nothing_is_written(api, db):
    campaign_id = create_campaign(api)
    bad_funnel = api.post(f"/api/v1/campaigns/{campaign_id}/metrics", json={"rows": [
        metric("A/email", 200), metric("B/email", 10, clicks=6000)]})
    assert bad_funnel.status_code == 422
    error = bad_funnel.json()["error"]
    assert error["code"] == "validation_error" and [d["field"] for d in error["details"]] == ["rows.1.clicks"]
    assert "cannot exceed impressions" in error["details"][0]["message"]

    wrong_channel = api.post(f"/api/v1/campaigns/{campaign_id}/metrics", json={"rows": [
        metric("A/email", 200), metric("A/sms", 10)]})
    assert wrong_channel.status_code == 422
    assert [d["field"] for d in wrong_channel.json()["error"]["details"]] == ["rows.1.channel"]
    assert await db.fetchval("SELECT count(*) FROM campaign_metrics WHERE campaign_id = $1",
                             uuid.UUID(campaign_id)) == 0

    missing = api.post(f"/api/v1/campaigns/{uuid.uuid4()}/metrics", json={"rows": [metric("A/email", 1)]})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_escalations_are_listed_and_acknowledged(api):
    campaign_id = create_campaign(api)
    # ROI -20% once 1,000 is spent: a business call the optimizer escalates
    rows = [metric(arm, 100, spend="500.00", revenue="400.00") for arm in ("A/email", "B/email")]
    assert api.post(f"/api/v1/campaigns/{campaign_id}/metrics", json={"rows": rows}).status_code == 200
    proposal = api.post(f"/api/v1/campaigns/{campaign_id}/optimize").json()
    assert proposal["status"] == "proposed" and [e["kind"] for e in proposal["escalations"]] == ["low_roi"]
    listed = api.get("/api/v1/escalations", params={"status": "open", "campaign_id": campaign_id}).json()
    assert [e["id"] for e in listed["escalations"]] == [proposal["escalations"][0]["id"]]
    ack = api.post(f"/api/v1/escalations/{listed['escalations'][0]['id']}/acknowledge",
                   json={"by": "e2e", "note": "seen"})
    assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
    assert api.get("/api/v1/escalations", params={"campaign_id": campaign_id}).json() == {"escalations": []}
