"""The human-facing artifacts of a training run: the gains chart and the model card.

The chart is drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas, never through
``pyplot``, so it needs no display, leaves no global figure state behind and is safe in threads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from marketing_agents.scoring_models.metrics import PCTS, capture_at, gains_curve

MAX_CURVE_POINTS = 2000

SYNTHETIC_BANNER = "SYNTHETIC DATA — not trained on your leads"
SYNTHETIC_LIMITATION = ("- **The training data is synthetic**: its effects are the generator's assumptions, not facts "
                        "about your leads.\n  Replace this model with one trained on your own conversions as soon "
                        "as there are enough.")


def write_gains_chart(y, scores, path: str | Path, *, title: str, synthetic: bool = False) -> Path:
    contacted, found = gains_curve(y, scores)
    if len(contacted) > MAX_CURVE_POINTS:
        keep = np.unique(np.linspace(0, len(contacted) - 1, MAX_CURVE_POINTS).round().astype(int))
        contacted, found = contacted[keep], found[keep]
    base_rate = float(np.mean(y))
    figure = Figure(figsize=(7, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(contacted, found, color="tab:blue", linewidth=2, label="model (out-of-fold)")
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", label="random contact")
    axes.plot([0, base_rate, 1], [0, 1, 1], color="tab:green", linestyle=":", label="perfect model")
    for pct in PCTS:
        captured = capture_at(y, scores, pct)
        axes.plot(pct / 100, captured, "o", color="tab:blue")
        axes.annotate(f"{pct}%: {captured:.0%}", (pct / 100, captured), textcoords="offset points",
                      xytext=(6, -12), fontsize=8)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("share of leads contacted (highest scores first)")
    axes.set_ylabel("cumulative share of converting leads found")
    axes.set_title(title + (f"\n{SYNTHETIC_BANNER}" if synthetic else ""), fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, format="png")
    return path


def _pct_table(metrics: dict) -> str:
    rows = ["| top % of leads | share of positives captured | lift |", "| --- | --- | --- |"]
    for pct in metrics["capture_at_pct"]:
        rows.append(f"| {pct}% | {metrics['capture_at_pct'][pct]:.1%} | {metrics['lift_at_pct'][pct]:.2f} |")
    return "\n".join(rows)


def model_card(metadata: dict, metrics: dict) -> str:
    synthetic = metadata["synthetic"]
    features = metadata["features"]
    columns = "\n".join(f"- `{name}` ({kind})" for name, kind in features["types"].items())
    dropped = "\n".join(f"- `{name}`: {reason}" for name, reason in features["dropped"].items()) or "- none"
    candidates = "\n".join(
        f"| {name} | {scores['roc_auc']:.3f} | {scores['pr_auc']:.3f} |"
        for name, scores in metrics["candidates"].items())
    banner = f"> **{SYNTHETIC_BANNER}.** {metadata.get('synthetic_note', '')}\n\n" if synthetic else ""
    title = "Lead conversion model" + (" (SYNTHETIC)" if synthetic else "")
    return f"""# {title} — {metadata['version']}

{banner}## Intended use

Ranks leads by their probability of converting (label column `{metadata['label']}` = 1) so that sales
and marketing contact the most promising first. `probability` is calibrated on the data it was trained
on; `lead_score` is `round(100 * probability, 1)`. Each score comes with the top factors for and against,
in log-odds units of the underlying model relative to an average training lead.

Not for: decisions about individuals with legal or similarly significant effects, data from a different
population or period than the training data without re-validation, or as a causal model (factors are
associations, not levers).

## Data

- source: {metadata['data']['source']}
- rows: {metrics['n_rows']}, positives: {metrics['n_positives']} (base rate {metrics['base_rate']:.1%})
- fingerprint: `sha256:{metadata['data']['fingerprint']}` ({metadata['data']['fingerprint_of']})
- id column: {f"`{features['id_column']}`" if features['id_column'] else 'none'}
- synthetic: {'**yes**' if synthetic else 'no'}

Columns used:

{columns}

Columns dropped:

{dropped}

## Model

- chosen: **{metrics['chosen_model']}** (best cross-validated {metrics['selection_metric']};
  ties go to the linear model)
- calibration: {metrics['calibration']} (CalibratedClassifierCV, {metrics['cv_folds']}-fold)
- class imbalance: class_weight="balanced", then calibrated back to the real base rate

| candidate | CV ROC-AUC | CV PR-AUC |
| --- | --- | --- |
{candidates}

## Metrics

Out-of-fold predictions of the whole procedure (candidate fitted and calibrated inside each of
{metrics['cv_folds']} stratified folds), so they estimate performance on unseen leads from the same population.

- ROC-AUC: {metrics['roc_auc']:.3f}
- PR-AUC (average precision): {metrics['pr_auc']:.3f} (random: {metrics['base_rate']:.3f})
- Brier score: {metrics['brier']:.4f}

{_pct_table(metrics)}

Gains chart: `gains.png`.

## Limitations

- Trained on {metrics['n_rows']} rows with {metrics['n_positives']} positives; rarer segments are estimated
  less reliably and categories seen fewer than {metadata['min_category_rows']} times are grouped as "infrequent".
- Date columns are not used; derive durations (e.g. days since last activity) before training.
- Probabilities assume the scored leads resemble the training leads; re-train and compare when the
  lead mix, the product or the conversion definition changes.
- Factors are per-row attributions ({metadata['explanation_method']}); they explain the model, not the world.
{SYNTHETIC_LIMITATION if synthetic else ''}

## Reproducibility

created {metadata['created_at']} with scikit-learn {metadata['library_versions']['sklearn']}, numpy
{metadata['library_versions']['numpy']}, pandas {metadata['library_versions']['pandas']}, Python
{metadata['library_versions']['python']}; random_state {metadata['random_state']}.
"""


def write_model_card(metadata: dict, metrics: dict, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(model_card(metadata, metrics), encoding="utf-8")
    return path
