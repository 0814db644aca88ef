"""The lead flow against real PostgreSQL and Valkey, with the agents called in-process.

The same LeadOrchestrator runs inside the LeadOrchestrator deployment; here its ports are the plain agent
classes, so these tests pin down storage behaviour without a Ray cluster.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest

from marketing_agents.domain import Channel, NewLead
from marketing_agents.errors import IdempotencyKeyReused, LeadExists, StorageError
from marketing_agents.flows.lead_orchestrator import LeadOrchestrator
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.memory.short_term import ShortTermMemory, context_key
from marketing_agents.stores.redis import RedisShortTermStore
from tests.support import InProcessAgents, lead_payload

TABLES_WITH_LEAD_ROWS = ("leads", "triage_results", "handoffs", "engagement_plans", "touchpoints", "agent_actions")


def intake(repository, redis_client, agents: InProcessAgents, ttl_s: int = 3600) -> LeadOrchestrator:
    short_term = ShortTermMemory(RedisShortTermStore(redis_client), TtlPolicy(cache_s=ttl_s))
    return agents.intake(repository, short_term)


async def rows_for(pool, lead_id) -> dict[str, int]:
    return {table: await pool.fetchval(f"SELECT count(*) FROM {table} WHERE {'id' if table == 'leads' else 'lead_id'} = $1",
                                       lead_id)
            for table in TABLES_WITH_LEAD_ROWS}


async def total_leads(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM leads")


async def test_a_hot_lead_is_stored_with_triage_handoff_plan_touchpoints_and_audit(pool, repository, redis_client):
    result = await intake(repository, redis_client, InProcessAgents()).submit(NewLead(**lead_payload()))

    assert result.success and result.triage_category == "hot"
    counts = await rows_for(pool, result.lead_id)
    assert counts == {"leads": 1, "triage_results": 1, "handoffs": 1, "engagement_plans": 1,
                      "touchpoints": len(result.engagement_plan.touchpoints), "agent_actions": 4}
    actions = [(r["agent"], r["action"]) for r in await pool.fetch(
        "SELECT agent, action FROM agent_actions WHERE lead_id = $1 ORDER BY id", result.lead_id)]
    assert actions == [("TriageAgent", "triage"), ("HandoffOrchestrator", "handoff_pending"),
                       ("EngagementAgent", "plan_engagement"), ("HandoffOrchestrator", "handoff_completed")]
    assert result.status == "engaged"
    status = await pool.fetchval("SELECT status FROM leads WHERE id = $1", result.lead_id)
    assert status == "engaged"

    detail = await repository.get_detail(result.lead_id)
    assert detail.engagement_plan == result.engagement_plan
    assert detail.handoffs[0].status == "completed"
    assert detail.lead.email == "jane.doe@acme-robotics.com"


async def test_the_working_context_is_cached_with_the_configured_ttl(repository, redis_client):
    result = await intake(repository, redis_client, InProcessAgents(), ttl_s=120).submit(
        NewLead(**lead_payload(email="ttl@acme-robotics.com")))
    ttl = await redis_client.ttl(context_key(result.lead_id))
    assert 0 < ttl <= 120
    context = await ShortTermMemory(RedisShortTermStore(redis_client)).context(result.lead_id)
    assert context["lead"]["id"] == str(result.lead_id)
    assert context["plan_id"] == str(result.engagement_plan.id)


async def test_a_retry_with_the_same_idempotency_key_returns_the_first_answer_and_stores_once(pool, repository, redis_client):
    flow = intake(repository, redis_client, InProcessAgents())
    lead = NewLead(**lead_payload(email="retry@acme-robotics.com"))
    before = await total_leads(pool)
    first = await flow.submit(lead, idempotency_key="retry-1")
    second = await flow.submit(lead, idempotency_key="retry-1")
    assert second == first
    assert await total_leads(pool) == before + 1


async def test_concurrent_requests_with_one_key_store_one_lead(pool, repository, redis_client):
    flow = intake(repository, redis_client, InProcessAgents())
    lead = NewLead(**lead_payload(email="race@acme-robotics.com"))
    before = await total_leads(pool)
    results = await asyncio.gather(*(flow.submit(lead, idempotency_key="race-1") for _ in range(8)))
    assert len({r.lead_id for r in results}) == 1
    assert await total_leads(pool) == before + 1
    lead_id = results[0].lead_id
    assert (await rows_for(pool, lead_id))["handoffs"] == 1


async def test_the_same_key_with_another_body_is_refused_and_stores_nothing(pool, repository, redis_client):
    flow = intake(repository, redis_client, InProcessAgents())
    await flow.submit(NewLead(**lead_payload(email="one@acme-robotics.com")), idempotency_key="reuse-1")
    before = await total_leads(pool)
    with pytest.raises(IdempotencyKeyReused):
        await flow.submit(NewLead(**lead_payload(email="two@acme-robotics.com")), idempotency_key="reuse-1")
    assert await total_leads(pool) == before


async def test_a_known_external_id_is_a_conflict_naming_the_existing_lead(pool, repository, redis_client):
    flow = intake(repository, redis_client, InProcessAgents())
    first = await flow.submit(NewLead(**lead_payload(email="crm@acme-robotics.com", external_id="crm-77")))
    before = await total_leads(pool)
    with pytest.raises(LeadExists) as raised:
        await flow.submit(NewLead(**lead_payload(email="crm2@acme-robotics.com", external_id="crm-77")))
    assert raised.value.details["lead_id"] == str(first.lead_id)
    assert await total_leads(pool) == before


async def test_a_low_quality_package_never_reaches_engagement_and_the_lead_waits_for_review(pool, repository, redis_client):
    # A triage a day old is stale: the package scores below the minimum.
    agents = InProcessAgents(triage_delay=timedelta(hours=30))
    result = await intake(repository, redis_client, agents).submit(NewLead(**lead_payload(email="stale@acme-robotics.com")))
    assert agents.engagement_calls == 0
    assert result.engagement_plan is None and result.next_actions == []
    counts = await rows_for(pool, result.lead_id)
    assert counts["handoffs"] == 1 and counts["engagement_plans"] == 0 and counts["touchpoints"] == 0
    handoff = await pool.fetchrow("SELECT status, reason FROM handoffs WHERE lead_id = $1", result.lead_id)
    assert handoff["status"] == "rejected" and "freshness" in handoff["reason"] and "s old" in handoff["reason"]
    assert await pool.fetchval("SELECT status FROM leads WHERE id = $1", result.lead_id) == "needs_review"


async def test_a_lead_without_consent_is_disqualified_and_never_handed_off(pool, repository, redis_client):
    agents = InProcessAgents()
    result = await intake(repository, redis_client, agents).submit(
        NewLead(**lead_payload(email="noconsent@acme-robotics.com", consent={})))
    assert result.triage_category == "disqualified"
    assert agents.engagement_calls == 0
    counts = await rows_for(pool, result.lead_id)
    assert counts["leads"] == 1 and counts["handoffs"] == 0 and counts["touchpoints"] == 0


async def test_an_engagement_agent_that_fails_once_is_retried_and_the_lead_is_fully_engaged(pool, repository,
                                                                                            redis_client):
    agents = InProcessAgents(fail_engagement=1)
    result = await intake(repository, redis_client, agents).submit(NewLead(**lead_payload(email="flaky@acme.io")))
    assert agents.engagement_calls == 2
    counts = await rows_for(pool, result.lead_id)
    assert counts["handoffs"] == 1 and counts["engagement_plans"] == 1 and counts["touchpoints"] >= 1
    assert await pool.fetchval("SELECT status FROM leads WHERE id = $1", result.lead_id) == "engaged"


async def test_an_engagement_agent_that_keeps_failing_dead_letters_the_handoff_never_half_engaged(
        pool, repository, redis_client):
    agents = InProcessAgents(fail_engagement=99)
    result = await intake(repository, redis_client, agents).submit(
        NewLead(**lead_payload(email="fail@acme-robotics.com")), idempotency_key="fail-1")
    assert agents.engagement_calls == 3, "retried, then given up"
    assert result.engagement_plan is None and result.next_actions == [] and result.status == "needs_review"
    counts = await rows_for(pool, result.lead_id)
    assert counts["engagement_plans"] == 0 and counts["touchpoints"] == 0
    handoff = await pool.fetchrow("SELECT status, reason FROM handoffs WHERE lead_id = $1", result.lead_id)
    assert handoff["status"] == "dead_lettered" and "engagement replica died" in handoff["reason"]
    assert await pool.fetchval("SELECT status FROM leads WHERE id = $1", result.lead_id) == "needs_review"


async def test_a_failed_completion_leaves_the_lead_accepted_and_pending_never_half_engaged(
        pool, repository, redis_client, monkeypatch):
    async def broken_plan_insert(conn, plan):
        await conn.execute("INSERT INTO engagement_plans (id) VALUES (gen_random_uuid())")  # a partial write...
        raise StorageError("PostgreSQL went away")  # ...then the connection drops

    monkeypatch.setattr(repository, "_insert_plan", broken_plan_insert)
    result = await intake(repository, redis_client, InProcessAgents()).submit(
        NewLead(**lead_payload(email="midway@acme-robotics.com")), idempotency_key="midway-1")

    assert result.status == "handing_off" and result.engagement_plan is None
    counts = await rows_for(pool, result.lead_id)
    assert counts["leads"] == 1 and counts["engagement_plans"] == 0 and counts["touchpoints"] == 0
    assert await pool.fetchval("SELECT status FROM handoffs WHERE lead_id = $1", result.lead_id) == "pending"
    assert await pool.fetchval("SELECT status FROM leads WHERE id = $1", result.lead_id) == "handing_off"


async def test_an_unreachable_postgres_is_a_storage_error(migrated, redis_client):
    from marketing_agents.stores.postgres import create_pool

    settings = migrated.settings(postgres_dsn="postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(StorageError, match="cannot connect to PostgreSQL"):
        await create_pool(settings)


async def test_the_handoff_package_carries_what_memory_recalled_and_the_score_is_remembered(
        migrated, pool, repository, redis_client):
    from marketing_agents.memory.manager import UnifiedMemoryManager
    from marketing_agents.memory.tier_actors import TIER_NAMES, build_tier
    from marketing_agents.stores.connections import StoreConnections

    stores = StoreConnections(migrated.settings())
    tiers = {name: await build_tier(name, migrated.settings(), stores) for name in TIER_NAMES}
    manager = UnifiedMemoryManager(tiers["short_term"], tiers["long_term"], tiers["episodic"], tiers["semantic"],
                                   tiers["leads"], deadline_s=5)
    agents = InProcessAgents()
    flow = agents.intake(repository, tiers["short_term"], memory=manager)
    try:
        result = await flow.submit(NewLead(**lead_payload(email="recall@acme-robotics.com")))
        package = await pool.fetchval("SELECT package FROM handoffs WHERE lead_id = $1", result.lead_id)
        assert package["memory"]["lead_id"] == str(result.lead_id)
        assert package["memory"]["missing"] == {}
        assert "UnifiedMemoryManager" in [p["agent"] for p in package["provenance"]]
        history = await pool.fetchval("SELECT score_history FROM lead_profiles WHERE lead_id = $1", result.lead_id)
        assert [h["lead_score"] for h in history] == [result.lead_score]
    finally:
        await stores.close()


async def test_every_replica_can_announce_a_lead_on_the_event_bus(repository, redis_client):
    from marketing_agents.memory.event_bus import event_channel

    subscriber = redis_client.pubsub()
    await subscriber.subscribe(event_channel("leads"), event_channel("handoffs"))
    for _ in range(2):
        assert (await subscriber.get_message(timeout=5))["type"] == "subscribe"
    result = await intake(repository, redis_client, InProcessAgents()).submit(
        NewLead(**lead_payload(email="events@acme-robotics.com")))
    received = []
    while len(received) < 3:
        message = await subscriber.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message is not None, "an event was not published"
        received.append(json.loads(message["data"]))
    assert [e["type"] for e in received] == ["lead.triaged", "handoff.pending", "handoff.completed"]
    assert all(e["payload"]["lead_id"] == str(result.lead_id) for e in received)
    await subscriber.aclose()


async def test_a_second_lead_with_a_known_email_waits_for_review_instead_of_a_second_sequence(pool, repository,
                                                                                               redis_client):
    agents = InProcessAgents()
    flow = intake(repository, redis_client, agents)
    first = await flow.submit(NewLead(**lead_payload(email="twice@acme-robotics.com")))
    calls = agents.engagement_calls
    second = await flow.submit(NewLead(**lead_payload(email="twice@acme-robotics.com", first_name="J.")))
    assert second.lead_id != first.lead_id and second.engagement_plan is None
    assert agents.engagement_calls == calls, "no second engagement for the same person"
    row = await pool.fetchrow("SELECT status FROM leads WHERE id = $1", second.lead_id)
    assert row["status"] == "needs_review"
    detail = await repository.get_detail(second.lead_id)
    assert detail.triage.enrichment.duplicate_of == first.lead_id
    assert detail.triage.route_to == "HumanReview"


async def test_unsubscribing_cancels_every_pending_touchpoint_and_withdraws_consent(pool, repository, redis_client):
    result = await intake(repository, redis_client, InProcessAgents()).submit(
        NewLead(**lead_payload(email="optout@acme-robotics.com")))
    lead_id = result.lead_id
    pending = await pool.fetchval("SELECT count(*) FROM touchpoints WHERE lead_id = $1 AND status = 'pending'", lead_id)
    assert pending >= 2

    partial = await repository.unsubscribe(lead_id, [Channel.LINKEDIN])
    assert partial.cancelled_touchpoints == await pool.fetchval(
        "SELECT count(*) FROM touchpoints WHERE lead_id = $1 AND channel = 'linkedin'", lead_id)
    everything = await repository.unsubscribe(lead_id, None)

    assert partial.cancelled_touchpoints + everything.cancelled_touchpoints == pending
    assert await pool.fetchval("SELECT count(*) FROM touchpoints WHERE lead_id = $1 AND status = 'pending'", lead_id) == 0
    consent = await pool.fetchval("SELECT consent FROM leads WHERE id = $1", lead_id)
    assert not any(consent.values())
    assert await pool.fetchval(
        "SELECT count(*) FROM interactions WHERE lead_id = $1 AND type = 'unsubscribe'", lead_id) == 2
    assert await repository.unsubscribe(uuid.uuid4(), None) is None


async def test_every_stage_of_an_engaged_lead_is_timed_in_order(repository, redis_client):
    timed: list[tuple[str, float]] = []
    agents = InProcessAgents()
    flow = agents.intake(repository, ShortTermMemory(RedisShortTermStore(redis_client)))
    flow._observe_stage = lambda stage, ms: timed.append((stage, ms))

    result = await flow.submit(NewLead(**lead_payload(email="timed@acme-robotics.com")))

    assert result.status == "engaged"
    assert [stage for stage, _ in timed] == ["admit", "triage", "recall", "handoff_prepare", "store",
                                             "handoff_deliver", "handoff_complete"]
    assert all(ms >= 0 for _, ms in timed)
    assert sum(ms for _, ms in timed) <= result.processing_time_ms + 50
