"""``/readyz`` is public: a flood of it must reach the stores and Ray at most once a second."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import httpx
import pytest

from marketing_agents.serve_app.gateway import build_api
from marketing_agents.serve_app.status import READINESS_CACHE_S, CachedStatus, SystemStatus
from marketing_agents.settings import Settings
from marketing_agents.stores.connections import StoreConnections


def status(application_status: str = "RUNNING") -> SystemStatus:
    return SystemStatus(status="ok", version="t", application="marketing_agents",
                        application_status=application_status, nodes=[], deployments=[], stores=[])


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_readyz_asks_for_the_system_status_at_most_once_per_interval():
    calls = 0

    async def system_status() -> SystemStatus:
        nonlocal calls
        calls += 1
        return status()

    present = object()
    gateway = SimpleNamespace(_mcp=None, _models=present, _campaigns=present, _feedback=None, _dispatcher=present,
                              _orchestrator=present, _consolidator=present, _stores=StoreConnections(Settings()),
                              _max_body_bytes=1024 * 1024, system_status=system_status)
    app = build_api(gateway)
    started = time.monotonic()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        answers = [await client.get("/readyz") for _ in range(30)]
    elapsed = time.monotonic() - started
    assert {a.status_code for a in answers} == {200} and answers[0].json() == {"ready": True, "problems": []}
    assert 1 <= calls <= 1 + int(elapsed / READINESS_CACHE_S), (calls, elapsed)


async def test_concurrent_callers_share_one_fetch_and_a_stale_status_is_fetched_again():
    clock = Clock()
    calls = 0
    started, release = asyncio.Event(), asyncio.Event()

    async def fetch() -> SystemStatus:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return status("DEPLOYING" if calls > 1 else "RUNNING")

    cached = CachedStatus(fetch, ttl_s=1.0, clock=clock)
    waiting = [asyncio.ensure_future(cached.get()) for _ in range(50)]
    await started.wait()  # every get above ran before the fetch they share started
    release.set()
    answers = await asyncio.gather(*waiting)
    assert calls == 1 and {a.application_status for a in answers} == {"RUNNING"}
    clock.now += 0.9
    assert (await cached.get()).application_status == "RUNNING" and calls == 1
    clock.now += 0.1
    assert (await cached.get()).application_status == "DEPLOYING" and calls == 2


async def test_a_failed_fetch_is_not_kept():
    calls = 0

    async def fetch() -> SystemStatus:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("ray is starting")
        return status()

    cached = CachedStatus(fetch, clock=Clock())
    with pytest.raises(ConnectionError):
        await cached.get()
    assert (await cached.get()).application_status == "RUNNING" and calls == 2
