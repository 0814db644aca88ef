"""The touchpoint dispatcher as a Serve deployment: it drains the outbox on its own schedule.

Each touchpoint sent or given up on is announced after it is recorded: ``touchpoint.sent`` /
``touchpoint.failed`` on the ``touchpoints`` topic and on the lead's own (``lead:<id>``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray import serve

from marketing_agents import metrics
from marketing_agents.stores.outbound_delivery import SmtpDelivery, WebhookDelivery
from marketing_agents.flows.touchpoint_dispatcher import TouchpointDispatcher, DispatchReport
from marketing_agents.domain import Channel
from marketing_agents.errors import StorageError
from marketing_agents.memory.short_term import ShortTermMemory, TtlPolicy
from marketing_agents.settings import Settings, get_settings
from marketing_agents.stores.connection_budget import budgeted
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.postgres_touchpoints import TouchpointOutbox
from marketing_agents.stores.redis import RedisShortTermStore

log = logging.getLogger(__name__)


def delivery_adapters(settings: Settings) -> dict:
    adapters: dict = {Channel.EMAIL: SmtpDelivery(settings.smtp_host, settings.smtp_port, settings.mail_from)}
    if settings.webhook_url:
        hook = WebhookDelivery(settings.webhook_url)
        adapters.update({c: hook for c in Channel if c is not Channel.EMAIL})
    return adapters


def touchpoint_events(report: DispatchReport) -> list[tuple[str, str, dict[str, Any]]]:
    """(topic, type, payload) for each delivery in the report, in order: the shared topic, then the lead's."""
    events = []
    for delivery in report.deliveries:
        payload = delivery.model_dump(mode="json")
        kind = f"touchpoint.{delivery.status}"
        events += [("touchpoints", kind, payload), (f"lead:{delivery.lead_id}", kind, payload)]
    return events


async def announce(short_term: ShortTermMemory, report: DispatchReport) -> None:
    """Events only tell others sooner: the deliveries are already recorded, so a failure is logged."""
    for topic, kind, payload in touchpoint_events(report):
        try:
            await short_term.publish(topic, kind, payload)
        except StorageError as exc:
            log.warning("touchpoint %s recorded but %s not announced: %s", payload["touchpoint_id"], kind, exc)


@serve.deployment(name="TouchpointDispatcher")
class TouchpointDispatcherDeployment:
    async def __init__(self) -> None:
        self._settings = budgeted(get_settings(), "TouchpointDispatcher")
        self._stores = StoreConnections(self._settings)
        self._dispatcher: TouchpointDispatcher | None = None
        self._short_term: ShortTermMemory | None = None
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
            self._dispatcher = TouchpointDispatcher(TouchpointOutbox(await self._stores.pool()), delivery_adapters(self._settings))
        report = await self._dispatcher.dispatch_due()
        metrics.touchpoints_dispatched(report.model_dump(exclude={"claimed", "deliveries"}))
        if report.deliveries:
            try:
                if self._short_term is None:
                    self._short_term = ShortTermMemory(RedisShortTermStore(self._stores.redis()),
                                                       TtlPolicy.from_settings(self._settings))
            except StorageError as exc:
                log.warning("%d deliveries recorded but not announced: %s", len(report.deliveries), exc)
            else:
                await announce(self._short_term, report)
        return report
