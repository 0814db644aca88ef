"""Choosing and preparing feature columns by type, and the two candidate model pipelines.

Column rules (``infer_feature_spec``), in this order; every dropped column is recorded with its reason
and shown in ``model.json`` and the model card:

* the label and the id column (``--id``) are not features;
* a column with no values, or only one distinct value, is dropped ("constant");
* bool and numeric dtypes are **numeric**; so is a text column whose every non-missing value parses
  as a number;
* datetime dtypes, and text columns whose values look like ISO dates (``YYYY-MM-DD...``, at least 95%
  of them), are **dropped**: absolute dates do not carry over to future leads, and a "days since"
  feature needs a reference date that only the caller knows; derive it before training;
* other text / category columns are **categorical**, except identifier-like ones (more than 50
  distinct values that are more than half of the non-missing values, e.g. e-mails or names), which
  are dropped;
* a numeric column whose name looks like an identifier (``id``, ``*_id``, ``uuid``, ``*_key``) and
  whose values are all distinct integers is dropped as identifier-like.

Preprocessing, one transformer per source column so every model input maps back to one column:

* linear model: numeric -> median imputation + missing-indicator (only when the column had missing
  values in training) -> standard scaling; categorical -> constant imputation ("(missing)") ->
  one-hot encoding in which categories rarer than ``min_frequency`` rows are grouped into an
  "infrequent" level and at most ``MAX_CATEGORIES`` levels are kept (high cardinality is bounded);
  categories unseen in training go to the infrequent level (all zeros if there is none);
* tree model: numeric values pass through (HistGradientBoosting handles missing values natively);
  categorical -> ordinal codes with the same infrequent grouping, fed to the model as native
  categorical features; unseen and missing categories become missing.

Both models use ``class_weight="balanced"`` against class imbalance; calibration afterwards restores
probabilities on the real base rate.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from marketing_agents.scoring_models.errors import FeatureError

LINEAR = "logistic_regression"
TREE = "hist_gradient_boosting"
CANDIDATES = (LINEAR, TREE)

MAX_CATEGORIES = 30
IDENTIFIER_MIN_DISTINCT = 50
IDENTIFIER_DISTINCT_SHARE = 0.5
DATE_SHARE = 0.95
MISSING_CATEGORY = "(missing)"

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|key)$|^id$", re.IGNORECASE)


@dataclass
class FeatureSpec:
    """Which source columns a model uses, as what, and which were dropped and why."""

    numeric: list[str]
    categorical: list[str]
    dropped: dict[str, str] = field(default_factory=dict)
    label: str | None = None
    id_column: str | None = None

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def types(self) -> dict[str, str]:
        return {**{c: "numeric" for c in self.numeric}, **{c: "categorical" for c in self.categorical}}

    def to_dict(self) -> dict:
        return asdict(self)


def min_frequency_for(n_rows: int) -> int:
    """Rows a category needs to get its own level: 0.5% of the rows, between 5 and 50."""
    return int(max(5, min(50, round(0.005 * n_rows))))


def _is_numeric_dtype(column: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(column) or (
        pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_complex_dtype(column))


def classify_column(column: pd.Series, name: str) -> tuple[str, str | None]:
    """``("numeric" | "categorical" | "dropped", reason-if-dropped)`` for one candidate feature column."""
    values = column.dropna()
    if values.empty:
        return "dropped", "all values missing"
    distinct = values.nunique()
    if distinct <= 1:
        return "dropped", "constant (one distinct value)"
    if _is_numeric_dtype(column):
        if (_ID_NAME.search(name) and distinct == len(values) and pd.api.types.is_integer_dtype(column)
                and len(values) > IDENTIFIER_MIN_DISTINCT):
            return "dropped", "identifier-like (name and all-distinct integers); pass it as --id"
        return "numeric", None
    if pd.api.types.is_datetime64_any_dtype(column) or isinstance(column.dtype, pd.PeriodDtype):
        return "dropped", "datetime (not used: derive e.g. days-since before training)"
    if pd.api.types.is_timedelta64_dtype(column) or pd.api.types.is_complex_dtype(column):
        return "dropped", f"unsupported dtype {column.dtype}"
    text = values.astype(str).str.strip()
    sample = text.iloc[: 2000]
    if sample.str.match(_ISO_DATE).mean() >= DATE_SHARE:
        return "dropped", "datetime-like text (not used: derive e.g. days-since before training)"
    if pd.to_numeric(text, errors="coerce").notna().all():
        return "numeric", None
    if distinct > IDENTIFIER_MIN_DISTINCT and distinct > IDENTIFIER_DISTINCT_SHARE * len(values):
        return "dropped", f"identifier-like ({distinct} distinct values in {len(values)} rows)"
    return "categorical", None


def infer_feature_spec(frame: pd.DataFrame, label: str, id_column: str | None = None) -> FeatureSpec:
    spec = FeatureSpec(numeric=[], categorical=[], label=label, id_column=id_column)
    for name in frame.columns:
        if name == label:
            continue
        if name == id_column:
            spec.dropped[name] = "id column"
            continue
        kind, reason = classify_column(frame[name], str(name))
        if kind == "dropped":
            if reason is None:  # classify_column gives a reason with every "dropped"
                raise RuntimeError(f"column {name!r} dropped without a reason")
            spec.dropped[name] = reason
        else:
            getattr(spec, kind).append(name)
    if not spec.columns:
        raise FeatureError("no usable feature columns: " + (
            "; ".join(f"{c}: {r}" for c, r in spec.dropped.items()) or "the table has only the label column"))
    return spec


def coerce_frame(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """The feature columns in a fixed form: numeric as float64 (unparseable or infinite -> NaN),
    categorical as object holding stripped strings or NaN (empty strings are missing)."""
    missing = [c for c in (*numeric, *categorical) if c not in frame.columns]
    if missing:
        raise FeatureError(f"the data lacks column(s) the model needs: {', '.join(missing)}")
    out = {}
    for name in numeric:
        column = frame[name]
        if not _is_numeric_dtype(column):
            column = pd.to_numeric(column.astype(str).str.strip(), errors="coerce")
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        values = np.where(np.isinf(values), np.nan, values)
        out[name] = pd.Series(values, index=frame.index)
    for name in categorical:
        column = frame[name]
        text = column.astype(str).str.strip().to_numpy(dtype=object)
        absent = column.isna().to_numpy() | (text == "")
        text[absent] = np.nan
        out[name] = pd.Series(text, index=frame.index, dtype=object)
    return pd.DataFrame(out, index=frame.index, columns=[*numeric, *categorical])


class FrameCoercer(TransformerMixin, BaseEstimator):
    """First pipeline step: selects the feature columns and coerces them (see :func:`coerce_frame`),
    so a scoring file whose numbers arrive as text, or with extra columns, is handled the same way."""

    def __init__(self, numeric: list[str] | tuple = (), categorical: list[str] | tuple = ()):
        self.numeric = numeric
        self.categorical = categorical

    def fit(self, X, y=None):
        self.columns_ = [*self.numeric, *self.categorical]
        return self

    def transform(self, X):
        if not isinstance(X, pd.DataFrame):
            raise FeatureError("scoring models take a pandas DataFrame with named columns")
        return coerce_frame(X, list(self.numeric), list(self.categorical))


def _encoder(kind: str, spec: FeatureSpec, n_rows: int) -> ColumnTransformer:
    min_frequency = min_frequency_for(n_rows)
    transformers = []
    for i, name in enumerate(spec.numeric):
        if kind == LINEAR:
            step = Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True)),
                             ("scale", StandardScaler())])
        else:
            step = "passthrough"
        transformers.append((f"col{i}", step, [name]))
    offset = len(spec.numeric)
    for i, name in enumerate(spec.categorical, start=offset):
        if kind == LINEAR:
            step = Pipeline([
                ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
                ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=min_frequency,
                                         max_categories=MAX_CATEGORIES, sparse_output=True))])
        else:
            step = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                  encoded_missing_value=np.nan, min_frequency=min_frequency,
                                  max_categories=MAX_CATEGORIES)
        transformers.append((f"col{i}", step, [name]))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.3)


def build_pipeline(kind: str, spec: FeatureSpec, n_rows: int, random_state: int = 0) -> Pipeline:
    """The unfitted candidate pipeline ``prepare -> encode -> model`` for ``kind`` (LINEAR or TREE)."""
    if kind == LINEAR:
        model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, random_state=random_state)
    elif kind == TREE:
        categorical = list(range(len(spec.numeric), len(spec.columns))) or None
        model = HistGradientBoostingClassifier(
            learning_rate=0.1, max_iter=300, max_leaf_nodes=31, min_samples_leaf=20, l2_regularization=1.0,
            categorical_features=categorical, class_weight="balanced", early_stopping=True,
            validation_fraction=0.1, n_iter_no_change=10, random_state=random_state)
    else:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {CANDIDATES}")
    return Pipeline([("prepare", FrameCoercer(list(spec.numeric), list(spec.categorical))),
                     ("encode", _encoder(kind, spec, n_rows)),
                     ("model", model)])


def source_slices(encoder: ColumnTransformer, spec: FeatureSpec) -> list[slice]:
    """For a fitted encoder, the slice of model inputs that comes from each source column, in spec order."""
    indices = encoder.output_indices_
    return [indices[f"col{i}"] for i in range(len(spec.columns))]
