"""The touchpoints outbox in PostgreSQL: claiming what is due, and recording how each delivery went.

A claim sets ``sending`` with a lease (``FOR UPDATE SKIP LOCKED``, so dispatchers never take the same
row); a claim whose lease ran out is due again. Every later update is conditional on ``sending``, so
a dispatcher that lost its lease cannot overwrite what another one recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID

import asyncpg

from marketing_agents.domain.engagement import Touchpoint
from marketing_agents.stores.postgres import translated_errors

_CLAIM = """
UPDATE touchpoints t SET status = 'sending', attempts = t.attempts + 1, claimed_at = now()
FROM (SELECT id FROM touchpoints
      WHERE (status = 'pending' AND coalesce(next_attempt_at, scheduled_at) <= now())
         OR (status = 'sending' AND claimed_at < now() - $2::interval)
      ORDER BY coalesce(next_attempt_at, scheduled_at) LIMIT $1 FOR UPDATE SKIP LOCKED) due
WHERE t.id = due.id
RETURNING t.*
"""
_RECIPIENTS = """SELECT id, email, first_name, last_name, company, consent, status FROM leads
                 WHERE id = ANY($1::uuid[])"""

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
    touchpoint: Touchpoint
    attempts: int  # including this one
    recipient: Recipient | None  # None: the lead is gone


class TouchpointOutbox:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim_due(self, limit: int, lease: timedelta) -> list[DueTouchpoint]:
        """Up to ``limit`` due touchpoints, now ``sending`` and held for ``lease``, with their leads."""
        async with translated_errors("claim due touchpoints"):
            claimed = await self._pool.fetch(_CLAIM, limit, lease)
            leads = {r["id"]: Recipient(**{k: r[k] for k in (*CONTACT_FIELDS, "consent", "status")})
                     for r in await self._pool.fetch(_RECIPIENTS, list({row["lead_id"] for row in claimed}))}
        return [DueTouchpoint(Touchpoint.model_validate({k: row[k] for k in Touchpoint.model_fields}),
                              row["attempts"], leads.get(row["lead_id"])) for row in claimed]

    async def finish(self, touchpoint_id: UUID, status: Literal["sent", "failed", "cancelled"], *,
                     error: str | None = None, reference: str | None = None) -> None:
        async with translated_errors("record a delivery"):
            await self._pool.execute(
                """UPDATE touchpoints SET status = $2, last_error = $3, delivery_ref = $4,
                          sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END
                   WHERE id = $1 AND status = 'sending'""",
                touchpoint_id, status, error, reference)

    async def retry_later(self, touchpoint_id: UUID, error: str, backoff: timedelta) -> None:
        async with translated_errors("reschedule a delivery"):
            await self._pool.execute(
                """UPDATE touchpoints SET status = 'pending', last_error = $2, next_attempt_at = now() + $3::interval
                   WHERE id = $1 AND status = 'sending'""",
                touchpoint_id, error, backoff)
