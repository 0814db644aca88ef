"""The touchpoint dispatcher as a Serve deployment: it drains the outbox on its own schedule."""

from __future__ import annotations

import asyncio
import logging

from ray import serve

from marketing_agents import metrics
from marketing_agents.actors.delivery import SmtpDelivery, WebhookDelivery
from marketing_agents.actors.dispatcher import Dispatcher, DispatchReport
from marketing_agents.domain import Channel
from marketing_agents.settings import Settings, get_settings
from marketing_agents.stores.connections import StoreConnections

log = logging.getLogger(__name__)


def delivery_adapters(settings: Settings) -> dict:
    adapters: dict = {Channel.EMAIL: SmtpDelivery(settings.smtp_host, settings.smtp_port, settings.mail_from)}
    if settings.webhook_url:
        hook = WebhookDelivery(settings.webhook_url)
        adapters.update({c: hook for c in Channel if c is not Channel.EMAIL})
    return adapters


@serve.deployment(name="TouchpointDispatcher")
class TouchpointDispatcherDeployment:
    async def __init__(self) -> None:
        self._settings = get_settings().model_copy(update={"postgres_pool_size": 4})
        self._stores = StoreConnections(self._settings)
        self._dispatcher: Dispatcher | None = None
        every = self._settings.dispatch_every_s
        self._loop = asyncio.get_running_loop().create_task(self._every(every)) if every else None

    async def _every(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            try:
                report = await self.dispatch_now()
                if report.claimed:
                    log.info("dispatched: %s", report.model_dump_json())
            except Exception:
                log.exception("dispatching failed; due touchpoints stay in the outbox for the next round")

    async def dispatch_now(self) -> DispatchReport:
        if self._dispatcher is None:
            self._dispatcher = Dispatcher(await self._stores.pool(), delivery_adapters(self._settings))
        report = await self._dispatcher.dispatch_due()
        metrics.touchpoints_dispatched(report.model_dump(exclude={"claimed"}))
        return report
