"""Refusals a user can cause when training: files, label values, too few examples, missing columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from marketing_agents.errors import MarketingAgentsError
from marketing_agents.scoring_models.data import (
    binary_label,
    check_enough_examples,
    file_fingerprint,
    frame_fingerprint,
    load_table,
)
from marketing_agents.scoring_models.errors import (
    DataFileError,
    FeatureError,
    LabelError,
    ScoringError,
    TooFewExamplesError,
)
from marketing_agents.scoring_models.training import train_file, train_frame


def frame(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


@pytest.mark.parametrize("values, expected", [
    ([0, 1, 1, 0], [0, 1, 1, 0]),
    ([0.0, 1.0, 1.0, 0.0], [0, 1, 1, 0]),
    ([True, False, True, False], [1, 0, 1, 0]),
    (["yes", "no", "Yes", "NO"], [1, 0, 1, 0]),
    (["true", "false", "false", "TRUE"], [1, 0, 0, 1]),
])
def test_binary_labels_in_common_spellings_are_accepted(values, expected):
    assert binary_label(frame(y=values), "y").tolist() == expected


@pytest.mark.parametrize("values, message", [
    ([0, 1, 2, 1], "must be binary .* 3 distinct values"),
    ([1, 1, 1, 1], "only one value"),
    (["won", "lost", "won", "lost"], "so that the positive class is known; found: 'lost', 'won'"),
    ([0, 1, None, 1], "1 missing value"),
])
def test_a_label_that_is_not_binary_is_refused_with_what_was_found(values, message):
    with pytest.raises(LabelError, match=message):
        binary_label(frame(y=values), "y")


def test_a_missing_label_column_names_the_columns_there_are():
    with pytest.raises(LabelError, match="label column 'converted' not found; the columns are: a, b"):
        binary_label(frame(a=[1], b=[2]), "converted")


def test_scoring_errors_are_value_errors_the_cli_reports():
    assert issubclass(ScoringError, ValueError)
    assert issubclass(ScoringError, MarketingAgentsError)
    for error in (DataFileError, LabelError, TooFewExamplesError, FeatureError):
        assert issubclass(error, ScoringError)


def test_fewer_than_k_positives_is_refused_for_k_fold_cv():
    y = np.array([1] * 4 + [0] * 100)
    with pytest.raises(TooFewExamplesError, match="only 4 positive row.*5-fold cross-validation needs at least 10"):
        check_enough_examples(y, "converted", 5)
    check_enough_examples(y, "converted", 2)
    with pytest.raises(TooFewExamplesError, match="only 3 negative"):
        check_enough_examples(np.array([0] * 3 + [1] * 50), "converted", 3)


def test_training_refuses_too_few_positives_before_fitting_anything(tmp_path):
    data = frame(x=np.arange(50.0), y=[1, 1, 1] + [0] * 47)
    with pytest.raises(TooFewExamplesError, match="only 3 positive"):
        train_frame(data, "y", tmp_path / "out", cv=5)
    assert not (tmp_path / "out").exists()


def test_training_refuses_an_unknown_id_column_and_a_table_without_features(tmp_path):
    data = frame(x=np.arange(40.0), y=[0, 1] * 20)
    with pytest.raises(FeatureError, match="id column 'lead' not found"):
        train_frame(data, "y", tmp_path, id_column="lead", cv=2)
    with pytest.raises(FeatureError, match="no usable feature columns: k: constant"):
        train_frame(frame(k=[1] * 40, y=[0, 1] * 20), "y", tmp_path, cv=2)


def test_missing_unknown_and_empty_files_are_refused(tmp_path):
    with pytest.raises(DataFileError, match="data file not found"):
        train_file(tmp_path / "nowhere.csv", "y", tmp_path / "out")
    (tmp_path / "leads.xlsx").write_bytes(b"PK")
    with pytest.raises(DataFileError, match=r"unsupported file type '.xlsx'.*\.csv.*\.parquet"):
        load_table(tmp_path / "leads.xlsx")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataFileError, match="empty"):
        load_table(tmp_path / "empty.csv")


def test_csv_tsv_and_parquet_read_alike_and_fingerprints_are_stable(tmp_path):
    data = frame(a=[1, 2, 3], b=["x", "y", None], y=[0, 1, 0])
    data.to_csv(tmp_path / "t.csv", index=False)
    data.to_csv(tmp_path / "t.tsv", index=False, sep="\t")
    data.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.tsv", "t.parquet"):
        loaded = load_table(tmp_path / name)
        assert list(loaded.columns) == ["a", "b", "y"] and len(loaded) == 3
    assert file_fingerprint(tmp_path / "t.csv") == file_fingerprint(tmp_path / "t.csv")
    assert frame_fingerprint(data) == frame_fingerprint(data.copy())
    assert frame_fingerprint(data) != frame_fingerprint(data.assign(a=[1, 2, 4]))
