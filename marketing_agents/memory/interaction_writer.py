"""Writing the parsed rows of an interaction file: batches, placeholder leads and duplicates.

The rules of what is written live here; the statements that write it are the store adapter's
(stores/postgres_interaction_import).

Leads that do not exist yet
    An external id not found in ``leads`` gets a minimal placeholder lead (see PLACEHOLDER_* below),
    unless it belonged to an erased lead: those rows are rejected with their line (ERASED_LEAD).
    The leads table requires contact and firmographic columns that an interaction file does not have,
    so the placeholder says "unknown" wherever it can and picks values nobody can mistake for data:
    - ``email``: ``<external id, lowercased>@imported.example`` when the id is a safe e-mail local
      part, else ``lead-<first 20 hex digits of sha1(external id)>@imported.example``. ``.example``
      is reserved (RFC 2606) so nothing is ever sent there, yet, unlike ``.invalid``, it passes the
      e-mail validation of the Lead model;
    - ``first_name``, ``last_name``, ``company``, ``job_title``: ``Unknown``; ``industry``: ``unknown``;
    - ``company_size``: 1, the smallest size the CHECK constraint allows (there is no "unknown");
    - ``country``: ``ZZ``, the ISO 3166 user-assigned code that CLDR uses for "Unknown Region". A real
      country (say ``US``) would silently skew every per-country figure. Caveat: pycountry does not
      know ZZ, so such a row does not validate as a ``Lead`` model until it is enriched;
    - ``source``: ``import``; ``consent``: ``{}`` (consent is opt-in: no channel agreed); ``status``:
      ``triaged``; ``attributes``: ``{"placeholder": true, "imported_from": "<file name>"}`` so the
      leads to enrich are easy to find.

Writing
    Each batch is one transaction: missing leads are created with one ``INSERT ... SELECT FROM
    unnest(...) ON CONFLICT (external_id) DO NOTHING``, the rows are copied (COPY) into a temporary
    table and moved into ``interactions`` with one INSERT ... SELECT. Monthly partitions for the
    batch's months are created first (``mas_ensure_interaction_partitions`` per distinct month, so rows
    land in their month rather than in the default partition). A row naming a campaign that does not
    exist is rejected with its line; the rest of its batch is written. If the database fails
    mid-import, the batches before stay committed; re-running skips them.

Duplicates (re-importing the same file imports nothing new)
    Identical rows of one file are separate events (two purchases of the same amount on the same day):
    each is imported. A row is a duplicate, and is skipped and counted in ``skipped_duplicates``, when
    it is the n-th row of the file with its content (lead, type, channel, campaign, conversation, value,
    ``occurred_at``; ``ParsedRow.occurrence``) and n interactions with that content are already stored,
    by an earlier import of the file or otherwise. Concurrent imports take a transaction-level advisory
    lock per batch, so two imports of one file cannot both insert a row.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from uuid import UUID

import asyncpg

from marketing_agents.domain.interaction import partition_month
from marketing_agents.errors import StorageError
from marketing_agents.memory.interaction_file import ParsedRow
from marketing_agents.stores.postgres import translated_errors
from marketing_agents.stores.postgres_erasure import suppressed_external_ids
from marketing_agents.stores.postgres_interaction_import import PostgresInteractionImport

PLACEHOLDER_EMAIL_DOMAIN = "imported.example"
PLACEHOLDER_NAME = "Unknown"
PLACEHOLDER_INDUSTRY = "unknown"
PLACEHOLDER_COMPANY_SIZE = 1
PLACEHOLDER_COUNTRY = "ZZ"
PLACEHOLDER_SOURCE = "import"
PLACEHOLDER_STATUS = "triaged"

# Why a row of an erased lead is refused rather than given a placeholder lead (stores/postgres_erasure).
ERASED_LEAD = ("its lead was erased (the right to be forgotten) and an import does not re-create it; "
               "only the person can come back, through the API")

_SAFE_LOCAL_PART = re.compile(r"[a-z0-9]+(?:[._+-][a-z0-9]+)*")


def placeholder_email(external_id: str) -> str:
    """The e-mail of a lead created for an unknown external id (see the module docstring)."""
    local = external_id.lower()
    if len(local) > 64 or not _SAFE_LOCAL_PART.fullmatch(local):
        local = "lead-" + hashlib.sha1(external_id.encode()).hexdigest()[:20]
    return f"{local}@{PLACEHOLDER_EMAIL_DOMAIN}"


@dataclass
class BatchOutcome:
    """What one batch did. ``inserted + skipped_duplicates + len(rejected)`` is the batch's size."""

    inserted: int = 0
    skipped_duplicates: int = 0
    leads_created: int = 0
    partitions_created: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


class InteractionWriter:
    """Writes one file's batches over one connection, remembering what earlier batches settled.

    The caches (leads by external id, campaigns known to exist, months with partitions) hold only
    what committed batches found or created, so a batch that fails leaves nothing wrong in them.
    """

    def __init__(self, conn: asyncpg.Connection, path: Path) -> None:
        self._store = PostgresInteractionImport(conn)
        self._conn = conn
        self._path = path
        self._lead_ids: dict[str, UUID] = {}
        self._known_campaigns: set[UUID] = set()
        self._ensured_months: set[datetime] = set()
        self._imported = 0

    async def missing_months(self, months: set[datetime]) -> list[datetime]:
        """The months among ``months`` without a partition yet: what importing them would create."""
        async with translated_errors("look up interaction partitions"):
            return await self._store.missing_months(months)

    async def write(self, batch: list[ParsedRow]) -> BatchOutcome:
        """Writes a non-empty batch; StorageError names its first line when PostgreSQL refuses it."""
        first_line = batch[0].line
        try:
            async with translated_errors("import interactions"):
                partitions_created = await self._ensure_partitions(batch)
                outcome, new_lead_ids = await self._write_batch(batch)
        except StorageError:
            raise
        except asyncpg.PostgresError as exc:
            raise StorageError(
                f"PostgreSQL refused the batch starting at line {first_line} of {self._path}: {exc}. "
                f"{self._imported:,} rows were imported before it; importing the file again skips them",
                {"line": first_line, "imported": self._imported},
            ) from exc
        outcome.partitions_created = partitions_created
        outcome.skipped_duplicates = len(batch) - len(outcome.rejected) - outcome.inserted
        self._imported += outcome.inserted
        self._lead_ids.update(new_lead_ids)
        return outcome

    async def _ensure_partitions(self, batch: list[ParsedRow]) -> int:
        """Creates the monthly partitions of the batch's months not yet ensured by this import."""
        months = {partition_month(row.occurred_at) for row in batch} - self._ensured_months
        if not months:
            return 0
        created = await self._store.ensure_partitions(months)
        self._ensured_months |= months
        return created

    async def _write_batch(self, batch: list[ParsedRow]) -> tuple[BatchOutcome, dict[str, UUID]]:
        """One transaction: check campaigns, create missing leads, write the rows that are not duplicates.

        Returns the outcome and the lead ids this batch looked up or created, which join the cache
        only once the batch has committed. Campaigns found join their cache at once: one can only
        disappear by a concurrent delete, which the foreign key then reports.
        """
        outcome = BatchOutcome()
        new_ids: dict[str, UUID] = {}
        async with self._store.batch():
            wanted_campaigns = {row.campaign_id for row in batch if row.campaign_id is not None} - self._known_campaigns
            if wanted_campaigns:
                found = await self._store.existing_campaigns(wanted_campaigns)
                self._known_campaigns |= found
                if missing := wanted_campaigns - found:
                    outcome.rejected = [(row.line, f"campaign {row.campaign_id} does not exist")
                                        for row in batch if row.campaign_id in missing]
                    batch = [row for row in batch if row.campaign_id not in missing]

            unknown = list({row.external_id for row in batch if row.external_id not in self._lead_ids})
            if unknown:
                new_ids = await self._store.lead_ids(unknown)
                to_create = [e for e in unknown if e not in new_ids]
                if erased := await suppressed_external_ids(self._conn, to_create) if to_create else set():
                    outcome.rejected += [(row.line, ERASED_LEAD) for row in batch if row.external_id in erased]
                    batch = [row for row in batch if row.external_id not in erased]
                    to_create = [e for e in to_create if e not in erased]
                if to_create:
                    created = await self._store.create_placeholder_leads(
                        to_create, [placeholder_email(e) for e in to_create], name=PLACEHOLDER_NAME,
                        industry=PLACEHOLDER_INDUSTRY, company_size=PLACEHOLDER_COMPANY_SIZE,
                        country=PLACEHOLDER_COUNTRY, source=PLACEHOLDER_SOURCE, status=PLACEHOLDER_STATUS,
                        imported_from=self._path.name,
                    )
                    outcome.leads_created = len(created)
                    new_ids.update(created)
                    if raced := [e for e in to_create if e not in new_ids]:  # created meanwhile by others
                        new_ids.update(await self._store.lead_ids(raced))

            if not batch:
                return outcome, new_ids
            outcome.inserted = await self._store.insert_new(
                [(row.line, self._lead_ids.get(row.external_id) or new_ids[row.external_id], row.type, row.channel,
                  row.campaign_id, row.conversation_id, row.value, row.occurred_at, row.occurrence) for row in batch])
        return outcome, new_ids
