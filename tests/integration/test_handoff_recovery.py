"""A handoff survives the death of the process sending it: stored first, resumed by another, done once."""

from __future__ import annotations

from datetime import timedelta

from marketing_agents.domain import NewLead, utc_now
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.stores.postgres import LeadRepository
from marketing_agents.stores.redis import RedisShortTermStore
from tests.support import InProcessAgents, lead_payload


def dying_agents() -> InProcessAgents:
    """Agents whose process dies the moment it would send the package."""
    agents = InProcessAgents()

    async def died(package):
        raise ConnectionResetError("the orchestrator's process died")

    agents.deliver = died
    return agents


async def lead_rows(pool, lead_id) -> dict:
    return {
        "lead": await pool.fetchval("SELECT status FROM leads WHERE id = $1", lead_id),
        "handoffs": [dict(r) for r in await pool.fetch(
            "SELECT status, attempts FROM handoffs WHERE lead_id = $1", lead_id)],
        "plans": await pool.fetchval("SELECT count(*) FROM engagement_plans WHERE lead_id = $1", lead_id),
        "touchpoints": await pool.fetchval("SELECT count(*) FROM touchpoints WHERE lead_id = $1", lead_id),
    }


async def test_a_handoff_left_by_a_dead_process_is_resumed_by_another_and_engages_the_lead_once(pool, redis_client):
    short_term = ShortTermMemory(RedisShortTermStore(redis_client))
    expired_at_once = LeadRepository(pool, timedelta(hours=1), handoff_lease=timedelta(0))
    accepted = await dying_agents().intake(expired_at_once, short_term).submit(
        NewLead(**lead_payload(email="orphan@acme-robotics.com")), idempotency_key="orphan-1")

    assert accepted.status == "handing_off"
    assert await lead_rows(pool, accepted.lead_id) == {
        "lead": "handing_off", "handoffs": [{"status": "pending", "attempts": 0}], "plans": 0, "touchpoints": 0}

    other_replica = InProcessAgents()
    resumed = await other_replica.intake(expired_at_once, short_term).resume_stalled_handoffs()
    assert resumed >= 1
    rows = await lead_rows(pool, accepted.lead_id)
    assert rows["lead"] == "engaged" and rows["handoffs"] == [{"status": "completed", "attempts": 1}]
    assert rows["plans"] == 1 and rows["touchpoints"] >= 1

    # Nothing is left to resume, and a retried request now gets the engaged answer with the plan.
    assert await other_replica.intake(expired_at_once, short_term).resume_stalled_handoffs() == 0
    replay = await expired_at_once.idempotent_response("orphan-1", accepted_hash(accepted, "orphan@acme-robotics.com"))
    assert replay.status == "engaged" and replay.engagement_plan is not None
    assert replay.next_actions and replay.lead_id == accepted.lead_id


def accepted_hash(result, email: str) -> str:
    from marketing_agents.flows.lead_orchestrator import request_fingerprint

    return request_fingerprint(NewLead(**lead_payload(email=email)))


async def test_a_handoff_still_under_its_lease_is_not_taken_from_its_process(pool, redis_client):
    short_term = ShortTermMemory(RedisShortTermStore(redis_client))
    leased = LeadRepository(pool, timedelta(hours=1), handoff_lease=timedelta(minutes=10))
    accepted = await dying_agents().intake(leased, short_term).submit(
        NewLead(**lead_payload(email="leased@acme-robotics.com")))

    claimed = await leased.claim_stalled_handoffs(limit=1000)

    assert accepted.lead_id not in {package.lead.id for package in claimed}
    assert (await lead_rows(pool, accepted.lead_id))["handoffs"] == [{"status": "pending", "attempts": 0}]


async def test_a_late_original_and_a_recovery_cannot_both_engage_the_lead(pool, redis_client):
    short_term = ShortTermMemory(RedisShortTermStore(redis_client))
    repository = LeadRepository(pool, timedelta(hours=1), handoff_lease=timedelta(0))
    accepted = await dying_agents().intake(repository, short_term).submit(
        NewLead(**lead_payload(email="late-twice@acme-robotics.com")))
    (package,) = [p for p in await repository.claim_stalled_handoffs(1000) if p.lead.id == accepted.lead_id]
    agents = InProcessAgents()
    first = agents.engagement.plan(package, utc_now())
    second = agents.engagement.plan(package, utc_now())

    assert await repository.complete_handoff(package.handoff_id, first, attempts=1) == first
    assert await repository.complete_handoff(package.handoff_id, second, attempts=1) is None
    assert await repository.dead_letter_handoff(package.handoff_id, "too late", attempts=1,
                                              review_queue="HumanReview") is False

    rows = await lead_rows(pool, accepted.lead_id)
    assert rows["plans"] == 1 and rows["lead"] == "engaged" and rows["handoffs"][0]["status"] == "completed"
    plan_id = await pool.fetchval("SELECT id FROM engagement_plans WHERE lead_id = $1", accepted.lead_id)
    assert plan_id == first.id


async def test_a_recovery_whose_receiver_keeps_failing_dead_letters_and_rolls_the_lead_back(pool, redis_client):
    short_term = ShortTermMemory(RedisShortTermStore(redis_client))
    repository = LeadRepository(pool, timedelta(hours=1), handoff_lease=timedelta(0))
    accepted = await dying_agents().intake(repository, short_term).submit(
        NewLead(**lead_payload(email="doomed@acme-robotics.com")))

    await InProcessAgents(fail_engagement=99).intake(repository, short_term).resume_stalled_handoffs(limit=1000)

    rows = await lead_rows(pool, accepted.lead_id)
    assert rows == {"lead": "needs_review", "handoffs": [{"status": "dead_lettered", "attempts": 3}],
                    "plans": 0, "touchpoints": 0}
    reason = await pool.fetchval("SELECT reason FROM handoffs WHERE lead_id = $1", accepted.lead_id)
    assert "failed 3 times" in reason and "engagement replica died" in reason
