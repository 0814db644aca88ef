"""Killing the engagement replica in the middle of a handoff, on a real Ray cluster with Serve.

The handoff orchestrator and engagement agent run as the real Serve deployments; a gate actor holds
the first engagement call inside the replica so that the test kills it mid-handoff, not before or
after. The lead ends fully engaged (the retry reaches the replica Serve starts in its place) with
exactly one plan, or, had every attempt failed, rolled back to review; never half.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from ray import serve

from marketing_agents.domain import NewLead
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.serve_app.agents import EngagementAgentDeployment, HandoffOrchestratorDeployment
from marketing_agents.stores.redis import RedisShortTermStore
from tests.support import InProcessAgents, lead_payload

REPO = Path(__file__).resolve().parents[2]
APP = "handoff-death"


@ray.remote
class Gate:
    """Counts engagement calls across replicas and tells the test when the first one is inside."""

    def __init__(self) -> None:
        self.replicas: list[tuple[str, ray.actor.ActorHandle]] = []  # (actor id, handle) per call
        self.first_inside = asyncio.Event()

    async def enter(self, actor_id: str, replica) -> int:
        self.replicas.append((actor_id, replica))
        if len(self.replicas) == 1:
            self.first_inside.set()
        return len(self.replicas)

    async def first_replica_inside(self):
        await self.first_inside.wait()
        return self.replicas[0][1]

    def calls(self) -> list[str]:
        return [actor_id for actor_id, _ in self.replicas]


@serve.deployment(name="EngagementAgent")
class GatedEngagement(EngagementAgentDeployment.func_or_class):
    def __init__(self, gate) -> None:
        super().__init__()
        self._gate = gate

    async def plan(self, package_ref):
        context = ray.get_runtime_context()
        if await self._gate.enter.remote(context.get_actor_id(), context.current_actor) == 1:
            await asyncio.Event().wait()  # the first call stays inside until its replica is killed
        return await super().plan(package_ref)


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={
        "env_vars": {"PYTHONPATH": str(REPO), "MAS_HANDOFF_ATTEMPTS": "8", "MAS_HANDOFF_FIRST_BACKOFF_S": "0.25"}})
    serve.start(proxy_location="Disabled")
    yield
    serve.shutdown()
    ray.shutdown()


async def test_killing_the_engagement_replica_mid_handoff_ends_fully_engaged_once(cluster, pool, repository,
                                                                                   redis_client):
    gate = Gate.remote()
    handoff = serve.run(HandoffOrchestratorDeployment.bind(GatedEngagement.bind(gate)), name=APP, route_prefix=None)
    agents = InProcessAgents()
    intake = agents.intake(repository, ShortTermMemory(RedisShortTermStore(redis_client)))
    intake._deliver = lambda package: handoff.deliver.remote(package)

    submitted = asyncio.create_task(intake.submit(NewLead(**lead_payload(email="killed-mid-handoff@acme.io"))))
    replica = await gate.first_replica_inside.remote()
    lead_id = await pool.fetchval("SELECT id FROM leads WHERE email = 'killed-mid-handoff@acme.io'")
    assert await pool.fetchval("SELECT status FROM handoffs WHERE lead_id = $1", lead_id) == "pending", \
        "the handoff is stored before the package reaches the receiver"
    ray.kill(replica, no_restart=True)
    result = await asyncio.wait_for(submitted, timeout=120)

    calls = await gate.calls.remote()
    assert len(calls) >= 2 and calls[-1] != calls[0], "retried on the replica Serve started in the dead one's place"
    assert result.status == "engaged" and result.engagement_plan is not None
    handoff_row = await pool.fetchrow("SELECT status, attempts FROM handoffs WHERE lead_id = $1", lead_id)
    assert handoff_row["status"] == "completed" and handoff_row["attempts"] >= 2
    assert await pool.fetchval("SELECT count(*) FROM engagement_plans WHERE lead_id = $1", lead_id) == 1
    touchpoints = await pool.fetchval("SELECT count(*) FROM touchpoints WHERE lead_id = $1", lead_id)
    assert touchpoints == len(result.engagement_plan.touchpoints) >= 1
    assert await pool.fetchval("SELECT status FROM leads WHERE id = $1", lead_id) == "engaged"
