"""Training a calibrated lead-conversion model from a table of leads with a binary label.

Procedure (``train_frame``; ``train_file`` reads a file and calls it):

1. validate: the label is binary (see :mod:`.data`), the id column exists, each class has at least
   ``2 * cv`` rows;
2. pick feature columns and preprocessing by column type (see :mod:`.features`);
3. compare the candidates — LogisticRegression and HistGradientBoostingClassifier, both with
   ``class_weight="balanced"`` — by stratified ``cv``-fold cross-validation (shuffled,
   ``random_state``), on **PR-AUC** (average precision of the out-of-fold scores), the metric that
   matters when positives are rare and the top of the ranking is what gets contacted. Ties go to the
   linear model (listed first);
4. calibrate the winner with ``CalibratedClassifierCV(ensemble=False)``: isotonic when there are at
   least ``ISOTONIC_MIN_POSITIVES`` positives, else sigmoid (Platt), which needs less data;
5. estimate what the shipped procedure achieves with nested cross-validation: in each outer fold the
   winner is fitted and calibrated (inner ``min(cv, 3)``-fold) on the training part and predicts the
   held-out part. ROC-AUC, PR-AUC, Brier, capture and lift in ``metrics.json`` all come from these
   out-of-fold calibrated probabilities. (Model selection itself is not nested, so the reported
   numbers can be very slightly optimistic when the two candidates are close.)
6. write ``model.joblib``, ``model.json``, ``metrics.json``, ``gains.png`` and ``MODEL_CARD.md``.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import joblib
import matplotlib
import numpy as np
import pandas as pd
import sklearn
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from marketing_agents.scoring_models.data import (
    binary_label,
    check_enough_examples,
    check_id_column,
    file_fingerprint,
    frame_fingerprint,
    load_table,
)
from marketing_agents.scoring_models.features import (
    CANDIDATES,
    LINEAR,
    build_pipeline,
    infer_feature_spec,
    min_frequency_for,
)
from marketing_agents.scoring_models.metrics import summarize
from marketing_agents.scoring_models.model import (
    CARD_FILE,
    GAINS_FILE,
    METADATA_FILE,
    METRICS_FILE,
    MODEL_FILE,
    LeadScoringModel,
)
from marketing_agents.scoring_models.reporting import write_gains_chart, write_model_card
from marketing_agents.scoring_models.threads import limited_threads

ISOTONIC_MIN_POSITIVES = 500
SELECTION_METRIC = "pr_auc"
EXPLANATIONS = {
    LINEAR: "coefficient x (value - training mean) per model input, summed per source column",
    "hist_gradient_boosting": "occlusion: log-odds change when the column is replaced by its training median/mode",
}


@dataclass
class TrainResult:
    out_dir: Path
    metrics: dict
    metadata: dict
    model: LeadScoringModel

    def summary(self) -> str:
        m = self.metrics
        note = "  [SYNTHETIC DATA — not trained on your leads]" if self.metadata["synthetic"] else ""
        return (f"trained {m['chosen_model']} ({m['calibration']} calibration) on {m['n_rows']} rows, "
                f"{m['n_positives']} positives{note}\n"
                f"cross-validated: ROC-AUC {m['roc_auc']:.3f}, PR-AUC {m['pr_auc']:.3f}, Brier {m['brier']:.4f}, "
                f"capture@20% {m['capture_at_pct']['20']:.1%} (lift {m['lift_at_pct']['20']:.2f})\n"
                f"artifacts in {self.out_dir}")


def library_versions() -> dict[str, str]:
    return {"sklearn": sklearn.__version__, "numpy": np.__version__, "pandas": pd.__version__,
            "joblib": joblib.__version__, "matplotlib": matplotlib.__version__,
            "python": platform.python_version()}


def calibration_method(n_positives: int) -> str:
    """Isotonic calibration with at least ``ISOTONIC_MIN_POSITIVES`` positives, else sigmoid."""
    return "isotonic" if n_positives >= ISOTONIC_MIN_POSITIVES else "sigmoid"


def _nested_oof_probabilities(pipeline, X: pd.DataFrame, y: np.ndarray, outer: StratifiedKFold, method: str,
                              random_state: int) -> np.ndarray:
    inner = StratifiedKFold(min(outer.n_splits, 3), shuffle=True, random_state=random_state)
    out = np.empty(len(y))
    for train, test in outer.split(X, y):
        calibrated = CalibratedClassifierCV(clone(pipeline), method=method, cv=inner, ensemble=False)
        calibrated.fit(X.iloc[train], y[train])
        out[test] = calibrated.predict_proba(X.iloc[test])[:, 1]
    return out


def train_frame(frame: pd.DataFrame, label: str, out_dir: str | Path, *, id_column: str | None = None,
                cv: int = 5, synthetic: bool = False, synthetic_note: str | None = None,
                source: str | None = None, fingerprint: str | None = None, fingerprint_of: str | None = None,
                candidates: Sequence[str] = CANDIDATES, random_state: int = 0,
                progress: Callable[[str], None] | None = None) -> TrainResult:
    """Trains, evaluates and calibrates a model on ``frame`` and writes its artifacts to ``out_dir``.

    ``fingerprint`` defaults to the sha256 of the frame's canonical CSV; ``train_file`` passes the
    file's own. ``synthetic`` marks data from a generator (model.json, model card, chart title).
    Raises a :class:`ScoringError` subclass for bad input."""
    with limited_threads():
        return _train_frame(frame, label, out_dir, id_column=id_column, cv=cv, synthetic=synthetic,
                            synthetic_note=synthetic_note, source=source, fingerprint=fingerprint,
                            fingerprint_of=fingerprint_of, candidates=candidates, random_state=random_state,
                            progress=progress)


def _train_frame(frame, label, out_dir, *, id_column, cv, synthetic, synthetic_note, source, fingerprint,
                 fingerprint_of, candidates, random_state, progress) -> TrainResult:
    say = progress or (lambda line: None)
    y = binary_label(frame, label)
    check_id_column(frame, id_column)
    check_enough_examples(y, label, cv)
    unknown = [c for c in candidates if c not in CANDIDATES]
    if unknown or not candidates:
        raise ValueError(f"candidates must be a non-empty subset of {CANDIDATES}, got {list(candidates)}")
    spec = infer_feature_spec(frame, label, id_column)
    X = frame[spec.columns]
    folds = StratifiedKFold(cv, shuffle=True, random_state=random_state)
    say(f"{len(frame)} rows, {int(y.sum())} positives; {len(spec.numeric)} numeric and {len(spec.categorical)} "
        f"categorical feature columns, {len(spec.dropped)} dropped")

    candidate_scores: dict[str, dict] = {}
    for kind in candidates:
        started = time.perf_counter()
        scores = cross_val_predict(build_pipeline(kind, spec, len(frame), random_state), X, y, cv=folds,
                                   method="decision_function")
        candidate_scores[kind] = {"roc_auc": float(roc_auc_score(y, scores)),
                                  "pr_auc": float(average_precision_score(y, scores)),
                                  "seconds": round(time.perf_counter() - started, 3)}
        say(f"  {kind}: CV ROC-AUC {candidate_scores[kind]['roc_auc']:.3f}, "
            f"PR-AUC {candidate_scores[kind]['pr_auc']:.3f}")
    chosen = max(candidates, key=lambda kind: candidate_scores[kind][SELECTION_METRIC])
    method = calibration_method(int(y.sum()))
    pipeline = build_pipeline(chosen, spec, len(frame), random_state)

    say(f"chose {chosen}; estimating calibrated ({method}) performance by nested cross-validation")
    oof = _nested_oof_probabilities(pipeline, X, y, folds, method, random_state)
    calibrated = CalibratedClassifierCV(clone(pipeline), method=method, cv=folds, ensemble=False).fit(X, y)
    model = LeadScoringModel(calibrated, spec, chosen, X)

    created = datetime.now(UTC).replace(microsecond=0)
    if fingerprint is None:
        fingerprint, fingerprint_of = frame_fingerprint(frame), "sha256 of the frame's canonical CSV"
    metrics = {
        **summarize(y, oof),
        "evaluation": f"out-of-fold calibrated probabilities, {cv}-fold stratified nested cross-validation",
        "chosen_model": chosen,
        "selection_metric": SELECTION_METRIC,
        "calibration": method,
        "cv_folds": cv,
        "candidates": candidate_scores,
    }
    metadata = {
        "version": f"trained-{created:%Y%m%dT%H%M%SZ}{'-synthetic' if synthetic else ''}-{fingerprint[:8]}",
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "synthetic": bool(synthetic),
        "synthetic_note": synthetic_note or ("Trained on generated data." if synthetic else None),
        "label": label,
        "positive_class": 1,
        "model_kind": chosen,
        "calibration": method,
        "feature_columns": spec.columns,
        "features": {"types": spec.types(), "numeric": spec.numeric, "categorical": spec.categorical,
                     "dropped": spec.dropped, "id_column": id_column},
        "data": {"source": source or "DataFrame", "fingerprint": fingerprint,
                 "fingerprint_of": fingerprint_of or "sha256", "n_rows": int(len(frame)),
                 "n_positives": int(y.sum())},
        "explanation_method": EXPLANATIONS[chosen],
        "min_category_rows": min_frequency_for(len(frame)),
        "cv_folds": cv,
        "random_state": random_state,
        "library_versions": library_versions(),
        "metrics": {k: metrics[k] for k in ("roc_auc", "pr_auc", "brier")},
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out_dir / MODEL_FILE)
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    write_gains_chart(y, oof, out_dir / GAINS_FILE, synthetic=synthetic,
                      title=f"Cumulative gains — {chosen}, {cv}-fold out-of-fold ({len(y)} leads)")
    write_model_card(metadata, metrics, out_dir / CARD_FILE)
    say(f"wrote {', '.join((MODEL_FILE, METADATA_FILE, METRICS_FILE, GAINS_FILE, CARD_FILE))} to {out_dir}")
    return TrainResult(out_dir, metrics, metadata, model)


def train_file(data: str | Path, label: str, out_dir: str | Path, *, id_column: str | None = None, cv: int = 5,
               **options) -> TrainResult:
    """``train_frame`` on a CSV/TSV/Parquet file; the fingerprint is the sha256 of the file's bytes."""
    frame = load_table(data)
    return train_frame(frame, label, out_dir, id_column=id_column, cv=cv, source=str(Path(data).resolve()),
                       fingerprint=file_fingerprint(data), fingerprint_of="sha256 of the file bytes", **options)
