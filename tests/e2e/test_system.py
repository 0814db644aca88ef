"""Status, health, readiness and API docs of the running system; then its whole lifecycle."""

from __future__ import annotations

import uuid

import httpx
import psutil
import pytest

from tests.support import lead_payload, wait_for

pytestmark = pytest.mark.e2e

DEPLOYMENTS = {"ApiGateway", "LeadOrchestrator", "TriageAgent", "HandoffOrchestrator", "EngagementAgent",
               "MemoryConsolidator", "TouchpointDispatcher", "EngagementFeedback", "CampaignOptimizer",
               "McpServer"}


def test_status_reports_nodes_deployments_with_replicas_and_stores(api):
    status = api.get("/api/v1/system/status").json()
    assert status["status"] == "ok"
    assert status["application_status"] == "RUNNING"
    assert any(node["alive"] and node["is_head"] and node["resources"]["CPU"] > 0 for node in status["nodes"])
    assert {d["name"] for d in status["deployments"]} == DEPLOYMENTS
    assert all(d["status"] == "HEALTHY" and d["running_replicas"] >= 1 for d in status["deployments"])
    stores = {s["name"]: s for s in status["stores"]}
    assert stores["postgres"]["healthy"] and stores["redis"]["healthy"]
    assert stores["postgres"]["latency_ms"] >= 0


def test_health_and_readiness(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"ready": True, "problems": []}


def test_openapi_describes_the_lead_endpoints_with_their_models(api):
    spec = api.get("/openapi.json").json()
    post = spec["paths"]["/api/v1/leads"]["post"]
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("LeadProcessingResult")
    assert {"400", "409", "413", "422"} <= set(post["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert api.get("/docs").status_code == 200


async def test_readiness_fails_when_a_store_goes_down_and_recovers(system, api):
    """Valkey stopped under the running system: /readyz says which store, then recovers on restart.
    Its answer is kept for a second (``serve_app.status.READINESS_CACHE_S``), so each is awaited."""
    from marketing_agents.launcher import RunInfo

    def readiness(status: int) -> httpx.Response | None:
        response = api.get("/readyz", timeout=30)
        return response if response.status_code == status else None

    info = RunInfo.read(system.data_dir)
    valkey = psutil.Process(info.valkey_pid)
    valkey.suspend()
    try:
        response = await wait_for(lambda: readiness(503), timeout_s=60)
        assert response.headers["Retry-After"] == "5"
        assert any("redis" in problem for problem in response.json()["problems"])
    finally:
        valkey.resume()
    await wait_for(lambda: readiness(200), timeout_s=60)


def our_processes_gone(processes: list[psutil.Process]) -> bool:
    _gone, alive = psutil.wait_procs(processes, timeout=60)
    return not alive


def test_ctrl_c_and_stop_leave_nothing_running_and_a_restart_keeps_the_leads(system):
    with httpx.Client(base_url=system.url, timeout=60, headers={"Authorization": f"Bearer {system.admin_key}"}) as api:
        lead_id = api.post("/api/v1/leads", json=lead_payload(email=f"keep.{uuid.uuid4().hex[:6]}@acme.io")).json()["lead_id"]

    before = system.processes()
    assert len(before) >= 5, "launcher, Ray processes, Valkey and PostgreSQL"
    assert system.interrupt() == 0
    assert our_processes_gone(before), [p.cmdline()[:3] for p in before if p.is_running()]

    system.start()
    with httpx.Client(base_url=system.url, timeout=60, headers={"Authorization": f"Bearer {system.admin_key}"}) as api:
        assert api.get(f"/api/v1/leads/{lead_id}").status_code == 200

    before = system.processes()
    stopped = system.stop_command()
    assert stopped.returncode == 0, stopped.stderr
    assert our_processes_gone(before)
    assert not (system.data_dir / "run.json").exists()

    system.start()  # leave the session's system running for whatever runs next
    with httpx.Client(base_url=system.url, timeout=60, headers={"Authorization": f"Bearer {system.admin_key}"}) as api:
        assert api.get(f"/api/v1/leads/{lead_id}").status_code == 200


def test_the_starter_knowledge_graph_was_loaded_at_start(system):
    import asyncio

    import asyncpg

    async def counts():
        conn = await asyncpg.connect(system.dsn)
        try:
            return await conn.fetchval("SELECT count(*) FROM kg_nodes"), await conn.fetchval("SELECT count(*) FROM kg_edges")
        finally:
            await conn.close()

    nodes, edges = asyncio.run(counts())
    assert nodes >= 30 and edges >= 100


def test_consolidation_on_demand_runs_in_the_cluster(api):
    first = api.post("/api/v1/memory/consolidate", params={"as_of": "2026-06-30"})
    assert first.status_code == 200, first.text
    report = first.json()
    assert report["as_of"] == "2026-06-30" and report["elapsed_s"] >= 0
    again = api.post("/api/v1/memory/consolidate", params={"as_of": "2026-06-30"}).json()
    assert again["episodes_written"] == 0, "a second run finds nothing new"
