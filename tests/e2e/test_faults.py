"""Faults injected into the running system while leads are posted at a steady rate.

PostgreSQL killed with SIGKILL (the postmaster and every backend at once, as a host crash or the OOM
killer would), then started again on the same data directory; the same for Valkey; the memory tier
actors' processes killed (Ray restarts them). Throughout, every request is answered 2xx or 503 with
``Retry-After``, never 500; a refused request retried with its Idempotency-Key is accepted and stored
once; and afterwards every accepted lead is stored whole: triaged, and, if it went to engagement, with
its handoff finished and one plan with its touchpoints. Nothing is half-written.

The tests share the session's system and leave it as they found it: the store is running again (its
new process recorded in the run file, so that ``marketing-agents stop`` stops it) before they assert.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import asyncpg
import httpx
import psutil
import pytest

from marketing_agents.launcher import RunInfo
from marketing_agents.stores.embedded import EmbeddedPostgres, EmbeddedValkey
from tests.e2e.conftest import RunningSystem
from tests.e2e.traffic import LeadTraffic, Post
from tests.support import wait_for

pytestmark = pytest.mark.e2e

SETTLED = {"engaged", "needs_review", "disqualified", "triaged"}


@pytest.fixture
async def http(system: RunningSystem) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system.url, timeout=120,
                                 headers={"Authorization": f"Bearer {system.admin_key}"}) as client:
        yield client


def _kill_tree(pid: int) -> None:
    """SIGKILL to a process and its children, returning once none of them runs. A killed child of the
    launcher stays a zombie until the launcher reaps it, so a zombie counts as gone."""
    root = psutil.Process(pid)
    family = [root, *root.children(recursive=True)]
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=0)

    def gone(process: psutil.Process) -> bool:
        try:
            return process.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + 30
    while not all(gone(p) for p in family):
        assert time.monotonic() < deadline, f"processes still run after SIGKILL: {family}"
        time.sleep(0.05)


def _postgres(system: RunningSystem) -> EmbeddedPostgres:
    return EmbeddedPostgres(system.data_dir / "postgres", "marketing_agents")


def _valkey(system: RunningSystem) -> EmbeddedValkey:
    return EmbeddedValkey(system.data_dir / "valkey", system.valkey_port)


def _record_pids(system: RunningSystem, **pids: int | None) -> None:
    info = RunInfo.read(system.data_dir)
    assert info is not None, "the run file is gone"
    for name, pid in pids.items():
        setattr(info, name, pid)
    info.write()


def kill_postgres(system: RunningSystem) -> None:
    pid = _postgres(system).pid()
    assert pid is not None, "no embedded PostgreSQL runs"
    _kill_tree(pid)
    # The postmaster is no child of ours: its pid is gone once init reaps it. Until then the server
    # wheel, which checks the pid in postmaster.pid, would take it for running and start nothing.
    deadline = time.monotonic() + 30
    while psutil.pid_exists(pid):
        assert time.monotonic() < deadline, f"PostgreSQL's postmaster {pid} was never reaped"
        time.sleep(0.05)


def start_postgres(system: RunningSystem) -> None:
    server = _postgres(system)
    server.start()  # crash recovery from the WAL, as after a power cut
    _record_pids(system, postgres_pid=server.pid())


def kill_valkey(system: RunningSystem) -> None:
    info = RunInfo.read(system.data_dir)
    assert info is not None and info.valkey_pid, "no embedded Valkey runs"
    _kill_tree(int((system.data_dir / "valkey" / "valkey.pid").read_text()))


def start_valkey(system: RunningSystem) -> None:
    server = _valkey(system)
    server.start()  # from its append-only file
    _record_pids(system, valkey_pid=server.pid())


def tier_actor_processes(system: RunningSystem) -> list[psutil.Process]:
    found = []
    for process in system.processes():
        try:
            if "MemoryTierActor" in " ".join(process.cmdline()):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def kill_tier_actors(system: RunningSystem) -> list[int]:
    victims = tier_actor_processes(system)
    assert victims, "no memory tier actor runs"
    for process in victims:
        process.kill()
    psutil.wait_procs(victims, timeout=30)
    return [process.pid for process in victims]


async def posts_through(http: httpx.AsyncClient, label: str, fault: Callable[[], object],
                        recover: Callable[[], object] | None) -> list[Post]:
    """Two clients post leads back to back; the fault strikes once leads flow, and ``recover`` runs once
    a few requests have met it. The traffic goes on until leads are accepted again."""
    traffic = LeadTraffic(http, concurrency=2, label=label)
    posting = asyncio.create_task(traffic.run())
    try:
        await wait_for(lambda: traffic.accepted_started_after(0) >= 5, timeout_s=120)
        struck_at = time.monotonic()
        await asyncio.to_thread(fault)
        await wait_for(lambda: traffic.ended_after(struck_at) >= 4, timeout_s=180)
        if recover is not None:
            await asyncio.to_thread(recover)
        recovered_at = time.monotonic()
        await wait_for(lambda: traffic.accepted_started_after(recovered_at) >= 5, timeout_s=180, interval_s=0.5)
    finally:
        traffic.stop()
        await asyncio.wait_for(posting, timeout=180)
    return traffic.posts


def summary(posts: list[Post]) -> str:
    answers: dict[str, int] = {}
    for post in posts:
        answers[str(post.status)] = answers.get(str(post.status), 0) + 1
    odd = [(p.n, p.status, p.error[:200]) for p in posts if p.status not in (200, 503)][:5]
    return f"{len(posts)} posts, answers {answers}; not 200/503: {odd}"


async def assert_answered_and_stored_whole(traffic_posts: list[Post], http: httpx.AsyncClient, dsn: str,
                                           label: str, expect_refusals: bool) -> None:
    said = summary(traffic_posts)
    print(said)
    assert all(p.status == 200 or (p.status == 503 and p.retry_after) for p in traffic_posts), said
    refused = [p for p in traffic_posts if p.status == 503]
    if expect_refusals:
        assert refused, f"no request met the fault: {said}"
    assert all(int(p.retry_after or 0) >= 1 for p in refused), said

    # A refused request, retried with its key, is accepted now (and stored once, below).
    for post in refused:
        response = await http.post("/api/v1/leads", json=post.body, headers={"Idempotency-Key": post.key})
        assert response.status_code == 200, response.text
        post.status, post.lead_id, post.lead_status = 200, response.json()["lead_id"], response.json()["status"]

    conn = await asyncpg.connect(dsn)
    try:
        query = """
            SELECT l.id::text AS id, l.external_id, l.status,
                   (SELECT count(*) FROM triage_results t WHERE t.lead_id = l.id) AS triages,
                   (SELECT count(*) FROM handoffs h WHERE h.lead_id = l.id) AS handoffs,
                   (SELECT count(*) FROM handoffs h WHERE h.lead_id = l.id AND h.status = 'pending') AS pending,
                   (SELECT count(*) FROM engagement_plans p WHERE p.lead_id = l.id) AS plans,
                   (SELECT count(*) FROM engagement_plans p WHERE p.lead_id = l.id
                      AND NOT EXISTS (SELECT 1 FROM touchpoints tp WHERE tp.plan_id = p.id)) AS empty_plans
              FROM leads l WHERE l.external_id LIKE $1"""

        async def settled() -> list[asyncpg.Record] | None:
            rows = await conn.fetch(query, f"{label}-%")
            return rows if all(r["pending"] == 0 and r["status"] in SETTLED for r in rows) else None

        # Handoffs that a fault interrupted are resumed by recovery once their lease runs out.
        rows = await wait_for(settled, timeout_s=180, interval_s=0.5)
    finally:
        await conn.close()

    stored = {r["external_id"]: r for r in rows}
    sent = {p.body["external_id"]: p for p in traffic_posts}
    assert set(stored) == set(sent), f"stored but never accepted: {set(stored) - set(sent)}; " \
                                     f"accepted but not stored: {set(sent) - set(stored)}"
    for external_id, row in stored.items():
        post = sent[external_id]
        assert row["id"] == post.lead_id, (external_id, row["id"], post.lead_id)
        assert row["triages"] >= 1, dict(row)
        if row["status"] == "engaged":
            assert row["handoffs"] >= 1 and row["plans"] == 1 and row["empty_plans"] == 0, dict(row)
        elif row["status"] == "disqualified":
            assert row["plans"] == 0, dict(row)
    assert any(r["status"] == "engaged" for r in rows), summary(traffic_posts)


async def test_postgres_killed_and_restarted_under_load_answers_200_or_503_and_loses_nothing(
        system: RunningSystem, http: httpx.AsyncClient):
    label = "fault-postgres"
    try:
        posts = await posts_through(http, label, lambda: kill_postgres(system), lambda: start_postgres(system))
    finally:
        if _postgres(system).pid() is None:
            await asyncio.to_thread(start_postgres, system)
    await assert_answered_and_stored_whole(posts, http, system.dsn, label, expect_refusals=True)
    ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text


async def test_valkey_killed_and_restarted_under_load_answers_200_or_503_and_loses_nothing(
        system: RunningSystem, http: httpx.AsyncClient):
    label = "fault-valkey"
    try:
        posts = await posts_through(http, label, lambda: kill_valkey(system), lambda: start_valkey(system))
    finally:
        info = RunInfo.read(system.data_dir)
        if info is None or not psutil.pid_exists(info.valkey_pid or 0):
            await asyncio.to_thread(start_valkey, system)
    await assert_answered_and_stored_whole(posts, http, system.dsn, label, expect_refusals=True)
    ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text


async def test_memory_tier_actors_killed_under_load_come_back_and_no_request_fails(
        system: RunningSystem, http: httpx.AsyncClient):
    label = "fault-tier-actors"
    killed: list[int] = []
    posts = await posts_through(http, label, lambda: killed.extend(kill_tier_actors(system)), None)
    await assert_answered_and_stored_whole(posts, http, system.dsn, label, expect_refusals=False)
    # Ray started each actor again, in a new process.
    restarted = await wait_for(lambda: [p.pid for p in tier_actor_processes(system) if p.pid not in killed],
                               timeout_s=60)
    assert len(restarted) >= 1
