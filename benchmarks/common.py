"""What every benchmark shares: where results go, the machine they ran on, and the JSON they write.

Every figure is reported beside an anchor measured in the same run (``ratio`` = figure / anchor),
because these machines are shared and noisy: an absolute number says little, a ratio to something
measured a moment before on the same machine says how far from the limit we are.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> dict[str, Any]:
    import psutil

    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_result(name: str, figures: dict[str, Any], targets: dict[str, Any]) -> Path:
    """Writes ``results/NAME.json`` with the figures, the targets (met or not) and the machine."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), "figures": figures, "targets": targets},
                               indent=2, default=str) + "\n")
    print(f"wrote {path.relative_to(REPO)}")
    return path


def target(description: str, value: float, threshold: float, *, at_least: bool = True) -> dict[str, Any]:
    met = value >= threshold if at_least else value <= threshold
    print(f"  target: {description}: {value:.4g} {'>=' if at_least else '<='} {threshold:g} -> "
          f"{'met' if met else 'MISSED'}")
    return {"description": description, "value": value, "threshold": threshold, "at_least": at_least, "met": met}
