"""The whole system as a user runs it: ``marketing-agents run`` in its own process group.

One run serves the e2e session: real embedded stores, a real local Ray cluster with its dashboard,
the Serve app deployed from ray_configs/serve_config.yaml, real HTTP on a free port.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from marketing_agents.launcher import RunInfo
from marketing_agents.stores.postgres import init_connection
from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 300


class RunningSystem:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.http_port = free_port()
        self.valkey_port = free_port()
        self.dashboard_port = free_port()
        self.metrics_port = free_port()
        # The bootstrap admin key the tests authenticate with (a fresh one per run, never a fixed secret).
        self.admin_key = f"mas_test_{secrets.token_urlsafe(24)}"
        self.env = {
            **os.environ,
            "MAS_DATA_DIR": str(data_dir),
            "MAS_HTTP_PORT": str(self.http_port),
            "MAS_DASHBOARD_PORT": str(self.dashboard_port),
            "MAS_METRICS_EXPORT_PORT": str(self.metrics_port),
            "MAS_EMBEDDED_VALKEY_PORT": str(self.valkey_port),
            "MAS_LOAD_DEMO_DATA": "false",
            "MAS_SMTP_PORT": str(free_port()),
            "MAS_WEBHOOK_SINK_PORT": str(free_port()),
            "MAS_DISPATCH_EVERY_S": "0.5",
            # The optimizer's rounds: often, so that the closed-loop test's days pass quickly. It steps
            # only active campaigns; the tests that drive it by hand use drafts.
            "MAS_OPTIMIZER_EVERY_S": "0.5",
            # A handoff a fault interrupted is resumed soon after (the fault suite waits for it).
            "MAS_HANDOFF_LEASE_S": "10",
            "MAS_HANDOFF_RECOVERY_EVERY_S": "1",
            "MAS_ADMIN_API_KEY": self.admin_key,
            # The whole session shares one admin key: its polling must not hit the per-key rate limit
            # (the limit itself is tested with keys of their own).
            "MAS_RATE_LIMITS_BY_ROLE": '{"admin": 100000}',
        }
        # The run uses its own embedded stores and graph; a Neo4j given to the contract suite (which
        # clears it between tests) is not this system's.
        for inherited in ("MAS_POSTGRES_DSN", "MAS_REDIS_URL", "MAS_NEO4J_URI", "MAS_WEBHOOK_URL", "RAY_ADDRESS"):
            self.env.pop(inherited, None)
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir / "run.log"
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres:@/marketing_agents?host={self.data_dir / 'postgres'}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.valkey_port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "marketing_agents.cli", "run"],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"`marketing-agents run` exited with {self.process.returncode}:\n{self.log_tail()}")
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
        raise RuntimeError(f"the system was not ready within {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def processes(self) -> list[psutil.Process]:
        """Every live process this run started: its own tree plus the embedded PostgreSQL server."""
        found = []
        info = RunInfo.read(self.data_dir)
        if self.process is not None and psutil.pid_exists(self.process.pid):
            root = psutil.Process(self.process.pid)
            found += [root, *root.children(recursive=True)]
        if info is not None and info.postgres_pid and psutil.pid_exists(info.postgres_pid):
            found.append(psutil.Process(info.postgres_pid))
        return found

    def interrupt(self) -> int:
        """Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=120)

    def stop_command(self) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "marketing_agents.cli", "stop"],
                                cwd=REPO, env=self.env, capture_output=True, text=True, timeout=180)
        self.process.wait(timeout=30)
        return result

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    # A short data dir keeps the PostgreSQL socket path within the Unix limit.
    running = RunningSystem(Path(tmp_path_factory.mktemp("run")))
    running.start()
    yield running
    if running.process is not None and running.process.poll() is None:
        running.stop_command()


@pytest.fixture
def api(system: RunningSystem) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.url, timeout=60,
                      headers={"Authorization": f"Bearer {system.admin_key}"}) as client:
        yield client


@pytest.fixture
async def db(system: RunningSystem) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(system.dsn)
    await init_connection(conn)
    yield conn
    await conn.close()
