"""What the engagement feedback tests share: a policy without quiet hours, a warm lead, interactions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from marketing_agents.actors.engagement import ContactPolicy
from marketing_agents.domain.feedback import NewInteraction
from marketing_agents.flows.engagement_feedback import FeedbackPolicy

# No quiet hours, so that what a test sees does not depend on the time of day it runs.
ALWAYS_OPEN = FeedbackPolicy(contact=ContactPolicy(day_start_hour=0, day_end_hour=24, weekdays_only=False,
                                                   max_per_week=10))
WARM = {"job_title": "Marketing Manager", "source": "web_form", "company_size": 40}


def event(lead_id: UUID, kind: str, **fields) -> NewInteraction:
    fields.setdefault("occurred_at", datetime.now(UTC) - timedelta(seconds=5))
    return NewInteraction(lead_id=lead_id, type=kind, **fields)


async def touchpoints(pool, lead_id: UUID) -> list[dict]:
    return [dict(r) for r in await pool.fetch(
        "SELECT id, step, channel, template, status, scheduled_at, last_error FROM touchpoints WHERE lead_id = $1 "
        "ORDER BY step", lead_id)]
