"""``marketing-agents run``: the whole system on one machine, in the foreground, and its orderly stop.

Start order: stores (embedded unless MAS_POSTGRES_DSN / MAS_REDIS_URL are set), schema migrations, a
local Ray head node with its dashboard, the Serve app deployed from the Serve config file through
``serve deploy``, demo data. Every process started here is stopped by Ctrl-C, SIGTERM or
``marketing-agents stop``: the Ray processes share this process's fate, and the embedded servers are
stopped explicitly. The bootstrap admin API key (``MAS_ADMIN_API_KEY``, else the one generated once into
``MAS_DATA_DIR/admin-api-key``) reaches the Serve replicas through the environment, like the DSNs.

The run records itself in ``MAS_DATA_DIR/run.json`` (pid, URLs, the embedded servers' pids) so that
``stop`` can find it from another shell, and so that a second ``run`` refuses to start beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import asyncpg
import httpx
import psutil
import yaml

import marketing_agents
from marketing_agents.actors.routing import RoutingRules
from marketing_agents.domain.access import generate_key
from marketing_agents.errors import ConfigError, MarketingAgentsError
from marketing_agents.serve_app.status import APP_NAME
from marketing_agents.settings import Settings
from marketing_agents.stores.embedded import EmbeddedPostgres, EmbeddedValkey
from marketing_agents.stores.migrations import describe, migrate

if TYPE_CHECKING:
    from marketing_agents.sinks import OutboxSinks

RUN_FILE = "run.json"
ADMIN_KEY_FILE = "admin-api-key"
T = TypeVar("T")


class Stopped(Exception):
    """Raised in the main thread by SIGTERM so that the run unwinds like it does for Ctrl-C."""


@dataclass
class RunInfo:
    pid: int
    api_url: str
    dashboard_url: str
    data_dir: str
    postgres_pid: int | None = None
    valkey_pid: int | None = None

    @classmethod
    def read(cls, data_dir: Path) -> RunInfo | None:
        try:
            return cls(**json.loads((data_dir / RUN_FILE).read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def write(self) -> None:
        path = Path(self.data_dir) / RUN_FILE
        path.write_text(json.dumps(self.__dict__, indent=2))


@dataclass
class Launcher:
    settings: Settings
    say: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    _postgres: EmbeddedPostgres | None = None
    _valkey: EmbeddedValkey | None = None
    _ray_started: bool = False
    _sinks: OutboxSinks | None = None
    _info: RunInfo | None = None
    _admin_key: str | None = None

    @property
    def data_dir(self) -> Path:
        return self.settings.data_path

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.settings.http_host in ("0.0.0.0", "::") else self.settings.http_host
        return f"http://{host}:{self.settings.http_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.dashboard_port}"

    def run(self) -> int:
        """Starts everything, waits for Ctrl-C or SIGTERM, stops everything. Returns the exit code."""
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        signal.signal(signal.SIGTERM, _raise_stopped)
        try:
            self.start()
            self.say("Running. Press Ctrl-C (or run `make stop` in another shell) to stop everything.")
            while True:
                time.sleep(3600)
        except (KeyboardInterrupt, Stopped):
            self.say("\nStopping...")
            return 0
        except MarketingAgentsError as exc:
            self.say(f"error: {exc}")
            return 1
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._refuse_second_run()
        self._refuse_taken_ports()
        self._info = RunInfo(os.getpid(), self.api_url, self.dashboard_url, str(self.data_dir))
        self._info.write()
        self.say(f"marketing-agents {marketing_agents.__version__}: data in {self.data_dir}")

        self._step("routing rules", self._check_routing_rules)
        dsn = self._start_postgres()
        redis_url = self._start_redis()
        self._step("schema migrations", lambda: describe(asyncio.run(migrate(dsn))))
        self._step("knowledge graph", lambda: asyncio.run(self._load_starter_graph(dsn)))
        self._step("scoring model", self._ensure_default_model)
        self._admin_key = admin_key = self._bootstrap_admin_key()
        # Serve replicas inherit this environment from the Ray processes started below.
        os.environ.update({"MAS_POSTGRES_DSN": dsn, "MAS_REDIS_URL": redis_url, "MAS_DATA_DIR": str(self.data_dir),
                           "MAS_ADMIN_API_KEY": admin_key})
        if self.settings.local_sinks:
            from marketing_agents.sinks import OutboxSinks

            self._sinks = OutboxSinks(self.data_dir / "outbox", self.settings.smtp_port,
                                      self.settings.webhook_sink_port)
            self._step("delivery sinks", self._sinks.start)
            os.environ.setdefault("MAS_WEBHOOK_URL", self._sinks.webhook_url)
        self._step("Ray head node", self._start_ray)
        self._step(f"Serve app from {self.settings.serve_config}", self._deploy)
        if self.settings.load_demo_data:
            from marketing_agents.demo import load_demo_data

            self._step("demo data", lambda: load_demo_data(self.api_url, dsn, admin_key))
        self.say(
            f"\n  REST API      {self.api_url}/api/v1/leads\n"
            f"  API docs      {self.api_url}/docs\n"
            f"  System status {self.api_url}/api/v1/system/status\n"
            f"  Admin API key {self._admin_key_source()}  (send it as `Authorization: Bearer <key>`)\n"
            f"  Ray dashboard {self.dashboard_url}  (token: `ray get-auth-token`)\n"
            f"  Sent touchpoints {self.data_dir / 'outbox'}  (.eml: open in a mail client)\n"
        )

    def stop(self) -> None:
        """Stops whatever was started, in reverse order; safe to call more than once.

        A second Ctrl-C while stopping is ignored, so that an impatient user cannot leave servers behind.
        """
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if self._ray_started:
            import ray

            ray.shutdown()
            self._ray_started = False
        if self._sinks is not None:
            self._sinks.stop()
            self._sinks = None
        if self._valkey is not None:
            self._valkey.stop()
            self._valkey = None
        if self._postgres is not None:
            self._postgres.stop()
            self._postgres = None
        if self._info is not None:
            (self.data_dir / RUN_FILE).unlink(missing_ok=True)
            self._info = None
            self.say("Stopped.")

    def _step(self, name: str, action: Callable[[], T], describe: Callable[[T], str] = str) -> T:
        """Runs one start-up step, saying what it is, what came of it and how long it took."""
        started = time.perf_counter()
        self.say(f"  {name} ...")
        result = action()
        self.say(f"  {name}: {describe(result)} ({time.perf_counter() - started:.1f} s)")
        return result

    def _refuse_second_run(self) -> None:
        info = RunInfo.read(self.data_dir)
        if info is not None and info.pid != os.getpid() and psutil.pid_exists(info.pid):
            raise ConfigError(f"marketing-agents is already running from {self.data_dir} (pid {info.pid}); "
                              "stop it with `make stop` first")

    def _refuse_taken_ports(self) -> None:
        """A taken port would only show up minutes later as a deployment that never gets ready."""
        wanted = {"MAS_HTTP_PORT": self.settings.http_port, "MAS_DASHBOARD_PORT": self.settings.dashboard_port,
                  "MAS_METRICS_EXPORT_PORT": self.settings.metrics_export_port}
        if self.settings.redis_url is None:
            wanted["MAS_EMBEDDED_VALKEY_PORT"] = self.settings.embedded_valkey_port
        if self.settings.local_sinks:
            wanted["MAS_SMTP_PORT"] = self.settings.smtp_port
            wanted["MAS_WEBHOOK_SINK_PORT"] = self.settings.webhook_sink_port
        taken = [f"{port} ({name})" for name, port in wanted.items() if not _port_free(port)]
        if taken:
            raise ConfigError(f"port(s) already in use: {', '.join(taken)}; stop what holds them or choose "
                              "other ports with the variables named")

    def _check_routing_rules(self) -> str:
        """Refuses a broken rules file before anything starts, and hands replicas its absolute path."""
        path = self.settings.routing_rules_file
        rules = RoutingRules.load(path)
        if path is not None:
            os.environ["MAS_ROUTING_RULES_FILE"] = str(Path(path).resolve())
        return f"{len(rules.rules)} rules from {path or 'the bundled routing_rules.yaml'}"

    def _start_postgres(self) -> str:
        if self.settings.postgres_dsn is not None:
            self.say("  PostgreSQL: external (MAS_POSTGRES_DSN)")
            return self.settings.postgres_dsn.get_secret_value()
        self._postgres = postgres = EmbeddedPostgres(self.data_dir / "postgres", self.settings.embedded_postgres_database)
        dsn = self._step("PostgreSQL (embedded)", postgres.start, lambda _: f"PostgreSQL 18 on {postgres.pgdata}")
        info = self._run_info()
        info.postgres_pid = postgres.pid()
        info.write()
        return dsn

    def _start_redis(self) -> str:
        if self.settings.redis_url is not None:
            self.say("  Redis: external (MAS_REDIS_URL)")
            return self.settings.redis_url.get_secret_value()
        self._valkey = EmbeddedValkey(self.data_dir / "valkey", self.settings.embedded_valkey_port)
        url = self._step("Valkey (embedded)", self._valkey.start, lambda url: f"Valkey on {url}")
        info = self._run_info()
        info.valkey_pid = self._valkey.pid()
        info.write()
        return url

    def _run_info(self) -> RunInfo:
        """What the run file holds; start() writes it before it starts any server."""
        if self._info is None:
            raise RuntimeError("the launcher has not started: no run file")
        return self._info

    def _bootstrap_admin_key(self) -> str:
        """MAS_ADMIN_API_KEY, else the key saved in MAS_DATA_DIR/admin-api-key, else a new one saved there.

        A new key is printed this once; the file (mode 0600) keeps it for the next start.
        """
        key, created = ensure_admin_key(self.settings)
        if created:
            self.say(f"  admin API key: generated and saved to {self.data_dir / ADMIN_KEY_FILE} (mode 0600); "
                     f"it is shown only now:\n\n      {key}\n")
        else:
            self.say(f"  admin API key: {self._admin_key_source()}")
        return key

    def _admin_key_source(self) -> str:
        if self.settings.admin_api_key is not None:
            return "from MAS_ADMIN_API_KEY"
        return f"in {self.data_dir / ADMIN_KEY_FILE}"

    def _ensure_default_model(self) -> str:
        from marketing_agents.scoring_models import ModelRegistry, ensure_default_model

        registry = ModelRegistry(self.data_dir / "models")
        trained = ensure_default_model(registry)
        active = registry.active()
        if trained:
            return f"trained the default model {trained} from SYNTHETIC data (replace it with `marketing-agents train`)"
        return f"active model {active}"

    async def _load_starter_graph(self, dsn: str) -> str:
        from marketing_agents.memory.semantic import SemanticMemory, graph_store_for
        from marketing_agents.stores.postgres import init_connection

        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=init_connection)
        store = graph_store_for(self.settings, pool)
        try:
            nodes, edges = await SemanticMemory(store).load_starter_graph()
            where = "Neo4j" if self.settings.neo4j_uri else "PostgreSQL"
            if nodes:
                return f"starter B2B graph loaded into {where}: {nodes} nodes, {edges} relationships"
            total_nodes, total_edges = await store.counts()
            return f"{where} graph in place: {total_nodes} nodes, {total_edges} relationships"
        finally:
            await store.close()
            await pool.close()

    def _start_ray(self) -> str:
        import ray

        ray.init(
            address="local",
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=self.settings.dashboard_port,
            namespace=APP_NAME,
            log_to_driver=False,
            configure_logging=True,
            logging_level=logging.WARNING,  # what ray.init makes of "WARNING", which it accepts but types as int
            _metrics_export_port=self.settings.metrics_export_port,
        )
        self._ray_started = True
        # ray.init installs a SIGTERM handler that exits at once; ours unwinds through stop() instead.
        signal.signal(signal.SIGTERM, _raise_stopped)
        return f"dashboard {self.dashboard_url}, Prometheus metrics on :{self.settings.metrics_export_port}/metrics"

    def _deploy(self) -> str:
        config_path = self.settings.serve_config
        if not config_path.is_file():
            raise ConfigError(f"Serve config file not found: {config_path} (set MAS_SERVE_CONFIG)")
        config = yaml.safe_load(config_path.read_text())
        config.setdefault("http_options", {}).update(host=self.settings.http_host, port=self.settings.http_port)
        effective = self.data_dir / "serve_config.effective.yaml"
        effective.write_text(yaml.safe_dump(config, sort_keys=False))
        serve_cli = Path(sys.executable).with_name("serve")
        deploy = subprocess.run(
            [str(serve_cli), "deploy", str(effective), "--address", self.dashboard_url],
            check=False, capture_output=True, text=True, timeout=120,
        )
        if deploy.returncode != 0:
            raise ConfigError(f"`serve deploy` failed:\n{deploy.stderr[-2000:]}")
        return self._wait_until_ready()

    def _wait_until_ready(self) -> str:
        deadline = time.monotonic() + self.settings.serve_ready_timeout_s
        problems: list[str] = ["not answering yet"]
        with httpx.Client(timeout=5, headers={"Authorization": f"Bearer {self._admin_key}"}) as client:
            while time.monotonic() < deadline:
                try:
                    response = client.get(f"{self.api_url}/readyz")
                    if response.status_code == 200:
                        status = client.get(f"{self.api_url}/api/v1/system/status").json()
                        return f"{len(status['deployments'])} deployments healthy at {self.api_url}"
                    problems = response.json().get("problems", [response.text[:200]])
                except (httpx.HTTPError, ValueError) as exc:
                    problems = [str(exc) or type(exc).__name__]
                self._fail_fast_on_deploy_error()
                time.sleep(1)
        raise ConfigError(f"the Serve app was not ready within {self.settings.serve_ready_timeout_s:.0f} s: "
                          + "; ".join(problems))

    def _fail_fast_on_deploy_error(self) -> None:
        from ray import serve

        app = serve.status().applications.get(APP_NAME)
        if app is not None and str(app.status.value) == "DEPLOY_FAILED":
            raise ConfigError(f"the Serve app failed to deploy: {app.message[-3000:]}")


def ensure_admin_key(settings: Settings) -> tuple[str, bool]:
    """The bootstrap admin key and whether it was made now: MAS_ADMIN_API_KEY, else the one saved in
    MAS_DATA_DIR/admin-api-key, else a new one written there (readable by its owner only)."""
    if settings.admin_api_key is not None:
        return settings.admin_api_key.get_secret_value(), False
    key = saved_admin_key(settings)
    if key is not None:
        return key, False
    key = generate_key()
    path = settings.data_path / ADMIN_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key, True


def saved_admin_key(settings: Settings) -> str | None:
    """The key in MAS_DATA_DIR/admin-api-key, made private to its owner if it was not; None without one."""
    path = settings.data_path / ADMIN_KEY_FILE
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        return None
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    if len(key) < 16:
        raise ConfigError(f"{path} does not hold an API key (16 characters at least); delete it to get a new one")
    return key


def admin_key_for(settings: Settings) -> str | None:
    """The admin key a local client (``marketing-agents status``) sends: MAS_ADMIN_API_KEY or the saved one."""
    if settings.admin_api_key is not None:
        return settings.admin_api_key.get_secret_value()
    return saved_admin_key(settings)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _raise_stopped(signum: int, frame: object) -> None:
    raise Stopped()


def stop_running(settings: Settings, say: Callable[[str], None] = lambda line: print(line, flush=True),
                 timeout_s: float = 120.0) -> int:
    """``marketing-agents stop``: asks the run recorded in the data dir to stop, and waits until it has.

    A run that does not stop in time is killed, together with its embedded servers.
    """
    data_dir = settings.data_path
    info = RunInfo.read(data_dir)
    if info is None or not _alive([_process(info.pid)]):
        say(f"marketing-agents is not running from {data_dir}.")
        (data_dir / RUN_FILE).unlink(missing_ok=True)
        return 0
    process = psutil.Process(info.pid)
    family = [process, *process.children(recursive=True)]
    say(f"Stopping marketing-agents (pid {info.pid})...")
    process.send_signal(signal.SIGTERM)
    if _alive([process], timeout_s):
        say("It did not stop in time; killing it and its servers.")
        family += [_process(info.postgres_pid), _process(info.valkey_pid)]
        for member in _alive(family):
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        (data_dir / RUN_FILE).unlink(missing_ok=True)
    for member in _alive(family, timeout_s=30):
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    say("Stopped.")
    return 0


def _process(pid: int | None) -> psutil.Process | None:
    try:
        return psutil.Process(pid) if pid else None
    except psutil.NoSuchProcess:
        return None


def _alive(processes: list[psutil.Process | None], timeout_s: float = 0.0) -> list[psutil.Process]:
    """The processes still running after waiting up to ``timeout_s``.

    A zombie counts as gone: it has exited and only waits for its parent (which may be the very shell
    or test that ran ``make run``) to collect its exit status.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        alive = []
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                if process is not None and process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(process)
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)
