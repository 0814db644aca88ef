"""Bulk import of interactions from a delimited text file: ``marketing-agents import interactions FILE``.

The file
    A header row is required (line 1). The separator is detected from the header line: a tab if it
    has one, else a comma if it has one, else runs of whitespace. Comma and tab files may quote fields
    the CSV way. Blank lines are skipped. Line numbers are 1-based physical lines, the header being
    line 1 (a quoted field spanning lines counts from the line the row starts on).

The mapping (``--map lead_id=customer_id,occurred_at=date,value=dollar_value``)
    Maps our field names (targets) to the file's column names. ``lead_id`` (the lead's *external* id,
    matched against ``leads.external_id``) and ``occurred_at`` are required; ``value``, ``channel``,
    ``campaign_id``, ``conversation_id`` and ``type`` are optional. Without a ``type`` column,
    ``default_type`` (``--type``) gives one type to every row; with both, the column wins and the
    default fills its empty cells. Unknown targets, columns missing from the header and a missing
    type are reported together, naming each problem, before anything is written.

Cells
    - ``occurred_at``: ISO 8601 date or date-time, with or without offset (naive means UTC); 8 digits
      are ``YYYYMMDD``; 9 to 11 digits (optionally with a fraction) are Unix seconds. Stored as UTC.
    - ``value``: empty (no value) or a plain decimal number >= 0 with at most 2 decimal places and
      below 10^12 (the column is ``numeric(14, 2)``).
    - ``type``: one of InteractionType, case-insensitive. ``channel``: one of Channel, or empty.
    - ``campaign_id``: empty or the UUID of an existing campaign. ``conversation_id``: up to 128 chars.
    A row with any bad cell, an empty lead id or the wrong number of columns is rejected with its
    line number and every reason; the other rows are imported.

Leads that do not exist yet
    An external id not found in ``leads`` gets a minimal placeholder lead (see PLACEHOLDER_* below).
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
    Rows are written in batches (10,000 by default), each batch in one transaction: missing leads are
    created with one ``INSERT ... SELECT FROM unnest(...) ON CONFLICT (external_id) DO NOTHING``, the
    rows are copied (COPY) into a temporary table and moved into ``interactions`` with one INSERT ... SELECT.
    Monthly partitions for the batch's months are created first (``mas_ensure_interaction_partitions``
    per distinct month, so rows land in their month rather than in the default partition).
    If the database fails mid-import, the batches before stay committed; re-running skips them.

Duplicates (re-importing the same file imports nothing new)
    A row is a duplicate, and is skipped and counted in ``skipped_duplicates``, when an interaction
    with the same lead, type, ``occurred_at`` and value (NULL equal to NULL) is already stored or
    appears earlier in the file; ``channel``, ``campaign_id`` and ``conversation_id`` are not part of
    the key. Concurrent imports take a transaction-level advisory lock per batch, so two imports of
    one file cannot both insert a row.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO
from uuid import UUID

import asyncpg

from marketing_agents.domain.common import Channel
from marketing_agents.domain.interaction import InteractionType
from marketing_agents.errors import RequestError, StorageError
from marketing_agents.stores.postgres import translated_errors

REQUIRED_TARGETS = ("lead_id", "occurred_at")
OPTIONAL_TARGETS = ("value", "channel", "campaign_id", "conversation_id", "type")
TARGETS = REQUIRED_TARGETS + OPTIONAL_TARGETS

DEFAULT_BATCH_SIZE = 10_000
MAX_EXTERNAL_ID_LENGTH = 128  # as NewLead.external_id
MAX_CONVERSATION_ID_LENGTH = 128  # as Interaction.conversation_id
MAX_VALUE = Decimal(10) ** 12  # numeric(14, 2)
CENT = Decimal("0.01")

PLACEHOLDER_EMAIL_DOMAIN = "imported.example"
PLACEHOLDER_NAME = "Unknown"
PLACEHOLDER_INDUSTRY = "unknown"
PLACEHOLDER_COMPANY_SIZE = 1
PLACEHOLDER_COUNTRY = "ZZ"
PLACEHOLDER_SOURCE = "import"
PLACEHOLDER_STATUS = "triaged"

# Serializes the batches of concurrent imports (any constant; "MASIMPRT" in ASCII).
_IMPORT_LOCK_KEY = 0x4D4153494D505254

_TYPES = {t.value for t in InteractionType}
_CHANNELS = {c.value for c in Channel}
_SAFE_LOCAL_PART = re.compile(r"[a-z0-9]+(?:[._+-][a-z0-9]+)*")
_UNIX_SECONDS = re.compile(r"[0-9]{9,11}(?:\.[0-9]+)?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InteractionImportError(RequestError, ValueError):
    """The user's file, mapping or options are wrong; nothing was written."""


# ---------------------------------------------------------------------------------------------------
# Pure parsing
# ---------------------------------------------------------------------------------------------------


def parse_mapping(text: str) -> dict[str, str]:
    """``"lead_id=customer_id,occurred_at=date"`` -> ``{"lead_id": "customer_id", "occurred_at": "date"}``.

    Raises InteractionImportError (a ValueError and a RequestError) naming every problem: a pair
    without ``=``, a target given twice, unknown targets, missing required targets.
    """
    problems: list[str] = []
    mapping: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        target, equals, column = part.partition("=")
        target, column = target.strip(), column.strip()
        if not equals or not target or not column:
            problems.append(f"'{part}' is not TARGET=COLUMN")
        elif target in mapping:
            problems.append(f"'{target}' is mapped twice")
        else:
            mapping[target] = column
    if not mapping and not problems:
        problems.append("it is empty")
    problems += _target_problems(mapping)
    if problems:
        raise InteractionImportError(
            f"invalid --map: {'; '.join(problems)} (expected TARGET=COLUMN pairs separated by commas, "
            f"e.g. lead_id=customer_id,occurred_at=date)",
            {"problems": problems},
        )
    return mapping


def _target_problems(mapping: dict[str, str]) -> list[str]:
    problems = []
    unknown = [t for t in mapping if t not in TARGETS]
    if unknown:
        problems.append(f"unknown target{'s' if len(unknown) > 1 else ''} {_quoted(unknown)} "
                        f"(known: {', '.join(TARGETS)})")
    missing = [t for t in REQUIRED_TARGETS if t not in mapping]
    if missing:
        problems.append(f"required target{'s' if len(missing) > 1 else ''} {_quoted(missing)} "
                        f"{'are' if len(missing) > 1 else 'is'} not mapped")
    return problems


def detect_separator(header_line: str) -> str | None:
    """The separator of a file, judged from its header line: ``"\\t"``, ``","``, or None for whitespace."""
    if "\t" in header_line:
        return "\t"
    if "," in header_line:
        return ","
    return None


def split_line(line: str, separator: str | None) -> list[str]:
    """One physical line split into cells (quotes honoured for comma and tab files)."""
    line = line.rstrip("\r\n")
    if separator is None:
        return line.split()
    return next(csv.reader([line], delimiter=separator), [])


def parse_timestamp(text: str) -> datetime:
    """An aware UTC datetime from ISO 8601, ``YYYYMMDD`` or Unix seconds; ValueError says why not."""
    s = text.strip()
    if not s:
        raise ValueError("empty date")
    if s.isascii() and s.isdigit() and len(s) == 8:
        try:
            return datetime(int(s[:4]), int(s[4:6]), int(s[6:]), tzinfo=UTC)
        except ValueError:
            raise ValueError(f"'{s}' is not a valid YYYYMMDD date") from None
    if s.isascii() and _UNIX_SECONDS.fullmatch(s):
        whole, _, fraction = s.partition(".")
        micros = round(float("0." + fraction) * 1_000_000) if fraction else 0
        return _EPOCH + timedelta(seconds=int(whole), microseconds=micros)
    if s.isascii() and s.isdigit():
        hint = " (Unix milliseconds? expected seconds)" if 12 <= len(s) <= 14 else ""
        raise ValueError(f"'{s}' has {len(s)} digits: expected YYYYMMDD (8) or Unix seconds (9 to 11){hint}")
    try:
        parsed = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"unparseable date '{s}' (expected ISO 8601, YYYYMMDD or Unix seconds)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_value(text: str) -> Decimal | None:
    """None for an empty cell, else a Decimal >= 0 with at most 2 decimals below 10^12; ValueError says why not."""
    s = text.strip()
    if not s:
        return None
    try:
        value = Decimal(s)
    except InvalidOperation:
        raise ValueError(f"value '{s}' is not a number") from None
    if not value.is_finite():
        raise ValueError(f"value '{s}' is not a number")
    if value < 0:
        raise ValueError(f"value '{s}' is negative")
    if value >= MAX_VALUE:
        raise ValueError(f"value '{s}' is too large (at most 999999999999.99)")
    rounded = value.quantize(CENT)
    if rounded != value:
        raise ValueError(f"value '{s}' has more than 2 decimal places")
    return rounded


def placeholder_email(external_id: str) -> str:
    """The e-mail of a lead created for an unknown external id (see the module docstring)."""
    local = external_id.lower()
    if len(local) > 64 or not _SAFE_LOCAL_PART.fullmatch(local):
        local = "lead-" + hashlib.sha1(external_id.encode()).hexdigest()[:20]
    return f"{local}@{PLACEHOLDER_EMAIL_DOMAIN}"


@dataclass(frozen=True, slots=True)
class ParsedRow:
    line: int
    external_id: str
    type: str
    channel: str | None
    campaign_id: UUID | None
    conversation_id: str | None
    value: Decimal | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    reason: str


class InteractionFile:
    """A delimited file checked against a mapping: header read, separator detected, columns resolved.

    Construction raises InteractionImportError for anything that would make every row fail (missing
    file, no header, unknown targets, columns missing from the header, no type, invalid UTF-8), so
    nothing is written for such a file. ``rows()`` then yields a ParsedRow or a RejectedRow per
    non-blank data line; ``lines_done`` follows how many data lines it has consumed.
    """

    def __init__(self, path: Path | str, mapping: dict[str, str], default_type: str | None = None) -> None:
        self.path = Path(path)
        self.mapping = dict(mapping)
        problems = _target_problems(self.mapping)
        self.default_type: str | None = None
        if default_type is not None:
            normalized = default_type.strip().lower()
            if normalized not in _TYPES:
                problems.append(f"unknown --type '{default_type}' (expected one of: {', '.join(sorted(_TYPES))})")
            else:
                self.default_type = normalized
        if "type" not in self.mapping and default_type is None:
            problems.append("no interaction type: map a type column (--map type=COLUMN) or give --type for all rows")
        self.total_lines = self._count_data_lines()
        self.separator, self.columns = self._read_header()
        problems += self._column_problems()
        if problems:
            raise InteractionImportError(f"cannot import {self.path}: {'; '.join(problems)}", {"problems": problems})
        self.index = {target: self.columns.index(column) for target, column in self.mapping.items()}
        self.lines_done = 0

    def _count_data_lines(self) -> int:
        """Data lines (everything after the header), checking that the file is UTF-8 on the way."""
        lines = 0
        try:
            with open(self.path, "rb") as handle:
                for lines, raw in enumerate(handle, start=1):
                    try:
                        raw.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise InteractionImportError(
                            f"cannot import {self.path}: line {lines} is not valid UTF-8 "
                            f"({exc.reason} at byte {exc.start} of the line)"
                        ) from None
        except OSError as exc:
            raise InteractionImportError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        if lines == 0:
            raise InteractionImportError(f"cannot import {self.path}: the file is empty (a header row is required)")
        return lines - 1

    def _read_header(self) -> tuple[str | None, list[str]]:
        with open(self.path, encoding="utf-8-sig", newline="") as handle:
            header = handle.readline()
        if not header.strip():
            raise InteractionImportError(f"cannot import {self.path}: line 1 is blank; a header row is required")
        separator = detect_separator(header)
        return separator, [name.strip() for name in split_line(header, separator)]

    def _column_problems(self) -> list[str]:
        problems = []
        missing = [column for column in dict.fromkeys(self.mapping.values()) if column not in self.columns]
        for column in missing:
            close = difflib.get_close_matches(column, self.columns, n=1)
            problems.append(f"column '{column}' (mapped to {_quoted(_targets_of(self.mapping, column))}) is not "
                            f"in the header" + (f"; did you mean '{close[0]}'?" if close else ""))
        if missing:
            problems.append(f"the header has the columns {_quoted(self.columns)} "
                            f"(separated by {_SEPARATOR_NAMES[self.separator]})")
        twice = [c for c in dict.fromkeys(self.mapping.values()) if self.columns.count(c) > 1]
        if twice:
            problems.append(f"column{'s' if len(twice) > 1 else ''} {_quoted(twice)} "
                            f"appear{'' if len(twice) > 1 else 's'} more than once in the header")
        return problems

    def rows(self) -> Iterator[ParsedRow | RejectedRow]:
        parse = self._row_parser()
        with open(self.path, encoding="utf-8-sig", newline="") as handle:
            handle.readline()
            if self.separator is None:
                for line, raw in enumerate(handle, start=2):
                    self.lines_done = line - 1
                    cells = raw.split()
                    if cells:
                        yield parse(line, cells)
                return
            reader = csv.reader(handle, delimiter=self.separator)
            while True:
                line = reader.line_num + 2
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    self.lines_done = reader.line_num
                    yield RejectedRow(line, f"malformed line: {exc}")
                    continue
                self.lines_done = reader.line_num
                if cells and (len(cells) > 1 or cells[0].strip()):
                    yield parse(line, cells)

    def _row_parser(self) -> Callable[[int, list[str]], ParsedRow | RejectedRow]:
        width = len(self.columns)
        index = self.index
        name = self.mapping
        i_lead, i_at = index["lead_id"], index["occurred_at"]
        i_value, i_type, i_channel = index.get("value"), index.get("type"), index.get("channel")
        i_campaign, i_conversation = index.get("campaign_id"), index.get("conversation_id")
        default_type = self.default_type

        def parse(line: int, cells: list[str]) -> ParsedRow | RejectedRow:
            if len(cells) != width:
                return RejectedRow(line, f"expected {width} columns, found {len(cells)}")
            reasons = []
            external_id = cells[i_lead].strip()
            if not external_id:
                reasons.append(f"empty lead id (column '{name['lead_id']}')")
            elif len(external_id) > MAX_EXTERNAL_ID_LENGTH or "\x00" in external_id:
                reasons.append(f"lead id longer than {MAX_EXTERNAL_ID_LENGTH} characters or with a NUL byte "
                               f"(column '{name['lead_id']}')")
            try:
                occurred_at = parse_timestamp(cells[i_at])
            except ValueError as exc:
                reasons.append(f"{exc} (column '{name['occurred_at']}')")
                occurred_at = _EPOCH
            value = None
            if i_value is not None:
                try:
                    value = parse_value(cells[i_value])
                except ValueError as exc:
                    reasons.append(f"{exc} (column '{name['value']}')")
            kind = default_type
            if i_type is not None:
                cell = cells[i_type].strip().lower()
                if cell:
                    kind = cell if cell in _TYPES else None
                    if kind is None:
                        reasons.append(f"unknown type '{cells[i_type].strip()}' (column '{name['type']}'; "
                                       f"expected one of: {', '.join(sorted(_TYPES))})")
                elif kind is None:
                    reasons.append(f"empty type (column '{name['type']}') and no --type to fall back on")
            channel = None
            if i_channel is not None:
                channel = cells[i_channel].strip().lower() or None
                if channel is not None and channel not in _CHANNELS:
                    reasons.append(f"unknown channel '{cells[i_channel].strip()}' (column '{name['channel']}'; "
                                   f"expected one of: {', '.join(sorted(_CHANNELS))})")
            campaign_id = None
            if i_campaign is not None and (cell := cells[i_campaign].strip()):
                try:
                    campaign_id = UUID(cell)
                except ValueError:
                    reasons.append(f"campaign id '{cell}' is not a UUID (column '{name['campaign_id']}')")
            conversation_id = None
            if i_conversation is not None:
                conversation_id = cells[i_conversation].strip() or None
                if conversation_id is not None and (
                        len(conversation_id) > MAX_CONVERSATION_ID_LENGTH or "\x00" in conversation_id):
                    reasons.append(f"conversation id longer than {MAX_CONVERSATION_ID_LENGTH} characters or with a "
                                   f"NUL byte (column '{name['conversation_id']}')")
            if reasons:
                return RejectedRow(line, "; ".join(reasons))
            return ParsedRow(line, external_id, kind, channel, campaign_id, conversation_id, value, occurred_at)

        return parse


_SEPARATOR_NAMES = {",": "commas", "\t": "tabs", None: "whitespace"}


def _targets_of(mapping: dict[str, str], column: str) -> list[str]:
    return [target for target, mapped in mapping.items() if mapped == column]


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    """What an import did. ``rows_read == imported + skipped_duplicates + len(rejected)``."""

    path: Path
    rows_read: int = 0
    imported: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    skipped_duplicates: int = 0
    leads_created: int = 0
    partitions_created: int = 0
    elapsed_s: float = 0.0

    def summary(self) -> str:
        return (f"{self.path}: {self.rows_read:,} rows read, {self.imported:,} imported, "
                f"{len(self.rejected):,} rejected, {self.skipped_duplicates:,} duplicates skipped; "
                f"{self.leads_created:,} leads created; {self.elapsed_s:.1f} s")


@dataclass
class _BatchOutcome:
    inserted: int = 0
    leads_created: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    lead_ids: dict[str, UUID] = field(default_factory=dict)


_COPY_COLUMNS = ("line", "lead_id", "type", "channel", "campaign_id", "conversation_id", "value", "occurred_at")

_CREATE_BATCH_TABLE = """
    CREATE TEMP TABLE mas_interaction_import (
        line integer, lead_id uuid, type text, channel text, campaign_id uuid, conversation_id text,
        value numeric(14, 2), occurred_at timestamptz
    ) ON COMMIT DROP"""

# The duplicate check is a LATERAL subquery with LIMIT rather than NOT EXISTS on purpose: the planner
# turns NOT EXISTS into a hash anti-join that reads the whole interactions table for every batch (0.5 s
# per batch at 3M rows, growing with the table), while the LATERAL form can only be a nested loop: one
# probe of idx_interaction_lead in the row's own partition (run-time pruning) per imported row.
_MOVE_NEW_ROWS = """
    WITH inserted AS (
        INSERT INTO interactions (lead_id, type, channel, campaign_id, conversation_id, value, occurred_at)
        SELECT DISTINCT ON (t.lead_id, t.type, t.occurred_at, t.value)
               t.lead_id, t.type, t.channel, t.campaign_id, t.conversation_id, t.value, t.occurred_at
        FROM mas_interaction_import t
        LEFT JOIN LATERAL (
            SELECT true AS found FROM interactions i
            WHERE i.lead_id = t.lead_id AND i.occurred_at = t.occurred_at AND i.type = t.type
              AND i.value IS NOT DISTINCT FROM t.value
            LIMIT 1) stored ON true
        WHERE stored.found IS NULL
        ORDER BY t.lead_id, t.type, t.occurred_at, t.value, t.line
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


async def import_interactions(
    pool: asyncpg.Pool,
    path: Path | str,
    mapping: dict[str, str],
    default_type: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ImportResult:
    """Imports the interactions in ``path`` (see the module docstring for the rules).

    ``progress(done, total)`` is called after each batch and once at the end with ``done == total``;
    both count data lines (physical lines after the header), so the bar ends exactly at 100 %.
    Raises InteractionImportError (a RequestError) before writing anything when the file, mapping or
    type is unusable; StorageError when PostgreSQL fails (earlier batches stay committed).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    source = InteractionFile(path, mapping, default_type)
    result = ImportResult(path=source.path)
    lead_ids: dict[str, UUID] = {}
    known_campaigns: set[UUID] = set()
    ensured_months: set[datetime] = set()
    batch: list[ParsedRow] = []
    since_report = 0

    async def flush(conn: asyncpg.Connection) -> None:
        first_line = batch[0].line
        try:
            async with translated_errors("import interactions"):
                result.partitions_created += await _ensure_partitions(conn, batch, ensured_months)
                outcome = await _write_batch(conn, batch, lead_ids, known_campaigns, source.path.name)
        except StorageError:
            raise
        except asyncpg.PostgresError as exc:
            raise StorageError(
                f"PostgreSQL refused the batch starting at line {first_line} of {source.path}: {exc}. "
                f"{result.imported:,} rows were imported before it; importing the file again skips them",
                {"line": first_line, "imported": result.imported},
            ) from exc
        result.imported += outcome.inserted
        result.leads_created += outcome.leads_created
        result.rejected += outcome.rejected
        result.skipped_duplicates += len(batch) - len(outcome.rejected) - outcome.inserted
        lead_ids.update(outcome.lead_ids)
        batch.clear()

    # Only the database calls are inside translated_errors: an OSError reading the file is not PostgreSQL's.
    async with translated_errors("connect to PostgreSQL for an import"):
        conn = await pool.acquire()
    try:
        for item in source.rows():
            result.rows_read += 1
            since_report += 1
            if isinstance(item, RejectedRow):
                result.rejected.append((item.line, item.reason))
            else:
                batch.append(item)
                if len(batch) >= batch_size:
                    await flush(conn)
            if progress is not None and since_report >= batch_size:
                since_report = 0
                progress(min(source.lines_done, source.total_lines), source.total_lines)
        if batch:
            await flush(conn)
    finally:
        await pool.release(conn)
    result.rejected.sort()
    result.elapsed_s = time.perf_counter() - started
    if progress is not None:
        total = max(source.total_lines, source.lines_done)
        progress(total, total)
    return result


async def _ensure_partitions(conn: asyncpg.Connection, batch: list[ParsedRow], ensured: set[datetime]) -> int:
    """Creates the monthly partitions of the batch's months not yet ensured by this import."""
    months = {row.occurred_at.replace(day=1, hour=0, minute=0, second=0, microsecond=0) for row in batch} - ensured
    if not months:
        return 0
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _IMPORT_LOCK_KEY)
        created = await conn.fetchval(
            "SELECT coalesce(sum(mas_ensure_interaction_partitions(m, m)), 0) FROM unnest($1::timestamptz[]) AS m",
            sorted(months),
        )
    ensured |= months
    return int(created)


async def _write_batch(
    conn: asyncpg.Connection,
    batch: list[ParsedRow],
    lead_ids: dict[str, UUID],
    known_campaigns: set[UUID],
    file_name: str,
) -> _BatchOutcome:
    """One transaction: check campaigns, create missing leads, COPY, move the new rows into interactions.

    ``lead_ids`` and ``known_campaigns`` are caches from earlier (committed) batches; this batch's
    additions are returned in the outcome (leads) or added after the checks (campaigns, which can
    only disappear by a concurrent delete, which the foreign key then reports).
    """
    outcome = _BatchOutcome()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _IMPORT_LOCK_KEY)
        wanted_campaigns = {row.campaign_id for row in batch if row.campaign_id is not None} - known_campaigns
        if wanted_campaigns:
            found = {r["id"] for r in await conn.fetch(
                "SELECT id FROM campaigns WHERE id = ANY($1::uuid[])", list(wanted_campaigns))}
            known_campaigns |= found
            if missing := wanted_campaigns - found:
                outcome.rejected = [(row.line, f"campaign {row.campaign_id} does not exist")
                                    for row in batch if row.campaign_id in missing]
                batch = [row for row in batch if row.campaign_id not in missing]

        unknown = list({row.external_id for row in batch if row.external_id not in lead_ids})
        if unknown:
            outcome.lead_ids = await _lead_ids(conn, unknown)
            to_create = [e for e in unknown if e not in outcome.lead_ids]
            if to_create:
                created = await conn.fetch(
                    _CREATE_LEADS, to_create, [placeholder_email(e) for e in to_create], PLACEHOLDER_NAME,
                    PLACEHOLDER_INDUSTRY, PLACEHOLDER_COMPANY_SIZE, PLACEHOLDER_COUNTRY, PLACEHOLDER_SOURCE,
                    file_name, PLACEHOLDER_STATUS,
                )
                outcome.leads_created = len(created)
                outcome.lead_ids.update((r["external_id"], r["id"]) for r in created)
                if raced := [e for e in to_create if e not in outcome.lead_ids]:  # created meanwhile by others
                    outcome.lead_ids.update(await _lead_ids(conn, raced))

        if not batch:
            return outcome
        new_ids = outcome.lead_ids
        await conn.execute(_CREATE_BATCH_TABLE)
        await conn.copy_records_to_table(
            "mas_interaction_import",
            records=[(row.line, lead_ids.get(row.external_id) or new_ids[row.external_id], row.type, row.channel,
                      row.campaign_id, row.conversation_id, row.value, row.occurred_at) for row in batch],
            columns=_COPY_COLUMNS,
        )
        outcome.inserted = await conn.fetchval(_MOVE_NEW_ROWS)
    return outcome


async def _lead_ids(conn: asyncpg.Connection, external_ids: list[str]) -> dict[str, UUID]:
    rows = await conn.fetch("SELECT external_id, id FROM leads WHERE external_id = ANY($1::text[])", external_ids)
    return {r["external_id"]: r["id"] for r in rows}


# ---------------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------------


class TextProgressBar:
    """A ``progress(done, total)`` callback drawing ``[#####     ] 35,000/70,000 rows`` on stderr.

    Redraws at most once per ``min_interval_s`` (the last update, done == total, is always drawn).
    On a terminal it redraws one line in place and ``close()`` ends that line; elsewhere (a log file,
    a pipe) each drawing is a line of its own.
    """

    def __init__(self, stream: TextIO | None = None, *, width: int = 30, unit: str = "rows",
                 min_interval_s: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self.width = width
        self.unit = unit
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._last_drawn_at: float | None = None
        self._last_state: tuple[int, int] | None = None
        self._drawn_width = 0

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def render(self, done: int, total: int) -> str:
        filled = self.width if total <= 0 else min(self.width, self.width * done // total)
        return f"[{'#' * filled}{' ' * (self.width - filled)}] {done:,}/{total:,} {self.unit}"

    def __call__(self, done: int, total: int) -> None:
        if (done, total) == self._last_state:
            return
        now = self._clock()
        final = done >= total
        if not final and self._last_drawn_at is not None and now - self._last_drawn_at < self.min_interval_s:
            return
        self._last_drawn_at, self._last_state = now, (done, total)
        text = self.render(done, total)
        stream = self.stream
        if self._isatty(stream):
            stream.write("\r" + text.ljust(self._drawn_width))
            self._drawn_width = len(text)
        else:
            stream.write(text + "\n")
        stream.flush()

    def close(self) -> None:
        """Ends the line drawn on a terminal; harmless when nothing was drawn."""
        if self._drawn_width:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn_width = 0

    def __enter__(self) -> TextProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _isatty(stream: TextIO) -> bool:
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False
