"""Reading lead tables, fingerprinting them and validating the label column.

Supported files: ``.csv`` / ``.csv.gz`` (comma separated, header row), ``.tsv`` / ``.tsv.gz`` (tab
separated) and ``.parquet`` / ``.pq``. Anything else is refused with :class:`DataFileError` rather than
guessed at.

A label is binary when its non-missing values are two of: 0/1 (int, float or bool), true/false, yes/no,
y/n, t/f (strings, any case). The positive class is 1/true/yes. Any other pair (e.g. "won"/"lost") is
refused with a message listing what was found, because guessing which one is the positive class would
silently invert the model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from marketing_agents.scoring_models.errors import DataFileError, FeatureError, LabelError, TooFewExamplesError

CSV_SUFFIXES = (".csv", ".csv.gz")
TSV_SUFFIXES = (".tsv", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
SUPPORTED = CSV_SUFFIXES + TSV_SUFFIXES + PARQUET_SUFFIXES

_TRUE = {"1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "n", "f"}


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(TSV_SUFFIXES):
        return "tsv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    suffix = "".join(path.suffixes) or "(none)"
    raise DataFileError(f"unsupported file type '{suffix}' for {path}: use one of {', '.join(SUPPORTED)}")


def load_table(path: str | Path) -> pd.DataFrame:
    """Reads a CSV/TSV/Parquet table of leads; raises :class:`DataFileError` naming what is wrong."""
    path = Path(path)
    kind = _kind(path)
    if not path.exists():
        raise DataFileError(f"data file not found: {path}")
    if not path.is_file():
        raise DataFileError(f"data path is not a file: {path}")
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="," if kind == "csv" else "\t", low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataFileError(f"data file is empty: {path}") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataFileError(f"cannot read {path} as {kind}: {exc}") from None
    if frame.empty:
        raise DataFileError(f"data file has no rows: {path}")
    frame.columns = [str(column) for column in frame.columns]
    return frame


def file_fingerprint(path: str | Path) -> str:
    """sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the frame's canonical CSV: header plus rows in order, no index, ``\\n`` line ends."""
    text = frame.to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def binary_label(frame: pd.DataFrame, label: str) -> np.ndarray:
    """The label column as an int8 array of 0/1, or :class:`LabelError` saying why it is not binary."""
    if label not in frame.columns:
        raise LabelError(f"label column '{label}' not found; the columns are: {', '.join(map(str, frame.columns))}")
    column = frame[label]
    missing = int(column.isna().sum())
    if missing:
        raise LabelError(f"label column '{label}' has {missing} missing value(s); drop or fill those rows first")
    if pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=bool).astype(np.int8)
    text = column.astype(str).str.strip().str.lower()
    values = sorted(text.unique())
    shown = ", ".join(repr(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")
    if len(values) != 2:
        what = "only one value" if len(values) == 1 else f"{len(values)} distinct values"
        raise LabelError(f"label column '{label}' must be binary (0/1, true/false, yes/no) but has {what}: {shown}")
    seen = set(values)
    if seen <= _TRUE | _FALSE and seen & _TRUE and seen & _FALSE:
        return text.isin(_TRUE).to_numpy().astype(np.int8)
    raise LabelError(f"label column '{label}' must be binary with 0/1, true/false or yes/no values, "
                     f"so that the positive class is known; found: {shown}")


def check_enough_examples(y: np.ndarray, label: str, cv: int) -> None:
    """Each class needs ``2 * cv`` rows: every fold then has both classes and calibration can be nested."""
    if not isinstance(cv, (int, np.integer)) or isinstance(cv, bool) or cv < 2:
        raise TooFewExamplesError(f"--cv must be an integer of at least 2 (got {cv!r})")
    needed = 2 * cv
    positives = int(y.sum())
    negatives = int(len(y) - positives)
    for count, name in ((positives, "positive"), (negatives, "negative")):
        if count < needed:
            raise TooFewExamplesError(
                f"label column '{label}' has only {count} {name} row(s); {cv}-fold cross-validation needs at "
                f"least {needed} (2 per fold): use fewer folds (--cv) or more data")


def check_id_column(frame: pd.DataFrame, id_column: str | None) -> None:
    if id_column is not None and id_column not in frame.columns:
        raise FeatureError(f"id column '{id_column}' not found; the columns are: {', '.join(map(str, frame.columns))}")
