"""The demo data ``make run`` loads (``MAS_LOAD_DEMO_DATA``), loaded into the running system the way the
launcher loads it: leads triaged and engaged through the API, a campaign with two weeks of metrics per
arm and leads of its own, a possible duplicate waiting for a person; and loading it again (every
restart does) stores nothing twice."""

from __future__ import annotations

import asyncio

import pytest

from marketing_agents.demo import DEMO_CAMPAIGNS, campaign_leads, demo_leads, load_demo_data

pytestmark = pytest.mark.e2e


async def test_the_demo_data_gives_every_console_page_something_to_show(api, db, system):
    await asyncio.to_thread(load_demo_data, system.url, system.dsn, system.admin_key)  # it runs its own loop
    counted = await db.fetchval("SELECT count(*) FROM leads WHERE external_id LIKE 'demo-%'")
    assert counted == len(demo_leads()) + len(campaign_leads(DEMO_CAMPAIGNS[0].id))

    performance = api.get(f"/api/v1/campaigns/{DEMO_CAMPAIGNS[0].id}/performance").json()
    assert {f"{a['arm']['variant']}/{a['arm']['channel']}" for a in performance["arms"]} == {
        "A/email", "B/email", "A/linkedin", "B/linkedin"}
    assert len({d["metric_date"] for d in performance["days"]}) == 14
    arms = await db.fetch("SELECT arm FROM engagement_plans WHERE campaign_id = $1", DEMO_CAMPAIGNS[0].id)
    assert arms and {row["arm"].split("/")[0] for row in arms} <= {"A", "B"}

    steps = api.get(f"/api/v1/campaigns/{DEMO_CAMPAIGNS[0].id}/optimizations").json()["optimizations"]
    assert len(steps) == 1 and steps[0]["status"] in ("applied", "proposed")

    held = api.get("/api/v1/review-queues/HumanReview/leads", params={"limit": 200}).json()["items"]
    assert any(item["external_id"] == "demo-c-again" for item in held)

    await asyncio.to_thread(load_demo_data, system.url, system.dsn, system.admin_key)  # a restart
    assert await db.fetchval("SELECT count(*) FROM leads WHERE external_id LIKE 'demo-%'") == counted
    assert len(api.get(f"/api/v1/campaigns/{DEMO_CAMPAIGNS[0].id}/optimizations").json()["optimizations"]) == 1
