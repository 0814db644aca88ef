"""PostgreSQL saying "not now" reaches a client as 503 with Retry-After, never 500, and the same app
answers again once the server does: the route over real PostgreSQL, errors from the server itself.

Two of the errors a restart or a load spike produces: a session terminated by the server in the middle
of a statement (57P01, what a shutdown does to every session), and no connection to be had (53300,
too many connections). Both used to escape the adapter as driver errors and answer 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from marketing_agents.flows.campaign_optimizer import CampaignOptimizer
from marketing_agents.memory.event_bus import EventBus
from marketing_agents.serve_app.campaigns import add_campaign_routes
from marketing_agents.serve_app.http_errors import install_error_handlers
from marketing_agents.stores.postgres import init_connection
from marketing_agents.stores.postgres_campaigns import PostgresCampaignStore
from marketing_agents.stores.redis import RedisShortTermStore
from tests.support import wait_for


async def campaign_api(pool: asyncpg.Pool, redis_client) -> httpx.AsyncClient:
    app = FastAPI()
    install_error_handlers(app)
    add_campaign_routes(app, CampaignOptimizer(PostgresCampaignStore(pool), EventBus(RedisShortTermStore(redis_client))))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://test")


@pytest.fixture
async def limited_role(migrated) -> AsyncIterator[str]:
    """A login role of its own (superusers ignore connection limits); yields its name."""
    role = f"fault_{uuid4().hex[:8]}"
    admin = await asyncpg.connect(migrated.dsn)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN; GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        yield role
        await admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
        await admin.execute(f"REASSIGN OWNED BY {role} TO postgres; DROP OWNED BY {role}; DROP ROLE {role}")
    finally:
        await admin.close()


async def test_no_connection_to_be_had_is_a_503_and_the_app_reconnects_when_there_is(migrated, redis_client, limited_role):
    admin = await asyncpg.connect(migrated.dsn)
    pool = await asyncpg.create_pool(migrated.dsn.replace("postgres:@", f"{limited_role}:@"), min_size=0, max_size=2,
                                     init=init_connection)
    try:
        async with await campaign_api(pool, redis_client) as http:
            assert (await http.get("/api/v1/campaigns")).status_code == 200
            await admin.execute(f"ALTER ROLE {limited_role} CONNECTION LIMIT 0")
            await admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{limited_role}'")
            await pool.expire_connections()

            refused = await http.get("/api/v1/campaigns")
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["code"] == "storage_unavailable"

            await admin.execute(f"ALTER ROLE {limited_role} CONNECTION LIMIT -1")
            assert (await http.get("/api/v1/campaigns")).status_code == 200
    finally:
        await pool.close()
        await admin.close()


async def test_a_session_terminated_mid_statement_is_a_503_and_the_next_request_is_served(migrated, pool, redis_client):
    app_pool = await asyncpg.create_pool(migrated.dsn, min_size=1, max_size=1, init=init_connection,
                                         server_settings={"application_name": "fault-terminated"})
    admin = await asyncpg.connect(migrated.dsn)
    try:
        async with await campaign_api(app_pool, redis_client) as http:
            # The route's statement waits behind a lock held here, so that the termination lands inside it.
            locking = admin.transaction()
            await locking.start()
            await admin.execute("LOCK TABLE campaigns IN ACCESS EXCLUSIVE MODE")
            request = asyncio.create_task(http.get("/api/v1/campaigns"))

            async def waiting_backend() -> int | None:
                return await pool.fetchval("""SELECT pid FROM pg_stat_activity WHERE application_name = 'fault-terminated'
                                              AND wait_event_type = 'Lock'""")

            backend = await wait_for(waiting_backend, timeout_s=30)
            await pool.execute("SELECT pg_terminate_backend($1)", backend)
            refused = await asyncio.wait_for(request, timeout=30)
            await locking.rollback()

            assert refused.status_code == 503, refused.text
            assert int(refused.headers["retry-after"]) >= 1
            served = await http.get("/api/v1/campaigns")
            assert served.status_code == 200, served.text
    finally:
        await admin.close()
        await app_pool.close()
