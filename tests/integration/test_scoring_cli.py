"""The train, score and models verbs as a user meets them (through ``add_scoring_verbs``)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from marketing_agents.scoring_cli import main
from marketing_agents.scoring_models.synthetic import generate_leads


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("MAS_DATA_DIR", str(tmp_path / "mas"))
    generate_leads(1200, 5).to_csv(tmp_path / "leads.csv", index=False)
    generate_leads(300, 6).drop(columns="converted").to_csv(tmp_path / "new.csv", index=False)
    return tmp_path


def test_train_promote_score_and_list(workdir, capsys):
    assert main(["train", "--data", str(workdir / "leads.csv"), "--label", "converted", "--out",
                 str(workdir / "model"), "--id", "lead_id", "--cv", "2", "--promote"]) == 0
    out = capsys.readouterr().out
    assert "cross-validated: ROC-AUC" in out and "is now the active model" in out
    assert main(["score", "--model", "active", "--data", str(workdir / "new.csv"), "--out",
                 str(workdir / "scores.csv")]) == 0
    assert "scored 300 rows" in capsys.readouterr().out
    scores = pd.read_csv(workdir / "scores.csv")
    assert list(scores.columns) == ["lead_id", "probability", "lead_score", "top_factors_for", "top_factors_against"]
    assert main(["models", "list"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["active"] == listing["versions"][0]["version"] and len(listing["versions"]) == 1


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "{w}/leads.csv", "--label", "won", "--out", "{w}/m"], "label column 'won' not found"),
    (["train", "--data", "{w}/leads.csv", "--label", "region", "--out", "{w}/m"], "must be binary"),
    (["train", "--data", "{w}/missing.csv", "--label", "converted", "--out", "{w}/m"], "data file not found"),
    (["train", "--data", "{w}/leads.json", "--label", "converted", "--out", "{w}/m"], "unsupported file type"),
    (["score", "--model", "v0009-20260101T000000Z", "--data", "{w}/new.csv", "--out", "{w}/s.csv"],
     "neither a trained model directory nor a version"),
    (["score", "--model", "active", "--data", "{w}/new.csv", "--out", "{w}/s.csv"], "no active model version"),
    (["models", "rollback"], "nothing to roll back to"),
])
def test_user_errors_exit_1_with_the_problem_named(workdir, capsys, args, message):
    assert main([a.format(w=workdir) for a in args]) == 1
    assert message in capsys.readouterr().err


def test_too_few_folds_is_a_usage_error(workdir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "x.csv", "--label", "y", "--out", "o", "--cv", "1"])
    assert exit_info.value.code == 2
    assert "at least 2 folds" in capsys.readouterr().err
