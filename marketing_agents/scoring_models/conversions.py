"""Training data from a running system: its leads, labelled by the ``conversions`` table.

``marketing-agents train --from-conversions [--window-days N] --out DIR`` reads every lead whose
conversion window has closed (``flows.conversion_training``) and trains on it with ``training.train_frame``.

Rows
    One per lead created at least ``window_days`` ago (a younger lead that has not converted yet
    may still do so: its label is unknown, so it is left out rather than counted as a failure).
    Placeholder leads made by the interaction importer (``attributes.placeholder``) are left out:
    they have no firmographics to learn from.
Label (``converted``)
    1 when the lead has a conversion in ``[created_at, created_at + window_days)``, else 0.
Features
    Exactly what the triage agent hands the model when it scores a new lead
    (``scoring_models.lead_features``), so that a model trained here scores in production the
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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from marketing_agents.domain import Lead
from marketing_agents.domain.triage import LeadEnrichment, StoredLead
from marketing_agents.scoring_models.errors import TooFewExamplesError
from marketing_agents.scoring_models.lead_features import stored_lead_features

LABEL = "converted"
ID_COLUMN = "lead_id"
FEATURES = ("industry", "company_size", "seniority", "region", "source", "consented_channels", "email_domain_type")
DEFAULT_WINDOW_DAYS = 90

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


def conversion_frame(leads: list[StoredLead], enrich: Callable[[Lead], LeadEnrichment]) -> tuple[pd.DataFrame, int]:
    """The training frame of leads read with their outcome, and how many stored rows were skipped
    because they no longer validate as a Lead."""
    rows, skipped = [], 0
    for stored in leads:
        features = stored_lead_features(stored, enrich)
        if features is None:
            skipped += 1
            continue
        rows.append({ID_COLUMN: str(stored.lead_id), **{name: features[name] for name in FEATURES},
                     LABEL: int(bool(stored.converted))})
    return pd.DataFrame(rows, columns=[ID_COLUMN, *FEATURES, LABEL]), skipped


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
