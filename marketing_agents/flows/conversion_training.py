"""Training from the running system's own conversions: read the leads and their outcomes, give them
the features triage gives the model (with triage's stored enrichment, else a fresh one), train.

The definition of rows, label and features is in ``scoring_models.conversions``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import asyncpg

from marketing_agents.actors.enrichment import Enricher
from marketing_agents.scoring_models.conversions import (
    DEFAULT_WINDOW_DAYS,
    ID_COLUMN,
    LABEL,
    ConversionData,
    check_enough_outcomes,
    conversion_frame,
)
from marketing_agents.scoring_models.training import TrainResult, train_frame
from marketing_agents.stores.lead_scores import ConversionReads
from marketing_agents.stores.postgres import init_connection


async def load_conversion_data(pool: asyncpg.Pool, window_days: int = DEFAULT_WINDOW_DAYS,
                               as_of: datetime | None = None) -> ConversionData:
    """Reads the leads and their labels; ``as_of`` defaults to the database's now()."""
    if window_days < 1:
        raise ValueError("window_days must be at least 1")
    reads = ConversionReads(pool)
    as_of = as_of or await reads.now()
    frame, skipped = conversion_frame(await reads.leads_with_outcome(window_days, as_of), Enricher().enrich)
    return ConversionData(frame=frame, window_days=window_days, as_of=as_of, skipped=skipped)


def train_from_conversions(dsn: str, out_dir: str | Path, *, window_days: int = DEFAULT_WINDOW_DAYS, cv: int = 5,
                           source_name: str | None = None,
                           progress: Callable[[str], None] | None = None) -> TrainResult:
    """Reads the conversion data from the database at ``dsn`` and trains on it.

    Raises TooFewExamplesError (before training) when a class is too small for ``cv`` folds.
    """

    async def load() -> ConversionData:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=init_connection)
        try:
            return await load_conversion_data(pool, window_days)
        finally:
            await pool.close()

    data = asyncio.run(load())
    say = progress or (lambda line: None)
    say(data.describe() + (f"; {data.skipped} stored leads skipped (no longer valid)" if data.skipped else ""))
    check_enough_outcomes(data, cv)
    source = (f"conversions table of {source_name or 'PostgreSQL'}: leads created on or before "
              f"{data.cutoff:%Y-%m-%d}, label = converted within {window_days} days of creation")
    return train_frame(data.frame, LABEL, out_dir, id_column=ID_COLUMN, cv=cv, source=source, progress=progress)
