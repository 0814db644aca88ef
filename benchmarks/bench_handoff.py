"""Handoff latency as the context grows from 1 KB to 10 MB: by reference through the object store,
against passing the same object by value (the anchor), on a real local Ray cluster.

A handoff here is what HandoffOrchestrator does: the receiving actor is called with a small wrapper
holding the package's ObjectRef (``PackageRef``) and reads the package from the object store. The
package is already in the object store when the handoff starts (the sender put it there once; a
retry or a second receiver reuses it), so the by-reference path pays only the call and the read.
By value, the call carries the whole package: Ray serialises it for every call (and, above its
inline limit of 100 KB, puts it into the object store itself on the way).

Targets: p50 under 1 ms up to 100 KB; flat above (p50 at 10 MB within 3x of 100 KB) where the
by-value p50 grows. Writes results/bench_handoff.json and .png.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

from common import RESULTS, target, write_result

SIZES = [1_000, 10_000, 100_000, 1_000_000, 10_000_000]


@dataclass(frozen=True)
class PackageRef:
    ref: object  # an ObjectRef inside a dataclass: Ray passes it through instead of resolving it


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="handoffs per size and mode (default 200)")
    args = parser.parse_args()

    import numpy as np
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)

    @ray.remote
    class Receiver:
        def by_reference(self, package_ref: PackageRef) -> int:
            package = ray.get(package_ref.ref)
            return len(package["context"])

        def by_value(self, package: dict) -> int:
            return len(package["context"])

    receiver = Receiver.remote()
    ray.get(receiver.by_value.remote({"context": b"warm-up"}))
    figures: dict[str, dict] = {}
    rng = np.random.default_rng(0)
    for size in SIZES:
        package = {"lead_id": "x", "context": rng.integers(0, 256, size, dtype=np.uint8).tobytes()}
        ref = ray.put(package)
        timings = {"by_reference": [], "by_value": []}
        for _ in range(args.calls // 10):  # warm-up
            ray.get(receiver.by_reference.remote(PackageRef(ref)))
            ray.get(receiver.by_value.remote(package))
        for _ in range(args.calls):
            started = time.perf_counter()
            assert ray.get(receiver.by_reference.remote(PackageRef(ref))) == size
            timings["by_reference"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            assert ray.get(receiver.by_value.remote(package)) == size
            timings["by_value"].append((time.perf_counter() - started) * 1000)
        figures[str(size)] = {
            mode: {"p50_ms": statistics.median(ms), "p95_ms": float(np.percentile(ms, 95)),
                   "mean_ms": statistics.fmean(ms)} for mode, ms in timings.items()}
        figures[str(size)]["ratio_p50"] = figures[str(size)]["by_reference"]["p50_ms"] / \
            figures[str(size)]["by_value"]["p50_ms"]
        print(f"{size / 1000:>8,.0f} KB  by reference p50 {figures[str(size)]['by_reference']['p50_ms']:.3f} ms"
              f"   by value p50 {figures[str(size)]['by_value']['p50_ms']:.3f} ms"
              f"   ratio {figures[str(size)]['ratio_p50']:.2f}")
    ray.shutdown()

    p50 = {size: figures[str(size)]["by_reference"]["p50_ms"] for size in SIZES}
    targets = {
        "small": target("by-reference p50 (ms), worst of 1 KB..100 KB", max(p50[s] for s in SIZES[:3]), 1.0,
                        at_least=False),
        "flat": target("by-reference p50 at 10 MB / at 100 KB", p50[10_000_000] / p50[100_000], 3.0,
                       at_least=False),
        "value_grows": target("by-value p50 at 10 MB / at 100 KB (anchor grows)",
                              figures["10000000"]["by_value"]["p50_ms"] / figures["100000"]["by_value"]["p50_ms"],
                              3.0),
    }
    write_result("bench_handoff", {"calls": args.calls, "sizes": figures}, targets)
    plot(figures)
    return 0


def plot(figures: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for mode, colour in (("by_reference", "tab:blue"), ("by_value", "grey")):
        ax.plot(SIZES, [figures[str(s)][mode]["p50_ms"] for s in SIZES], "o-", color=colour,
                label=f"{mode.replace('_', ' ')} (p50)")
    ax.set(xscale="log", yscale="log", xlabel="context size (bytes)", ylabel="handoff latency (ms)",
           title="Handoff latency by context size")
    ax.axhline(1.0, color="tab:red", linestyle=":", label="1 ms target (up to 100 KB)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "bench_handoff.png", dpi=110)
    print("wrote benchmarks/results/bench_handoff.png")


if __name__ == "__main__":
    raise SystemExit(main())
