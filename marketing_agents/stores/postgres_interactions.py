"""PostgreSQL: one interaction that comes back, stored together with what it changes, atomically.

One transaction per interaction: the interaction row (in its monthly partition, created when missing,
as the bulk importer does), the plan change the engagement agent decided (touchpoints cancelled,
moved or added, a conversion, the lead's status, withdrawn consent), the lead's behaviour in its
long-term profile (engagement by channel, last activity), the lead rescored by its behaviour when a
judgment for that is given (``stores.postgres_rescoring``) and the ``agent_actions`` rows that say why.
Either all of it is stored or none of it.

Duplicates. The lead's row is locked (``FOR NO KEY UPDATE``) first, so the interactions of one lead
are judged one at a time and the duplicate check below cannot race with itself:
- with an ``external_id`` (kept in ``interactions.attributes``), an interaction of the same lead
  with the same external id is the same event: answered as a duplicate when type, ``occurred_at``
  and value match, refused as a Conflict when they differ (the id was reused for something else);
- without one, an interaction of the same lead with the same type, ``occurred_at`` and value is the
  same event re-sent. (The bulk importer counts identical rows of a file as separate events instead:
  stores/postgres_interaction_import.)
A duplicate writes nothing and changes nothing, so a re-sent webhook never counts a purchase twice.

Partitions. Each UTC month has a partition, created when an interaction first needs it. Nothing is
created for an interaction that is then refused: when a month is missing, the lead, the campaign and
the touchpoint are checked first (unlocked), and checked again once the lead is locked. Callers bound
``occurred_at`` and the number of new months per request (domain/interaction.InteractionWindow).

Lock order. Missing partitions are created before the lead is locked and before any interaction is
read, under the importer's advisory lock (the importer takes it, then inserts rows that key-share-lock
their leads, and attaching a partition locks the default one); taking them the other way round could
deadlock with an import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import asyncpg

from marketing_agents.domain import LeadStatus
from marketing_agents.domain.behaviour import BehaviourEvent
from marketing_agents.domain.feedback import (
    EXTERNAL_ID_ATTRIBUTE,
    InteractionOutcome,
    LeadSnapshot,
    NewInteraction,
    PendingTouchpoint,
    PlanChange,
    ScheduledContact,
)
from marketing_agents.domain.interaction import ENGAGEMENTS, partition_month
from marketing_agents.domain.limits import MAX_CLOCK_SKEW
from marketing_agents.errors import Conflict, NotFound, RequestError
from marketing_agents.stores.postgres import LeadRepository, translated_errors
from marketing_agents.stores.postgres_long_term import record_activity
from marketing_agents.stores.postgres_rescoring import RescoreJudgment, rescore_lead

# The lock under which partitions are created, here and by the bulk importer (stores/postgres_interaction_import
# takes it for its partitions and batches); any constant, "MASIMPRT" in ASCII.
PARTITION_LOCK_KEY = 0x4D4153494D505254

Decide = Callable[[LeadSnapshot, NewInteraction, datetime], PlanChange]

_LEAD_UNLOCKED = """SELECT id, status, consent, country, first_name, last_name, company, job_title, campaign_id
                    FROM leads WHERE id = $1"""
_LEAD = _LEAD_UNLOCKED + " FOR NO KEY UPDATE"
_MISSING_MONTHS = """SELECT m FROM unnest($1::timestamptz[]) AS m
                     WHERE to_regclass(format('interactions_%s', to_char(m AT TIME ZONE 'UTC', 'YYYY_MM'))) IS NULL
                     ORDER BY m"""
_TOUCHPOINT = "SELECT lead_id, status, sent_at, campaign_id, arm FROM touchpoints WHERE id = $1"
_PLAN_ARM = """SELECT arm FROM engagement_plans WHERE lead_id = $1 AND campaign_id = $2
               ORDER BY created_at DESC, id LIMIT 1"""
_PENDING = """SELECT id, plan_id, step, channel, template, scheduled_at, next_attempt_at
              FROM touchpoints WHERE lead_id = $1 AND status = 'pending'
              ORDER BY coalesce(next_attempt_at, scheduled_at), step FOR UPDATE"""
_CONTACTS = """SELECT id, coalesce(sent_at, next_attempt_at, scheduled_at) AS at FROM touchpoints
               WHERE lead_id = $1 AND status IN ('pending', 'sending', 'sent')"""
_PLAN = """SELECT p.id, coalesce((SELECT max(step) + 1 FROM touchpoints t WHERE t.plan_id = p.id), 0) AS next_step
           FROM engagement_plans p WHERE p.lead_id = $1 ORDER BY p.created_at DESC, p.id LIMIT 1"""
_TIMEZONE = """SELECT result -> 'enrichment' ->> 'timezone' FROM triage_results
               WHERE lead_id = $1 ORDER BY triaged_at DESC, id DESC LIMIT 1"""
_COUNTS = "SELECT type, count(*) AS n FROM interactions WHERE lead_id = $1 GROUP BY type"
_BY_EXTERNAL_ID = f"""SELECT id, type, occurred_at, value FROM interactions
                      WHERE lead_id = $1 AND attributes ->> '{EXTERNAL_ID_ATTRIBUTE}' = $2 ORDER BY id LIMIT 1"""
_BY_NATURAL_KEY = """SELECT id, type, occurred_at, value FROM interactions
                     WHERE lead_id = $1 AND type = $2 AND occurred_at = $3 AND value IS NOT DISTINCT FROM $4
                     ORDER BY id LIMIT 1"""
_INSERT = """INSERT INTO interactions (lead_id, type, channel, campaign_id, conversation_id, value, occurred_at,
                                       attributes, touchpoint_id, arm)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id"""


class InteractionRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, interaction: NewInteraction, decide: Decide, *, agent: str,
                     rescore: RescoreJudgment | None = None) -> InteractionOutcome:
        """Stores the interaction and applies ``decide``'s change in one transaction (see the module docstring);
        ``rescore`` then judges the lead's score as the change left the lead.

        Raises NotFound (unknown lead), RequestError (unknown campaign), Conflict (external id reused);
        nothing is written then.
        """
        async with translated_errors("record an interaction"), self._pool.acquire() as conn, conn.transaction():
            now: datetime = await conn.fetchval("SELECT now()")
            missing = await missing_partition_months(conn, {interaction.occurred_at, now})
            if missing:
                await _checked(conn, interaction, _LEAD_UNLOCKED)  # refuses before anything is created
                await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_KEY)
                for month in missing:
                    await conn.execute("SELECT mas_ensure_interaction_partitions($1, $1)", month)
            lead, interaction, arm = await _checked(conn, interaction, _LEAD)
            earlier = await _earlier(conn, interaction)
            if earlier is not None:
                return InteractionOutcome(status="duplicate", lead_id=interaction.lead_id, interaction_id=earlier["id"],
                                          type=interaction.type, occurred_at=earlier["occurred_at"],
                                          lead_status=LeadStatus(lead["status"]), counts=await _counts(conn, lead["id"]))
            snapshot = await _snapshot(conn, lead)
            change = decide(snapshot, interaction, now)
            interaction_id = await _store_interaction(conn, interaction, change, arm)
            conversion_id = await _apply(conn, interaction, change, snapshot, arm)
            if interaction.type in ENGAGEMENTS:
                await record_activity(conn, interaction.lead_id,
                                      interaction.channel.value if interaction.channel else None,
                                      interaction.occurred_at)
            rescored = None
            if rescore is not None:
                after = await _snapshot(conn, await conn.fetchrow(_LEAD, interaction.lead_id))
                rescored = await rescore_lead(
                    conn, after, interaction_id,
                    BehaviourEvent(interaction.type, interaction.channel, interaction.occurred_at), now, rescore)
            counts = await _counts(conn, lead["id"])
            await conn.execute(
                """INSERT INTO agent_actions (agent, action, lead_id, inputs, output, reason)
                   VALUES ($1, 'plan_updated', $2, $3, $4, $5)""",
                agent, interaction.lead_id, interaction.model_dump(mode="json"),
                {"interaction_id": interaction_id, "conversion_id": str(conversion_id) if conversion_id else None,
                 **change.model_dump(mode="json", exclude={"reason"})},
                change.reason)
        return InteractionOutcome(status="stored", lead_id=interaction.lead_id, interaction_id=interaction_id,
                                  type=interaction.type, occurred_at=interaction.occurred_at, lead_status=change.status,
                                  change=change, conversion_id=conversion_id, counts=counts, rescore=rescored)

    async def missing_months(self, moments: Iterable[datetime]) -> list[datetime]:
        """The months (first instants, UTC) of ``moments`` that have no partition yet, in order."""
        async with translated_errors("look up interaction partitions"), self._pool.acquire() as conn:
            return await missing_partition_months(conn, moments)


async def missing_partition_months(conn: asyncpg.Connection, moments: Iterable[datetime]) -> list[datetime]:
    """The months of ``moments`` without a partition; a catalog lookup that locks nothing."""
    months = sorted({partition_month(m) for m in moments})
    return [r["m"] for r in await conn.fetch(_MISSING_MONTHS, months)] if months else []


async def _checked(conn: asyncpg.Connection, interaction: NewInteraction,
                   lead_query: str) -> tuple[asyncpg.Record, NewInteraction, str | None]:
    """The lead (read with ``lead_query``), the interaction attributed, its arm; NotFound or RequestError
    when the lead, the campaign or the touchpoint is not there. Reads no interaction."""
    lead = await conn.fetchrow(lead_query, interaction.lead_id)
    if lead is None:
        raise NotFound(f"no lead with id {interaction.lead_id}", {"lead_id": str(interaction.lead_id)})
    if interaction.campaign_id is not None and not await conn.fetchval(
            "SELECT true FROM campaigns WHERE id = $1", interaction.campaign_id):
        raise RequestError(f"campaign {interaction.campaign_id} does not exist",
                           {"campaign_id": str(interaction.campaign_id)})
    attributed, arm = await _attributed(conn, interaction, lead)
    return lead, attributed, arm


async def _attributed(conn: asyncpg.Connection, interaction: NewInteraction,
                      lead: asyncpg.Record) -> tuple[NewInteraction, str | None]:
    """The interaction with its campaign, and its arm: through its touchpoint, else through its lead.

    A touchpoint must be the lead's and sent before the interaction (a click on an email that has not
    gone out is a client's bug, or events out of order): RequestError naming it otherwise.
    """
    campaign_id, arm = interaction.campaign_id, None
    if interaction.touchpoint_id is not None:
        touchpoint = await conn.fetchrow(_TOUCHPOINT, interaction.touchpoint_id)
        if touchpoint is None or touchpoint["lead_id"] != interaction.lead_id:
            raise RequestError(f"lead {interaction.lead_id} has no touchpoint {interaction.touchpoint_id}",
                               {"touchpoint_id": str(interaction.touchpoint_id)})
        if touchpoint["sent_at"] is None or touchpoint["sent_at"] > interaction.occurred_at + MAX_CLOCK_SKEW:
            sent = f"was sent at {touchpoint['sent_at'].isoformat()}" if touchpoint["sent_at"] else "has not been sent"
            raise RequestError(f"touchpoint {interaction.touchpoint_id} {sent}: an interaction with it cannot have "
                               f"happened at {interaction.occurred_at.isoformat()}",
                               {"touchpoint_id": str(interaction.touchpoint_id),
                                "occurred_at": interaction.occurred_at.isoformat(), "status": touchpoint["status"]})
        campaign_id = campaign_id or touchpoint["campaign_id"]
        if touchpoint["campaign_id"] is not None and touchpoint["campaign_id"] == campaign_id:
            arm = touchpoint["arm"]
    campaign_id = campaign_id or lead["campaign_id"]
    if arm is None and campaign_id is not None and campaign_id == lead["campaign_id"]:
        arm = await conn.fetchval(_PLAN_ARM, interaction.lead_id, campaign_id)
    if campaign_id != interaction.campaign_id:
        interaction = interaction.model_copy(update={"campaign_id": campaign_id})
    return interaction, arm


async def _earlier(conn: asyncpg.Connection, interaction: NewInteraction) -> asyncpg.Record | None:
    """The stored interaction this one repeats, if any; Conflict when its external id names another one."""
    if interaction.external_id is None:
        return await conn.fetchrow(_BY_NATURAL_KEY, interaction.lead_id, interaction.type.value,
                                   interaction.occurred_at, interaction.value)
    row = await conn.fetchrow(_BY_EXTERNAL_ID, interaction.lead_id, interaction.external_id)
    if row is not None and (row["type"], row["occurred_at"], row["value"]) != (
            interaction.type.value, interaction.occurred_at, interaction.value):
        raise Conflict(f"external_id '{interaction.external_id}' was already used for a different interaction of "
                       "this lead", {"external_id": interaction.external_id, "interaction_id": row["id"]})
    return row


async def _snapshot(conn: asyncpg.Connection, lead: asyncpg.Record) -> LeadSnapshot:
    lead_id = lead["id"]
    plan = await conn.fetchrow(_PLAN, lead_id)
    pending = [PendingTouchpoint(id=r["id"], plan_id=r["plan_id"], step=r["step"], channel=r["channel"],
                                 template=r["template"], due_at=r["next_attempt_at"] or r["scheduled_at"],
                                 retrying=r["next_attempt_at"] is not None)
               for r in await conn.fetch(_PENDING, lead_id)]
    return LeadSnapshot(
        lead_id=lead_id, status=lead["status"], consent=lead["consent"], country=lead["country"],
        timezone=await conn.fetchval(_TIMEZONE, lead_id), first_name=lead["first_name"], last_name=lead["last_name"],
        company=lead["company"], job_title=lead["job_title"], plan_id=plan["id"] if plan else None,
        next_step=plan["next_step"] if plan else 0, pending=pending,
        contacts=[ScheduledContact(touchpoint_id=r["id"], at=r["at"]) for r in await conn.fetch(_CONTACTS, lead_id)],
        counts=await _counts(conn, lead_id),
    )


async def _counts(conn: asyncpg.Connection, lead_id: UUID) -> dict[str, int]:
    return {r["type"]: r["n"] for r in await conn.fetch(_COUNTS, lead_id)}


async def _store_interaction(conn: asyncpg.Connection, interaction: NewInteraction, change: PlanChange,
                             arm: str | None) -> int:
    """Inserts the interaction row; for an unsubscribe, the existing unsubscribe does it (and more)."""
    i = interaction
    channel = i.channel.value if i.channel is not None else None
    if not change.unsubscribe_channels:
        return await conn.fetchval(_INSERT, i.lead_id, i.type.value, channel, i.campaign_id, i.conversation_id,
                                   i.value, i.occurred_at, i.stored_attributes(), i.touchpoint_id, arm)
    # The same code as POST /api/v1/leads/{id}/unsubscribe, run inside this transaction: it withdraws
    # consent, cancels the pending touchpoints on those channels, records an unsubscribe interaction
    # stamped now() and audits it. That row then gets what the client told us about the event.
    await LeadRepository(_ThisConnection(conn), timedelta(0)).unsubscribe(i.lead_id, change.unsubscribe_channels)
    return await conn.fetchval(
        """UPDATE interactions SET occurred_at = $2, channel = coalesce($3, channel), campaign_id = $4,
                  conversation_id = $5, attributes = attributes || $6::jsonb, touchpoint_id = $7, arm = $8
           WHERE id = (SELECT id FROM interactions WHERE lead_id = $1 AND type = 'unsubscribe' AND occurred_at = now()
                       ORDER BY id DESC LIMIT 1)
           RETURNING id""",
        i.lead_id, i.occurred_at, channel, i.campaign_id, i.conversation_id, i.stored_attributes(), i.touchpoint_id,
        arm)


async def _apply(conn: asyncpg.Connection, interaction: NewInteraction, change: PlanChange,
                 lead: LeadSnapshot, arm: str | None) -> UUID | None:
    """Applies the change (the unsubscribe's cancellations are done already); returns the conversion's id."""
    if change.cancelled_touchpoints and not change.unsubscribe_channels:
        await conn.execute(
            """UPDATE touchpoints SET status = 'cancelled', last_error = $2
               WHERE id = ANY($1::uuid[]) AND status = 'pending'""",
            change.cancelled_touchpoints, f"{interaction.type.value}: {change.effect.value}")
    for moved in change.rescheduled:
        await conn.execute("UPDATE touchpoints SET scheduled_at = $2 WHERE id = $1 AND status = 'pending'",
                           moved.touchpoint_id, moved.scheduled_at)
    if change.new_touchpoints:
        await conn.executemany(
            """INSERT INTO touchpoints (id, lead_id, plan_id, step, channel, template, subject, body, scheduled_at,
                                        status)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
            [(tp.id, tp.lead_id, tp.plan_id, tp.step, tp.channel.value, tp.template, tp.subject, tp.body,
              tp.scheduled_at, tp.status.value) for tp in change.new_touchpoints])
    conversion_id = None
    if change.conversion is not None:
        conversion_id = uuid4()
        c = change.conversion
        await conn.execute(
            """INSERT INTO conversions (id, lead_id, campaign_id, channel, value, converted_at, arm)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            conversion_id, interaction.lead_id, c.campaign_id, c.channel.value if c.channel else None, c.value,
            c.converted_at, arm if c.campaign_id == interaction.campaign_id else None)
    if change.status is not lead.status:
        await conn.execute("UPDATE leads SET status = $2, updated_at = now() WHERE id = $1",
                           interaction.lead_id, change.status.value)
    return conversion_id


class _ThisConnection:
    """Looks like a pool to LeadRepository but hands out the connection of the running transaction, so
    that its own ``conn.transaction()`` becomes a savepoint inside ours."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        yield self._conn

