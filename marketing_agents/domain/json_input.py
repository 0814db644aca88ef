"""Request JSON that parses but cannot be taken: the one decoding rule of the REST bodies and the MCP
messages.

Python's ``json`` accepts ``NaN`` and ``Infinity`` (not JSON by RFC 8259), turns ``1e400`` into
infinity, and reads integers of any size; JSON strings may hold ``\\u0000`` and lone surrogates. None
of these can be stored (PostgreSQL has no NUL in text, UTF-8 has no surrogates, ``bigint`` stops at
64 bits), so each would fail deep in a store after the request was accepted, a 500 with the value in
the log. Decoding refuses them up front, each with the JSON path of where it was, and never echoes the
value (it may be personal data). Nesting deeper than any request needs is refused too, before Python's
own recursion limit turns it into a crash.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from marketing_agents.domain.limits import INT64_MAX
from marketing_agents.domain.text import storable_problem

# No request of this API nests deeper than a handful of levels (an MCP message around a batch of leads
# with their attributes is 6); a generous bound that still keeps walking and validating cheap.
MAX_JSON_DEPTH = 32
# Problems listed per request: enough to show a client its mistakes, bounded for a hostile body.
MAX_PROBLEMS = 20

JsonPath = tuple[str | int, ...]


@dataclass(frozen=True)
class JsonProblem:
    """One value the decoder refused: where (the path inside the document), why, and the kind of problem
    (``json_not_finite``, ``json_int_too_big``, ``json_unstorable_string``, ``json_too_deep``)."""

    path: JsonPath
    message: str
    type: str

    def as_error(self) -> dict[str, Any]:
        """In pydantic's ``errors()`` shape, so that the field-error helpers format it as any other."""
        return {"loc": self.path, "msg": self.message, "type": self.type}


class UnsafeJson(ValueError):
    """A document that parses but holds values no store can take."""

    def __init__(self, problems: list[JsonProblem]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, p.path)) or '(document)'}: {p.message}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class _Refused:
    message: str
    type: str


_NOT_FINITE = _Refused("NaN and Infinity are not JSON numbers", "json_not_finite")
_TOO_LARGE_FLOAT = _Refused("the number is beyond the range of a 64-bit float", "json_not_finite")
_TOO_BIG_INT = _Refused(f"the integer is beyond 64 bits (at most {INT64_MAX} in magnitude)", "json_int_too_big")


def _constant(name: str) -> _Refused:
    return _NOT_FINITE


def _float(text: str) -> float | _Refused:
    value = float(text)
    return value if math.isfinite(value) else _TOO_LARGE_FLOAT


def _int(text: str) -> int | _Refused:
    if len(text) > 20:  # never converts a huge digit string (Python refuses over 4300 digits, slowly)
        return _TOO_BIG_INT
    value = int(text)
    return value if -INT64_MAX - 1 <= value <= INT64_MAX else _TOO_BIG_INT


def decode_json(document: bytes | str) -> Any:
    """The document's value, as ``json.loads`` gives it, or :class:`UnsafeJson` naming every refused value.

    A document that is not JSON at all raises ``json.loads``'s own error (a ``ValueError``), so that
    each door keeps its usual answer for malformed JSON.
    """
    try:
        value = json.loads(document, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        raise UnsafeJson([JsonProblem((), f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels",
                                      "json_too_deep")]) from None
    problems = json_problems(value)
    if problems:
        raise UnsafeJson(problems)
    return value


def json_problems(value: Any) -> list[JsonProblem]:
    """What :func:`decode_json` refuses in an already decoded value (strings with NUL or a lone
    surrogate, refused numbers, too deep nesting), at most :data:`MAX_PROBLEMS`."""
    problems: list[JsonProblem] = []
    stack: list[tuple[Any, JsonPath]] = [(value, ())]
    while stack and len(problems) < MAX_PROBLEMS:
        item, path = stack.pop()
        if isinstance(item, dict | list) and len(path) >= MAX_JSON_DEPTH:
            problems.append(JsonProblem(path, f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels",
                                        "json_too_deep"))
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                problem = storable_problem(key)
                if problem is not None:
                    problems.append(JsonProblem(path, f"a key {problem}", "json_unstorable_string"))
                else:
                    stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, index)) for index, child in reversed(list(enumerate(item))))
        elif isinstance(item, str):
            problem = storable_problem(item)
            if problem is not None:
                problems.append(JsonProblem(path, problem, "json_unstorable_string"))
        elif isinstance(item, _Refused):
            problems.append(JsonProblem(path, item.message, item.type))
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(JsonProblem(path, _NOT_FINITE.message, _NOT_FINITE.type))
        elif isinstance(item, int) and not isinstance(item, bool) and not -INT64_MAX - 1 <= item <= INT64_MAX:
            problems.append(JsonProblem(path, _TOO_BIG_INT.message, _TOO_BIG_INT.type))
    return problems[:MAX_PROBLEMS]
