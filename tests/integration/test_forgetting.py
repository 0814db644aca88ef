"""The right to be forgotten and of access, across every tier, against the real stores."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from marketing_agents.domain import NewLead
from marketing_agents.domain.episode import Episode, EpisodeOutcome
from marketing_agents.memory.manager import UnifiedMemoryManager
from marketing_agents.memory.tier_actors import TIER_NAMES, build_tier
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.postgres import LEAD_TABLES
from tests.support import InProcessAgents, lead_payload

T0 = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture
async def memory(migrated, pool, repository):
    stores = StoreConnections(migrated.settings())
    tiers = {name: await build_tier(name, migrated.settings(), stores) for name in TIER_NAMES}
    manager = UnifiedMemoryManager(tiers["short_term"], tiers["long_term"], tiers["episodic"], tiers["semantic"],
                                   tiers["leads"])
    agents = InProcessAgents()
    intake = agents.intake(repository, tiers["short_term"])
    yield manager, intake, tiers
    await stores.close()


async def remember_everything(manager, intake, tiers, pool, email: str):
    """A lead that every tier knows something about."""
    lead_id = (await intake.submit(NewLead(**lead_payload(email=email)), idempotency_key=f"k-{email}")).lead_id
    await manager.record_activity(lead_id, "email", T0)
    await manager.record_score(lead_id, 88.0, T0)
    await pool.execute("INSERT INTO interactions (lead_id, type, value, occurred_at) VALUES ($1, 'purchase', 120, $2)",
                       lead_id, T0)
    await manager.record_episode(Episode(
        id=uuid.uuid4(), lead_id=lead_id, segment="manufacturing/mid_market", context={"industry": "manufacturing"},
        actions=[{"channel": "email"}], outcome=EpisodeOutcome.CONVERTED, started_at=T0, ended_at=T0 + timedelta(days=3)))
    await tiers["short_term"].add_turn(lead_id, f"conv-{lead_id}", "lead", "Interested!")
    await tiers["short_term"].remember_session(f"sess-{lead_id}", {"page": "/pricing"}, lead_id)
    return lead_id


async def rows_about(pool, lead_id) -> dict[str, int]:
    counts = {t: await pool.fetchval(f"SELECT count(*) FROM {t} WHERE lead_id = $1", lead_id) for t in LEAD_TABLES}
    counts["leads"] = await pool.fetchval("SELECT count(*) FROM leads WHERE id = $1", lead_id)
    return counts


async def test_export_returns_what_every_tier_holds(memory, pool):
    manager, intake, tiers = memory
    lead_id = await remember_everything(manager, intake, tiers, pool, f"export.{uuid.uuid4().hex[:6]}@acme.io")
    exported = await manager.export(lead_id)
    assert exported["lead"]["id"] == lead_id
    assert len(exported["handoffs"]) == 1 and len(exported["touchpoints"]) >= 1
    assert exported["lead_profiles"][0]["engagement_by_channel"] == {"email": 1}
    assert len(exported["episodes"]) == 1 and "embedding" not in exported["episodes"][0]
    assert len(exported["interactions"]) == 1
    assert any(key.endswith(":context") for key in exported["short_term"])
    assert any("conversation" in key for key in exported["short_term"])
    assert await manager.export(uuid.uuid4()) is None


async def test_erasing_a_lead_leaves_no_row_key_or_node_about_it(memory, pool, redis_client):
    manager, intake, tiers = memory
    lead_id = await remember_everything(manager, intake, tiers, pool, f"erase.{uuid.uuid4().hex[:6]}@acme.io")
    keep = await remember_everything(manager, intake, tiers, pool, f"keep.{uuid.uuid4().hex[:6]}@acme.io")
    before = await rows_about(pool, lead_id)
    assert all(before[t] >= 1 for t in ("leads", "handoffs", "episodes", "interactions", "lead_profiles"))

    removed = await manager.forget(lead_id)

    assert removed["leads"] == 1 and removed["episodes"] == 1 and removed["short_term_keys"] >= 3
    assert set((await rows_about(pool, lead_id)).values()) == {0}
    assert [k async for k in redis_client.scan_iter(match=f"*{lead_id}*")] == []
    semantic = tiers["semantic"].store
    near = (await semantic.neighbours("industry:manufacturing", 2)).neighbours
    assert not [n for n in near if str(lead_id) in n.node.id]
    assert (await rows_about(pool, keep))["leads"] == 1, "only the erased lead goes"
    assert await tiers["short_term"].context(keep) is not None
