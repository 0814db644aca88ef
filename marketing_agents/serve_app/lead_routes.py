"""The lead routes beyond submitting and reading one lead: batch, list, profile, export and erasure.

``add_lead_routes(app, leads)`` installs them on the gateway's FastAPI app; ``leads`` is the
``LeadOrchestrator`` deployment's handle in the cluster, or anything with the same async methods
(``submit_batch``, ``list_leads``, ``lead_profile``, ``export_lead``, ``erase_lead``) in a test.

- ``POST /api/v1/leads:batch``: 1 to 1,000 leads (``{"leads": [...]}``), triaged together in one
  TriageAgent call (one model call scores them all), then each handed off and stored exactly as a
  single ``POST /api/v1/leads`` does. 200 with one result per lead, in order: ``stored`` (with the
  single POST's answer), ``invalid`` (its field errors), ``conflict`` (a known ``external_id``, or
  one an earlier item of the batch has) or ``failed`` (e.g. PostgreSQL went away; sending it again is
  safe). With an ``Idempotency-Key`` a resent batch answers the stored items with their first answer.
  A body over the size limit is 413, more than 1,000 items or no ``leads`` 422.
- ``GET /api/v1/leads``: filters, a sort (``created_at`` or ``lead_score``, ``asc``/``desc``) and an
  opaque cursor (``next_cursor``, null on the last page); a cursor this API did not give out for the
  same sort and order is 400 ``invalid_cursor``.
- ``GET /api/v1/leads/{id}/profile``, ``GET /api/v1/leads/{id}/export``, ``DELETE /api/v1/leads/{id}``:
  long-term memory with RFM and behaviour; everything every tier holds; erasure from every tier with
  what was removed where. 404 for an unknown lead. Erasure also takes the lead out of other leads'
  handoff packages and the audit, and keeps only digests (``stores/postgres_erasure``): a record of
  the erasure, so that repeating the DELETE (say after Redis failed half-way, a 503) finishes the
  erasure and answers its report, and a suppression list, so that an import does not re-create the
  lead. A person who comes back through ``POST /api/v1/leads`` is a fresh opt-in: a new lead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from ray.serve.handle import DeploymentHandle

from marketing_agents.domain.access import idempotency_scope
from marketing_agents.domain.lead import LeadStatus
from marketing_agents.domain.lead_views import (
    DEFAULT_PAGE,
    MAX_PAGE,
    MAX_TIMELINE,
    LeadBatch,
    LeadBatchResult,
    LeadErasureReport,
    LeadExport,
    LeadInteractions,
    LeadPage,
    LeadProfile,
    LeadQuery,
    LeadSort,
    SortOrder,
)
from marketing_agents.domain.limits import IDEMPOTENCY_KEY_PATTERN, MAX_IDEMPOTENCY_KEY_LENGTH, MAX_LEAD_BATCH
from marketing_agents.domain.triage import TriageCategory
from marketing_agents.serve_app.access_control import caller_key_id
from marketing_agents.serve_app.handles import Remote
from marketing_agents.serve_app.http_errors import ROUTE_ERRORS

BatchIdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=MAX_IDEMPOTENCY_KEY_LENGTH, pattern=IDEMPOTENCY_KEY_PATTERN,
           description="Makes a resent batch answer the items already stored with their first answer (24 h)."),
]


def add_lead_routes(app: FastAPI, orchestrator: DeploymentHandle | Any) -> None:
    leads: Any = Remote(orchestrator) if isinstance(orchestrator, DeploymentHandle) else orchestrator

    @app.post("/api/v1/leads:batch", response_model=LeadBatchResult, responses=ROUTE_ERRORS, tags=["leads"],
              summary=f"Submit up to {MAX_LEAD_BATCH:,} leads, triaged together; one result per lead, in order")
    async def create_leads(batch: LeadBatch, request: Request, idempotency_key: BatchIdempotencyKey = None):
        key = idempotency_scope(caller_key_id(request), "leads:batch", idempotency_key)
        return await leads.submit_batch(batch.leads, key)

    @app.get("/api/v1/leads", response_model=LeadPage, responses=ROUTE_ERRORS, tags=["leads"],
             summary="List leads: filters, a sort and cursor pagination")
    async def list_leads(
        status: LeadStatus | None = None,
        triage_category: TriageCategory | None = None,
        industry: Annotated[str | None, Query(max_length=100, description="Exact, case-insensitive.")] = None,
        country: Annotated[str | None, Query(min_length=2, max_length=2, description="ISO 3166-1 alpha-2.")] = None,
        min_score: Annotated[float | None, Query(ge=0, le=100)] = None,
        max_score: Annotated[float | None, Query(ge=0, le=100)] = None,
        created_after: Annotated[datetime | None, Query(description="Strictly after; with a time zone.")] = None,
        created_before: Annotated[datetime | None, Query(description="Strictly before; with a time zone.")] = None,
        sort: LeadSort = LeadSort.CREATED_AT,
        order: SortOrder = SortOrder.DESC,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many leads.")] = DEFAULT_PAGE,
        cursor: Annotated[str | None, Query(max_length=512, description="The previous page's next_cursor.")] = None,
    ):
        try:
            query = LeadQuery(status=status, triage_category=triage_category, industry=industry, country=country,
                              min_score=min_score, max_score=max_score, created_after=created_after,
                              created_before=created_before, sort=sort, order=order, limit=limit, cursor=cursor)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**err, "loc": ("query", *err["loc"]), "ctx": None} for err in exc.errors()]) from None
        return await leads.list_leads(query)

    @app.get("/api/v1/leads/{lead_id}/profile", response_model=LeadProfile, responses=ROUTE_ERRORS, tags=["leads"],
             summary="The lead's long-term profile: behaviour (engagement by channel, score history, last "
                     "activity) and RFM")
    async def lead_profile(lead_id: UUID):
        return await leads.lead_profile(lead_id)

    @app.get("/api/v1/leads/{lead_id}/interactions", response_model=LeadInteractions, responses=ROUTE_ERRORS,
             tags=["leads"], summary="The lead's interaction timeline, newest first (personal data: operators and admins)")
    async def lead_interactions(lead_id: UUID, limit: Annotated[int, Query(ge=1, le=MAX_TIMELINE)] = 100):
        return await leads.lead_interactions(lead_id, limit)

    @app.get("/api/v1/leads/{lead_id}/export", response_model=LeadExport, responses=ROUTE_ERRORS, tags=["leads"],
             summary="Everything every memory tier holds about the lead (the right of access)")
    async def export_lead(lead_id: UUID):
        return await leads.export_lead(lead_id)

    @app.delete("/api/v1/leads/{lead_id}", response_model=LeadErasureReport, responses=ROUTE_ERRORS, tags=["leads"],
                summary="Erase the lead from every memory tier (the right to be forgotten); says what went where")
    async def erase_lead(lead_id: UUID):
        return await leads.erase_lead(lead_id)
