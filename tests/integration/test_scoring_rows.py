"""The online path (``Scorer.score_rows``, one lead per request) says exactly what the pipeline says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from marketing_agents.scoring_models.features import LINEAR, TREE
from marketing_agents.scoring_models.model import Scorer
from marketing_agents.scoring_models.training import train_frame
from tests.integration.test_scoring_training import known_signal_leads


@pytest.fixture(scope="module", params=[LINEAR, TREE])
def scorer(request, tmp_path_factory) -> Scorer:
    out = tmp_path_factory.mktemp(f"rows-{request.param}")
    train_frame(known_signal_leads(2000, seed=3), "converted", out, id_column="lead_id", cv=3,
                candidates=[request.param])
    return Scorer.load(out)


def rows_with_odd_values(n: int) -> list[dict]:
    """Typical rows plus what callers actually send: missing keys, None, blanks, numbers as text,
    unseen categories, infinities."""
    frame = known_signal_leads(n, seed=11, label=False)
    rows = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in frame.to_dict("records")]
    rows += [{}, {"intent": None, "plan": None}, {"intent": " 1.5 ", "plan": " team "}, {"intent": "high"},
             {"plan": "platinum", "colour": "ultraviolet"}, {"intent": float("inf"), "noise": 7},
             {"plan": "", "colour": "   "}, {"intent": 2, "plan": 3}]
    return rows


def test_rows_score_as_the_frame_does(scorer):
    rows = rows_with_odd_values(300)
    frame = pd.DataFrame([{column: row.get(column) for column in scorer.feature_columns} for row in rows])
    expected = scorer.score_frame(frame, explain=True, top=3)

    scored = scorer.score_rows(rows, top=3)
    again = scorer.score_rows(rows, top=3)  # now from the remembered encodings

    for answer in (scored, again):
        np.testing.assert_allclose([s.probability for s in answer], expected["probability"], rtol=0, atol=1e-12)
        assert [s.top_factors_for for s in answer] == list(expected["top_factors_for"])
        assert [s.top_factors_against for s in answer] == list(expected["top_factors_against"])


def test_one_row_at_a_time_is_the_same_as_all_at_once(scorer):
    rows = rows_with_odd_values(50)
    one_by_one = [scorer.score_rows([row])[0] for row in rows]
    together = scorer.score_rows(rows)
    np.testing.assert_allclose([s.probability for s in one_by_one], [s.probability for s in together],
                               rtol=0, atol=1e-12)
    assert [(s.top_factors_for, s.top_factors_against) for s in one_by_one] == \
        [(s.top_factors_for, s.top_factors_against) for s in together]
