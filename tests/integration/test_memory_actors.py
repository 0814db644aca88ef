"""The memory tiers as actors on a real local Ray cluster, fronting the real stores."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import ray

from marketing_agents.domain import Lead, NewLead
from marketing_agents.memory.tier_actors import memory_manager_on_ray, tier_actor
from tests.support import InProcessAgents, lead_payload


@pytest.fixture(scope="module")
def cluster(migrated) -> Iterator[None]:
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="mas-test-memory",
             logging_level="WARNING", log_to_driver=False)
    yield
    ray.shutdown()


async def test_recall_through_the_tier_actors(cluster, migrated, repository):
    settings = migrated.settings()
    manager = memory_manager_on_ray(settings, deadline_s=10)
    agents = InProcessAgents()
    intake = agents.intake(repository, manager.short_term)
    new_lead = NewLead(**lead_payload(email=f"ray.{uuid.uuid4().hex[:6]}@acme.io"))
    result = await intake.submit(new_lead)
    await manager.record_activity(result.lead_id, "linkedin", datetime(2026, 5, 1, tzinfo=UTC))
    lead = Lead(**new_lead.model_dump(), id=result.lead_id, created_at=datetime.now(UTC))

    recall = await manager.recall(lead, persona="cto")

    assert recall.missing == {}
    assert recall.context["lead"]["id"] == str(result.lead_id)
    assert recall.profile["engagement_by_channel"] == {"linkedin": 1}


async def test_every_caller_shares_one_actor_per_tier(cluster, migrated):
    first = tier_actor("long_term", migrated.settings())
    second = tier_actor("long_term", migrated.settings())
    assert first._handle._actor_id == second._handle._actor_id


async def test_an_unknown_tier_method_is_refused_by_name(cluster, migrated):
    with pytest.raises(AttributeError, match="has no method 'drop_everything'"):
        await tier_actor("short_term", migrated.settings()).drop_everything()


async def test_calls_sent_together_each_get_their_own_answer(cluster, migrated):
    """Concurrent calls travel as one actor call; a failing one fails alone, the others still land."""
    short_term = tier_actor("short_term", migrated.settings())
    lead_ids = [uuid.uuid4() for _ in range(40)]
    await asyncio.gather(*(short_term.cache_context(lead_id, {"n": n}) for n, lead_id in enumerate(lead_ids)))

    answers = await asyncio.gather(*(short_term.context(lead_id) for lead_id in lead_ids),
                                   short_term.drop_everything(), return_exceptions=True)

    assert [answer["n"] for answer in answers[:-1]] == list(range(40))
    assert isinstance(answers[-1], AttributeError) and "drop_everything" in str(answers[-1])
