"""The command line as a user meets it: help, refusals with a reason and an exit code."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys

import pytest

from marketing_agents.cli import main
from marketing_agents.errors import ConfigError
from marketing_agents.launcher import Launcher
from marketing_agents.settings import Settings


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "marketing_agents.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_help_explains_every_verb_and_the_configuration():
    result = run_cli("--help")
    assert result.returncode == 0
    for word in ("run", "stop", "status", "migrate", "MAS_DATA_DIR", "MAS_POSTGRES_DSN"):
        assert word in result.stdout


def test_an_unknown_verb_is_a_usage_error():
    result = run_cli("launch")
    assert result.returncode == 2
    assert "invalid choice: 'launch'" in result.stderr


def test_migrate_without_a_database_says_what_to_set(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MAS_POSTGRES_DSN", raising=False)
    monkeypatch.setenv("MAS_DATA_DIR", str(tmp_path))
    assert main(["migrate"]) == 2
    assert "set MAS_POSTGRES_DSN, or start the system with `make run`" in capsys.readouterr().err


def test_rfm_refuses_a_malformed_date():
    result = run_cli("rfm", "--as-of", "30/06/2026", "--out", "x.csv")
    assert result.returncode == 2
    assert "'30/06/2026' is not a date in YYYY-MM-DD form" in result.stderr


def test_an_invalid_setting_is_named(monkeypatch, capsys):
    monkeypatch.setenv("MAS_HTTP_PORT", "eighty")
    assert main(["stop"]) == 2
    assert "http_port" in capsys.readouterr().err


def test_stop_when_nothing_runs_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAS_DATA_DIR", str(tmp_path))
    assert main(["stop"]) == 0
    assert "not running" in capsys.readouterr().out


def test_run_refuses_a_taken_port_before_starting_anything(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        launcher = Launcher(Settings(data_dir=tmp_path, http_port=port), say=lambda line: None)
        with pytest.raises(ConfigError, match=f"{port} \\(MAS_HTTP_PORT\\)"):
            launcher.start()
    assert not (tmp_path / "postgres").exists() and not (tmp_path / "run.json").exists()


def test_import_then_rfm_from_the_command_line(migrated, tmp_path):
    """The issue's example, end to end: import purchases with a column mapping, then RFM."""
    tag = tmp_path.name[-6:]
    data = tmp_path / "sales.tsv"
    data.write_text("customer_id\tdate\tdollar_value\n"
                    f"cli-{tag}-1\t20260601\t120.50\n"
                    f"cli-{tag}-1\t2026-06-20T10:00:00Z\t80\n"
                    f"cli-{tag}-2\tnot-a-date\t10\n"
                    f"cli-{tag}-2\t1780000000\t55\n")
    env = {**os.environ, "MAS_POSTGRES_DSN": migrated.dsn}
    imported = run_cli("import", "interactions", str(data), "--map",
                       "lead_id=customer_id,occurred_at=date,value=dollar_value", "--type", "purchase", env=env)
    assert imported.returncode == 0, imported.stderr
    assert "3 imported, 1 rejected" in imported.stdout and "2 leads created" in imported.stdout
    assert "line 4:" in imported.stderr and "not-a-date" in imported.stderr
    out = tmp_path / "rfm.csv"
    rfm = run_cli("rfm", "--as-of", "2026-06-30", "--out", str(out), env=env)
    assert rfm.returncode == 0, rfm.stderr
    rows = {r["external_id"]: r for r in csv.DictReader(out.open()) if r["external_id"].startswith(f"cli-{tag}")}
    assert (rows[f"cli-{tag}-1"]["frequency"], rows[f"cli-{tag}-1"]["monetary"]) == ("2", "200.50")
    assert rows[f"cli-{tag}-1"]["recency_days"] == "10"


def test_import_with_an_unknown_column_names_it_and_writes_nothing(migrated, tmp_path):
    data = tmp_path / "sales.csv"
    data.write_text("customer,date\nx,20260101\n")
    result = run_cli("import", "interactions", str(data), "--map", "lead_id=customer_id,occurred_at=date",
                     "--type", "purchase", env={**os.environ, "MAS_POSTGRES_DSN": migrated.dsn})
    assert result.returncode != 0
    assert "customer_id" in result.stderr


def test_export_then_forget_a_lead_from_the_command_line(migrated, tmp_path):
    import asyncio

    import asyncpg

    async def a_lead() -> str:
        conn = await asyncpg.connect(migrated.dsn)
        try:
            return str(await conn.fetchval(
                """INSERT INTO leads (id, email, first_name, last_name, company, job_title, industry, company_size,
                                      country, source, consent, status)
                   VALUES (gen_random_uuid(), 'gdpr@acme.io', 'G', 'D', 'Co', 'CEO', 'software', 5, 'FR', 'event',
                           '{}', 'triaged') RETURNING id"""))
        finally:
            await conn.close()

    lead_id = asyncio.run(a_lead())
    env = {**os.environ, "MAS_POSTGRES_DSN": migrated.dsn, "MAS_REDIS_URL": migrated.redis_url}
    exported = run_cli("export", lead_id, env=env)
    assert exported.returncode == 0, exported.stderr
    assert '"email": "gdpr@acme.io"' in exported.stdout
    forgotten = run_cli("forget", lead_id, env=env)
    assert forgotten.returncode == 0 and '"leads": 1' in forgotten.stdout
    again = run_cli("export", lead_id, env=env)
    assert again.returncode == 1 and f"no lead with id {lead_id}" in again.stderr
    assert run_cli("forget", "not-a-uuid", env=env).returncode == 2
