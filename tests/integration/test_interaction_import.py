"""Interaction import: pure parsing (no database), then against a real PostgreSQL.

The first half (mapping, separators, dates, values, bad rows and their line numbers, placeholder e-mails,
the progress bar) needs no store; it lives here rather than in tests/unit/test_interaction_import.py
because two test modules with one basename collide under this project's pytest import mode.

The second half imports into the session's PostgreSQL: rows, leads, partitions, duplicates and 70,000
purchases. Other tests TRUNCATE interactions, so every test here uses its own external ids and asserts
only on them. Months used here (2018, 2019) are not used by other tests: test_migrations relies on
2015-06 having no partition yet.
"""

from __future__ import annotations

import io
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
from email_validator import validate_email

from marketing_agents.errors import RequestError
from marketing_agents.memory.import_progress import TextProgressBar
from marketing_agents.memory.interaction_file import (
    InteractionFile,
    InteractionImportError,
    ParsedRow,
    RejectedRow,
    detect_separator,
    parse_mapping,
    parse_timestamp,
    parse_value,
    split_line,
)
from marketing_agents.memory.interaction_import import import_interactions
from marketing_agents.memory.interaction_writer import PLACEHOLDER_COUNTRY, placeholder_email

MAPPING = {"lead_id": "customer_id", "occurred_at": "date", "value": "dollar_value"}


def write(tmp_path: Path, text: str, name: str = "purchases.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def parse_all(path: Path, mapping: dict[str, str] = MAPPING, default_type: str | None = "purchase"):
    source = InteractionFile(path, mapping, default_type)
    items = list(source.rows())
    good = [i for i in items if isinstance(i, ParsedRow)]
    bad = {i.line: i.reason for i in items if isinstance(i, RejectedRow)}
    return source, good, bad


# --- mapping ------------------------------------------------------------------------------------


def test_a_mapping_is_parsed_into_targets_and_columns():
    assert parse_mapping(" lead_id=customer_id, occurred_at = date ,value=dollar value,") == {
        "lead_id": "customer_id", "occurred_at": "date", "value": "dollar value"}


@pytest.mark.parametrize(("text", "fragments"), [
    ("lead_id=a,occurred_at=b,price=c,when=d", ["unknown targets 'price', 'when'", "known: lead_id"]),
    ("lead_id=a", ["required target 'occurred_at' is not mapped"]),
    ("value=a", ["required targets 'lead_id', 'occurred_at' are not mapped"]),
    ("lead_id=a,occurred_at", ["'occurred_at' is not TARGET=COLUMN"]),
    ("lead_id=a,occurred_at=b,lead_id=c", ["'lead_id' is mapped twice"]),
    ("lead_id=,occurred_at=b", ["'lead_id=' is not TARGET=COLUMN"]),
    ("", ["it is empty"]),
])
def test_a_bad_mapping_is_refused_naming_every_problem(text, fragments):
    with pytest.raises(ValueError) as caught:
        parse_mapping(text)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert isinstance(caught.value, RequestError)


# --- separators ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "separator"), [
    ("customer_id,date,dollar_value\n", ","),
    ("customer_id\tdate\tdollar value\n", "\t"),
    ("customer id\tdate,x\n", "\t"),
    ("customer_id   date \t", "\t"),
    ("customer_id   date  dollar_value\n", None),
])
def test_the_separator_is_detected_from_the_header(header, separator):
    assert detect_separator(header) == separator


def test_lines_are_split_by_the_separator_honouring_quotes():
    assert split_line('c1,"Acme, Inc",3\r\n', ",") == ["c1", "Acme, Inc", "3"]
    assert split_line("c1\t2024-01-05\t3\n", "\t") == ["c1", "2024-01-05", "3"]
    assert split_line("  c1   2024-01-05 \t 3\n", None) == ["c1", "2024-01-05", "3"]


@pytest.mark.parametrize("text", [
    "customer_id,date,dollar_value\nc1,2024-01-05,10\nc2,20240106,20.5\n",
    "customer_id\tdate\tdollar_value\nc1\t2024-01-05\t10\nc2\t20240106\t20.5\n",
    "customer_id  date        dollar_value\nc1   2024-01-05  10\n\n   c2 20240106\t20.5",
    "\ufeffcustomer_id,date,dollar_value\r\nc1,2024-01-05,10\r\nc2,20240106,20.5\r\n",
])
def test_comma_tab_and_whitespace_files_give_the_same_rows(tmp_path, text):
    _, good, bad = parse_all(write(tmp_path, text))
    assert bad == {}
    assert [(r.line, r.external_id, r.value, r.occurred_at, r.type) for r in good] == [
        (2, "c1", Decimal("10.00"), datetime(2024, 1, 5, tzinfo=UTC), "purchase"),
        (3 if "\n\n" not in text else 4, "c2", Decimal("20.50"), datetime(2024, 1, 6, tzinfo=UTC), "purchase"),
    ]


# --- dates and values ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-03-05", datetime(2024, 3, 5, tzinfo=UTC)),
    ("2024-03-05T14:30:00", datetime(2024, 3, 5, 14, 30, tzinfo=UTC)),
    ("2024-03-05 14:30", datetime(2024, 3, 5, 14, 30, tzinfo=UTC)),
    ("2024-03-05T14:30:00Z", datetime(2024, 3, 5, 14, 30, tzinfo=UTC)),
    ("2024-03-05T14:30:00+02:00", datetime(2024, 3, 5, 12, 30, tzinfo=UTC)),
    ("2024-03-05T14:30:00.250-05:00", datetime(2024, 3, 5, 19, 30, 0, 250000, tzinfo=UTC)),
    ("20240305", datetime(2024, 3, 5, tzinfo=UTC)),
    ("1709649000", datetime(2024, 3, 5, 14, 30, tzinfo=UTC)),
    ("1709649000.5", datetime(2024, 3, 5, 14, 30, 0, 500000, tzinfo=UTC)),
    ("  20240305 ", datetime(2024, 3, 5, tzinfo=UTC)),
])
def test_dates_in_every_accepted_format_become_utc(text, expected):
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


def test_an_offset_keeps_the_instant():
    assert parse_timestamp("2024-03-05T23:30:00-01:00") == datetime(2024, 3, 6, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "empty date"),
    ("05/03/2024", "unparseable date '05/03/2024'"),
    ("2024-02-30", "unparseable date"),
    ("20241301", "'20241301' is not a valid YYYYMMDD date"),
    ("1709649000123", "Unix milliseconds"),
    ("12345", "has 5 digits"),
    ("yesterday", "unparseable date"),
])
def test_bad_dates_say_why(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_timestamp(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("", None), ("0", Decimal("0.00")), ("12", Decimal("12.00")), (" 12.5 ", Decimal("12.50")),
    ("99.990", Decimal("99.99")), ("1e3", Decimal("1000.00")),
])
def test_values(text, expected):
    assert parse_value(text) == expected


@pytest.mark.parametrize(("text", "fragment"), [
    ("-1", "is negative"), ("abc", "is not a number"), ("NaN", "is not a number"), ("12,50", "is not a number"),
    ("1.005", "more than 2 decimal places"), ("1000000000000", "too large"),
])
def test_bad_values_say_why(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_value(text)


# --- rows ---------------------------------------------------------------------------------------


BAD_FILE = """customer_id,date,dollar_value,kind,medium,campaign
c1,2024-01-05,10,purchase,email,
c2,not-a-date,10,purchase,,
c3,2024-01-05,-5,purchase,,
,2024-01-05,5,purchase,,
c5,2024-01-05,5,teleport,,
c6,2024-01-05,5
c7,2024-01-05,abc,purchase,fax,nope

c8,1704067200,,,,
c9,20240105,7.25,CLICK,LinkedIn,3f2b8e4c-1a2b-4c3d-8e9f-0a1b2c3d4e5f
"c10","2024-01-05T10:00:00+01:00","1,5",purchase,,
"""


def test_bad_rows_are_rejected_with_their_line_and_reasons_and_good_rows_kept(tmp_path):
    mapping = {**MAPPING, "type": "kind", "channel": "medium", "campaign_id": "campaign"}
    source, good, bad = parse_all(write(tmp_path, BAD_FILE), mapping, default_type="visit")
    assert set(bad) == {3, 4, 5, 6, 7, 8, 12}
    assert "unparseable date 'not-a-date'" in bad[3] and "(column 'date')" in bad[3]
    assert "value '-5' is negative" in bad[4]
    assert "empty lead id (column 'customer_id')" in bad[5]
    assert "unknown type 'teleport'" in bad[6]
    assert bad[7] == "expected 6 columns, found 3"
    assert all(f in bad[8] for f in ("value 'abc' is not a number", "unknown channel 'fax'", "'nope' is not a UUID"))
    assert "value '1,5' is not a number" in bad[12]
    assert [(r.line, r.external_id, r.type, r.channel, r.campaign_id, r.value) for r in good] == [
        (2, "c1", "purchase", "email", None, Decimal("10.00")),
        (10, "c8", "visit", None, None, None),  # the empty type cell falls back on --type
        (11, "c9", "click", "linkedin", UUID("3f2b8e4c-1a2b-4c3d-8e9f-0a1b2c3d4e5f"), Decimal("7.25")),
    ]
    assert good[1].occurred_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert source.total_lines == source.lines_done == 11


def test_an_empty_type_cell_without_a_default_is_rejected(tmp_path):
    path = write(tmp_path, "id,at,type\na,2024-01-01,open\nb,2024-01-01,\n")
    _, good, bad = parse_all(path, {"lead_id": "id", "occurred_at": "at", "type": "type"}, default_type=None)
    assert [r.external_id for r in good] == ["a"]
    assert "empty type (column 'type') and no --type" in bad[3]


def test_a_quoted_field_spanning_lines_keeps_later_line_numbers_physical(tmp_path):
    path = write(tmp_path, 'id,at,note\na,2024-01-01,"two\nlines"\nb,bad,x\nc,2024-01-02,x\n')
    _, good, bad = parse_all(path, {"lead_id": "id", "occurred_at": "at"})
    assert [(r.line, r.external_id) for r in good] == [(2, "a"), (5, "c")]
    assert list(bad) == [4]


def test_whitespace_files_count_columns_per_line(tmp_path):
    path = write(tmp_path, "id at value\na 2024-01-01 3\nb 2024-01-01 3 extra\nc 2024-01-01\n")
    _, good, bad = parse_all(path, {"lead_id": "id", "occurred_at": "at", "value": "value"})
    assert [r.line for r in good] == [2]
    assert bad == {3: "expected 3 columns, found 4", 4: "expected 3 columns, found 2"}


# --- file-level errors, before anything is written ----------------------------------------------


def test_columns_missing_from_the_header_are_named_with_a_suggestion(tmp_path):
    path = write(tmp_path, "customer_id,Date,amount\nc1,2024-01-01,1\n")
    with pytest.raises(InteractionImportError) as caught:
        InteractionFile(path, MAPPING, "purchase")
    message = str(caught.value)
    assert "column 'date' (mapped to 'occurred_at') is not in the header; did you mean 'Date'?" in message
    assert "column 'dollar_value' (mapped to 'value') is not in the header" in message
    assert "'customer_id', 'Date', 'amount' (separated by commas)" in message


def test_a_mapped_column_that_appears_twice_in_the_header_is_refused(tmp_path):
    path = write(tmp_path, "customer_id,date,date,dollar_value\nc1,2024-01-01,2024-01-02,1\n")
    with pytest.raises(InteractionImportError, match="column 'date' appears more than once in the header"):
        InteractionFile(path, MAPPING, "purchase")


def test_unknown_targets_a_missing_type_and_an_unknown_default_type_are_refused(tmp_path):
    path = write(tmp_path, "customer_id,date\nc1,2024-01-01\n")
    with pytest.raises(InteractionImportError, match="unknown target 'when'"):
        InteractionFile(path, {"lead_id": "customer_id", "occurred_at": "date", "when": "date"}, "purchase")
    with pytest.raises(InteractionImportError, match="no interaction type: map a type column"):
        InteractionFile(path, {"lead_id": "customer_id", "occurred_at": "date"}, None)
    with pytest.raises(InteractionImportError, match="unknown --type 'sale'"):
        InteractionFile(path, {"lead_id": "customer_id", "occurred_at": "date"}, "sale")


@pytest.mark.parametrize(("content", "fragment"), [
    (b"", "the file is empty"),
    (b"\n2024-01-01,a\n", "line 1 is blank"),
    (b"customer_id,date,dollar_value\nc1,2024-01-01,1\nc\xe9,2024-01-01,1\n", "line 3 is not valid UTF-8"),
])
def test_unusable_files_are_refused(tmp_path, content, fragment):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    with pytest.raises(InteractionImportError, match=fragment):
        InteractionFile(path, MAPPING, "purchase")


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(InteractionImportError, match="cannot read .*nope.csv"):
        InteractionFile(tmp_path / "nope.csv", MAPPING, "purchase")


# --- placeholder leads and the progress bar -----------------------------------------------------


@pytest.mark.parametrize(("external_id", "expected"), [
    ("CUST-0042", "cust-0042@imported.example"),
    ("a.b_c+d", "a.b_c+d@imported.example"),
])
def test_placeholder_emails_use_a_safe_external_id(external_id, expected):
    assert placeholder_email(external_id) == expected


@pytest.mark.parametrize("external_id", ["acme corp/42", "..x", "ü-1", "x" * 65, "a@b"])
def test_placeholder_emails_hash_anything_else_and_always_validate(external_id):
    email = placeholder_email(external_id)
    assert email.startswith("lead-") and email.endswith("@imported.example")
    assert placeholder_email(external_id) == email
    validate_email(email, check_deliverability=False)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_progress_bar_draws_at_most_ten_times_a_second_and_always_the_end():
    out, clock = io.StringIO(), FakeClock()
    bar = TextProgressBar(out, width=10, clock=clock)
    bar(0, 70_000)
    clock.now = 0.05
    bar(10_000, 70_000)  # too soon: skipped
    clock.now = 0.2
    bar(35_000, 70_000)
    clock.now = 0.21
    bar(70_000, 70_000)  # the end is always drawn
    bar(70_000, 70_000)  # but only once
    bar.close()
    assert out.getvalue().splitlines() == [
        "[          ] 0/70,000 rows",
        "[#####     ] 35,000/70,000 rows",
        "[##########] 70,000/70,000 rows",
    ]


def test_the_progress_bar_redraws_in_place_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, clock = Terminal(), FakeClock()
    with TextProgressBar(out, width=4, clock=clock) as bar:
        bar(5, 10)
        clock.now = 1
        bar(10, 10)
    assert out.getvalue() == "\r[##  ] 5/10 rows\r[####] 10/10 rows\n"


def test_the_progress_bar_writes_to_stderr_by_default(capsys):
    TextProgressBar(width=2)(1, 1)
    assert capsys.readouterr().err == "[##] 1/1 rows\n"

# ===============================================================================================
# Against PostgreSQL
# ===============================================================================================

@pytest.fixture
async def tag(pool):
    """A prefix for this test's external ids; its leads (and so their interactions) go afterwards."""
    tag = f"imp-{uuid.uuid4().hex[:8]}"
    yield tag
    await pool.execute("DELETE FROM leads WHERE external_id LIKE $1", f"{tag}-%")


async def existing_lead(pool, external_id: str) -> uuid.UUID:
    return await pool.fetchval(
        """INSERT INTO leads (id, external_id, email, first_name, last_name, company, job_title, industry,
                              company_size, country, source, consent, status)
           VALUES (gen_random_uuid(), $1, 'x@y.io', 'X', 'Y', 'Co', 'CEO', 'software', 5, 'DE', 'web_form', '{}',
                   'triaged') RETURNING id""",
        external_id,
    )


async def stored(pool, tag: str) -> list[tuple]:
    rows = await pool.fetch(
        """SELECT l.external_id, i.type, i.value, i.occurred_at, i.channel, i.tableoid::regclass::text AS part
           FROM interactions i JOIN leads l ON l.id = i.lead_id
           WHERE l.external_id LIKE $1 ORDER BY l.external_id, i.occurred_at""",
        f"{tag}-%",
    )
    return [(r["external_id"].removeprefix(f"{tag}-"), r["type"], r["value"], r["occurred_at"], r["channel"], r["part"])
            for r in rows]


def small_file(tmp_path, tag: str):
    path = tmp_path / "purchases.csv"
    path.write_text(
        "customer_id,date,dollar_value\n"
        f"{tag}-known,2019-03-05T10:30:00+02:00,19.99\n"   # 2
        f"{tag}-known,yesterday,5\n"                       # 3: bad date
        f"{tag}-new1,20190307,100\n"                       # 4
        f"{tag}-new1,2019-03-08,-1\n"                      # 5: negative
        ",2019-03-09,1\n"                                  # 6: no lead id
        f"{tag}-new2,1573000000,\n"                        # 7: 2019-11-06 00:26:40 UTC, no value
        f"{tag}-new2,2019-11-07,5,extra\n"                 # 8: wrong column count
        f"{tag}-new1,2019-03-10,abc\n",                    # 9: not a number
        encoding="utf-8",
    )
    return path


async def test_good_rows_land_in_their_month_with_their_lead_and_bad_rows_are_reported_by_line(pool, tmp_path, tag):
    known = await existing_lead(pool, f"{tag}-known")
    progress: list[tuple[int, int]] = []

    result = await import_interactions(pool, small_file(tmp_path, tag), MAPPING, "purchase", progress=lambda d, t:
                                       progress.append((d, t)))

    assert [line for line, _ in result.rejected] == [3, 5, 6, 8, 9]
    reasons = dict(result.rejected)
    assert "unparseable date 'yesterday'" in reasons[3]
    assert "negative" in reasons[5]
    assert "empty lead id" in reasons[6]
    assert reasons[8] == "expected 3 columns, found 4"
    assert "not a number" in reasons[9]
    assert (result.rows_read, result.imported, result.skipped_duplicates, result.leads_created) == (8, 3, 0, 2)
    assert progress[-1] == (8, 8)
    assert result.elapsed_s > 0
    assert await stored(pool, tag) == [
        ("known", "purchase", Decimal("19.99"), datetime(2019, 3, 5, 8, 30, tzinfo=UTC), None, "interactions_2019_03"),
        ("new1", "purchase", Decimal("100.00"), datetime(2019, 3, 7, tzinfo=UTC), None, "interactions_2019_03"),
        ("new2", "purchase", None, datetime(2019, 11, 6, 0, 26, 40, tzinfo=UTC), None, "interactions_2019_11"),
    ]
    assert await pool.fetchval("SELECT id FROM leads WHERE external_id = $1", f"{tag}-known") == known


async def test_imported_interactions_count_in_their_leads_behaviour_once(pool, tmp_path, tag):
    known = await existing_lead(pool, f"{tag}-known")
    await pool.execute("""INSERT INTO lead_profiles (lead_id, engagement_by_channel, last_activity_at)
                          VALUES ($1, '{"email": 2}', '2019-01-01T00:00:00Z')""", known)
    path = write(tmp_path, "customer_id,date,channel,kind\n"
                           f"{tag}-known,2019-03-05,email,click\n"
                           f"{tag}-known,2019-03-06,email,open\n"
                           f"{tag}-known,2019-03-07,linkedin,reply\n"
                           f"{tag}-known,2019-03-08,,visit\n"
                           f"{tag}-known,2019-03-09,email,unsubscribe\n")
    mapping = {"lead_id": "customer_id", "occurred_at": "date", "channel": "channel", "type": "kind"}
    await import_interactions(pool, path, mapping, None)
    again = await import_interactions(pool, path, mapping, None)
    assert again.imported == 0
    profile = await pool.fetchrow("SELECT engagement_by_channel, last_activity_at FROM lead_profiles WHERE lead_id = $1",
                                  known)
    assert profile["engagement_by_channel"] == {"email": 4, "linkedin": 1}
    assert profile["last_activity_at"] == datetime(2019, 3, 8, tzinfo=UTC)


async def test_unknown_external_ids_get_minimal_placeholder_leads(pool, tmp_path, tag):
    await existing_lead(pool, f"{tag}-known")
    await import_interactions(pool, small_file(tmp_path, tag), MAPPING, "purchase")

    rows = await pool.fetch("SELECT * FROM leads WHERE external_id LIKE $1 ORDER BY external_id", f"{tag}-%")
    assert [r["external_id"] for r in rows] == [f"{tag}-known", f"{tag}-new1", f"{tag}-new2"]
    new1 = rows[1]
    assert new1["email"] == f"{tag}-new1@imported.example"
    assert (new1["first_name"], new1["last_name"], new1["company"], new1["job_title"]) == ("Unknown",) * 4
    assert (new1["industry"], new1["company_size"], new1["country"]) == ("unknown", 1, PLACEHOLDER_COUNTRY)
    assert (new1["source"], new1["consent"], new1["status"]) == ("import", {}, "triaged")
    assert new1["attributes"] == {"placeholder": True, "imported_from": "purchases.csv"}
    assert rows[0]["country"] == "DE"  # an existing lead is left as it was


async def test_importing_the_same_file_again_imports_nothing_new(pool, tmp_path, tag):
    path = small_file(tmp_path, tag)
    first = await import_interactions(pool, path, MAPPING, "purchase")
    before = await stored(pool, tag)

    again = await import_interactions(pool, path, MAPPING, "purchase")

    assert (again.rows_read, again.imported, again.skipped_duplicates, again.leads_created) == (8, 0, 3, 0)
    assert again.rejected == first.rejected
    assert await stored(pool, tag) == before


async def test_identical_rows_in_one_file_are_each_imported_and_once_only_whatever_the_batch_boundaries(
        pool, tmp_path, tag):
    """Two identical rows of a purchase log are two purchases; importing the file again, or after rows
    were appended to it, adds only what is new (issue 14, item 1)."""
    path = tmp_path / "repeats.tsv"
    rows = [("5", "purchase"), ("5", "purchase"), ("5.00", "purchase"), ("6", "purchase"), ("5", "click"),
            ("", "open"), ("", "open")]
    path.write_text("who\twhen\tamount\tkind\n" + "".join(f"{tag}-a\t2019-03-01\t{amount}\t{kind}\n"
                                                        for amount, kind in rows), encoding="utf-8")
    mapping = parse_mapping("lead_id=who,occurred_at=when,value=amount,type=kind")

    result = await import_interactions(pool, path, mapping, None, batch_size=2)

    assert (result.imported, result.skipped_duplicates, result.rejected) == (7, 0, [])
    assert sorted((r[1], r[2]) for r in await stored(pool, tag)) == [
        ("click", Decimal("5.00")), ("open", None), ("open", None),
        ("purchase", Decimal("5.00")), ("purchase", Decimal("5.00")), ("purchase", Decimal("5.00")),
        ("purchase", Decimal("6.00"))]

    again = await import_interactions(pool, path, mapping, None, batch_size=3)
    assert (again.imported, again.skipped_duplicates) == (0, 7)

    with path.open("a", encoding="utf-8") as out:
        out.write(f"{tag}-a\t2019-03-01\t5\tpurchase\n")
    appended = await import_interactions(pool, path, mapping, None, batch_size=2)
    assert (appended.imported, appended.skipped_duplicates) == (1, 7)
    assert await pool.fetchval(
        """SELECT sum(i.value) FROM interactions i JOIN leads l ON l.id = i.lead_id
           WHERE l.external_id = $1 AND i.type = 'purchase'""", f"{tag}-a") == Decimal("26.00")


async def test_a_row_stored_once_before_identical_rows_counted_gets_its_missing_twin(pool, tmp_path, tag):
    """A file imported when identical rows were kept once: importing it again adds the lost occurrence."""
    lead = await existing_lead(pool, f"{tag}-a")
    await pool.execute("INSERT INTO interactions (lead_id, type, value, occurred_at) VALUES ($1, 'purchase', 5, $2)",
                       lead, datetime(2019, 4, 2, tzinfo=UTC))
    path = write(tmp_path, f"customer_id,date,dollar_value\n{tag}-a,2019-04-02,5\n{tag}-a,2019-04-02,5\n")

    result = await import_interactions(pool, path, MAPPING, "purchase")

    assert (result.imported, result.skipped_duplicates) == (1, 1)
    assert [r[2] for r in await stored(pool, tag)] == [Decimal("5.00"), Decimal("5.00")]


async def test_a_campaign_that_does_not_exist_rejects_its_rows_only(pool, tmp_path, tag):
    campaign = await pool.fetchval(
        """INSERT INTO campaigns (id, name, status, channels, budget, start_date)
           VALUES (gen_random_uuid(), $1, 'active', '{email}', 100, '2019-01-01') RETURNING id""", tag)
    missing = uuid.uuid4()
    path = tmp_path / "clicks.csv"
    path.write_text(f"id,at,campaign,channel\n{tag}-a,2019-03-02,{campaign},Email\n{tag}-a,2019-03-03,{missing},\n",
                    encoding="utf-8")
    try:
        result = await import_interactions(
            pool, path, parse_mapping("lead_id=id,occurred_at=at,campaign_id=campaign,channel=channel"), "click")
        assert result.rejected == [(3, f"campaign {missing} does not exist")]
        assert result.imported == 1
        assert [(r[1], r[4]) for r in await stored(pool, tag)] == [("click", "email")]
    finally:
        await pool.execute("DELETE FROM campaigns WHERE id = $1", campaign)


async def test_a_column_missing_from_the_header_stops_the_import_before_anything_is_written(pool, tmp_path, tag):
    path = small_file(tmp_path, tag)
    with pytest.raises(RequestError, match="column 'amount' \\(mapped to 'value'\\) is not in the header"):
        await import_interactions(pool, path, parse_mapping("lead_id=customer_id,occurred_at=date,value=amount"),
                                  "purchase")
    assert await pool.fetchval("SELECT count(*) FROM leads WHERE external_id LIKE $1", f"{tag}-%") == 0


async def test_seventy_thousand_purchases_import_completely(pool, tmp_path, tag):
    rng = random.Random(7)
    start = datetime(2018, 1, 1, tzinfo=UTC)
    path = tmp_path / "purchases_70k.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("customer_id,date,dollar_value\n")
        for n in range(70_000):
            at = start + timedelta(seconds=rng.randrange(365 * 86400))
            when = (at.isoformat(), at.strftime("%Y%m%d"), str(int(at.timestamp())))[n % 3]
            out.write(f"{tag}-{rng.randrange(7_000):05d},{when},{rng.randrange(1, 100_000) / 100}\n")
    bar_output = io.StringIO()
    bar = TextProgressBar(bar_output, min_interval_s=0)

    result = await import_interactions(pool, path, MAPPING, "purchase", progress=bar)

    print(f"\n70,000 purchase rows: {result.summary()}")
    assert result.rejected == []
    assert result.rows_read == 70_000
    assert result.imported + result.skipped_duplicates == 70_000
    assert result.leads_created == await pool.fetchval(
        "SELECT count(*) FROM leads WHERE external_id LIKE $1", f"{tag}-%")
    counts = await pool.fetchrow(
        """SELECT count(*) AS n, count(*) FILTER (WHERE i.tableoid::regclass::text = 'interactions_default') AS dflt
           FROM interactions i JOIN leads l ON l.id = i.lead_id WHERE l.external_id LIKE $1""", f"{tag}-%")
    assert (counts["n"], counts["dflt"]) == (result.imported, 0)
    assert bar_output.getvalue().splitlines()[-1].endswith("] 70,000/70,000 rows")

    again = await import_interactions(pool, path, MAPPING, "purchase")
    print(f"the same file again: {again.summary()}")
    assert (again.imported, again.skipped_duplicates, again.leads_created) == (0, 70_000, 0)
