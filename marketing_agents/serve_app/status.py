"""What ``GET /api/v1/system/status`` and ``/readyz`` report: Ray nodes, deployments, stores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, Field

from marketing_agents.stores.connections import StoreHealth

APP_NAME = "marketing_agents"
READINESS_CACHE_S = 1.0  # /readyz asks the stores and Ray at most once in this time, however often it is called


class NodeStatus(BaseModel):
    node_id: str
    address: str
    alive: bool
    is_head: bool
    resources: dict[str, float]


class DeploymentState(BaseModel):
    name: str
    status: str
    running_replicas: int
    replica_states: dict[str, int]
    message: str = ""


class SystemStatus(BaseModel):
    status: str = Field(description="'ok' when every store and deployment is healthy, else 'degraded'.")
    version: str
    application: str
    application_status: str
    nodes: list[NodeStatus]
    deployments: list[DeploymentState]
    stores: list[StoreHealth]


class Readiness(BaseModel):
    ready: bool
    problems: list[str]


def collect_nodes(raw_nodes: list[dict]) -> list[NodeStatus]:
    return [
        NodeStatus(
            node_id=node["NodeID"],
            address=node.get("NodeManagerAddress", ""),
            alive=bool(node.get("Alive")),
            is_head=any(key.startswith("node:__internal_head__") for key in node.get("Resources", {})),
            resources={k: float(v) for k, v in node.get("Resources", {}).items() if not k.startswith("node:")},
        )
        for node in raw_nodes
    ]


def collect_deployments(serve_status: object) -> tuple[str, list[DeploymentState]]:
    app = getattr(serve_status, "applications", {}).get(APP_NAME)
    if app is None:
        return "NOT_STARTED", []
    deployments = [
        DeploymentState(
            name=name,
            status=str(getattr(d.status, "value", d.status)),
            running_replicas=int(d.replica_states.get("RUNNING", 0)),
            replica_states={str(k): int(v) for k, v in d.replica_states.items()},
            message=d.message or "",
        )
        for name, d in app.deployments.items()
    ]
    return str(getattr(app.status, "value", app.status)), sorted(deployments, key=lambda d: d.name)


def problems_of(status: SystemStatus) -> list[str]:
    problems = [f"store {s.name} unhealthy: {s.error}" for s in status.stores if not s.healthy]
    if status.application_status != "RUNNING":
        problems.append(f"application {status.application} is {status.application_status}")
    problems += [f"deployment {d.name} is {d.status}" for d in status.deployments if d.status != "HEALTHY"]
    return problems


class CachedStatus:
    """The system status for ``/readyz``, asked for at most once per ``ttl_s``.

    ``/readyz`` is public (probes send no key), so without this anyone could make every request a round
    of pings to every store and to Ray. Callers that come while a status is being asked for wait for that
    one; a status that could not be had (an exception) is not kept, so the next caller asks again.
    """

    def __init__(self, fetch: Callable[[], Awaitable[SystemStatus]], ttl_s: float = READINESS_CACHE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self.ttl_s = ttl_s
        self._clock = clock
        self._value: SystemStatus | None = None
        self._expires = 0.0
        self._pending: asyncio.Future[SystemStatus] | None = None

    async def get(self) -> SystemStatus:
        if self._value is not None and self._clock() < self._expires:
            return self._value
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._pending)

    async def _refresh(self) -> SystemStatus:
        try:
            value = await self._fetch()
            self._value, self._expires = value, self._clock() + self.ttl_s
            return value
        finally:
            self._pending = None
