"""SLA clocks to the minute: pauses, reopen, priority change, holidays, DST, night shifts."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from connector.calendar import CalendarConfig, ContinuousCalendar
from connector.config import load_config
from connector.model import Status
from connector.rules.engine import evaluate
from connector.settings import DEFAULT_CONFIG
from connector.sla import build_clock
from tests.factories import agent_reply, at, requester_reply, ticket

PAUSED = frozenset({Status.WAITING_FOR_CUSTOMER, Status.WAITING_FOR_THIRD_PARTY, Status.WAITING_FOR_INFORMATION})
STANDARD = load_config(DEFAULT_CONFIG).calendar("standard")  # Asia/Shanghai, 09-12 + 13-18, CN holidays


def clock(metric, t, now, target, calendar=STANDARD, kind="business"):
    built = build_clock(metric, t, now, target_minutes=target, clock=kind, calendar=calendar, paused=PAUSED,
                        warn_percents=[75])
    return built[0] if built else None


def test_created_outside_business_hours_starts_next_morning():
    t = ticket(created="2026-11-20 20:00")  # Friday evening
    c = clock("first_response", t, at("2026-11-23 09:10"), 30)
    assert c.state == "running" and c.elapsed_minutes == 10
    assert c.due == at("2026-11-23 09:30")


def test_lunch_break_is_not_business_time():
    t = ticket(created="2026-11-20 11:00")
    c = clock("first_response", t, at("2026-11-20 11:30"), 120)
    assert c.due == at("2026-11-20 14:00")
    assert c.warn_at == (at("2026-11-20 13:30"),)


def test_pause_and_resume_moves_the_deadline():
    t = ticket(created="2026-11-20 09:00", status=Status.IN_PROGRESS, history=[
        ("2026-11-20 09:30", Status.NEW, Status.WAITING_FOR_CUSTOMER),
        ("2026-11-20 10:30", Status.WAITING_FOR_CUSTOMER, Status.IN_PROGRESS)])
    paused = clock("resolution", t, at("2026-11-20 10:00"), 480)
    assert paused.state == "paused" and paused.due is None and paused.elapsed_minutes == 30
    running = clock("resolution", t, at("2026-11-20 11:00"), 480)
    assert running.elapsed_minutes == 60
    # 8h business from 09:00 would be 18:00; the hour spent waiting moves it to Monday 10:00.
    assert running.due == at("2026-11-23 10:00")


def test_reopen_resumes_resolution_time_already_used():
    t = ticket(created="2026-11-20 09:00", status=Status.IN_PROGRESS, history=[
        ("2026-11-20 10:00", Status.NEW, Status.RESOLVED),
        ("2026-11-20 15:00", Status.RESOLVED, Status.IN_PROGRESS)])
    met = clock("resolution", t, at("2026-11-20 12:00"), 480)
    assert met.state == "met" and met.elapsed_minutes == 60 and met.stopped_at == at("2026-11-20 10:00")
    reopened = clock("resolution", t, at("2026-11-20 16:00"), 480)
    assert reopened.state == "running" and reopened.elapsed_minutes == 120
    # 6h left at Friday 16:00: 2h on Friday, 09-12 and 13-14 on Monday.
    assert reopened.due == at("2026-11-23 14:00")


def test_priority_change_retargets_the_running_clock():
    config = load_config(DEFAULT_CONFIG)
    t = ticket(created="2026-11-20 09:00", priority="P3", group="L1")
    p3 = evaluate(t, at("2026-11-20 12:00"), config)
    assert p3.sla["first_response"].target_minutes == 480 and p3.sla["first_response"].state == "running"
    p1 = evaluate(t.model_copy(update={"priority": "P1"}), at("2026-11-20 12:00"), config)
    assert p1.sla["first_response"].target_minutes == 120
    assert p1.sla["first_response"].state == "breached"
    assert p1.sla["first_response"].breached_at == at("2026-11-20 11:00")


def test_first_response_is_an_agents_public_comment_only():
    t = ticket(created="2026-11-20 09:00", comments=[
        requester_reply("2026-11-20 09:05"), agent_reply("2026-11-20 09:10", public=False),
        agent_reply("2026-11-20 09:40", n=2)])
    c = clock("first_response", t, at("2026-11-20 12:00"), 30)
    assert c.state == "breached" and c.stopped_at == at("2026-11-20 09:40")
    assert c.breached_at == at("2026-11-20 09:30")


def test_holiday_moves_the_deadline():
    # 2026-10-01..07: China's National Day holidays (from the `holidays` package).
    t = ticket(created="2026-09-30 17:00")
    c = clock("resolution", t, at("2026-09-30 17:30"), 120)
    assert c.due == at("2026-10-08 10:00")


def test_make_up_workday_counts_and_overnight_shift_crosses_midnight():
    calendar = CalendarConfig.model_validate({
        "timezone": "Asia/Shanghai",
        "working_hours": {"mon": ["22:00-06:00"], "tue": ["22:00-06:00"]},
        "extra_workdays": ["2026-11-22"], "make_up_day_hours": "mon",
    }).build("night")
    t = ticket(created="2026-11-22 21:00")  # Sunday, but a make-up workday on the night shift
    c = clock("first_response", t, at("2026-11-22 23:00"), 240, calendar=calendar)
    assert c.elapsed_minutes == 60
    assert c.due == at("2026-11-23 02:00")


def test_dst_day_counts_real_minutes():
    berlin = ZoneInfo("Europe/Berlin")
    calendar = CalendarConfig.model_validate({
        "timezone": "Europe/Berlin", "working_hours": {d: ["00:00-24:00"] for d in ("sat", "sun")},
    }).build("weekend-24h")
    t = ticket().model_copy(update={"created": datetime(2026, 3, 29, 0, 0, tzinfo=berlin)})
    # The clocks jump from 02:00 to 03:00: local midnight to noon is 11 real hours.
    c = clock("resolution", t, datetime(2026, 3, 29, 12, 0, tzinfo=berlin), 24 * 60, calendar=calendar)
    assert c.elapsed_minutes == 11 * 60


def test_calendar_clock_ignores_business_hours_but_honours_pauses():
    t = ticket(created="2026-11-20 20:00", status=Status.IN_PROGRESS, history=[
        ("2026-11-20 22:00", Status.NEW, Status.WAITING_FOR_THIRD_PARTY),
        ("2026-11-21 02:00", Status.WAITING_FOR_THIRD_PARTY, Status.IN_PROGRESS)])
    c = clock("resolution", t, at("2026-11-21 06:00"), 24 * 60, calendar=ContinuousCalendar(), kind="calendar")
    assert c.elapsed_minutes == 6 * 60
    assert c.due == at("2026-11-21 20:00") + timedelta(hours=4)


def test_periodic_update_cycles_restart_on_each_agent_update():
    t = ticket(created="2026-11-20 09:00", status=Status.IN_PROGRESS,
               comments=[agent_reply("2026-11-20 09:10"), agent_reply("2026-11-20 11:00", n=2)])
    c = clock("periodic_update", t, at("2026-11-20 14:00"), 240)
    assert c.cycle == 2 and c.started == at("2026-11-20 11:00") and c.elapsed_minutes == 120
    assert clock("periodic_update", ticket(), at("2026-11-20 14:00"), 240) is None


def test_changes_in_the_same_instant_keep_their_order():
    t = ticket(created="2026-11-20 08:50", status=Status.IN_PROGRESS, history=[
        ("2026-11-20 09:00", Status.NEW, Status.WAITING_FOR_CUSTOMER),
        ("2026-11-20 09:00", Status.WAITING_FOR_CUSTOMER, Status.IN_PROGRESS)])
    c = clock("first_response", t, at("2026-11-20 09:00"), 240)
    assert c.state == "running" and c.due == at("2026-11-20 14:00")
