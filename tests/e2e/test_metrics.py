"""The agents' metrics reach Ray's Prometheus export while the system runs: what the dashboard shows."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import lead_payload, wait_for


def scrape(port: int) -> dict[str, list]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def total(samples: list, name: str, **labels: str) -> float:
    return sum(s.value for s in samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


async def test_handoff_and_delivery_metrics_show_in_the_ray_prometheus_export(api, system):
    def completed_handoffs() -> float:
        return total(scrape(system.metrics_port).get("ray_mas_handoffs", []), "ray_mas_handoffs_total",
                     status="completed", to_agent="EngagementAgent")

    before = completed_handoffs()
    response = api.post("/api/v1/leads", json=lead_payload(email="metrics@acme-robotics.com"))
    assert response.status_code == 200 and response.json()["status"] == "engaged"

    # Ray's metrics agent exports on its own schedule (every few seconds): poll with a deadline.
    await wait_for(lambda: completed_handoffs() >= before + 1, timeout_s=60)
    families = scrape(system.metrics_port)
    latency = families["ray_mas_handoff_latency_ms"]
    assert total(latency, "ray_mas_handoff_latency_ms_count", outcome="completed") >= 1
    quality = families["ray_mas_handoff_quality"]
    assert total(quality, "ray_mas_handoff_quality_count", accepted="true") >= 1
    stages = {s.labels["stage"] for s in families["ray_mas_lead_stage_ms"]
              if s.name == "ray_mas_lead_stage_ms_count" and s.value >= 1}
    assert stages >= {"admit", "triage", "recall", "handoff_prepare", "store", "handoff_deliver", "handoff_complete"}
    # The first touchpoint is due at once: the dispatcher sends it and counts it.
    await wait_for(lambda: total(scrape(system.metrics_port).get("ray_mas_touchpoints", []),
                                 "ray_mas_touchpoints_total", result="sent") >= 1, timeout_s=60)
