"""SLA on time, end to end: sandbox Jira + receiver + SQLite queue + workers, one frozen clock.

Time moves only when a test moves it. `run_until` does what a worker does in production:
every pump interval (10 s) the deadline pump queues the reconciles that are due, and the
workers run them. Comments carry the sandbox clock's time when they were written, so
"within 60 s of the deadline" is measured, not assumed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.sandbox.jira import AGENT, CONNECTOR, CUSTOMER
from connector.sandbox.server import Clock
from connector.stack import LocalStack
from connector.sync.state import SweepBusy

SHANGHAI = ZoneInfo("Asia/Shanghai")
FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=SHANGHAI)
PUMP_INTERVAL = timedelta(seconds=10)
ON_TIME = timedelta(seconds=60)
INTAKE = {"Impact scope": "Shanghai office", "Steps to reproduce": "Connect, wait", "Error message": "ERR_TIMEOUT",
          "Occurred at": FRIDAY - timedelta(hours=1)}


@pytest.fixture
def stack(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY)) as running:
        # The standard escalation hands resolution breaches to this user.
        running.jira.add_user("team-lead", "Tess Lead", "lead@example.com")
        yield running


def run_until(stack: LocalStack, until: datetime, step: timedelta = PUMP_INTERVAL) -> None:
    while stack.clock.now() < until:
        stack.clock.advance(step)
        if stack.pump():
            stack.settle()


def connector_comments(stack, key, text):
    comments = stack.jira.issue(key)["fields"]["comment"]["comments"]
    return [c for c in comments if c["author"]["accountId"] == CONNECTOR and text in c["body"]]


def written_at(comment) -> datetime:
    return datetime.strptime(comment["created"], "%Y-%m-%dT%H:%M:%S.%f%z")


def assert_on_time(comment, due: datetime) -> None:
    late = written_at(comment) - due
    assert timedelta(0) <= late <= ON_TIME, f"written {late} after its deadline {due}"


def armed_due(stack, key) -> datetime | None:
    ticket_id = stack.jira.issue(key)["id"]
    entry = stack.queue.deadlines.entry("jira", ticket_id)
    return entry.due if entry else None


def p0(stack, **kwargs) -> str:
    return stack.jira.create_issue("Checkout down", description="502", priority="Highest", components=["outage"],
                                   environment="POS 4.2", fields=INTAKE, **kwargs)


def test_p0_without_response_gets_warning_then_one_breach_and_escalation_on_time(stack):
    key = p0(stack, created=FRIDAY)
    stack.settle()
    warning_due = FRIDAY + timedelta(minutes=22, seconds=30)  # 75 % of 30 business minutes
    breach_due = FRIDAY + timedelta(minutes=30)
    assert armed_due(stack, key) == warning_due

    run_until(stack, FRIDAY + timedelta(minutes=40))
    [warning] = connector_comments(stack, key, "SLA warning")
    assert_on_time(warning, warning_due)
    [breach] = connector_comments(stack, key, "SLA breached")
    assert_on_time(breach, breach_due)
    [escalation] = connector_comments(stack, key, "Escalated to L2: no first response")
    assert_on_time(escalation, breach_due)
    assert stack.jira.issue(key)["fields"]["customfield_10059"] == "L2"

    # The resolution target (24 h calendar) escalates at 50 %, warns at 75 %, breaches at 100 %.
    run_until(stack, FRIDAY + timedelta(hours=24, minutes=5))
    assert_on_time(connector_comments(stack, key, "Escalated to L2: 50%")[0], FRIDAY + timedelta(hours=12))
    [breach] = connector_comments(stack, key, "resolution target of 24h was missed")
    assert_on_time(breach, FRIDAY + timedelta(hours=24))
    # Nobody from L2 commented within 1 business hour of the 15:30 hand-off: the team lead at 16:30.
    [no_response] = connector_comments(stack, key, "L2 did not respond within 1h")
    assert_on_time(no_response, FRIDAY + timedelta(minutes=90))
    [lead] = [c for c in connector_comments(stack, key, "the team lead is now responsible")
              if "Resolution target" in c["body"]]
    assert_on_time(lead, FRIDAY + timedelta(hours=24))
    assert stack.jira.issue(key)["fields"]["customfield_10059"] == "team-lead"  # Support group
    assert len(connector_comments(stack, key, "SLA breached")) == 2  # one per metric, never repeated


def test_waiting_for_customer_moves_the_deadline(stack):
    key = p0(stack, created=FRIDAY)
    stack.settle()
    assert armed_due(stack, key) == FRIDAY + timedelta(minutes=22, seconds=30)
    run_until(stack, FRIDAY + timedelta(minutes=10))
    stack.jira.set_status(key, "Waiting for customer", author=AGENT)
    stack.settle()
    run_until(stack, FRIDAY + timedelta(hours=1, minutes=10))
    assert connector_comments(stack, key, "SLA warning") == []  # paused: nothing fired meanwhile
    stack.jira.set_status(key, "In Progress", author=CUSTOMER)
    stack.settle()
    moved = FRIDAY + timedelta(hours=1, minutes=22, seconds=30)  # the hour paused is not counted
    assert armed_due(stack, key) == moved
    run_until(stack, moved + timedelta(minutes=1))
    [warning] = connector_comments(stack, key, "SLA warning")
    assert_on_time(warning, moved)


def test_public_holiday_moves_the_deadline(tmp_path):
    # Wednesday before China's National Day week (1-7 October 2026): 2 of the P2's 4
    # first-response hours are left that day, the other 2 come after the holiday.
    eve = datetime(2026, 9, 30, 16, 0, tzinfo=SHANGHAI)
    with LocalStack(tmp_path / "data", clock=Clock(eve)) as stack:
        key = stack.jira.create_issue("Report export slow", description="slow", priority="Medium",
                                      components=["performance"], environment="Chrome", created=eve,
                                      fields={**INTAKE, "Occurred at": eve - timedelta(hours=1)})
        stack.settle()
        warning_due = datetime(2026, 10, 8, 10, 0, tzinfo=SHANGHAI)  # 3 of 4 business hours
        assert armed_due(stack, key) == warning_due
        stack.clock.set(warning_due - timedelta(minutes=1))
        run_until(stack, warning_due + timedelta(minutes=1))
        [warning] = connector_comments(stack, key, "SLA warning")
        assert_on_time(warning, warning_due)
        assert "due 2026-10-08 11:00" in warning["body"]


def test_full_sweep_rebuilds_timers_after_the_queue_and_index_are_lost(stack):
    keys = [p0(stack, created=FRIDAY - timedelta(minutes=m)) for m in (0, 5, 10)]
    stack.settle()
    before = {t.ticket_id: t.due for t in stack.queue.deadlines.armed()}
    assert len(before) == 3

    # A restored backend: no queued tasks, no flags, no timers.
    stack.queue.huey.flush()
    stack.queue.deadlines.clear()
    assert stack.queue.deadlines.armed() == [] and stack.pump() == 0

    stack.jira.reset_calls()
    report = stack.sweep("full")
    assert report.tickets == 3 and report.evaluated == 3 and report.queued == 0
    assert {t.ticket_id: t.due for t in stack.queue.deadlines.armed()} == before
    # One search page per query (open, recently done) and no ticket read twice.
    assert stack.jira.count(path="/rest/api/2/issue/{issueIdOrKey}") == 0
    assert stack.jira.count(method="GET", path="/rest/api/2/search/jql") == 2

    earliest = min(before.values())
    run_until(stack, earliest + timedelta(seconds=30))
    [first] = [k for k in keys if connector_comments(stack, k, "SLA warning")]
    assert_on_time(connector_comments(stack, first, "SLA warning")[0], earliest)


def test_lost_webhook_is_caught_by_the_next_recent_sweep(stack):
    assert stack.sweep("recent").tickets == 0  # sets the watermark
    stack.jira.webhooks.enabled = False
    key = stack.jira.create_issue("VPN drops", description="drops", components=["network"], created=FRIDAY,
                                  fields=INTAKE)
    stack.settle()
    assert connector_comments(stack, key, "please add") == []  # nobody was told

    stack.clock.advance(timedelta(minutes=5))
    report = stack.sweep("recent")
    assert (report.tickets, report.queued) == (1, 1)
    stack.settle()
    assert len(connector_comments(stack, key, "please add")) == 1
    assert stack.jira.issue(key)["fields"]["status"]["name"] == "Waiting for customer"

    # The reconcile's own writes are "recent" too; they evaluate to nothing more to do.
    stack.clock.advance(timedelta(minutes=5))
    report = stack.sweep("recent")
    assert (report.tickets, report.evaluated, report.queued) == (1, 1, 0)


def test_recent_sweep_window_reaches_back_to_the_previous_sweep(stack):
    stack.sweep("recent")
    stack.jira.webhooks.enabled = False
    stack.clock.advance(timedelta(minutes=30))
    # Changed 25 minutes ago: outside a fixed 5-minute window, inside "since the last sweep".
    stack.jira.create_issue("VPN drops", description="drops", components=["network"],
                            created=FRIDAY + timedelta(minutes=5), fields=INTAKE)
    report = stack.sweep("recent")
    assert report.tickets == 1 and report.reasons == {"queued": 1}


def test_one_sweep_per_platform_at_a_time(stack):
    sweeper = stack.sweeper()
    with sweeper.start("jira", "full"):
        with pytest.raises(SweepBusy):
            sweeper.start("jira", "recent")
    # Released when the first one is closed.
    assert sweeper.run("jira", "recent").platform == "jira"


def test_tick_runs_the_sweeps_whose_period_elapsed(stack):
    sweeper = stack.sweeper()
    assert [r.kind for r in sweeper.tick(["jira"])] == ["full", "recent"]
    assert sweeper.tick(["jira"]) == []
    stack.clock.advance(timedelta(minutes=5))
    assert [r.kind for r in sweeper.tick(["jira"])] == ["recent"]
    stack.clock.advance(timedelta(minutes=55))
    assert [r.kind for r in sweeper.tick(["jira"])] == ["full", "recent"]
