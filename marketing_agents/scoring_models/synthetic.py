"""A synthetic lead generator, and the default model a new installation starts with.

Nothing here describes real leads. The generator exists so that a fresh installation can rank leads
from the first minute, and so that tests have data with a known signal. Every model trained from it
is labelled synthetic: ``model.json`` has ``"synthetic": true``, the model card and gains chart carry
"SYNTHETIC DATA — not trained on your leads", and the registry version name ends in ``-synthetic``.

Assumptions of ``generate_leads(rows, seed)`` (one row per lead, columns in this order):

========================  =====================================================================
column                    distribution
========================  =====================================================================
lead_id                   ``lead-000001`` ... (the id column; not a feature)
industry                  software 22%, manufacturing 14%, financial_services 14%, healthcare
                          12%, retail 12%, other 12%, education 8%, government 6%; 2% missing
company_size              employees, log-normal around 120 (sigma 1.4 in log space), 1..200 000;
                          4% missing
seniority                 derived from a generated job title by :func:`seniority_from_title`:
                          c_level 5%, vp 7%, director 13%, manager 25%, individual 42%, unknown 8%
region                    north_america 40%, emea 32%, apac 18%, latam 10%
source                    organic_search 25%, paid_search 20%, outbound 15%, social 12%,
                          referral 10%, event 10%, partner 8%
consented_channels        0..3 channels (email, sms, phone) with 15/45/28/12%
email_domain_type         corporate 62%, free 33%, education 5%
engagement_events_30d     Poisson with rate ``exp(0.6 + 0.8 z)``, ``z`` a latent interest ~ N(0, 1)
days_since_last_activity  0..29 (exponential, mean 7) for engaged leads, 30 + exponential(mean 60)
                          for the others, capped at 365; 6% missing (never active)
converted                 the label, see below
========================  =====================================================================

Label: ``converted ~ Bernoulli(sigmoid(logit))`` with ``logit = b0 + sum of effects + noise``:

* industry: software +0.6, financial_services +0.3, healthcare +0.1, manufacturing 0, retail -0.2,
  other -0.2, government -0.3, education -0.4, missing -0.1
* company size: +0.35 per decade of employees above 100 (missing counts as 100)
* seniority: c_level +0.7, vp +0.6, director +0.4, manager +0.2, individual 0, unknown -0.3
* region: north_america +0.2, emea 0, apac -0.1, latam -0.2
* source: referral +0.8, event +0.5, partner +0.4, organic_search +0.2, paid_search 0, social -0.3,
  outbound -0.4
* consented channels: +0.25 each; email domain: corporate +0.3, free -0.4, education -0.6
* engagement: +0.9 * log(1 + events); recency: -0.02 per day since last activity up to 90 days
  (missing counts as 90); interaction: engagement counts 50% more for corporate e-mail domains
* noise: 0.6 * (the part of the latent interest ``z`` not seen through engagement) + N(0, 0.5)
* ``b0`` is found by bisection so that the mean conversion probability is ``BASE_RATE`` (12%).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable

import numpy as np
import pandas as pd

LABEL = "converted"
ID_COLUMN = "lead_id"
BASE_RATE = 0.12
DEFAULT_ROWS = 20_000
DEFAULT_SEED = 7
SYNTHETIC_NOTE = ("Trained on leads made up by marketing_agents.scoring_models.synthetic (see its documented "
                  "assumptions), so that a new installation can rank leads from the start. Its effects are "
                  "assumptions, not facts about your leads.")

INDUSTRY = {"software": (0.22, 0.6), "manufacturing": (0.14, 0.0), "financial_services": (0.14, 0.3),
            "healthcare": (0.12, 0.1), "retail": (0.12, -0.2), "other": (0.12, -0.2), "education": (0.08, -0.4),
            "government": (0.06, -0.3)}
TITLES = {
    "c_level": (0.05, 0.7, ["CEO", "Chief Marketing Officer", "CTO", "Founder & CEO", "COO"]),
    "vp": (0.07, 0.6, ["VP Marketing", "Vice President of Sales", "SVP Engineering", "VP Operations"]),
    "director": (0.13, 0.4, ["Director of Marketing", "IT Director", "Head of Growth", "Sales Director"]),
    "manager": (0.25, 0.2, ["Marketing Manager", "Product Manager", "Team Lead", "Operations Manager"]),
    "individual": (0.42, 0.0, ["Software Engineer", "Marketing Specialist", "Analyst", "Account Executive",
                               "Designer", "Consultant"]),
    "unknown": (0.08, -0.3, ["", "n/a", "Student", "Other"]),
}
REGION = {"north_america": (0.40, 0.2), "emea": (0.32, 0.0), "apac": (0.18, -0.1), "latam": (0.10, -0.2)}
SOURCE = {"organic_search": (0.25, 0.2), "paid_search": (0.20, 0.0), "outbound": (0.15, -0.4),
          "social": (0.12, -0.3), "referral": (0.10, 0.8), "event": (0.10, 0.5), "partner": (0.08, 0.4)}
CHANNELS = (0.15, 0.45, 0.28, 0.12)
DOMAIN = {"corporate": (0.62, 0.3), "free": (0.33, -0.4), "education": (0.05, -0.6)}

_SENIORITY_RULES = (
    ("vp", re.compile(r"\b(vp|svp|evp|vice president)\b", re.I)),
    ("c_level", re.compile(r"\b(ceo|cto|cfo|coo|cmo|cio|chief|founder|president|owner)\b", re.I)),
    ("director", re.compile(r"\b(director|head of)\b", re.I)),
    ("manager", re.compile(r"\b(manager|lead|supervisor)\b", re.I)),
    ("individual", re.compile(r"\b(engineer|specialist|analyst|executive|designer|consultant|developer|"
                              r"associate|coordinator|representative)\b", re.I)),
)


def seniority_from_title(title: str | None) -> str:
    """c_level, vp, director, manager, individual or unknown, by the first matching keyword rule."""
    if not title or not isinstance(title, str):
        return "unknown"
    for level, pattern in _SENIORITY_RULES:
        if pattern.search(title):
            return level
    return "unknown"


def _draw(rng: np.random.Generator, table: dict, n: int) -> np.ndarray:
    names = list(table)
    weights = np.array([table[name][0] for name in names])
    return rng.choice(np.array(names, dtype=object), size=n, p=weights / weights.sum())


def _intercept_for(logit_without_b0: np.ndarray, base_rate: float) -> float:
    low, high = -20.0, 20.0
    for _ in range(100):
        mid = (low + high) / 2
        if np.mean(1 / (1 + np.exp(-(logit_without_b0 + mid)))) < base_rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def generate_leads(rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED, base_rate: float = BASE_RATE) -> pd.DataFrame:
    """``rows`` synthetic leads with a ``converted`` label; deterministic for a given ``seed``."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    rng = np.random.default_rng(seed)
    n = rows
    industry = _draw(rng, INDUSTRY, n)
    industry[rng.random(n) < 0.02] = None
    size = np.clip(np.round(np.exp(rng.normal(np.log(120), 1.4, n))), 1, 200_000)
    size_missing = rng.random(n) < 0.04
    levels = _draw(rng, {level: (spec[0], spec[1]) for level, spec in TITLES.items()}, n)
    titles = np.array([TITLES[level][2][rng.integers(len(TITLES[level][2]))] for level in levels], dtype=object)
    seniority = np.array([seniority_from_title(title) for title in titles], dtype=object)
    region = _draw(rng, REGION, n)
    source = _draw(rng, SOURCE, n)
    channels = rng.choice(4, size=n, p=CHANNELS)
    domain = _draw(rng, DOMAIN, n)
    interest = rng.normal(0, 1, n)
    events = rng.poisson(np.exp(0.6 + 0.8 * interest))
    days = np.where(events > 0, np.minimum(rng.exponential(7, n), 29.0), 30 + rng.exponential(60, n))
    days = np.minimum(np.floor(days), 365)
    days_missing = rng.random(n) < 0.06

    lookup = lambda table, values: np.array([table[v][1] if v is not None else -0.1 for v in values])  # noqa: E731
    corporate = domain == "corporate"
    logit = (lookup(INDUSTRY, industry)
             + 0.35 * (np.log10(np.where(size_missing, 100.0, size)) - 2)
             + np.array([TITLES[level][1] for level in seniority])
             + lookup(REGION, region) + lookup(SOURCE, source) + 0.25 * channels + lookup(DOMAIN, domain)
             + 0.9 * np.log1p(events) * np.where(corporate, 1.5, 1.0)
             - 0.02 * np.minimum(np.where(days_missing, 90.0, days), 90)
             + 0.6 * (interest - 0.8 * np.log1p(events)) + rng.normal(0, 0.5, n))
    b0 = _intercept_for(logit, base_rate)
    converted = (rng.random(n) < 1 / (1 + np.exp(-(logit + b0)))).astype(np.int8)

    return pd.DataFrame({
        ID_COLUMN: [f"lead-{i:06d}" for i in range(1, n + 1)],
        "industry": pd.Series(industry, dtype=object),
        "company_size": pd.Series(np.where(size_missing, np.nan, size)),
        "seniority": pd.Series(seniority, dtype=object),
        "region": pd.Series(region, dtype=object),
        "source": pd.Series(source, dtype=object),
        "consented_channels": channels.astype(np.int64),
        "email_domain_type": pd.Series(domain, dtype=object),
        "engagement_events_30d": events.astype(np.int64),
        "days_since_last_activity": pd.Series(np.where(days_missing, np.nan, days)),
        LABEL: converted,
    })


def ensure_default_model(registry, rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED, *, cv: int = 5,
                         progress: Callable[[str], None] | None = None) -> str | None:
    """When ``registry`` holds no version at all: trains a model on ``generate_leads(rows, seed)``,
    registers it (name ends in ``-synthetic``), promotes it and returns its version. Otherwise returns
    the active version without training (``None`` if versions exist but none is active: an operator
    registered models and has not promoted one, which is left to them). Holds the registry lock
    throughout, so concurrent first starts train once."""
    from marketing_agents.scoring_models.training import train_frame

    with registry.locked():
        if registry.versions():
            return registry.active()
        frame = generate_leads(rows, seed)
        with tempfile.TemporaryDirectory(dir=registry.root, prefix=".train-") as staging:
            train_frame(frame, LABEL, staging, id_column=ID_COLUMN, cv=cv, synthetic=True,
                        synthetic_note=SYNTHETIC_NOTE, source=f"synthetic generator (rows={rows}, seed={seed})",
                        progress=progress)
            version = registry.register(staging)
        registry.promote(version)
        return version
