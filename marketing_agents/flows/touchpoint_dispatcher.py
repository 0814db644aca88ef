"""The touchpoint dispatcher: delivers due touchpoints from the outbox, each exactly once.

A touchpoint is claimed with ``FOR UPDATE SKIP LOCKED`` (so two dispatchers never take the same one),
checked against the lead's consent at the moment of sending (consent is law, whatever the plan said),
delivered, and marked sent. A failed delivery goes back to pending with an exponential backoff and
its error, until ``max_attempts``; then it is marked failed. A claim older than the lease (its
dispatcher died mid-send) is taken again; the receiver sees the same Message-ID / Idempotency-Key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from marketing_agents.domain import Channel, utc_now
from marketing_agents.domain.engagement import Touchpoint
from marketing_agents.stores.outbound_delivery import DeliveryAdapter, DeliveryError
from marketing_agents.stores.postgres_touchpoints import TouchpointOutbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    first_backoff: timedelta = timedelta(seconds=30)
    lease: timedelta = timedelta(minutes=5)

    def backoff(self, attempts: int) -> timedelta:
        return self.first_backoff * (2 ** max(0, attempts - 1))


class TouchpointDelivery(BaseModel):
    """A touchpoint that left (``sent``) or was given up on after its last attempt (``failed``)."""

    touchpoint_id: UUID
    lead_id: UUID
    plan_id: UUID
    step: int
    channel: Channel
    status: Literal["sent", "failed"]
    attempts: int
    delivery_ref: str | None = None
    error: str | None = None
    at: datetime


class DispatchReport(BaseModel):
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled_for_consent: int = 0
    cancelled_for_status: int = 0
    deliveries: list[TouchpointDelivery] = Field(default_factory=list, description="What was sent or failed, in order.")


# Once a lead talks to people (a reply, a meeting) or has bought, the automated sequence stops: only
# these channels may still go out. Checked at sending time too, for a touchpoint that was mid-send or
# waiting for a retry when the interaction arrived.
CHANNELS_STILL_ALLOWED = {"in_conversation": {Channel.CALL}, "converted": set()}


class TouchpointDispatcher:
    """Sends what is due from the touchpoints outbox, each touchpoint claimed by one dispatcher."""

    def __init__(self, outbox: TouchpointOutbox, adapters: dict[Channel, DeliveryAdapter],
                 retry: RetryPolicy = RetryPolicy()) -> None:
        self._outbox = outbox
        self._adapters = adapters
        self._retry = retry

    async def dispatch_due(self, limit: int = 100) -> DispatchReport:
        report = DispatchReport()
        claimed = await self._outbox.claim_due(limit, self._retry.lease)
        report.claimed = len(claimed)
        for due in claimed:
            touchpoint, lead = due.touchpoint, due.recipient
            if lead is None or not lead.consent.get(touchpoint.channel.value):
                await self._outbox.finish(touchpoint.id, "cancelled", error="no consent for this channel at sending time")
                report.cancelled_for_consent += 1
                continue
            allowed = CHANNELS_STILL_ALLOWED.get(lead.status)
            if allowed is not None and touchpoint.channel not in allowed:
                await self._outbox.finish(touchpoint.id, "cancelled",
                                          error=f"the lead is {lead.status}: the automated sequence stopped")
                report.cancelled_for_status += 1
                continue
            adapter = self._adapters.get(touchpoint.channel)
            try:
                if adapter is None:
                    raise DeliveryError(f"no delivery adapter configured for {touchpoint.channel.value}")
                reference = await adapter.deliver(touchpoint, lead.contact())
            except DeliveryError as exc:
                if due.attempts >= self._retry.max_attempts:
                    await self._outbox.finish(touchpoint.id, "failed", error=str(exc))
                    report.failed += 1
                    report.deliveries.append(_delivery(touchpoint, "failed", due.attempts, error=str(exc)))
                else:
                    await self._outbox.retry_later(touchpoint.id, str(exc), self._retry.backoff(due.attempts))
                    log.info("touchpoint %s will be retried: %s", touchpoint.id, exc)
                    report.retrying += 1
                continue
            await self._outbox.finish(touchpoint.id, "sent", reference=reference)
            report.sent += 1
            report.deliveries.append(_delivery(touchpoint, "sent", due.attempts, reference=reference))
        return report


def _delivery(touchpoint: Touchpoint, status: Literal["sent", "failed"], attempts: int, *, reference: str | None = None,
              error: str | None = None) -> TouchpointDelivery:
    return TouchpointDelivery(touchpoint_id=touchpoint.id, lead_id=touchpoint.lead_id, plan_id=touchpoint.plan_id,
                    step=touchpoint.step, channel=touchpoint.channel, status=status, attempts=attempts,
                    delivery_ref=reference, error=error, at=utc_now())
