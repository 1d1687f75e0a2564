"""Business-time arithmetic that SLA clocks are judged on: hours, holidays, DST, night shifts.

Expected values are worked out by hand from the wall clock (and, for the property tests,
from an independent day-by-day count), never from the implementation itself.
"""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connector.calendar import (
    BusinessCalendar,
    CalendarConfig,
    ContinuousCalendar,
    parse_duration,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # 30-minute DST shift
UTC = timezone.utc
WORKWEEK = ("mon", "tue", "wed", "thu", "fri")


def calendar(name: str = "test", **config: object) -> BusinessCalendar:
    return CalendarConfig.model_validate(config).build(name)


BERLIN_OFFICE_CONFIG = {
    "timezone": "Europe/Berlin",
    "working_hours": {day: ["09:00-18:00"] for day in WORKWEEK},
    "holidays": {"country": "DE", "subdivision": "BY"},
}
NEW_YORK_OFFICE_CONFIG = {
    "timezone": "America/New_York",
    "working_hours": {day: ["09:00-17:00"] for day in WORKWEEK},
    "holidays": {"country": "US"},
    "extra_holidays": ["2026-12-24"],
}
SHANGHAI_OFFICE_CONFIG = {
    "timezone": "Asia/Shanghai",
    "working_hours": {day: ["09:00-12:00", "13:00-18:00"] for day in WORKWEEK},
    "holidays": {"country": "CN"},
}
# Every night but Friday's, including Saturday night, which spans both Berlin DST changes.
BERLIN_NIGHT_DESK_CONFIG = {
    "timezone": "Europe/Berlin",
    "working_hours": {day: ["22:00-06:00"] for day in ("sat", "sun", "mon", "tue", "wed", "thu")},
    "holidays": {"country": "DE"},
    "extra_workdays": ["2026-03-27"],
    "make_up_day_hours": "thu",
}
LORD_HOWE_CONFIG = {
    "timezone": "Australia/Lord_Howe",
    "working_hours": {day: ["08:00-20:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    "extra_holidays": ["2026-04-05", "2026-10-04"],
}

BERLIN_OFFICE = calendar("berlin-office", **BERLIN_OFFICE_CONFIG)
NEW_YORK_OFFICE = calendar("new-york-office", **NEW_YORK_OFFICE_CONFIG)
SHANGHAI_OFFICE = calendar("shanghai-office", **SHANGHAI_OFFICE_CONFIG)
BERLIN_NIGHT_DESK = calendar("berlin-night-desk", **BERLIN_NIGHT_DESK_CONFIG)
LORD_HOWE_DESK = calendar("lord-howe", **LORD_HOWE_CONFIG)


def at(zone: ZoneInfo, *fields: int, fold: int = 0) -> datetime:
    return datetime(*fields, tzinfo=zone, fold=fold)


def same_instant(a: datetime, b: datetime) -> bool:
    # Aware datetimes sharing a tzinfo compare by wall clock; compare real instants instead.
    return a.astimezone(UTC) == b.astimezone(UTC)


# --------------------------------------------------------------------------- office hours


def test_ticket_created_friday_evening_gets_its_first_30_minutes_on_monday_morning():
    due = BERLIN_OFFICE.add_business_minutes(at(BERLIN, 2026, 3, 6, 20, 0), 30)
    assert same_instant(due, at(BERLIN, 2026, 3, 9, 9, 30))
    assert due.tzinfo == BERLIN


def test_target_ending_at_closing_time_is_due_at_closing_time_not_next_morning():
    due = BERLIN_OFFICE.add_business_minutes(at(BERLIN, 2026, 3, 6, 17, 30), 30)
    assert same_instant(due, at(BERLIN, 2026, 3, 6, 18, 0))


def test_adding_zero_returns_start_even_outside_business_hours():
    saturday = at(BERLIN, 2026, 3, 7, 11, 0)
    assert same_instant(BERLIN_OFFICE.add_business_minutes(saturday, 0), saturday)
    assert same_instant(BERLIN_OFFICE.add_business_minutes(at(UTC, 2026, 3, 6, 10, 0), 0), at(BERLIN, 2026, 3, 6, 11, 0))


def test_measuring_counts_only_working_spans_and_accepts_any_zone():
    # Monday 08:00 to Tuesday 10:00 Berlin: 9 h on Monday + 1 h on Tuesday.
    assert BERLIN_OFFICE.business_minutes_between(at(BERLIN, 2026, 3, 9, 8, 0), at(BERLIN, 2026, 3, 10, 10, 0)) == 600
    # The same interval given in UTC and New York time.
    assert BERLIN_OFFICE.business_minutes_between(at(UTC, 2026, 3, 9, 7, 0), at(NEW_YORK, 2026, 3, 10, 5, 0)) == 600


def test_measuring_backwards_or_empty_interval_is_zero():
    monday_noon = at(BERLIN, 2026, 3, 9, 12, 0)
    assert BERLIN_OFFICE.business_minutes_between(monday_noon, monday_noon) == 0
    assert BERLIN_OFFICE.business_minutes_between(monday_noon, monday_noon - timedelta(hours=2)) == 0


def test_lunch_break_does_not_count():
    assert SHANGHAI_OFFICE.business_minutes_between(at(SHANGHAI, 2026, 3, 9, 11, 30), at(SHANGHAI, 2026, 3, 9, 13, 30)) == 60
    due = SHANGHAI_OFFICE.add_business_minutes(at(SHANGHAI, 2026, 3, 9, 11, 30), 60)
    assert same_instant(due, at(SHANGHAI, 2026, 3, 9, 13, 30))


def test_seconds_are_counted_exactly():
    start = at(BERLIN, 2026, 3, 9, 9, 0, 0)
    assert BERLIN_OFFICE.business_minutes_between(start, at(BERLIN, 2026, 3, 9, 9, 0, 30)) == 0.5
    assert same_instant(BERLIN_OFFICE.add_business_minutes(start, 0.25), at(BERLIN, 2026, 3, 9, 9, 0, 15))


def test_is_business_time_and_span_boundaries():
    assert BERLIN_OFFICE.is_business_time(at(BERLIN, 2026, 3, 9, 9, 0))  # a span start is inside
    assert not BERLIN_OFFICE.is_business_time(at(BERLIN, 2026, 3, 9, 18, 0))  # a span end is outside
    assert not BERLIN_OFFICE.is_business_time(at(BERLIN, 2026, 3, 7, 12, 0))  # Saturday
    assert not SHANGHAI_OFFICE.is_business_time(at(SHANGHAI, 2026, 3, 9, 12, 30))  # lunch


def test_touching_spans_run_on_without_a_gap():
    desk = calendar(timezone="UTC", working_hours={"mon": ["09:00-12:00", "12:00-13:00"]})
    assert desk.is_business_time(at(UTC, 2026, 3, 9, 12, 0))
    assert desk.business_minutes_between(at(UTC, 2026, 3, 9, 0, 0), at(UTC, 2026, 3, 10, 0, 0)) == 240


def test_next_business_start():
    inside = at(UTC, 2026, 3, 9, 10, 0)
    assert same_instant(BERLIN_OFFICE.next_business_start(inside), inside)
    assert same_instant(BERLIN_OFFICE.next_business_start(at(BERLIN, 2026, 3, 7, 12, 0)), at(BERLIN, 2026, 3, 9, 9, 0))
    assert same_instant(BERLIN_OFFICE.next_business_start(at(BERLIN, 2026, 3, 9, 18, 0)), at(BERLIN, 2026, 3, 10, 9, 0))
    assert same_instant(SHANGHAI_OFFICE.next_business_start(at(SHANGHAI, 2026, 3, 9, 12, 0)), at(SHANGHAI, 2026, 3, 9, 13, 0))
    # Across New Year: 2026-12-31 is Thursday, 2027-01-01 a public holiday, then a weekend.
    assert same_instant(BERLIN_OFFICE.next_business_start(at(BERLIN, 2026, 12, 31, 18, 0)), at(BERLIN, 2027, 1, 4, 9, 0))


def test_business_day_defaults_to_the_longest_weekday_and_can_be_set():
    assert SHANGHAI_OFFICE.business_day_minutes == 480
    longer_monday = calendar(timezone="UTC", working_hours={"mon": ["08:00-20:00"], "tue": ["09:00-17:00"]})
    assert longer_monday.business_day_minutes == 720
    assert calendar(**BERLIN_OFFICE_CONFIG, business_day="8h").business_day_minutes == 480
    assert BERLIN_NIGHT_DESK.business_day_minutes == 480  # overnight span counts fully on its start day


# --------------------------------------------------------------------------- daylight saving


def test_berlin_spring_forward_shortens_the_saturday_night_shift():
    # 2026-03-29 02:00 CET -> 03:00 CEST: the 22:00-06:00 shift lasts 7 real hours.
    night = (at(BERLIN, 2026, 3, 28, 12, 0), at(BERLIN, 2026, 3, 29, 12, 0))
    assert BERLIN_NIGHT_DESK.business_minutes_between(*night) == 7 * 60
    due = BERLIN_NIGHT_DESK.add_business_minutes(at(BERLIN, 2026, 3, 28, 22, 0), 7 * 60)
    assert same_instant(due, at(BERLIN, 2026, 3, 29, 6, 0))
    assert due.utcoffset() == timedelta(hours=2)


def test_berlin_fall_back_lengthens_the_saturday_night_shift():
    # 2026-10-25 03:00 CEST -> 02:00 CET: the 22:00-06:00 shift lasts 9 real hours.
    night = (at(BERLIN, 2026, 10, 24, 12, 0), at(BERLIN, 2026, 10, 25, 12, 0))
    assert BERLIN_NIGHT_DESK.business_minutes_between(*night) == 9 * 60
    # 3 h after 22:00 CEST is 00:00; 4.5 h is the first 02:30, 5.5 h the second 02:30.
    first = BERLIN_NIGHT_DESK.add_business_minutes(at(BERLIN, 2026, 10, 24, 22, 0), 4.5 * 60)
    second = BERLIN_NIGHT_DESK.add_business_minutes(at(BERLIN, 2026, 10, 24, 22, 0), 5.5 * 60)
    assert same_instant(first, at(BERLIN, 2026, 10, 25, 2, 30, fold=0))
    assert same_instant(second, at(BERLIN, 2026, 10, 25, 2, 30, fold=1))
    assert BERLIN_NIGHT_DESK.is_business_time(at(BERLIN, 2026, 10, 25, 2, 30, fold=1))


def test_whole_day_span_on_dst_sundays_is_23_and_25_hours():
    sundays = calendar(timezone="Europe/Berlin", working_hours={"sun": ["00:00-24:00"]})
    assert sundays.business_minutes_between(at(BERLIN, 2026, 3, 28), at(BERLIN, 2026, 3, 30)) == 23 * 60
    assert sundays.business_minutes_between(at(BERLIN, 2026, 10, 24), at(BERLIN, 2026, 10, 26)) == 25 * 60


def test_office_hours_stay_at_local_nine_to_six_across_the_change():
    # Friday 17:00 CET (16:00Z) to Monday 10:00 CEST (08:00Z): 1 h + 1 h, not 2 h +/- 1.
    assert BERLIN_OFFICE.business_minutes_between(at(UTC, 2026, 3, 27, 16, 0), at(UTC, 2026, 3, 30, 8, 0)) == 120
    assert BERLIN_OFFICE.is_business_time(at(UTC, 2026, 3, 30, 7, 0))  # 09:00 CEST
    assert not BERLIN_OFFICE.is_business_time(at(UTC, 2026, 3, 27, 7, 30))  # 08:30 CET


@pytest.mark.parametrize(
    ("sunday", "hours"),
    [(date(2026, 3, 8), 23), (date(2026, 11, 1), 25)],
    ids=["spring-forward", "fall-back"],
)
def test_new_york_dst_days(sunday: date, hours: int):
    whole_sundays = calendar(timezone="America/New_York", working_hours={"sun": ["00:00-24:00"]})
    midnight = datetime.combine(sunday, datetime.min.time(), tzinfo=NEW_YORK)
    next_midnight = datetime.combine(sunday + timedelta(days=1), datetime.min.time(), tzinfo=NEW_YORK)
    assert whole_sundays.business_minutes_between(midnight, next_midnight) == hours * 60
    # A Saturday-night shift 20:00-08:00 spans the change: 11 h in March, 13 h in November.
    night = calendar(timezone="America/New_York", working_hours={"sat": ["20:00-08:00"]})
    saturday_evening = datetime.combine(sunday - timedelta(days=1), datetime.min.time(), tzinfo=NEW_YORK).replace(hour=20)
    sunday_morning = midnight.replace(hour=8)
    assert night.business_minutes_between(saturday_evening, sunday_morning) == (hours - 12) * 60
    assert same_instant(night.add_business_minutes(saturday_evening, (hours - 12) * 60), sunday_morning)


def test_span_starting_in_the_spring_forward_gap_starts_when_clocks_jump():
    early = calendar(timezone="Europe/Berlin", working_hours={"sun": ["02:30-04:00"], "mon": ["09:00-10:00"]})
    # 02:30 never shows on 2026-03-29; the clock passes it at 03:00 CEST, so 1 h remains.
    assert early.business_minutes_between(at(BERLIN, 2026, 3, 29, 0), at(BERLIN, 2026, 3, 29, 12)) == 60
    assert same_instant(early.next_business_start(at(BERLIN, 2026, 3, 29, 0)), at(BERLIN, 2026, 3, 29, 3, 0))
    # A non-existent wall time as input does not crash either (read with the pre-change offset).
    gap_time = at(BERLIN, 2026, 3, 29, 2, 45)
    assert early.is_business_time(gap_time)
    assert early.business_minutes_between(gap_time, at(BERLIN, 2026, 3, 29, 12)) == 15
    skipped = calendar(timezone="Europe/Berlin", working_hours={"sun": ["02:00-03:00"], "mon": ["09:00-10:00"]})
    assert skipped.business_minutes_between(at(BERLIN, 2026, 3, 29), at(BERLIN, 2026, 3, 30)) == 0
    assert same_instant(skipped.next_business_start(at(BERLIN, 2026, 3, 29)), at(BERLIN, 2026, 3, 30, 9, 0))


# --------------------------------------------------------------------------- holidays


def test_cn_national_day_week_is_off():
    # 2026-10-01..03 and 05..07 are holidays, 04 a Sunday; work resumes Thursday 10-08.
    due = SHANGHAI_OFFICE.add_business_minutes(at(SHANGHAI, 2026, 9, 30, 17, 0), 120)
    assert same_instant(due, at(SHANGHAI, 2026, 10, 8, 10, 0))
    assert SHANGHAI_OFFICE.business_minutes_between(at(SHANGHAI, 2026, 10, 1), at(SHANGHAI, 2026, 10, 8)) == 0


@pytest.mark.parametrize("make_up_saturday", [date(2026, 10, 10), date(2026, 9, 20), date(2026, 2, 14)])
def test_cn_official_make_up_weekends_are_working_days(make_up_saturday: date):
    start = datetime.combine(make_up_saturday, datetime.min.time(), tzinfo=SHANGHAI)
    assert SHANGHAI_OFFICE.business_minutes_between(start, start + timedelta(days=1)) == 480
    assert SHANGHAI_OFFICE.is_business_time(start.replace(hour=10))
    ignoring = calendar(**{**SHANGHAI_OFFICE_CONFIG, "holidays": {"country": "CN", "make_up_workdays": False}})
    assert ignoring.business_minutes_between(start, start + timedelta(days=1)) == 0


def test_extra_workdays_use_make_up_day_hours_and_override_weekends_and_holidays():
    config = {
        **BERLIN_OFFICE_CONFIG,
        "working_hours": {**BERLIN_OFFICE_CONFIG["working_hours"], "fri": ["09:00-15:00"]},
        "extra_workdays": ["2026-03-28", "2026-05-01"],  # a Saturday and Labour Day
        "make_up_day_hours": "fri",
    }
    office = calendar(**config)
    saturday = at(BERLIN, 2026, 3, 28)
    assert office.business_minutes_between(saturday, saturday + timedelta(days=1)) == 6 * 60
    labour_day = at(BERLIN, 2026, 5, 1)
    assert BERLIN_OFFICE.business_minutes_between(labour_day, labour_day + timedelta(days=1)) == 0
    assert office.business_minutes_between(labour_day, labour_day + timedelta(days=1)) == 6 * 60


def test_extra_holidays_and_subdivision_holidays():
    christmas_eve = at(NEW_YORK, 2026, 12, 24)  # a Thursday, listed in extra_holidays
    assert NEW_YORK_OFFICE.business_minutes_between(christmas_eve, christmas_eve + timedelta(days=1)) == 0
    epiphany = at(BERLIN, 2026, 1, 6)  # a public holiday in Bavaria (BY), not in Berlin (BE)
    berlin_state = calendar(**{**BERLIN_OFFICE_CONFIG, "holidays": {"country": "DE", "subdivision": "BE"}})
    assert BERLIN_OFFICE.business_minutes_between(epiphany, epiphany + timedelta(days=1)) == 0
    assert berlin_state.business_minutes_between(epiphany, epiphany + timedelta(days=1)) == 540


def test_us_thanksgiving():
    due = NEW_YORK_OFFICE.add_business_minutes(at(NEW_YORK, 2026, 11, 25, 16, 30), 60)
    assert same_instant(due, at(NEW_YORK, 2026, 11, 27, 9, 30))


def test_holiday_package_object_is_built_once_per_calendar(monkeypatch: pytest.MonkeyPatch):
    built = []
    real = holidays.country_holidays

    def counting(*args, **kwargs):
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(holidays, "country_holidays", counting)
    office = calendar(**SHANGHAI_OFFICE_CONFIG)
    office.business_minutes_between(at(SHANGHAI, 2025, 1, 1), at(SHANGHAI, 2027, 12, 31))
    office.add_business_minutes(at(SHANGHAI, 2025, 6, 1), 100_000)
    assert len(built) == 1


# --------------------------------------------------------------------------- overnight shifts


def test_night_shift_crosses_midnight():
    due = BERLIN_NIGHT_DESK.add_business_minutes(at(BERLIN, 2026, 3, 9, 23, 0), 120)  # Monday night
    assert same_instant(due, at(BERLIN, 2026, 3, 10, 1, 0))
    assert BERLIN_NIGHT_DESK.is_business_time(at(BERLIN, 2026, 3, 13, 5, 0))  # Thursday's shift, Friday morning
    assert not BERLIN_NIGHT_DESK.is_business_time(at(BERLIN, 2026, 3, 13, 23, 0))  # no Friday shift
    # Friday 05:30: 30 min left of Thursday's shift, the rest from Saturday 22:00.
    due = BERLIN_NIGHT_DESK.add_business_minutes(at(BERLIN, 2026, 3, 13, 5, 30), 60)
    assert same_instant(due, at(BERLIN, 2026, 3, 14, 22, 30))


def test_new_years_eve_shift_runs_into_the_new_year_holiday():
    # Thursday 2026-12-31's shift belongs to the 31st, so it runs on 2027-01-01 (a holiday) until 06:00.
    assert BERLIN_NIGHT_DESK.is_business_time(at(BERLIN, 2027, 1, 1, 3, 0))
    assert BERLIN_NIGHT_DESK.business_minutes_between(at(BERLIN, 2026, 12, 31, 12), at(BERLIN, 2027, 1, 1, 12)) == 480
    due = BERLIN_NIGHT_DESK.add_business_minutes(at(BERLIN, 2026, 12, 31, 23, 0), 60)
    assert same_instant(due, at(BERLIN, 2027, 1, 1, 0, 0))


def test_make_up_day_spilling_into_the_next_days_hours_is_not_counted_twice():
    # Saturday 2026-03-07 works Monday's night shift until Sunday 06:00; Sunday has 05:00-09:00.
    desk = calendar(
        timezone="UTC",
        working_hours={"mon": ["22:00-06:00"], "sun": ["05:00-09:00"]},
        extra_workdays=["2026-03-07"],
    )
    saturday, monday = at(UTC, 2026, 3, 7), at(UTC, 2026, 3, 9)
    assert desk.business_minutes_between(saturday, monday) == 11 * 60  # 22:00 to 09:00, no double hour
    assert same_instant(desk.add_business_minutes(saturday, 11 * 60), at(UTC, 2026, 3, 8, 9, 0))


def test_make_up_friday_runs_the_night_shift():
    # 2026-03-27 is a Friday listed in extra_workdays with Thursday's 22:00-06:00 shift.
    assert BERLIN_NIGHT_DESK.is_business_time(at(BERLIN, 2026, 3, 27, 23, 0))
    assert BERLIN_NIGHT_DESK.is_business_time(at(BERLIN, 2026, 3, 28, 3, 0))


def test_shift_belongs_to_the_day_it_starts_on_when_crossing_into_a_holiday():
    night_desk = calendar(
        timezone="Asia/Shanghai",
        working_hours={day: ["22:00-06:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        holidays={"country": "CN"},
    )
    # Wednesday 09-30 is a workday: its shift runs on into National Day until 06:00.
    assert night_desk.business_minutes_between(at(SHANGHAI, 2026, 9, 30, 22), at(SHANGHAI, 2026, 10, 1, 6)) == 480
    assert night_desk.is_business_time(at(SHANGHAI, 2026, 10, 1, 3, 0))
    # The shift that would start on the holiday itself does not run.
    assert not night_desk.is_business_time(at(SHANGHAI, 2026, 10, 1, 23, 0))
    # 10-07 is a holiday: its shift, reaching into the working day 10-08, does not run either.
    assert not night_desk.is_business_time(at(SHANGHAI, 2026, 10, 8, 3, 0))
    assert night_desk.is_business_time(at(SHANGHAI, 2026, 10, 8, 23, 0))
    # From 05:00 on 10-01: 1 h left of 09-30's shift, then the next shift is Sunday 10-04's
    # (the 4th is a plain Sunday, not a holiday).
    due = night_desk.add_business_minutes(at(SHANGHAI, 2026, 10, 1, 5, 0), 120)
    assert same_instant(due, at(SHANGHAI, 2026, 10, 4, 23, 0))


# --------------------------------------------------------------------------- 24/7


def test_continuous_calendar_counts_elapsed_time_across_dst():
    always = ContinuousCalendar(tz="Europe/Berlin")
    assert always.name == "24x7"
    assert always.business_minutes_between(at(BERLIN, 2026, 3, 29), at(BERLIN, 2026, 3, 30)) == 23 * 60
    assert always.business_minutes_between(at(BERLIN, 2026, 3, 30), at(BERLIN, 2026, 3, 29)) == 0
    due = always.add_business_minutes(at(BERLIN, 2026, 3, 28, 12, 0), 24 * 60)
    assert same_instant(due, at(BERLIN, 2026, 3, 29, 13, 0))
    saturday_night = at(UTC, 2026, 3, 7, 23, 0)
    assert always.is_business_time(saturday_night)
    assert same_instant(always.next_business_start(saturday_night), saturday_night)
    assert always.business_day_minutes == 1440
    assert parse_duration("1bd", always) == 1440


# --------------------------------------------------------------------------- guards


def test_naive_datetimes_are_rejected_with_a_fix():
    with pytest.raises(ValueError, match="has no time zone; pass an aware datetime"):
        BERLIN_OFFICE.business_minutes_between(datetime(2026, 3, 9, 9), at(UTC, 2026, 3, 9, 12))
    with pytest.raises(ValueError, match="has no time zone"):
        ContinuousCalendar().add_business_minutes(datetime(2026, 3, 9, 9), 5)


@pytest.mark.parametrize("minutes", [-1, float("nan"), float("inf")])
def test_negative_or_non_finite_minutes_are_rejected(minutes: float):
    with pytest.raises(ValueError, match="minutes must be a finite number >= 0"):
        BERLIN_OFFICE.add_business_minutes(at(UTC, 2026, 3, 9, 9), minutes)


def test_search_further_than_three_years_raises():
    with pytest.raises(ValueError, match="cannot reach 10000000 business minutes within 3 years"):
        BERLIN_OFFICE.add_business_minutes(at(BERLIN, 2026, 3, 9, 9), 10_000_000)


def test_timestamps_outside_supported_years_raise():
    with pytest.raises(ValueError, match="check the ticket's timestamps"):
        BERLIN_OFFICE.business_minutes_between(at(UTC, 1800, 1, 1), at(UTC, 2026, 1, 1))


def test_calendar_is_immutable():
    with pytest.raises(AttributeError, match="immutable"):
        BERLIN_OFFICE.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        BERLIN_OFFICE.config.timezone = "UTC"  # type: ignore[misc]


def test_fast_enough_for_sweeps():
    start = at(SHANGHAI, 2026, 3, 9, 10, 0)
    end = start + timedelta(days=60)
    five_days = 5 * SHANGHAI_OFFICE.business_day_minutes
    SHANGHAI_OFFICE.business_minutes_between(start, end)  # build the year once
    calls = 2000
    began = time.perf_counter()
    for _ in range(calls):
        SHANGHAI_OFFICE.add_business_minutes(start, five_days)
        SHANGHAI_OFFICE.business_minutes_between(start, end)
    per_pair = (time.perf_counter() - began) / calls
    assert per_pair < 0.5e-3, f"{per_pair * 1e6:.0f} µs per add+measure"


# --------------------------------------------------------------------------- validation


VALID = {"timezone": "UTC", "working_hours": {"mon": ["09:00-18:00"]}}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"working_hours": {"mon": ["18:00-18:00"]}}, "span '18:00-18:00' is empty; write HH:MM-HH:MM with different start and end"),
        ({"working_hours": {"mon": ["9-17"]}}, "span '9-17' is not HH:MM-HH:MM"),
        ({"working_hours": {"mon": ["25:00-26:00"]}}, "span '25:00-26:00' has an invalid time"),
        ({"working_hours": {"mon": ["09:60-10:00"]}}, "span '09:60-10:00' has an invalid time"),
        ({"working_hours": {"mon": ["24:00-02:00"]}}, "24:00 only as an end"),
        ({"working_hours": {"mon": ["09:00-12:00", "11:00-14:00"]}}, "working_hours.mon: spans '09:00-12:00' and '11:00-14:00' overlap"),
        ({"working_hours": {"mon": ["22:00-06:00", "23:00-23:30"]}}, "spans '22:00-06:00' and '23:00-23:30' overlap"),
        (
            {"working_hours": {"sun": ["22:00-06:00"], "mon": ["05:00-09:00"]}},
            "sun span '22:00-06:00' runs until mon 06:00 and overlaps mon span '05:00-09:00'",
        ),
        ({"working_hours": {"monday": ["09:00-18:00"]}}, "unknown weekday 'monday' in working_hours; use mon, tue"),
        ({"working_hours": {"mon": [], "sat": []}}, "calendar has no working hours"),
        ({"working_hours": {}}, "calendar has no working hours"),
        ({"timezone": "Asia/Shangai"}, "unknown timezone 'Asia/Shangai' (did you mean 'Asia/Shanghai'?)"),
        ({"timezone": "Mars/Olympus"}, "use an IANA name such as Asia/Shanghai"),
        ({"holidays": {"country": "XX"}}, "unknown country 'XX' for holidays; use an ISO 3166 code such as CN, US, DE"),
        ({"holidays": {"country": "US", "subdivision": "ZZ"}}, "unknown subdivision 'ZZ' for country US"),
        ({"holidays": {"country": "CN", "subdivision": "BJ"}}, "country CN has no subdivisions"),
        ({"holidays": {"country": "CN", "region": "BJ"}}, "Extra inputs are not permitted"),
        ({"timezon": "UTC"}, "Extra inputs are not permitted"),
        ({"make_up_day_hours": "funday"}, "make_up_day_hours 'funday' is not a weekday"),
        ({"extra_workdays": ["2026-09-27"], "make_up_day_hours": "sat"}, "make_up_day_hours 'sat', which has none"),
        ({"extra_holidays": ["2026-13-01"]}, "extra_holidays entry '2026-13-01' is not a date; write YYYY-MM-DD"),
        ({"extra_workdays": "2026-09-27"}, "extra_workdays must be a list of dates"),
        (
            {"extra_holidays": ["2026-09-27"], "extra_workdays": ["2026-09-27"]},
            "2026-09-27 listed in both extra_holidays and extra_workdays",
        ),
        ({"business_day": "3bd"}, "business_day '3bd' cannot be in business days"),
        ({"business_day": "0h"}, "business_day '0h' must be more than 0 and at most 24h"),
        ({"business_day": "25h"}, "must be more than 0 and at most 24h"),
        ({"business_day": "eight hours"}, "cannot read duration 'eight hours'"),
    ],
)
def test_invalid_calendar_config_explains_the_fix(changes: dict, message: str):
    with pytest.raises(ValidationError, match=re.escape(message)):
        CalendarConfig.model_validate({**VALID, **changes})


def test_valid_config_from_the_documented_example_builds():
    example = CalendarConfig.model_validate(
        {
            "timezone": "Asia/Shanghai",
            "working_hours": {
                "mon": ["09:00-12:00", "13:00-18:00"],
                "tue": ["09:00-18:00"],
                "wed": ["18:00-24:00"],
                "sat": [],
                "sun": ["22:00-06:00"],
            },
            "holidays": {"country": "cn", "subdivision": None},
            "extra_holidays": ["2026-12-31"],
            "extra_workdays": ["2026-09-27"],
            "make_up_day_hours": "mon",
            "business_day": "8h",
        }
    )
    standard = example.build("standard")
    assert standard.name == "standard" and standard.tz == SHANGHAI
    assert example.holidays is not None and example.holidays.country == "CN"
    # Sunday 2026-09-27 is an extra workday with Monday's hours (8 h), and its own
    # 22:00-06:00 shift is replaced by them.
    sunday = at(SHANGHAI, 2026, 9, 27)
    assert standard.business_minutes_between(sunday, sunday + timedelta(days=1)) == 480
    # Wednesday 18:00-24:00 ends exactly at midnight.
    wednesday = at(SHANGHAI, 2026, 9, 23)
    assert standard.business_minutes_between(wednesday, wednesday + timedelta(days=2)) == 360


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("30m", 30),
        ("2h", 120),
        ("1h30m", 90),
        ("1h 30m", 90),
        ("90", 90),
        ("1.5h", 90),
        (" 2H ", 120),
        ("0", 0),
        (90, 90),
        (2.5, 2.5),
        ("3bd", 3 * 480),
        ("1bd4h", 480 + 240),
    ],
)
def test_parse_duration_accepted_forms(text: str, minutes: float):
    assert parse_duration(text, SHANGHAI_OFFICE) == minutes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cannot read duration ''"),
        ("2 hours", "write '90' (minutes), '30m', '2h', '1h30m', '1.5h' or '3bd' (business days)"),
        ("-5m", "cannot read duration '-5m'"),
        ("30m2h", "cannot read duration '30m2h'"),
        ("1 5h", "cannot read duration '1 5h'"),
        ("1d", "'d' is ambiguous: write '24h' for calendar time or '1bd' for a business day"),
        (True, "is a yes/no value"),
        (-3, "must be a finite number of minutes >= 0"),
    ],
)
def test_parse_duration_rejects_with_the_accepted_forms(text: str, message: str):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_duration(text, SHANGHAI_OFFICE)


def test_business_days_need_a_calendar():
    with pytest.raises(ValueError, match="'3bd' is in business days, which need a calendar"):
        parse_duration("3bd")


# --------------------------------------------------------------------------- properties

CALENDARS = [BERLIN_OFFICE, NEW_YORK_OFFICE, SHANGHAI_OFFICE, BERLIN_NIGHT_DESK, LORD_HOWE_DESK]
CONFIGS = [BERLIN_OFFICE_CONFIG, NEW_YORK_OFFICE_CONFIG, SHANGHAI_OFFICE_CONFIG, BERLIN_NIGHT_DESK_CONFIG, LORD_HOWE_CONFIG]
ZONES = [BERLIN, NEW_YORK, SHANGHAI, LORD_HOWE, ZoneInfo("Asia/Kolkata"), ZoneInfo("UTC")]

instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.sampled_from(ZONES)
)
durations = st.one_of(st.integers(0, 20_000), st.floats(0, 20_000, allow_nan=False))
calendars = st.sampled_from([*CALENDARS, ContinuousCalendar(tz="Europe/Berlin")])
moderate = settings(max_examples=150, deadline=None)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


@moderate
@given(calendars, instants, durations)
def test_add_then_measure_round_trips_and_result_is_earliest(cal, start: datetime, minutes: float):
    due = cal.add_business_minutes(start, minutes)
    assert due.tzinfo == cal.tz
    assert abs(cal.business_minutes_between(start, due) - minutes) <= 1e-6
    assert utc(due) >= utc(start)
    if minutes >= 1e-6:  # smaller targets round to the clock's microsecond resolution
        # One microsecond earlier the target is not yet reached.
        just_before = utc(due) - timedelta(microseconds=1)
        assert cal.business_minutes_between(start, just_before) < minutes
        assert cal.is_business_time(just_before)


@moderate
@given(calendars, instants, instants, instants)
def test_measuring_is_additive(cal, first: datetime, second: datetime, third: datetime):
    a, b, c = sorted((first, second, third), key=utc)
    whole = cal.business_minutes_between(a, c)
    assert abs(cal.business_minutes_between(a, b) + cal.business_minutes_between(b, c) - whole) <= 1e-6


@moderate
@given(calendars, instants, durations, durations)
def test_monotonic(cal, start: datetime, first: float, second: float):
    smaller, larger = sorted((first, second))
    assert utc(cal.add_business_minutes(start, smaller)) <= utc(cal.add_business_minutes(start, larger))
    near, far = utc(start) + timedelta(minutes=smaller), utc(start) + timedelta(minutes=larger)
    assert cal.business_minutes_between(start, near) <= cal.business_minutes_between(start, far)
    assert 0 <= cal.business_minutes_between(start, far) <= (utc(far) - utc(start)) / timedelta(minutes=1)


@moderate
@given(calendars, instants)
def test_next_business_start_is_business_time_and_nothing_is_skipped(cal, moment: datetime):
    opening = cal.next_business_start(moment)
    assert cal.is_business_time(opening)
    assert utc(opening) >= utc(moment)
    assert cal.business_minutes_between(moment, opening) == 0


def _reference_spans(config: dict, day: date, official: holidays.HolidayBase | None) -> list[str]:
    """The precedence rules, written out plainly: extra workday > extra holiday > public holiday > make-up > weekday."""
    weekday_names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    make_up = config["working_hours"].get(config.get("make_up_day_hours", "mon"), [])
    if day.isoformat() in config.get("extra_workdays", []):
        return make_up
    if day.isoformat() in config.get("extra_holidays", []) or (official is not None and day in official):
        return []
    if official is not None and day in official.weekend_workdays:
        return make_up
    return config["working_hours"].get(weekday_names[day.weekday()], [])


def _reference_minutes(config: dict, official, start: datetime, end: datetime) -> float:
    """Day-by-day overlap of each span's real instants with [start, end) (no span boundary here falls in a DST gap)."""
    zone = ZoneInfo(config["timezone"])
    total = timedelta()
    day = start.astimezone(zone).date() - timedelta(days=1)
    while day <= end.astimezone(zone).date():
        for span in _reference_spans(config, day, official):
            opens, closes = (datetime.strptime(part, "%H:%M").time() for part in span.split("-"))
            span_start = datetime.combine(day, opens, tzinfo=zone)
            span_end = datetime.combine(day + timedelta(days=closes <= opens), closes, tzinfo=zone)
            overlap = min(utc(end), utc(span_end)) - max(utc(start), utc(span_start))
            total += max(overlap, timedelta())
        day += timedelta(days=1)
    return total / timedelta(minutes=1)


OFFICIAL_HOLIDAYS = [
    holidays.country_holidays(c["holidays"]["country"], subdiv=c["holidays"].get("subdivision"), years=range(2024, 2029))
    if "holidays" in c
    else None
    for c in CONFIGS
]


@moderate
@given(st.integers(0, len(CALENDARS) - 1), instants, st.floats(0, 40 * 24 * 60, allow_nan=False))
def test_measuring_agrees_with_a_day_by_day_count(index: int, start: datetime, span_minutes: float):
    end = utc(start) + timedelta(minutes=span_minutes)
    expected = _reference_minutes(CONFIGS[index], OFFICIAL_HOLIDAYS[index], start, end)
    assert abs(CALENDARS[index].business_minutes_between(start, end) - expected) <= 1e-6


# --------------------------------------------------------------------------- microsecond API

_US = 60_000_000


def _us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@moderate
@given(st.integers(0, len(CONFIGS) - 1), instants, instants, durations)
def test_microsecond_answers_equal_the_datetime_answers_on_fresh_and_warm_calendars(index, first, second, minutes):
    """`connector.sla` asks in µs; a fresh calendar (year found by a zone conversion) and one
    with years already built (found by the year index) must answer as the datetime API does."""
    fresh = calendar(f"fresh-{index}", **CONFIGS[index])
    warm = CALENDARS[index]
    start, end = sorted((first, second), key=utc)
    for cal in (fresh, warm):
        assert cal.business_us_between(_us(start), _us(end)) / _US == cal.business_minutes_between(start, end)
        due = cal.add_business_minutes(start, minutes)
        assert cal.add_business_us(_us(start), round(minutes * _US)) == _us(due)
        # Positions: whichever year a calendar was first asked about, differences are business time.
        later_first = calendar(f"later-first-{index}", **CONFIGS[index])
        for positioned in (cal, later_first):
            if positioned is later_first:
                positioned.business_position_us(_us(end))
            difference = positioned.business_position_us(_us(end)) - positioned.business_position_us(_us(start))
            assert difference == cal.business_us_between(_us(start), _us(end))


def test_year_index_finds_the_year_across_new_year_in_every_zone():
    """Instants just before and after local midnight of 1 January belong to the right year."""
    for config in CONFIGS:
        cal = calendar("new-year", **config)
        tz = cal.tz
        for year in (2025, 2026, 2027):
            midnight = datetime(year, 1, 1, tzinfo=tz)
            for moment in (midnight - timedelta(microseconds=1), midnight, midnight + timedelta(hours=30)):
                cal.business_minutes_between(moment - timedelta(days=3), moment)  # builds and indexes years
                number, found = cal._locate(_us(moment))
                assert number == moment.astimezone(tz).year
                assert found.begin <= _us(moment) < found.end
