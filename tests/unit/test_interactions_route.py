"""The HTTP shape of POST /api/v1/interactions, with the deployment handle faked (no Ray)."""

from __future__ import annotations

from types import SimpleNamespace
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

from marketing_agents.domain.feedback import (
    InteractionBatchResult,
    InteractionOutcome,
    NewInteraction,
)
from marketing_agents.serve_app.http_errors import install_error_handlers
from marketing_agents.serve_app.interactions import add_interaction_routes

LEAD = str(uuid4())


class FakeHandle:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

        async def record(interaction: NewInteraction) -> InteractionOutcome:
            self.calls.append(("record", interaction))
            return InteractionOutcome(status="stored", lead_id=interaction.lead_id, interaction_id=7,
                                      type=interaction.type, occurred_at=interaction.occurred_at, lead_status="engaged")

        async def record_batch(items: list[dict]) -> InteractionBatchResult:
            self.calls.append(("record_batch", items))
            return InteractionBatchResult(stored=0, duplicates=0, errors=0, results=[])

        self.record = SimpleNamespace(remote=record)
        self.record_batch = SimpleNamespace(remote=record_batch)


def app_with(handle: FakeHandle | None) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    add_interaction_routes(app, SimpleNamespace(_feedback=handle))
    return app


@pytest.fixture
async def client_and_handle():
    handle = FakeHandle()
    transport = httpx.ASGITransport(app=app_with(handle))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client, handle


async def test_one_interaction_goes_to_record_as_a_validated_model(client_and_handle):
    client, handle = client_and_handle
    response = await client.post("/api/v1/interactions", json={"lead_id": LEAD, "type": "click",
                                                               "occurred_at": "2025-03-03T09:00:00+01:00"})
    assert response.status_code == 200, response.text
    assert response.json()["interaction_id"] == 7
    [(method, interaction)] = handle.calls
    assert method == "record" and isinstance(interaction, NewInteraction)


async def test_a_batch_goes_to_record_batch_item_by_item_unvalidated(client_and_handle):
    client, handle = client_and_handle
    items = [{"lead_id": LEAD, "type": "open", "occurred_at": "2025-03-03T09:00:00Z"}, {"type": "nonsense"}]
    response = await client.post("/api/v1/interactions", json={"interactions": items})
    assert response.status_code == 200, response.text
    assert handle.calls == [("record_batch", items)]


@pytest.mark.parametrize(("body", "field"), [
    ({"lead_id": LEAD, "type": "click"}, "interaction.occurred_at"),
    ({"interactions": []}, "batch.interactions"),
    ({"interactions": [{}], "extra": 1}, "batch.extra"),
])
async def test_a_bad_body_is_422_naming_the_field_and_reaches_no_deployment(client_and_handle, body, field):
    client, handle = client_and_handle
    response = await client.post("/api/v1/interactions", json=body)
    assert response.status_code == 422
    assert field in [f["field"] for f in response.json()["error"]["details"]]
    assert handle.calls == []


def test_the_route_is_documented_with_both_request_shapes():
    operation = app_with(FakeHandle()).openapi()["paths"]["/api/v1/interactions"]["post"]
    shapes = operation["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert {s["$ref"].rsplit("/", 1)[1] for s in shapes} == {"NewInteraction", "InteractionBatch"}


def test_without_a_feedback_deployment_there_is_no_route():
    assert "/api/v1/interactions" not in app_with(None).openapi()["paths"]
