"""PostgreSQL: the connection pool, and the lead repository that writes a processed lead atomically.

Driver errors are translated here into StorageError (or a domain error where the database is the
judge, such as a duplicate ``external_id``), so no asyncpg type crosses this module's boundary.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg

from marketing_agents.domain import (
    Campaign,
    Channel,
    EngagementPlan,
    HandoffPackage,
    HandoffRecord,
    Lead,
    LeadDetail,
    LeadProcessingResult,
    TriageResult,
    UnsubscribeResult,
)
from marketing_agents.domain.engagement import Touchpoint, TouchpointStatus
from marketing_agents.errors import IdempotencyKeyReused, LeadExists, StorageError
from marketing_agents.settings import Settings
from marketing_agents.stores import postgres_erasure

LEADS_SCOPE = "POST /api/v1/leads"


async def init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(settings: Settings) -> asyncpg.Pool:
    """A pool sized by ``MAS_POSTGRES_POOL_SIZE``; connections open lazily beyond the minimum."""
    if settings.postgres_dsn is None:
        raise StorageError("MAS_POSTGRES_DSN is not set; the launcher sets it for the embedded server")
    try:
        return await asyncpg.create_pool(
            settings.postgres_dsn.get_secret_value(),
            min_size=min(settings.postgres_pool_min_size, settings.postgres_pool_size),
            max_size=settings.postgres_pool_size,
            command_timeout=settings.postgres_command_timeout_s,
            # An idle connection goes back to the server soon: a burst must not keep it from others.
            max_inactive_connection_lifetime=60.0,
            init=init_connection,
        )
    except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
        raise StorageError(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}") from exc


# The errors that say "not now" rather than "no": the server is unreachable, shutting down or starting up
# (57P01, 57P03: OperatorInterventionError, which also covers a cancelled or timed-out statement),
# out of connections or memory (53xxx: InsufficientResourcesError), a command past its timeout, or a
# transaction the server rolled back to break a deadlock or a serialization conflict (40xxx), or a
# standby that took the primary's address and refuses writes (25006). The same request is worth
# retrying in a moment, so each is a StorageError: 503 with Retry-After. The pool drops a connection
# that broke and opens a fresh one on the next acquire, so the system reconnects by itself.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)


@asynccontextmanager
async def translated_errors(action: str) -> AsyncIterator[None]:
    try:
        yield
    except UNAVAILABLE as exc:
        raise StorageError(f"PostgreSQL unavailable while trying to {action}: {type(exc).__name__}") from exc


async def ping(pool: asyncpg.Pool) -> float:
    """Round-trip time of ``SELECT 1`` in milliseconds; raises StorageError when it fails."""
    started = time.perf_counter()
    async with translated_errors("ping"):
        await pool.fetchval("SELECT 1")
    return (time.perf_counter() - started) * 1000


class LeadRepository:
    """Leads and everything the agents decided about them."""

    def __init__(self, pool: asyncpg.Pool, idempotency_ttl: timedelta,
                 handoff_lease: timedelta = timedelta(seconds=60)) -> None:
        self._pool = pool
        self._idempotency_ttl = idempotency_ttl
        self._handoff_lease = handoff_lease

    async def idempotent_response(self, key: str, request_hash: str) -> LeadProcessingResult | None:
        """The stored answer to an earlier request with this key, if it has not expired.

        Raises IdempotencyKeyReused when the key was used for a different request body.
        """
        async with translated_errors("read an idempotency key"):
            row = await self._pool.fetchrow(
                "SELECT request_hash, response FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at > now()",
                LEADS_SCOPE,
                key,
            )
        return None if row is None else _stored_answer(row, key, request_hash)

    async def lead_id_for_email(self, email: str) -> UUID | None:
        """The earliest stored lead with this email address, if any (duplicate detection)."""
        async with translated_errors("look up a lead"):
            return await self._pool.fetchval(
                "SELECT id FROM leads WHERE email = $1 ORDER BY created_at, id LIMIT 1", email)

    async def queue_loads(self) -> dict[str, int]:
        """Leads waiting in each human queue now (a decision takes a lead out, freeing its place)."""
        async with translated_errors("count the leads in each queue"):
            rows = await self._pool.fetch(
                "SELECT review_queue, count(*) AS waiting FROM leads WHERE review_queue IS NOT NULL GROUP BY 1")
        return {row["review_queue"]: row["waiting"] for row in rows}

    async def lead_id_for_external_id(self, external_id: str) -> UUID | None:
        async with translated_errors("look up a lead"):
            return await self._pool.fetchval("SELECT id FROM leads WHERE external_id = $1", external_id)

    async def save_processed(
        self,
        *,
        lead: Lead,
        triage: TriageResult,
        package: HandoffPackage | None,
        handoff: HandoffRecord | None,
        result: LeadProcessingResult,
        idempotency_key: str | None,
        request_hash: str,
        review_queue: str | None = None,
    ) -> LeadProcessingResult:
        """Writes the lead, its triage, its handoff and the audit trail in one transaction.

        ``review_queue``: the queue a lead that needs review waits in (migration 0016 requires one).

        A ``pending`` handoff is written with a lease before its package is sent: if the process dies
        before :meth:`complete_handoff` or :meth:`dead_letter_handoff`, recovery claims it once the
        lease runs out (:meth:`claim_stalled_handoffs`). The idempotency key stores ``result`` now,
        and the handoff's outcome updates it, so a retry always gets the lead's latest answer.

        With an idempotency key, the key's row is inserted first: a concurrent request with the same
        key blocks on it, then finds it taken, rolls back everything it wrote and returns the answer
        that was stored first. Raises LeadExists when ``external_id`` belongs to another lead.
        """
        try:
            async with translated_errors("store a lead"), self._pool.acquire() as conn, conn.transaction():
                if idempotency_key is not None:
                    stored = await self._claim_idempotency_key(conn, idempotency_key, request_hash, result)
                    if stored is not None:
                        return stored  # leaving the block rolls back nothing: nothing was written
                await self._insert_lead(conn, lead, triage, review_queue)
                if idempotency_key is not None:
                    await conn.execute(
                        "UPDATE idempotency_keys SET lead_id = $1 WHERE scope = $2 AND key = $3",
                        lead.id, LEADS_SCOPE, idempotency_key,
                    )
                await self.write_triage(conn, triage)
                if handoff is not None and package is not None:
                    await self._insert_handoff(conn, handoff, package)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != "leads_external_id_key":
                raise
            existing = await self.lead_id_for_external_id(lead.external_id or "")
            raise LeadExists(
                f"a lead with external_id '{lead.external_id}' already exists",
                {"external_id": lead.external_id, "lead_id": str(existing) if existing else None},
            ) from exc
        return result

    async def _claim_idempotency_key(
        self, conn: asyncpg.Connection, key: str, request_hash: str, result: LeadProcessingResult
    ) -> LeadProcessingResult | None:
        """Inserts the key's row; returns the earlier answer instead when the key is already taken."""
        claimed = await conn.fetchval(
            """INSERT INTO idempotency_keys (scope, key, request_hash, lead_id, response, expires_at)
               VALUES ($1, $2, $3, NULL, $4, now() + $5::interval)
               ON CONFLICT (scope, key) DO UPDATE
                   SET request_hash = EXCLUDED.request_hash, response = EXCLUDED.response,
                       lead_id = NULL, created_at = now(), expires_at = EXCLUDED.expires_at
                   WHERE idempotency_keys.expires_at <= now()
               RETURNING true""",
            LEADS_SCOPE,
            key,
            request_hash,
            result.model_dump(mode="json"),
            self._idempotency_ttl,
        )
        if claimed:
            return None
        row = await conn.fetchrow(
            "SELECT request_hash, response FROM idempotency_keys WHERE scope = $1 AND key = $2", LEADS_SCOPE, key
        )
        return _stored_answer(row, key, request_hash)

    async def _insert_lead(self, conn: asyncpg.Connection, lead: Lead, triage: TriageResult,
                           review_queue: str | None) -> None:
        await conn.execute(
            """INSERT INTO leads (id, external_id, email, first_name, last_name, company, job_title, industry,
                                  company_size, country, source, consent, attributes, status, lead_score,
                                  triage_category, created_at, updated_at, campaign_id, captured_at,
                                  review_queue, review_since)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17, $18, $19,
                       $20, CASE WHEN $20::text IS NOT NULL THEN $17::timestamptz END)""",
            lead.id,
            lead.external_id,
            lead.email,
            lead.first_name,
            lead.last_name,
            lead.company,
            lead.job_title,
            lead.industry,
            lead.company_size,
            lead.country,
            lead.source,
            lead.consent.model_dump(mode="json"),
            lead.attributes,
            lead.status.value,
            triage.lead_score,
            triage.triage_category.value,
            lead.created_at,
            lead.campaign_id,
            lead.captured_at,
            review_queue,
        )

    async def write_handoff(self, conn: asyncpg.Connection, triage: TriageResult, handoff: HandoffRecord,
                            package: HandoffPackage) -> None:
        """A new triage of a stored lead and the pending handoff it starts, inside the caller's transaction
        (a person's decision to engage a lead waiting for review)."""
        await self.write_triage(conn, triage)
        await self._insert_handoff(conn, handoff, package)

    async def write_triage(self, conn: asyncpg.Connection, triage: TriageResult) -> None:
        """A triage of a stored lead and its line in the lead's history, inside the caller's transaction."""
        await conn.execute(
            """INSERT INTO triage_results (lead_id, lead_score, fit_score, engagement_score, triage_category,
                                           route_to, scoring_model, result, triaged_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            triage.lead_id,
            triage.lead_score,
            triage.fit_score,
            triage.engagement_score,
            triage.triage_category.value,
            triage.route_to,
            triage.scoring_model,
            triage.model_dump(mode="json"),
            triage.triaged_at,
        )
        await audit_action(conn, "TriageAgent", "triage", triage.lead_id, {"scoring_model": triage.scoring_model},
                     triage.model_dump(mode="json", include={"lead_score", "triage_category", "route_to"}), triage.reason)

    async def _insert_handoff(self, conn: asyncpg.Connection, handoff: HandoffRecord, package: HandoffPackage) -> None:
        await conn.execute(
            """INSERT INTO handoffs (id, lead_id, from_agent, to_agent, status, quality_score, quality, reason,
                                     package, package_bytes, created_at, completed_at, lease_until)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                       CASE WHEN $5 = 'pending' THEN now() + $13::interval END)""",
            handoff.id,
            handoff.lead_id,
            handoff.from_agent,
            handoff.to_agent,
            handoff.status.value,
            handoff.quality.score,
            handoff.quality.model_dump(mode="json"),
            handoff.reason,
            package.model_dump(mode="json"),
            handoff.package_bytes,
            handoff.created_at,
            handoff.completed_at,
            self._handoff_lease,
        )
        await audit_action(conn, "HandoffOrchestrator", f"handoff_{handoff.status.value}", handoff.lead_id,
                     {"from_agent": handoff.from_agent, "to_agent": handoff.to_agent},
                     {"handoff_id": str(handoff.id), "quality": handoff.quality.model_dump(mode="json")}, handoff.reason)

    async def complete_handoff(self, handoff_id: UUID, plan: EngagementPlan, attempts: int,
                               processing_time_ms: float | None = None) -> EngagementPlan | None:
        """Stores the plan and its touchpoints, completes the handoff and engages the lead, all at once.

        Returns the plan as stored, or None when the handoff was no longer pending: when a recovered
        delivery and a late original both get here, the second writes nothing. The lead is never half
        engaged: a plan exists with all its touchpoints, or not at all. The package was a snapshot,
        so consent withdrawn since then wins: those touchpoints are stored cancelled, never sent.
        """
        async with translated_errors("complete a handoff"), self._pool.acquire() as conn, conn.transaction():
            lead_id = await conn.fetchval(
                """UPDATE handoffs SET status = 'completed', completed_at = now(), lease_until = NULL,
                                       attempts = attempts + $2,
                                       reason = reason || '; delivered on attempt ' || $2::text
                   WHERE id = $1 AND status = 'pending' RETURNING lead_id""", handoff_id, attempts)
            if lead_id is None:
                return None
            # Locks the lead: an unsubscribe waits for this plan, then cancels what it must.
            consent = await conn.fetchval("SELECT consent FROM leads WHERE id = $1 FOR UPDATE", lead_id)
            plan = plan.model_copy(update={"touchpoints": [
                tp if consent.get(tp.channel.value) else tp.model_copy(update={"status": TouchpointStatus.CANCELLED})
                for tp in plan.touchpoints]})
            await self._insert_plan(conn, plan)
            await conn.execute("UPDATE leads SET status = 'engaged', updated_at = now() WHERE id = $1", lead_id)
            answer: dict[str, Any] = {"status": "engaged", "engagement_plan": plan.model_dump(mode="json"),
                      "next_actions": [a.model_dump(mode="json") for a in plan.next_actions()]}
            if processing_time_ms is not None:
                answer["processing_time_ms"] = processing_time_ms
            await conn.execute("UPDATE idempotency_keys SET response = response || $2::jsonb WHERE lead_id = $1",
                               lead_id, answer)
            await audit_action(conn, "HandoffOrchestrator", "handoff_completed", lead_id,
                         {"handoff_id": str(handoff_id), "attempts": attempts},
                         {"plan_id": str(plan.id)}, f"the receiver answered on attempt {attempts}")
        return plan

    async def dead_letter_handoff(self, handoff_id: UUID, reason: str, attempts: int, review_queue: str) -> bool:
        """Gives a pending handoff up: the lead waits for review in ``review_queue``."""
        async with translated_errors("dead-letter a handoff"), self._pool.acquire() as conn, conn.transaction():
            lead_id = await conn.fetchval(
                """UPDATE handoffs SET status = 'dead_lettered', lease_until = NULL, attempts = attempts + $3,
                                       reason = $2, last_error = $2
                   WHERE id = $1 AND status = 'pending' RETURNING lead_id""", handoff_id, reason, attempts)
            if lead_id is None:
                return False
            await conn.execute("UPDATE leads SET status = 'needs_review', review_queue = $2, updated_at = now() "
                               "WHERE id = $1", lead_id, review_queue)
            await conn.execute(
                "UPDATE idempotency_keys SET response = response || '{\"status\": \"needs_review\"}' WHERE lead_id = $1",
                lead_id)
            await audit_action(conn, "HandoffOrchestrator", "handoff_dead_lettered", lead_id,
                         {"handoff_id": str(handoff_id), "attempts": attempts}, {}, reason)
        return True

    async def claim_stalled_handoffs(self, limit: int = 20) -> list[HandoffPackage]:
        """Pending handoffs whose lease ran out (their process died), claimed for a fresh lease.

        SKIP LOCKED lets several orchestrators recover side by side without taking the same handoff.
        """
        async with translated_errors("claim stalled handoffs"):
            rows = await self._pool.fetch(
                """UPDATE handoffs SET lease_until = now() + $2::interval
                   WHERE id IN (SELECT id FROM handoffs WHERE status = 'pending' AND lease_until < now()
                                ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED)
                   RETURNING package""", limit, self._handoff_lease)
        return [HandoffPackage.model_validate(row["package"]) for row in rows]

    async def _insert_plan(self, conn: asyncpg.Connection, plan: EngagementPlan) -> None:
        await conn.execute(
            """INSERT INTO engagement_plans (id, lead_id, handoff_id, sequence, rationale, created_at, campaign_id, arm)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            plan.id,
            plan.lead_id,
            plan.handoff_id,
            plan.sequence,
            plan.rationale,
            plan.created_at,
            plan.campaign_id,
            plan.arm,
        )
        await conn.executemany(
            """INSERT INTO touchpoints (id, lead_id, plan_id, step, channel, template, subject, body,
                                        scheduled_at, status, campaign_id, arm)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)""",
            [
                (tp.id, tp.lead_id, tp.plan_id, tp.step, tp.channel.value, tp.template, tp.subject, tp.body,
                 tp.scheduled_at, tp.status.value, tp.campaign_id, tp.arm)
                for tp in plan.touchpoints
            ],
        )
        await audit_action(conn, "EngagementAgent", "plan_engagement", plan.lead_id, {"handoff_id": str(plan.handoff_id)},
                     {"plan_id": str(plan.id), "sequence": plan.sequence,
                      "channels": [tp.channel.value for tp in plan.touchpoints]}, plan.rationale)

    async def unsubscribe(self, lead_id: UUID, channels: list[Channel] | None) -> UnsubscribeResult | None:
        """Withdraws consent and cancels every touchpoint on those channels not sent yet, in one transaction.

        That includes touchpoints a dispatcher has claimed (``sending``): it sends a claimed one only
        while the row is still ``sending``, so once this commits none of them goes out. One being sent
        right now is locked by its dispatcher; this waits for it, and finds it sent.

        Returns None for an unknown lead. The unsubscribe is also recorded as an interaction, so that
        memory learns which journeys end this way.
        """
        names = [c.value for c in (channels or list(Channel))]
        async with translated_errors("unsubscribe a lead"), self._pool.acquire() as conn, conn.transaction():
            consent = await conn.fetchval("SELECT consent FROM leads WHERE id = $1 FOR UPDATE", lead_id)
            if consent is None:
                return None
            await conn.execute("UPDATE leads SET consent = $2, updated_at = now() WHERE id = $1",
                               lead_id, {**consent, **{name: False for name in names}})
            cancelled = await conn.execute(
                """UPDATE touchpoints SET status = 'cancelled', last_error = 'unsubscribed'
                   WHERE lead_id = $1 AND status IN ('pending', 'sending') AND channel = ANY($2::text[])""",
                lead_id, names)
            now = await conn.fetchval("SELECT now()")
            await conn.execute("SELECT mas_ensure_interaction_partitions($1, $1)", now)
            await conn.execute(
                """INSERT INTO interactions (lead_id, type, channel, occurred_at, attributes)
                   VALUES ($1, 'unsubscribe', $2, $3, $4)""",
                lead_id, names[0] if len(names) == 1 else None, now, {"channels": names})
            count = int(cancelled.split()[-1])
            await audit_action(conn, "EngagementAgent", "unsubscribe", lead_id, {"channels": names},
                         {"cancelled_touchpoints": count}, "the lead withdrew consent; pending contact stops")
        return UnsubscribeResult(lead_id=lead_id, channels=[Channel(n) for n in names], cancelled_touchpoints=count)

    async def get_detail(self, lead_id: UUID) -> LeadDetail | None:
        async with translated_errors("read a lead"), self._pool.acquire() as conn:
            lead_row = await conn.fetchrow("SELECT * FROM leads WHERE id = $1", lead_id)
            if lead_row is None:
                return None
            triage_row = await conn.fetchrow(
                "SELECT result FROM triage_results WHERE lead_id = $1 ORDER BY triaged_at DESC, id DESC LIMIT 1", lead_id
            )
            handoff_rows = await conn.fetch(
                "SELECT * FROM handoffs WHERE lead_id = $1 ORDER BY created_at", lead_id
            )
            plan_row = await conn.fetchrow(
                "SELECT * FROM engagement_plans WHERE lead_id = $1 ORDER BY created_at DESC LIMIT 1", lead_id
            )
            touchpoint_rows = (
                await conn.fetch("SELECT * FROM touchpoints WHERE plan_id = $1 ORDER BY step", plan_row["id"])
                if plan_row is not None
                else []
            )
        lead = Lead.model_validate(
            {key: lead_row[key] for key in Lead.model_fields}
        )
        plan = None
        if plan_row is not None:
            plan = EngagementPlan(
                id=plan_row["id"],
                lead_id=plan_row["lead_id"],
                handoff_id=plan_row["handoff_id"],
                sequence=plan_row["sequence"],
                rationale=plan_row["rationale"],
                created_at=plan_row["created_at"],
                campaign_id=plan_row["campaign_id"],
                arm=plan_row["arm"],
                touchpoints=[
                    Touchpoint.model_validate({key: row[key] for key in Touchpoint.model_fields}) for row in touchpoint_rows
                ],
            )
        return LeadDetail(
            lead=lead,
            triage=TriageResult.model_validate(triage_row["result"]),
            handoffs=[
                HandoffRecord.model_validate(
                    {key: row[key] for key in HandoffRecord.model_fields if key != "quality"} | {"quality": row["quality"]}
                )
                for row in handoff_rows
            ],
            engagement_plan=plan,
        )


# Every table holding rows about a lead, for erasure reports and exports; all cascade from leads.
LEAD_TABLES = ("triage_results", "handoffs", "engagement_plans", "touchpoints", "agent_actions", "lead_profiles",
               "interactions", "conversions", "episodes", "idempotency_keys")


class LeadErasure:
    """The right to be forgotten and the right of access, over every PostgreSQL table about a lead."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def erase(self, lead_id: UUID) -> dict[str, int]:
        """Deletes the lead and, by cascade, every row about it, in one transaction; returns the counts.

        The same transaction takes the lead out of rows about others, suppresses its identity and
        records the erasure (``postgres_erasure``). A lead erased before answers that erasure's report,
        so that a retry can finish what Redis did not; an unknown lead answers ``{"leads": 0}``.
        """
        async with translated_errors("erase a lead"), self._pool.acquire() as conn, conn.transaction():
            # Locks the lead: a concurrent erasure waits, then finds it gone and answers the report.
            lead = await conn.fetchrow("SELECT email, external_id FROM leads WHERE id = $1 FOR UPDATE", lead_id)
            if lead is None:
                return await postgres_erasure.earlier_erasure(conn, lead_id) or {"leads": 0}
            counts = {table: await conn.fetchval(f"SELECT count(*) FROM {table} WHERE lead_id = $1", lead_id)
                      for table in LEAD_TABLES}
            counts[postgres_erasure.RECALLS_ELSEWHERE] = await postgres_erasure.erase_copies(
                conn, lead_id, lead["email"], lead["external_id"])
            counts["leads"] = int((await conn.execute("DELETE FROM leads WHERE id = $1", lead_id)).split()[-1])
            await postgres_erasure.record_erasure(conn, lead_id, counts)
        return counts

    async def erasure_finished(self, lead_id: UUID, removed: dict[str, int]) -> None:
        """Records that every tier is clean, with the whole report (Redis keys included)."""
        async with translated_errors("record an erasure"):
            await postgres_erasure.complete_erasure(self._pool, lead_id, removed)

    async def export(self, lead_id: UUID) -> dict[str, Any] | None:
        async with translated_errors("export a lead"), self._pool.acquire() as conn:
            lead = await conn.fetchrow("SELECT * FROM leads WHERE id = $1", lead_id)
            if lead is None:
                return None
            exported: dict[str, Any] = {"lead": dict(lead)}
            for table in LEAD_TABLES:
                exported[table] = [dict(r) for r in await conn.fetch(f"SELECT * FROM {table} WHERE lead_id = $1",
                                                                     lead_id)]
        for row in exported["episodes"]:
            row.pop("embedding", None)  # a derived vector, not information about the person
        return exported


def _stored_answer(row: asyncpg.Record, key: str, request_hash: str) -> LeadProcessingResult:
    if row["request_hash"] != request_hash:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request body", {"idempotency_key": key}
        )
    return LeadProcessingResult.model_validate(row["response"])


async def audit_action(
    conn: asyncpg.Connection, agent: str, action: str, lead_id: UUID, inputs: dict, output: dict, reason: str
) -> None:
    """One line of the lead's history, in the transaction that did it: an agent's decision, or a person's
    (``agent`` is then the calling key, ``apikey:<id>``)."""
    await conn.execute(
        "INSERT INTO agent_actions (agent, action, lead_id, inputs, output, reason) VALUES ($1, $2, $3, $4, $5, $6)",
        agent,
        action,
        lead_id,
        inputs,
        output,
        reason,
    )


class CampaignRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def ensure(self, campaign: Campaign) -> bool:
        """Inserts the campaign unless its id exists; returns whether it was inserted."""
        async with translated_errors("store a campaign"):
            inserted = await self._pool.fetchval(
                """INSERT INTO campaigns (id, name, status, channels, objective, budget, start_date, end_date, created_at,
                                        variants)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                   ON CONFLICT (id) DO NOTHING RETURNING true""",
                campaign.id,
                campaign.name,
                campaign.status.value,
                [c.value for c in campaign.channels],
                campaign.objective,
                campaign.budget,
                campaign.start_date,
                campaign.end_date,
                campaign.created_at,
                campaign.variants,
            )
        return bool(inserted)
