"""The batch scoring job, run as `ray job submit` runs it (``python -m marketing_agents.jobs.batch_score``).

Files: the job's Parquet output matches the same model scored in one process, row for row. The leads
table: a run stopped part-way (``--limit``) and submitted again finishes the rest and scores no lead twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import numpy as np
import pandas as pd
import pytest

from marketing_agents.scoring_models import Scorer
from marketing_agents.scoring_models.synthetic import generate_leads
from marketing_agents.scoring_models.training import train_frame
from marketing_agents.stores.migrations import apply_migrations
from marketing_agents.stores.postgres import init_connection
from tests.support import fresh_database

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model")
    train_frame(generate_leads(3000, seed=5), "converted", out, id_column="lead_id", cv=3)
    return out


def run_job(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | (env or {})
    return subprocess.run([sys.executable, "-m", "marketing_agents.jobs.batch_score", *args], cwd=REPO,
                          env=environment, capture_output=True, text=True, timeout=600, check=False)


def test_the_files_job_matches_the_model_scored_in_one_process_row_for_row(model_dir, tmp_path):
    leads = generate_leads(8000, seed=11).drop(columns=["converted"])
    leads.to_parquet(tmp_path / "leads.parquet")

    job = run_job("--input", str(tmp_path / "leads.parquet"), "--output", str(tmp_path / "scores"),
                  "--model", str(model_dir), "--id", "lead_id", "--batch-size", "1000")

    assert job.returncode == 0, job.stderr[-3000:]
    assert "scored 8000 rows" in job.stdout
    out = pd.read_parquet(tmp_path / "scores").sort_values("lead_id").reset_index(drop=True)
    expected = Scorer.load(model_dir).score_frame(leads, "lead_id", explain=False)
    expected = expected.sort_values("lead_id").reset_index(drop=True)
    assert out["lead_id"].tolist() == expected["lead_id"].tolist()
    np.testing.assert_allclose(out["probability"], expected["probability"], rtol=0, atol=1e-12)
    assert (out["lead_score"] == expected["lead_score"]).all()
    assert set(out["model_version"]) == {Scorer.load(model_dir).version}


def test_bad_arguments_are_refused_with_a_message():
    job = run_job("--input", "table:leads", "--output", "out/")
    assert job.returncode == 2 and "both be files or both be table:leads" in job.stderr
    job = run_job("--input", "a.parquet", "--output", "out/", "--limit", "5")
    assert job.returncode == 2 and "--limit applies to table:leads only" in job.stderr


async def test_a_stopped_table_job_submitted_again_finishes_the_rest_and_scores_no_lead_twice(migrated, model_dir):
    dsn = await fresh_database(migrated, "batch_score")
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    try:
        await apply_migrations(conn)
        await conn.executemany(
            """INSERT INTO leads (id, email, first_name, last_name, company, job_title, industry, company_size,
                                  country, source, consent, status)
               VALUES ($1, $2, 'A', 'B', 'Co', $3, 'Software', $4, 'DE', 'web_form', $5, 'engaged')""",
            [(uuid.uuid4(), f"l{i}@co{i}.com", ["CEO", "Analyst", "VP Sales"][i % 3], 10 + 37 * i,
              {"email": True, "call": i % 2 == 0}) for i in range(60)])
        env = {"MAS_POSTGRES_DSN": dsn}

        first = run_job("--input", "table:leads", "--output", "table:leads", "--model", str(model_dir),
                        "--batch-size", "10", "--limit", "25", env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        scored_first = {r["id"]: r["model_scored_at"] for r in await conn.fetch(
            "SELECT id, model_scored_at FROM leads WHERE model_version IS NOT NULL")}
        assert len(scored_first) == 25

        second = run_job("--input", "table:leads", "--output", "table:leads", "--model", str(model_dir),
                         "--batch-size", "10", env=env)
        assert second.returncode == 0, second.stderr[-3000:]
        assert "35 leads to score, 25 already scored by it" in second.stdout
        rows = await conn.fetch("SELECT id, model_probability, model_version, model_scored_at FROM leads")
        assert all(r["model_version"] == Scorer.load(model_dir).version for r in rows)
        assert all(0 <= r["model_probability"] <= 1 for r in rows)
        assert {r["id"]: r["model_scored_at"] for r in rows if r["id"] in scored_first} == scored_first, \
            "the leads of the first run were not scored again"

        third = run_job("--input", "table:leads", "--output", "table:leads", "--model", str(model_dir), env=env)
        assert third.returncode == 0 and "0 leads to score, 60 already scored by it" in third.stdout
    finally:
        await conn.close()
