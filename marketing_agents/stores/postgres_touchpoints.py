"""The touchpoints outbox in PostgreSQL: claiming what is due, and holding each one while it is sent.

A claim sets ``sending`` with a lease and a claim id (``FOR UPDATE SKIP LOCKED``, so dispatchers never
take the same row); a claim whose lease ran out is due again, under a new claim id. Each touchpoint is
then *held* for its send: a transaction locks its row, but only while it is still ``sending`` under the
dispatcher's own claim, and reads the lead as it is at that moment. The lock lasts until the outcome is
recorded, so:

- an unsubscribe or an erasure that commits before the hold leaves nothing to send (the row is
  ``cancelled`` or gone); one that comes during the send waits for it, then finds it ``sent``;
- a dispatcher whose lease ran out finds its row claimed again by another (a new claim id) and leaves
  it, and the other dispatcher's claim skips a row that is being sent (``SKIP LOCKED``).

Every update is conditional on ``sending`` and the claim id, so a dispatcher that lost its claim
cannot overwrite what another one recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID, uuid4

import asyncpg
from pydantic import ValidationError

from marketing_agents.domain.engagement import Touchpoint
from marketing_agents.stores.postgres import translated_errors

_CLAIM = """
UPDATE touchpoints t SET status = 'sending', attempts = t.attempts + 1, claimed_at = now(), claim_id = $3
FROM (SELECT id FROM touchpoints
      WHERE (status = 'pending' AND coalesce(next_attempt_at, scheduled_at) <= now())
         OR (status = 'sending' AND claimed_at < now() - $2::interval)
      ORDER BY coalesce(next_attempt_at, scheduled_at) LIMIT $1 FOR UPDATE SKIP LOCKED) due
WHERE t.id = due.id
RETURNING t.*, coalesce(t.next_attempt_at, t.scheduled_at) AS due_at
"""
# The lead is joined, not locked: an unsubscribe locks the lead first and the touchpoint second, so
# locking only the touchpoint here cannot deadlock with it. An erased lead took its touchpoints with it
# (ON DELETE CASCADE): no row.
_HOLD = """
SELECT l.email, l.first_name, l.last_name, l.company, l.consent, l.status
FROM touchpoints t JOIN leads l ON l.id = t.lead_id
WHERE t.id = $1 AND t.status = 'sending' AND t.claim_id = $2
FOR UPDATE OF t
"""

CONTACT_FIELDS = ("email", "first_name", "last_name", "company")


@dataclass(frozen=True)
class Recipient:
    """The lead as it is when its touchpoint is sent: consent and status decide whether it still may be."""

    email: str
    first_name: str | None
    last_name: str | None
    company: str | None
    consent: dict[str, bool]
    status: str

    def contact(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in CONTACT_FIELDS}


@dataclass(frozen=True)
class DueTouchpoint:
    """A claimed row. ``touchpoint`` is None when the stored row is not a valid touchpoint (written by
    hand, or before a rule existed): ``unreadable`` says why, and it fails like any delivery would."""

    id: UUID
    lead_id: UUID
    plan_id: UUID
    step: int
    channel: str
    attempts: int  # including this one
    claim_id: UUID
    touchpoint: Touchpoint | None
    unreadable: str | None = None


class HeldTouchpoint:
    """A touchpoint locked for its send, with its lead as it is now; records the outcome before the lock
    is let go."""

    def __init__(self, conn: asyncpg.Connection, due: DueTouchpoint, recipient: Recipient) -> None:
        self._conn = conn
        self._due = due
        self.recipient = recipient

    async def finish(self, status: Literal["sent", "failed", "cancelled"], *,
                     error: str | None = None, reference: str | None = None) -> None:
        async with translated_errors("record a delivery"):
            await self._conn.execute(
                """UPDATE touchpoints SET status = $3, last_error = $4, delivery_ref = $5,
                          sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END
                   WHERE id = $1 AND status = 'sending' AND claim_id = $2""",
                self._due.id, self._due.claim_id, status, _storable(error), _storable(reference))

    async def retry_later(self, error: str, backoff: timedelta) -> None:
        async with translated_errors("reschedule a delivery"):
            await self._conn.execute(
                """UPDATE touchpoints SET status = 'pending', last_error = $3, next_attempt_at = now() + $4::interval
                   WHERE id = $1 AND status = 'sending' AND claim_id = $2""",
                self._due.id, self._due.claim_id, _storable(error), backoff)


class TouchpointOutbox:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim_due(self, limit: int, lease: timedelta) -> list[DueTouchpoint]:
        """Up to ``limit`` due touchpoints, now ``sending`` under one new claim and held for ``lease``."""
        claim_id = uuid4()
        async with translated_errors("claim due touchpoints"):
            claimed = await self._pool.fetch(_CLAIM, limit, lease, claim_id)
        # RETURNING does not keep the subquery's order; the earliest due goes first.
        return [_due(row) for row in sorted(claimed, key=lambda row: (row["due_at"], row["id"]))]

    @asynccontextmanager
    async def hold(self, due: DueTouchpoint) -> AsyncIterator[HeldTouchpoint | None]:
        """The touchpoint locked for its send until the block ends; None when it is no longer this claim's
        to send: cancelled by an unsubscribe, erased with its lead, or claimed again after the lease ran out.

        The lock is held for the send, so the send should be bounded (the adapters' timeouts are).
        """
        async with translated_errors("hold a touchpoint for sending"), self._pool.acquire() as conn, \
                conn.transaction():
            row = await conn.fetchrow(_HOLD, due.id, due.claim_id)
            yield None if row is None else HeldTouchpoint(
                conn, due, Recipient(**{k: row[k] for k in (*CONTACT_FIELDS, "consent", "status")}))


def _storable(text: str | None) -> str | None:
    """Text as PostgreSQL can hold it: a receiver's answer quoted in an error or a reference may carry a NUL."""
    return None if text is None else text.replace("\x00", "\\0")


def _due(row: asyncpg.Record) -> DueTouchpoint:
    ids = {"id": row["id"], "lead_id": row["lead_id"], "plan_id": row["plan_id"], "step": row["step"],
           "channel": row["channel"], "attempts": row["attempts"], "claim_id": row["claim_id"]}
    try:
        return DueTouchpoint(**ids, touchpoint=Touchpoint.model_validate({k: row[k] for k in Touchpoint.model_fields}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return DueTouchpoint(**ids, touchpoint=None, unreadable=f"the stored touchpoint is not valid: {problems}")
