"""What the campaign optimizer reads and writes in PostgreSQL: campaigns, their daily metrics, the
allocation each one runs on, optimizations, escalations and the audit trail.

Every write that belongs together happens in one transaction. Writes about one campaign's
optimization go through :meth:`PostgresCampaignStore.locked`, which holds the campaign's row lock for
the whole transaction, so two replicas never interleave their decisions about the same campaign.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from marketing_agents.domain import Campaign, CampaignMetrics, CampaignStatus, Channel
from marketing_agents.domain.attribution import CampaignOffer, declared_arms, starting_allocation
from marketing_agents.domain.campaign_views import (
    CampaignAllocation,
    EscalationRecord,
    EscalationStatus,
    MetricsIngested,
    OptimizationRecord,
    OptimizationStatus,
)
from marketing_agents.domain.optimization import Allocation, OptimizationDecision
from marketing_agents.errors import NotFound
from marketing_agents.stores.postgres import CampaignRepository, translated_errors

AGENT = "CampaignOptimizer"

_CAMPAIGN_COLUMNS = "id, name, status, channels, variants, objective, budget, start_date, end_date, created_at"
_OPTIMIZATION_COLUMNS = ("id, campaign_id, status, decision, rollback_of, created_by, created_at, applied_at, "
                         "applied_by, superseded_at, superseded_by, rolled_back_at, rolled_back_by")


def campaign_not_found(campaign_id: UUID) -> NotFound:
    return NotFound(f"no campaign with id {campaign_id}", {"campaign_id": str(campaign_id)})


class PostgresCampaignStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._campaigns = CampaignRepository(pool)

    # -- campaigns ---------------------------------------------------------------------------------

    async def create_campaign(self, campaign: Campaign) -> Campaign:
        await self._campaigns.ensure(campaign)
        return campaign

    async def campaign(self, campaign_id: UUID) -> Campaign | None:
        async with translated_errors("read a campaign"):
            row = await self._pool.fetchrow(f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1", campaign_id)
        return None if row is None else _campaign(row)

    async def offer(self, campaign_id: UUID, seed: int) -> CampaignOffer | None:
        """The campaign as the engagement agent needs it to give a lead an arm; None for an unknown campaign.

        Until the optimizer's first decision the campaign runs on its starting allocation.
        """
        async with translated_errors("read a campaign's allocation"):
            row = await self._pool.fetchrow(
                """SELECT c.name, c.status, c.channels, c.variants, a.shares, a.paused,
                          (SELECT array_agg(DISTINCT m.variant || '/' || m.channel) FROM campaign_metrics m
                           WHERE m.campaign_id = c.id AND a.shares IS NULL) AS measured
                   FROM campaigns c LEFT JOIN campaign_allocations a ON a.campaign_id = c.id WHERE c.id = $1""",
                campaign_id)
        if row is None:
            return None
        if row["shares"] is not None:
            allocation = Allocation(shares=dict(sorted(row["shares"].items())), paused=tuple(row["paused"]))
        else:
            allocation = starting_allocation(declared_arms(row["variants"], [Channel(c) for c in row["channels"]]),
                                             row["measured"] or [])
        return CampaignOffer(campaign_id=campaign_id, name=row["name"], status=CampaignStatus(row["status"]),
                             allocation=allocation, seed=seed)

    async def campaigns(self, status: CampaignStatus | None, limit: int, offset: int) -> list[Campaign]:
        """Newest first (then by id, so that pages never overlap)."""
        async with translated_errors("list campaigns"):
            rows = await self._pool.fetch(
                f"""SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE $1::text IS NULL OR status = $1
                    ORDER BY created_at DESC, id LIMIT $2 OFFSET $3""",
                status.value if status else None, limit, offset)
        return [_campaign(r) for r in rows]

    async def update_campaign(self, campaign_id: UUID, change) -> Campaign:
        """Applies ``change(stored campaign, channels with metrics) -> campaign`` under the row lock."""
        async with translated_errors("update a campaign"), self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1 FOR UPDATE",
                                      campaign_id)
            if row is None:
                raise campaign_not_found(campaign_id)
            measured = {Channel(c) for c in await conn.fetchval(
                "SELECT coalesce(array_agg(DISTINCT channel), '{}') FROM campaign_metrics WHERE campaign_id = $1",
                campaign_id)}
            updated: Campaign = change(_campaign(row), measured)
            await conn.execute(
                """UPDATE campaigns SET name = $2, status = $3, channels = $4, objective = $5, budget = $6,
                          start_date = $7, end_date = $8, variants = $9, updated_at = now()
                   WHERE id = $1""",
                campaign_id, updated.name, updated.status.value, [c.value for c in updated.channels],
                updated.objective, updated.budget, updated.start_date, updated.end_date, updated.variants)
        return updated

    # -- metrics -----------------------------------------------------------------------------------

    async def upsert_metrics(self, campaign_id: UUID, rows: list[CampaignMetrics]) -> MetricsIngested:
        """One statement: every row lands or none does. A row for a known (arm, day) replaces its numbers;
        sending the same numbers again changes nothing (not even ``recorded_at``)."""
        columns = list(zip(*[(r.variant, r.channel.value, r.metric_date, r.impressions, r.clicks, r.conversions,
                               r.spend, r.revenue) for r in rows], strict=True))
        async with translated_errors("store campaign metrics"):
            try:
                written = await self._pool.fetch(
                    """INSERT INTO campaign_metrics AS m (campaign_id, variant, channel, metric_date, impressions,
                                                          clicks, conversions, spend, revenue)
                       SELECT $1, * FROM unnest($2::text[], $3::text[], $4::date[], $5::bigint[], $6::bigint[],
                                                $7::bigint[], $8::numeric[], $9::numeric[])
                       ON CONFLICT (campaign_id, variant, channel, metric_date) DO UPDATE
                       SET impressions = EXCLUDED.impressions, clicks = EXCLUDED.clicks,
                           conversions = EXCLUDED.conversions, spend = EXCLUDED.spend, revenue = EXCLUDED.revenue,
                           recorded_at = now()
                       WHERE (m.impressions, m.clicks, m.conversions, m.spend, m.revenue)
                             IS DISTINCT FROM (EXCLUDED.impressions, EXCLUDED.clicks, EXCLUDED.conversions,
                                               EXCLUDED.spend, EXCLUDED.revenue)
                       RETURNING (xmax = 0) AS inserted""",
                    campaign_id, *columns)
            except asyncpg.ForeignKeyViolationError as exc:
                raise campaign_not_found(campaign_id) from exc
        inserted = sum(1 for r in written if r["inserted"])
        return MetricsIngested(campaign_id=campaign_id, received=len(rows), inserted=inserted,
                               updated=len(written) - inserted, unchanged=len(rows) - len(written))

    async def metrics(self, campaign_id: UUID) -> list[CampaignMetrics]:
        async with translated_errors("read campaign metrics"):
            rows = await self._pool.fetch(
                """SELECT campaign_id, variant, channel, metric_date, impressions, clicks, conversions, spend, revenue
                   FROM campaign_metrics WHERE campaign_id = $1 ORDER BY metric_date, variant, channel""",
                campaign_id)
        return [CampaignMetrics(**dict(r)) for r in rows]

    # -- allocation, optimizations, escalations: reads ----------------------------------------------

    async def allocation(self, campaign_id: UUID) -> CampaignAllocation | None:
        async with translated_errors("read an allocation"), self._pool.acquire() as conn:
            return await _allocation(conn, campaign_id)

    async def optimization(self, optimization_id: UUID) -> OptimizationRecord | None:
        async with translated_errors("read an optimization"), self._pool.acquire() as conn:
            return await _optimization(conn, optimization_id)

    async def optimizations(self, campaign_id: UUID, limit: int) -> list[OptimizationRecord]:
        """Newest first, each with its escalations."""
        async with translated_errors("list optimizations"), self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT {_OPTIMIZATION_COLUMNS} FROM optimizations WHERE campaign_id = $1
                    ORDER BY created_at DESC, id LIMIT $2""", campaign_id, limit)
            return await _with_escalations(conn, rows)

    async def applied_on(self, campaign_id: UUID, as_of: date) -> OptimizationRecord | None:
        """The optimizer's own step (not a rollback) made from the metrics up to ``as_of`` that is or was
        in effect; a rolled-back one does not count."""
        async with translated_errors("read optimizations"), self._pool.acquire() as conn:
            return await _applied_on(conn, campaign_id, as_of)

    async def escalations(self, status: EscalationStatus | None, campaign_id: UUID | None,
                          limit: int) -> list[EscalationRecord]:
        """Oldest first: the longest waiting is the first to look at."""
        async with translated_errors("list escalations"):
            rows = await self._pool.fetch(
                """SELECT * FROM escalations
                   WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR campaign_id = $2)
                   ORDER BY created_at, position, id LIMIT $3""",
                status.value if status else None, campaign_id, limit)
        return [_escalation(r) for r in rows]

    async def acknowledge(self, escalation_id: UUID, by: str, note: str | None,
                          at: datetime) -> tuple[EscalationRecord, bool] | None:
        """(the escalation, whether this call acknowledged it); None when there is no such escalation.
        Only the first of two concurrent acknowledgements changes the row."""
        async with translated_errors("acknowledge an escalation"), self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """UPDATE escalations SET status = 'acknowledged', acknowledged_by = $2, acknowledged_at = $3,
                          note = $4
                   WHERE id = $1 AND status = 'open' RETURNING *""",
                escalation_id, by, at, note)
            if row is not None:
                return _escalation(row), True
            row = await conn.fetchrow("SELECT * FROM escalations WHERE id = $1", escalation_id)
        return None if row is None else (_escalation(row), False)

    # -- writes about one campaign's optimization --------------------------------------------------

    @asynccontextmanager
    async def locked(self, campaign_id: UUID) -> AsyncIterator[CampaignTransaction]:
        """One transaction holding the campaign's row lock; NotFound when there is no such campaign.
        Everything written through the yielded transaction commits together or not at all."""
        async with translated_errors("store an optimization"), self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1 FOR UPDATE",
                                      campaign_id)
            if row is None:
                raise campaign_not_found(campaign_id)
            yield CampaignTransaction(conn, _campaign(row))


class CampaignTransaction:
    """Reads and writes inside :meth:`PostgresCampaignStore.locked`; the caller decides, this only stores."""

    def __init__(self, conn: asyncpg.Connection, campaign: Campaign) -> None:
        self._conn = conn
        self.campaign = campaign

    async def allocation(self) -> CampaignAllocation | None:
        return await _allocation(self._conn, self.campaign.id)

    async def set_allocation(self, allocation: Allocation, optimization_id: UUID | None, at: datetime) -> None:
        await self._conn.execute(
            """INSERT INTO campaign_allocations (campaign_id, shares, paused, optimization_id, updated_at)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (campaign_id) DO UPDATE SET shares = EXCLUDED.shares, paused = EXCLUDED.paused,
                   optimization_id = EXCLUDED.optimization_id, updated_at = EXCLUDED.updated_at""",
            self.campaign.id, dict(allocation.shares), list(allocation.paused), optimization_id, at)

    async def optimization(self, optimization_id: UUID) -> OptimizationRecord | None:
        return await _optimization(self._conn, optimization_id)

    async def proposals(self) -> list[OptimizationRecord]:
        """The campaign's proposals waiting for approval, oldest first."""
        rows = await self._conn.fetch(
            f"""SELECT {_OPTIMIZATION_COLUMNS} FROM optimizations WHERE campaign_id = $1 AND status = 'proposed'
                ORDER BY created_at, id""", self.campaign.id)
        return await _with_escalations(self._conn, rows)

    async def applied_on(self, as_of: date) -> OptimizationRecord | None:
        return await _applied_on(self._conn, self.campaign.id, as_of)

    async def insert(self, record: OptimizationRecord) -> None:
        if record.status is None:
            raise ValueError("a dry run's decision is never stored")
        await self._conn.execute(
            """INSERT INTO optimizations (id, campaign_id, status, decision, as_of, rollback_of, created_by,
                                          created_at, applied_at, applied_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
            record.id, record.campaign_id, record.status.value, record.decision.model_dump(mode="json"),
            record.decision.as_of, record.rollback_of, record.created_by, record.created_at, record.applied_at,
            record.applied_by)
        await self._conn.executemany(
            """INSERT INTO escalations (id, campaign_id, optimization_id, position, kind, arm, threshold, observed,
                                        message, status, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
            [(e.id, e.campaign_id, e.optimization_id, n, e.kind.value, e.arm, e.threshold, e.observed, e.message,
              e.status.value, e.created_at) for n, e in enumerate(record.escalations)])

    async def mark_applied(self, optimization_id: UUID, by: str, at: datetime) -> None:
        await self._conn.execute(
            "UPDATE optimizations SET status = 'applied', applied_at = $2, applied_by = $3 WHERE id = $1",
            optimization_id, at, by)

    async def mark_superseded(self, optimization_ids: Iterable[UUID], by: UUID, at: datetime) -> None:
        await self._conn.execute(
            """UPDATE optimizations SET status = 'superseded', superseded_at = $2, superseded_by = $3
               WHERE id = ANY($1::uuid[])""", list(optimization_ids), at, by)

    async def mark_rolled_back(self, optimization_id: UUID, by: UUID, at: datetime) -> None:
        await self._conn.execute(
            "UPDATE optimizations SET status = 'rolled_back', rolled_back_at = $2, rolled_back_by = $3 WHERE id = $1",
            optimization_id, at, by)

    async def acknowledge_escalations(self, optimization_id: UUID, by: str, note: str,
                                      at: datetime) -> list[EscalationRecord]:
        rows = await self._conn.fetch(
            """UPDATE escalations SET status = 'acknowledged', acknowledged_by = $2, acknowledged_at = $3, note = $4
               WHERE optimization_id = $1 AND status = 'open' RETURNING *""",
            optimization_id, by, at, note)
        return [_escalation(r) for r in sorted(rows, key=lambda r: (r["created_at"], r["position"]))]

    async def audit(self, action: str, inputs: dict[str, Any], output: dict[str, Any], reason: str,
                    at: datetime) -> None:
        await self._conn.execute(
            """INSERT INTO agent_actions (agent, action, campaign_id, inputs, output, reason, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            AGENT, action, self.campaign.id, inputs, output, reason, at)


# -- rows to models --------------------------------------------------------------------------------


def _campaign(row: asyncpg.Record) -> Campaign:
    return Campaign(**{**dict(row), "channels": [Channel(c) for c in row["channels"]]})


async def _allocation(conn: asyncpg.Connection, campaign_id: UUID) -> CampaignAllocation | None:
    row = await conn.fetchrow(
        "SELECT shares, paused, optimization_id, updated_at FROM campaign_allocations WHERE campaign_id = $1",
        campaign_id)
    if row is None:
        return None
    allocation = Allocation(shares=dict(sorted(row["shares"].items())), paused=tuple(row["paused"]))
    return CampaignAllocation(campaign_id=campaign_id, allocation=allocation, optimization_id=row["optimization_id"],
                              updated_at=row["updated_at"])


async def _optimization(conn: asyncpg.Connection, optimization_id: UUID) -> OptimizationRecord | None:
    row = await conn.fetchrow(f"SELECT {_OPTIMIZATION_COLUMNS} FROM optimizations WHERE id = $1", optimization_id)
    return None if row is None else (await _with_escalations(conn, [row]))[0]


async def _applied_on(conn: asyncpg.Connection, campaign_id: UUID, as_of: date) -> OptimizationRecord | None:
    row = await conn.fetchrow(
        f"""SELECT {_OPTIMIZATION_COLUMNS} FROM optimizations
            WHERE campaign_id = $1 AND as_of = $2 AND rollback_of IS NULL AND status IN ('applied', 'superseded')
              AND applied_at IS NOT NULL
            ORDER BY applied_at DESC LIMIT 1""", campaign_id, as_of)
    return None if row is None else (await _with_escalations(conn, [row]))[0]


async def _with_escalations(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[OptimizationRecord]:
    ids = [r["id"] for r in rows]
    escalations = await conn.fetch(
        "SELECT * FROM escalations WHERE optimization_id = ANY($1::uuid[]) ORDER BY created_at, position, id",
        ids)
    by_optimization: dict[UUID, list[EscalationRecord]] = {i: [] for i in ids}
    for e in escalations:
        by_optimization[e["optimization_id"]].append(_escalation(e))
    return [
        OptimizationRecord(**{**dict(r), "status": OptimizationStatus(r["status"]),
                              "decision": OptimizationDecision.model_validate(r["decision"]),
                              "escalations": by_optimization[r["id"]]})
        for r in rows
    ]


def _escalation(row: asyncpg.Record) -> EscalationRecord:
    fields = dict(row)
    del fields["position"]
    return EscalationRecord(**fields)

