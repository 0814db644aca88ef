"""The touchpoint dispatcher as a Serve deployment: it drains the outbox on its own schedule.

Each touchpoint sent or given up on is announced after it is recorded: ``touchpoint.sent`` /
``touchpoint.failed`` on the ``touchpoints`` topic and on the lead's own (``lead:<id>``).
"""

from __future__ import annotations

import asyncio
import logging

from ray import serve

from marketing_agents import metrics
from marketing_agents.domain import Channel
from marketing_agents.errors import StorageError
from marketing_agents.flows.touchpoint_dispatcher import DispatchReport, TouchpointDispatcher
from marketing_agents.memory.event_bus import EventBus, OutgoingEvent, publish_after_commit
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.settings import Settings, get_settings
from marketing_agents.stores.connection_budget import budgeted
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.outbound_delivery import SmtpDelivery, WebhookDelivery
from marketing_agents.stores.postgres_touchpoints import TouchpointOutbox
from marketing_agents.stores.redis import RedisShortTermStore

log = logging.getLogger(__name__)


def delivery_adapters(settings: Settings) -> dict:
    adapters: dict = {Channel.EMAIL: SmtpDelivery(settings.smtp_host, settings.smtp_port, settings.mail_from)}
    if settings.webhook_url:
        hook = WebhookDelivery(settings.webhook_url)
        adapters.update({c: hook for c in Channel if c is not Channel.EMAIL})
    return adapters


def delivery_events(report: DispatchReport) -> list[OutgoingEvent]:
    """One event per delivery in the report, in order, on the shared topic and on the lead's."""
    return [OutgoingEvent(("touchpoints", f"lead:{delivery.lead_id}"), f"touchpoint.{delivery.status}",
                          delivery.model_dump(mode="json")) for delivery in report.deliveries]


async def announce(events: EventBus, report: DispatchReport) -> None:
    """One delivery at a time, so that a failure to announce one names the touchpoint it was about."""
    for event in delivery_events(report):
        await publish_after_commit(events, [event], f"touchpoint {event.payload['touchpoint_id']}")


@serve.deployment(name="TouchpointDispatcher")
class TouchpointDispatcherDeployment:
    async def __init__(self) -> None:  # type: ignore[misc]  # Ray Serve awaits an async __init__
        self._settings = budgeted(get_settings(), "TouchpointDispatcher")
        self._stores = StoreConnections(self._settings)
        self._dispatcher: TouchpointDispatcher | None = None
        self._events: EventBus | None = None
        every = self._settings.dispatch_every_s
        self._loop = asyncio.get_running_loop().create_task(self._every(every)) if every else None

    async def _every(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            try:
                report = await self.dispatch_now()
                if report.claimed:
                    log.info("dispatched: %s", report.model_dump_json(exclude={"deliveries"}))
            except Exception:
                log.exception("dispatching failed; due touchpoints stay in the outbox for the next round")

    async def dispatch_now(self) -> DispatchReport:
        if self._dispatcher is None:
            outbox = TouchpointOutbox(await self._stores.pool())
            self._dispatcher = TouchpointDispatcher(outbox, delivery_adapters(self._settings))
        report = await self._dispatcher.dispatch_due()
        metrics.touchpoints_dispatched(report.model_dump(exclude={"claimed", "deliveries"}))
        if report.deliveries:
            try:
                if self._events is None:
                    self._events = EventBus(RedisShortTermStore(self._stores.redis()),
                                            TtlPolicy.from_settings(self._settings))
            except StorageError as exc:
                log.warning("%d deliveries recorded but not announced: %s", len(report.deliveries), exc)
            else:
                await announce(self._events, report)
        return report
