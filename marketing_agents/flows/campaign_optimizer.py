"""The campaign optimizer agent: campaigns, their metrics, and the optimizer's decisions, stored.

Plain Python over the PostgreSQL store and the event bus; the Serve deployment
(``serve_app.campaigns``) only forwards calls here. The judgment is ``campaign_optimizer``'s; this
class decides when it runs, what is stored, and who may undo what:

- Its evidence is every metric row clients posted plus what the system observed itself: each arm's
  cohorts of leads and their outcomes (``domain.attribution``), recounted just before it decides.
- ``run_due`` is the agent on its own (every ``MAS_OPTIMIZER_EVERY_S`` in the cluster): each active
  campaign with evidence of a day it has not stepped on yet gets its step, exactly as ``optimize``
  takes it. A campaign whose proposal waits for a person waits; so does one whose step of the latest
  day a person rolled back (the agent does not redo what a person undid; the next day's evidence
  brings the next step).
- ``optimize`` reads that evidence and the allocation the campaign runs on, and asks the optimizer
  for the next step with a random generator seeded per campaign and last day of metrics (plus
  ``MAS_OPTIMIZER_SEED``), so the same inputs always give the same decision. A dry run stores nothing.
  A decision without escalations is applied at once; an escalated one is stored as ``proposed`` with
  its escalations opened, and waits for ``approve``. The optimizer takes one step per day of metrics
  (that is what makes its cap on change a *daily* cap): once a step made from the metrics up to a day
  is in effect, optimizing again waits for the next day's numbers (or a rollback of that step).
- Every stored decision is checked, under the campaign's row lock, against the allocation it was made
  from; if another decision got there first, the call fails with 409 and stores nothing.
- ``rollback`` undoes an applied optimization in one call, only while the allocation is still the one
  it set; after a later optimization it is refused with 409 naming that one. A rollback is itself an
  applied optimization, audited and undoable.
- Each write is one transaction together with its audit row in ``agent_actions``; events go out on the
  ``campaigns`` and ``escalations`` topics after the commit (``publish_after_commit``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, cast
from uuid import UUID, uuid4

import numpy as np
from pydantic import ValidationError

from marketing_agents.actors.campaign_allocation import AllocationOptimizer
from marketing_agents.domain import Campaign, CampaignStatus, Channel, utc_now
from marketing_agents.domain.attribution import (
    ObservedPerformance,
    combined_metrics,
    declared_arms,
    observed_metrics,
    starting_allocation,
)
from marketing_agents.domain.campaign import CampaignMetrics, MetricsRow
from marketing_agents.domain.campaign_views import (
    OPTIMIZER,
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
from marketing_agents.domain.field_errors import InvalidFields, field_error, field_errors
from marketing_agents.domain.optimization import (
    ActionKind,
    OptimizationDecision,
    OptimizerPolicy,
    PerformanceReport,
    analyse,
    invert,
)
from marketing_agents.errors import ConfigError, Conflict, NotFound
from marketing_agents.memory.event_bus import EventBus, OutgoingEvent, publish_after_commit
from marketing_agents.settings import Settings
from marketing_agents.stores.postgres_campaign_observed import CampaignObservations
from marketing_agents.stores.postgres_campaigns import (
    CampaignTransaction,
    PostgresCampaignStore,
    campaign_not_found,
)

log = logging.getLogger(__name__)

CAMPAIGNS_TOPIC = "campaigns"
ROUND_PAGE = 100  # active campaigns read at a time by run_due
ESCALATIONS_TOPIC = "escalations"


def policy_from_settings(settings: Settings) -> OptimizerPolicy:
    """The optimizer's policy from ``MAS_OPTIMIZER_*``; ConfigError when they do not fit together."""
    try:
        return OptimizerPolicy(
            # Settings only accept "impression" or "click" (its pattern ^(impression|click)$)
            rate_basis=cast(Literal["impression", "click"], settings.optimizer_rate_basis),
            prior_weight=settings.optimizer_prior_weight,
            posterior_draws=settings.optimizer_posterior_draws,
            pause_below_p_best=settings.optimizer_pause_below_p_best,
            min_impressions_to_pause=settings.optimizer_min_impressions_to_pause,
            min_clicks_to_pause=settings.optimizer_min_clicks_to_pause,
            min_active_arms=settings.optimizer_min_active_arms,
            min_share=settings.optimizer_min_share,
            max_share=settings.optimizer_max_share,
            max_daily_change=settings.optimizer_max_daily_change,
            escalate_roi_at=settings.optimizer_escalate_roi_at,
            roi_min_spend=Decimal(str(settings.optimizer_roi_min_spend)),
            escalate_budget_spent_at=settings.optimizer_escalate_budget_spent_at,
            escalate_pause_share_at=settings.optimizer_escalate_pause_share_at,
            escalate_share_drop_at=settings.optimizer_escalate_share_drop_at,
        )
    except ValidationError as exc:
        raise ConfigError(f"the MAS_OPTIMIZER_* settings do not make a valid policy: {exc}") from exc


@dataclass(frozen=True)
class Evidence:
    """What the optimizer decides on: the rows clients posted, and those plus the observed cohorts."""

    client: list[CampaignMetrics]
    rows: list[CampaignMetrics]


def decision_seed(campaign_id: UUID, as_of: date | None, salt: int = 0) -> int:
    """A seed fixed by the campaign, the last day of its metrics and ``salt``: the same inputs decide alike."""
    digest = hashlib.sha256(f"{campaign_id}:{as_of}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def summarise(decision: OptimizationDecision) -> str:
    """One line for the audit trail: what changes, and whether it waits for a person."""
    if decision.is_rollback:
        moves = ", ".join(f"{a.arm} {a.previous_share:.1%} -> {a.new_share:.1%}" for a in decision.actions
                          if abs(a.new_share - a.previous_share) > 1e-9)
        paused = ", ".join(decision.proposed.paused) or "none"
        return f"rollback to the previous allocation ({moves or 'no share changes'}; paused: {paused})"
    parts = []
    if decision.paused_arms:
        parts.append("paused " + ", ".join(decision.paused_arms))
    moved = [f"{a.arm} {a.previous_share:.1%} -> {a.new_share:.1%}" for a in decision.actions
             if a.action in (ActionKind.INCREASE, ActionKind.DECREASE)]
    if moved:
        parts.append("moved " + ", ".join(moved))
    summary = "; ".join(parts) or "no change to the allocation"
    if decision.escalations:
        kinds = ", ".join(e.kind.value for e in decision.escalations)
        return f"{summary}; escalated ({kinds}): proposed, waits for approval"
    return f"{summary}; applied automatically"


def _report_of(campaign_id: UUID, rows) -> PerformanceReport:
    report = analyse(rows)
    return report if report.campaign_id else report.model_copy(update={"campaign_id": campaign_id})


def _allocation_payload(decision: OptimizationDecision) -> dict[str, Any]:
    return {"shares": decision.proposed.shares, "paused": list(decision.proposed.paused)}


def _stored_id(record: OptimizationRecord) -> UUID:
    """The id of a stored optimization (only a dry run has none)."""
    if record.id is None:
        raise ValueError(f"an optimization of campaign {record.campaign_id} without an id: a dry run is not stored")
    return record.id


def _stored_status(record: OptimizationRecord) -> OptimizationStatus:
    """The status of a stored optimization (only a dry run has none)."""
    if record.status is None:
        raise ValueError(f"optimization {record.id} of campaign {record.campaign_id} without a status: "
                         "a dry run is not stored")
    return record.status


async def _locked_optimization(tx: CampaignTransaction, optimization_id: UUID) -> OptimizationRecord:
    """The optimization read under the campaign's lock (found before taking it; none is ever deleted)."""
    record = await tx.optimization(optimization_id)
    if record is None:
        raise NotFound(f"no optimization with id {optimization_id}", {"optimization_id": str(optimization_id)})
    return record


class CampaignOptimizer:
    def __init__(
        self,
        store: PostgresCampaignStore,
        events: EventBus | None = None,
        policy: OptimizerPolicy | None = None,
        *,
        seed: int = 0,
        clock: Callable[[], datetime] = utc_now,
        observations: CampaignObservations | None = None,
    ) -> None:
        self._store = store
        self._observations = observations
        self._events = events
        self._optimizer = AllocationOptimizer(policy)
        self._seed = seed
        self._clock = clock

    @property
    def policy(self) -> OptimizerPolicy:
        return self._optimizer.policy

    @classmethod
    def from_settings(cls, settings: Settings, store: PostgresCampaignStore, events: EventBus | None,
                      observations: CampaignObservations | None = None) -> CampaignOptimizer:
        return cls(store, events, policy_from_settings(settings), seed=settings.optimizer_seed,
                   observations=observations)

    # -- campaigns ---------------------------------------------------------------------------------

    async def create_campaign(self, new: NewCampaign) -> Campaign:
        campaign = Campaign(id=uuid4(), created_at=self._clock(), **new.model_dump())
        return await self._store.create_campaign(campaign)

    async def list_campaigns(self, status: CampaignStatus | None = None, limit: int = 100,
                             offset: int = 0) -> CampaignList:
        page = await self._store.campaigns(status, limit + 1, offset)
        return CampaignList(campaigns=page[:limit], next_offset=offset + limit if len(page) > limit else None)

    async def get_campaign(self, campaign_id: UUID) -> CampaignDetail:
        campaign = await self._campaign(campaign_id)
        return CampaignDetail(campaign=campaign, allocation=await self._store.allocation(campaign_id))

    async def update_campaign(self, campaign_id: UUID, update: CampaignUpdate) -> Campaign:
        def change(campaign: Campaign, measured: set[Channel]) -> Campaign:
            updated = update.apply_to(campaign)
            dropped = sorted(c.value for c in measured - set(updated.channels))
            if dropped:
                raise InvalidFields.of([field_error(
                    "channels", f"the campaign has metrics on {', '.join(dropped)}; those channels must stay",
                    "channel_has_metrics")])
            return updated

        return await self._store.update_campaign(campaign_id, change)

    async def _campaign(self, campaign_id: UUID) -> Campaign:
        campaign = await self._store.campaign(campaign_id)
        if campaign is None:
            raise campaign_not_found(campaign_id)
        return campaign

    # -- metrics and performance -------------------------------------------------------------------

    async def ingest_metrics(self, campaign_id: UUID, rows: Sequence[MetricsRow]) -> MetricsIngested:
        """Upserts the rows (a day sent again replaces its numbers) in one statement, after checking all of
        them: one bad row means 422 naming it, and nothing is written."""
        try:
            batch = MetricsBatch(rows=list(rows))
        except ValidationError as exc:
            raise InvalidFields.of(field_errors(exc.errors())) from None
        campaign = await self._campaign(campaign_id)
        allowed = set(campaign.channels)
        wrong = [field_error(f"rows.{n}.channel",
                             f"{row.channel.value} is not one of the campaign's channels "
                             f"({', '.join(c.value for c in campaign.channels)})", "channel_not_in_campaign")
                 for n, row in enumerate(batch.rows) if row.channel not in allowed]
        if wrong:
            raise InvalidFields.of(wrong)
        return await self._store.upsert_metrics(campaign_id, [row.for_campaign(campaign_id) for row in batch.rows])

    async def performance(self, campaign_id: UUID) -> CampaignPerformance:
        await self._campaign(campaign_id)
        metrics = await self._store.metrics(campaign_id)
        report = _report_of(campaign_id, metrics)
        observed, observed_days = ObservedPerformance(refreshed_at=None), []
        if self._observations is not None:
            observed = await self._observations.performance(campaign_id)
            observed_days = (await self._observations.days(campaign_id))[0]
        days = [MetricsRow.model_validate(row.model_dump(exclude={"campaign_id"}))
                for row in sorted(metrics, key=lambda row: (row.metric_date, row.arm_key))]
        return CampaignPerformance(**report.model_dump(), observed=observed, days=days,
                                   observed_days=sorted(observed_days, key=lambda d: (d.cohort_date, d.arm or "")))

    async def _evidence(self, campaign_id: UUID) -> Evidence:
        """The metric rows clients posted plus the observed cohorts, recounted now, as daily rows."""
        client = await self._store.metrics(campaign_id)
        if self._observations is None:
            return Evidence(client, client)
        await self._observations.refresh(campaign_id)
        days, _ = await self._observations.days(campaign_id)
        return Evidence(client, combined_metrics(client, observed_metrics(campaign_id, days)))

    # -- the agent on its own ----------------------------------------------------------------------

    async def run_due(self) -> list[OptimizationRecord]:
        """One round over the active campaigns (see the module docstring); returns the steps it stored."""
        stored: list[OptimizationRecord] = []
        offset = 0
        while page := await self._store.campaigns(CampaignStatus.ACTIVE, ROUND_PAGE, offset):
            offset += len(page)
            for campaign in page:
                try:
                    record = await self._step_if_due(campaign)
                except (Conflict, NotFound) as exc:  # another replica or a person got there first
                    log.info("campaign %s not optimized this round: %s", campaign.id, exc)
                    continue
                if record is not None:
                    stored.append(record)
        return stored

    async def _step_if_due(self, campaign: Campaign) -> OptimizationRecord | None:
        latest = await self._store.optimizations(campaign.id, 1)
        if latest and latest[0].status is OptimizationStatus.PROPOSED:
            return None
        evidence = await self._evidence(campaign.id)
        if not evidence.rows:
            return None
        as_of = max(r.metric_date for r in evidence.rows)
        if latest and latest[0].decision.as_of is not None and as_of <= latest[0].decision.as_of:
            return None
        return await self._optimize(campaign, evidence, dry_run=False)

    # -- optimizing --------------------------------------------------------------------------------

    async def optimize(self, campaign_id: UUID, dry_run: bool = False) -> OptimizationRecord:
        campaign = await self._campaign(campaign_id)
        if campaign.status is CampaignStatus.COMPLETED:
            raise Conflict(f"campaign {campaign_id} is completed; there is no budget left to allocate",
                           {"campaign_id": str(campaign_id), "status": campaign.status.value})
        return await self._optimize(campaign, await self._evidence(campaign_id), dry_run)

    async def _optimize(self, campaign: Campaign, evidence: Evidence, dry_run: bool) -> OptimizationRecord:
        campaign_id, rows = campaign.id, evidence.rows
        if not rows:
            raise Conflict(f"campaign {campaign_id} has no metrics and no observed leads yet; post metrics or send "
                           "it leads before optimizing", {"campaign_id": str(campaign_id)})
        as_of = max(r.metric_date for r in rows)
        done = await self._store.applied_on(campaign_id, as_of)
        if done is not None:
            raise self._already_stepped(done, as_of)
        current = await self._store.allocation(campaign_id)
        made_from = current.allocation if current else None
        start = made_from or starting_allocation(declared_arms(campaign.variants, campaign.channels),
                                                 {r.arm_key for r in evidence.client})
        seed = decision_seed(campaign_id, as_of, self._seed)
        decision = self._optimizer.decide(rows, start, np.random.default_rng(seed), budget=campaign.budget)
        now = self._clock()
        if dry_run:
            return OptimizationRecord(campaign_id=campaign_id, dry_run=True, decision=decision, created_at=now)

        report = _report_of(campaign_id, rows)
        inputs = {"report": report.model_dump(mode="json"), "policy": self.policy.model_dump(mode="json"),
                  "previous": made_from.model_dump(mode="json") if made_from else None, "seed": seed}
        events: list[OutgoingEvent] = []
        async with self._store.locked(campaign_id) as tx:
            stored = await tx.allocation()
            if (stored.allocation if stored else None) != made_from:
                raise Conflict("the campaign's allocation changed while the optimizer was deciding; optimize again",
                               {"campaign_id": str(campaign_id),
                                "optimization_id": str(stored.optimization_id) if stored and
                                stored.optimization_id else None})
            done = await tx.applied_on(as_of)
            if done is not None:
                raise self._already_stepped(done, as_of)
            if stored is None:  # the equal split the campaign ran on until now, recorded with its first decision
                await tx.set_allocation(decision.previous, None, now)
            proposals = await tx.proposals()
            if not decision.auto_applicable:
                same = next((p for p in proposals if p.decision == decision), None)
                if same is not None:  # asked again with the same inputs: the same proposal, stored once
                    return same
            record_id = uuid4()
            if decision.auto_applicable:
                record = OptimizationRecord(id=record_id, campaign_id=campaign_id, status=OptimizationStatus.APPLIED,
                                            decision=decision, created_at=now, applied_at=now, applied_by=OPTIMIZER)
            else:
                escalations = [
                    EscalationRecord(id=uuid4(), campaign_id=campaign_id, optimization_id=record_id, kind=e.kind,
                                     arm=e.arm, threshold=e.threshold, observed=e.observed, message=e.message,
                                     created_at=now)
                    for e in decision.escalations
                ]
                record = OptimizationRecord(id=record_id, campaign_id=campaign_id, status=OptimizationStatus.PROPOSED,
                                            decision=decision, created_at=now, escalations=escalations)
            await tx.insert(record)
            await tx.mark_superseded([_stored_id(p) for p in proposals], record_id, now)
            if decision.auto_applicable:
                await self._supersede_owner(tx, stored, record_id, now)
                await tx.set_allocation(decision.proposed, record_id, now)
            action = "optimize" if decision.auto_applicable else "propose"
            await tx.audit(action, inputs, {"optimization_id": str(record_id), "status": _stored_status(record).value,
                                            "decision": decision.model_dump(mode="json")}, summarise(decision), now)
        if decision.auto_applicable:
            events.append(self._applied_event(record, OPTIMIZER))
        else:
            events.append(OutgoingEvent((CAMPAIGNS_TOPIC,), "optimization.proposed", {
                **self._optimization_payload(record), "escalations": [e.kind.value for e in decision.escalations]}))
            events += [OutgoingEvent((ESCALATIONS_TOPIC,), "escalation.opened", self._escalation_payload(e))
                       for e in record.escalations]
        await publish_after_commit(self._events, events, f"optimization {record.id} of campaign {campaign_id}")
        return record

    async def approve(self, optimization_id: UUID, by: str = "api", note: str | None = None) -> OptimizationRecord:
        """Applies a proposed (escalated) optimization unchanged and acknowledges its open escalations.

        ``by`` is who decided as access control knows them (``domain.access.actor_of``); ``note`` is
        what they wrote, kept with the acknowledgements and the agent's audit.
        """
        campaign_id = (await self._optimization(optimization_id)).campaign_id
        now = self._clock()
        async with self._store.locked(campaign_id) as tx:
            record = await _locked_optimization(tx, optimization_id)
            if record.status is not OptimizationStatus.PROPOSED:
                raise self._not_approvable(record)
            stored = await tx.allocation()
            if stored is None or stored.allocation != record.decision.previous:
                later = stored.optimization_id if stored else None
                raise Conflict(f"optimization {optimization_id} was made from another allocation than the one in "
                               "effect; optimize again", _ids(optimization_id, later))
            await tx.mark_applied(optimization_id, by, now)
            await self._supersede_owner(tx, stored, optimization_id, now)
            await tx.set_allocation(record.decision.proposed, optimization_id, now)
            acknowledged = await tx.acknowledge_escalations(
                optimization_id, by, f"approved optimization {optimization_id}" + (f": {note}" if note else ""), now)
            await tx.audit("approve", {"optimization_id": str(optimization_id), "by": by, "note": note},
                           {"optimization_id": str(optimization_id), "status": OptimizationStatus.APPLIED.value,
                            **_allocation_payload(record.decision)},
                           f"approved by {by}: {summarise(record.decision)}", now)
            record = await _locked_optimization(tx, optimization_id)
        await publish_after_commit(self._events, [
            self._applied_event(record, by),
            *[OutgoingEvent((ESCALATIONS_TOPIC,), "escalation.acknowledged", self._escalation_payload(e))
              for e in acknowledged]], f"approval of optimization {optimization_id} of campaign {campaign_id}")
        return record

    async def rollback(self, optimization_id: UUID, by: str = "api", note: str | None = None) -> OptimizationRecord:
        """Restores the allocation from before ``optimization_id``, if it is still the one in effect.
        ``by`` and ``note`` as for :meth:`approve`.

        Returns the rollback: an applied optimization whose ``rollback_of`` is ``optimization_id`` and whose
        decision's proposed allocation is the restored one.
        """
        campaign_id = (await self._optimization(optimization_id)).campaign_id
        now = self._clock()
        async with self._store.locked(campaign_id) as tx:
            target = await _locked_optimization(tx, optimization_id)
            if target.status is not OptimizationStatus.APPLIED:
                raise self._not_rollbackable(target)
            stored = await tx.allocation()
            if stored is None or stored.allocation != target.decision.proposed:
                later = stored.optimization_id if stored else None
                raise Conflict(f"the allocation is no longer the one optimization {optimization_id} set"
                               + (f"; optimization {later} changed it since" if later else ""),
                               _ids(optimization_id, later))
            undo = invert(target.decision)
            record = OptimizationRecord(id=uuid4(), campaign_id=campaign_id, status=OptimizationStatus.APPLIED,
                                        decision=undo, rollback_of=optimization_id, created_by=by, created_at=now,
                                        applied_at=now, applied_by=by)
            await tx.insert(record)
            await tx.mark_rolled_back(optimization_id, _stored_id(record), now)
            await tx.mark_superseded([_stored_id(p) for p in await tx.proposals()], _stored_id(record), now)
            await tx.set_allocation(undo.proposed, record.id, now)
            await tx.audit("rollback", {"optimization_id": str(optimization_id), "by": by, "note": note},
                           {"optimization_id": str(record.id), "rollback_of": str(optimization_id),
                            "decision": undo.model_dump(mode="json")},
                           f"optimization {optimization_id} rolled back by {by}: {summarise(undo)}", now)
        await publish_after_commit(self._events, [OutgoingEvent((CAMPAIGNS_TOPIC,), "optimization.rolled_back", {
            "optimization_id": str(optimization_id), "rollback_id": str(record.id), "campaign_id": str(campaign_id),
            "by": by, **_allocation_payload(undo)})], f"rollback {record.id} of optimization {optimization_id}")
        return record

    async def optimization(self, optimization_id: UUID) -> OptimizationRecord:
        return await self._optimization(optimization_id)

    async def optimizations(self, campaign_id: UUID, limit: int = 50) -> OptimizationList:
        await self._campaign(campaign_id)
        return OptimizationList(optimizations=await self._store.optimizations(campaign_id, limit))

    async def _optimization(self, optimization_id: UUID) -> OptimizationRecord:
        record = await self._store.optimization(optimization_id)
        if record is None:
            raise NotFound(f"no optimization with id {optimization_id}", {"optimization_id": str(optimization_id)})
        return record

    @staticmethod
    async def _supersede_owner(tx, stored, by: UUID, at: datetime) -> None:
        """The optimization that set the allocation until now is superseded by ``by``."""
        if stored is not None and stored.optimization_id is not None:
            owner = await tx.optimization(stored.optimization_id)
            if owner is not None and owner.status is OptimizationStatus.APPLIED:
                await tx.mark_superseded([owner.id], by, at)

    @staticmethod
    def _already_stepped(done: OptimizationRecord, as_of: date) -> Conflict:
        return Conflict(
            f"the optimizer already took its step for the metrics up to {as_of} (optimization {done.id}); "
            "post the next day's metrics first, or roll that optimization back",
            {"optimization_id": str(done.id), "as_of": as_of.isoformat()})

    @staticmethod
    def _not_approvable(record: OptimizationRecord) -> Conflict:
        details = {"optimization_id": str(record.id), "status": _stored_status(record).value}
        if record.status is OptimizationStatus.SUPERSEDED:
            details["superseded_by"] = str(record.superseded_by)
            return Conflict(f"optimization {record.id} was superseded by optimization {record.superseded_by}; "
                            "approve that one instead, or optimize again", details)
        return Conflict(f"optimization {record.id} is {_stored_status(record).value}; only a proposed one can be approved",
                        details)

    @staticmethod
    def _not_rollbackable(record: OptimizationRecord) -> Conflict:
        details = {"optimization_id": str(record.id), "status": _stored_status(record).value}
        match record.status:
            case OptimizationStatus.SUPERSEDED if record.applied_at is not None:
                details["later_optimization_id"] = str(record.superseded_by)
                message = (f"optimization {record.id} was superseded by the later optimization "
                           f"{record.superseded_by}; roll that one back first")
            case OptimizationStatus.SUPERSEDED:
                details["superseded_by"] = str(record.superseded_by)
                message = f"optimization {record.id} was never applied (optimization {record.superseded_by} replaced it)"
            case OptimizationStatus.ROLLED_BACK:
                details["rolled_back_by"] = str(record.rolled_back_by)
                message = f"optimization {record.id} was already rolled back (by optimization {record.rolled_back_by})"
            case _:
                message = f"optimization {record.id} is {_stored_status(record).value}: it was never applied"
        return Conflict(message, details)

    # -- escalations -------------------------------------------------------------------------------

    async def escalations(self, status: EscalationStatus | None = EscalationStatus.OPEN,
                          campaign_id: UUID | None = None, limit: int = 100) -> EscalationList:
        return EscalationList(escalations=await self._store.escalations(status, campaign_id, limit))

    async def acknowledge(self, escalation_id: UUID, by: str = "api", note: str | None = None) -> EscalationRecord:
        found = await self._store.acknowledge(escalation_id, by, note, self._clock())
        if found is None:
            raise NotFound(f"no escalation with id {escalation_id}", {"escalation_id": str(escalation_id)})
        escalation, changed = found
        if not changed:
            if escalation.acknowledged_at is None:  # not changed: it had been acknowledged already
                raise ValueError(f"escalation {escalation_id} unchanged by acknowledging it but not acknowledged")
            raise Conflict(f"escalation {escalation_id} was already acknowledged by {escalation.acknowledged_by} "
                           f"at {escalation.acknowledged_at.isoformat()}",
                           {"escalation_id": str(escalation_id), "acknowledged_by": escalation.acknowledged_by})
        await publish_after_commit(self._events, [
            OutgoingEvent((ESCALATIONS_TOPIC,), "escalation.acknowledged", self._escalation_payload(escalation))],
            f"acknowledgement of escalation {escalation_id}")
        return escalation

    # -- events ------------------------------------------------------------------------------------

    @staticmethod
    def _optimization_payload(record: OptimizationRecord) -> dict[str, Any]:
        return {"optimization_id": str(record.id), "campaign_id": str(record.campaign_id),
                "status": _stored_status(record).value, "as_of": record.decision.as_of.isoformat()
                if record.decision.as_of else None, **_allocation_payload(record.decision)}

    def _applied_event(self, record: OptimizationRecord, by: str) -> OutgoingEvent:
        return OutgoingEvent((CAMPAIGNS_TOPIC,), "optimization.applied",
                             {**self._optimization_payload(record), "applied_by": by})

    @staticmethod
    def _escalation_payload(e: EscalationRecord) -> dict[str, Any]:
        return {"escalation_id": str(e.id), "campaign_id": str(e.campaign_id),
                "optimization_id": str(e.optimization_id), "kind": e.kind.value, "arm": e.arm,
                "threshold": e.threshold, "observed": e.observed, "message": e.message, "status": e.status.value,
                "acknowledged_by": e.acknowledged_by, "note": e.note}


def _ids(optimization_id: UUID, later: UUID | None) -> dict[str, str | None]:
    return {"optimization_id": str(optimization_id), "later_optimization_id": str(later) if later else None}
