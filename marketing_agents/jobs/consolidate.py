"""Memory consolidation as a Ray job: ``marketing-agents consolidate`` with the same arguments.

    ray job submit --working-dir . -- python -m marketing_agents.jobs.consolidate --as-of 2026-06-30

The consolidator is idempotent and resumable (it continues after the last batch it committed), so a
failed job is simply submitted again.
"""

from __future__ import annotations

import sys

from marketing_agents.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    return cli_main(["consolidate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
