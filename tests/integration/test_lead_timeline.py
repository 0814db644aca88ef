"""A lead's interaction timeline over REST (``GET /api/v1/leads/{id}/interactions``), through the
gateway's whole app over real PostgreSQL: newest first, bounded by ``limit``, and personal data, so for
the roles that may export a lead, as through MCP."""

from __future__ import annotations

import uuid

import pytest

from tests.gateway_support import gateway_app
from tests.support import lead_payload


@pytest.fixture
async def gateway(migrated, pool, repository):
    async with gateway_app(migrated, pool, repository, models=None, rate_limit_per_minute=1_000_000) as gateway:
        yield gateway


async def test_the_timeline_is_newest_first_bounded_and_for_deciders_only(gateway):
    async with gateway.client() as admin:
        lead = (await admin.post("/api/v1/leads", json=lead_payload(
            email=f"timeline-{uuid.uuid4().hex[:8]}@acme-robotics.com"))).json()["lead_id"]
        for day, kind in (("01", "open"), ("03", "reply"), ("02", "click")):
            stored = await admin.post("/api/v1/interactions", json={
                "lead_id": lead, "type": kind, "channel": "email", "occurred_at": f"2026-11-{day}T09:00:00Z"})
            assert stored.status_code in (200, 201), stored.text
        timeline = await admin.get(f"/api/v1/leads/{lead}/interactions", params={"limit": 2})
        assert timeline.status_code == 200, timeline.text
        assert [i["type"] for i in timeline.json()["items"]] == ["reply", "click"]
        assert (await admin.get(f"/api/v1/leads/{uuid.uuid4()}/interactions")).status_code == 404
        assert (await admin.get(f"/api/v1/leads/{lead}/interactions", params={"limit": 501})).status_code == 422
        viewer = (await admin.post("/api/v1/keys", json={"name": "timeline viewer", "role": "viewer"})).json()["key"]
    async with gateway.client(viewer) as client:
        assert (await client.get(f"/api/v1/leads/{lead}/interactions")).status_code == 403
