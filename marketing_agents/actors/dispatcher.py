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

import asyncpg
from pydantic import BaseModel, Field

from marketing_agents.actors.delivery import DeliveryAdapter, DeliveryError
from marketing_agents.domain import Channel, utc_now
from marketing_agents.domain.engagement import Touchpoint
from marketing_agents.stores.postgres import translated_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    first_backoff: timedelta = timedelta(seconds=30)
    lease: timedelta = timedelta(minutes=5)

    def backoff(self, attempts: int) -> timedelta:
        return self.first_backoff * (2 ** max(0, attempts - 1))


class Delivery(BaseModel):
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
    deliveries: list[Delivery] = Field(default_factory=list, description="What was sent or failed, in order.")


# Once a lead talks to people (a reply, a meeting) or has bought, the automated sequence stops: only
# these channels may still go out. Checked at sending time too, for a touchpoint that was mid-send or
# waiting for a retry when the interaction arrived.
CHANNELS_STILL_ALLOWED = {"in_conversation": {Channel.CALL}, "converted": set()}


_CLAIM = """
UPDATE touchpoints t SET status = 'sending', attempts = t.attempts + 1, claimed_at = now()
FROM (SELECT id FROM touchpoints
      WHERE (status = 'pending' AND coalesce(next_attempt_at, scheduled_at) <= now())
         OR (status = 'sending' AND claimed_at < now() - $2::interval)
      ORDER BY coalesce(next_attempt_at, scheduled_at) LIMIT $1 FOR UPDATE SKIP LOCKED) due
WHERE t.id = due.id
RETURNING t.*
"""


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, adapters: dict[Channel, DeliveryAdapter],
                 retry: RetryPolicy = RetryPolicy()) -> None:
        self._pool = pool
        self._adapters = adapters
        self._retry = retry

    async def dispatch_due(self, limit: int = 100) -> DispatchReport:
        report = DispatchReport()
        async with translated_errors("claim due touchpoints"):
            claimed = await self._pool.fetch(_CLAIM, limit, self._retry.lease)
            leads = {r["id"]: r for r in await self._pool.fetch(
                "SELECT id, email, first_name, last_name, company, consent, status FROM leads WHERE id = ANY($1::uuid[])",
                list({row["lead_id"] for row in claimed}))}
        report.claimed = len(claimed)
        for row in claimed:
            touchpoint = Touchpoint.model_validate({k: row[k] for k in Touchpoint.model_fields})
            lead = leads.get(row["lead_id"])
            if lead is None or not lead["consent"].get(touchpoint.channel.value):
                await self._finish(touchpoint, "cancelled", error="no consent for this channel at sending time")
                report.cancelled_for_consent += 1
                continue
            allowed = CHANNELS_STILL_ALLOWED.get(lead["status"])
            if allowed is not None and touchpoint.channel not in allowed:
                await self._finish(touchpoint, "cancelled",
                                   error=f"the lead is {lead['status']}: the automated sequence stopped")
                report.cancelled_for_status += 1
                continue
            adapter = self._adapters.get(touchpoint.channel)
            try:
                if adapter is None:
                    raise DeliveryError(f"no delivery adapter configured for {touchpoint.channel.value}")
                reference = await adapter.deliver(touchpoint, {k: lead[k] for k in
                                                               ("email", "first_name", "last_name", "company")})
            except DeliveryError as exc:
                if row["attempts"] >= self._retry.max_attempts:
                    await self._finish(touchpoint, "failed", error=str(exc))
                    report.failed += 1
                    report.deliveries.append(_delivery(touchpoint, "failed", row["attempts"], error=str(exc)))
                else:
                    await self._retry_later(touchpoint, row["attempts"], str(exc))
                    report.retrying += 1
                continue
            await self._finish(touchpoint, "sent", reference=reference)
            report.sent += 1
            report.deliveries.append(_delivery(touchpoint, "sent", row["attempts"], reference=reference))
        return report

    async def _finish(self, touchpoint: Touchpoint, status: str, *, error: str | None = None,
                      reference: str | None = None) -> None:
        async with translated_errors("record a delivery"):
            await self._pool.execute(
                """UPDATE touchpoints SET status = $2, last_error = $3, delivery_ref = $4,
                          sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END
                   WHERE id = $1 AND status = 'sending'""",
                touchpoint.id, status, error, reference)

    async def _retry_later(self, touchpoint: Touchpoint, attempts: int, error: str) -> None:
        async with translated_errors("reschedule a delivery"):
            await self._pool.execute(
                """UPDATE touchpoints SET status = 'pending', last_error = $2, next_attempt_at = now() + $3::interval
                   WHERE id = $1 AND status = 'sending'""",
                touchpoint.id, error, self._retry.backoff(attempts))
        log.info("touchpoint %s will be retried: %s", touchpoint.id, error)


def _delivery(touchpoint: Touchpoint, status: str, attempts: int, *, reference: str | None = None,
              error: str | None = None) -> Delivery:
    return Delivery(touchpoint_id=touchpoint.id, lead_id=touchpoint.lead_id, plan_id=touchpoint.plan_id,
                    step=touchpoint.step, channel=touchpoint.channel, status=status, attempts=attempts,
                    delivery_ref=reference, error=error, at=utc_now())
