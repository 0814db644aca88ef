"""Which characters a stored string may hold: one rule for every door (REST bodies, MCP arguments,
query strings, the models themselves).

PostgreSQL ``text`` cannot hold NUL, and a lone surrogate (``"\\ud800"``, valid in JSON) cannot be
encoded as UTF-8 at all: either would fail at the driver, after the request was accepted. A name goes
further, into an email's headers and subject, where a line break (``\\r``, ``\\n``, U+0085, U+2028,
U+2029) or another control character starts a new header or breaks the message: a one-line field
refuses every control and line or paragraph separator character.
"""

from __future__ import annotations

import re

from pydantic import AfterValidator

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Control characters (C0, DEL, C1 with U+0085), the line and paragraph separators U+2028 and U+2029,
# and what cannot be stored at all.
_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _describe(char: str, position: int) -> str:
    return f"U+{ord(char):04X} at character {position}"


def storable_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored (NUL or a lone surrogate), None when it can. Names the character
    and its position, never the value: the value may be personal data and ends up in logs and answers."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    kind = "NUL" if found.group() == "\x00" else "a lone surrogate"
    return f"must not contain {kind}; found {_describe(found.group(), found.start())}"


def one_line_problem(value: str) -> str | None:
    """Why ``value`` cannot be a one-line field (a name, a company...), None when it can."""
    found = _NOT_ONE_LINE.search(value)
    if found is None:
        return None
    return f"must be one line without control characters; found {_describe(found.group(), found.start())}"


def _storable(value: str) -> str:
    problem = storable_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _one_line(value: str) -> str:
    problem = one_line_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# Validators to put after a string's own constraints (``Annotated[str, StringConstraints(...), ONE_LINE]``),
# so that a too long or empty value keeps pydantic's own error (``string_too_long``) and these run last.
# Free text that may span lines (an objective, a reason): storable, nothing more.
STORABLE = AfterValidator(_storable)
# A name, a company, a job title: what may reach an email header or subject.
ONE_LINE = AfterValidator(_one_line)

