"""Writes the table of the latest results into benchmarks/README.md, from results/*.json.

`make bench` runs it after the scripts; run it alone to refresh the table from the JSON files.
The table sits between two marker lines in the README; the prose around it is left alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from common import RESULTS

README = Path(__file__).resolve().parent / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
ORDER = ["bench_leads", "bench_batch", "bench_handoff", "bench_graph", "bench_memory", "bench_console", "bench_optimizer"]


def _number(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table() -> str:
    rows = ["| benchmark | target | measured | threshold | met | run at (machine) |", "|---|---|---|---|---|---|"]
    for name in ORDER:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            rows.append(f"| {name} | (not run yet) | | | | |")
            continue
        result = json.loads(path.read_text())
        machine = result["machine"]
        where = f"{machine['at'][:16].replace('T', ' ')} ({machine['cpus']} CPUs, {machine['memory_gib']} GiB)"
        for key, t in result["targets"].items():
            if t.get("value") is None:  # not measured (e.g. a backend that could not start), with its reason
                rows.append(f"| {name} | {t.get('description', key)} | not measured {t.get('reason', '')} | "
                            f"{_number(t['threshold']) if t.get('threshold') is not None else ''} | **no** | {where} |")
                continue
            at_least = t.get("at_least", (t["value"] >= t["threshold"]) == t["met"])
            sign = "≥" if at_least else "≤"
            rows.append(f"| {name} | {t['description']} | {_number(t['value'])} | {sign} {_number(t['threshold'])} "
                        f"| {'yes' if t['met'] else '**no**'} | {where} |")
    return "\n".join(rows)


def main() -> int:
    text = README.read_text()
    if BEGIN not in text:
        text = text.rstrip() + f"\n\n## Latest results\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{table()}\n{END}{tail}")
    print(f"updated {README.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
