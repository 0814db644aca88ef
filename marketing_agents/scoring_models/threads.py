"""How many native threads (OpenMP, BLAS) model fitting and scoring may use.

Default: 1, set by ``MAS_SCORING_THREADS``. HistGradientBoosting's OpenMP threads busy-wait for each
other; on a machine whose cores are shared with other work (the Ray workers of this system, CI) two
threads measured 10-60x slower than one. Scoring parallelism belongs to the callers (more replicas),
so a single thread per call is the sensible default; raise it on a dedicated multi-core machine.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from functools import lru_cache

from threadpoolctl import ThreadpoolController


def scoring_threads() -> int:
    try:
        return max(1, int(os.environ.get("MAS_SCORING_THREADS", "1")))
    except ValueError:
        return 1


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime before the controller looks for it)

    return ThreadpoolController()


def limited_threads() -> AbstractContextManager:
    """Context manager limiting OpenMP and BLAS pools to :func:`scoring_threads` (cheap: ~60 µs)."""
    return _controller().limit(limits=scoring_threads())
