"""Interactions and their monthly partitions (issue 14, items 1 and 2), against real PostgreSQL and Valkey,
through the doors a user uses: ``POST /api/v1/interactions`` (the route on a FastAPI app, served by the
real EngagementFeedback with the window the deployment gives it) and ``marketing-agents import
interactions`` (the CLI in a subprocess).

``occurred_at`` lies between the setting ``interactions_earliest`` and a few minutes from now; nothing
creates a partition for an interaction that is refused; one request or file adds at most
``max_new_partitions_per_request`` months. Identical rows of a file are separate interactions.

Months used here (2003 to 2012, 1970, 1999, 2999) are used by no other test; the session's database is
shared, so each test asserts on its own months and leads only.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from marketing_agents.domain.interaction import InteractionWindow
from marketing_agents.flows.engagement_feedback import EngagementFeedback
from marketing_agents.serve_app.http_errors import install_error_handlers
from marketing_agents.serve_app.interactions import add_interaction_routes
from marketing_agents.settings import Settings
from marketing_agents.stores.postgres_interactions import PARTITION_LOCK_KEY, InteractionRepository
from tests.integration.feedback_support import ALWAYS_OPEN


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "marketing_agents.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


async def has_partition(pool, year: int, month: int) -> bool:
    return await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", f"interactions_{year:04d}_{month:02d}")


def months(first: datetime, n: int) -> list[datetime]:
    return [first.replace(year=first.year + (first.month - 1 + k) // 12, month=(first.month - 1 + k) % 12 + 1)
            for k in range(n)]


@pytest.fixture
async def api(pool):
    """The interactions route over the real flow, built with the window the deployment builds from settings."""
    settings = Settings()
    flow = EngagementFeedback(InteractionRepository(pool), policy=ALWAYS_OPEN,
                              window=InteractionWindow(settings.interactions_earliest,
                                                       settings.max_new_partitions_per_request))
    handle = SimpleNamespace(record=SimpleNamespace(remote=flow.record),
                             record_batch=SimpleNamespace(remote=flow.record_batch))
    app = FastAPI()
    install_error_handlers(app)
    add_interaction_routes(app, SimpleNamespace(_feedback=handle))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # errors answer through the handlers
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


# --- POST /api/v1/interactions --------------------------------------------------------------------


async def test_an_interaction_before_the_earliest_date_is_422_naming_the_field_and_creates_nothing(pool, api,
                                                                                                   new_lead):
    lead_id = await new_lead()
    response = await api.post("/api/v1/interactions", json={"lead_id": str(lead_id), "type": "purchase",
                                                            "value": "10", "occurred_at": "1999-12-31T23:00:00Z"})
    assert response.status_code == 422, response.text
    [problem] = response.json()["error"]["details"]
    assert problem["field"] == "interaction.occurred_at" and "2000-01-01" in problem["message"]
    assert await pool.fetchval("SELECT count(*) FROM interactions WHERE lead_id = $1", lead_id) == 0
    assert not await has_partition(pool, 1999, 12)


@pytest.fixture
async def import_in_progress(pool):
    """Holds the partition lock as an import creating partitions does, until the test ends."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_KEY)
        yield


async def test_an_interaction_of_an_unknown_lead_is_refused_before_any_partition_is_touched(pool, api,
                                                                                          import_in_progress):
    """Refused before the partition lock: it neither waits for an import nor creates the month."""
    response = await asyncio.wait_for(api.post("/api/v1/interactions", json={
        "lead_id": str(uuid.uuid4()), "type": "open", "occurred_at": "2009-03-10T12:00:00Z"}), timeout=20)
    assert response.status_code == 404, response.text
    assert not await has_partition(pool, 2009, 3)


async def test_an_interaction_with_a_touchpoint_the_lead_does_not_have_is_refused_before_any_partition(
        pool, api, new_lead, import_in_progress):
    lead_id = await new_lead()
    response = await asyncio.wait_for(api.post("/api/v1/interactions", json={
        "lead_id": str(lead_id), "type": "click", "touchpoint_id": str(uuid.uuid4()),
        "occurred_at": "2009-04-10T12:00:00Z"}), timeout=20)
    assert response.status_code == 400, response.text
    assert not await has_partition(pool, 2009, 4)


async def test_a_batch_over_more_new_months_than_allowed_is_422_and_writes_nothing(pool, api, new_lead):
    lead_id = await new_lead()
    spread = months(datetime(2006, 1, 15, tzinfo=UTC), Settings().max_new_partitions_per_request + 6)
    items = [{"lead_id": str(lead_id), "type": "open", "occurred_at": at.isoformat()} for at in spread]

    response = await api.post("/api/v1/interactions", json={"interactions": items})

    assert response.status_code == 422, response.text
    [problem] = response.json()["error"]["details"]
    assert problem["field"] == "batch.interactions"
    assert "MAS_MAX_NEW_PARTITIONS_PER_REQUEST" in problem["message"]
    assert await pool.fetchval("SELECT count(*) FROM interactions WHERE lead_id = $1", lead_id) == 0
    assert [at for at in spread if await has_partition(pool, at.year, at.month)] == []


async def test_a_batch_item_outside_the_window_is_refused_in_its_place_and_the_others_are_stored(pool, api,
                                                                                                 new_lead):
    lead_id = await new_lead()
    recent = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    items = [{"lead_id": str(lead_id), "type": "open", "occurred_at": recent},
             {"lead_id": str(lead_id), "type": "open", "occurred_at": "1999-06-01T00:00:00Z"},
             {"lead_id": str(lead_id), "type": "visit", "occurred_at": "2010-02-03T00:00:00Z"}]

    response = await api.post("/api/v1/interactions", json={"interactions": items})

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["stored", "error", "stored"]
    assert results[1]["error"]["code"] == "validation_error"
    assert [f["field"] for f in results[1]["error"]["details"]] == ["occurred_at"]
    assert not await has_partition(pool, 1999, 6)
    assert await has_partition(pool, 2010, 2)


async def test_a_batch_within_the_cap_gets_a_partition_for_each_of_its_months(pool, api, new_lead):
    lead_id = await new_lead()
    spread = months(datetime(2010, 6, 1, tzinfo=UTC), 3)
    response = await api.post("/api/v1/interactions", json={"interactions": [
        {"lead_id": str(lead_id), "type": "open", "occurred_at": at.isoformat()} for at in spread]})
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 3
    parts = await pool.fetch("SELECT tableoid::regclass::text AS part FROM interactions WHERE lead_id = $1 "
                             "ORDER BY occurred_at", lead_id)
    assert [r["part"] for r in parts] == [f"interactions_{at:%Y_%m}" for at in spread]


# --- marketing-agents import interactions ---------------------------------------------------------


@pytest.fixture
def cli_env(migrated) -> dict[str, str]:
    return {**os.environ, "MAS_POSTGRES_DSN": migrated.dsn}


@pytest.fixture
async def tag(pool):
    tag = f"part-{uuid.uuid4().hex[:8]}"
    yield tag
    await pool.execute("DELETE FROM leads WHERE external_id LIKE $1", f"{tag}-%")


def import_cli(path, env, *mapping: str) -> subprocess.CompletedProcess:
    return run_cli("import", "interactions", str(path), "--map",
                   ",".join(mapping or ("lead_id=customer_id", "occurred_at=date", "value=dollar_value")),
                   "--type", "purchase", env=env)


async def test_two_identical_purchases_in_a_file_are_two_and_importing_it_again_adds_none(pool, tmp_path, tag,
                                                                                          cli_env):
    data = tmp_path / "sales.csv"
    data.write_text("customer_id,date,dollar_value\n"
                    f"{tag}-1,2011-03-04,19.99\n"
                    f"{tag}-1,2011-03-04,19.99\n"
                    f"{tag}-1,2011-03-05,5\n")

    first = import_cli(data, cli_env)
    again = import_cli(data, cli_env)

    assert first.returncode == 0, first.stderr
    assert "3 imported, 0 rejected, 0 duplicates skipped" in first.stdout
    assert again.returncode == 0, again.stderr
    assert "0 imported, 0 rejected, 3 duplicates skipped" in again.stdout
    revenue = await pool.fetchrow(
        """SELECT count(*) AS n, sum(i.value) AS total FROM interactions i JOIN leads l ON l.id = i.lead_id
           WHERE l.external_id = $1""", f"{tag}-1")
    assert (revenue["n"], revenue["total"]) == (3, Decimal("44.98"))


async def test_import_rejects_rows_outside_the_window_by_line_and_column_and_creates_no_partition_for_them(
        pool, tmp_path, tag, cli_env):
    data = tmp_path / "sales.csv"
    data.write_text("customer_id,date,dollar_value\n"
                    f"{tag}-1,2011-05-05,10\n"
                    f"{tag}-1,1970-01-01,10\n"
                    f"{tag}-2,2999-01-01,10\n")

    result = import_cli(data, cli_env)

    assert result.returncode == 0, result.stderr
    assert "1 imported, 2 rejected" in result.stdout
    lines = {line.split(":", 1)[0].strip(): line for line in result.stderr.splitlines() if "line " in line}
    assert "before 2000-01-01" in lines["line 3"] and "column 'date'" in lines["line 3"]
    assert "MAS_INTERACTIONS_EARLIEST" in lines["line 3"]
    assert "in the future" in lines["line 4"] and "column 'date'" in lines["line 4"]
    assert not await has_partition(pool, 1970, 1)
    assert not await has_partition(pool, 2999, 1)


async def test_a_file_over_more_new_months_than_allowed_is_refused_before_anything_is_written(pool, tmp_path, tag,
                                                                                             cli_env):
    spread = months(datetime(2003, 1, 20, tzinfo=UTC), 30)
    data = tmp_path / "history.csv"
    data.write_text("customer_id,date,dollar_value\n" + "".join(f"{tag}-{n % 3},{at:%Y-%m-%d},1\n"
                                                                for n, at in enumerate(spread)))

    refused = import_cli(data, {**cli_env, "MAS_MAX_NEW_PARTITIONS_PER_REQUEST": "24"})

    assert refused.returncode == 1
    assert "30 months that have no partition yet (2003-01 to 2005-06)" in refused.stderr
    assert "at most 24 (setting MAS_MAX_NEW_PARTITIONS_PER_REQUEST)" in refused.stderr
    assert await pool.fetchval("SELECT count(*) FROM leads WHERE external_id LIKE $1", f"{tag}-%") == 0
    assert [at for at in spread if await has_partition(pool, at.year, at.month)] == []

    allowed = import_cli(data, {**cli_env, "MAS_MAX_NEW_PARTITIONS_PER_REQUEST": "30"})

    assert allowed.returncode == 0, allowed.stderr
    assert "30 imported" in allowed.stdout
    assert all([await has_partition(pool, at.year, at.month) for at in spread])
