"""Scoring by name: a model directory or a registry version, applied to a file of leads.

Apart from ``model`` so that the registry (which loads models) and the model (which the registry
stores) need not know each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from marketing_agents.scoring_models.data import load_table
from marketing_agents.scoring_models.errors import ModelNotFoundError
from marketing_agents.scoring_models.model import MODEL_FILE, Scorer
from marketing_agents.scoring_models.registry import ModelRegistry


@dataclass
class ScoreReport:
    out: Path
    rows: int
    version: str
    synthetic: bool
    seconds: float

    def summary(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else float("inf")
        note = " (SYNTHETIC model — not trained on your leads)" if self.synthetic else ""
        return (f"scored {self.rows} rows with model {self.version}{note} in {self.seconds:.1f} s "
                f"({rate:,.0f} rows/s); written to {self.out}")


def open_scorer(model: str | Path, registry=None) -> Scorer:
    """A scorer for ``model``: a directory holding a trained model, else a version in ``registry``
    (``"active"`` = the active version). ``registry`` defaults to ``ModelRegistry()`` (MAS_DATA_DIR/models)."""
    path = Path(model)
    if path.is_dir() and (path / MODEL_FILE).exists():
        return Scorer.load(path)
    registry = registry if registry is not None else ModelRegistry()
    if str(model) == "active":
        return registry.active_scorer()
    if not registry.exists(str(model)):
        raise ModelNotFoundError(f"'{model}' is neither a trained model directory nor a version in the registry "
                                 f"at {registry.root} (versions: {', '.join(registry.versions()) or 'none'})")
    return registry.load(str(model))


def score_file(model: str | Path, data: str | Path, out: str | Path, id_column: str | None = None, *,
               registry=None, explain: bool = True) -> ScoreReport:
    """Scores the leads in ``data`` (CSV/TSV/Parquet) with ``model`` (see :func:`open_scorer`) into CSV ``out``."""
    scorer = open_scorer(model, registry)
    frame = load_table(data)
    started = time.perf_counter()
    scored = scorer.score_frame(frame, id_column, explain=explain)
    seconds = time.perf_counter() - started
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scored.to_csv(out, index=False)
    return ScoreReport(out, len(scored), scorer.version, scorer.synthetic, seconds)
