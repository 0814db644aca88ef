"""A model saved before the package's layout changed still loads and scores the same.

``tests/data/models/saved-by-0.1.0`` is the synthetic default model as the previous layout trained
and wrote it (commit 262d101); the expected figures below are what that version's ``Scorer`` gave for
the same two rows. ``model.joblib`` is a pickle: it names the classes it holds by module path, so
those paths are part of the saved format and may not move without a loader that maps them.
"""

from __future__ import annotations

import io
import pickletools
from pathlib import Path

import pytest

from marketing_agents.scoring_models.model import MODEL_FILE, Scorer

SAVED = Path(__file__).resolve().parent.parent / "data" / "models" / "saved-by-0.1.0"
# Module paths saved models refer to; moving a class out of one breaks every model already saved.
PICKLED_MODULES = {"marketing_agents.scoring_models.model", "marketing_agents.scoring_models.features"}

ROWS = [
    {"industry": "software", "company_size": 850, "seniority": "vp", "region": "emea", "source": "demo_request",
     "consented_channels": 3, "email_domain_type": "corporate", "engagement_events_30d": 0,
     "days_since_last_activity": 0},
    {"industry": "retail", "company_size": 12, "seniority": "individual", "region": None, "source": "purchased_list",
     "consented_channels": 1, "email_domain_type": "free", "engagement_events_30d": 0, "days_since_last_activity": 0},
]
SCORED_BY_0_1_0 = [
    (0.3390151515151515,
     "days_since_last_activity=0 (+0.67); email_domain_type=corporate (+0.49); industry=software (+0.47)",
     "engagement_events_30d=0 (-0.64); region=emea (-0.04)"),
    (0.02313624678663239,
     "days_since_last_activity=0 (+0.67); source=purchased_list (+0.14); region=missing (+0.09)",
     "email_domain_type=free (-0.78); engagement_events_30d=0 (-0.64); industry=retail (-0.15)"),
]


def pickled_modules(path: Path) -> set[str]:
    """The package's modules a pickle imports when it is loaded."""
    strings = [arg for op, arg, _ in pickletools.genops(io.BytesIO(path.read_bytes()))
               if isinstance(arg, str) and op.name in ("GLOBAL", "SHORT_BINUNICODE", "BINUNICODE", "UNICODE")]
    return {s.split(" ")[0] for s in strings if s.startswith("marketing_agents.")}


def test_a_model_saved_by_the_previous_layout_scores_as_it_did():
    scored = Scorer.load(SAVED).score_rows(ROWS, top=3)
    assert [row.probability for row in scored] == pytest.approx([p for p, _, _ in SCORED_BY_0_1_0], abs=1e-12)
    assert [(row.top_factors_for, row.top_factors_against) for row in scored] == [
        (pro, con) for _, pro, con in SCORED_BY_0_1_0]


def test_saved_models_refer_only_to_module_paths_that_still_exist():
    assert pickled_modules(SAVED / MODEL_FILE) == PICKLED_MODULES
    for module in PICKLED_MODULES:
        assert (Path(__file__).resolve().parents[2] / (module.replace(".", "/") + ".py")).is_file(), module
