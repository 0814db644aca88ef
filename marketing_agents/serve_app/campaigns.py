"""The campaign optimizer as a Serve deployment, and its HTTP routes on the API gateway.

``CampaignOptimizer`` (the deployment) forwards each call to ``flows.campaign_optimizer``; the routes
turn HTTP into those calls. ``add_campaign_routes`` takes either the deployment's handle (in the
cluster) or the agent itself (in-process, as the integration tests use it): both answer the same
methods.

Who approves, rolls back or acknowledges is the calling API key (``domain.access.actor_of``), never
what the body says: a body's ``note`` (and ``by``, from older clients) is kept as a note only. Without
access control in front (in-process tests), the actor is "api".
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum
from typing import Annotated, Any
from uuid import UUID

from fastapi import FastAPI, Query, Request
from ray import serve
from ray.serve.handle import DeploymentHandle

from marketing_agents import metrics
from marketing_agents.domain import Campaign, CampaignStatus
from marketing_agents.domain.access import actor_of
from marketing_agents.domain.campaign import MetricsRow
from marketing_agents.domain.campaign_views import (
    Acknowledgement,
    ActorNote,
    CampaignDetail,
    CampaignList,
    CampaignPerformance,
    CampaignUpdate,
    EscalationList,
    EscalationRecord,
    EscalationStatus,
    MetricsBatch,
    MetricsIngested,
    NewCampaign,
    OptimizationList,
    OptimizationRecord,
    OptimizationStatus,
)
from marketing_agents.domain.limits import MAX_PAGE_OFFSET
from marketing_agents.flows.campaign_optimizer import CampaignOptimizer
from marketing_agents.memory.event_bus import EventBus
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.serve_app.handles import Remote
from marketing_agents.serve_app.http_errors import ROUTE_ERRORS
from marketing_agents.settings import get_settings
from marketing_agents.stores.connection_budget import budgeted
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.postgres_campaign_observed import CampaignObservations
from marketing_agents.stores.postgres_campaigns import PostgresCampaignStore
from marketing_agents.stores.redis import RedisShortTermStore

Limit = Annotated[int, Query(ge=1, le=500, description="At most this many items.")]
Offset = Annotated[int, Query(ge=0, le=MAX_PAGE_OFFSET,
                              description="Skip this many items (the previous page's next_offset).")]
EscalationFilter = Annotated[str, Query(pattern="^(open|acknowledged|all)$",
                                        description="open (the default), acknowledged, or all")]

log = logging.getLogger(__name__)


@serve.deployment(name="CampaignOptimizer")
class CampaignOptimizerDeployment:
    """Each method is the agent's method of the same name; stores open on first use."""

    async def __init__(self) -> None:  # type: ignore[misc]  # Ray Serve awaits an async __init__
        self._settings = budgeted(get_settings(), "CampaignOptimizer")
        self._stores = StoreConnections(self._settings)
        self._agent: CampaignOptimizer | None = None
        every = self._settings.optimizer_every_s
        self._loop = asyncio.get_running_loop().create_task(self._every(every)) if every else None

    async def _every(self, period_s: float) -> None:
        """The optimizer as an agent: a round over the active campaigns every period."""
        while True:
            await asyncio.sleep(period_s)
            try:
                for record in await (await self._service()).run_due():
                    self._count(record)
            except Exception:
                log.exception("the optimizer's round failed; the campaigns are optimized in the next one")

    async def _service(self) -> CampaignOptimizer:
        if self._agent is None:
            pool = await self._stores.pool()
            events = EventBus(RedisShortTermStore(self._stores.redis()), TtlPolicy.from_settings(self._settings))
            self._agent = CampaignOptimizer.from_settings(
                self._settings, PostgresCampaignStore(pool), events, CampaignObservations(pool))
        return self._agent

    @staticmethod
    def _count(record: OptimizationRecord) -> None:
        if record.status is not None:
            metrics.optimization(record.status.value, [e.kind.value for e in record.decision.escalations]
                                 if record.status is OptimizationStatus.PROPOSED else [])

    async def create_campaign(self, new: NewCampaign) -> Campaign:
        return await (await self._service()).create_campaign(new)

    async def list_campaigns(self, status: CampaignStatus | None, limit: int, offset: int) -> CampaignList:
        return await (await self._service()).list_campaigns(status, limit, offset)

    async def get_campaign(self, campaign_id: UUID) -> CampaignDetail:
        return await (await self._service()).get_campaign(campaign_id)

    async def update_campaign(self, campaign_id: UUID, update: CampaignUpdate) -> Campaign:
        return await (await self._service()).update_campaign(campaign_id, update)

    async def ingest_metrics(self, campaign_id: UUID, rows: list[MetricsRow]) -> MetricsIngested:
        return await (await self._service()).ingest_metrics(campaign_id, rows)

    async def performance(self, campaign_id: UUID) -> CampaignPerformance:
        return await (await self._service()).performance(campaign_id)

    async def optimize(self, campaign_id: UUID, dry_run: bool) -> OptimizationRecord:
        record = await (await self._service()).optimize(campaign_id, dry_run)
        if not dry_run:
            self._count(record)
        return record

    async def optimizations(self, campaign_id: UUID, limit: int) -> OptimizationList:
        return await (await self._service()).optimizations(campaign_id, limit)

    async def optimization(self, optimization_id: UUID) -> OptimizationRecord:
        return await (await self._service()).optimization(optimization_id)

    async def approve(self, optimization_id: UUID, by: str, note: str | None = None) -> OptimizationRecord:
        record = await (await self._service()).approve(optimization_id, by, note)
        metrics.optimization("approved")
        return record

    async def rollback(self, optimization_id: UUID, by: str, note: str | None = None) -> OptimizationRecord:
        record = await (await self._service()).rollback(optimization_id, by, note)
        metrics.optimization("rolled_back")
        return record

    async def escalations(self, status: EscalationStatus | None, campaign_id: UUID | None,
                          limit: int) -> EscalationList:
        return await (await self._service()).escalations(status, campaign_id, limit)

    async def acknowledge(self, escalation_id: UUID, by: str, note: str | None) -> EscalationRecord:
        return await (await self._service()).acknowledge(escalation_id, by, note)


def add_campaign_routes(app: FastAPI, campaigns: DeploymentHandle | CampaignOptimizer | None) -> None:
    """Installs the campaign, optimization and escalation routes; none when ``campaigns`` is None."""
    if campaigns is None:
        return
    agent: Any = Remote(campaigns) if isinstance(campaigns, DeploymentHandle) else campaigns
    tags: list[str | Enum] = ["campaigns"]  # FastAPI's type for tags

    @app.post("/api/v1/campaigns", status_code=201, response_model=Campaign, responses=ROUTE_ERRORS, tags=tags,
              summary="Create a campaign")
    async def create_campaign(new: NewCampaign):
        return await agent.create_campaign(new)

    @app.get("/api/v1/campaigns", response_model=CampaignList, responses=ROUTE_ERRORS, tags=tags,
             summary="List campaigns, newest first")
    async def list_campaigns(status: CampaignStatus | None = None, limit: Limit = 100, offset: Offset = 0):
        return await agent.list_campaigns(status, limit, offset)

    @app.get("/api/v1/campaigns/{campaign_id}", response_model=CampaignDetail, responses=ROUTE_ERRORS, tags=tags,
             summary="A campaign with the budget allocation it runs on")
    async def get_campaign(campaign_id: UUID):
        return await agent.get_campaign(campaign_id)

    @app.patch("/api/v1/campaigns/{campaign_id}", response_model=Campaign, responses=ROUTE_ERRORS, tags=tags,
               summary="Change a campaign's name, status, channels, objective, budget or dates")
    async def update_campaign(campaign_id: UUID, update: CampaignUpdate):
        return await agent.update_campaign(campaign_id, update)

    @app.post("/api/v1/campaigns/{campaign_id}/metrics", response_model=MetricsIngested, responses=ROUTE_ERRORS,
              tags=tags,
              summary="Record daily metrics per variant and channel; a day sent again replaces its numbers",
              description="All rows are checked first (clicks <= impressions, conversions <= clicks, money >= 0, "
                          "each channel one of the campaign's); one bad row is a 422 naming it, and then nothing "
                          "is written.")
    async def ingest_metrics(campaign_id: UUID, batch: MetricsBatch):
        return await agent.ingest_metrics(campaign_id, batch.rows)

    @app.get("/api/v1/campaigns/{campaign_id}/performance", response_model=CampaignPerformance, responses=ROUTE_ERRORS,
             tags=tags, summary="CTR, CVR, CPA, ROAS and ROI per arm (variant on a channel) and in total")
    async def performance(campaign_id: UUID):
        return await agent.performance(campaign_id)

    @app.post("/api/v1/campaigns/{campaign_id}/optimize", response_model=OptimizationRecord, responses=ROUTE_ERRORS,
              tags=tags, summary="Run the optimizer: applied at once, or proposed for approval when it escalates",
              description="With dry_run=true the decision is returned and nothing is stored. The optimizer takes "
                          "one step per day of metrics; a second call for the same day is a 409.")
    async def optimize(campaign_id: UUID, dry_run: bool = False):
        return await agent.optimize(campaign_id, dry_run)

    @app.get("/api/v1/campaigns/{campaign_id}/optimizations", response_model=OptimizationList, responses=ROUTE_ERRORS,
             tags=tags, summary="The campaign's stored optimizations, newest first")
    async def list_optimizations(campaign_id: UUID, limit: Limit = 50):
        return await agent.optimizations(campaign_id, limit)

    @app.get("/api/v1/optimizations/{optimization_id}", response_model=OptimizationRecord, responses=ROUTE_ERRORS,
             tags=tags, summary="One stored optimization with its escalations")
    async def read_optimization(optimization_id: UUID):
        return await agent.optimization(optimization_id)

    @app.post("/api/v1/optimizations/{optimization_id}/approve", response_model=OptimizationRecord,
              responses=ROUTE_ERRORS, tags=tags,
              summary="Apply a proposed (escalated) optimization unchanged; acknowledges its escalations")
    async def approve(optimization_id: UUID, request: Request, actor: ActorNote | None = None):
        return await agent.approve(optimization_id, _actor(request), (actor or ActorNote()).stated())

    @app.post("/api/v1/optimizations/{optimization_id}/rollback", response_model=OptimizationRecord,
              responses=ROUTE_ERRORS, tags=tags,
              summary="Restore the allocation from before an optimization; returns the rollback",
              description="Refused with 409 once a later optimization has changed the allocation (the error "
                          "names it): roll that one back first.")
    async def rollback(optimization_id: UUID, request: Request, actor: ActorNote | None = None):
        return await agent.rollback(optimization_id, _actor(request), (actor or ActorNote()).stated())

    @app.get("/api/v1/escalations", response_model=EscalationList, responses=ROUTE_ERRORS, tags=["escalations"],
             summary="What the optimizer asks people to look at, oldest first")
    async def list_escalations(status: EscalationFilter = "open", campaign_id: UUID | None = None,
                               limit: Limit = 100):
        return await agent.escalations(None if status == "all" else EscalationStatus(status), campaign_id, limit)

    @app.post("/api/v1/escalations/{escalation_id}/acknowledge", response_model=EscalationRecord,
              responses=ROUTE_ERRORS,
              tags=["escalations"], summary="Acknowledge an open escalation")
    async def acknowledge(escalation_id: UUID, request: Request, acknowledgement: Acknowledgement | None = None):
        return await agent.acknowledge(escalation_id, _actor(request), (acknowledgement or Acknowledgement()).stated())


def _actor(request: Request) -> str:
    """The calling key as the actor of a decision; "api" where no access control stands in front."""
    principal = getattr(request.state, "principal", None)
    return actor_of(principal) if principal is not None else "api"
