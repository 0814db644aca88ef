"""One knowledge-graph contract, run against every adapter: embedded PostgreSQL and a real Neo4j.

Neo4j comes from MAS_NEO4J_URI when set (CI starts one with scripts/neo4j-dev); otherwise this
session starts its own with scripts/neo4j-dev, and skips the Neo4j half with the reason when the
machine has no Java 17 or Maven.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from marketing_agents.stores.neo4j_graph import Neo4jGraphStore
from marketing_agents.stores.postgres_graph import PostgresGraphStore
from tests.support import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "neo4j-dev"


@pytest.fixture(scope="session")
def neo4j_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("MAS_NEO4J_URI"):
        yield os.environ["MAS_NEO4J_URI"]
        return
    data_dir = tmp_path_factory.mktemp("neo4j")
    started = subprocess.run([str(SCRIPT), "start", "--port", str(free_port()), "--data-dir", str(data_dir)],
                             capture_output=True, text=True, timeout=600)
    if started.returncode == 3:
        pytest.skip(f"no Neo4j here: {started.stderr.strip()}")
    assert started.returncode == 0, started.stderr
    yield started.stdout.strip().splitlines()[-1]
    subprocess.run([str(SCRIPT), "stop", "--data-dir", str(data_dir)], capture_output=True, timeout=120)


@pytest.fixture(params=["postgres", "neo4j"])
async def graph(request, pool) -> AsyncIterator:
    if request.param == "postgres":
        store = PostgresGraphStore(pool)
        await store.clear()
        yield store
        await store.clear()
        return
    store = Neo4jGraphStore.connect(request.getfixturevalue("neo4j_uri"))
    await store.clear()
    yield store
    await store.clear()
    await store.close()
