"""Follow-ups reach a lead in business hours, in the lead's time zone, and not too often."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from marketing_agents.actors.engagement import ContactPolicy

POLICY = ContactPolicy(day_start_hour=9, day_end_hour=18, weekdays_only=True, max_per_week=3)
BERLIN, TOKYO = ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Tokyo")
# Wednesday 2026-11-25, 22:30 in Berlin (21:30 UTC).
LATE_EVENING = datetime(2026, 11, 25, 21, 30, tzinfo=UTC)


def local(dt: datetime, zone: ZoneInfo) -> datetime:
    return dt.astimezone(zone)


def test_the_first_touchpoint_goes_out_at_once_whatever_the_hour():
    assert POLICY.schedule([timedelta(0)], LATE_EVENING, BERLIN) == [LATE_EVENING]


def test_a_follow_up_due_at_night_moves_to_nine_the_next_morning_local_time():
    _, follow_up = POLICY.schedule([timedelta(0), timedelta(hours=1)], LATE_EVENING, BERLIN)
    assert local(follow_up, BERLIN) == datetime(2026, 11, 26, 9, 0, tzinfo=BERLIN)


def test_the_same_moment_is_judged_in_each_leads_own_zone():
    in_tokyo = POLICY.next_allowed(LATE_EVENING + timedelta(hours=1), TOKYO)  # 07:30 Thursday in Tokyo
    assert local(in_tokyo, TOKYO) == datetime(2026, 11, 26, 9, 0, tzinfo=TOKYO)


def test_weekends_move_to_monday_morning():
    saturday_noon = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    assert local(POLICY.next_allowed(saturday_noon, BERLIN), BERLIN) == datetime(2026, 11, 30, 9, 0, tzinfo=BERLIN)


def test_no_more_than_the_weekly_cap_in_any_seven_days_and_order_is_kept():
    monday_10 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    offsets = [timedelta(hours=h) for h in (0, 1, 2, 3, 4, 5)]
    times = POLICY.schedule(offsets, monday_10, BERLIN)
    assert times == sorted(times)
    for t in times:
        assert sum(1 for other in times if timedelta(0) <= t - other < timedelta(days=7)) <= 3
    for t in times[1:]:
        hour = local(t, BERLIN)
        assert 9 <= hour.hour < 18 and hour.weekday() < 5
