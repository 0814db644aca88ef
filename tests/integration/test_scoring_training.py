"""Training on leads with a known signal, the artifacts it writes, and scoring a file with the result."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from marketing_agents.scoring_models.data import file_fingerprint
from marketing_agents.scoring_models.errors import FeatureError
from marketing_agents.scoring_models.features import LINEAR, TREE
from marketing_agents.scoring_models.model import Scorer
from marketing_agents.scoring_models.scoring import score_file
from marketing_agents.scoring_models.training import train_file, train_frame

PLAN_EFFECT = {"enterprise": 2.0, "team": 0.8, "trial": 0.0, "free": -1.2}
FACTOR = re.compile(r"^(?P<column>[a-z_]+)=(?P<value>.+) \((?P<sign>[+-])\d+\.\d\d\)$")


def known_signal_leads(n: int, seed: int, label: bool = True) -> pd.DataFrame:
    """Conversion depends strongly on ``intent`` (numeric) and ``plan`` (categorical); the rest is noise
    or should be dropped (a date, a constant, the id)."""
    rng = np.random.default_rng(seed)
    intent = rng.normal(size=n)
    plan = rng.choice(list(PLAN_EFFECT), n, p=[0.15, 0.25, 0.2, 0.4])
    logit = -3.0 + 1.6 * intent + np.array([PLAN_EFFECT[p] for p in plan])
    frame = pd.DataFrame({
        "lead_id": [f"lead-{seed}-{i}" for i in range(n)],
        "intent": np.where(rng.random(n) < 0.05, np.nan, intent.round(3)),
        "plan": plan,
        "noise": rng.normal(size=n).round(3),
        "colour": rng.choice(["red", "green", "blue", "grey", None], n),
        "signed_up": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
        "tenant": "acme",
    })
    frame["signed_up"] = frame["signed_up"].dt.strftime("%Y-%m-%d")
    if label:
        frame["converted"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = root / "leads.csv"
    known_signal_leads(3000, seed=1).to_csv(data, index=False)
    result = train_file(data, "converted", root / "model", id_column="lead_id", cv=3)
    return result, data


def test_the_model_finds_the_known_signal(trained):
    result, _ = trained
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    assert metrics["capture_at_pct"]["20"] > 0.4          # random contact finds 0.2
    assert metrics["lift_at_pct"]["20"] > 1.5
    assert metrics["lift_at_pct"]["20"] == pytest.approx(metrics["capture_at_pct"]["20"] / 0.2)
    assert metrics["roc_auc"] > 0.75
    assert metrics["pr_auc"] > metrics["base_rate"]
    assert 0 < metrics["brier"] < metrics["base_rate"] * (1 - metrics["base_rate"])  # beats the constant guess


def test_metrics_file_has_every_key_and_the_better_candidate_is_chosen(trained):
    result, _ = trained
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    assert {"roc_auc", "pr_auc", "brier", "capture_at_pct", "lift_at_pct", "base_rate", "n_rows", "n_positives",
            "chosen_model", "candidates", "calibration", "selection_metric"} <= set(metrics)
    assert set(metrics["capture_at_pct"]) == set(metrics["lift_at_pct"]) == {"5", "10", "20", "30"}
    assert metrics["n_rows"] == 3000 and metrics["selection_metric"] == "pr_auc"
    assert set(metrics["candidates"]) == {LINEAR, TREE}
    best = max(metrics["candidates"], key=lambda name: metrics["candidates"][name]["pr_auc"])
    assert metrics["chosen_model"] == best
    assert metrics["n_positives"] < 500 and metrics["calibration"] == "sigmoid"  # isotonic needs 500


def test_model_json_records_data_features_and_versions(trained):
    result, data = trained
    meta = json.loads((result.out_dir / "model.json").read_text())
    assert meta["synthetic"] is False and meta["label"] == "converted"
    assert meta["data"]["fingerprint"] == file_fingerprint(data)
    assert meta["features"]["types"] == {"intent": "numeric", "noise": "numeric", "plan": "categorical",
                                         "colour": "categorical"}
    assert set(meta["features"]["dropped"]) == {"lead_id", "signed_up", "tenant"}
    assert {"sklearn", "numpy", "pandas", "python"} <= set(meta["library_versions"])
    assert meta["version"] and meta["created_at"].endswith("Z")


def test_gains_chart_is_a_png_and_the_card_reports_the_metrics(trained):
    result, _ = trained
    assert (result.out_dir / "gains.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (result.out_dir / "MODEL_CARD.md").read_text()
    metrics = result.metrics
    for text in ("## Intended use", "## Data", "## Metrics", "## Limitations", f"{metrics['roc_auc']:.3f}",
                 f"{metrics['pr_auc']:.3f}", f"{metrics['capture_at_pct']['20']:.1%}", "`signed_up`: datetime"):
        assert text in card
    assert "SYNTHETIC" not in card


def test_scoring_a_file_writes_probability_score_and_factors_per_row(trained, tmp_path):
    result, _ = trained
    new = known_signal_leads(500, seed=2, label=False)
    new.to_parquet(tmp_path / "new.parquet")
    report = score_file(result.out_dir, tmp_path / "new.parquet", tmp_path / "scores.csv", id_column="lead_id")
    scores = pd.read_csv(tmp_path / "scores.csv", keep_default_na=False)
    assert report.rows == 500
    assert list(scores.columns) == ["lead_id", "probability", "lead_score", "top_factors_for", "top_factors_against"]
    assert scores["lead_id"].tolist() == new["lead_id"].tolist()
    assert scores["probability"].between(0, 1).all()
    assert np.allclose(scores["lead_score"], (100 * scores["probability"]).round(1), atol=0.051)
    assert ((scores["top_factors_for"] != "") | (scores["top_factors_against"] != "")).all()
    used = set(result.metadata["feature_columns"])
    for column, sign in (("top_factors_for", "+"), ("top_factors_against", "-")):
        for cell in scores[column]:
            factors = [f for f in cell.split("; ") if f]
            assert len(factors) <= 3
            for factor in factors:
                match = FACTOR.match(factor)
                assert match, factor
                assert match["column"] in used and match["sign"] == sign
    # the strongest leads owe their score to the real signal
    top = scores.nlargest(25, "probability")["top_factors_for"]
    assert top.str.contains(r"intent=|plan=enterprise").all()


def test_without_an_id_the_row_number_identifies_each_lead(trained, tmp_path):
    result, _ = trained
    known_signal_leads(40, seed=3, label=False).drop(columns="lead_id").to_csv(tmp_path / "new.csv", index=False)
    score_file(result.out_dir, tmp_path / "new.csv", tmp_path / "out.csv")
    scores = pd.read_csv(tmp_path / "out.csv")
    assert scores.columns[0] == "row" and scores["row"].tolist() == list(range(1, 41))


def test_linear_factors_add_up_to_the_log_odds(tmp_path):
    data = known_signal_leads(1200, seed=4)
    model = train_frame(data, "converted", tmp_path, id_column="lead_id", cv=2, candidates=(LINEAR,)).model
    contributions = model.contributions(data)
    rest = model.base.decision_function(data) - contributions.sum(axis=1)
    assert np.allclose(rest, rest[0])                      # the same average-lead log-odds for every row
    assert contributions.shape == (1200, 4)


def test_tree_factors_are_occlusion_effects_on_the_source_columns(tmp_path):
    data = known_signal_leads(1500, seed=5)
    result = train_frame(data, "converted", tmp_path, id_column="lead_id", cv=2, candidates=(TREE,))
    scorer = Scorer.load(tmp_path)
    assert scorer.model.kind == TREE and result.metrics["chosen_model"] == TREE
    columns = scorer.feature_columns
    contributions = scorer.model.contributions(data)
    at_mode = (data["plan"] == scorer.model.baseline["plan"]).to_numpy()
    assert np.allclose(contributions[at_mode, columns.index("plan")], 0)
    enterprise = (data["plan"] == "enterprise").to_numpy()
    assert contributions[enterprise, columns.index("plan")].mean() > 0.5
    high, low = data["intent"] > 1.5, data["intent"] < -1.5
    assert contributions[high.to_numpy(), columns.index("intent")].mean() > 0
    assert contributions[low.to_numpy(), columns.index("intent")].mean() < 0
    scored = scorer.score_frame(data.head(50))
    assert scored["top_factors_for"].str.len().add(scored["top_factors_against"].str.len()).gt(0).all()


def test_scoring_needs_the_model_columns_but_tolerates_new_categories_and_bad_numbers(trained):
    result, _ = trained
    scorer = Scorer.load(result.out_dir)
    new = known_signal_leads(5, seed=6, label=False)
    with pytest.raises(FeatureError, match="lacks column.*plan"):
        scorer.score_frame(new.drop(columns="plan"))
    odd = new.astype({"intent": object}).assign(plan="galactic", colour=None)
    odd.loc[0, "intent"], odd.loc[1, "intent"] = "not a number", float("inf")
    scored = scorer.score_frame(odd)
    assert scored["probability"].between(0, 1).all() and len(scored) == 5
    assert "intent=missing" in " ".join(scored.loc[:1, ["top_factors_for", "top_factors_against"]].stack())
