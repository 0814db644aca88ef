"""PostgreSQL: the statements of the bulk interaction import (memory/interaction_writer decides what to write).

Everything runs on the one connection the import holds from start to end, because a batch's
temporary table, its transaction and its advisory lock must belong to one session.

Locking. Partition creation and every batch take a transaction-level advisory lock, the same key
that engagement feedback takes before it creates a partition (``PARTITION_LOCK_KEY``): two imports of
one file then cannot both insert a row, and an import and a single interaction cannot deadlock over
a new month.

Behaviour. The rows a batch adds count in their leads' long-term behaviour in the same statement
(engagement by channel, last activity), as each interaction posted to the API does.

Duplicates. Each row comes with its ``occurrence``: it is the n-th row of its file with its content
(lead, type, channel, campaign, conversation, value, ``occurred_at``; NULL equal to NULL).
``insert_new`` moves a row into ``interactions`` only when fewer than ``occurrence`` interactions with
that content are stored: the n-th identical row is new exactly when fewer than n are there. Earlier
batches are committed by then, and the count is taken before the statement's own inserts, so two
identical rows of one batch are both inserted and a second import of the file inserts neither.
Counting rather than storing a key needs no column on the largest table, and a file imported before
identical rows counted (one was kept of each) gets its missing occurrences on the next import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import asyncpg

from marketing_agents.stores.postgres_interactions import PARTITION_LOCK_KEY as _IMPORT_LOCK_KEY
from marketing_agents.stores.postgres_interactions import missing_partition_months

# One row of a batch as copied into the temporary table: the file's line, then the interaction.
# One row of a batch as copied into the temporary table: the file's line, then the interaction, then its
# occurrence (the how-manieth row of the file with this content).
ImportRecord = tuple[int, UUID, str, str | None, UUID | None, str | None, Decimal | None, datetime, int]

_COPY_COLUMNS = ("line", "lead_id", "type", "channel", "campaign_id", "conversation_id", "value", "occurred_at",
                 "occurrence")

_CREATE_BATCH_TABLE = """
    CREATE TEMP TABLE mas_interaction_import (
        line integer, lead_id uuid, type text, channel text, campaign_id uuid, conversation_id text,
        value numeric(14, 2), occurred_at timestamptz, occurrence integer
    ) ON COMMIT DROP"""

# The duplicate check is a LATERAL subquery with LIMIT rather than an anti-join on purpose: the planner
# turns NOT EXISTS into a hash anti-join that reads the whole interactions table for every batch (0.5 s
# per batch at 3M rows, growing with the table), while the LATERAL form can only be a nested loop: one
# probe of idx_interaction_lead in the row's own partition (run-time pruning) per imported row, which
# stops after ``occurrence`` matches.
_MOVE_NEW_ROWS = """
    WITH inserted AS (
        INSERT INTO interactions (lead_id, type, channel, campaign_id, conversation_id, value, occurred_at)
        SELECT t.lead_id, t.type, t.channel, t.campaign_id, t.conversation_id, t.value, t.occurred_at
        FROM mas_interaction_import t
        CROSS JOIN LATERAL (
            SELECT count(*) AS n FROM (
                SELECT FROM interactions i
                WHERE i.lead_id = t.lead_id AND i.occurred_at = t.occurred_at AND i.type = t.type
                  AND i.value IS NOT DISTINCT FROM t.value AND i.channel IS NOT DISTINCT FROM t.channel
                  AND i.campaign_id IS NOT DISTINCT FROM t.campaign_id
                  AND i.conversation_id IS NOT DISTINCT FROM t.conversation_id
                LIMIT t.occurrence) AS same) AS stored
        WHERE stored.n < t.occurrence
        ORDER BY t.line
        RETURNING lead_id, type, channel, occurred_at),
    by_channel AS (
        SELECT lead_id, channel, count(*) AS n, max(occurred_at) AS last_at
        FROM inserted WHERE type <> 'unsubscribe' GROUP BY lead_id, channel),
    behaviour AS (
        SELECT lead_id, max(last_at) AS last_at,
               coalesce(jsonb_object_agg(channel, n) FILTER (WHERE channel IS NOT NULL), '{}'::jsonb) AS counts
        FROM by_channel GROUP BY lead_id),
    profiles AS (
        INSERT INTO lead_profiles (lead_id, engagement_by_channel, last_activity_at)
        SELECT lead_id, counts, last_at FROM behaviour
        ON CONFLICT (lead_id) DO UPDATE SET
            engagement_by_channel = (
                SELECT coalesce(jsonb_object_agg(k, coalesce((lead_profiles.engagement_by_channel ->> k)::int, 0)
                                                     + coalesce((EXCLUDED.engagement_by_channel ->> k)::int, 0)),
                                '{}'::jsonb)
                FROM jsonb_object_keys(lead_profiles.engagement_by_channel || EXCLUDED.engagement_by_channel) AS k),
            last_activity_at = greatest(lead_profiles.last_activity_at, EXCLUDED.last_activity_at),
            updated_at = now()
        RETURNING 1)
    SELECT count(*) FROM inserted"""

_CREATE_LEADS = """
    INSERT INTO leads (id, external_id, email, first_name, last_name, company, job_title, industry,
                       company_size, country, source, consent, attributes, status)
    SELECT gen_random_uuid(), n.external_id, n.email, $3, $3, $3, $3, $4, $5, $6, $7, '{}'::jsonb,
           jsonb_build_object('placeholder', true, 'imported_from', $8::text), $9
    FROM unnest($1::text[], $2::text[]) AS n(external_id, email)
    ON CONFLICT (external_id) DO NOTHING
    RETURNING external_id, id"""


class PostgresInteractionImport:
    """The import's statements on its one connection; the caller translates errors and keeps caches."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def ensure_partitions(self, months: Iterable[datetime]) -> int:
        """Creates the monthly partitions of ``months`` (first instants of months) that are missing.

        Its own transaction, so that the partitions stay even when the batch that needed them fails.
        """
        async with self._conn.transaction():
            await self._conn.execute("SELECT pg_advisory_xact_lock($1)", _IMPORT_LOCK_KEY)
            created = await self._conn.fetchval(
                "SELECT coalesce(sum(mas_ensure_interaction_partitions(m, m)), 0) FROM unnest($1::timestamptz[]) AS m",
                sorted(months),
            )
        return int(created)

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """One batch's transaction, under the import lock: committed whole or not at all."""
        async with self._conn.transaction():
            await self._conn.execute("SELECT pg_advisory_xact_lock($1)", _IMPORT_LOCK_KEY)
            yield

    async def existing_campaigns(self, campaign_ids: Iterable[UUID]) -> set[UUID]:
        rows = await self._conn.fetch("SELECT id FROM campaigns WHERE id = ANY($1::uuid[])", list(campaign_ids))
        return {r["id"] for r in rows}

    async def lead_ids(self, external_ids: list[str]) -> dict[str, UUID]:
        rows = await self._conn.fetch("SELECT external_id, id FROM leads WHERE external_id = ANY($1::text[])",
                                      external_ids)
        return {r["external_id"]: r["id"] for r in rows}

    async def create_placeholder_leads(
        self, external_ids: list[str], emails: list[str], *, name: str, industry: str, company_size: int,
        country: str, source: str, status: str, imported_from: str,
    ) -> dict[str, UUID]:
        """Creates a lead per external id, with ``name`` in every name, company and title column.

        Returns only the leads it created: an external id another import created meanwhile is left
        out (``ON CONFLICT DO NOTHING``), and ``lead_ids`` finds it.
        """
        rows = await self._conn.fetch(_CREATE_LEADS, external_ids, emails, name, industry, company_size, country,
                                      source, imported_from, status)
        return {r["external_id"]: r["id"] for r in rows}

    async def missing_months(self, months: Iterable[datetime]) -> list[datetime]:
        """The months (first instants) among ``months`` that have no partition yet, in order."""
        return await missing_partition_months(self._conn, months)

    async def insert_new(self, records: list[ImportRecord]) -> int:
        """Copies the batch into a temporary table and moves the rows that are not duplicates; how many moved."""
        await self._conn.execute(_CREATE_BATCH_TABLE)
        await self._conn.copy_records_to_table("mas_interaction_import", records=records, columns=_COPY_COLUMNS)
        return await self._conn.fetchval(_MOVE_NEW_ROWS)
