"""Helpers shared by the test suites: ports, payloads, real embedded stores, polling with a deadline."""

from __future__ import annotations

import asyncio
import inspect
import socket
from datetime import timedelta
from pathlib import Path

from marketing_agents.actors.engagement import EngagementAgent
from marketing_agents.actors.handoff import HandoffOrchestrator, HandoffRetry
from marketing_agents.actors.triage import TriageAgent, TriageThresholds
from marketing_agents.domain import utc_now
from marketing_agents.flows.lead_orchestrator import LeadOrchestrator
from marketing_agents.memory.event_bus import EventBus
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.settings import Settings
from marketing_agents.stores.embedded import EmbeddedPostgres, EmbeddedValkey


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lead_payload(**overrides: object) -> dict:
    """A valid ``POST /api/v1/leads`` body; override any field."""
    payload = {
        "email": "jane.doe@acme-robotics.com",
        "first_name": "Jane",
        "last_name": "Doe",
        "company": "Acme Robotics",
        "job_title": "VP Marketing",
        "industry": "Manufacturing",
        "company_size": 850,
        "country": "DE",
        "source": "demo_request",
        "consent": {"email": True, "linkedin": True, "call": True},
        "attributes": {"utm_campaign": "q4-launch"},
    }
    payload.update(overrides)
    return payload


async def fresh_database(stores: EmbeddedStores, name: str) -> str:
    """An empty database on the session's PostgreSQL; returns its DSN."""
    import asyncpg

    admin = await asyncpg.connect(stores.dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return stores.dsn.replace("/marketing_agents?", f"/{name}?", 1)


class EmbeddedStores:
    """A real PostgreSQL and a real Valkey for one test session, in a temporary data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.postgres = EmbeddedPostgres(data_dir / "postgres", "marketing_agents")
        self.valkey = EmbeddedValkey(data_dir / "valkey", free_port())
        self.data_dir = data_dir

    def start(self) -> None:
        self.dsn = self.postgres.start()
        self.redis_url = self.valkey.start()

    def stop(self) -> None:
        self.valkey.stop()
        self.postgres.stop()

    def settings(self, **overrides: object) -> Settings:
        values = {"data_dir": self.data_dir, "postgres_dsn": self.dsn, "redis_url": self.redis_url, **overrides}
        return Settings(**values)


async def wait_for(predicate, timeout_s: float = 30.0, interval_s: float = 0.2):
    """Polls ``predicate`` until it returns something truthy; the deadline bounds it, not a guess."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)


class InProcessAgents:
    """The agents' plain classes behind the same ports the Serve deployments fill."""

    def __init__(self, min_quality: float = 0.6, triage_delay=timedelta(0), fail_engagement: int = 0) -> None:
        """``fail_engagement``: how many times the engagement agent fails before it answers."""
        self.triage_agent = TriageAgent(TriageThresholds())
        self.orchestrator = HandoffOrchestrator(min_quality, HandoffRetry(attempts=3, first_backoff_s=0.0))
        self.engagement = EngagementAgent()
        self.triage_delay = triage_delay
        self.fail_engagement = fail_engagement
        self.engagement_calls = 0

    async def triage(self, lead, duplicate_of=None):
        enrichment = self.triage_agent.enricher.enrich(lead, duplicate_of)
        return self.triage_agent.triage(lead, utc_now() - self.triage_delay, enrichment)

    async def prepare(self, lead, triage, provenance, memory=None, campaign=None):
        return self.orchestrator.prepare(lead, triage, provenance, memory, utc_now(), campaign)

    async def deliver(self, package):
        async def send(package):
            self.engagement_calls += 1
            if self.engagement_calls <= self.fail_engagement:
                raise RuntimeError("engagement replica died")
            return self.engagement.plan(package, utc_now())

        return await self.orchestrator.deliver(package, send)

    def intake(self, repository, short_term, memory=None, events=None) -> LeadOrchestrator:
        """``events``: by default a bus over the same Redis as ``short_term``, as the Serve deployment wires it."""
        if events is None and isinstance(short_term, ShortTermMemory):
            events = EventBus(short_term.store, short_term.policy)
        return LeadOrchestrator(self.triage, self.prepare, self.deliver, repository, short_term, memory=memory,
                                events=events)
