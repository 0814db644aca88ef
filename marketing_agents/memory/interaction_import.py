"""Bulk import of interactions from a delimited text file: ``marketing-agents import interactions FILE``.

This module only runs an import: it reads the file, hands rows to the writer in batches and reports
progress. The rules live with the part they concern, so each can change and be tested alone:
- the file, the ``--map`` mapping, the date and value formats and why a row is rejected:
  memory/interaction_file (no database needed);
- placeholder leads, batches, duplicates (importing a file twice adds nothing): memory/interaction_writer,
  whose statements are in stores/postgres_interaction_import;
- the progress bar: memory/import_progress.

Rows are written in batches of 10,000 by default. The file is checked before a connection is taken,
so a file nothing could be imported from writes nothing. Rows dated outside the InteractionWindow
(domain/interaction; the settings ``interactions_earliest`` and ``max_new_partitions_per_request``) are
rejected with their line; a file whose rows fall in more months without a partition than the window
allows is refused after one reading pass, before anything is written (the error says which months
and which setting raises the cap).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from marketing_agents.domain.interaction import InteractionWindow
from marketing_agents.memory.import_progress import Progress
from marketing_agents.memory.interaction_file import InteractionFile, InteractionImportError, ParsedRow, RejectedRow
from marketing_agents.memory.interaction_writer import InteractionWriter
from marketing_agents.settings import get_settings
from marketing_agents.stores.postgres import translated_errors

DEFAULT_BATCH_SIZE = 10_000


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


async def import_interactions(
    pool: asyncpg.Pool,
    path: Path | str,
    mapping: dict[str, str],
    default_type: str | None = None,
    progress: Progress | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    window: InteractionWindow | None = None,
) -> ImportResult:
    """Imports the interactions in ``path`` (the rules: memory/interaction_file, memory/interaction_writer).

    ``progress(done, total)`` is called after each batch and once at the end with ``done == total``;
    both count data lines (physical lines after the header), so the bar ends exactly at 100 %.
    Raises InteractionImportError (a RequestError) before writing anything when the file, mapping or
    type is unusable or the file would add more partitions than ``window`` allows (by default the
    settings'); StorageError when PostgreSQL fails (earlier batches stay committed).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    if window is None:
        settings = get_settings()
        window = InteractionWindow(settings.interactions_earliest, settings.max_new_partitions_per_request)
    source = InteractionFile(path, mapping, default_type, window)
    result = ImportResult(path=source.path)
    batch: list[ParsedRow] = []
    since_report = 0

    async def flush(writer: InteractionWriter) -> None:
        outcome = await writer.write(batch)
        result.imported += outcome.inserted
        result.leads_created += outcome.leads_created
        result.partitions_created += outcome.partitions_created
        result.rejected += outcome.rejected
        result.skipped_duplicates += outcome.skipped_duplicates
        batch.clear()

    # Only the database calls are inside translated_errors: an OSError reading the file is not PostgreSQL's.
    async with translated_errors("connect to PostgreSQL for an import"):
        conn = await pool.acquire()
    try:
        writer = InteractionWriter(conn, source.path)
        if problem := window.too_many_new_partitions(await writer.missing_months(source.months()), per="file"):
            raise InteractionImportError(f"cannot import {source.path}: {problem}",
                                         {"max_new_partitions": window.max_new_partitions})
        for item in source.rows():
            result.rows_read += 1
            since_report += 1
            if isinstance(item, RejectedRow):
                result.rejected.append((item.line, item.reason))
            else:
                batch.append(item)
                if len(batch) >= batch_size:
                    await flush(writer)
            if progress is not None and since_report >= batch_size:
                since_report = 0
                progress(min(source.lines_done, source.total_lines), source.total_lines)
        if batch:
            await flush(writer)
    finally:
        await pool.release(conn)
    result.rejected.sort()
    result.elapsed_s = time.perf_counter() - started
    if progress is not None:
        total = max(source.total_lines, source.lines_done)
        progress(total, total)
    return result
