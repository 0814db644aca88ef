"""Training from the conversions table of a running system, against a real PostgreSQL: leads with a known
signal and their conversions in, a better-than-chance model out; too few outcomes refused."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import asyncpg
import numpy as np
import pytest

from marketing_agents.actors.enrichment import Enricher
from marketing_agents.actors.model_opinion import ActiveModel
from marketing_agents.domain import Lead
from marketing_agents.flows.conversion_training import load_conversion_data
from marketing_agents.scoring_cli import main
from marketing_agents.scoring_models.conversions import FEATURES, LABEL
from marketing_agents.scoring_models.registry import ModelRegistry
from marketing_agents.stores.migrations import apply_migrations
from marketing_agents.stores.postgres import init_connection
from tests.support import fresh_database

WINDOW = 90
SENIOR = ["CEO", "VP Marketing", "Chief Marketing Officer", "VP Operations"]
JUNIOR = ["Marketing Specialist", "Analyst", "Software Engineer", "Designer", "Marketing Manager"]
SOURCES = ["referral", "event", "paid_search", "outbound", "social"]
INDUSTRIES = ["Software", "Manufacturing", "Retail", "Education"]
COUNTRIES = ["DE", "US", "JP", "BR", "FR"]
CHANNELS = ["email", "sms", "linkedin", "call", "webinar"]

_INSERT_LEAD = """
INSERT INTO leads (id, email, first_name, last_name, company, job_title, industry, company_size, country, source,
                   consent, attributes, status, created_at, updated_at)
VALUES ($1, $2, 'Test', 'Lead', 'Co', $3, $4, $5, $6, $7, $8, $9, 'engaged', now() - $10::interval,
        now() - $10::interval)"""


async def make_database(stores, name: str, rows: int, seed: int, *, signal: bool = True) -> tuple[str, dict]:
    """Leads created 100..400 days ago whose conversion depends on seniority, source and e-mail domain, plus
    leads that must not count: too young (converted, but their window is still open), placeholders, and
    conversions after the window. Returns the DSN and the expected label of every lead that counts."""
    dsn = await fresh_database(stores, name)
    rng = np.random.default_rng(seed)
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    expected: dict[str, int] = {}
    try:
        await apply_migrations(conn)
        leads, conversions = [], []

        def lead(age_days: float, *, senior: bool, source: str, free_mail: bool, attributes=None) -> uuid.UUID:
            lead_id = uuid.uuid4()
            domain = "gmail.com" if free_mail else f"co{rng.integers(1000)}.com"
            channels = [c for c in CHANNELS if rng.random() < 0.5] or ["email"]
            leads.append((lead_id, f"{lead_id.hex[:12]}@{domain}",
                          str(rng.choice(SENIOR if senior else JUNIOR)), str(rng.choice(INDUSTRIES)),
                          int(np.clip(rng.lognormal(np.log(150), 1.2), 1, 100_000)), str(rng.choice(COUNTRIES)),
                          source, {c: True for c in channels}, attributes or {}, timedelta(days=age_days)))
            return lead_id

        for _ in range(rows):
            senior, source, free_mail = bool(rng.random() < 0.3), str(rng.choice(SOURCES)), bool(rng.random() < 0.35)
            age = float(rng.uniform(100, 400))
            lead_id = lead(age, senior=senior, source=source, free_mail=free_mail)
            logit = -2.6 + (2.4 * senior + 1.6 * (source == "referral") - 1.2 * free_mail if signal else 0.0)
            converted = bool(rng.random() < 1 / (1 + np.exp(-logit)))
            expected[str(lead_id)] = int(converted)
            if converted:
                conversions.append((lead_id, timedelta(days=age - rng.uniform(0, WINDOW - 1))))
            elif rng.random() < 0.1:  # bought, but long after the window: not a conversion of this lead's window
                conversions.append((lead_id, timedelta(days=age - WINDOW - rng.uniform(1, 8))))
        for _ in range(20):  # too young to judge, though they converted: left out
            young = lead(float(rng.uniform(1, WINDOW - 5)), senior=False, source="outbound", free_mail=True)
            conversions.append((young, timedelta(hours=1)))
        lead(200, senior=True, source="referral", free_mail=False, attributes={"placeholder": True})

        await conn.executemany(_INSERT_LEAD, leads)
        await conn.executemany(
            """INSERT INTO conversions (id, lead_id, value, converted_at)
               VALUES (gen_random_uuid(), $1, 100, now() - $2::interval)""", conversions)
    finally:
        await conn.close()
    return dsn, expected


@pytest.fixture(scope="module")
async def signal_db(migrated) -> tuple[str, dict]:
    return await make_database(migrated, "conversions_signal", 700, seed=11)


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    def use(dsn: str):
        monkeypatch.setenv("MAS_POSTGRES_DSN", dsn)
        monkeypatch.setenv("MAS_DATA_DIR", str(tmp_path / "mas"))
        return tmp_path

    return use


async def test_the_frame_has_one_row_per_judged_lead_with_its_label_and_the_triage_features(signal_db):
    dsn, expected = signal_db
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=init_connection)
    try:
        data = await load_conversion_data(pool, WINDOW)
    finally:
        await pool.close()
    frame = data.frame
    assert list(frame.columns) == ["lead_id", *FEATURES, LABEL]
    assert dict(zip(frame["lead_id"], frame[LABEL], strict=True)) == expected  # no young lead, no placeholder
    assert set(frame["seniority"]) <= {"c_level", "vp", "manager", "individual"}
    assert set(frame["email_domain_type"]) == {"free", "corporate"}
    assert frame["consented_channels"].between(1, 5).all()
    assert set(frame["region"]) == {"emea", "north_america", "apac", "latam"}


async def test_the_enrichment_triage_stored_is_used_rather_than_recomputed(migrated):
    dsn = await fresh_database(migrated, "conversions_enrichment")
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    try:
        await apply_migrations(conn)
        lead_id = uuid.uuid4()
        await conn.execute(_INSERT_LEAD, lead_id, "x@acme.io", "CEO", "Computer Software", 50, "DE", "event",
                           {"email": True}, {}, timedelta(days=200))
        enrichment = {"email_domain": "acme.io", "email_domain_type": "corporate", "company_size_band": "11-50",
                      "industry": "software", "industry_known": True, "region": "EMEA", "timezone": "Europe/Berlin"}
        await conn.execute(
            """INSERT INTO triage_results (lead_id, lead_score, fit_score, engagement_score, triage_category,
                                           scoring_model, result, triaged_at)
               VALUES ($1, 70, 70, 70, 'hot', 'test', $2, now() - interval '200 days')""",
            lead_id, {"enrichment": enrichment})
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=init_connection)
        try:
            frame = (await load_conversion_data(pool, WINDOW)).frame
        finally:
            await pool.close()
    finally:
        await conn.close()
    assert frame.loc[0, "industry"] == "software"  # recomputed without the graph's synonyms it would be "other"


def test_train_from_conversions_learns_the_signal_and_the_triage_agent_can_use_the_model(signal_db, cli_env, capsys):
    dsn, expected = signal_db
    workdir = cli_env(dsn)
    out = workdir / "model"
    assert main(["train", "--from-conversions", "--window-days", str(WINDOW), "--cv", "3", "--out", str(out),
                 "--promote"]) == 0
    printed = capsys.readouterr().out
    assert f"{len(expected)} leads created on or before" in printed and "is now the active model" in printed

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["capture_at_pct"]["20"] > 0.3  # chance: the top 20% of leads hold 20% of the conversions
    assert metrics["roc_auc"] > 0.65
    model = json.loads((out / "model.json").read_text())
    assert set(model["feature_columns"]) <= set(FEATURES) and "seniority" in model["feature_columns"]
    assert model["data"]["n_rows"] == len(expected) and "conversions table" in model["data"]["source"]

    # The triage agent's own path: lead_features -> the active model, with no column missing.
    opinion = ActiveModel(ModelRegistry(workdir / "mas" / "models"))
    enricher = Enricher()

    def probability(title: str, source: str, email: str) -> float:
        lead = Lead(id=uuid.uuid4(), created_at="2026-01-01T00:00:00Z", email=email, first_name="A", last_name="B",
                    company="C", job_title=title, industry="Software", company_size=200, country="US", source=source,
                    consent={"email": True, "call": True})
        return opinion(lead, enricher.enrich(lead)).probability

    assert probability("CEO", "referral", "ceo@acme.io") > 2 * probability("Analyst", "outbound", "a@gmail.com")


@pytest.fixture
async def sparse_db(migrated) -> tuple[str, dict]:
    return await make_database(migrated, "conversions_sparse", 40, seed=3, signal=False)


def test_too_few_conversions_are_refused_with_the_counts(sparse_db, cli_env, capsys):
    dsn, expected = sparse_db
    positives = sum(expected.values())
    assert 0 < positives < 6
    workdir = cli_env(dsn)
    assert main(["train", "--from-conversions", "--cv", "3", "--out", str(workdir / "m")]) == 1
    err = capsys.readouterr().err
    assert "too few converted leads" in err and f"{positives} converted within 90 days" in err
    assert "needs at least 6 of each" in err
    assert not (workdir / "m").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["train", "--out", "o"], "one of the arguments --data --from-conversions is required"),
    (["train", "--data", "x.csv", "--label", "y", "--from-conversions", "--out", "o"], "not allowed with argument"),
    (["train", "--from-conversions", "--label", "converted", "--out", "o"], "--label and --id go with --data"),
    (["train", "--data", "x.csv", "--out", "o"], "--label is required with --data"),
    (["train", "--data", "x.csv", "--label", "y", "--window-days", "30", "--out", "o"],
     "--window-days goes with --from-conversions"),
    (["train", "--from-conversions", "--window-days", "0", "--out", "o"], "--window-days"),
])
def test_a_wrong_combination_of_sources_is_a_usage_error(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
