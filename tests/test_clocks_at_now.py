"""SLA clocks and plans at any instant: a ticket evaluated at `t` is the ticket as it stood at `t`.

Issue 14, point 7. A status change or a comment made after `t` had not happened at `t`:
it must neither stop a clock (a ticket resolved the next day is still running at `t`) nor
decide which clocks apply (the periodic update follows the status at `t`, not today's).

The properties are tested against tickets whose life is generated event by event, so the
ticket "as it stood at t" is built independently of `ticket_as_of` – from the events
made by `t` alone – and compared with what the code makes of the whole ticket.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.calendar import ContinuousCalendar
from connector.cli import main
from connector.config import load_config
from connector.history import ticket_as_of
from connector.model import (DONE_STATUSES, AuthorRole, Comment, PriorityChange, Status, StatusChange, Ticket)
from connector.rules.engine import evaluate
from connector.settings import DEFAULT_CONFIG
from connector.simulation import evaluate_at
from connector.sla import MetricTarget, build_clock, compute_clocks
from tests.factories import INTAKE, agent_reply, at, ticket
from tests.test_sla_one_pass import CALENDARS, PAUSE_SETS, fixed, instants

CONFIG = load_config(DEFAULT_CONFIG)
STANDARD = CONFIG.calendar("standard")
PAUSED = PAUSE_SETS[0]
METRICS = ("first_response", "resolution", "periodic_update")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
N, IP, R, C, WC = Status.NEW, Status.IN_PROGRESS, Status.RESOLVED, Status.CLOSED, Status.WAITING_FOR_CUSTOMER


def clock(metric, t, now, target=600):
    built = build_clock(metric, t, now, target_minutes=target, clock="business", calendar=STANDARD, paused=PAUSED)
    return built[0] if built else None


# --- the cases the issue names -----------------------------------------------------------------


def test_a_ticket_resolved_the_next_day_is_still_running_the_day_before():
    # Resolved and closed the next day (the usual end of a ticket): before the cut, the
    # closing made the resolution look "met" the day before, stopped in the future.
    t = ticket(created="2026-11-19 09:00", status=C, comments=[agent_reply("2026-11-19 09:10")],
               history=[("2026-11-19 09:10", N, IP), ("2026-11-20 10:00", IP, R), ("2026-11-20 16:00", R, C)])
    before = clock("resolution", t, at("2026-11-19 17:00"))
    assert before.state == "running" and before.stopped_at is None
    assert before.elapsed_minutes == 7 * 60  # 09:00-17:00 less the lunch hour
    assert before.due == at("2026-11-20 11:00")
    after = clock("resolution", t, at("2026-11-20 12:00"))
    assert after.state == "met" and after.stopped_at == at("2026-11-20 10:00")


def test_a_resolution_and_reopen_after_now_leave_the_clock_running():
    t = ticket(created="2026-11-19 09:00", status=IP,
               history=[("2026-11-19 09:10", N, IP), ("2026-11-20 10:00", IP, R), ("2026-11-21 10:00", R, IP)])
    then = clock("resolution", t, at("2026-11-19 17:00"))
    assert then.state == "running" and then.stopped_at is None and then.elapsed_minutes == 7 * 60


def test_a_reopen_after_now_does_not_restart_the_clock_before_it():
    t = ticket(created="2026-11-19 09:00", status=IP,
               history=[("2026-11-19 10:00", N, R), ("2026-11-20 10:00", R, IP)])
    then = clock("resolution", t, at("2026-11-19 15:00"))
    assert then.state == "met" and then.stopped_at == at("2026-11-19 10:00") and then.elapsed_minutes == 60


def test_the_periodic_update_follows_the_status_at_now_not_today():
    # Resolved today; yesterday afternoon it was in progress and owed the customer an update.
    t = ticket(created="2026-11-19 09:00", status=R, comments=[agent_reply("2026-11-19 09:30")],
               history=[("2026-11-19 09:30", N, IP), ("2026-11-20 16:00", IP, R)])
    then = clock("periodic_update", t, at("2026-11-19 15:00"), target=240)
    assert then is not None and then.state == "breached" and then.cycle == 1
    assert clock("periodic_update", t, at("2026-11-20 17:00"), target=240) is None  # resolved now: no updates owed
    # And the other way round: resolved yesterday, reopened today – resolved then, so none owed.
    t = ticket(created="2026-11-19 09:00", status=IP, comments=[agent_reply("2026-11-19 09:30")],
               history=[("2026-11-19 09:30", N, R), ("2026-11-20 10:00", R, IP)])
    assert clock("periodic_update", t, at("2026-11-19 15:00"), target=240) is None


def test_a_comment_after_now_is_no_response_yet():
    t = ticket(created="2026-11-19 09:00", comments=[agent_reply("2026-11-19 14:00")])
    then = clock("first_response", t, at("2026-11-19 11:00"), target=30)
    assert then.state == "breached" and then.stopped_at is None


def test_simulate_before_the_resolution_plans_as_then():
    t = ticket(created="2026-11-19 09:00", status=R, priority="P1", comments=[agent_reply("2026-11-19 09:10")],
               history=[("2026-11-19 09:10", N, IP), ("2026-11-20 10:00", IP, R)])
    view, plan = evaluate_at(t, at("2026-11-19 17:00"), CONFIG)
    assert view.status == IP and view.resolved is None and len(view.status_history) == 1
    assert plan.sla["resolution"].state in ("running", "breached")
    assert plan.sla["resolution"].stopped_at is None
    assert plan.next_deadline is not None or plan.sla["resolution"].state == "breached"
    with pytest.raises(ValueError, match="created at .* after --now"):
        evaluate_at(t, at("2026-11-19 08:00"), CONFIG)


def test_nothing_later_gives_the_same_ticket_back():
    t = ticket(created="2026-11-19 09:00", status=IP, history=[("2026-11-19 09:10", N, IP)])
    assert ticket_as_of(t, at("2026-11-19 09:10")) is t  # a change made exactly at `at` counts


def test_what_is_and_is_not_rewound():
    t = ticket(created="2026-11-19 09:00", status=R, priority="P1", labels=["sla-warning"],
               comments=[agent_reply("2026-11-19 09:10"), agent_reply("2026-11-20 09:00", n=2)],
               history=[("2026-11-19 09:10", N, IP), ("2026-11-20 10:00", IP, R)])
    t = t.model_copy(update={"resolved": at("2026-11-20 10:00"), "updated": at("2026-11-20 10:00"),
                             "raw_status": "Resolved", "status_equivalents": frozenset({C})})
    view = ticket_as_of(t, at("2026-11-19 12:00"))
    assert view.status == IP and view.raw_status is None and view.status_equivalents == frozenset()
    assert [c.id for c in view.comments] == [t.comments[0].id] and view.resolved is None
    assert view.updated == at("2026-11-19 09:10")
    # No dated history of these on the ticket: the current values stand.
    assert view.priority == "P1" and view.labels == t.labels and view.fields == t.fields


def test_a_notice_posted_after_now_had_not_been_posted():
    notice = Comment(id="n1", author="connector", author_role=AuthorRole.CONNECTOR, public=False,
                     body="Resolution target breached.\n\nref: sla-breach-resolution", created=at("2026-11-20 09:00"))
    earlier = Comment(id="n0", author="connector", author_role=AuthorRole.CONNECTOR, public=False,
                      body="Please add the error text.\n\nref: sc-intake-requested", created=at("2026-11-19 09:05"))
    t = ticket(created="2026-11-19 09:00", status=IP, labels=["sla-breach-resolution", "sc-intake-requested", "vip"],
               history=[("2026-11-19 09:10", N, IP)])
    t = t.model_copy(update={"comments": (earlier, notice),
                             "comment_markers": frozenset({"sla-breach-resolution", "sc-intake-requested"})})
    view = ticket_as_of(t, at("2026-11-19 17:00"))
    assert view.comment_markers == {"sc-intake-requested"}
    assert view.labels == {"sc-intake-requested", "vip"}  # other labels have no date: kept
    assert ticket_as_of(t, at("2026-11-20 09:00")) is t


def test_resolved_then_is_the_entry_into_resolved_made_by_then():
    t = ticket(created="2026-11-19 09:00", status=R,
               history=[("2026-11-19 10:00", N, R), ("2026-11-19 11:00", R, IP), ("2026-11-20 10:00", IP, R)])
    t = t.model_copy(update={"resolved": at("2026-11-20 10:00")})
    assert ticket_as_of(t, at("2026-11-19 10:30")).resolved == at("2026-11-19 10:00")
    assert ticket_as_of(t, at("2026-11-19 12:00")).resolved is None


# --- the property: evaluating the whole ticket at t == evaluating the ticket as it stood at t ------


@st.composite
def lives(draw):
    """A ticket's life event by event: (the ticket today, the ticket as it stood at t, t)."""
    created = fixed(draw(instants))
    status = N
    first_priority = priority = draw(st.sampled_from(["P0", "P1", "P2", "P3"]))
    priorities: list[PriorityChange] = []
    minute = 0.0
    history: list[StatusChange] = []
    comments: list[Comment] = []
    stamps: list[tuple[float, datetime, bool]] = []  # (minute, instant, entered done)
    for n in range(draw(st.integers(0, 10))):
        # Never earlier than the event before (0: the same instant, kept in order).
        minute += draw(st.sampled_from([0, 1, 30, 60, 240, 1440, 3000])) + draw(st.sampled_from([0, 0, 0.5]))
        moment = created + timedelta(minutes=minute)
        kind = draw(st.sampled_from(["status", "status", "comment", "comment", "priority"]))
        if kind == "priority":
            raised = draw(st.sampled_from(["P0", "P1", "P2", "P3"]))
            priorities.append(PriorityChange(at=moment, from_priority=priority, to_priority=raised))
            stamps.append((minute, moment, False))  # a field change updates the ticket too
            priority = raised
        elif kind == "status":
            to = draw(st.sampled_from(list(Status)))
            history.append(StatusChange(at=moment, from_status=status, to_status=to))
            stamps.append((minute, moment, to in DONE_STATUSES and status not in DONE_STATUSES))
            status = to
        else:
            comments.append(Comment(id=str(n), author_role=draw(st.sampled_from(list(AuthorRole))),
                                    public=draw(st.booleans()), body="update", created=moment))
            stamps.append((minute, moment, False))
    now = created + timedelta(minutes=draw(st.integers(0, int(minute) + 2000)), seconds=draw(st.sampled_from([0, 30])))

    def as_it_stood(until: datetime) -> Ticket:
        """Built from the events made by `until` alone, as the platform would have shown it then."""
        kept_history = tuple(c for c in history if c.at <= until)
        kept_comments = tuple(c for c in comments if c.created <= until)
        current = kept_history[-1].to_status if kept_history else N
        kept_priorities = tuple(c for c in priorities if c.at <= until)
        entered = [moment for _, moment, done in stamps if done and moment <= until]
        moments = [moment for _, moment, _ in stamps if moment <= until]
        return Ticket(platform="jira", id="1", key="SUP-1", category="network", priority_history=kept_priorities,
                      priority=kept_priorities[-1].to_priority if kept_priorities else first_priority,
                      status=current, created=created, fields=dict(INTAKE), status_history=kept_history,
                      comments=kept_comments, updated=max(moments, default=created),
                      resolved=entered[-1] if entered and current in DONE_STATUSES else None)

    today = created + timedelta(minutes=minute + 10000)
    return as_it_stood(today), as_it_stood(now), now


@settings(max_examples=300, deadline=None)
@given(lives(), st.sampled_from(CALENDARS), st.sampled_from(PAUSE_SETS),
       st.lists(st.integers(0, 3000), min_size=3, max_size=3), st.sampled_from(["business", "calendar"]))
def test_clocks_of_the_whole_ticket_at_t_equal_those_of_the_ticket_as_it_stood(life, calendar, paused, targets, kind):
    whole, then, now = life
    chosen = ContinuousCalendar() if kind == "calendar" else calendar
    prepared = [MetricTarget(metric, minutes, kind, chosen) for metric, minutes in zip(METRICS, targets)]
    expected = compute_clocks(then, now, prepared, paused=paused, warn_percents=(50, 75))
    for ticket_ in (whole, ticket_as_of(whole, now)):
        got = compute_clocks(ticket_, now, prepared, paused=paused, warn_percents=(50, 75))
        assert {m: c.model_dump_json() for m, (c, _) in got.items()} == \
            {m: c.model_dump_json() for m, (c, _) in expected.items()}
        for metric, (_, timeline) in got.items():
            assert timeline.spans == expected[metric][1].spans


@settings(max_examples=300, deadline=None)
@given(lives())
def test_the_plan_at_t_is_the_plan_for_the_ticket_as_it_stood(life):
    whole, then, now = life
    view, plan = evaluate_at(whole, now, CONFIG)
    assert view.model_dump() == then.model_dump()
    assert plan.model_dump_json() == evaluate(then, now, CONFIG).model_dump_json()


# --- `connector simulate --now` on the platforms' own JSON ----------------------------------------


@pytest.mark.parametrize("platform", ["jira", "zendesk"])
def test_simulate_in_the_past_shows_the_closed_example_as_it_stood(platform):
    """The bundled P1 ticket was resolved on the 18th and closed later; on the 17th it was in progress."""
    path = EXAMPLES / platform / "p1-closed-needs-follow-up.json"
    result = CliRunner().invoke(main, ["simulate", "--platform", platform, "--ticket-json", str(path),
                                       "--now", "2026-11-17T17:00:00+08:00", "--format", "json"])
    assert result.exit_code == 0, result.output
    then = json.loads(result.output)
    assert then["ticket"]["status"] == "in_progress"
    assert then["sla"]["resolution"]["state"] == "running" and then["sla"]["resolution"]["stopped_at"] is None
    assert "periodic_update" in then["sla"]  # owed while it was open
    result = CliRunner().invoke(main, ["simulate", "--platform", platform, "--ticket-json", str(path),
                                       "--now", "2026-11-20T15:00:00+08:00", "--format", "json"])
    today = json.loads(result.output)
    assert today["ticket"]["status"] == "closed" and today["sla"]["resolution"]["state"] in ("met", "breached")
    assert "periodic_update" not in today["sla"]
    result = CliRunner().invoke(main, ["simulate", "--platform", platform, "--ticket-json", str(path),
                                       "--now", "2026-11-16T09:00:00+08:00"])
    assert result.exit_code != 0 and "after --now" in result.output


def _with_raised_priority(platform: str, tmp_path: Path) -> Path:
    """The P1 example, raised to P1 from P2 at 12:00 on the 17th (a changelog item / an audit Change event)."""
    data = json.loads((EXAMPLES / platform / "p1-closed-needs-follow-up.json").read_text(encoding="utf-8"))
    if platform == "jira":
        data["changelog"]["histories"].append({
            "id": "99001", "created": "2026-11-17T12:00:00.000+0800",
            "items": [{"field": "priority", "fieldtype": "jira", "fieldId": "priority",
                       "from": "3", "fromString": "Medium", "to": "2", "toString": "High"}]})
        data["changelog"]["total"] = len(data["changelog"]["histories"])
    else:
        data["audits"].append({"id": 99001, "ticket_id": int(data["ticket"]["id"]), "created_at": "2026-11-17T04:00:00Z",
                               "author_id": data["audits"][0]["author_id"],
                               "events": [{"id": 99002, "type": "Change", "field_name": "priority",
                                           "value": "high", "previous_value": "normal"}]})
        data["audits"].sort(key=lambda a: a["created_at"])
    path = tmp_path / f"{platform}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("platform", ["jira", "zendesk"])
def test_simulate_in_the_past_takes_the_targets_of_the_priority_then(platform, tmp_path):
    path = _with_raised_priority(platform, tmp_path)

    def at_(now):
        result = CliRunner().invoke(main, ["simulate", "--platform", platform, "--ticket-json", str(path),
                                           "--now", now, "--format", "json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    before = at_("2026-11-17T11:00:00+08:00")
    assert before["ticket"]["priority"] == "P2"
    assert before["sla"]["resolution"]["target_minutes"] == 3 * 8 * 60  # 3bd of 8 business hours
    assert "periodic_update" not in before["sla"]  # P2 has no periodic-update target
    after = at_("2026-11-17T17:00:00+08:00")
    assert after["ticket"]["priority"] == "P1" and after["sla"]["resolution"]["target_minutes"] == 8 * 60
    assert "periodic_update" in after["sla"]


def test_the_priority_before_its_first_recorded_change_is_that_changes_previous_value():
    t = ticket(created="2026-11-19 09:00", priority="P0").model_copy(update={"priority_history": (
        PriorityChange(at=at("2026-11-19 10:00"), from_priority="P2", to_priority="P1"),
        PriorityChange(at=at("2026-11-20 10:00"), from_priority="P1", to_priority="P0"))})
    assert ticket_as_of(t, at("2026-11-19 09:30")).priority == "P2"
    assert ticket_as_of(t, at("2026-11-19 10:00")).priority == "P1"  # a change made at the instant counts
    assert ticket_as_of(t, at("2026-11-20 11:00")) is t
