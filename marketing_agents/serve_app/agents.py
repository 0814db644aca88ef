"""Serve deployments for the agents and the lead orchestrator.

Each one wires a request to the plain class that holds the judgment (``marketing_agents.actors``),
built by ``actors.factory`` as every other holder of an agent builds it; nothing here decides
anything. Deployment names are the names in ``ray_configs/serve_config.yaml``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from functools import partial
from typing import Any
from uuid import UUID

from ray import serve
from ray.serve.handle import DeploymentHandle

from marketing_agents import metrics
from marketing_agents.actors import factory
from marketing_agents.actors.handoff import HandoffDelivery, PreparedHandoff
from marketing_agents.domain import (
    Channel,
    EngagementPlan,
    HandoffPackage,
    Lead,
    LeadDetail,
    LeadProcessingResult,
    NewLead,
    ProvenanceEntry,
    TriageResult,
    UnsubscribeResult,
    utc_now,
)
from marketing_agents.domain.access import Principal
from marketing_agents.domain.attribution import CampaignOffer
from marketing_agents.domain.lead_views import (
    InteractionEntry,
    LeadBatchResult,
    LeadErasureReport,
    LeadExport,
    LeadInteractions,
    LeadPage,
    LeadProfile,
    LeadQuery,
)
from marketing_agents.domain.recall import MemoryRecall
from marketing_agents.domain.review import LeadCorrection, ReviewClaim, ReviewOutcome, ReviewQueueList, ReviewRequest
from marketing_agents.errors import NotFound
from marketing_agents.flows.lead_orchestrator import LeadOrchestrator
from marketing_agents.flows.lead_review import LeadReview, queue_capacities
from marketing_agents.memory.event_bus import EventBus
from marketing_agents.memory.lead_rights import LeadDataRights
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.memory.semantic import SemanticMemory, graph_store_for
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.memory.tier_actors import memory_manager_on_ray
from marketing_agents.scoring_models import ModelRegistry
from marketing_agents.serve_app.model_routes import ModelCatalog, ModelChange, ModelList
from marketing_agents.serve_app.package_transfer import PackageTransfer
from marketing_agents.settings import get_settings
from marketing_agents.stores.connection_budget import budgeted
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.postgres import LeadRepository
from marketing_agents.stores.postgres_campaigns import PostgresCampaignStore
from marketing_agents.stores.postgres_lead_listing import LeadListing
from marketing_agents.stores.postgres_lead_reads import LeadReads
from marketing_agents.stores.postgres_reviews import ReviewRepository
from marketing_agents.stores.redis import RedisShortTermStore

log = logging.getLogger(__name__)


@serve.deployment(name="TriageAgent")
class TriageAgentDeployment:
    # Queue capacities are checked against counts at most this old: one query per interval, not per lead.
    QUEUE_LOAD_MAX_AGE_S = 2.0

    async def __init__(self) -> None:  # type: ignore[misc]  # Ray Serve awaits an async __init__
        s = get_settings()
        self._stores = StoreConnections(budgeted(s, "TriageAgent"))
        pool = await self._stores.pool()
        # Industry spellings come from the knowledge graph, read once per replica.
        graph = graph_store_for(s, pool)
        try:
            synonyms = await SemanticMemory(graph).industry_synonyms()
        finally:
            await graph.close()
        self._leads = LeadRepository(pool, timedelta(seconds=s.idempotency_ttl_s))
        self._queue_loads: dict[str, int] = {}
        self._loads_read_at = float("-inf")
        registry = ModelRegistry(s.data_path / "models")
        self._models = ModelCatalog(registry)
        self._agent = factory.triage_agent(s, synonyms, registry, lambda: self._queue_loads)

    async def triage(self, lead: Lead, duplicate_of: UUID | None = None) -> TriageResult:
        await self._refresh_queue_loads()
        return self._agent.triage(lead, utc_now(), self._agent.enricher.enrich(lead, duplicate_of))

    async def triage_many(self, leads: list[tuple[Lead, UUID | None]]) -> list[TriageResult]:
        """Triages a batch together: one model call scores every lead."""
        await self._refresh_queue_loads()
        enriched = [(lead, self._agent.enricher.enrich(lead, duplicate_of)) for lead, duplicate_of in leads]
        return await asyncio.to_thread(self._agent.triage_many, enriched, utc_now())

    async def _refresh_queue_loads(self) -> None:
        if time.monotonic() - self._loads_read_at > self.QUEUE_LOAD_MAX_AGE_S:
            self._queue_loads = await self._leads.queue_loads()
            self._loads_read_at = time.monotonic()

    async def list_models(self) -> ModelList:
        return await self._models.list_models()

    async def promote_model(self, version: str) -> ModelChange:
        return await self._models.promote_model(version)

    async def rollback_model(self) -> ModelChange:
        return await self._models.rollback_model()


@serve.deployment(name="EngagementAgent")
class EngagementAgentDeployment:
    def __init__(self) -> None:
        s = get_settings()
        self._agent = factory.engagement_agent(s)
        self._rewriter = factory.message_rewriter(s)

    async def plan(self, transfer: PackageTransfer) -> EngagementPlan:
        package = await transfer.open()
        plan = self._agent.plan(package, utc_now())
        if self._rewriter is not None:
            plan = await self._rewriter.rewrite(plan, package.lead)
        return plan


@serve.deployment(name="HandoffOrchestrator")
class HandoffOrchestratorDeployment:
    def __init__(self, engagement: DeploymentHandle) -> None:
        self._orchestrator = factory.handoff_orchestrator(get_settings())
        self._engagement = engagement

    def prepare(self, lead: Lead, triage: TriageResult, provenance: list[ProvenanceEntry],
                memory: MemoryRecall | None, campaign: CampaignOffer | None = None) -> PreparedHandoff:
        prepared = self._orchestrator.prepare(lead, triage, provenance, memory, utc_now(), campaign)
        metrics.handoff_prepared(prepared.record.status.value, prepared.record.to_agent,
                                 prepared.record.quality.score)
        return prepared

    async def deliver(self, package: HandoffPackage) -> HandoffDelivery:
        transfer = PackageTransfer.of(package)  # once: every attempt sends the same transfer

        async def send(package: HandoffPackage) -> EngagementPlan:
            return await self._engagement.plan.remote(transfer)

        delivery = await self._orchestrator.deliver(package, send)
        metrics.handoff_delivered(delivery.plan is not None, delivery.attempts, delivery.latency_ms, package.to_agent)
        return delivery


@serve.deployment(name="LeadOrchestrator")
class LeadOrchestratorDeployment:
    async def __init__(self, triage: DeploymentHandle, handoff: DeploymentHandle) -> None:  # type: ignore[misc]  # Ray Serve awaits an async __init__
        self._settings = budgeted(get_settings(), "LeadOrchestrator")
        self._stores = StoreConnections(self._settings)
        self._triage = triage
        self._handoff = handoff
        # Created (or found) now, so that the tier actors are up before the first lead needs them.
        self._memory = memory_manager_on_ray()
        self._intake: LeadOrchestrator | None = None
        self._leads: LeadRepository | None = None
        self._review: LeadReview | None = None
        every = self._settings.handoff_recovery_every_s
        self._recovery = asyncio.get_running_loop().create_task(self._recover_every(every)) if every else None

    async def _recover_every(self, period_s: float) -> None:
        """Finishes handoffs whose process died mid-way (any replica may; SKIP LOCKED shares them out)."""
        while True:
            await asyncio.sleep(period_s)
            try:
                await (await self._lead_intake()).resume_stalled_handoffs()
            except Exception:
                log.exception("handoff recovery failed; stalled handoffs stay pending for the next round")

    async def _repository(self) -> LeadRepository:
        if self._leads is None:
            self._leads = LeadRepository(await self._stores.pool(), timedelta(seconds=self._settings.idempotency_ttl_s),
                                         timedelta(seconds=self._settings.handoff_lease_s))
        return self._leads

    async def _lead_intake(self) -> LeadOrchestrator:
        if self._intake is None:
            redis, policy = RedisShortTermStore(self._stores.redis()), TtlPolicy.from_settings(self._settings)
            self._intake = LeadOrchestrator(
                triage=lambda lead, duplicate_of: self._triage.triage.remote(lead, duplicate_of),
                triage_many=lambda leads: self._triage.triage_many.remote(leads),
                prepare=lambda lead, triage, provenance, memory, campaign: self._handoff.prepare.remote(
                    lead, triage, provenance, memory, campaign),
                deliver=lambda package: self._handoff.deliver.remote(package),
                leads=await self._repository(),
                offers=partial(PostgresCampaignStore(await self._stores.pool()).offer, seed=self._settings.optimizer_seed),
                memory=self._memory,
                short_term=ShortTermMemory(redis, policy),
                observe_stage=metrics.lead_stage,
                events=EventBus(redis, policy),
            )
        return self._intake

    async def submit(self, new_lead: NewLead, idempotency_key: str | None) -> LeadProcessingResult:
        return await (await self._lead_intake()).submit(new_lead, idempotency_key)

    async def unsubscribe(self, lead_id: UUID, channels: list[Channel] | None) -> UnsubscribeResult:
        result = await (await self._repository()).unsubscribe(lead_id, channels)
        if result is None:
            raise NotFound(f"no lead with id {lead_id}", {"lead_id": str(lead_id)})
        return result

    async def submit_batch(self, items: list[dict[str, Any]], idempotency_key: str | None) -> LeadBatchResult:
        return await (await self._lead_intake()).submit_batch(items, idempotency_key)

    async def list_leads(self, query: LeadQuery) -> LeadPage:
        return await LeadListing(await self._stores.pool()).page(query)

    async def lead_interactions(self, lead_id: UUID, limit: int) -> LeadInteractions:
        pool = await self._stores.pool()
        if not await LeadListing(pool).exists(lead_id):
            raise NotFound(f"no lead with id {lead_id}", {"lead_id": str(lead_id)})
        rows = await LeadReads(pool).interactions(lead_id, limit)
        return LeadInteractions(lead_id=lead_id, items=[InteractionEntry.model_validate(row) for row in rows])

    async def _rights(self) -> LeadDataRights:
        return LeadDataRights(self._memory, LeadListing(await self._stores.pool()).exists)

    async def lead_profile(self, lead_id: UUID) -> LeadProfile:
        return await (await self._rights()).profile(lead_id)

    async def export_lead(self, lead_id: UUID) -> LeadExport:
        return await (await self._rights()).export(lead_id)

    async def erase_lead(self, lead_id: UUID) -> LeadErasureReport:
        return await (await self._rights()).erase(lead_id)

    async def get_lead(self, lead_id: UUID) -> LeadDetail:
        return await (await self._lead_review()).detail(lead_id)

    async def _lead_review(self) -> LeadReview:
        if self._review is None:
            pool, intake = await self._stores.pool(), await self._lead_intake()
            repository = await self._repository()
            self._review = LeadReview(
                reviews=ReviewRepository(pool, repository, timedelta(seconds=self._settings.review_claim_ttl_s)),
                leads=repository, listing=LeadListing(pool), intake=intake,
                capacities=queue_capacities(factory.routing_rules(self._settings)),
                short_term=intake.short_term, events=intake.events)
        return self._review

    async def review_queues(self) -> ReviewQueueList:
        return await (await self._lead_review()).queues()

    async def review_queue_leads(self, name: str, query: LeadQuery) -> LeadPage:
        return await (await self._lead_review()).queue_leads(name, query)

    async def claim_lead(self, lead_id: UUID, by: Principal) -> ReviewClaim:
        return await (await self._lead_review()).claim(lead_id, by)

    async def release_lead(self, lead_id: UUID, by: Principal) -> bool:
        return await (await self._lead_review()).release(lead_id, by)

    async def review_lead(self, lead_id: UUID, request: ReviewRequest, by: Principal) -> ReviewOutcome:
        return await (await self._lead_review()).decide(lead_id, request, by)

    async def correct_lead(self, lead_id: UUID, correction: LeadCorrection, by: Principal) -> LeadDetail:
        return await (await self._lead_review()).correct(lead_id, correction, by)
