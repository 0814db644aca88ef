"""Hypothesis strategies for request bodies built from a JSON Schema (OpenAPI's or an MCP tool's
``inputSchema``), mixed with hostile values: NaN and Infinity, integers beyond 64 and 32 bits, NUL, lone
surrogates, line breaks, very long strings, wrong types, and nesting deeper than any request needs.

Mostly the values follow the schema, so that requests get past validation into the flows and stores
behind it; at any node a hostile value may stand in. :func:`to_json` writes the document as a client
could send it: ``NaN``/``Infinity`` tokens, ``\\ud800`` escapes and deep nesting included.
"""

from __future__ import annotations

import json
import string
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

DEEP = "\x01deep-nesting\x01"  # replaced by :func:`to_json` with brackets nested far too deep
DEEP_LEVELS = 2_000

HOSTILE_SCALARS: list[Any] = [
    float("nan"), float("inf"), float("-inf"), 1e308, -0.0,
    2**31, -(2**31) - 1, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**70, 10**40,
    "\x00", "a\x00b", "\ud800", "x\udfffy", "Jane\nBcc: all@example.com", "line\u2028break", "\u0085", "\r\n",
    "x" * 5_000, "", " ", "NaN", "Infinity", "1e400", "9" * 60, "-1", "0", "true", "null",
    "'; DROP TABLE leads; --", "../../etc/passwd", "%00", "\u202egnp.exe", "😀" * 50,
    None, True, False, 0, -1, [], {}, [None], {"": None}, DEEP,
]

hostile = st.sampled_from(HOSTILE_SCALARS) | st.integers(min_value=-(2**80), max_value=2**80) \
    | st.text(max_size=40) | st.floats()

_SAFE_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -_.", min_size=1, max_size=30)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 20:
        node: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    return schema


def _string(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    fmt = schema.get("format")
    low, high = schema.get("minLength", 0), min(schema.get("maxLength", 40), 40)
    if fmt == "uuid":
        return st.uuids().map(str)
    if fmt == "date-time":
        now = datetime.now(UTC)
        return st.datetimes(min_value=(now - timedelta(days=400)).replace(tzinfo=None),
                            max_value=(now + timedelta(days=2)).replace(tzinfo=None)).map(
            lambda d: d.replace(tzinfo=UTC).isoformat())
    if fmt == "date":
        return st.dates(min_value=date(2020, 1, 1), max_value=date(2027, 12, 31)).map(date.isoformat)
    if fmt == "email":
        return st.builds(lambda a, b: f"{a}@{b}.example.com", st.text(string.ascii_lowercase, min_size=1, max_size=12),
                         st.text(string.ascii_lowercase, min_size=1, max_size=8))
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: low <= len(s) <= max(high, low))
    return st.text(min_size=low, max_size=max(high, low)) | _SAFE_TEXT.filter(lambda s: low <= len(s) <= max(high, low))


def _number(schema: dict[str, Any], integer: bool) -> st.SearchStrategy[Any]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if integer:
        return st.integers(min_value=None if low is None else int(low), max_value=None if high is None else int(high))
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)


def from_schema(schema: dict[str, Any], root: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values for ``schema`` (``$ref`` resolved against ``root``), each node hostile one time in eight."""
    schema = _resolve(schema, root)
    return st.integers(0, 7).flatmap(lambda roll: hostile if roll == 0 or depth > 6 else _valid(schema, root, depth))


def _valid(schema: dict[str, Any], root: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(option, root, depth + 1) for option in schema[key]])
    if "allOf" in schema:
        return from_schema(schema["allOf"][0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([_valid({**schema, "type": k}, root, depth) for k in kind])
    if kind == "object" or "properties" in schema:
        return _object(schema, root, depth)
    if kind == "array":
        items = schema.get("items", {})
        low = schema.get("minItems", 0)
        return st.lists(from_schema(items, root, depth + 1), min_size=low, max_size=max(low, 3))
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return _number(schema, integer=True)
    if kind == "number":
        return _number(schema, integer=False) | _number(schema, integer=True)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return hostile


def _object(schema: dict[str, Any], root: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    properties: dict[str, Any] = schema.get("properties", {})
    required = [name for name in schema.get("required", []) if name in properties]
    optional = [name for name in properties if name not in required]
    fixed = st.fixed_dictionaries({name: from_schema(properties[name], root, depth + 1) for name in required},
                                  optional={name: from_schema(properties[name], root, depth + 1) for name in optional})
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        more = st.dictionaries(_SAFE_TEXT | st.sampled_from(["\x00", "\ud800", "k" * 100]),
                               from_schema(extra, root, depth + 1), max_size=3)
        fixed = st.builds(lambda a, b: {**b, **a}, fixed, more)
    # Now and then a field no model has, or a required one missing.
    return fixed | fixed.map(lambda d: {**d, "unexpected_field": 1}) | fixed.map(
        lambda d: dict(list(d.items())[1:]))


def to_json(value: Any) -> str:
    """As a client could send it: NaN/Infinity tokens, lone surrogates escaped, :data:`DEEP` nested deep."""
    text = json.dumps(value, allow_nan=True)
    return text.replace(json.dumps(DEEP), "[" * DEEP_LEVELS + "]" * DEEP_LEVELS)
