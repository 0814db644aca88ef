"""The interaction window (domain/interaction.py) and how the file import applies it, without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from marketing_agents.domain.interaction import InteractionWindow, partition_month
from marketing_agents.memory.interaction_file import InteractionFile, ParsedRow, RejectedRow

WINDOW = InteractionWindow(date(2000, 1, 1), 3)
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_occurred_at_from_the_earliest_day_to_a_few_minutes_ahead_is_inside():
    assert WINDOW.problem(datetime(2000, 1, 1, tzinfo=UTC), NOW) is None
    assert WINDOW.problem(NOW + timedelta(minutes=4), NOW) is None


def test_before_the_earliest_day_or_beyond_the_clock_skew_is_outside_and_says_why():
    early = WINDOW.problem(datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), NOW)
    assert early is not None and "before 2000-01-01" in early and "MAS_INTERACTIONS_EARLIEST" in early
    # Midnight of the earliest day in UTC: an hour before it, said in Berlin, is still 1999 in UTC.
    assert WINDOW.problem(datetime(2000, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))), NOW) is not None
    late = WINDOW.problem(NOW + timedelta(minutes=6), NOW)
    assert late is not None and "in the future" in late


def test_new_partitions_are_capped_and_the_refusal_names_the_months_and_the_setting():
    missing = [datetime(2004, m, 1, tzinfo=UTC) for m in (1, 2, 3)]
    assert WINDOW.too_many_new_partitions(missing) is None
    problem = WINDOW.too_many_new_partitions([*missing, datetime(2005, 6, 1, tzinfo=UTC)], per="file")
    assert problem is not None
    assert "4 months that have no partition yet (2004-01 to 2005-06)" in problem
    assert "one file may add at most 3 (setting MAS_MAX_NEW_PARTITIONS_PER_REQUEST)" in problem


def test_a_partition_month_is_the_utc_month():
    assert partition_month(datetime(2024, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))) == \
        datetime(2024, 2, 1, tzinfo=UTC)


def test_identical_rows_of_a_file_are_numbered_and_rows_outside_the_window_rejected(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_text("id,date,amount\n"
                    "c1,2024-01-05,10\n"
                    "c1,2024-01-05,10.00\n"     # the same purchase again: a second one
                    "c1,2024-01-05,11\n"
                    "c2,2024-01-05,10\n"
                    "c1,1999-01-01,10\n"        # too early
                    "c1,2024-01-05,10\n", encoding="utf-8")
    source = InteractionFile(path, {"lead_id": "id", "occurred_at": "date", "value": "amount"}, "purchase",
                             WINDOW)

    items = list(source.rows())

    assert [(i.line, i.occurrence) for i in items if isinstance(i, ParsedRow)] == [
        (2, 1), (3, 2), (4, 1), (5, 1), (7, 3)]
    [rejected] = [i for i in items if isinstance(i, RejectedRow)]
    assert rejected.line == 6 and "before 2000-01-01" in rejected.reason and "column 'date'" in rejected.reason
    assert source.months() == {datetime(2024, 1, 1, tzinfo=UTC)}
    assert [(i.line, i.occurrence) for i in source.rows() if isinstance(i, ParsedRow)][-1] == (7, 3)  # each pass
