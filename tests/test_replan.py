"""A write refused because the ticket changed under it (409, StaleTicket) is re-read and
re-planned at once, a bounded number of times, and never loses or doubles the comment.

The race is real: the real zenpy client through the adapter against the sandbox Zendesk,
whose safe update answers 409 when a human edited the ticket between our read and our write.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.config import load_config
from connector.platforms.base import Conflict, StaleTicket
from connector.queue.reconcile_queue import ReconcileQueue
from connector.reconcile import REPLAN_ATTEMPTS, REPLAN_PAUSE, Runtime, reconcile
from connector.sandbox.server import Clock
from connector.sandbox.zendesk import AGENT, CONNECTOR, GROUPS, ZendeskSandbox
from connector.settings import DEFAULT_CONFIG, Settings

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
INTAKE = {"Category": "network", "Impact scope": "Shanghai office", "Steps to reproduce": "Connect, wait",
          "Occurred at": "2026-11-20", "Environment": "Windows 11"}


@pytest.fixture
def zendesk():
    with ZendeskSandbox(clock=Clock(FRIDAY), deliver_webhooks=False) as sandbox:
        yield sandbox


class RacingAdapter:
    """The real adapter, with a human edit landing between each of the first `races` fetches
    and the write that follows it – the window a real agent hits by saving at the wrong second."""

    def __init__(self, adapter, race) -> None:
        self._adapter = adapter
        self._race = race
        self.platform = adapter.platform
        self.fetches = 0

    def fetch(self, ticket_id):
        ticket = self._adapter.fetch(ticket_id)
        self.fetches += 1
        self._race(self.fetches)
        return ticket

    def apply(self, ticket, plan):
        return self._adapter.apply(ticket, plan)

    def search(self, query, fields=None):
        return self._adapter.search(query, fields)

    def __getattr__(self, name):
        return getattr(self._adapter, name)


def runtime_with(zendesk, race, sleeps):
    config = load_config(DEFAULT_CONFIG)
    config.platforms.zendesk.groups = {name: str(group_id) for name, group_id in GROUPS.items()}
    settings = Settings(zendesk_url=zendesk.base_url, zendesk_email=zendesk.email, zendesk_token=zendesk.api_token)
    runtime = Runtime(settings=settings, config=config, clock=zendesk.clock.now,
                      sleep=sleeps.append, uniform=lambda low, high: high)
    racing = RacingAdapter(runtime.adapter("zendesk"), race)
    runtime.adapters["zendesk"] = racing
    return runtime, racing


def connector_comments(zendesk, ticket_id):
    return [e for audit in zendesk.audits(ticket_id) for e in audit["events"]
            if e["type"] == "Comment" and e["author_id"] == CONNECTOR]


def new_ticket_missing_error_text(zendesk):
    # The intake rule asks for the exact error message in a one-time public comment.
    return zendesk.create_ticket("VPN drops", "The VPN drops every few minutes", custom_fields=dict(INTAKE),
                                 created=FRIDAY - timedelta(minutes=5))


def test_409_from_a_human_edit_is_replanned_at_once_and_keeps_the_human_change(zendesk, metric):
    ticket_id = new_ticket_missing_error_text(zendesk)
    sleeps: list[float] = []

    def race(fetch_number):
        if fetch_number == 1:
            zendesk.clock.advance(timedelta(seconds=30))
            zendesk.set_fields(ticket_id, {"tags": ["vip-customer"]}, author=AGENT)

    runtime, racing = runtime_with(zendesk, race, sleeps)
    before = metric("connector_replans_total", platform="zendesk", outcome="retried")

    outcome = reconcile(runtime, "zendesk", str(ticket_id))

    assert outcome.outcome == "applied"
    assert racing.fetches == 2  # one re-read, not a wait for the next event or sweep
    assert sleeps == [REPLAN_PAUSE]  # short, jittered (uniform fixed to its upper bound here)
    assert metric("connector_replans_total", platform="zendesk", outcome="retried") == before + 1
    [request] = connector_comments(zendesk, ticket_id)
    assert "error message" in request["body"].casefold()
    tags = set(zendesk.ticket(ticket_id)["tags"])
    assert "vip-customer" in tags and "spc-intake-requested" in tags  # the human's tag survived

    # Nothing left to do: a second reconcile writes nothing and posts no second comment.
    assert reconcile(runtime, "zendesk", str(ticket_id)).outcome == "noop"
    assert len(connector_comments(zendesk, ticket_id)) == 1


def test_a_ticket_that_keeps_changing_is_given_up_after_the_bound_and_left_to_the_queue(zendesk, metric):
    ticket_id = new_ticket_missing_error_text(zendesk)
    sleeps: list[float] = []

    def race(fetch_number):
        zendesk.clock.advance(timedelta(seconds=1))
        zendesk.set_fields(ticket_id, {"tags": [f"edit-{fetch_number}"]}, author=AGENT)

    runtime, racing = runtime_with(zendesk, race, sleeps)
    gave_up = metric("connector_replans_total", platform="zendesk", outcome="gave_up")

    with pytest.raises(Conflict) as raised:
        reconcile(runtime, "zendesk", str(ticket_id))

    assert raised.value.status == 409
    assert racing.fetches == REPLAN_ATTEMPTS + 1
    # Pauses grow with each attempt, so colliding workers spread out.
    assert sleeps == [REPLAN_PAUSE * n for n in range(1, REPLAN_ATTEMPTS + 1)]
    assert metric("connector_replans_total", platform="zendesk", outcome="gave_up") == gave_up + 1
    assert connector_comments(zendesk, ticket_id) == []


def test_the_queue_retries_a_conflict_later_instead_of_dropping_it(settings, monkeypatch):
    queue = ReconcileQueue.from_settings(settings)
    calls = []

    def always_conflicting(platform, ticket_id):
        calls.append(ticket_id)
        raise Conflict("edited meanwhile", platform=platform, status=409)

    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(always_conflicting))
    assert queue.run_reconcile("zendesk", "42") == "retry"
    assert calls == ["42"]
    assert queue.pending_count() == 1  # a later attempt is stored, with the queue's back-off


def test_stale_ticket_is_replanned_like_a_conflict(zendesk):
    ticket_id = new_ticket_missing_error_text(zendesk)
    sleeps: list[float] = []
    runtime, racing = runtime_with(zendesk, lambda n: None, sleeps)
    real_apply = racing.apply
    raised = []

    def apply_once_stale(ticket, plan):
        if not raised:
            raised.append(True)
            raise StaleTicket("Status: closed prevents ticket update", platform="zendesk", status=422)
        return real_apply(ticket, plan)

    racing.apply = apply_once_stale
    assert reconcile(runtime, "zendesk", str(ticket_id)).outcome == "applied"
    assert racing.fetches == 2 and len(sleeps) == 1
    assert len(connector_comments(zendesk, ticket_id)) == 1
