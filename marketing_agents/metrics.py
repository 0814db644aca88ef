"""The agents' metrics, as Ray metrics: they show on the Ray dashboard and in its Prometheus export.

Ray prefixes every name with ``ray_`` when exporting (``mas_handoffs_total`` is scraped as
``ray_mas_handoffs_total``). Metrics are created on first use inside a Ray process; elsewhere (a unit
test, a CLI command) recording is a no-op, because there is no Ray metrics agent to report to.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

import ray

# Milliseconds: a handoff takes about one, a retried one seconds.
LATENCY_MS_BOUNDARIES = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]
QUALITY_BOUNDARIES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


class _Metrics:
    def __init__(self) -> None:
        from ray.util.metrics import Counter, Histogram

        self.handoffs = Counter("mas_handoffs_total", "Handoffs by outcome (pending, completed, rejected, "
                                "dead_lettered) and receiving agent.", tag_keys=("status", "to_agent"))
        self.handoff_latency_ms = Histogram("mas_handoff_latency_ms", "From sending a handoff package to the "
                                            "receiver's plan, retries included.", LATENCY_MS_BOUNDARIES,
                                            tag_keys=("outcome",))
        self.handoff_attempts = Counter("mas_handoff_attempts_total", "Calls to the receiving agent, "
                                        "first tries and retries.", tag_keys=("outcome",))
        self.handoff_quality = Histogram("mas_handoff_quality", "Quality score of handoff packages (0..1).",
                                         QUALITY_BOUNDARIES, tag_keys=("accepted",))
        self.lead_stage_ms = Histogram("mas_lead_stage_ms", "How long each stage of a new lead took (admit, triage, "
                                       "recall, handoff_prepare, store, handoff_deliver, handoff_complete).",
                                       LATENCY_MS_BOUNDARIES, tag_keys=("stage",))
        self.optimizations = Counter("mas_optimizations_total", "Campaign optimizations by what became of them "
                                     "(applied, proposed, approved, rolled_back).", tag_keys=("status",))
        self.escalations = Counter("mas_escalations_total", "Escalations opened for a human, by kind.",
                                   tag_keys=("kind",))
        self.touchpoints = Counter("mas_touchpoints_total", "Touchpoints by delivery result (sent, retrying, "
                                   "failed, cancelled_for_consent, cancelled_for_status).", tag_keys=("result",))


@cache
def _metrics() -> _Metrics:
    return _Metrics()


def _enabled() -> bool:
    return ray.is_initialized()


def handoff_prepared(status: str, to_agent: str, quality: float) -> None:
    if _enabled():
        m = _metrics()
        m.handoffs.inc(tags={"status": status, "to_agent": to_agent})
        m.handoff_quality.observe(quality, tags={"accepted": str(status == "pending").lower()})


def handoff_delivered(delivered: bool, attempts: int, latency_ms: float, to_agent: str) -> None:
    if _enabled():
        m = _metrics()
        outcome = "completed" if delivered else "dead_lettered"
        m.handoffs.inc(tags={"status": outcome, "to_agent": to_agent})
        m.handoff_latency_ms.observe(latency_ms, tags={"outcome": outcome})
        m.handoff_attempts.inc(attempts, tags={"outcome": outcome})


def touchpoints_dispatched(counts: dict[str, int]) -> None:
    if _enabled():
        for result, n in counts.items():
            if n:
                _metrics().touchpoints.inc(n, tags={"result": result})


def lead_stage(stage: str, ms: float) -> None:
    if _enabled():
        _metrics().lead_stage_ms.observe(ms, tags={"stage": stage})


def optimization(status: str, escalation_kinds: Iterable[str] = ()) -> None:
    if _enabled():
        m = _metrics()
        m.optimizations.inc(tags={"status": status})
        for kind in escalation_kinds:
            m.escalations.inc(tags={"kind": kind})
