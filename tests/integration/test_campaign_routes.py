"""The campaign routes over HTTP (in-process ASGI, no Ray) with the real agent and stores: status codes,
the error shape and the field a 422 names, and the OpenAPI models of every route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

from marketing_agents.flows.campaign_optimizer import CampaignOptimizer
from marketing_agents.memory.event_bus import EventBus
from marketing_agents.serve_app.campaigns import add_campaign_routes
from marketing_agents.serve_app.http_errors import install_error_handlers
from marketing_agents.stores.postgres_campaigns import PostgresCampaignStore
from marketing_agents.stores.redis import RedisShortTermStore

CAMPAIGN = {"name": "Spring launch", "status": "active", "channels": ["email", "linkedin"], "budget": "50000.00",
            "start_date": "2025-03-01"}


def metric(**overrides) -> dict:
    return {"variant": "A", "channel": "email", "metric_date": "2025-03-01", "impressions": 5000, "clicks": 1000,
            "conversions": 200, "spend": "25.00", "revenue": "100.00", **overrides}


ONE_LOSER = [metric(), metric(variant="B", conversions=190), metric(channel="linkedin", conversions=185),
             metric(variant="B", channel="linkedin", conversions=20)]


@pytest.fixture
async def http(pool, redis_client) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    agent = CampaignOptimizer(PostgresCampaignStore(pool), EventBus(RedisShortTermStore(redis_client)))
    add_campaign_routes(app, agent)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def create(http, **overrides) -> dict:
    response = await http.post("/api/v1/campaigns", json={**CAMPAIGN, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_get_list_and_patch(http):
    created = await create(http)
    assert created["status"] == "active" and created["budget"] == "50000.00" and created["end_date"] is None
    detail = (await http.get(f"/api/v1/campaigns/{created['id']}")).json()
    assert detail == {"campaign": created, "allocation": None}
    listed = (await http.get("/api/v1/campaigns", params={"status": "active", "limit": 500})).json()
    assert created["id"] in [c["id"] for c in listed["campaigns"]]

    patched = await http.patch(f"/api/v1/campaigns/{created['id']}", json={"status": "paused", "end_date": "2025-06-30"})
    assert patched.status_code == 200 and (patched.json()["status"], patched.json()["end_date"]) == ("paused",
                                                                                                     "2025-06-30")
    cleared = await http.patch(f"/api/v1/campaigns/{created['id']}", json={"end_date": None})
    assert cleared.json()["end_date"] is None and cleared.json()["status"] == "paused"


@pytest.mark.parametrize(("body", "field"), [
    ({"end_date": "2025-02-01"}, "end_date"),
    ({"name": None}, "name"),
    ({"channels": []}, "channels"),
    ({"budget": "-5"}, "budget"),
    ({"colour": "red"}, "colour"),
])
async def test_a_bad_patch_is_422_naming_the_field(http, body, field):
    created = await create(http)
    response = await http.patch(f"/api/v1/campaigns/{created['id']}", json=body)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["error"]["details"]] == [field]
    assert (await http.get(f"/api/v1/campaigns/{created['id']}")).json()["campaign"] == created


async def test_unknown_ids_are_404_and_malformed_ones_422(http):
    for method, path in [("GET", "/api/v1/campaigns/{}"), ("PATCH", "/api/v1/campaigns/{}"),
                         ("GET", "/api/v1/campaigns/{}/performance"), ("POST", "/api/v1/campaigns/{}/optimize"),
                         ("POST", "/api/v1/optimizations/{}/approve"), ("POST", "/api/v1/optimizations/{}/rollback"),
                         ("GET", "/api/v1/optimizations/{}"), ("POST", "/api/v1/escalations/{}/acknowledge")]:
        body = {"name": "x"} if method == "PATCH" else None
        missing = await http.request(method, path.format(uuid4()), json=body)
        assert missing.status_code == 404, (method, path, missing.text)
        assert missing.json()["error"]["code"] == "not_found"
    malformed = await http.get("/api/v1/campaigns/not-a-uuid")
    assert malformed.status_code == 422 and malformed.json()["error"]["details"][0]["field"] == "campaign_id"
    unknown_campaign = await http.post(f"/api/v1/campaigns/{uuid4()}/metrics", json={"rows": [metric()]})
    assert unknown_campaign.status_code == 404


@pytest.mark.parametrize(("bad", "field"), [
    ({"clicks": 5001}, "rows.1.clicks"),
    ({"conversions": 1001}, "rows.1.conversions"),
    ({"spend": "-0.01"}, "rows.1.spend"),
    ({"revenue": "-3"}, "rows.1.revenue"),
    ({"channel": "sms"}, "rows.1.channel"),  # a real channel, but not one of this campaign's
    ({"metric_date": "2025-03-01", "variant": "A"}, "rows"),  # the same arm and day as row 0
])
async def test_bad_metrics_are_422_naming_the_field_and_write_nothing(http, pool, bad, field):
    created = await create(http)
    response = await http.post(f"/api/v1/campaigns/{created['id']}/metrics",
                               json={"rows": [metric(), metric(variant="X", **bad)] if field != "rows"
                                     else [metric(), metric(**bad)]})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and [e["field"] for e in error["details"]] == [field]
    assert await pool.fetchval("SELECT count(*) FROM campaign_metrics WHERE campaign_id = $1", created["id"]) == 0


async def test_performance_carries_each_arms_days_for_charts_over_time(http):
    created = await create(http)
    base = f"/api/v1/campaigns/{created['id']}"
    rows = [metric(metric_date=day, conversions=conversions, variant=variant)
            for day, conversions in (("2025-03-02", 150), ("2025-03-01", 120)) for variant in ("B", "A")]
    assert (await http.post(f"{base}/metrics", json={"rows": rows})).status_code == 200
    days = (await http.get(f"{base}/performance")).json()["days"]
    assert [(d["metric_date"], d["variant"], d["conversions"]) for d in days] == [
        ("2025-03-01", "A", 120), ("2025-03-01", "B", 120), ("2025-03-02", "A", 150), ("2025-03-02", "B", 150)]


async def test_metrics_optimize_rollback_and_escalations_over_http(http):
    created = await create(http)
    base = f"/api/v1/campaigns/{created['id']}"
    posted = await http.post(f"{base}/metrics", json={"rows": ONE_LOSER})
    assert posted.json() == {"campaign_id": created["id"], "received": 4, "inserted": 4, "updated": 0,
                             "unchanged": 0}
    performance = (await http.get(f"{base}/performance")).json()
    assert [a["arm"]["variant"] + "/" + a["arm"]["channel"] for a in performance["arms"]] == [
        "A/email", "A/linkedin", "B/email", "B/linkedin"]
    assert performance["arms"][3]["cvr"] == 0.02 and performance["total"]["impressions"] == 20_000

    preview = await http.post(f"{base}/optimize", params={"dry_run": "true"})
    assert preview.status_code == 200 and preview.json()["dry_run"] is True and preview.json()["id"] is None
    assert (await http.get(base)).json()["allocation"] is None

    applied = (await http.post(f"{base}/optimize")).json()
    assert applied["status"] == "applied" and applied["decision"] == preview.json()["decision"]
    allocation = (await http.get(base)).json()["allocation"]
    assert allocation["optimization_id"] == applied["id"]
    assert allocation["allocation"]["paused"] == ["B/linkedin"] and allocation["allocation"]["shares"]["B/linkedin"] == 0
    again = await http.post(f"{base}/optimize")
    assert again.status_code == 409 and again.json()["error"]["details"]["optimization_id"] == applied["id"]

    rollback = await http.post(f"/api/v1/optimizations/{applied['id']}/rollback", json={"by": "maria"})
    assert rollback.status_code == 200 and rollback.json()["rollback_of"] == applied["id"]
    assert rollback.json()["created_by"] == "api", "what the body says is a note, not the actor"
    restored = (await http.get(base)).json()["allocation"]["allocation"]
    assert restored == {"shares": {"A/email": 0.25, "A/linkedin": 0.25, "B/email": 0.25, "B/linkedin": 0.25},
                        "paused": []}
    twice = await http.post(f"/api/v1/optimizations/{applied['id']}/rollback")
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "conflict"
    history = (await http.get(f"{base}/optimizations")).json()["optimizations"]
    assert [o["status"] for o in history] == ["applied", "rolled_back"]
    assert (await http.get(f"/api/v1/optimizations/{applied['id']}")).json()["rolled_back_by"] == rollback.json()["id"]


async def test_an_escalation_is_listed_approved_and_acknowledged_over_http(http):
    created = await create(http, budget="400.00")  # 100 spent of 400 per arm ... 400 of 400: escalates
    base = f"/api/v1/campaigns/{created['id']}"
    await http.post(f"{base}/metrics", json={"rows": [metric(spend="100.00"), metric(variant="B", spend="100.00"),
                                                      metric(channel="linkedin", spend="100.00"),
                                                      metric(variant="B", channel="linkedin", spend="100.00")]})
    proposal = (await http.post(f"{base}/optimize")).json()
    assert proposal["status"] == "proposed" and [e["kind"] for e in proposal["escalations"]] == ["budget_nearly_spent"]
    listed = (await http.get("/api/v1/escalations", params={"campaign_id": created["id"]})).json()["escalations"]
    assert [e["id"] for e in listed] == [proposal["escalations"][0]["id"]]

    approved = await http.post(f"/api/v1/optimizations/{proposal['id']}/approve")
    assert approved.status_code == 200 and approved.json()["applied_by"] == "api"
    assert (await http.get(base)).json()["allocation"]["optimization_id"] == proposal["id"]
    assert (await http.get("/api/v1/escalations", params={"campaign_id": created["id"]})).json() == {
        "escalations": []}
    every = (await http.get("/api/v1/escalations", params={"campaign_id": created["id"], "status": "all"})).json()
    assert [(e["status"], e["acknowledged_by"]) for e in every["escalations"]] == [("acknowledged", "api")]
    ack = await http.post(f"/api/v1/escalations/{every['escalations'][0]['id']}/acknowledge", json={"by": "li"})
    assert ack.status_code == 409
    assert (await http.get("/api/v1/escalations", params={"status": "closed"})).status_code == 422


async def test_a_fresh_escalation_is_acknowledged_with_a_note(http):
    created = await create(http, budget="400.00")
    base = f"/api/v1/campaigns/{created['id']}"
    await http.post(f"{base}/metrics", json={"rows": [metric(spend="200.00"), metric(variant="B", spend="200.00")]})
    (escalation,) = (await http.post(f"{base}/optimize")).json()["escalations"]
    ack = await http.post(f"/api/v1/escalations/{escalation['id']}/acknowledge",
                          json={"by": "maria", "note": "extending the budget"})
    assert ack.status_code == 200
    assert (ack.json()["status"], ack.json()["acknowledged_by"], ack.json()["note"]) == (
        "acknowledged", "api", "extending the budget (stated by: maria)")


async def test_every_campaign_route_is_documented_with_its_models(http):
    spec = (await http.get("/openapi.json")).json()
    routes = {(path, method): op for path, ops in spec["paths"].items() for method, op in ops.items()}
    assert set(routes) == {
        ("/api/v1/campaigns", "post"), ("/api/v1/campaigns", "get"), ("/api/v1/campaigns/{campaign_id}", "get"),
        ("/api/v1/campaigns/{campaign_id}", "patch"), ("/api/v1/campaigns/{campaign_id}/metrics", "post"),
        ("/api/v1/campaigns/{campaign_id}/performance", "get"), ("/api/v1/campaigns/{campaign_id}/optimize", "post"),
        ("/api/v1/campaigns/{campaign_id}/optimizations", "get"), ("/api/v1/optimizations/{optimization_id}", "get"),
        ("/api/v1/optimizations/{optimization_id}/approve", "post"),
        ("/api/v1/optimizations/{optimization_id}/rollback", "post"), ("/api/v1/escalations", "get"),
        ("/api/v1/escalations/{escalation_id}/acknowledge", "post")}
    for (path, method), op in routes.items():
        ok = op["responses"]["201" if (path, method) == ("/api/v1/campaigns", "post") else "200"]
        assert "$ref" in ok["content"]["application/json"]["schema"], (path, method)
        for status in ("404", "409", "422"):
            assert op["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith(
                "ErrorResponse"), (path, method, status)
