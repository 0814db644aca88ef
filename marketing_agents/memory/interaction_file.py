"""The interaction file of ``marketing-agents import interactions``, read and checked row by row.

Parsing is kept apart from writing so that every rule about the file can be tested without a
database, and so that a file nothing can be imported from is refused before a connection is taken.

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
    - ``campaign_id``: empty or the UUID of an existing campaign (whether it exists is the writer's
      check). ``conversation_id``: up to 128 chars.
    A row with any bad cell, an empty lead id or the wrong number of columns is rejected with its
    line number and every reason; the other rows are imported. So is a row whose ``occurred_at`` is
    outside the InteractionWindow (domain/interaction: before the setting ``interactions_earliest`` or
    in the future), which would otherwise add a partition for its month.

Identical rows
    Two rows with the same lead, type, channel, campaign, conversation, value and ``occurred_at`` are
    two events (two purchases of the same amount on the same day), so each ParsedRow carries its
    ``occurrence``: 1 for the first row with its content, 2 for the second, and so on through the file.
    Content and occurrence identify a row whatever the batch boundaries, and still do once rows are
    appended to the file; memory/interaction_writer uses them to import a file again without doubling it.
    Counting keeps a 16-byte digest per distinct row (about 100 bytes of memory each).
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from uuid import UUID

from marketing_agents.domain.common import Channel
from marketing_agents.domain.interaction import InteractionType, InteractionWindow, partition_month
from marketing_agents.domain.limits import MAX_CONVERSATION_ID_LENGTH, MAX_EXTERNAL_ID_LENGTH
from marketing_agents.errors import RequestError

REQUIRED_TARGETS = ("lead_id", "occurred_at")
OPTIONAL_TARGETS = ("value", "channel", "campaign_id", "conversation_id", "type")
TARGETS = REQUIRED_TARGETS + OPTIONAL_TARGETS

MAX_VALUE = Decimal(10) ** 12  # numeric(14, 2)
CENT = Decimal("0.01")

_TYPES = {t.value for t in InteractionType}
_CHANNELS = {c.value for c in Channel}
_UNIX_SECONDS = re.compile(r"[0-9]{9,11}(?:\.[0-9]+)?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InteractionImportError(RequestError, ValueError):
    """The user's file, mapping or options are wrong; nothing was written."""


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
    occurrence: int = 1  # the how-manieth row of the file with this content (see "Identical rows" above)


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    reason: str


class InteractionFile:
    """A delimited file checked against a mapping: header read, separator detected, columns resolved.

    Construction raises InteractionImportError for anything that would make every row fail (missing
    file, no header, unknown targets, columns missing from the header, no type, invalid UTF-8), so
    nothing is written for such a file. ``rows()`` then yields a ParsedRow or a RejectedRow per
    non-blank data line; ``lines_done`` follows how many data lines it has consumed. ``window`` bounds
    ``occurred_at``, judged against the clock at construction so that every pass over the file agrees.
    """

    def __init__(self, path: Path | str, mapping: dict[str, str], default_type: str | None = None,
                 window: InteractionWindow | None = None) -> None:
        self.path = Path(path)
        self.mapping = dict(mapping)
        self.window = window
        self.now = datetime.now(UTC)
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

    def months(self) -> set[datetime]:
        """The months (first instants, UTC) of the rows that would be imported: one pass over the file, so
        that partitions can be judged before anything is written."""
        return {partition_month(item.occurred_at) for item in self._rows(self._row_parser(count=False))
                if isinstance(item, ParsedRow)}

    def rows(self) -> Iterator[ParsedRow | RejectedRow]:
        return self._rows(self._row_parser(count=True))

    def _rows(self, parse: Callable[[int, list[str]], ParsedRow | RejectedRow]) -> Iterator[ParsedRow | RejectedRow]:
        self.lines_done = 0
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

    def _row_parser(self, *, count: bool) -> Callable[[int, list[str]], ParsedRow | RejectedRow]:
        """A parser of one row; with ``count``, it numbers identical rows (one counter per pass over the file)."""
        width = len(self.columns)
        window, now = self.window, self.now
        seen: dict[bytes, int] = {}
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
            else:
                if window is not None and (problem := window.problem(occurred_at, now)):
                    reasons.append(f"{problem} (column '{name['occurred_at']}')")
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
            if kind is None:  # __init__ demands a type column or --type, and an empty or unknown cell is a reason above
                raise RuntimeError(f"line {line}: no interaction type and no reason recorded")
            occurrence = 1
            if count:
                content = (external_id, kind, channel, campaign_id, conversation_id, value, occurred_at)
                digest = hashlib.blake2b(repr(content).encode(), digest_size=16).digest()
                occurrence = seen[digest] = seen.get(digest, 0) + 1
            return ParsedRow(line, external_id, kind, channel, campaign_id, conversation_id, value, occurred_at,
                             occurrence)

        return parse


_SEPARATOR_NAMES = {",": "commas", "\t": "tabs", None: "whitespace"}


def _targets_of(mapping: dict[str, str], column: str) -> list[str]:
    return [target for target, mapped in mapping.items() if mapped == column]


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)

