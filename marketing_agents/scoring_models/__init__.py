"""Scoring models: features, training, evaluation, the model registry and explanations.

Lead-conversion models trained from any table of leads with a binary label, calibrated, evaluated by
cross-validation, explained per row, versioned in an on-disk registry, with a synthetic default model
for new installations. Modules:

* :mod:`.data` — reading CSV/TSV/Parquet, fingerprints, label validation
* :mod:`.features` — column typing and the two candidate pipelines
* :mod:`.metrics` — capture / lift at k%, gains curve, the metrics summary
* :mod:`.training` — ``train_frame`` / ``train_file``: compare, calibrate, evaluate, write artifacts
* :mod:`.model` — ``LeadScoringModel`` (model.joblib), ``Scorer``
* :mod:`.scoring` — ``open_scorer`` (a directory or a registry version), ``score_file``
* :mod:`.registry` — ``ModelRegistry``: versions, active pointer, promote / rollback, cached loading
* :mod:`.synthetic` — the synthetic lead generator and ``ensure_default_model``
* :mod:`.reporting` — gains chart and model card (the CLI verbs are :mod:`marketing_agents.scoring_cli`)
* :mod:`.threads` — native thread limits (``MAS_SCORING_THREADS``, default 1)

The names below are importable from this package; they load lazily, so importing the package does
not import scikit-learn.
"""

from __future__ import annotations

from importlib import import_module

from marketing_agents.scoring_models.errors import (
    DataFileError,
    FeatureError,
    LabelError,
    ModelNotFoundError,
    RegistryError,
    ScoringError,
    TooFewExamplesError,
)

_LAZY = {
    "train_frame": "training", "train_file": "training", "TrainResult": "training",
    "Scorer": "model", "LeadScoringModel": "model", "score_file": "scoring", "open_scorer": "scoring",
    "ScoreReport": "scoring",
    "ModelRegistry": "registry", "ModelVersion": "registry", "default_models_root": "registry",
    "generate_leads": "synthetic", "ensure_default_model": "synthetic", "seniority_from_title": "synthetic",
    "capture_at": "metrics", "capture_at_pct": "metrics", "lift_at_pct": "metrics", "gains_curve": "metrics",
    "infer_feature_spec": "features", "FeatureSpec": "features",
    "load_table": "data",
}

__all__ = ["DataFileError", "FeatureError", "LabelError", "ModelNotFoundError", "RegistryError", "ScoringError",
           "TooFewExamplesError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
