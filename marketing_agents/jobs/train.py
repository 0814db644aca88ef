"""Training as a Ray job: ``marketing-agents train`` with the same arguments, on a cluster.

    ray job submit --working-dir . -- python -m marketing_agents.jobs.train \\
        --from-conversions --window-days 90 --out models/new --register

Training fits in one process (scikit-learn on the table in memory); running it as a job puts it on a
cluster node, in the job's logs and in the dashboard's job list, next to the other batch work.
"""

from __future__ import annotations

import sys

from marketing_agents.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
