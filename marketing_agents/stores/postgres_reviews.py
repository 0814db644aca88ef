"""Review queues in PostgreSQL: what waits where, who works which lead, and each decision as one transaction.

A decision locks the lead's row (``FOR UPDATE``) and checks, inside the transaction that applies it,
that the lead still waits for review and that no other key holds an unexpired claim on it: two people
deciding the same lead at once get one decision and one 409, never two half-applied ones. Leaving
review clears the lead's queue and ends its claim by trigger (migration 0016), whichever path does it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from marketing_agents.domain import HandoffPackage, HandoffRecord, Lead, TriageResult
from marketing_agents.domain.access import Principal, actor_of
from marketing_agents.domain.field_errors import InvalidFields, field_error
from marketing_agents.domain.lead import Consent
from marketing_agents.domain.review import (
    ConsentGrant,
    LeadHistoryEntry,
    LeadReviewState,
    ReviewClaim,
)
from marketing_agents.errors import Conflict, NotFound
from marketing_agents.stores.postgres import LeadRepository, audit_action, translated_errors

# The tables whose rows about a merged duplicate go to the lead it duplicates (all but its profile,
# which is folded in, and its claim, which ends with it).
MERGED_TABLES = ("interactions", "conversions", "triage_results", "handoffs", "engagement_plans", "touchpoints",
                 "agent_actions", "episodes", "idempotency_keys")


class ClaimHeld(Conflict):
    code = "claimed"


class NotInReview(Conflict):
    code = "not_in_review"


def unknown_lead(lead_id: UUID, merged_into: UUID | None = None) -> NotFound:
    if merged_into is not None:
        return NotFound(f"lead {lead_id} was merged into lead {merged_into}",
                        {"lead_id": str(lead_id), "merged_into": str(merged_into)})
    return NotFound(f"no lead with id {lead_id}", {"lead_id": str(lead_id)})


class ReviewRepository:
    def __init__(self, pool: asyncpg.Pool, leads: LeadRepository, claim_ttl: timedelta) -> None:
        self._pool = pool
        self._leads = leads
        self._claim_ttl = claim_ttl

    async def queue_counts(self) -> dict[str, tuple[int, datetime]]:
        """Each queue that holds leads now: how many, and since when the longest-waiting one waits."""
        async with translated_errors("count the review queues"):
            rows = await self._pool.fetch(
                """SELECT review_queue, count(*) AS open, min(review_since) AS oldest FROM leads
                   WHERE review_queue IS NOT NULL GROUP BY review_queue""")
        return {row["review_queue"]: (row["open"], row["oldest"]) for row in rows}

    async def merged_into(self, lead_id: UUID) -> UUID | None:
        async with translated_errors("look up a merged lead"):
            return await self._pool.fetchval("SELECT into_id FROM lead_merges WHERE merged_id = $1", lead_id)

    async def state(self, lead_id: UUID) -> LeadReviewState | None:
        """Where the lead waits and who works it; None when it waits nowhere."""
        async with translated_errors("read a lead's review"):
            row = await self._pool.fetchrow(
                """SELECT l.review_queue, l.review_since, c.key_id, c.key_name, c.expires_at FROM leads l
                   LEFT JOIN review_claims c ON c.lead_id = l.id AND c.expires_at > now()
                   WHERE l.id = $1 AND l.review_queue IS NOT NULL""", lead_id)
        if row is None:
            return None
        claim = None if row["key_id"] is None else _claim(lead_id, row)
        return LeadReviewState(queue=row["review_queue"], waiting_since=row["review_since"], claim=claim)

    async def history(self, lead_id: UUID, limit: int = 200) -> list[LeadHistoryEntry]:
        """What agents and people did about the lead, oldest first (the newest ``limit``)."""
        async with translated_errors("read a lead's history"):
            rows = await self._pool.fetch(
                """SELECT * FROM (SELECT created_at, agent, action, reason, id FROM agent_actions
                                  WHERE lead_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2) newest
                   ORDER BY created_at, id""", lead_id, limit)
        return [LeadHistoryEntry(at=r["created_at"], actor=r["agent"], action=r["action"], reason=r["reason"])
                for r in rows]

    async def claim(self, lead_id: UUID, by: Principal) -> ReviewClaim:
        """Claims the lead for ``by`` (again: extends its claim); ClaimHeld while another key holds it."""
        async with self._deciding(lead_id, by, "claim a lead") as (conn, _):
            row = await conn.fetchrow(
                """INSERT INTO review_claims (lead_id, key_id, key_name, expires_at)
                   VALUES ($1, $2, $3, now() + $4::interval)
                   ON CONFLICT (lead_id) DO UPDATE SET key_id = EXCLUDED.key_id, key_name = EXCLUDED.key_name,
                                                       claimed_at = now(), expires_at = EXCLUDED.expires_at
                   RETURNING key_id, key_name, expires_at""", lead_id, by.key_id, by.name, self._claim_ttl)
        return _claim(lead_id, row)

    async def release(self, lead_id: UUID, by: Principal) -> bool:
        """Ends ``by``'s claim; False when it held none. ClaimHeld when another key holds it."""
        async with self._deciding(lead_id, by, "release a claim") as (conn, _):
            return await conn.fetchval("DELETE FROM review_claims WHERE lead_id = $1 AND key_id = $2 RETURNING true",
                                       lead_id, by.key_id) is not None

    async def waiting(self, lead_id: UUID, by: Principal) -> tuple[Lead, TriageResult, str]:
        """The lead, its latest triage and its queue, if ``by`` may decide it now (checked again when the
        decision is written: this is for the work a decision does before it writes)."""
        async with self._deciding(lead_id, by, "read a lead under review") as (conn, queue):
            row = await conn.fetchrow("SELECT * FROM leads WHERE id = $1", lead_id)
            triage = await conn.fetchval("SELECT result FROM triage_results WHERE lead_id = $1 "
                                         "ORDER BY triaged_at DESC, id DESC LIMIT 1", lead_id)
        return Lead.model_validate({key: row[key] for key in Lead.model_fields}), TriageResult.model_validate(triage), queue

    async def begin_engage(self, by: Principal, note: str | None, triage: TriageResult, handoff: HandoffRecord,
                           package: HandoffPackage) -> None:
        """The person's routing and the pending handoff it starts, stored as intake stores them: from here
        the handoff is delivered (or recovered after a crash) like any other."""
        lead_id = triage.lead_id
        async with self._deciding(lead_id, by, "engage a reviewed lead") as (conn, queue):
            await self._leads.write_handoff(conn, triage, handoff, package)
            await conn.execute("UPDATE leads SET status = 'handing_off', lead_score = $2, triage_category = $3, "
                               "updated_at = now() WHERE id = $1",
                               lead_id, triage.lead_score, triage.triage_category.value)
            await _decided(conn, by, "engage", lead_id, {"queue": queue, "note": note},
                           {"handoff_id": str(handoff.id)}, f"handed to the engagement agent from {queue}", note)

    async def reassign(self, lead_id: UUID, by: Principal, to_queue: str, note: str | None) -> str:
        """Moves the lead to ``to_queue`` (where it waits from now); returns the queue it left."""
        async with self._deciding(lead_id, by, "reassign a lead") as (conn, queue):
            if to_queue == queue:
                raise InvalidFields.of([field_error("queue", f"the lead already waits in {queue}", "same_queue")])
            await conn.execute("UPDATE leads SET review_queue = $2, updated_at = now() WHERE id = $1", lead_id, to_queue)
            await _decided(conn, by, "reassign", lead_id, {"queue": queue, "note": note}, {"queue": to_queue},
                           f"moved from {queue} to {to_queue}", note)
        return queue

    async def disqualify(self, lead_id: UUID, by: Principal, note: str | None) -> None:
        async with self._deciding(lead_id, by, "disqualify a lead") as (conn, queue):
            await conn.execute("UPDATE leads SET status = 'disqualified', updated_at = now() WHERE id = $1", lead_id)
            await conn.execute("""UPDATE touchpoints SET status = 'cancelled', last_error = 'disqualified'
                                  WHERE lead_id = $1 AND status IN ('pending', 'sending')""", lead_id)
            await _decided(conn, by, "disqualify", lead_id, {"queue": queue, "note": note}, {},
                           f"disqualified in {queue}: not to be contacted", note)

    async def merge(self, lead_id: UUID, into: UUID, by: Principal, note: str | None) -> dict[str, int]:
        """Folds the duplicate ``lead_id`` into ``into``, one lead left: its rows move, its profile, consent
        and attributes join the other's, and its id answers with where it went. Returns the rows moved."""
        if into == lead_id:
            raise InvalidFields.of([field_error("into", "a lead cannot be merged into itself", "same_lead")])
        async with self._deciding(lead_id, by, "merge a lead") as (conn, queue):
            target = await conn.fetchrow("SELECT consent, attributes, external_id FROM leads WHERE id = $1 FOR UPDATE",
                                         into)
            if target is None:
                raise InvalidFields.of([field_error("into", f"no lead with id {into}", "lead_not_found")])
            duplicate = await conn.fetchrow("SELECT consent, attributes, external_id FROM leads WHERE id = $1", lead_id)
            moved = {}
            await conn.execute("""UPDATE touchpoints SET status = 'cancelled', last_error = 'merged'
                                  WHERE lead_id = $1 AND status IN ('pending', 'sending')""", lead_id)
            for table in MERGED_TABLES:
                result = await conn.execute(f"UPDATE {table} SET lead_id = $2 WHERE lead_id = $1", lead_id, into)
                moved[table] = int(result.split()[-1])
            await _merge_profiles(conn, lead_id, into)
            # Consent on a channel from either record holds (the newer form may be the fresh opt-in);
            # withdrawing it again is one unsubscribe away.
            consent = Consent.model_validate({c: bool(target["consent"].get(c) or duplicate["consent"].get(c))
                                              for c in Consent.model_fields})
            external_id = target["external_id"] or duplicate["external_id"]
            # Leads merged into the duplicate earlier now point at the lead left, before the duplicate goes.
            await conn.execute("UPDATE lead_merges SET into_id = $2 WHERE into_id = $1", lead_id, into)
            await conn.execute("DELETE FROM leads WHERE id = $1", lead_id)  # first: external_id is unique
            await conn.execute("UPDATE leads SET consent = $2, attributes = $3, external_id = $4, updated_at = now() "
                               "WHERE id = $1", into, consent.model_dump(),
                               {**duplicate["attributes"], **target["attributes"]}, external_id)
            await conn.execute("INSERT INTO lead_merges (merged_id, into_id, merged_by) VALUES ($1, $2, $3)",
                               lead_id, into, actor_of(by))
            await _decided(conn, by, "merge", into, {"merged_lead": str(lead_id), "queue": queue, "note": note},
                           moved, f"lead {lead_id} from {queue} merged into this one", note)
        return moved

    async def correct(self, lead_id: UUID, by: Principal, changes: dict[str, Any], consent: ConsentGrant | None) -> None:
        """Applies a correction and consent given again, audited with what each field was."""
        async with translated_errors("correct a lead"), self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM leads WHERE id = $1 FOR UPDATE", lead_id)
            if row is None:
                raise unknown_lead(lead_id, await conn.fetchval(
                    "SELECT into_id FROM lead_merges WHERE merged_id = $1", lead_id))
            if changes:
                columns = list(changes)
                # The column names are LeadCorrection's field names, never the client's text.
                assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(columns, start=2))
                await conn.execute(f"UPDATE leads SET {assignments}, updated_at = now() WHERE id = $1",
                                   lead_id, *changes.values())
                await audit_action(conn, actor_of(by), "correct", lead_id,
                                   {"before": {c: row[c] for c in columns}}, {"after": changes},
                                   f"corrected {', '.join(columns)}")
            if consent is not None:
                names = [c.value for c in consent.channels]
                await conn.execute("UPDATE leads SET consent = consent || $2::jsonb, updated_at = now() WHERE id = $1",
                                   lead_id, {name: True for name in names})
                await audit_action(conn, actor_of(by), "consent_given", lead_id,
                                   {"channels": names, "source": consent.source}, {},
                                   f"consent given again on {', '.join(names)} (source: {consent.source})")

    async def retriaged(self, triage: TriageResult, by: Principal) -> None:
        """A corrected lead's new triage: its score and category from now on."""
        async with translated_errors("store a new triage"), self._pool.acquire() as conn, conn.transaction():
            await self._leads.write_triage(conn, triage)
            await conn.execute("UPDATE leads SET lead_score = $2, triage_category = $3, updated_at = now() "
                               "WHERE id = $1", triage.lead_id, triage.lead_score, triage.triage_category.value)
            await audit_action(conn, actor_of(by), "retriage", triage.lead_id, {}, {"lead_score": triage.lead_score},
                               "triaged again after a correction")

    @asynccontextmanager
    async def _deciding(self, lead_id: UUID, by: Principal, action: str) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
        """A transaction holding the lead's row, once it is known to wait for review with no other key's
        claim on it; yields the connection and the lead's queue."""
        async with translated_errors(action), self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT status, review_queue FROM leads WHERE id = $1 FOR UPDATE", lead_id)
            if row is None:
                raise unknown_lead(lead_id, await conn.fetchval(
                    "SELECT into_id FROM lead_merges WHERE merged_id = $1", lead_id))
            if row["review_queue"] is None:
                raise NotInReview(f"lead {lead_id} is not waiting for review (its status is {row['status']})",
                                  {"lead_id": str(lead_id), "status": row["status"]})
            held = await conn.fetchrow("SELECT key_id, key_name, expires_at FROM review_claims "
                                       "WHERE lead_id = $1 AND expires_at > now() AND key_id <> $2", lead_id, by.key_id)
            if held is not None:
                claim = _claim(lead_id, held)
                raise ClaimHeld(f"lead {lead_id} is claimed by {claim.held_by_name} ({claim.held_by}) until "
                                f"{claim.expires_at.isoformat()}", claim.model_dump(mode="json"))
            yield conn, row["review_queue"]


def _claim(lead_id: UUID, row: asyncpg.Record) -> ReviewClaim:
    return ReviewClaim(lead_id=lead_id, held_by=f"apikey:{row['key_id']}", held_by_name=row["key_name"],
                       expires_at=row["expires_at"])


async def _decided(conn: asyncpg.Connection, by: Principal, decision: str, lead_id: UUID, inputs: dict[str, Any],
                   output: dict[str, Any], what: str, note: str | None) -> None:
    await audit_action(conn, actor_of(by), f"review_{decision}", lead_id, inputs, output,
                       f"{what}; note: {note}" if note else what)


async def _merge_profiles(conn: asyncpg.Connection, lead_id: UUID, into: UUID) -> None:
    """The duplicate's long-term profile joins the other's: engagement counted together, both score
    histories in time order, the later last activity. RFM is the consolidator's to recompute."""
    await conn.execute(
        """INSERT INTO lead_profiles (lead_id, engagement_by_channel, score_history, last_activity_at)
           SELECT $2, engagement_by_channel, score_history, last_activity_at FROM lead_profiles WHERE lead_id = $1
           ON CONFLICT (lead_id) DO UPDATE SET
               engagement_by_channel = (
                   SELECT coalesce(jsonb_object_agg(k, total), '{}'::jsonb) FROM (
                       SELECT k, sum(v::int) AS total FROM (
                           SELECT * FROM jsonb_each_text(lead_profiles.engagement_by_channel)
                           UNION ALL SELECT * FROM jsonb_each_text(EXCLUDED.engagement_by_channel)) e(k, v)
                       GROUP BY k) counted),
               score_history = (
                   SELECT coalesce(jsonb_agg(e ORDER BY e ->> 'at'), '[]'::jsonb) FROM (
                       SELECT jsonb_array_elements(lead_profiles.score_history) AS e
                       UNION ALL SELECT jsonb_array_elements(EXCLUDED.score_history)) both_histories),
               last_activity_at = greatest(lead_profiles.last_activity_at, EXCLUDED.last_activity_at),
               updated_at = now()""", lead_id, into)
