"""Training data from a running system: its leads, labelled by the ``conversions`` table.

``marketing-agents train --from-conversions [--window-days N] --out DIR`` reads every lead whose
conversion window has closed and trains on it with ``training.train_frame``.

Rows
    One per lead created at least ``window_days`` ago (a younger lead that has not converted yet
    may still do so: its label is unknown, so it is left out rather than counted as a failure).
    Placeholder leads made by the interaction importer (``attributes.placeholder``) are left out:
    they have no firmographics to learn from.
Label (``converted``)
    1 when the lead has a conversion in ``[created_at, created_at + window_days)``, else 0.
Features
    Exactly what the triage agent hands the model when it scores a new lead
    (``actors.model_opinion.lead_features``), so that a model trained here scores in production the
    way it was evaluated: industry (normalised), company_size, seniority (from the job title),
    region, source, consented_channels (how many channels the lead consented to) and
    email_domain_type (free or corporate). The enrichment is the one triage stored for the lead
    (its first ``triage_results`` row: the lead as it was when it was scored), else computed now.
    Region rather than country: triage gives the model the region, so a model trained on countries
    would see none at scoring time. The two engagement columns of ``lead_features`` are left out:
    a new lead has no engagement yet, so at scoring time they are always 0 and would only teach the
    model about data it never sees.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pandas as pd
from pydantic import ValidationError

from marketing_agents.scoring_models.errors import TooFewExamplesError

LABEL = "converted"
ID_COLUMN = "lead_id"
FEATURES = ("industry", "company_size", "seniority", "region", "source", "consented_channels", "email_domain_type")
DEFAULT_WINDOW_DAYS = 90

_LEADS = """
SELECT l.*,
       (SELECT t.result -> 'enrichment' FROM triage_results t WHERE t.lead_id = l.id
        ORDER BY t.triaged_at, t.id LIMIT 1) AS stored_enrichment,
       EXISTS (SELECT 1 FROM conversions c
               WHERE c.lead_id = l.id AND c.converted_at >= l.created_at
                 AND c.converted_at < l.created_at + make_interval(days => $1::integer)) AS converted
FROM leads l
WHERE l.created_at <= $2::timestamptz - make_interval(days => $1::integer)
  AND NOT coalesce((l.attributes ->> 'placeholder')::boolean, false)
ORDER BY l.created_at, l.id
"""


@dataclass
class ConversionData:
    """The training frame and where it came from."""

    frame: pd.DataFrame
    window_days: int
    as_of: datetime
    skipped: int  # stored leads that no longer validate as a Lead (reported, not trained on)

    @property
    def cutoff(self) -> datetime:
        return self.as_of - timedelta(days=self.window_days)

    @property
    def positives(self) -> int:
        return int(self.frame[LABEL].sum())

    @property
    def negatives(self) -> int:
        return len(self.frame) - self.positives

    def describe(self) -> str:
        return (f"{len(self.frame)} leads created on or before {self.cutoff:%Y-%m-%d}: {self.positives} converted "
                f"within {self.window_days} days, {self.negatives} did not")


async def load_conversion_data(pool: asyncpg.Pool, window_days: int = DEFAULT_WINDOW_DAYS,
                               as_of: datetime | None = None) -> ConversionData:
    """Reads the leads and their labels (see the module docstring); ``as_of`` defaults to the database's now()."""
    from marketing_agents.actors.enrichment import Enricher

    if window_days < 1:
        raise ValueError("window_days must be at least 1")
    as_of = as_of or await pool.fetchval("SELECT now()")
    enricher = Enricher()
    rows, skipped = [], 0
    for record in await pool.fetch(_LEADS, window_days, as_of):
        features = stored_lead_features(record, enricher)
        if features is None:
            skipped += 1
            continue
        rows.append({ID_COLUMN: str(record["id"]), **{name: features[name] for name in FEATURES},
                     LABEL: int(record["converted"])})
    frame = pd.DataFrame(rows, columns=[ID_COLUMN, *FEATURES, LABEL])
    return ConversionData(frame=frame, window_days=window_days, as_of=as_of, skipped=skipped)


def stored_lead_features(record, enricher) -> dict | None:
    """What triage gives the model (``lead_features``) for a stored lead row with its ``stored_enrichment``.

    The enrichment triage stored is used when there is one (the lead as it was scored), else it is
    computed now. None when the stored row no longer validates as a Lead.
    """
    from marketing_agents.actors.model_opinion import lead_features
    from marketing_agents.domain import Lead
    from marketing_agents.domain.triage import LeadEnrichment

    try:
        lead = Lead.model_validate({key: record[key] for key in Lead.model_fields})
    except ValidationError:
        return None
    enrichment = None
    if record["stored_enrichment"] is not None:
        try:
            enrichment = LeadEnrichment.model_validate(record["stored_enrichment"])
        except ValidationError:
            enrichment = None
    return lead_features(lead, enrichment or enricher.enrich(lead))


def check_enough_outcomes(data: ConversionData, cv: int) -> None:
    """Refuses, naming the counts, when a class has fewer than 2 rows per fold."""
    needed = 2 * cv
    if data.positives >= needed and data.negatives >= needed:
        return
    short = " and ".join(what for what, count in (("converted", data.positives), ("unconverted", data.negatives))
                         if count < needed)
    raise TooFewExamplesError(
        f"too few {short} leads to train from the conversions table: {data.describe()}. {cv}-fold "
        f"cross-validation needs at least {needed} of each (2 per fold); wait for more outcomes, use fewer folds "
        f"(--cv) or another --window-days")


def train_from_conversions(dsn: str, out_dir: str | Path, *, window_days: int = DEFAULT_WINDOW_DAYS, cv: int = 5,
                           source_name: str | None = None, progress: Callable[[str], None] | None = None):
    """Reads the conversion data from the database at ``dsn`` and trains on it; returns the TrainResult.

    Raises TooFewExamplesError (before training) when a class is too small for ``cv`` folds.
    """
    from marketing_agents.scoring_models.training import train_frame
    from marketing_agents.stores.postgres import init_connection

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
