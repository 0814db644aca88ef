"""Handoff latency as the context grows from 1 KB to 10 MB, against passing the same package by value
(the anchor), on a real local Ray cluster.

A handoff here is what the HandoffOrchestrator deployment does: it wraps a real ``HandoffPackage``
(its memory padded to the size) in a ``PackageTransfer`` once, before its first attempt, and calls
the receiving actor, which opens it as the EngagementAgent does (``await transfer.open()``). Below
Ray's 100 KiB inline limit the package rides in the call; above it, it is read by reference from
the object store, where it was put once for every attempt. Also measured: the same package always by
reference (``by_reference``), to show what the inline path saves, and the same call carrying no
package (``empty_call``): the floor any handoff between two actors pays. By value, Ray serialises the
whole package for every call (and, above 100 KiB, puts it into the object store itself on the way).

Targets: handoff p50 under 1 ms up to 100 KB; flat above (p50 at 10 MB within 3x of 100 KB, both by
reference) where the by-value p50 grows. Writes results/bench_handoff.json and .png.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import RESULTS, target, write_result

SIZES = [1_000, 10_000, 100_000, 1_000_000, 10_000_000]
MODES = ("handoff", "by_reference", "by_value", "empty_call")
LABELS = {"handoff": "handoff", "by_reference": "always by reference", "by_value": "by value",
          "empty_call": "the call alone, no package"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="handoffs per size and mode (default 200)")
    args = parser.parse_args()

    from uuid import uuid4

    import numpy as np
    import ray

    from marketing_agents.actors.handoff import HandoffOrchestrator, package_bytes
    from marketing_agents.actors.triage import TriageAgent, TriageThresholds
    from marketing_agents.domain import HandoffPackage, Lead, NewLead
    from marketing_agents.domain.common import utc_now
    from marketing_agents.domain.recall import MemoryRecall
    from marketing_agents.serve_app.package_transfer import PackageTransfer

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)

    @ray.remote
    class Receiver:
        async def plan(self, transfer: PackageTransfer) -> int:
            return len((await transfer.open()).memory.context["notes"])

        async def plan_by_value(self, package: HandoffPackage) -> int:
            return len(package.memory.context["notes"])

        async def empty(self, size: int) -> int:
            return size

    now = utc_now()
    lead = Lead(**NewLead(email="ana@northwind.io", first_name="Ana", last_name="Lima", company="Northwind",
                          job_title="CTO", industry="Software", company_size=800, country="DE",
                          source="demo_request", consent={"email": True}).model_dump(), id=uuid4(), created_at=now)
    triage = TriageAgent(TriageThresholds()).triage(lead, now)
    orchestrator = HandoffOrchestrator(0.6)
    receiver = Receiver.remote()
    figures: dict[str, dict] = {}
    for size in SIZES:
        memory = MemoryRecall(lead_id=lead.id, context={"notes": "x" * size}, elapsed_ms=0.0)
        package = orchestrator.build_package(lead, triage, [], now, memory=memory)
        handoff = PackageTransfer.of(package)  # as the deployment does, once before its attempts
        by_reference = PackageTransfer(package.handoff_id, ref=ray.put(package))
        calls = {"handoff": lambda handoff=handoff: receiver.plan.remote(handoff),
                 "by_reference": lambda by_reference=by_reference: receiver.plan.remote(by_reference),
                 "by_value": lambda package=package: receiver.plan_by_value.remote(package),
                 "empty_call": lambda size=size: receiver.empty.remote(size)}
        timings: dict[str, list[float]] = {mode: [] for mode in MODES}
        for call in calls.values():  # warm-up
            for _ in range(args.calls // 10):
                ray.get(call())
        for _ in range(args.calls):
            for mode, call in calls.items():
                started = time.perf_counter()
                assert ray.get(call()) == size
                timings[mode].append((time.perf_counter() - started) * 1000)
        row = {mode: {"p50_ms": statistics.median(ms), "p95_ms": float(np.percentile(ms, 95)),
                      "mean_ms": statistics.fmean(ms)} for mode, ms in timings.items()}
        row["package_bytes"] = package_bytes(package)
        row["handoff_by_reference"] = handoff.by_reference
        row["ratio_p50"] = row["handoff"]["p50_ms"] / row["by_value"]["p50_ms"]
        figures[str(size)] = row
        print(f"{size / 1000:>8,.0f} KB  handoff p50 {row['handoff']['p50_ms']:.3f} ms "
              f"({'by reference' if handoff.by_reference else 'in the call'})"
              f"   always by reference {row['by_reference']['p50_ms']:.3f} ms"
              f"   by value {row['by_value']['p50_ms']:.3f} ms   empty call {row['empty_call']['p50_ms']:.3f} ms")
    ray.shutdown()

    p50 = {size: figures[str(size)]["handoff"]["p50_ms"] for size in SIZES}
    value_p50 = {size: figures[str(size)]["by_value"]["p50_ms"] for size in SIZES}
    targets = {
        "small": target("handoff p50 (ms), worst of 1 KB..100 KB", max(p50[s] for s in SIZES[:3]), 1.0,
                        at_least=False),
        "flat": target("handoff p50 at 10 MB / at 100 KB", p50[10_000_000] / p50[100_000], 3.0, at_least=False),
        "value_grows": target("by-value p50 at 10 MB / at 100 KB (anchor grows)",
                              value_p50[10_000_000] / value_p50[100_000], 3.0),
    }
    write_result("bench_handoff", {"calls": args.calls, "sizes": figures}, targets)
    plot(figures)
    return 0


def plot(figures: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for mode, colour, style in (("handoff", "tab:blue", "o-"), ("by_reference", "tab:cyan", "s:"),
                                ("by_value", "grey", "o-"), ("empty_call", "black", "--")):
        ax.plot(SIZES, [figures[str(s)][mode]["p50_ms"] for s in SIZES], style, color=colour,
                label=f"{LABELS[mode]} (p50)")
    ax.set(xscale="log", yscale="log", xlabel="context size (bytes)", ylabel="handoff latency (ms)",
           title="Handoff latency by context size")
    ax.axhline(1.0, color="tab:red", linestyle=":", label="1 ms target (up to 100 KB)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "bench_handoff.png", dpi=110)
    print("wrote benchmarks/results/bench_handoff.png")


if __name__ == "__main__":
    raise SystemExit(main())
