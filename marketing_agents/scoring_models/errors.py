"""Errors a user of the scoring models causes, each naming the problem.

Every one is a ``ScoringError``, which is both a ``ValueError`` (as the scoring API promises) and a
:class:`marketing_agents.errors.RequestError`, so the CLI's ``main`` prints it as ``error: <message>``
with exit status 1 and the HTTP layer answers it with status 400, without either knowing about it.
"""

from __future__ import annotations

from marketing_agents.errors import RequestError


class ScoringError(RequestError, ValueError):
    """Base class: bad input to training or scoring, or a registry request that cannot be met."""

    code = "scoring_error"


class DataFileError(ScoringError):
    """The data file is missing, of an unknown type, empty or unreadable."""


class LabelError(ScoringError):
    """The label column is missing, not binary, or has missing values."""


class TooFewExamplesError(ScoringError):
    """Too few positive (or negative) rows for the requested number of cross-validation folds."""


class FeatureError(ScoringError):
    """No usable feature columns, an unknown id column, or columns a model needs missing at scoring time."""


class ModelNotFoundError(ScoringError):
    """A model directory or registry version that does not exist, or no active version."""

    status_code = 404
    code = "model_not_found"


class RegistryError(ScoringError):
    """A registry operation that cannot be done (e.g. rollback with no earlier version)."""

    status_code = 409
    code = "registry_conflict"
