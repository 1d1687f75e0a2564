"""Settled tickets: a reconcile or sweep that finds the stamp of the last reconcile, the same
config and `now` before the recorded next deadline does nothing – on Zendesk after one read.

The real zenpy / jira clients through the adapters, over HTTP, against the sandboxes; the
deadline index is the real one in the test's SQLite queue file. Request counts are what the
sandbox served.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.config import load_config
from connector.reconcile import Runtime, reconcile
from connector.sandbox.jira import CUSTOMER as JIRA_CUSTOMER
from connector.sandbox.jira import JiraSandbox
from connector.sandbox.server import Clock
from connector.sandbox.zendesk import CUSTOMER, GROUPS, ZendeskSandbox
from connector.settings import DEFAULT_CONFIG, Settings
from connector.stack import LocalStack

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
INTAKE = {"Category": "network", "Impact scope": "Shanghai office", "Steps to reproduce": "Connect, wait",
          "Occurred at": "2026-11-20", "Environment": "Windows 11"}


@pytest.fixture
def zendesk():
    with ZendeskSandbox(clock=Clock(FRIDAY), deliver_webhooks=False) as sandbox:
        yield sandbox


def zendesk_runtime(zendesk, queue, data_dir, *, mode: str = "enforce") -> Runtime:
    config = load_config(DEFAULT_CONFIG)
    config.platforms.zendesk.groups = {name: str(group_id) for name, group_id in GROUPS.items()}
    settings = Settings(zendesk_url=zendesk.base_url, zendesk_email=zendesk.email, zendesk_token=zendesk.api_token,
                        data_dir=data_dir, mode=mode)
    return Runtime(settings=settings, config=config, clock=zendesk.clock.now,
                   schedule=queue.deadlines.record, lookup=queue.deadlines.entry)


def reloaded_config(*, zendesk: bool = True, backlog_hours: float | None = None):
    """The config file read again, as a hot reload does; `backlog_hours` changes its content."""
    config = load_config(DEFAULT_CONFIG)
    if zendesk:
        config.platforms.zendesk.groups = {name: str(group_id) for name, group_id in GROUPS.items()}
    if backlog_hours is not None:
        config.rollout.backlog_hours = backlog_hours
    return config


def reads(sandbox) -> dict[str, int]:
    """GET requests since the last reset: all of them, and those for audits."""
    calls = sandbox.calls
    return {"all": sum(n for c, n in calls.items() if c.method == "GET"),
            "audits": sum(n for c, n in calls.items() if c.method == "GET" and c.path.endswith("/audits.json"))}


def writes(sandbox) -> int:
    return sum(n for c, n in sandbox.calls.items() if c.method != "GET")


def settle(runtime, zendesk, ticket_id) -> None:
    """The whole read after our write, a stamp tick later: nothing to do, so it settles."""
    zendesk.clock.advance(timedelta(seconds=1))
    assert reconcile(runtime, "zendesk", ticket_id).outcome == "noop"


def new_ticket(zendesk) -> str:
    # Missing the error text: the intake rule asks for it in a one-time public comment.
    return str(zendesk.create_ticket("VPN drops", "The VPN drops every few minutes", custom_fields=dict(INTAKE),
                                     created=FRIDAY - timedelta(minutes=5)))


def test_after_our_write_one_whole_read_settles_then_redeliveries_cost_one_read(zendesk, queue, data_dir):
    runtime = zendesk_runtime(zendesk, queue, data_dir)
    ticket_id = new_ticket(zendesk)
    assert reconcile(runtime, "zendesk", ticket_id).outcome == "applied"  # the intake request
    # Never settled by a write's answer: its stamp is shared by anything else in that second.
    assert queue.deadlines.entry("zendesk", ticket_id).config is None

    zendesk.clock.advance(timedelta(seconds=1))
    zendesk.reset_calls()
    outcome = reconcile(runtime, "zendesk", ticket_id)  # the webhook our own write caused
    assert outcome.outcome == "noop" and not outcome.unchanged
    assert reads(zendesk) == {"all": 2, "audits": 1} and writes(zendesk) == 0
    entry = queue.deadlines.entry("zendesk", ticket_id)
    assert entry.config == runtime.config_fingerprint()
    assert entry.seen.isoformat().replace("+00:00", "Z") == zendesk.ticket(int(ticket_id))["updated_at"]

    zendesk.reset_calls()
    assert reconcile(runtime, "zendesk", ticket_id).unchanged  # a redelivery: one read
    assert reads(zendesk) == {"all": 1, "audits": 0}


def test_changed_ticket_is_read_whole_and_evaluated(zendesk, queue, data_dir):
    runtime = zendesk_runtime(zendesk, queue, data_dir)
    ticket_id = new_ticket(zendesk)
    reconcile(runtime, "zendesk", ticket_id)
    zendesk.clock.advance(timedelta(minutes=1))
    zendesk.add_comment(int(ticket_id), "Still broken", author=CUSTOMER)

    zendesk.reset_calls()
    outcome = reconcile(runtime, "zendesk", ticket_id)
    assert not outcome.unchanged and outcome.plan is not None
    assert reads(zendesk)["audits"] == 1


def test_deadline_reached_is_evaluated_and_acted_on(zendesk, queue, data_dir):
    runtime = zendesk_runtime(zendesk, queue, data_dir)
    # Intake complete: routed, and its first-response clock runs.
    ticket_id = str(zendesk.create_ticket("VPN drops", "drops", custom_fields={**INTAKE, "Error message": "E1"},
                                          created=FRIDAY - timedelta(minutes=5)))
    reconcile(runtime, "zendesk", ticket_id)
    settle(runtime, zendesk, ticket_id)
    entry = queue.deadlines.entry("zendesk", ticket_id)
    assert entry.next is not None  # the first-response SLA's next step

    zendesk.clock.set(entry.next - timedelta(seconds=1))
    zendesk.reset_calls()
    assert reconcile(runtime, "zendesk", ticket_id).unchanged  # one second early: nothing can be due
    assert reads(zendesk)["audits"] == 0

    zendesk.clock.set(entry.next)
    zendesk.reset_calls()
    outcome = reconcile(runtime, "zendesk", ticket_id)
    assert not outcome.unchanged and reads(zendesk)["audits"] == 1
    assert outcome.plan.actions  # the SLA warning/breach the deadline was for
    assert writes(zendesk) >= 1


def test_config_reload_makes_every_ticket_evaluated_again(zendesk, queue, data_dir):
    runtime = zendesk_runtime(zendesk, queue, data_dir)
    ticket_id = new_ticket(zendesk)
    reconcile(runtime, "zendesk", ticket_id)
    settle(runtime, zendesk, ticket_id)
    assert reconcile(runtime, "zendesk", ticket_id).unchanged

    runtime.replace_config(reloaded_config(backlog_hours=runtime.config.rollout.backlog_hours + 1))
    zendesk.clock.advance(timedelta(seconds=1))  # a read one stamp tick later can settle it (see below)
    zendesk.reset_calls()
    outcome = reconcile(runtime, "zendesk", ticket_id)
    assert not outcome.unchanged and reads(zendesk)["audits"] == 1
    # Settled again under the new config.
    zendesk.reset_calls()
    assert reconcile(runtime, "zendesk", ticket_id).unchanged
    assert reads(zendesk) == {"all": 1, "audits": 0}


def test_same_config_content_reloaded_keeps_tickets_settled(zendesk, queue, data_dir):
    runtime = zendesk_runtime(zendesk, queue, data_dir)
    ticket_id = new_ticket(zendesk)
    reconcile(runtime, "zendesk", ticket_id)
    settle(runtime, zendesk, ticket_id)
    runtime.replace_config(reloaded_config())  # a reload of an unchanged file
    assert reconcile(runtime, "zendesk", ticket_id).unchanged


def test_observe_mode_settles_without_writing(zendesk, queue, data_dir):
    runtime = zendesk_runtime(zendesk, queue, data_dir, mode="observe")
    ticket_id = new_ticket(zendesk)
    first = reconcile(runtime, "zendesk", ticket_id)
    assert first.outcome == "observed" and writes(zendesk) == 0
    entry = queue.deadlines.entry("zendesk", ticket_id)
    # Nothing was written, so the stamp as read is current, and the ticket is settled at it.
    assert entry.seen.isoformat().replace("+00:00", "Z") == zendesk.ticket(int(ticket_id))["updated_at"]
    assert entry.config == runtime.config_fingerprint()

    zendesk.reset_calls()
    second = reconcile(runtime, "zendesk", ticket_id)
    assert second.unchanged and reads(zendesk) == {"all": 1, "audits": 0} and writes(zendesk) == 0

    # Enforce mode is another fingerprint: switching evaluates (and writes) at once.
    enforcing = zendesk_runtime(zendesk, queue, data_dir)
    assert enforcing.config_fingerprint() != runtime.config_fingerprint()
    assert reconcile(enforcing, "zendesk", ticket_id).outcome == "applied"


def test_write_without_a_returned_stamp_is_not_settled_until_read_again(tmp_path, queue):
    # Jira's edit answers 204 without the new `updated`: the next reconcile evaluates once
    # (one read, as always on Jira) and settles the ticket; the one after skips evaluation.
    config = load_config(DEFAULT_CONFIG)
    with JiraSandbox(clock=Clock(FRIDAY), timezone="Asia/Shanghai", deliver_webhooks=False) as jira:
        runtime = Runtime(settings=Settings(jira_url=jira.base_url, jira_user=jira.email, jira_token=jira.api_token),
                          config=config, clock=jira.clock.now,
                          schedule=queue.deadlines.record, lookup=queue.deadlines.entry)
        key = jira.create_issue("VPN drops", description="drops", components=["network"],
                                created=FRIDAY - timedelta(minutes=5),
                                fields={"Impact scope": "office", "Steps to reproduce": "connect",
                                        "Occurred at": FRIDAY - timedelta(hours=1)})
        assert reconcile(runtime, "jira", key).outcome == "applied"
        ticket_id = jira.issue(key)["id"]
        assert queue.deadlines.entry("jira", ticket_id).config is None
        jira.clock.advance(timedelta(milliseconds=1))  # Jira's stamps are milliseconds
        again = reconcile(runtime, "jira", key)
        assert not again.unchanged and again.outcome == "noop"
        jira.reset_calls()
        third = reconcile(runtime, "jira", key)
        assert third.unchanged and sum(n for c, n in jira.calls.items() if c.method == "GET") == 1
        jira.clock.advance(timedelta(seconds=1))
        jira.set_fields(key, {"environment": "Windows 11"}, author=JIRA_CUSTOMER)
        assert not reconcile(runtime, "jira", key).unchanged


class CountingIndex:
    """The real index, counting the storage transactions the sweep asks it for."""

    def __init__(self, index):
        self._index = index
        self.single = 0
        self.pages: list[int] = []

    def record(self, *args, **kwargs):
        self.single += 1
        return self._index.record(*args, **kwargs)

    def record_many(self, rows):
        rows = list(rows)
        self.pages.append(len(rows))
        return self._index.record_many(rows)

    def __getattr__(self, name):
        return getattr(self._index, name)


def test_jira_sweep_skips_settled_tickets_and_writes_the_index_once_per_page(tmp_path):
    from connector.sync.sweep import Sweeper

    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY)) as stack:
        stack.jira.add_user("team-lead", "Tess Lead", "lead@example.com")
        keys = [stack.jira.create_issue(f"VPN drops {i}", description="drops", components=["network"],
                                        environment="Linux", created=FRIDAY - timedelta(minutes=5),
                                        fields={"Impact scope": "office", "Steps to reproduce": "connect",
                                                "Error message": "E1", "Occurred at": FRIDAY - timedelta(hours=1)})
                for i in range(5)]
        stack.settle()  # webhooks → reconciles → writes (Jira's answer carries no new stamp: not settled)
        stack.clock.advance(timedelta(seconds=1))
        index = CountingIndex(stack.queue.deadlines)
        sweeper = Sweeper(stack.runtime, stack.queue, index=index)
        report = sweeper.run("jira", "full")  # evaluates them from the listing and settles them
        assert (report.tickets, report.unchanged, report.evaluated, report.queued) == (5, 0, 5, 0)
        assert index.single == 0 and index.pages == [5]  # one transaction for the page

        stack.jira.reset_calls()
        report = sweeper.run("jira", "full")
        assert (report.tickets, report.unchanged, report.evaluated, report.queued) == (5, 5, 0, 0)
        # The search pages only: no issue read, no write.
        assert stack.jira.count() == stack.jira.count(method="GET") > 0
        assert not [c for c in stack.jira.calls if "/issue/" in c.path]
        assert index.single == 0 and index.pages == [5]  # nothing to re-arm

        # A hot reload: every ticket evaluated again, nothing queued, the index written once.
        stack.runtime.replace_config(reloaded_config(zendesk=False,
                                                     backlog_hours=stack.runtime.config.rollout.backlog_hours + 1))
        report = sweeper.run("jira", "full")
        assert (report.unchanged, report.evaluated, report.queued) == (0, 5, 0)
        assert index.single == 0 and index.pages == [5, 5]
        assert sweeper.run("jira", "full").unchanged == 5

        # A ticket changed by a human is evaluated, the others are not …
        stack.jira.webhooks.enabled = False
        stack.clock.advance(timedelta(seconds=1))
        stack.jira.add_comment(keys[0], "Any news?", author=JIRA_CUSTOMER)
        report = sweeper.run("jira", "full")
        assert (report.unchanged, report.evaluated) == (4, 1)
        # … and once their next deadline is reached, every ticket is evaluated again.
        due = min(timer.due for timer in stack.queue.deadlines.armed("jira"))
        stack.clock.set(due)
        report = sweeper.run("jira", "full")
        assert (report.tickets, report.unchanged, report.evaluated) == (5, 0, 5)


def test_zendesk_sweep_queues_only_tickets_not_settled(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY), zendesk=True) as stack:
        ids = [new_ticket(stack.zendesk) for _ in range(3)]
        stack.settle()
        stack.clock.advance(timedelta(seconds=1))
        for ticket_id in ids:  # the whole read after our write settles each
            reconcile(stack.runtime, "zendesk", ticket_id)
        stack.zendesk.reset_calls()
        report = stack.sweep("full", platform="zendesk")
        assert (report.tickets, report.unchanged, report.queued) == (3, 3, 0)
        assert reads(stack.zendesk)["audits"] == 0

        stack.zendesk.webhooks.enabled = False
        stack.clock.advance(timedelta(seconds=1))  # Zendesk stamps are whole seconds
        stack.zendesk.add_comment(int(ids[1]), "Any news?", author=CUSTOMER)
        report = stack.sweep("full", platform="zendesk")
        assert (report.unchanged, report.queued) == (2, 1)


def test_a_read_within_the_stamps_tick_does_not_settle(zendesk, queue, data_dir):
    # Zendesk stamps are whole seconds: a change later in the same second would keep the
    # stamp, so a read taken in the stamp's own second settles nothing (git's "racy clean").
    runtime = zendesk_runtime(zendesk, queue, data_dir, mode="observe")  # nothing written: stamps stay
    ticket_id = new_ticket(zendesk)
    zendesk.clock.set(FRIDAY)  # the ticket's stamp is its creation at FRIDAY - 5 min ...
    zendesk.add_comment(int(ticket_id), "More detail", author=CUSTOMER)  # ... now FRIDAY
    reconcile(runtime, "zendesk", ticket_id)  # read in the stamp's second
    assert queue.deadlines.entry("zendesk", ticket_id).config is None
    zendesk.add_comment(int(ticket_id), "And another", author=CUSTOMER)  # same second, same stamp
    zendesk.reset_calls()
    assert not reconcile(runtime, "zendesk", ticket_id).unchanged
    assert reads(zendesk)["audits"] == 1


def test_a_comment_in_the_second_of_our_write_is_seen(zendesk, queue, data_dir):
    # The stamp of our write's answer is shared by a customer's comment in the same second,
    # which changes no field of the ticket object: only the audits show it. The ticket is
    # not settled by the write, so the next reconcile reads the audits and sees the reply.
    runtime = zendesk_runtime(zendesk, queue, data_dir)
    ticket_id = new_ticket(zendesk)
    assert reconcile(runtime, "zendesk", ticket_id).outcome == "applied"
    stamp = zendesk.ticket(int(ticket_id))["updated_at"]
    zendesk.add_comment(int(ticket_id), "The error is E42", author=CUSTOMER)  # frozen clock: same second
    assert zendesk.ticket(int(ticket_id))["updated_at"] == stamp
    zendesk.clock.advance(timedelta(minutes=1))
    zendesk.reset_calls()
    outcome = reconcile(runtime, "zendesk", ticket_id)
    assert not outcome.unchanged and reads(zendesk)["audits"] == 1
    assert any(c.body == "The error is E42" for c in runtime.adapter("zendesk").fetch(ticket_id).comments)
