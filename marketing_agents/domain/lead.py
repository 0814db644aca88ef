"""A lead: a person at a company who might buy, as a client submits it and as we store it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

import pycountry
from pydantic import AfterValidator, AwareDatetime, ConfigDict, EmailStr, Field, StringConstraints, field_validator

from marketing_agents.domain.common import Channel, DomainModel, Name, Slug, utc_now
from marketing_agents.domain.limits import MAX_CAPTURE_AGE, MAX_CLOCK_SKEW, MAX_EXTERNAL_ID_LENGTH
from marketing_agents.domain.text import ONE_LINE

MAX_ATTRIBUTES = 50

AttributeKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
AttributeValue = Annotated[str, StringConstraints(max_length=1000)] | int | float | bool | None


# ISO 3166 reserves ZZ for users; it commonly means "unknown". Only stored leads may carry it: an
# imported placeholder lead has no country yet, a lead posted to the API always has one.
UNKNOWN_COUNTRY = "ZZ"


def _iso_country(code: str) -> str:
    code = code.upper()
    if pycountry.countries.get(alpha_2=code) is None:
        raise ValueError(f"'{code}' is not an ISO 3166-1 alpha-2 country code")
    return code


def _iso_or_unknown_country(code: str) -> str:
    return UNKNOWN_COUNTRY if code.upper() == UNKNOWN_COUNTRY else _iso_country(code)


CountryCode = Annotated[str, StringConstraints(min_length=2, max_length=2), AfterValidator(_iso_country)]
StoredCountryCode = Annotated[str, StringConstraints(min_length=2, max_length=2), AfterValidator(_iso_or_unknown_country)]


class Consent(DomainModel):
    """Whether the lead agreed to be contacted on each channel. Absent means no: consent is opt-in."""

    model_config = ConfigDict(strict=True)

    email: bool = False
    sms: bool = False
    linkedin: bool = False
    call: bool = False
    webinar: bool = False

    def channels(self) -> list[Channel]:
        return [channel for channel in Channel if getattr(self, channel.value)]


class LeadStatus(StrEnum):
    TRIAGED = "triaged"
    HANDING_OFF = "handing_off"  # accepted and stored; its handoff is in flight (or waiting to be resumed)
    ENGAGED = "engaged"
    IN_CONVERSATION = "in_conversation"  # replied or met: people talk now, the automated sequence stops
    CONVERTED = "converted"
    NEEDS_REVIEW = "needs_review"
    DISQUALIFIED = "disqualified"


class NewLead(DomainModel):
    """A lead as a client posts it to ``POST /api/v1/leads``.

    Strict: ``"company_size": "12"`` is a wrong type, not a number, so a client's bug surfaces at once.
    """

    model_config = ConfigDict(strict=True)

    email: EmailStr = Field(max_length=254)
    first_name: Name
    last_name: Name
    # Names, company and job title fill the message templates, subjects included: one line each.
    company: Annotated[str, StringConstraints(min_length=1, max_length=200), ONE_LINE]
    job_title: Annotated[str, StringConstraints(min_length=1, max_length=150), ONE_LINE]
    industry: Name
    company_size: int = Field(ge=1, le=10_000_000, description="Number of employees.")
    country: CountryCode = Field(description="ISO 3166-1 alpha-2 code, e.g. 'DE'.")
    source: Slug = Field(description="Where the lead came from, e.g. 'web_form', 'referral', 'event'.")
    consent: Consent = Field(default_factory=Consent)
    external_id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_EXTERNAL_ID_LENGTH)] | None = Field(
        default=None, description="The lead's id in the client's CRM; unique across leads."
    )
    attributes: dict[AttributeKey, AttributeValue] = Field(
        default_factory=dict, description=f"Free-form extra facts, at most {MAX_ATTRIBUTES} keys."
    )
    campaign_id: UUID | None = Field(
        default=None, strict=False,
        description="The campaign the lead came from (an existing one): the engagement agent gives the lead one of "
                    "its arms, and what the lead does counts towards that arm.")
    captured_at: AwareDatetime | None = Field(
        default=None, strict=False,
        description="When the lead's source captured it, if earlier than now (an event scanner's upload, a form "
                    f"tool's export), at most {MAX_CAPTURE_AGE.days} days back; a campaign counts its leads by this "
                    "day. Left out: when it arrives.")

    @field_validator("captured_at")
    @classmethod
    def _captured_recently(cls, captured_at: datetime | None) -> datetime | None:
        if captured_at is None:
            return None
        now = utc_now()
        if captured_at > now + MAX_CLOCK_SKEW:
            raise ValueError("captured_at is in the future")
        if captured_at < now - MAX_CAPTURE_AGE:
            raise ValueError(f"captured_at is more than {MAX_CAPTURE_AGE.days} days ago")
        return captured_at

    @field_validator("email")
    @classmethod
    def _lowercase_email(cls, email: str) -> str:
        return email.lower()

    @field_validator("attributes")
    @classmethod
    def _bounded_attributes(cls, attributes: dict) -> dict:
        if len(attributes) > MAX_ATTRIBUTES:
            raise ValueError(f"at most {MAX_ATTRIBUTES} attributes are allowed, got {len(attributes)}")
        return attributes

    @property
    def email_domain(self) -> str:
        return self.email.rsplit("@", 1)[1]


class Lead(NewLead):
    """A stored lead: what was submitted plus the identity and state we gave it."""

    model_config = ConfigDict(strict=False)

    country: StoredCountryCode = Field(description="ISO 3166-1 alpha-2, or 'ZZ' for an imported lead not yet known.")
    id: UUID
    status: LeadStatus = LeadStatus.TRIAGED
    created_at: datetime

    @field_validator("captured_at")
    @classmethod
    def _captured_recently(cls, captured_at: datetime | None) -> datetime | None:
        return captured_at  # checked when the lead arrived; a stored lead keeps its day however old it gets
