"""The API gateway: the FastAPI ingress that turns HTTP into calls on the lead orchestrator.

The FastAPI app is built per replica (``__serve_build_asgi_app__``) because its routes close over the
replica's own handles and store connections, which exist only once the replica is constructed:
``serve.ingress()`` without an app calls that method after ``__init__`` (see ``ray.serve.ingress``),
while ``serve.ingress(app)`` needs the finished app when the class is defined.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated
from uuid import UUID

import ray
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

import marketing_agents
from marketing_agents.domain import (
    LeadDetail,
    LeadProcessingResult,
    NewLead,
    UnsubscribeRequest,
    UnsubscribeResult,
)
from marketing_agents.domain.access import idempotency_scope
from marketing_agents.domain.limits import IDEMPOTENCY_KEY_PATTERN, MAX_IDEMPOTENCY_KEY_LENGTH
from marketing_agents.memory.consolidator import ConsolidationReport
from marketing_agents.serve_app.access_control import caller_key_id, install_access_control
from marketing_agents.serve_app.campaigns import add_campaign_routes
from marketing_agents.serve_app.console import add_console_routes
from marketing_agents.serve_app.http_errors import (
    ROUTE_ERRORS,
    BodyLimit,
    RequireJson,
    install_error_handlers,
)
from marketing_agents.serve_app.interactions import add_interaction_routes
from marketing_agents.serve_app.lead_routes import add_lead_routes
from marketing_agents.serve_app.mcp_app import install_mcp
from marketing_agents.serve_app.model_routes import add_model_routes
from marketing_agents.serve_app.review_routes import add_review_routes
from marketing_agents.serve_app.status import (
    APP_NAME,
    CachedStatus,
    Readiness,
    SystemStatus,
    collect_deployments,
    collect_nodes,
    problems_of,
)
from marketing_agents.serve_app.system_routes import add_system_routes
from marketing_agents.serve_app.websocket import add_websocket_routes
from marketing_agents.settings import get_settings
from marketing_agents.stores.connection_budget import budgeted
from marketing_agents.stores.connections import StoreConnections

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Makes a retried POST return the first answer instead of storing the lead twice (kept 24 h).",
    ),
]


@serve.deployment(name="ApiGateway")
@serve.ingress()
class ApiGateway:
    def __init__(self, orchestrator: DeploymentHandle, consolidator: DeploymentHandle,
                 dispatcher: DeploymentHandle, feedback: DeploymentHandle | None = None,
                 campaigns: DeploymentHandle | None = None, models: DeploymentHandle | None = None,
                 mcp: DeploymentHandle | None = None) -> None:
        self._mcp = mcp
        self._models = models
        self._campaigns = campaigns
        self._feedback = feedback
        self._dispatcher = dispatcher
        self._orchestrator = orchestrator
        self._consolidator = consolidator
        settings = get_settings()
        # The gateway only pings the stores; two connections are plenty.
        self._stores = StoreConnections(budgeted(settings, "ApiGateway"))
        self._max_body_bytes = settings.max_body_bytes

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_api(self)

    async def submit_lead(self, new_lead: NewLead, idempotency_key: str | None) -> LeadProcessingResult:
        return await self._orchestrator.submit.remote(new_lead, idempotency_key)

    async def get_lead(self, lead_id: UUID) -> LeadDetail:
        return await self._orchestrator.get_lead.remote(lead_id)

    async def unsubscribe(self, lead_id: UUID, request: UnsubscribeRequest) -> UnsubscribeResult:
        return await self._orchestrator.unsubscribe.remote(lead_id, request.channels)

    async def consolidate(self, as_of: date | None) -> ConsolidationReport:
        return await self._consolidator.run_now.remote(as_of)

    async def system_status(self) -> SystemStatus:
        nodes, serve_status, stores = await asyncio.gather(
            asyncio.to_thread(ray.nodes), asyncio.to_thread(serve.status), self._stores.health()
        )
        app_status, deployments = collect_deployments(serve_status)
        status = SystemStatus(
            status="ok",
            version=marketing_agents.__version__,
            application=APP_NAME,
            application_status=app_status,
            nodes=collect_nodes(nodes),
            deployments=deployments,
            stores=stores,
        )
        if problems_of(status):
            status.status = "degraded"
        return status


def build_api(gateway: ApiGateway) -> FastAPI:
    app = FastAPI(
        title="marketing-agents",
        version=marketing_agents.__version__,
        summary="Leads in, triaged, handed off and engaged by agents on a Ray cluster.",
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=gateway._max_body_bytes)
    app.add_middleware(RequireJson)
    install_access_control(app, gateway._stores)  # outermost: no key, no body read
    add_interaction_routes(app, gateway)
    add_campaign_routes(app, gateway._campaigns)
    add_lead_routes(app, gateway._orchestrator)
    add_review_routes(app, gateway._orchestrator)
    add_model_routes(app, gateway._models)
    add_system_routes(app, get_settings().metrics_export_port)
    add_websocket_routes(app, gateway._stores)
    add_console_routes(app)  # /console: the operator console's page and scripts
    install_mcp(app, gateway._mcp)  # /mcp: the MCP server (Streamable HTTP), backed by McpServer
    readiness = CachedStatus(gateway.system_status)  # /readyz is public: at most one round of pings a second

    @app.post(
        "/api/v1/leads",
        response_model=LeadProcessingResult,
        responses=ROUTE_ERRORS,
        tags=["leads"],
        summary="Submit a new lead: triage, handoff and a first engagement plan in one call",
    )
    async def create_lead(lead: NewLead, request: Request, idempotency_key: IdempotencyKey = None):
        return await gateway.submit_lead(lead, idempotency_scope(caller_key_id(request), "leads", idempotency_key))

    @app.get("/api/v1/leads/{lead_id}", response_model=LeadDetail, responses=ROUTE_ERRORS, tags=["leads"],
             summary="A stored lead with its triage, handoffs and engagement plan")
    async def read_lead(lead_id: UUID):
        return await gateway.get_lead(lead_id)

    @app.post("/api/v1/memory/consolidate", response_model=ConsolidationReport, responses=ROUTE_ERRORS, tags=["memory"],
              summary="Run the memory consolidator now (it also runs on its own schedule)")
    async def consolidate(as_of: date | None = None):
        return await gateway.consolidate(as_of)

    @app.post("/api/v1/leads/{lead_id}/unsubscribe", response_model=UnsubscribeResult, responses=ROUTE_ERRORS,
              tags=["leads"],
              summary="Withdraw consent (all channels, or those given) and stop every pending touchpoint")
    async def unsubscribe(lead_id: UUID, request: UnsubscribeRequest | None = None):
        return await gateway.unsubscribe(lead_id, request or UnsubscribeRequest())

    @app.get("/api/v1/system/status", response_model=SystemStatus, tags=["system"],
             summary="Ray nodes, each deployment's replicas, and each store's health")
    async def system_status():
        return await gateway.system_status()

    @app.get("/healthz", tags=["system"], summary="Liveness: the gateway answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}}, tags=["system"],
             summary="Readiness: every store and deployment is healthy")
    async def readyz():
        problems = problems_of(await readiness.get())
        answer = Readiness(ready=not problems, problems=problems)
        if problems:
            return JSONResponse(answer.model_dump(), status_code=503, headers={"Retry-After": "5"})
        return answer

    return app
