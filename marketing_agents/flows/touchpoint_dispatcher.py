"""The touchpoint dispatcher: delivers due touchpoints from the outbox.

A touchpoint is claimed with ``FOR UPDATE SKIP LOCKED`` (so two dispatchers never take the same one),
then held (its row locked) while it is checked against the lead as it is at that moment (consent is
law, whatever the plan said; an erased lead has nothing left to send) and delivered, and its outcome is
recorded before the lock is let go. A failed delivery goes back to pending with an exponential backoff
and its error, until ``max_attempts``; then it is marked failed.

Delivery is exactly once among dispatchers that stay alive: a claim whose lease ran out is taken again
under a new claim id, and the dispatcher that lost it finds the row no longer its own and does not send
it, while a row being sent is locked and skipped by the other's claim. It is *at least once* across a
crash between the receiver accepting a touchpoint and the outcome being recorded (the dispatcher died,
or PostgreSQL went away): nothing was recorded, so the touchpoint is sent again after its lease. For
that case every adapter gives the receiver an idempotency key that is the touchpoint's id, the same on
every attempt (the email's Message-ID and X-Touchpoint-Id, the webhook's Idempotency-Key), so that the
receiver can recognise the redelivery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from marketing_agents.domain import Channel, utc_now
from marketing_agents.errors import StorageError
from marketing_agents.stores.outbound_delivery import DeliveryAdapter, DeliveryError
from marketing_agents.stores.postgres_touchpoints import DueTouchpoint, HeldTouchpoint, Recipient, TouchpointOutbox

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
    no_longer_claimed: int = Field(default=0, description=(
        "Claimed, then not sent because by their turn they were no longer this dispatcher's: cancelled by an "
        "unsubscribe, erased with their lead, or claimed again by another dispatcher after the lease ran out."))
    unrecorded: int = Field(default=0, description=(
        "Their outcome could not be recorded (PostgreSQL failed): still `sending`, due again after the lease."))
    deliveries: list[TouchpointDelivery] = Field(default_factory=list, description="What was sent or failed, in order.")


# Once a lead talks to people (a reply, a meeting) or has bought, the automated sequence stops: only
# these channels may still go out. Checked at sending time too, for a touchpoint that was mid-send or
# waiting for a retry when the interaction arrived.
CHANNELS_STILL_ALLOWED = {"in_conversation": {Channel.CALL}, "converted": set()}


class TouchpointDispatcher:
    """Sends what is due from the touchpoints outbox, each touchpoint claimed by one dispatcher.

    Each touchpoint is its own unit: whatever goes wrong with one (a stored row that is not a valid
    touchpoint, a message that cannot be built, an adapter that raises anything at all) fails that
    touchpoint, counted against its attempts, and the batch goes on with the next.
    """

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
            try:
                await self._dispatch(due, report)
            except Exception as exc:  # noqa: BLE001 - a failure to record one touchpoint is not the batch's
                # Whatever was or was not sent, nothing was recorded: the touchpoint stays `sending` and is
                # claimed again once its lease runs out (the receiver sees the same idempotency key).
                if isinstance(exc, StorageError):
                    log.warning("touchpoint %s: outcome not recorded, due again after its lease: %s", due.id, exc)
                else:
                    log.error("touchpoint %s: recording its outcome raised %s; due again after its lease",
                              due.id, type(exc).__name__)
                report.unrecorded += 1
        return report

    async def _dispatch(self, due: DueTouchpoint, report: DispatchReport) -> None:
        async with self._outbox.hold(due) as held:
            if held is None:
                report.no_longer_claimed += 1
                return
            try:
                stop = why_not_now(due.channel, held.recipient)
                reference = None if stop else await self._deliver(due, held.recipient)
            except Exception as exc:  # noqa: BLE001 - any failure is this touchpoint's, never the batch's
                await self._failed(held, due, _reason(due, exc), report)
                return
            if stop is not None:
                counter, reason = stop
                await held.finish("cancelled", error=reason)
                setattr(report, counter, getattr(report, counter) + 1)
                return
            await held.finish("sent", reference=reference)
            report.sent += 1
            if (delivery := _delivery(due, "sent", reference=reference)) is not None:
                report.deliveries.append(delivery)

    async def _deliver(self, due: DueTouchpoint, lead: Recipient) -> str:
        if due.touchpoint is None:
            raise DeliveryError(due.unreadable or "the stored touchpoint is not valid")
        adapter = self._adapters.get(due.touchpoint.channel)
        if adapter is None:
            raise DeliveryError(f"no delivery adapter configured for {due.channel}")
        return await adapter.deliver(due.touchpoint, lead.contact())

    async def _failed(self, held: HeldTouchpoint, due: DueTouchpoint, error: str, report: DispatchReport) -> None:
        if due.attempts >= self._retry.max_attempts:
            await held.finish("failed", error=error)
            report.failed += 1
            if (delivery := _delivery(due, "failed", error=error)) is not None:
                report.deliveries.append(delivery)
        else:
            await held.retry_later(error, self._retry.backoff(due.attempts))
            log.info("touchpoint %s will be retried (attempt %d failed)", due.id, due.attempts)
            report.retrying += 1


def why_not_now(channel: str, lead: Recipient) -> tuple[Literal["cancelled_for_consent", "cancelled_for_status"],
                                                        str] | None:
    """Why the lead, as it is now, may not get a touchpoint on this channel (the report's counter and the
    reason stored), or None when it may. Consent that cannot be read (a row written by hand) is none."""
    consent = lead.consent if isinstance(lead.consent, dict) else {}
    if consent.get(channel) is not True:
        return "cancelled_for_consent", "no consent for this channel at sending time"
    allowed = CHANNELS_STILL_ALLOWED.get(lead.status)
    if allowed is not None and channel not in {c.value for c in allowed}:
        return "cancelled_for_status", f"the lead is {lead.status}: the automated sequence stopped"
    return None


def _reason(due: DueTouchpoint, exc: Exception) -> str:
    """What is stored as the touchpoint's last error. A DeliveryError says what happened; any other
    exception is a defect, logged by its type only (its message may quote the lead's data; the outbox,
    which holds that data anyway, keeps the message)."""
    if isinstance(exc, DeliveryError):
        return str(exc)
    log.error("delivering touchpoint %s raised %s", due.id, type(exc).__name__)
    return f"delivery raised {type(exc).__name__}: {exc}"


def _delivery(due: DueTouchpoint, status: Literal["sent", "failed"], *, reference: str | None = None,
              error: str | None = None) -> TouchpointDelivery | None:
    """The delivery as announced; None for a stored row whose channel is not a channel (nothing to announce
    it on: its failure is in the outbox and the report's counts)."""
    if due.channel not in {c.value for c in Channel}:
        return None
    return TouchpointDelivery(touchpoint_id=due.id, lead_id=due.lead_id, plan_id=due.plan_id, step=due.step,
                              channel=Channel(due.channel), status=status, attempts=due.attempts,
                              delivery_ref=reference, error=error, at=utc_now())
