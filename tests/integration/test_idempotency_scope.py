"""Idempotency keys are the client's own names, scoped to the calling API key and the endpoint: through
the gateway's whole app (in-process ASGI, access control, real PostgreSQL and Valkey), two keys that
chose the same name get their own leads, and so does one key using a name on two endpoints, while a
key that repeats its own request still gets its first answer."""

from __future__ import annotations

import uuid

import pytest

from tests.gateway_support import gateway_app
from tests.support import lead_payload


@pytest.fixture
async def gateway(migrated, pool, repository):
    async with gateway_app(migrated, pool, repository, models=None) as gateway:
        yield gateway


def lead() -> dict:
    return lead_payload(email=f"idem-{uuid.uuid4().hex[:10]}@acme-robotics.com")


async def service_key(admin) -> str:
    created = await admin.post("/api/v1/keys", json={"name": f"idem-{uuid.uuid4().hex[:8]}", "role": "service"})
    assert created.status_code == 201, created.text
    return created.json()["key"]


async def test_two_keys_choosing_the_same_idempotency_key_get_their_own_leads(gateway):
    name = {"Idempotency-Key": f"order-{uuid.uuid4().hex[:6]}"}
    async with gateway.client() as admin:
        first_key, second_key = await service_key(admin), await service_key(admin)
    async with gateway.client(first_key) as first, gateway.client(second_key) as second:
        mine = await first.post("/api/v1/leads", json=lead(), headers=name)
        theirs = await second.post("/api/v1/leads", json=lead(), headers=name)
        assert mine.status_code == theirs.status_code == 200, (mine.text, theirs.text)
        assert mine.json()["lead_id"] != theirs.json()["lead_id"], "one key got the other's stored answer"


async def test_a_resent_request_gets_its_first_answer_and_the_name_is_free_on_another_endpoint(gateway):
    name = {"Idempotency-Key": f"form-{uuid.uuid4().hex[:6]}"}
    body = lead()
    async with gateway.client() as admin:
        key = await service_key(admin)
    async with gateway.client(key) as client:
        first = await client.post("/api/v1/leads", json=body, headers=name)
        resent = await client.post("/api/v1/leads", json=body, headers=name)
        assert first.status_code == resent.status_code == 200
        assert resent.json()["lead_id"] == first.json()["lead_id"]
        batch = await client.post("/api/v1/leads:batch", json={"leads": [lead()]}, headers=name)
        assert batch.status_code == 200, batch.text
        (item,) = batch.json()["results"]
        assert item["result"]["lead_id"] != first.json()["lead_id"]
