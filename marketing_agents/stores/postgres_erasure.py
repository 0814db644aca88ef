"""PostgreSQL: what erasing a lead does beyond deleting its rows, and what it leaves behind on purpose.

Deleting the lead cascades to every row about it (``postgres.LEAD_TABLES``). The cascade cannot reach
copies of the lead's data in rows about others, and it would forget that the erasure happened:

- other leads' handoff packages recall the erased lead's episodes (``memory.similar_episodes``), and
  those leads' exports show the packages: the erased lead's entries are taken out;
- ``api_audit`` paths name the lead's id: it is replaced by its digest (a trigger does the same for
  audit rows written later, such as the erasure's own);
- the erasure record (``lead_erasures``, keyed by the digest of the id) keeps the report: Redis is
  cleaned after PostgreSQL commits, so a retry after a Redis failure must find the erasure, answer
  its report and finish the Redis part, rather than answer 404 and leave the keys;
- the suppression list (``erased_identities``): digests of the normalised e-mail and of the
  external id, so that an import does not bring the person back (``suppressed_external_ids``).

Every digest is ``mas_erasure_digest`` (SQL, migration 0014), the one home of the hash: an unsalted
SHA-256, so that the same identifier always gives the same digest and can be recognised when it is
presented again. It is a pseudonym, not anonymity, for a value someone can guess (an e-mail address);
that is what a suppression list needs, and nothing else about the person is kept with it.

A person who comes back through the API (a form, a fresh opt-in) is a new lead: only imports, which
replay old records without the person taking part, are refused for a suppressed identity.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

# The key of the erasure report that counts episode recalls taken out of other leads' handoffs.
RECALLS_ELSEWHERE = "recalls_in_other_handoffs"

_REDACT_RECALLS = """
    WITH recalling AS (
        SELECT h.id, kept.entries, kept.dropped
        FROM handoffs h
        CROSS JOIN LATERAL (
            SELECT coalesce(jsonb_agg(s.entry ORDER BY s.n) FILTER (WHERE s.entry -> 'episode' ->> 'lead_id'
                                                                   IS DISTINCT FROM $1::text), '[]'::jsonb) AS entries,
                   count(*) FILTER (WHERE s.entry -> 'episode' ->> 'lead_id' = $1::text) AS dropped
            FROM jsonb_array_elements(h.package -> 'memory' -> 'similar_episodes') WITH ORDINALITY AS s(entry, n)
        ) kept
        WHERE (h.package -> 'memory' -> 'similar_episodes') @> $2::jsonb AND h.lead_id <> $3),
    redacted AS (
        UPDATE handoffs h SET package = jsonb_set(h.package, '{memory,similar_episodes}', r.entries)
        FROM recalling r WHERE h.id = r.id
        RETURNING r.dropped)
    SELECT coalesce(sum(dropped), 0) FROM redacted"""


async def earlier_erasure(conn: asyncpg.Connection | asyncpg.Pool, lead_id: UUID) -> dict[str, int] | None:
    """The report of the lead's erasure if it was erased, else None."""
    removed = await conn.fetchval("SELECT removed FROM lead_erasures WHERE lead_digest = mas_erasure_digest($1)",
                                  str(lead_id))
    return None if removed is None else {name: int(n) for name, n in removed.items()}


async def erase_copies(conn: asyncpg.Connection, lead_id: UUID, email: str, external_id: str | None) -> int:
    """Within the erasure's transaction: takes the lead out of other leads' handoff packages and the audit,
    and suppresses its identity; returns how many recalls were taken out."""
    recalls = await conn.fetchval(_REDACT_RECALLS, str(lead_id), [{"episode": {"lead_id": str(lead_id)}}], lead_id)
    await conn.execute(
        """UPDATE api_audit SET path = regexp_replace(path, $1, 'erased:' || mas_erasure_digest($1), 'gi')
           WHERE path ILIKE '%' || $1 || '%'""", str(lead_id))
    identities = [("email", email.strip().lower())] + ([("external_id", external_id)] if external_id else [])
    await conn.executemany(
        """INSERT INTO erased_identities (kind, digest) VALUES ($1, mas_erasure_digest($2))
           ON CONFLICT (kind, digest) DO NOTHING""", identities)
    return int(recalls)


async def record_erasure(conn: asyncpg.Connection, lead_id: UUID, removed: dict[str, int]) -> None:
    await conn.execute("INSERT INTO lead_erasures (lead_digest, removed) VALUES (mas_erasure_digest($1), $2)",
                       str(lead_id), removed)


async def complete_erasure(conn: asyncpg.Connection | asyncpg.Pool, lead_id: UUID, removed: dict[str, int]) -> None:
    """Keeps the finished report (Redis included) and when it finished; a retry answers it."""
    await conn.execute(
        """UPDATE lead_erasures SET removed = $2, completed_at = coalesce(completed_at, now())
           WHERE lead_digest = mas_erasure_digest($1)""", str(lead_id), removed)


async def suppressed_external_ids(conn: asyncpg.Connection | asyncpg.Pool, external_ids: list[str]) -> set[str]:
    """The external ids among these that belonged to an erased lead."""
    rows: list[Any] = await conn.fetch(
        """SELECT e.value FROM unnest($1::text[]) AS e(value)
           JOIN erased_identities s ON s.kind = 'external_id' AND s.digest = mas_erasure_digest(e.value)""",
        external_ids)
    return {row["value"] for row in rows}
