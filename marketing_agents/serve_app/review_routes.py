"""The review routes: queues people work, claims, decisions and corrections.

``add_review_routes(app, leads)`` installs them on the gateway's app; ``leads`` is the LeadOrchestrator
deployment's handle (or anything with its async methods, in a test). Who decides is the calling key
(``request.state.principal``), never a name in the body.

- ``GET /api/v1/review-queues``: each queue with ``open``, ``capacity`` and ``oldest_waiting_at``.
- ``GET /api/v1/review-queues/{name}/leads``: its leads, oldest first, paged like ``GET /api/v1/leads``.
- ``POST``/``DELETE /api/v1/leads/{id}/claim``: work a lead (409 ``claimed`` names who holds it) or stop.
- ``POST /api/v1/leads/{id}/review``: ``engage``, ``reassign`` (``queue``), ``disqualify`` or ``merge``
  (``into``), with an optional ``note``; 409 ``not_in_review`` for a lead that waits nowhere.
- ``PATCH /api/v1/leads/{id}``: corrections, consent given again with its source, ``retriage``.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import FastAPI, Path, Query, Request
from pydantic import BaseModel
from ray.serve.handle import DeploymentHandle

from marketing_agents.domain import LeadDetail
from marketing_agents.domain.lead_views import DEFAULT_PAGE, MAX_PAGE, LeadPage, LeadQuery, LeadSort, SortOrder
from marketing_agents.domain.review import (
    LeadCorrection,
    QueueName,
    ReviewClaim,
    ReviewOutcome,
    ReviewQueueList,
    ReviewRequest,
)
from marketing_agents.serve_app.handles import Remote
from marketing_agents.serve_app.http_errors import ROUTE_ERRORS


class ClaimReleased(BaseModel):
    lead_id: UUID
    released: bool


def add_review_routes(app: FastAPI, orchestrator: DeploymentHandle | Any) -> None:
    leads: Any = Remote(orchestrator) if isinstance(orchestrator, DeploymentHandle) else orchestrator
    tags: list[Any] = ["reviews"]

    @app.get("/api/v1/review-queues", response_model=ReviewQueueList, responses=ROUTE_ERRORS, tags=tags,
             summary="The queues people work: leads waiting in each, its capacity, since when the oldest waits")
    async def review_queues():
        return await leads.review_queues()

    @app.get("/api/v1/review-queues/{name}/leads", response_model=LeadPage, responses=ROUTE_ERRORS, tags=tags,
             summary="The leads waiting in one queue, oldest first by default, with cursor pagination")
    async def review_queue_leads(
        name: Annotated[QueueName, Path()],
        sort: LeadSort = LeadSort.CREATED_AT,
        order: SortOrder = SortOrder.ASC,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many leads.")] = DEFAULT_PAGE,
        cursor: Annotated[str | None, Query(max_length=512, description="The previous page's next_cursor.")] = None,
    ):
        return await leads.review_queue_leads(name, LeadQuery(sort=sort, order=order, limit=limit, cursor=cursor))

    @app.post("/api/v1/leads/{lead_id}/claim", response_model=ReviewClaim, responses=ROUTE_ERRORS, tags=tags,
              summary="Claim a lead waiting for review, so that no one else works it (again: extend the claim)")
    async def claim_lead(lead_id: UUID, request: Request):
        return await leads.claim_lead(lead_id, request.state.principal)

    @app.delete("/api/v1/leads/{lead_id}/claim", response_model=ClaimReleased, responses=ROUTE_ERRORS, tags=tags,
                summary="Release your claim on a lead")
    async def release_lead(lead_id: UUID, request: Request):
        return ClaimReleased(lead_id=lead_id, released=await leads.release_lead(lead_id, request.state.principal))

    @app.post("/api/v1/leads/{lead_id}/review", response_model=ReviewOutcome, responses=ROUTE_ERRORS, tags=tags,
              summary="Decide a lead waiting for review: engage, reassign, disqualify or merge")
    async def review_lead(lead_id: UUID, decision: ReviewRequest, request: Request):
        return await leads.review_lead(lead_id, decision, request.state.principal)

    @app.patch("/api/v1/leads/{lead_id}", response_model=LeadDetail, responses=ROUTE_ERRORS, tags=["leads"],
               summary="Correct a lead, record consent given again (with its source), optionally triage it again")
    async def correct_lead(lead_id: UUID, correction: LeadCorrection, request: Request):
        return await leads.correct_lead(lead_id, correction, request.state.principal)
