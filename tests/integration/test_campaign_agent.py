"""The campaign optimizer agent against real PostgreSQL and Valkey: idempotent metrics, applied and
audited decisions, dry runs that store nothing, escalations at their thresholds that people acknowledge
or approve, one-call rollbacks and the refusal to roll back what a later decision built on, events."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import date, timedelta
from decimal import Decimal
from typing import Self
from uuid import UUID, uuid4

import pytest
import redis.asyncio as aioredis

from marketing_agents.domain import CampaignStatus, Channel
from marketing_agents.domain.campaign import MetricsRow
from marketing_agents.domain.campaign_views import (
    OPTIMIZER,
    CampaignUpdate,
    EscalationStatus,
    NewCampaign,
    OptimizationStatus,
)
from marketing_agents.domain.field_errors import InvalidFields
from marketing_agents.domain.optimization import Allocation, EscalationKind, OptimizerPolicy
from marketing_agents.errors import Conflict, NotFound
from marketing_agents.flows.campaign_optimizer import CampaignOptimizer
from marketing_agents.memory.event_bus import EventBus, event_channel
from marketing_agents.stores.postgres_campaigns import PostgresCampaignStore
from marketing_agents.stores.redis import RedisShortTermStore
from tests.support import free_port

DAY = date(2025, 3, 1)
FOUR = ["A/email", "A/linkedin", "B/email", "B/linkedin"]
EQUAL_FOUR = Allocation(shares={k: 0.25 for k in FOUR})
# Three close arms and one clear loser (B/linkedin): enough evidence to pause it, and at a quarter of the
# budget the pause is small enough to apply alone. Spend stays under the ROI minimum and far from the budget.
ONE_LOSER = {"A/email": (5_000, 1_000, 200), "B/email": (5_000, 1_000, 190), "A/linkedin": (5_000, 1_000, 185),
             "B/linkedin": (5_000, 1_000, 20)}


@pytest.fixture
def store(pool) -> PostgresCampaignStore:
    return PostgresCampaignStore(pool)


@pytest.fixture
def agent(store, redis_client) -> CampaignOptimizer:
    return CampaignOptimizer(store, EventBus(RedisShortTermStore(redis_client)), OptimizerPolicy())


async def new_campaign(agent, budget: str = "100000.00", channels=("email", "linkedin")) -> UUID:
    campaign = await agent.create_campaign(NewCampaign(name=f"test {uuid4().hex[:6]}", status="active",
                                                       channels=list(channels), budget=budget, start_date=DAY))
    return campaign.id


def day_rows(arms: dict, day: int = 0, spend: str = "25.00", revenue: str = "100.00") -> list[MetricsRow]:
    rows = []
    for key, numbers in arms.items():
        variant, channel = key.split("/")
        impressions, clicks, conversions = numbers[:3]
        arm_spend, arm_revenue = numbers[3:] if len(numbers) > 3 else (spend, revenue)
        rows.append(MetricsRow(variant=variant, channel=channel, metric_date=DAY + timedelta(days=day),
                               impressions=impressions, clicks=clicks, conversions=conversions,
                               spend=Decimal(arm_spend), revenue=Decimal(arm_revenue)))
    return rows


async def count(pool, table: str, campaign_id: UUID) -> int:
    return await pool.fetchval(f"SELECT count(*) FROM {table} WHERE campaign_id = $1", campaign_id)


async def stored_counts(pool, campaign_id: UUID) -> dict[str, int]:
    tables = ("campaign_metrics", "campaign_allocations", "optimizations", "escalations", "agent_actions")
    return {t: await count(pool, t, campaign_id) for t in tables}


class Events:
    """A subscriber on event topics, listening before anything happens; keeps one campaign's events."""

    def __init__(self, redis_client: aioredis.Redis, campaign_id: UUID, *topics: str) -> None:
        self.sub = redis_client.pubsub()
        self.campaign_id = str(campaign_id)
        self.topics = topics

    async def __aenter__(self) -> Self:
        await self.sub.subscribe(*(event_channel(t) for t in self.topics))
        for _ in self.topics:
            assert (await self.sub.get_message(timeout=5))["type"] == "subscribe"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.sub.aclose()

    async def next(self, n: int) -> list[dict]:
        received = []
        while len(received) < n:
            message = await self.sub.get_message(ignore_subscribe_messages=True, timeout=5)
            assert message is not None, f"{len(received)} of {n} events arrived: {received}"
            event = json.loads(message["data"])
            if event["payload"]["campaign_id"] == self.campaign_id:
                received.append({"channel": message["channel"].decode(), **event})
        return received


# -- campaigns and metrics -------------------------------------------------------------------------


async def test_a_campaign_is_created_listed_read_and_patched(agent):
    campaign_id = await new_campaign(agent)
    detail = await agent.get_campaign(campaign_id)
    assert detail.campaign.status is CampaignStatus.ACTIVE and detail.allocation is None
    listed = (await agent.list_campaigns(CampaignStatus.ACTIVE, limit=500)).campaigns
    assert campaign_id in [c.id for c in listed]

    patched = await agent.update_campaign(campaign_id, CampaignUpdate(name="Renamed", budget="5.00",
                                                                      end_date=DAY + timedelta(days=30)))
    assert (patched.name, patched.budget, patched.end_date, patched.channels) == (
        "Renamed", Decimal("5.00"), DAY + timedelta(days=30), [Channel.EMAIL, Channel.LINKEDIN])
    assert (await agent.get_campaign(campaign_id)).campaign == patched

    with pytest.raises(NotFound):
        await agent.get_campaign(uuid4())
    with pytest.raises(NotFound):
        await agent.update_campaign(uuid4(), CampaignUpdate(name="x"))


async def test_a_page_of_campaigns_points_to_the_next(agent):
    ids = {await new_campaign(agent) for _ in range(3)}
    first = await agent.list_campaigns(None, limit=2)
    assert len(first.campaigns) == 2 and first.next_offset == 2
    second = await agent.list_campaigns(None, limit=2, offset=2)
    assert not {c.id for c in first.campaigns} & {c.id for c in second.campaigns}
    assert ids & {c.id for c in first.campaigns}  # newest first


async def test_a_channel_with_metrics_cannot_be_dropped(agent):
    campaign_id = await new_campaign(agent)
    await agent.ingest_metrics(campaign_id, day_rows({"A/email": (100, 10, 1)}))
    with pytest.raises(InvalidFields) as caught:
        await agent.update_campaign(campaign_id, CampaignUpdate(channels=["linkedin"]))
    assert [e["field"] for e in caught.value.details] == ["channels"]
    assert (await agent.update_campaign(campaign_id, CampaignUpdate(channels=["email", "sms"]))).channels == [
        Channel.EMAIL, Channel.SMS]


async def test_metrics_upsert_is_idempotent_and_a_resent_day_replaces_its_numbers(agent, store, pool):
    campaign_id = await new_campaign(agent)
    first = await agent.ingest_metrics(campaign_id, day_rows(ONE_LOSER))
    assert (first.received, first.inserted, first.updated, first.unchanged) == (4, 4, 0, 0)
    again = await agent.ingest_metrics(campaign_id, day_rows(ONE_LOSER))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 4)
    stored = await store.metrics(campaign_id)
    assert len(stored) == 4 and await count(pool, "campaign_metrics", campaign_id) == 4

    corrected = await agent.ingest_metrics(campaign_id, day_rows({**ONE_LOSER, "B/linkedin": (5_000, 900, 30)})
                                           + day_rows({"A/email": (10, 1, 0)}, day=1))
    assert (corrected.inserted, corrected.updated, corrected.unchanged) == (1, 1, 3)
    loser = next(m for m in await store.metrics(campaign_id) if m.variant == "B" and m.channel is Channel.LINKEDIN)
    assert (loser.clicks, loser.conversions) == (900, 30)
    assert await count(pool, "campaign_metrics", campaign_id) == 5

    report = await agent.performance(campaign_id)
    assert report.campaign_id == campaign_id and (report.first_date, report.last_date) == (DAY, DAY + timedelta(1))
    assert report.total.impressions == 20_010 and report.arm("B/linkedin").clicks == 900


async def test_bad_metrics_are_refused_by_name_and_nothing_is_written(agent, pool):
    campaign_id = await new_campaign(agent, channels=("email",))
    await agent.ingest_metrics(campaign_id, day_rows({"A/email": (100, 10, 1)}))
    with pytest.raises(InvalidFields) as caught:
        await agent.ingest_metrics(campaign_id, day_rows({"A/email": (200, 20, 2), "A/sms": (100, 10, 1),
                                                          "B/email": (100, 10, 1), "B/linkedin": (100, 10, 1)}))
    assert caught.value.status_code == 422
    assert [e["field"] for e in caught.value.details] == ["rows.1.channel", "rows.3.channel"]
    assert "not one of the campaign's channels (email)" in caught.value.details[0]["message"]
    rows = await pool.fetch("SELECT impressions FROM campaign_metrics WHERE campaign_id = $1", campaign_id)
    assert [r["impressions"] for r in rows] == [100], "the good rows of a bad batch were not written either"

    with pytest.raises(InvalidFields, match="rows"):
        await agent.ingest_metrics(campaign_id, day_rows({"A/email": (1, 1, 1)}) * 2)
    with pytest.raises(NotFound):
        await agent.ingest_metrics(uuid4(), day_rows({"A/email": (1, 1, 1)}))
    with pytest.raises(NotFound):
        await agent.performance(uuid4())


# -- optimizing ------------------------------------------------------------------------------------


async def test_optimize_applies_the_decision_audits_it_and_announces_it(agent, store, pool, redis_client):
    campaign_id = await new_campaign(agent)
    await agent.ingest_metrics(campaign_id, day_rows(ONE_LOSER))
    async with Events(redis_client, campaign_id, "campaigns", "escalations") as events:
        record = await agent.optimize(campaign_id)
        (event,) = await events.next(1)

    assert record.status is OptimizationStatus.APPLIED and record.applied_by == OPTIMIZER and not record.dry_run
    decision = record.decision
    assert decision.previous == EQUAL_FOUR and decision.paused_arms == ["B/linkedin"]
    proposed = decision.proposed
    assert proposed.shares["B/linkedin"] == 0.0 and proposed.paused == ("B/linkedin",)
    assert proposed.shares["A/email"] == pytest.approx(0.25 + 0.2)  # the leader, up by the daily cap
    assert sum(proposed.shares.values()) == pytest.approx(1.0)

    current = await store.allocation(campaign_id)
    assert current.allocation == proposed and current.optimization_id == record.id
    assert (await agent.get_campaign(campaign_id)).allocation == current
    assert await store.optimization(record.id) == record

    audit = await pool.fetch("SELECT * FROM agent_actions WHERE campaign_id = $1", campaign_id)
    assert len(audit) == 1
    assert (audit[0]["agent"], audit[0]["action"]) == ("CampaignOptimizer", "optimize")
    assert audit[0]["inputs"]["report"]["total"]["impressions"] == 20_000
    assert audit[0]["inputs"]["policy"]["pause_below_p_best"] == 0.05 and audit[0]["inputs"]["previous"] is None
    assert audit[0]["output"]["decision"] == decision.model_dump(mode="json")
    assert audit[0]["output"]["optimization_id"] == str(record.id)
    assert audit[0]["reason"].startswith("paused B/linkedin; moved ")

    assert event["channel"] == event_channel("campaigns") and event["type"] == "optimization.applied"
    assert event["payload"] == {"optimization_id": str(record.id), "campaign_id": str(campaign_id),
                                "status": "applied", "as_of": DAY.isoformat(), "shares": proposed.shares,
                                "paused": ["B/linkedin"], "applied_by": OPTIMIZER}


async def test_a_dry_run_stores_nothing_and_shows_the_decision_optimize_then_applies(agent, pool, redis_client):
    campaign_id = await new_campaign(agent)
    await agent.ingest_metrics(campaign_id, day_rows(ONE_LOSER))
    before = await stored_counts(pool, campaign_id)
    async with Events(redis_client, campaign_id, "campaigns", "escalations") as events:
        preview = await agent.optimize(campaign_id, dry_run=True)
        assert preview.dry_run and preview.id is None and preview.status is None
        assert await stored_counts(pool, campaign_id) == before == {
            "campaign_metrics": 4, "campaign_allocations": 0, "optimizations": 0, "escalations": 0,
            "agent_actions": 0}
        applied = await agent.optimize(campaign_id)
        (first,) = await events.next(1)
    assert first["payload"]["optimization_id"] == str(applied.id), "the dry run announced nothing"
    assert applied.decision == preview.decision, "the same inputs give the same decision"


async def test_the_optimizer_takes_one_step_per_day_of_metrics(agent):
    campaign_id = await new_campaign(agent)
    await agent.ingest_metrics(campaign_id, day_rows(ONE_LOSER))
    first = await agent.optimize(campaign_id)
    with pytest.raises(Conflict, match="already took its step for the metrics up to 2025-03-01") as caught:
        await agent.optimize(campaign_id)
    assert caught.value.details["optimization_id"] == str(first.id)
    with pytest.raises(Conflict):
        await agent.optimize(campaign_id, dry_run=True)

    await agent.rollback(first.id)  # undone, the day is open again, and the same inputs decide the same
    assert (await agent.optimize(campaign_id)).decision == first.decision
    await agent.ingest_metrics(campaign_id, day_rows(ONE_LOSER, day=1))
    assert (await agent.optimize(campaign_id)).decision.as_of == DAY + timedelta(days=1)


async def test_concurrent_optimizations_store_exactly_one_step(store, pool, redis_client):
    agents = [CampaignOptimizer(store, EventBus(RedisShortTermStore(redis_client))) for _ in range(2)]
    campaign_id = await new_campaign(agents[0])
    await agents[0].ingest_metrics(campaign_id, day_rows(ONE_LOSER))
    results = await asyncio.gather(*(a.optimize(campaign_id) for a in agents), return_exceptions=True)
    applied = [r for r in results if not isinstance(r, Exception)]
    assert len(applied) == 1 and isinstance(next(r for r in results if r not in applied), Conflict)
    assert await count(pool, "optimizations", campaign_id) == 1
    assert (await store.allocation(campaign_id)).optimization_id == applied[0].id


async def test_optimizing_needs_a_known_campaign_with_metrics_that_is_not_completed(agent):
    with pytest.raises(NotFound):
        await agent.optimize(uuid4())
    campaign_id = await new_campaign(agent)
    with pytest.raises(Conflict, match="no metrics and no observed leads yet"):
        await agent.optimize(campaign_id)
    await agent.ingest_metrics(campaign_id, day_rows(ONE_LOSER))
    await agent.update_campaign(campaign_id, CampaignUpdate(status="completed"))
    with pytest.raises(Conflict, match="completed"):
        await agent.optimize(campaign_id)


# -- escalations -----------------------------------------------------------------------------------


TWO_EVEN = {"A/email": (10_000, 1_000, 100), "B/email": (10_000, 1_000, 100)}


def two_even(spend_each: str, revenue_each: str) -> list[MetricsRow]:
    return day_rows({k: (*v, spend_each, revenue_each) for k, v in TWO_EVEN.items()})


@pytest.mark.parametrize(("revenue_each", "escalates"), [
    ("400.00", True),    # spend 1,000, revenue 800: ROI exactly -20%
    ("400.50", False),   # revenue 801: ROI -19.9%
])
async def test_low_roi_escalates_exactly_at_its_threshold(agent, store, revenue_each, escalates):
    campaign_id = await new_campaign(agent)
    await agent.ingest_metrics(campaign_id, two_even("500.00", revenue_each))
    record = await agent.optimize(campaign_id)
    if escalates:
        assert record.status is OptimizationStatus.PROPOSED
        assert [(e.kind, e.threshold, e.observed) for e in record.escalations] == [
            (EscalationKind.LOW_ROI, -0.2, -0.2)]
        assert (await store.allocation(campaign_id)).allocation == record.decision.previous  # unchanged
    else:
        assert record.status is OptimizationStatus.APPLIED and record.escalations == []
    listed = (await agent.escalations(EscalationStatus.OPEN, campaign_id)).escalations
    assert [e.kind for e in listed] == ([EscalationKind.LOW_ROI] if escalates else [])


@pytest.mark.parametrize(("spend_each", "escalates"), [
    ("450.00", True),   # 900 of a 1,000 budget: exactly 90%
    ("449.99", False),  # 899.98
])
async def test_a_nearly_spent_budget_escalates_exactly_at_its_threshold(agent, spend_each, escalates):
    campaign_id = await new_campaign(agent, budget="1000.00")
    await agent.ingest_metrics(campaign_id, two_even(spend_each, "5000.00"))
    record = await agent.optimize(campaign_id)
    assert [e.kind for e in record.escalations] == ([EscalationKind.BUDGET_NEARLY_SPENT] if escalates else [])
    assert record.status is (OptimizationStatus.PROPOSED if escalates else OptimizationStatus.APPLIED)
    if escalates:
        assert record.escalations[0].observed == 0.9 and record.escalations[0].threshold == 0.9


async def test_an_escalated_decision_is_proposed_listed_acknowledged_and_announced(agent, store, pool, redis_client):
    campaign_id = await new_campaign(agent)
    await agent.ingest_metrics(campaign_id, two_even("500.00", "100.00"))
    async with Events(redis_client, campaign_id, "campaigns", "escalations") as events:
        proposal = await agent.optimize(campaign_id)
        proposed_event, opened = await events.next(2)
        (escalation,) = proposal.escalations
        acknowledged = await agent.acknowledge(escalation.id, by="maria", note="Budget review on Monday")
        (acknowledged_event,) = await events.next(1)

    assert proposal.status is OptimizationStatus.PROPOSED and proposal.applied_at is None
    current = await store.allocation(campaign_id)
    assert current.allocation == proposal.decision.previous and current.optimization_id is None
    assert (await pool.fetchval("SELECT action FROM agent_actions WHERE campaign_id = $1", campaign_id)) == "propose"

    assert (proposed_event["type"], proposed_event["payload"]["escalations"]) == ("optimization.proposed", ["low_roi"])
    assert opened["channel"] == event_channel("escalations") and opened["type"] == "escalation.opened"
    assert opened["payload"]["escalation_id"] == str(escalation.id) and opened["payload"]["kind"] == "low_roi"

    assert (acknowledged.status, acknowledged.acknowledged_by, acknowledged.note) == (
        EscalationStatus.ACKNOWLEDGED, "maria", "Budget review on Monday")
    assert acknowledged_event["type"] == "escalation.acknowledged"
    assert acknowledged_event["payload"]["acknowledged_by"] == "maria"
    assert (await agent.escalations(EscalationStatus.OPEN, campaign_id)).escalations == []
    assert [e.id for e in (await agent.escalations(EscalationStatus.ACKNOWLEDGED, campaign_id)).escalations] == [
        escalation.id]
    with pytest.raises(Conflict, match="already acknowledged by maria"):
        await agent.acknowledge(escalation.id, by="li")
    with pytest.raises(NotFound):
        await agent.acknowledge(uuid4())


async def test_asking_again_with_the_same_inputs_gives_the_same_proposal_stored_once(agent, pool):
    campaign_id = await new_campaign(agent)
    await agent.ingest_metrics(campaign_id, two_even("500.00", "100.00"))
    first = await agent.optimize(campaign_id)
    assert (await agent.optimize(campaign_id)).id == first.id
    assert await count(pool, "optimizations", campaign_id) == 1 and await count(pool, "escalations", campaign_id) == 1


async def test_approving_a_proposal_applies_it_unchanged_and_acknowledges_its_escalations(agent, store,
                                                                                          redis_client):
    campaign_id = await new_campaign(agent)
    await agent.ingest_metrics(campaign_id, two_even("500.00", "100.00"))
    proposal = await agent.optimize(campaign_id)
    async with Events(redis_client, campaign_id, "campaigns", "escalations") as events:
        approved = await agent.approve(proposal.id, by="maria")
        applied_event, acknowledged_event = await events.next(2)
    assert approved.status is OptimizationStatus.APPLIED and approved.applied_by == "maria"
    assert approved.decision == proposal.decision
    assert (await store.allocation(campaign_id)).allocation == proposal.decision.proposed
    assert [(e.status, e.acknowledged_by) for e in approved.escalations] == [(EscalationStatus.ACKNOWLEDGED, "maria")]
    assert (applied_event["type"], applied_event["payload"]["applied_by"]) == ("optimization.applied", "maria")
    assert acknowledged_event["type"] == "escalation.acknowledged"
    with pytest.raises(Conflict, match="only a proposed one can be approved"):
        await agent.approve(proposal.id)
    with pytest.raises(NotFound):
        await agent.approve(uuid4())


async def test_a_proposal_replaced_by_a_newer_decision_cannot_be_approved(agent):
    campaign_id = await new_campaign(agent)
    await agent.ingest_metrics(campaign_id, two_even("500.00", "100.00"))
    older = await agent.optimize(campaign_id)
    await agent.ingest_metrics(campaign_id, two_even("500.00", "90.00"))  # the day corrected: a new decision
    newer = await agent.optimize(campaign_id)
    assert newer.id != older.id and newer.status is OptimizationStatus.PROPOSED
    with pytest.raises(Conflict, match=f"superseded by optimization {newer.id}"):
        await agent.approve(older.id)
    assert (await agent.approve(newer.id)).status is OptimizationStatus.APPLIED


# -- rollback --------------------------------------------------------------------------------------


async def test_one_call_rolls_back_to_exactly_the_previous_allocation(agent, store, pool, redis_client):
    campaign_id = await new_campaign(agent)
    await agent.ingest_metrics(campaign_id, day_rows(ONE_LOSER))
    first = await agent.optimize(campaign_id)
    await agent.ingest_metrics(campaign_id, day_rows(ONE_LOSER, day=1))
    second = await agent.optimize(campaign_id)
    assert second.decision.previous == first.decision.proposed != second.decision.proposed
    assert (await store.optimization(first.id)).status is OptimizationStatus.SUPERSEDED

    async with Events(redis_client, campaign_id, "campaigns") as events:
        rollback = await agent.rollback(second.id, by="maria")
        (event,) = await events.next(1)

    restored = await store.allocation(campaign_id)
    assert restored.allocation == first.decision.proposed  # shares and paused arms, bit for bit
    assert restored.allocation.shares == first.decision.proposed.shares
    assert restored.optimization_id == rollback.id
    assert (rollback.status, rollback.rollback_of, rollback.created_by) == (OptimizationStatus.APPLIED, second.id,
                                                                           "maria")
    assert rollback.decision.is_rollback
    undone = await store.optimization(second.id)
    assert (undone.status, undone.rolled_back_by) == (OptimizationStatus.ROLLED_BACK, rollback.id)
    actions = await pool.fetch("SELECT action, inputs FROM agent_actions WHERE campaign_id = $1 ORDER BY id",
                               campaign_id)
    assert [a["action"] for a in actions] == ["optimize", "optimize", "rollback"]
    assert actions[-1]["inputs"] == {"optimization_id": str(second.id), "by": "maria", "note": None}
    assert event["type"] == "optimization.rolled_back"
    assert (event["payload"]["optimization_id"], event["payload"]["rollback_id"]) == (str(second.id), str(rollback.id))
    assert event["payload"]["shares"] == first.decision.proposed.shares

    with pytest.raises(Conflict, match=f"already rolled back \\(by optimization {rollback.id}\\)"):
        await agent.rollback(second.id)


async def test_rolling_back_a_superseded_optimization_is_refused_naming_the_later_one(agent, store, pool):
    campaign_id = await new_campaign(agent)
    await agent.ingest_metrics(campaign_id, day_rows(ONE_LOSER))
    first = await agent.optimize(campaign_id)
    await agent.ingest_metrics(campaign_id, day_rows(ONE_LOSER, day=1))
    second = await agent.optimize(campaign_id)
    before = await stored_counts(pool, campaign_id)
    with pytest.raises(Conflict) as caught:
        await agent.rollback(first.id)
    assert caught.value.status_code == 409 and str(second.id) in caught.value.message
    assert caught.value.details["later_optimization_id"] == str(second.id)
    assert await stored_counts(pool, campaign_id) == before
    assert (await store.allocation(campaign_id)).allocation == second.decision.proposed


async def test_the_first_decision_rolls_back_to_the_equal_split_and_a_rollback_can_be_undone(agent, store):
    campaign_id = await new_campaign(agent)
    await agent.ingest_metrics(campaign_id, day_rows(ONE_LOSER))
    applied = await agent.optimize(campaign_id)
    rollback = await agent.rollback(applied.id)
    assert (await store.allocation(campaign_id)).allocation == EQUAL_FOUR
    redo = await agent.rollback(rollback.id)
    assert (await store.allocation(campaign_id)).allocation == applied.decision.proposed
    assert redo.rollback_of == rollback.id
    with pytest.raises(NotFound):
        await agent.rollback(uuid4())


async def test_a_proposal_that_was_never_applied_cannot_be_rolled_back(agent):
    campaign_id = await new_campaign(agent)
    await agent.ingest_metrics(campaign_id, two_even("500.00", "100.00"))
    proposal = await agent.optimize(campaign_id)
    with pytest.raises(Conflict, match="proposed: it was never applied"):
        await agent.rollback(proposal.id)


async def test_the_history_lists_every_stored_decision_newest_first(agent):
    campaign_id = await new_campaign(agent)
    await agent.ingest_metrics(campaign_id, day_rows(ONE_LOSER))
    applied = await agent.optimize(campaign_id)
    rollback = await agent.rollback(applied.id)
    history = (await agent.optimizations(campaign_id)).optimizations
    assert [(o.id, o.status) for o in history] == [(rollback.id, OptimizationStatus.APPLIED),
                                                  (applied.id, OptimizationStatus.ROLLED_BACK)]


async def test_a_failure_to_publish_is_logged_and_the_decision_stays(store, pool, caplog):
    dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    agent = CampaignOptimizer(store, EventBus(RedisShortTermStore(dead)))
    try:
        campaign_id = await new_campaign(agent)
        await agent.ingest_metrics(campaign_id, day_rows(ONE_LOSER))
        with caplog.at_level(logging.WARNING, logger="marketing_agents.flows.campaign_optimizer"):
            record = await agent.optimize(campaign_id)
    finally:
        await dead.aclose()
    assert record.status is OptimizationStatus.APPLIED
    assert await count(pool, "optimizations", campaign_id) == 1
    assert "could not publish optimization.applied on campaigns" in caplog.text
