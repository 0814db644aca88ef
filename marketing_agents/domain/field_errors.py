"""What is wrong with a request, field by field: the one shape every 422, batch item error and MCP
``-32602`` carries in its ``details``; and the error of one batch item.

Each entry is ``{"field", "location", "message", "type"}``: ``field`` is the dotted path inside
``location`` (``body``, ``query``, ``path``, ``header``, or the item of a batch, ``body.leads.3``),
``type`` is pydantic's error type (``missing``, ``value_error``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from pydantic import Field

from marketing_agents.domain.common import DomainModel
from marketing_agents.errors import RequestError


class FieldError(TypedDict):
    field: str
    location: str
    message: str
    type: str


def field_error(field: str, message: str, type_: str, location: str = "body") -> FieldError:
    return {"field": field, "location": location, "message": message, "type": type_}


def field_errors(errors: Iterable[Mapping[str, Any]], location: str = "body",
                 default_field: str | None = None) -> list[FieldError]:
    """From pydantic's ``errors()`` of a model validated at ``location``; an error of the whole
    object (an empty path) is named ``default_field``, else the location."""
    return [field_error(".".join(str(p) for p in err.get("loc", ())) or default_field or location,
                        err.get("msg", "invalid"), err.get("type", "value_error"), location)
            for err in errors]


def request_field_errors(errors: Iterable[Mapping[str, Any]]) -> list[FieldError]:
    """From FastAPI's request validation, whose paths start with the location (``body``, ``query``, ...)."""
    entries = []
    for err in errors:
        where, *path = err.get("loc", ()) or ("body",)
        entries.extend(field_errors([{**err, "loc": tuple(path)}], str(where)))
    return entries


class ItemError(DomainModel):
    """Why one item of a batch (leads, interactions) was not taken: the error a single request would get."""

    code: str = Field(description="validation_error, lead_exists, storage_unavailable, ...")
    message: str
    details: Any = None


class InvalidFields(RequestError):
    """422 with the same field list as a request that fails validation, for checks that need the store
    (a channel the campaign does not have) or the stored object (the merged result of a PATCH)."""

    status_code = 422
    code = "validation_error"

    @classmethod
    def of(cls, errors: list[FieldError]) -> InvalidFields:
        return cls("invalid fields: " + ", ".join(e["field"] for e in errors), errors)
