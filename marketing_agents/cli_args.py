"""Argument types shared by the CLI's verbs: each names what is wrong with a bad value."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def bounded_int(low: int, high: int | None = None, what: str = "") -> Callable[[str], int]:
    """An argparse type for a whole number in ``low..high`` (no upper bound when ``high`` is None)."""
    noun = f" {what}" if what else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number{noun}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"needs at least {low}{noun}, not {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{value} is more than {high}{noun}")
        return value

    return parse
