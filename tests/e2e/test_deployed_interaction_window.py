"""The interaction window on the running system (issue 14, item 2): the EngagementFeedback deployment
bounds occurred_at by the setting ``interactions_earliest`` and caps the new monthly partitions of a
batch by ``max_new_partitions_per_request``, both at their defaults here (2000-01-01 and 24)."""

from __future__ import annotations

import uuid

import pytest

from tests.support import lead_payload

pytestmark = pytest.mark.e2e


def new_lead(api) -> str:
    response = api.post("/api/v1/leads", json=lead_payload(email=f"win.{uuid.uuid4().hex[:8]}@acme-robotics.com"))
    assert response.status_code == 200, response.text
    return response.json()["lead_id"]


async def test_the_deployment_refuses_dates_before_the_earliest_and_batches_over_too_many_new_months(api, db):
    lead_id = new_lead(api)

    early = api.post("/api/v1/interactions", json={"lead_id": lead_id, "type": "open",
                                                   "occurred_at": "1999-12-31T00:00:00Z"})
    assert early.status_code == 422, early.text
    assert [f["field"] for f in early.json()["error"]["details"]] == ["interaction.occurred_at"]

    spread = [f"{2004 + k // 12}-{k % 12 + 1:02d}-15T00:00:00Z" for k in range(30)]
    batch = api.post("/api/v1/interactions", json={"interactions": [
        {"lead_id": lead_id, "type": "open", "occurred_at": at} for at in spread]})
    assert batch.status_code == 422, batch.text
    assert [f["field"] for f in batch.json()["error"]["details"]] == ["batch.interactions"]

    assert await db.fetchval("SELECT count(*) FROM interactions WHERE lead_id = $1", uuid.UUID(lead_id)) == 0
    assert await db.fetchval("SELECT to_regclass('interactions_1999_12') IS NULL")
    assert await db.fetchval("SELECT to_regclass('interactions_2004_01') IS NULL")
