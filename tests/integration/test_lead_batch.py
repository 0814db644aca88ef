"""A batch of leads through the one lead flow (LeadOrchestrator) against real PostgreSQL and Valkey, with the
agents in-process; and a lead's profile, export and erasure as the API answers them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from marketing_agents.domain import NewLead, utc_now
from marketing_agents.errors import NotFound
from marketing_agents.flows.lead_orchestrator import LeadOrchestrator
from marketing_agents.memory.event_bus import EventBus
from marketing_agents.memory.lead_rights import LeadDataRights
from marketing_agents.memory.manager import UnifiedMemoryManager
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.memory.tier_actors import TIER_NAMES, build_tier
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.postgres import LEAD_TABLES
from marketing_agents.stores.postgres_lead_listing import LeadListing
from marketing_agents.stores.redis import RedisShortTermStore
from tests.support import InProcessAgents, lead_payload


def tag() -> str:
    return uuid.uuid4().hex[:8]


class BatchAgents(InProcessAgents):
    """The in-process agents, with batch triage counted and a handoff that fails for one address."""

    def __init__(self, fail_prepare_for: str | None = None) -> None:
        super().__init__()
        self.batch_sizes: list[int] = []
        self.single_triages = 0
        self.fail_prepare_for = fail_prepare_for

    async def triage(self, lead, duplicate_of=None):
        self.single_triages += 1
        return await super().triage(lead, duplicate_of)

    async def triage_many(self, leads):
        self.batch_sizes.append(len(leads))
        agent = self.triage_agent
        return agent.triage_many([(lead, agent.enricher.enrich(lead, dup)) for lead, dup in leads], utc_now())

    async def prepare(self, lead, triage, provenance, memory=None, campaign=None):
        if lead.email == self.fail_prepare_for:
            raise RuntimeError("the handoff replica died")
        return await super().prepare(lead, triage, provenance, memory, campaign)


def batch_intake(repository, redis_client, agents: BatchAgents) -> LeadOrchestrator:
    short_term = ShortTermMemory(RedisShortTermStore(redis_client), TtlPolicy())
    return LeadOrchestrator(agents.triage, agents.prepare, agents.deliver, repository, short_term,
                      triage_many=agents.triage_many, events=EventBus(short_term.store, short_term.policy))


async def test_a_batch_reports_each_item_and_stores_the_good_ones_through_the_one_flow(pool, repository,
                                                                                        redis_client):
    t = tag()
    agents = BatchAgents()
    intake = batch_intake(repository, redis_client, agents)
    known = await intake.submit(NewLead(**lead_payload(email=f"known.{t}@acme-robotics.com", external_id=f"k-{t}")))
    items = [
        lead_payload(email=f"a.{t}@acme-robotics.com", external_id=f"a-{t}"),
        lead_payload(email="not-an-email", company_size="12"),
        lead_payload(email=f"b.{t}@acme-robotics.com", external_id=f"k-{t}"),  # known external_id
        lead_payload(email=f"c.{t}@acme-robotics.com", external_id=f"a-{t}"),  # the same as item 0
        lead_payload(email=f"a.{t}@acme-robotics.com", job_title="Marketing Manager"),  # item 0's email
        lead_payload(email=f"d.{t}@acme-robotics.com", consent={}),
    ]
    before = await pool.fetchval("SELECT count(*) FROM leads")

    answer = await intake.submit_batch(items)

    assert [r.index for r in answer.results] == list(range(len(items)))
    assert [r.status for r in answer.results] == ["stored", "invalid", "conflict", "conflict", "stored", "stored"]
    assert (answer.stored, answer.invalid, answer.conflicts, answer.failed) == (3, 1, 2, 0)
    assert agents.batch_sizes == [3] and agents.single_triages == 1  # the 1 is the known lead's own POST
    assert answer.scoring_model == "rules-v1"
    invalid = answer.results[1].error
    assert invalid.code == "validation_error"
    assert {f["field"] for f in invalid.details} == {"email", "company_size"}
    assert all(f["location"] == "body.leads.1" for f in invalid.details)
    assert answer.results[2].error.code == "lead_exists"
    assert answer.results[2].error.details == {"external_id": f"k-{t}", "lead_id": str(known.lead_id)}
    assert answer.results[3].error.details == {"external_id": f"a-{t}", "index": 0}

    first, twin, silent = (answer.results[i].result for i in (0, 4, 5))
    assert first.status == "engaged" and first.engagement_plan is not None
    assert twin.status == "needs_review"  # held for review as a duplicate of item 0, as if sent after it
    twin_triage = await pool.fetchval("SELECT result FROM triage_results WHERE lead_id = $1", twin.lead_id)
    assert twin_triage["enrichment"]["duplicate_of"] == str(first.lead_id)
    assert silent.status == "disqualified" and silent.triage_category == "disqualified"
    assert await pool.fetchval("SELECT count(*) FROM leads") == before + 3
    # Each stored lead is stored exactly as a single POST stores it.
    detail = await repository.get_detail(first.lead_id)
    assert detail.engagement_plan == first.engagement_plan and detail.handoffs[0].status == "completed"
    assert await pool.fetchval("SELECT count(*) FROM agent_actions WHERE lead_id = $1", first.lead_id) == 4


async def test_a_resent_batch_with_its_key_answers_the_stored_items_and_stores_nothing_twice(pool, repository,
                                                                                            redis_client):
    t = tag()
    intake = batch_intake(repository, redis_client, BatchAgents())
    items = [lead_payload(email=f"r{i}.{t}@acme-robotics.com") for i in range(3)] + [{"email": "x"}]
    first = await intake.submit_batch(items, idempotency_key=f"batch-{t}")
    count = await pool.fetchval("SELECT count(*) FROM leads")
    again = await intake.submit_batch(items, idempotency_key=f"batch-{t}")
    assert [r.status for r in again.results] == ["stored"] * 3 + ["invalid"]
    assert [r.result.lead_id for r in again.results[:3]] == [r.result.lead_id for r in first.results[:3]]
    assert await pool.fetchval("SELECT count(*) FROM leads") == count
    # Without the key the same leads are new leads (possible duplicates, held for review).
    fresh = await intake.submit_batch(items[:1])
    assert fresh.results[0].result.lead_id != first.results[0].result.lead_id
    assert fresh.results[0].result.status == "needs_review"


async def test_an_item_that_fails_midway_is_reported_and_the_others_are_stored(pool, repository, redis_client):
    t = tag()
    doomed = f"doomed.{t}@acme-robotics.com"
    intake = batch_intake(repository, redis_client, BatchAgents(fail_prepare_for=doomed))
    answer = await intake.submit_batch([lead_payload(email=f"ok.{t}@acme-robotics.com"), lead_payload(email=doomed)])
    assert [r.status for r in answer.results] == ["stored", "failed"]
    assert answer.results[1].error.code == "internal_error"
    assert await pool.fetchval("SELECT count(*) FROM leads WHERE email = $1", doomed) == 0


async def test_a_batch_of_a_thousand_is_triaged_in_one_call(pool, repository, redis_client):
    t = tag()
    agents = BatchAgents()
    intake = batch_intake(repository, redis_client, agents)
    items = [lead_payload(email=f"m{i}.{t}@acme-robotics.com", consent={}) for i in range(1000)]
    answer = await intake.submit_batch(items)
    assert agents.batch_sizes == [1000] and answer.stored == 1000
    assert len({r.result.lead_id for r in answer.results}) == 1000


@pytest.fixture
async def rights(migrated, pool, repository):
    stores = StoreConnections(migrated.settings())
    tiers = {name: await build_tier(name, migrated.settings(), stores) for name in TIER_NAMES}
    manager = UnifiedMemoryManager(tiers["short_term"], tiers["long_term"], tiers["episodic"], tiers["semantic"],
                                   tiers["leads"])
    intake = InProcessAgents().intake(repository, tiers["short_term"], memory=manager)
    yield LeadDataRights(manager, LeadListing(pool).exists), intake, tiers
    await stores.close()


async def test_profile_export_and_erasure_of_a_lead(rights, pool, redis_client):
    service, intake, tiers = rights
    lead_id = (await intake.submit(NewLead(**lead_payload(email=f"p.{tag()}@acme-robotics.com")))).lead_id
    await tiers["long_term"].record_activity(lead_id, "email", datetime(2026, 4, 2, tzinfo=UTC))
    await pool.execute("INSERT INTO interactions (lead_id, type, value, occurred_at) VALUES ($1, 'purchase', 120, $2)",
                       lead_id, datetime(2026, 4, 1, tzinfo=UTC))
    await tiers["long_term"].refresh_rfm(date(2026, 4, 30))

    profile = await service.profile(lead_id)
    assert profile.behaviour.engagement_by_channel == {"email": 1}
    assert len(profile.behaviour.score_history) == 1 and profile.behaviour.last_activity_at is not None
    assert profile.rfm.frequency == 1 and profile.rfm.recency_days == 29 and profile.rfm.as_of == date(2026, 4, 30)
    with pytest.raises(NotFound):
        await service.profile(uuid.uuid4())

    exported = await service.export(lead_id)
    assert exported.lead["id"] == lead_id and set(exported.tables) == set(LEAD_TABLES)
    assert len(exported.tables["interactions"]) == 1 and exported.short_term
    exported.model_dump_json()  # everything in it is JSON
    with pytest.raises(NotFound):
        await service.export(uuid.uuid4())

    report = await service.erase(lead_id)
    assert report.removed["postgres"]["leads"] == 1 and report.removed["postgres"]["interactions"] == 1
    assert report.removed["short_term"]["keys"] >= 1 and report.removed["semantic"] == {}
    assert report.total == sum(report.removed["postgres"].values()) + report.removed["short_term"]["keys"]
    for table in LEAD_TABLES:
        assert await pool.fetchval(f"SELECT count(*) FROM {table} WHERE lead_id = $1", lead_id) == 0
    assert [k async for k in redis_client.scan_iter(match=f"*{lead_id}*")] == []
    assert (await service.erase(lead_id)).removed == report.removed, "erasing again answers the same report"
    with pytest.raises(NotFound):
        await service.profile(lead_id)
