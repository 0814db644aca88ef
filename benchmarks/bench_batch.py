"""Batch scoring through `ray job submit`, against the same model's predict_proba in one process.

Generates N synthetic leads as Parquet (the seed's 5,000,000 by default; ``--rows 1000000`` for the
distributed issue's figure), trains a small model, then:

- anchor: ``Scorer.predict_proba`` over the same rows in this process, no I/O timed (one core);
- the job: a fresh local Ray head (``ray start --head``, 2 CPUs, its own temp dir) and
  ``ray job submit --working-dir . -- python -m marketing_agents.jobs.batch_score ...``, timed from
  submission to the job's end, with the peak memory (PSS) of every process of that Ray session,
  sampled every 0.2 s;
- the job's output compared with the anchor's probabilities row for row.

Targets: the job at least 50 % of two cores' worth of the anchor (rows/s >= 0.5 x 2 x anchor);
5,000,000 leads in under 2 minutes; peak memory under 3 GiB. Writes results/bench_batch.json and .png.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from common import REPO, RESULTS, free_port, target, write_result

CHUNK = 250_000


def generate(rows: int, directory: Path) -> list[Path]:
    from marketing_agents.scoring_models.synthetic import generate_leads

    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for n, start in enumerate(range(0, rows, CHUNK)):
        frame = generate_leads(min(CHUNK, rows - start), seed=1000 + n).drop(columns=["converted"])
        frame["lead_id"] = [f"lead-{start + i:08d}" for i in range(len(frame))]
        path = directory / f"part-{n:04d}.parquet"
        frame.to_parquet(path, index=False)
        files.append(path)
        print(f"\rgenerated {min(start + CHUNK, rows):,}/{rows:,} leads", end="", flush=True)
    print()
    return files


def anchor(model_dir: Path, files: list[Path]) -> tuple[float, dict[str, float]]:
    """Seconds of predict_proba alone over every row, and the probabilities by lead id."""
    import pandas as pd

    from marketing_agents.scoring_models import Scorer

    scorer = Scorer.load(model_dir)
    seconds, probabilities = 0.0, {}
    for path in files:
        frame = pd.read_parquet(path)
        started = time.perf_counter()
        p = scorer.predict_proba(frame)
        seconds += time.perf_counter() - started
        probabilities.update(zip(frame["lead_id"], p, strict=True))
    return seconds, probabilities


def _kind(process) -> str:
    """What a process of the Ray session is, for the breakdown: its title (``ray::ScoreBatch``, ``raylet``)."""
    cmdline = process.cmdline()
    if "marketing_agents.jobs.batch_score" in " ".join(cmdline):
        return "job driver"
    title = cmdline[0] if cmdline else process.name()
    return title.split()[0].rsplit("/", 1)[-1][:40] if not title.startswith("ray::") else title.split()[0][:40]


class PeakMemory:
    """The peak of the summed PSS of the processes whose command line names ``marker`` (the Ray session's
    temp dir) and all their descendants (the workers, the job's driver), each counted once. PSS splits
    each shared page (the object store's memory, shared libraries) among the processes that map it,
    so the sum is the memory the session really holds, where a sum of RSS would count it many times."""

    def __init__(self, marker: str) -> None:
        self.marker, self.peak, self._stop = marker, 0, threading.Event()
        self.at_peak: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(0.2):
                return

    def sample(self) -> int:
        """One reading: the summed PSS now (and, at a new peak, what each kind of process held)."""
        import psutil

        seen: dict[int, tuple[str, int]] = {}
        for process in psutil.process_iter(["cmdline"]):
            try:
                if self.marker not in " ".join(process.info["cmdline"] or []):
                    continue
                for member in (process, *process.children(recursive=True)):  # workers are raylet's children
                    if member.pid not in seen:
                        seen[member.pid] = (_kind(member), member.memory_full_info().pss)
            except psutil.Error:
                continue
        total = sum(pss for _, pss in seen.values())
        if total > self.peak:
            self.peak, self.at_peak = total, defaultdict(int)
            for kind, pss in seen.values():
                self.at_peak[kind] += pss
        return total

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_job(input_dir: Path, output_dir: Path, model_dir: Path, work: Path) -> tuple[float, PeakMemory, int, str]:
    """Starts a Ray head, submits the job, returns (seconds, its memory readings, the idle session's
    bytes, job log tail)."""
    ray_bin = Path(sys.executable).with_name("ray")
    temp_dir = work / "ray"
    dashboard_port = free_port()
    # Token authentication stays on: the head and the submitting client share a fresh token.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
        # The job's `python` is this environment's, as it is for a user with the venv activated.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run([str(ray_bin), "start", "--head", "--num-cpus", "2", "--port", str(free_port()),
                    "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port),
                    "--temp-dir", str(temp_dir), "--disable-usage-stats"],
                   check=True, env=env, capture_output=True, text=True)
    report = work / "job-report.json"
    try:
        idle = PeakMemory(str(temp_dir)).sample()  # the session before the job: what any job starts from
        with PeakMemory(str(temp_dir)) as memory:
            started = time.perf_counter()
            job = subprocess.run(
                [str(ray_bin), "job", "submit", "--address", f"http://127.0.0.1:{dashboard_port}",
                 "--working-dir", str(REPO), "--",
                 "python", "-m", "marketing_agents.jobs.batch_score", "--input", str(input_dir),
                 "--output", str(output_dir), "--model", str(model_dir), "--id", "lead_id",
                 "--report", str(report)],
                env=env, capture_output=True, text=True, timeout=1800, check=False)
            seconds = time.perf_counter() - started
        if job.returncode != 0:
            raise SystemExit(f"the job failed ({job.returncode}):\n{job.stdout[-3000:]}\n{job.stderr[-3000:]}")
        return seconds, memory, idle, job.stdout[-1500:]
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], env=env, capture_output=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000, help="leads to score (default: the seed's 5,000,000)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data and output")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from marketing_agents.scoring_models.synthetic import generate_leads
    from marketing_agents.scoring_models.training import train_frame

    work = Path(tempfile.mkdtemp(prefix="mas-bench-batch-"))
    try:
        files = generate(args.rows, work / "leads")
        model_dir = work / "model"
        train_frame(generate_leads(20_000, seed=7), "converted", model_dir, id_column="lead_id", cv=3)
        anchor_s, expected = anchor(model_dir, files)
        anchor_rate = args.rows / anchor_s
        print(f"anchor: predict_proba over {args.rows:,} rows in one process: {anchor_s:.1f} s "
              f"({anchor_rate:,.0f} rows/s)")
        job_s, memory, idle, log_tail = run_job(work / "leads", work / "scores", model_dir, work)
        peak = memory.peak
        job_rate = args.rows / job_s
        at_peak = {kind: round(pss / 2**30, 3) for kind, pss in sorted(memory.at_peak.items(), key=lambda kv: -kv[1])}
        print(f"job: {args.rows:,} rows in {job_s:.1f} s ({job_rate:,.0f} rows/s), peak memory "
              f"{peak / 2**30:.2f} GiB (the idle session before it: {idle / 2**30:.2f} GiB); at the peak, GiB: "
              + ", ".join(f"{kind} {gib}" for kind, gib in list(at_peak.items())[:6]))
        out = pd.read_parquet(work / "scores")
        matches = len(out) == args.rows and bool(np.allclose(
            out["probability"].to_numpy(), np.array([expected[i] for i in out["lead_id"]]), rtol=0, atol=1e-12))
        print(f"output matches the one-process scores row for row: {matches}")
        per_5m = 5_000_000 / job_rate
        figures = {
            "rows": args.rows, "anchor_seconds": anchor_s, "anchor_rows_per_s": anchor_rate,
            "job_seconds": job_s, "job_rows_per_s": job_rate,
            "ratio_to_two_cores_of_anchor": job_rate / (2 * anchor_rate),
            "peak_memory_gib": peak / 2**30, "idle_session_gib": idle / 2**30, "peak_by_process_gib": at_peak,
            "output_matches": matches, "seconds_for_5m_at_this_rate": per_5m,
            "job_log_tail": log_tail,
        }
        targets = {
            "throughput": target("job rows/s / (2 x anchor rows/s)", job_rate / (2 * anchor_rate), 0.5),
            "five_million": target("seconds for 5,000,000 leads at the measured rate", per_5m, 120, at_least=False),
            "memory": target("peak memory of the Ray session (GiB)", peak / 2**30, 3.0, at_least=False),
            "matches": target("output equals the one-process scores (1 = yes)", float(matches), 1.0),
        }
        write_result("bench_batch", figures, targets)
        plot(figures)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def plot(figures: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    bars = {"anchor (1 core)": figures["anchor_rows_per_s"], "anchor x 2 cores": 2 * figures["anchor_rows_per_s"],
            "ray job (2 CPUs)": figures["job_rows_per_s"]}
    ax.bar(list(bars), list(bars.values()), color=["grey", "lightgrey", "tab:blue"])
    ax.set(ylabel="rows per second", title=f"Batch scoring, {figures['rows']:,} leads")
    fig.tight_layout()
    fig.savefig(RESULTS / "bench_batch.png", dpi=110)
    print("wrote benchmarks/results/bench_batch.png")


if __name__ == "__main__":
    raise SystemExit(main())
