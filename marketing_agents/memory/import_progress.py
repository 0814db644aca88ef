"""Progress of a long import on the terminal, kept apart from the import so any caller can draw its own.

An import reports ``progress(done, total)``; TextProgressBar is the callback the CLI passes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

# progress(done, total): called by an import as it goes; done == total at the end.
Progress = Callable[[int, int], None]


class TextProgressBar:
    """A ``progress(done, total)`` callback drawing ``[#####     ] 35,000/70,000 rows`` on stderr.

    Redraws at most once per ``min_interval_s`` (the last update, done == total, is always drawn).
    On a terminal it redraws one line in place and ``close()`` ends that line; elsewhere (a log file,
    a pipe) each drawing is a line of its own.
    """

    def __init__(self, stream: TextIO | None = None, *, width: int = 30, unit: str = "rows",
                 min_interval_s: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self.width = width
        self.unit = unit
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._last_drawn_at: float | None = None
        self._last_state: tuple[int, int] | None = None
        self._drawn_width = 0

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def render(self, done: int, total: int) -> str:
        filled = self.width if total <= 0 else min(self.width, self.width * done // total)
        return f"[{'#' * filled}{' ' * (self.width - filled)}] {done:,}/{total:,} {self.unit}"

    def __call__(self, done: int, total: int) -> None:
        if (done, total) == self._last_state:
            return
        now = self._clock()
        final = done >= total
        if not final and self._last_drawn_at is not None and now - self._last_drawn_at < self.min_interval_s:
            return
        self._last_drawn_at, self._last_state = now, (done, total)
        text = self.render(done, total)
        stream = self.stream
        if self._isatty(stream):
            stream.write("\r" + text.ljust(self._drawn_width))
            self._drawn_width = len(text)
        else:
            stream.write(text + "\n")
        stream.flush()

    def close(self) -> None:
        """Ends the line drawn on a terminal; harmless when nothing was drawn."""
        if self._drawn_width:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn_width = 0

    def __enter__(self) -> TextProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _isatty(stream: TextIO) -> bool:
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False
