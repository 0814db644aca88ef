"""The fitted lead-scoring model (what ``model.joblib`` holds) and the scorer that applies it.

``LeadScoringModel`` wraps the calibrated classifier (``CalibratedClassifierCV`` with
``ensemble=False``: one pipeline fitted on all rows plus one calibrator fitted on its out-of-fold
predictions) and knows how to explain a prediction in terms of the source columns:

* linear model: exact decomposition of the log-odds. For every model input ``k`` the contribution
  is ``coef_k * (x_k - mean_k)``, ``mean_k`` being its average over the training rows; inputs are
  summed per source column (a one-hot group, or a value and its missing-indicator). The factors of a
  row add up to its log-odds minus those of an average training lead.
* tree model: occlusion. A column's contribution is the row's log-odds minus the log-odds with that
  column replaced by its training median (numeric) or mode (categorical). Deterministic, and cheap
  enough: one extra batched prediction per source column, run on the encoded matrix.

Both are in log-odds units of the uncalibrated model (calibration is monotone, so signs and order
carry over). A factor reads ``column=value (+0.42)``; contributions below 0.005 in magnitude are left
out. Loading ``model.joblib`` unpickles it: load only models you (or your registry) wrote.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import scipy.sparse as sp

from marketing_agents.scoring_models.data import check_id_column
from marketing_agents.scoring_models.errors import FeatureError, ModelNotFoundError
from marketing_agents.scoring_models.features import LINEAR, FeatureSpec, source_slices
from marketing_agents.scoring_models.row_encoder import RowEncoder
from marketing_agents.scoring_models.threads import limited_threads

MODEL_FILE = "model.joblib"
METADATA_FILE = "model.json"
METRICS_FILE = "metrics.json"
GAINS_FILE = "gains.png"
CARD_FILE = "MODEL_CARD.md"
ARTIFACT_FILES = (MODEL_FILE, METADATA_FILE, METRICS_FILE, GAINS_FILE, CARD_FILE)

TOP_FACTORS = 3
MIN_FACTOR = 0.005
OCCLUSION_ROWS = 200_000  # rows per batched occlusion prediction (source columns x leads)
SCORE_COLUMNS = ("probability", "lead_score", "top_factors_for", "top_factors_against")


class LeadScoringModel:
    """Calibrated classifier plus what explanations need; behaves like a fitted sklearn classifier."""

    classes_ = np.array([0, 1])

    def __init__(self, calibrated, spec: FeatureSpec, kind: str, training_frame: pd.DataFrame):
        self.calibrated = calibrated
        self.spec = spec
        self.kind = kind
        base = self.base
        coerced = base["prepare"].transform(training_frame)
        baseline = {name: float(coerced[name].median()) for name in spec.numeric}
        for name in spec.categorical:
            modes = coerced[name].dropna().mode()
            baseline[name] = modes.iloc[0] if len(modes) else np.nan
        self.baseline = baseline
        self.slices = source_slices(base["encode"], spec)
        if kind == LINEAR:
            encoded = base[:-1].transform(training_frame)
            coef = base["model"].coef_.ravel()
            row_list: list[int] = []
            cols: list[int] = []
            for j, part in enumerate(self.slices):
                indices = np.arange(part.start, part.stop)
                row_list.extend(indices)
                cols.extend([j] * len(indices))
            rows = np.asarray(row_list, dtype=int)
            self.weights = sp.csr_matrix((coef[rows], (rows, np.asarray(cols, dtype=int))),
                                         shape=(len(coef), len(spec.columns)))
            mean = np.asarray(encoded.mean(axis=0)).ravel()
            self.offsets: np.ndarray | None = np.asarray(self.weights.T @ mean).ravel()
            self.encoded_baseline = None
        else:
            self.weights = None
            self.offsets = None
            baseline_row = pd.DataFrame({name: [value] for name, value in baseline.items()})[spec.columns]
            self.encoded_baseline = np.asarray(base["encode"].transform(base["prepare"].transform(baseline_row)))

    @property
    def base(self):
        """The pipeline fitted on all training rows (before calibration)."""
        return self.calibrated.calibrated_classifiers_[0].estimator

    @property
    def feature_columns(self) -> list[str]:
        return self.spec.columns

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        with limited_threads():
            return self.calibrated.predict_proba(frame)

    def probability(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the positive class, one per row."""
        return self.predict_proba(frame)[:, 1]

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """``(rows, source columns)`` log-odds contributions, columns in ``feature_columns`` order."""
        with limited_threads():
            return self._contributions(frame)

    def _contributions(self, frame: pd.DataFrame) -> np.ndarray:
        base = self.base
        return self.contributions_of_encoded(base["encode"].transform(base["prepare"].transform(frame)))

    def contributions_of_encoded(self, encoded) -> np.ndarray:
        """:meth:`contributions` of rows already through the pipeline's prepare and encode steps."""
        if self.kind == LINEAR:
            product = encoded @ self.weights
            product = product.toarray() if sp.issparse(product) else np.asarray(product)
            return product - self.offsets
        if self.encoded_baseline is None:  # set in __init__ for every model that is not linear
            raise RuntimeError(f"{self.kind} model without an encoded baseline")
        encoded = np.asarray(encoded, dtype=np.float64)
        model = self.base["model"]
        full = model.decision_function(encoded)
        n, m = len(encoded), len(self.slices)
        out = np.empty((n, m))
        per_batch = max(1, OCCLUSION_ROWS // max(1, n))
        for first in range(0, m, per_batch):
            group = range(first, min(m, first + per_batch))
            stacked = np.tile(encoded, (len(group), 1))
            for i, j in enumerate(group):
                part = self.slices[j]
                stacked[i * n:(i + 1) * n, part] = self.encoded_baseline[0, part]
            occluded = model.decision_function(stacked).reshape(len(group), n)
            out[:, first:first + len(group)] = (full[None, :] - occluded).T
        return out

    def probability_of_encoded(self, encoded: np.ndarray) -> np.ndarray:
        """:meth:`probability` of encoded rows: the calibrator applied to the final estimator's output,
        by the calibrated classifier's own code with the fitted model in place of the whole pipeline."""
        calibrated = copy.copy(self.calibrated.calibrated_classifiers_[0])
        calibrated.estimator = self.base["model"]
        return calibrated.predict_proba(encoded)[:, 1]

    def explain(self, frame: pd.DataFrame, top: int = TOP_FACTORS) -> tuple[list[str], list[str]]:
        """Per row, ``"; "``-joined strings of the ``top`` factors for and against conversion."""
        contributions = self.contributions(frame)
        coerced = self.base["prepare"].transform(frame)
        shown = [_display(coerced[name].to_numpy(), name in self.spec.numeric) for name in self.spec.columns]
        return self.factors(contributions, shown, top)

    def factors(self, contributions: np.ndarray, shown: list[list[str]], top: int = TOP_FACTORS,
                ) -> tuple[list[str], list[str]]:
        """The factor strings of each row from its contributions and its values as shown (per column)."""
        names = self.spec.columns
        order = np.argsort(-contributions, axis=1, kind="stable")
        k = min(top, contributions.shape[1])
        best, worst = order[:, :k], order[:, ::-1][:, :k]
        best_values = np.take_along_axis(contributions, best, axis=1)
        worst_values = np.take_along_axis(contributions, worst, axis=1)
        factors_for, factors_against = [], []
        for i in range(len(contributions)):
            factors_for.append("; ".join(f"{names[j]}={shown[j][i]} ({c:+.2f})"
                                         for j, c in zip(best[i], best_values[i], strict=True) if c >= MIN_FACTOR))
            factors_against.append("; ".join(f"{names[j]}={shown[j][i]} ({c:+.2f})"
                                             for j, c in zip(worst[i], worst_values[i], strict=True) if c <= -MIN_FACTOR))
        return factors_for, factors_against


def _display(values, numeric: bool) -> list[str]:
    if numeric:
        return ["missing" if math.isnan(v) else (str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.4g}")
                for v in np.asarray(values, dtype=np.float64)]
    return ["missing" if not isinstance(v, str) else (v if len(v) <= 40 else v[:37] + "...")
            for v in np.asarray(values, dtype=object)]


@dataclass(frozen=True)
class RowScore:
    probability: float
    top_factors_for: str
    top_factors_against: str


class Scorer:
    """A loaded model version: probabilities, lead scores and per-row factors for a table of leads."""

    def __init__(self, model: LeadScoringModel, metadata: dict, directory: Path | None = None):
        self.model = model
        self.metadata = metadata
        self.directory = directory
        self._row_encoder: RowEncoder | None = None

    @classmethod
    def load(cls, directory: str | Path) -> Scorer:
        directory = Path(directory)
        if not (directory / MODEL_FILE).is_file() or not (directory / METADATA_FILE).is_file():
            raise ModelNotFoundError(f"no trained model in {directory} (expected {MODEL_FILE} and {METADATA_FILE})")
        metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
        return cls(joblib.load(directory / MODEL_FILE), metadata, directory)

    @property
    def version(self) -> str:
        return self.metadata["version"]

    @property
    def synthetic(self) -> bool:
        return bool(self.metadata.get("synthetic"))

    @property
    def feature_columns(self) -> list[str]:
        return self.model.feature_columns

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated conversion probability per row (1-d)."""
        return self.model.probability(frame)

    def score_rows(self, rows: list[dict], top: int = TOP_FACTORS) -> list[RowScore]:
        """What :meth:`score_frame` says of each row, for a few rows given as dicts: the online path.

        No DataFrame is built and each column's encoding is remembered per value (see
        ``row_encoder``), so one lead takes well under a millisecond instead of about 20.
        """
        if self._row_encoder is None:
            self._row_encoder = RowEncoder(self.model.base["encode"], self.model.spec)
        coerced = [self._row_encoder.coerce(row) for row in rows]
        with limited_threads():
            encoded = self._row_encoder.encode(coerced)
            probability = self.model.probability_of_encoded(encoded)
            contributions = self.model.contributions_of_encoded(encoded)
        numeric = set(self.model.spec.numeric)
        shown = [_display([values[j] for values in coerced], name in numeric)
                 for j, name in enumerate(self.feature_columns)]
        factors_for, factors_against = self.model.factors(contributions, shown, top)
        return [RowScore(float(p), f, a) for p, f, a in zip(probability, factors_for, factors_against, strict=True)]

    def score_frame(self, frame: pd.DataFrame, id_column: str | None = None, *, explain: bool = True,
                    top: int = TOP_FACTORS, batch_size: int = 50_000) -> pd.DataFrame:
        """One output row per input row: the id (``id_column``, else the model's training id column if the
        frame has it, else ``row`` = 1-based row number), ``probability``, ``lead_score`` (0..100, one
        decimal) and, with ``explain``, ``top_factors_for`` / ``top_factors_against``."""
        check_id_column(frame, id_column)
        if id_column is None and self.model.spec.id_column in frame.columns:
            id_column = self.model.spec.id_column
        missing = [c for c in self.feature_columns if c not in frame.columns]
        if missing:
            raise FeatureError(f"the data lacks column(s) the model needs: {', '.join(missing)}")
        parts = []
        for start in range(0, len(frame), batch_size):
            batch = frame.iloc[start:start + batch_size]
            probability = self.predict_proba(batch)
            part = pd.DataFrame({
                id_column or "row": (batch[id_column].to_numpy() if id_column
                                     else np.arange(start + 1, start + len(batch) + 1)),
                "probability": probability,
                "lead_score": np.round(100 * probability, 1),
            })
            if explain:
                part["top_factors_for"], part["top_factors_against"] = self.model.explain(batch, top)
            parts.append(part)
        if not parts:
            columns = [id_column or "row", *SCORE_COLUMNS[: 4 if explain else 2]]
            return pd.DataFrame(columns=columns)
        return pd.concat(parts, ignore_index=True)
