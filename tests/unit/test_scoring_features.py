"""Which columns become features, as what, and how each type is preprocessed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from marketing_agents.scoring_models.errors import FeatureError
from marketing_agents.scoring_models.features import (
    LINEAR,
    MAX_CATEGORIES,
    TREE,
    build_pipeline,
    coerce_frame,
    infer_feature_spec,
    source_slices,
)

N = 200


@pytest.fixture
def leads() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "lead_id": [f"L{i}" for i in range(N)],
        "customer_id": np.arange(N),
        "employees": np.where(rng.random(N) < 0.1, np.nan, rng.integers(1, 5000, N).astype(float)),
        "score_text": [str(v) for v in rng.integers(0, 100, N)],
        "opted_in": rng.random(N) < 0.5,
        "industry": rng.choice(["software", "retail", "finance", None], N),
        "city": [f"city{int(v)}" for v in rng.zipf(1.5, N) % 100],
        "email": [f"person{i}@example.com" for i in range(N)],
        "created": pd.date_range("2025-01-01", periods=N, freq="h").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "created_dt": pd.date_range("2025-01-01", periods=N, freq="h"),
        "plan": ["pro"] * N,
        "empty": [None] * N,
        "converted": rng.integers(0, 2, N),
    })


def test_columns_are_typed_and_dropped_with_reasons(leads):
    spec = infer_feature_spec(leads, "converted", id_column="lead_id")
    assert spec.numeric == ["employees", "score_text", "opted_in"]
    assert spec.categorical == ["industry", "city"]
    assert spec.dropped["lead_id"] == "id column"
    assert spec.dropped["customer_id"].startswith("identifier-like")
    assert spec.dropped["email"].startswith("identifier-like")
    assert spec.dropped["created"].startswith("datetime")
    assert spec.dropped["created_dt"].startswith("datetime")
    assert spec.dropped["plan"].startswith("constant")
    assert spec.dropped["empty"] == "all values missing"
    assert "converted" not in spec.columns and "converted" not in spec.dropped


def test_coercion_makes_numbers_floats_and_categories_strings_or_missing(leads):
    spec = infer_feature_spec(leads, "converted", id_column="lead_id")
    coerced = coerce_frame(leads.assign(industry=leads["industry"].where(leads.index != 0, "  ")), spec.numeric,
                           spec.categorical)
    assert list(coerced.columns) == spec.columns
    assert all(coerced[c].dtype == np.float64 for c in spec.numeric)
    assert coerced["opted_in"].isin([0.0, 1.0]).all()
    assert coerced["industry"].dtype == object and pd.isna(coerced["industry"].iloc[0])
    with pytest.raises(FeatureError, match="lacks column.*employees"):
        coerce_frame(leads.drop(columns="employees"), spec.numeric, spec.categorical)


def test_linear_preprocessing_imputes_flags_missing_scales_and_one_hot_encodes(leads):
    spec = infer_feature_spec(leads, "converted", id_column="lead_id")
    pipeline = build_pipeline(LINEAR, spec, len(leads)).fit(leads, leads["converted"])
    encoded = pipeline[:-1].transform(leads)
    encoded = encoded.toarray() if hasattr(encoded, "toarray") else encoded
    slices = dict(zip(spec.columns, source_slices(pipeline["encode"], spec)))
    employees = encoded[:, slices["employees"]]
    assert employees.shape[1] == 2                      # scaled value + missing indicator
    assert not np.isnan(employees).any()
    assert abs(employees[:, 0].mean()) < 1e-9 and employees[:, 0].std() == pytest.approx(1.0)
    assert encoded[:, slices["score_text"]].shape[1] == 1  # no missing values, so no indicator
    industry = encoded[:, slices["industry"]]
    assert industry.shape[1] == 4                       # three industries + "(missing)"
    assert np.allclose(industry.sum(axis=1), 1)
    city = encoded[:, slices["city"]]                   # rare cities grouped: bounded width
    assert city.shape[1] <= MAX_CATEGORIES
    unseen = pipeline[:-1].transform(leads.head(3).assign(industry="aerospace", city="atlantis"))
    unseen = unseen.toarray() if hasattr(unseen, "toarray") else unseen
    assert not np.isnan(unseen).any()


def test_tree_preprocessing_keeps_missing_values_and_codes_categories(leads):
    spec = infer_feature_spec(leads, "converted", id_column="lead_id")
    pipeline = build_pipeline(TREE, spec, len(leads)).fit(leads, leads["converted"])
    encoded = np.asarray(pipeline[:-1].transform(leads))
    assert encoded.shape[1] == len(spec.columns)
    assert np.isnan(encoded[:, 0]).sum() == leads["employees"].isna().sum()
    industry = encoded[:, spec.columns.index("industry")]
    assert np.isnan(industry).sum() == leads["industry"].isna().sum()
    assert set(np.unique(industry[~np.isnan(industry)])) <= {0.0, 1.0, 2.0}
    assert pipeline["model"].is_categorical_.tolist() == [False, False, False, True, True]
