"""One process's connections to the stores, opened on first use and health-checked on demand.

Opening lazily lets a Serve replica start while a database is down and answer 503 until it is back,
instead of failing its constructor in a restart loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis
from pydantic import BaseModel, SecretStr

from marketing_agents.errors import ConfigError, StorageError
from marketing_agents.settings import Settings
from marketing_agents.stores import postgres, redis
from marketing_agents.stores.neo4j_graph import Neo4jGraphStore


class StoreHealth(BaseModel):
    name: str
    healthy: bool
    target: str
    latency_ms: float | None = None
    error: str | None = None


def redact(url: str) -> str:
    """The URL without its password, fit for logs and status pages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class StoreConnections:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool: asyncpg.Pool | None = None
        self._redis: aioredis.Redis | None = None
        self._neo4j: Neo4jGraphStore | None = None  # only for the health check, when MAS_NEO4J_URI is set
        self._lock = asyncio.Lock()

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await postgres.create_pool(self.settings)
        return self._pool

    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = redis.create_client(self.settings)
        return self._redis

    def neo4j(self) -> Neo4jGraphStore:
        if self._neo4j is None:
            self._neo4j = Neo4jGraphStore.from_settings(self.settings)
        return self._neo4j

    async def health(self, timeout_s: float = 2.0) -> list[StoreHealth]:
        s = self.settings
        checks = [
            _check("postgres", s.postgres_dsn, lambda: self._ping_postgres(), timeout_s),
            _check("redis", s.redis_url, lambda: redis.ping(self.redis()), timeout_s),
        ]
        if s.neo4j_uri:  # the knowledge graph's backend: /readyz and the system status report it too
            checks.append(_check("neo4j", SecretStr(s.neo4j_uri), lambda: self.neo4j().ping(timeout_s), timeout_s))
        return list(await asyncio.gather(*checks))

    async def _ping_postgres(self) -> float:
        return await postgres.ping(await self.pool())

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        if self._redis is not None:
            await self._redis.aclose()
        if self._neo4j is not None:
            await self._neo4j.close()


async def _check(
    name: str, url: SecretStr | None, probe: Callable[[], Awaitable[float]], timeout_s: float
) -> StoreHealth:
    target = redact(url.get_secret_value()) if url is not None else "unset"
    try:
        latency = await asyncio.wait_for(probe(), timeout_s)
    except (StorageError, ConfigError, TimeoutError) as exc:  # ConfigError: e.g. a Neo4j user without password
        return StoreHealth(name=name, healthy=False, target=target, error=str(exc) or "timed out")
    return StoreHealth(name=name, healthy=True, target=target, latency_ms=round(latency, 2))
