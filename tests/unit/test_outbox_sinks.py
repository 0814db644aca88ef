"""The local receivers (`make run`): a redelivery is filed once, under the touchpoint's id, through the
real adapters; a request that is not a touchpoint writes nothing, anywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import httpx
import pytest

from marketing_agents.domain import Channel
from marketing_agents.domain.engagement import Touchpoint
from marketing_agents.sinks import OutboxSinks
from marketing_agents.stores.outbound_delivery import SmtpDelivery, WebhookDelivery
from tests.support import free_port


@pytest.fixture
def sinks(tmp_path):
    sinks = OutboxSinks(tmp_path / "outbox", free_port(), free_port())
    sinks.start()
    yield sinks
    sinks.stop()


def touchpoint(channel: Channel) -> Touchpoint:
    return Touchpoint(id=uuid4(), lead_id=uuid4(), plan_id=uuid4(), step=0, channel=channel, template="connect",
                      subject="Hello" if channel is Channel.EMAIL else None, body="Hi Ann",
                      scheduled_at=datetime.now(UTC))


async def test_a_touchpoint_delivered_twice_is_filed_once_under_its_id(sinks):
    email, sms = touchpoint(Channel.EMAIL), touchpoint(Channel.SMS)
    smtp = SmtpDelivery("127.0.0.1", sinks.smtp_port, "marketing@example.com")
    hook = WebhookDelivery(sinks.webhook_url)
    for _ in range(2):  # as after a crash between the receiver accepting it and the outcome being recorded
        await smtp.deliver(email, {"email": "ann@acme-robotics.com"})
        await hook.deliver(sms, {"email": "ann@acme-robotics.com"})
    assert sorted(p.name for p in sinks.outbox.iterdir()) == sorted([f"{email.id}.eml", f"{sms.id}.json"])


@pytest.mark.parametrize("key", ["../../escaped", "/tmp/escaped", "request", ""])
def test_a_webhook_request_without_a_touchpoint_key_is_refused_and_writes_nothing(sinks, tmp_path, key):
    headers = {"Idempotency-Key": key} if key else {}
    answer = httpx.post(sinks.webhook_url, json={"touchpoint": {}}, headers=headers)
    assert answer.status_code == 400
    assert list(sinks.outbox.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["outbox"]


def test_a_webhook_request_that_is_not_json_is_refused(sinks):
    answer = httpx.post(sinks.webhook_url, content=b"{not json", headers={"Idempotency-Key": str(uuid4())})
    assert answer.status_code == 400 and list(sinks.outbox.iterdir()) == []
