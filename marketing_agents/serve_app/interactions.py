"""``POST /api/v1/interactions``: replies, opens, clicks and purchases come back and update the plan.

The route is installed on the gateway's FastAPI app by ``add_interaction_routes``; the work runs in
the ``EngagementFeedback`` deployment, a thin wrapper around
``marketing_agents.flows.engagement_feedback.EngagementFeedback`` (its docstring has the rules).

The body is one interaction, or ``{"interactions": [...]}`` with 1 to 1,000 of them:
- one: 200 with an ``InteractionOutcome`` (``status`` "stored" or "duplicate"; ``rescore`` says how the
  interaction moved the lead's score by its behaviour, null when it did not); an unknown lead is
  404, an unknown campaign 400, an ``external_id`` reused for another interaction 409, a bad field 422;
- many: 200 with an ``InteractionBatchResult``: per item, in request order, "stored", "duplicate" or
  "error" with a code and message. Each item is stored all or nothing in its own transaction, and a
  bad item does not block the others. If PostgreSQL becomes unavailable midway the answer is 503;
  sending the batch again is safe (the items already stored come back as duplicates).
``occurred_at`` must lie between the setting ``interactions_earliest`` and a few minutes from now (422
naming ``interaction.occurred_at``, or that item's error in a batch), and a batch may fall in at most
``max_new_partitions_per_request`` months that have no partition yet (422 naming ``batch.interactions``,
nothing written): each month is a partition of its own.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI
from pydantic import Discriminator, Tag
from ray import serve

from marketing_agents.actors.factory import behaviour_scorer
from marketing_agents.domain.feedback import (
    InteractionBatch,
    InteractionBatchResult,
    InteractionOutcome,
    NewInteraction,
)
from marketing_agents.domain.interaction import InteractionWindow
from marketing_agents.flows.engagement_feedback import EngagementFeedback
from marketing_agents.memory.event_bus import EventBus
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.serve_app.http_errors import ROUTE_ERRORS
from marketing_agents.settings import get_settings
from marketing_agents.stores.connection_budget import budgeted
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.postgres_interactions import InteractionRepository
from marketing_agents.stores.redis import RedisShortTermStore


def _shape(body: Any) -> str:
    return "batch" if isinstance(body, dict) and "interactions" in body else "interaction"


# One interaction or a batch, told apart by the "interactions" key; a validation error names the
# shape it was read as ("interaction.lead_id", "batch.interactions").
InteractionsRequest = Annotated[
    Annotated[NewInteraction, Tag("interaction")] | Annotated[InteractionBatch, Tag("batch")],
    Discriminator(_shape),
]


@serve.deployment(name="EngagementFeedback")
class EngagementFeedbackDeployment:
    def __init__(self) -> None:
        # Items of a batch are stored one after another; a few connections serve concurrent requests.
        self._settings = budgeted(get_settings(), "EngagementFeedback")
        self._stores = StoreConnections(self._settings)
        # Built here, not lazily: a bad MAS_BEHAVIOUR_POINTS key fails the deployment at start with its name.
        self._scorer = behaviour_scorer(self._settings)
        self._feedback: EngagementFeedback | None = None

    async def _service(self) -> EngagementFeedback:
        if self._feedback is None:
            redis = RedisShortTermStore(self._stores.redis())
            policy = TtlPolicy.from_settings(self._settings)
            self._feedback = EngagementFeedback(
                InteractionRepository(await self._stores.pool()), EventBus(redis, policy),
                conversations=ShortTermMemory(redis, policy), scorer=self._scorer,
                window=InteractionWindow(self._settings.interactions_earliest,
                                         self._settings.max_new_partitions_per_request))
        return self._feedback

    async def record(self, interaction: NewInteraction) -> InteractionOutcome:
        return await (await self._service()).record(interaction)

    async def record_batch(self, items: list[dict[str, Any]]) -> InteractionBatchResult:
        return await (await self._service()).record_batch(items)


def add_interaction_routes(app: FastAPI, gateway: Any) -> None:
    """Installs ``POST /api/v1/interactions`` when the gateway was given an EngagementFeedback handle."""
    feedback = getattr(gateway, "_feedback", None)
    if feedback is None:
        return

    @app.post(
        "/api/v1/interactions",
        response_model=InteractionOutcome | InteractionBatchResult,
        responses=ROUTE_ERRORS,
        tags=["interactions"],
        summary="Record replies, opens, clicks, visits, purchases, unsubscribes: one, or up to 1,000 at once; "
                "each updates the lead's engagement plan",
    )
    async def record_interactions(body: InteractionsRequest):
        if isinstance(body, InteractionBatch):
            return await feedback.record_batch.remote(body.interactions)
        return await feedback.record.remote(body)
