"""Fixtures the engagement feedback and behavioural scoring tests share: the agent as the deployment
builds it (with the behaviour scorer), and leads made by the real intake flow."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from marketing_agents.actors.factory import behaviour_scorer
from marketing_agents.domain import NewLead
from marketing_agents.flows.engagement_feedback import EngagementFeedback
from marketing_agents.memory.event_bus import EventBus
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.settings import Settings
from marketing_agents.stores.postgres_interactions import InteractionRepository
from marketing_agents.stores.redis import RedisShortTermStore
from tests.integration.feedback_support import ALWAYS_OPEN
from tests.support import InProcessAgents, lead_payload


@pytest.fixture
def short_term(redis_client) -> ShortTermMemory:
    return ShortTermMemory(RedisShortTermStore(redis_client), TtlPolicy())


@pytest.fixture
def feedback(pool, short_term) -> EngagementFeedback:
    return EngagementFeedback(InteractionRepository(pool), EventBus(short_term.store, short_term.policy), ALWAYS_OPEN,
                              scorer=behaviour_scorer(Settings(), ALWAYS_OPEN.contact))


@pytest.fixture
def new_lead(repository, short_term):
    intake = InProcessAgents().intake(repository, short_term)

    async def make(**overrides) -> UUID:
        overrides.setdefault("email", f"lead.{uuid4().hex[:10]}@acme-robotics.com")
        return (await intake.submit(NewLead(**lead_payload(**overrides)))).lead_id

    return make
