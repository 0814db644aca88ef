"""What the lead API answers beyond one processed lead: batches, pages, profiles, exports and erasures."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from pydantic import Field, model_validator

from marketing_agents.domain.common import DomainModel
from marketing_agents.domain.field_errors import ItemError
from marketing_agents.domain.lead import LeadStatus
from marketing_agents.domain.limits import MAX_LEAD_BATCH
from marketing_agents.domain.results import LeadProcessingResult
from marketing_agents.domain.triage import ScoreFactor, TriageCategory

MAX_PAGE = 200
DEFAULT_PAGE = 50


# -- POST /api/v1/leads:batch ------------------------------------------------------------------------

class LeadBatch(DomainModel):
    """Many leads in one request, triaged together. Items are validated one by one, so that a bad item
    is reported in its place without blocking the others."""

    leads: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_LEAD_BATCH,
        description=f"1 to {MAX_LEAD_BATCH} objects, each shaped like a single lead (NewLead).")


class LeadBatchItemResult(DomainModel):
    index: int = Field(ge=0, description="The item's position in the request.")
    status: Literal["stored", "invalid", "conflict", "failed"] = Field(
        description="stored (result holds the answer a single POST gives), invalid (error.details lists the bad "
                    "fields), conflict (a known external_id, or one given earlier in the same batch), failed "
                    "(anything else; error.code says what, and sending the item again is safe)")
    result: LeadProcessingResult | None = None
    error: ItemError | None = None


class LeadBatchResult(DomainModel):
    stored: int = Field(ge=0)
    invalid: int = Field(ge=0)
    conflicts: int = Field(ge=0)
    failed: int = Field(ge=0)
    scoring_model: str | None = Field(default=None, description="The scorer that triaged the batch.")
    processing_time_ms: float = Field(ge=0)
    results: list[LeadBatchItemResult] = Field(description="One per item, in request order.")


# -- GET /api/v1/leads -------------------------------------------------------------------------------

class LeadSort(StrEnum):
    CREATED_AT = "created_at"
    LEAD_SCORE = "lead_score"


class SortOrder(StrEnum):
    ASC = "asc"
    DESC = "desc"


class LeadQuery(DomainModel):
    """Filters, sort and the page wanted; every filter is optional and they combine with AND."""

    status: LeadStatus | None = None
    triage_category: TriageCategory | None = None
    industry: str | None = Field(default=None, max_length=100, description="Exact, case-insensitive.")
    country: str | None = Field(default=None, min_length=2, max_length=2, description="ISO 3166-1 alpha-2.")
    min_score: float | None = Field(default=None, ge=0, le=100)
    max_score: float | None = Field(default=None, ge=0, le=100)
    created_after: datetime | None = Field(default=None, description="Strictly after this instant.")
    created_before: datetime | None = Field(default=None, description="Strictly before this instant.")
    sort: LeadSort = LeadSort.CREATED_AT
    order: SortOrder = SortOrder.DESC
    limit: int = Field(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(default=None, max_length=512, description="The previous page's next_cursor.")
    review_queue: str | None = Field(default=None, max_length=64, description="Only leads waiting in this queue.")

    @model_validator(mode="after")
    def _ranges(self) -> LeadQuery:
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            raise ValueError("min_score must not exceed max_score")
        for name in ("created_after", "created_before"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone (e.g. 2026-05-01T00:00:00Z)")
        return self


class LeadSummary(DomainModel):
    """A lead as a list shows it: who, where from, and where triage put it."""

    id: UUID
    external_id: str | None
    email: str
    first_name: str
    last_name: str
    company: str
    job_title: str
    industry: str
    company_size: int
    country: str
    source: str
    status: LeadStatus
    review_queue: str | None = Field(default=None, description="The queue the lead waits in for a person, if any.")
    lead_score: float | None = Field(description="None for a lead not triaged yet (an imported placeholder).")
    triage_category: TriageCategory | None
    created_at: datetime
    updated_at: datetime


class LeadPage(DomainModel):
    items: list[LeadSummary]
    limit: int
    sort: LeadSort
    order: SortOrder
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


# -- GET /api/v1/leads/{id}/interactions ---------------------------------------------------------------

MAX_TIMELINE = 500


class InteractionEntry(DomainModel):
    """One thing the lead did, as stored."""

    id: int
    type: str
    channel: str | None
    campaign_id: UUID | None
    conversation_id: str | None
    value: Decimal | None
    occurred_at: datetime
    attributes: dict[str, Any]
    recorded_at: datetime


class LeadInteractions(DomainModel):
    lead_id: UUID
    items: list[InteractionEntry] = Field(description="Newest first.")


# -- GET /api/v1/leads/{id}/profile --------------------------------------------------------------------

class ScorePoint(DomainModel):
    """One score the lead had. Entries from intake carry the score alone (older ones too); a rescoring by
    behaviour also names the category it gave and the factor that moved it."""

    lead_score: float
    at: datetime
    triage_category: TriageCategory | None = None
    factor: ScoreFactor | None = Field(default=None, description="The 'behaviour' factor of a rescoring.")


class LeadBehaviour(DomainModel):
    engagement_by_channel: dict[str, int] = Field(description="Engagements counted per channel.")
    last_activity_at: datetime | None
    score_history: list[ScorePoint] = Field(description="The newest scores, oldest first.")


class Rfm(DomainModel):
    recency_days: int | None
    frequency: int | None
    monetary: Decimal | None
    r_score: int | None = Field(ge=1, le=5)
    f_score: int | None = Field(ge=1, le=5)
    m_score: int | None = Field(ge=1, le=5)
    rfm_segment: str | None
    as_of: date | None = Field(description="The reference date of the last RFM refresh.")


class LeadProfile(DomainModel):
    """Long-term memory about a lead: the facts learnt, behaviour and RFM."""

    lead_id: UUID
    profile: dict[str, Any] = Field(description="Facts the consolidator learnt, e.g. the cached triage.")
    behaviour: LeadBehaviour
    rfm: Rfm | None = Field(description="None until a purchase puts the lead into an RFM refresh.")
    updated_at: datetime | None

    @classmethod
    def from_row(cls, lead_id: UUID, row: dict[str, Any] | None) -> LeadProfile:
        """From a ``lead_profiles`` row (None: the lead has no long-term memory yet)."""
        row = row or {}
        history = sorted((ScorePoint.model_validate(e) for e in row.get("score_history") or []), key=lambda p: p.at)
        rfm = None
        if row.get("rfm_as_of") is not None and row.get("r_score") is not None:
            rfm = Rfm(recency_days=row["recency_days"], frequency=row["frequency"], monetary=row["monetary"],
                      r_score=row["r_score"], f_score=row["f_score"], m_score=row["m_score"],
                      rfm_segment=row["rfm_segment"], as_of=row["rfm_as_of"])
        return cls(
            lead_id=lead_id,
            profile=row.get("profile") or {},
            behaviour=LeadBehaviour(engagement_by_channel=row.get("engagement_by_channel") or {},
                                    last_activity_at=row.get("last_activity_at"), score_history=history),
            rfm=rfm,
            updated_at=row.get("updated_at"),
        )


# -- GET /api/v1/leads/{id}/export and DELETE /api/v1/leads/{id} ----------------------------------------

class LeadExport(DomainModel):
    """Everything every memory tier holds about a lead (the right of access)."""

    lead_id: UUID
    exported_at: datetime
    lead: dict[str, Any] = Field(description="The lead's own row.")
    tables: dict[str, list[dict[str, Any]]] = Field(
        description="PostgreSQL (lead records, long-term and episodic memory): table -> its rows about the lead.")
    short_term: dict[str, Any] = Field(description="Redis: key -> value, every key the lead's index lists.")
    semantic: str = Field(description="The knowledge graph holds no personal data; this says so.")


class LeadErasureReport(DomainModel):
    """What the erasure removed, where (the right to be forgotten)."""

    lead_id: UUID
    erased_at: datetime
    removed: dict[str, dict[str, int]] = Field(
        description="Tier -> what -> how many: postgres (rows per table, the lead itself included), "
                    "short_term (keys), semantic (nothing: the graph holds no personal data).")
    total: int = Field(ge=0, description="Rows and keys removed altogether.")
