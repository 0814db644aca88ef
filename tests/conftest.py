"""Shared fixtures: real embedded stores (PostgreSQL, Valkey) for one test session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis

from marketing_agents.stores.migrations import apply_migrations
from marketing_agents.stores.postgres import LeadRepository, init_connection
from tests.support import EmbeddedStores


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStores]:
    stores = EmbeddedStores(tmp_path_factory.mktemp("stores"))
    stores.start()
    yield stores
    stores.stop()


@pytest.fixture(scope="session")
async def migrated(stores: EmbeddedStores) -> EmbeddedStores:
    conn = await asyncpg.connect(stores.dsn)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    return stores


@pytest.fixture
async def pool(migrated: EmbeddedStores) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(migrated.dsn, min_size=1, max_size=10, init=init_connection)
    yield pool
    await pool.close()


@pytest.fixture
async def redis_client(migrated: EmbeddedStores) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(migrated.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def repository(pool: asyncpg.Pool) -> LeadRepository:
    return LeadRepository(pool, timedelta(hours=24))
