"""PostgreSQL: what the system observed of each campaign, counted from its own rows.

``refresh`` recounts, per campaign, arm and cohort (the UTC day its leads were captured), the leads
given each arm, the touchpoints sent to them, their opens, clicks and replies, and the conversions and
revenue attributed to the arm, and replaces the campaign's rows in ``campaign_observed`` in one
transaction: a reader sees the old counts or the new ones, never half of each. Recounting rather than
incrementing keeps the counts equal to the rows whatever happened in between (an erased lead, a
replayed event, a crash mid-refresh).

Each lead is counted in the cohort of its own capture day, with everything it did since: a day's
leads and their outcomes, which is the evidence the optimizer reasons over (``domain.attribution``).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from marketing_agents.domain.attribution import ObservedDay, ObservedPerformance, summarise_observed
from marketing_agents.domain.interaction import ENGAGEMENTS, InteractionType
from marketing_agents.stores.postgres import translated_errors

# What makes a lead "engaged": any engagement but an open (mail clients prefetch images), or a conversion.
_ENGAGED = sorted(t.value for t in ENGAGEMENTS if t is not InteractionType.OPEN)

_COUNT = """
WITH assigned AS (
    SELECT l.campaign_id, l.id AS lead_id,
           (SELECT p.arm FROM engagement_plans p WHERE p.lead_id = l.id AND p.campaign_id = l.campaign_id
            ORDER BY p.created_at DESC, p.id LIMIT 1) AS arm
    FROM leads l WHERE l.campaign_id IS NOT NULL AND ($1::uuid IS NULL OR l.campaign_id = $1)
),
facts AS (
    SELECT campaign_id, lead_id, arm, 1 AS is_lead, 0 AS opens, 0 AS clicks, 0 AS replies, false AS engaged,
           0 AS conversions, 0::numeric AS revenue, 0 AS sent
    FROM assigned
    UNION ALL
    SELECT campaign_id, lead_id, arm, 0, (type = 'open')::int, (type = 'click')::int, (type = 'reply')::int,
           type = ANY($2::text[]), 0, 0, 0
    FROM interactions WHERE campaign_id IS NOT NULL AND ($1::uuid IS NULL OR campaign_id = $1)
    UNION ALL
    SELECT campaign_id, lead_id, arm, 0, 0, 0, 0, true, 1, value, 0
    FROM conversions WHERE campaign_id IS NOT NULL AND ($1::uuid IS NULL OR campaign_id = $1)
    UNION ALL
    SELECT campaign_id, lead_id, arm, 0, 0, 0, 0, false, 0, 0, 1
    FROM touchpoints WHERE status = 'sent' AND campaign_id IS NOT NULL AND ($1::uuid IS NULL OR campaign_id = $1)
),
per_lead AS (
    SELECT campaign_id, lead_id, arm, max(is_lead) AS is_lead, sum(opens) AS opens, sum(clicks) AS clicks,
           sum(replies) AS replies, bool_or(engaged) AS engaged, sum(conversions) AS conversions,
           sum(revenue) AS revenue, sum(sent) AS sent
    FROM facts GROUP BY campaign_id, lead_id, arm
)
SELECT p.campaign_id, p.arm, ((coalesce(l.captured_at, l.created_at)) AT TIME ZONE 'UTC')::date AS cohort_date,
       sum(p.is_lead)::int AS leads,
       (count(*) FILTER (WHERE p.is_lead = 1 AND p.engaged))::int AS leads_engaged,
       (count(*) FILTER (WHERE p.is_lead = 1 AND p.conversions > 0))::int AS leads_converted,
       sum(p.sent)::int AS touchpoints_sent, sum(p.opens)::int AS opens, sum(p.clicks)::int AS clicks,
       sum(p.replies)::int AS replies, sum(p.conversions)::int AS conversions, sum(p.revenue) AS revenue
FROM per_lead p JOIN leads l ON l.id = p.lead_id
GROUP BY 1, 2, 3
"""

# Any constant: "MASOBSRV" in ASCII.
REFRESH_LOCK_KEY = 0x4D41534F42535256

_COLUMNS = ("arm", "cohort_date", "leads", "leads_engaged", "leads_converted", "touchpoints_sent", "opens", "clicks",
            "replies", "conversions", "revenue")


class CampaignObservations:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def refresh(self, campaign_id: UUID | None = None) -> int:
        """Recounts one campaign (None: every campaign); returns how many (arm, cohort) rows it wrote."""
        async with translated_errors("refresh observed campaign performance"), self._pool.acquire() as conn, \
                conn.transaction():
            # One refresh at a time (the consolidator's, an optimizer's): each recounts after the last one
            # committed, so no two of them interleave their delete and insert.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", REFRESH_LOCK_KEY)
            rows = await conn.fetch(_COUNT, campaign_id, _ENGAGED)
            now = await conn.fetchval("SELECT now()")
            await conn.execute("DELETE FROM campaign_observed WHERE $1::uuid IS NULL OR campaign_id = $1", campaign_id)
            await conn.executemany(
                f"""INSERT INTO campaign_observed (campaign_id, {", ".join(_COLUMNS)}, refreshed_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)""",
                [(r["campaign_id"], *(r[c] for c in _COLUMNS), now) for r in rows])
        return len(rows)

    async def days(self, campaign_id: UUID) -> tuple[list[ObservedDay], datetime | None]:
        """The campaign's cohorts as last refreshed, oldest first, and when that was."""
        async with translated_errors("read observed campaign performance"):
            rows = await self._pool.fetch(
                f"""SELECT {", ".join(_COLUMNS)}, refreshed_at FROM campaign_observed WHERE campaign_id = $1
                    ORDER BY cohort_date, arm NULLS LAST""", campaign_id)
        days = [ObservedDay(**{c: r[c] for c in _COLUMNS}) for r in rows]
        return days, max((r["refreshed_at"] for r in rows), default=None)

    async def performance(self, campaign_id: UUID) -> ObservedPerformance:
        days, refreshed_at = await self.days(campaign_id)
        return summarise_observed(days, refreshed_at)
