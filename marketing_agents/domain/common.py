"""Pieces every domain model shares: the strict base model, channels and bounded field types."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from marketing_agents.domain.text import ONE_LINE, STORABLE


class DomainModel(BaseModel):
    """Unknown fields are errors, strings are trimmed: what a client sends is what we store."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, validate_assignment=True)


class Channel(StrEnum):
    """The channels an engagement sequence can use; consent is given per channel."""

    EMAIL = "email"
    SMS = "sms"
    LINKEDIN = "linkedin"
    CALL = "call"
    WEBINAR = "webinar"


# A name is one line (it may reach an email header or subject); free text may span lines. Both refuse
# what PostgreSQL cannot store (domain.text).
Name = Annotated[str, StringConstraints(min_length=1, max_length=100), ONE_LINE]
Text = Annotated[str, StringConstraints(max_length=2000), STORABLE]
Slug = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Score100 = Annotated[float, Field(ge=0.0, le=100.0)]


def utc_now() -> datetime:
    return datetime.now(UTC)
