"""End to end against a stock Jira Service Management site as it really behaves: transition
screens with required fields, and issues with more comments and history than one read embeds.

The real `jira` client, through the adapter, over HTTP against the strict sandbox; each test
drives `reconcile` itself (webhooks off) so the requests it counts are its own.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.config import load_config
from connector.metrics import REGISTRY
from connector.model import Plan, Status, Transition
from connector.reconcile import reconcile
from connector.sandbox.jira import AGENT, CONNECTOR
from connector.sandbox.server import Clock
from connector.settings import DEFAULT_CONFIG
from connector.stack import LocalStack

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
COMPLETE = {"Impact scope": "Shanghai office", "Steps to reproduce": "Connect, wait", "Error message": "ERR_TIMEOUT",
            "Occurred at": FRIDAY - timedelta(hours=3), "Root cause": "expired certificate",
            "Solution": "renewed the certificate", "Verification result": "Resolved",
            "Knowledge base link": "https://kb.example.com/cert"}


@pytest.fixture
def stack(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY)) as running:
        running.jira.webhooks.enabled = False  # the tests reconcile themselves: no worker races
        yield running


def refused(what: str = "transition") -> float:
    return REGISTRY.get_sample_value("connector_writes_refused_total", {"platform": "jira", "what": what}) or 0.0


def transition_posts(stack) -> int:
    return sum(n for call, n in stack.jira.calls.items() if call.method == "POST" and call.path.endswith("/transitions"))


def writes(stack) -> int:
    return sum(n for call, n in stack.jira.calls.items() if call.method != "GET")


def status(stack, key) -> str:
    return stack.jira.issue(key)["fields"]["status"]["name"]


def resolved_ticket(stack) -> str:
    """A ticket an agent resolved (with its resolution, as the stock Resolve screen demands)."""
    return stack.jira.create_issue(
        "VPN drops", description="drops hourly", components=["network"], environment="Windows 11",
        created=FRIDAY - timedelta(hours=4), fields=COMPLETE,
        history=[(FRIDAY - timedelta(hours=3), "In Progress"), (FRIDAY - timedelta(hours=2), "Resolved")])


def auto_close_comments(stack, key) -> list[dict]:
    return [c for c in stack.jira.issue(key)["fields"]["comment"]["comments"]
            if c["author"]["accountId"] == CONNECTOR and "closing it" in c["body"]]


# --- point 2: transitions with required fields -------------------------------------------------


def test_moving_a_ticket_to_resolved_fills_the_stock_resolution_and_lands_once(stack):
    key = stack.jira.create_issue("Printer jam", description="jams", components=["hardware"], environment="HP",
                                  created=FRIDAY - timedelta(hours=2), fields=COMPLETE,
                                  history=[(FRIDAY - timedelta(hours=1), "In Progress")])
    adapter = stack.runtime.adapter("jira")
    ticket = adapter.fetch(key)
    plan = Plan(platform="jira", ticket_id=ticket.id, ticket_key=key, evaluated_at=FRIDAY,
                actions=[Transition(rule="test", reason="fixed", to=Status.RESOLVED)])

    result = adapter.apply(ticket, plan)

    assert result.writes == [f"POST /rest/api/2/issue/{key}/transitions"] and result.refused == []
    fields = stack.jira.issue(key)["fields"]
    assert fields["status"]["name"] == "Resolved" and fields["resolution"]["name"] == "Done"
    again = adapter.apply(adapter.fetch(key), plan)
    assert again.writes == [] and transition_posts(stack) == 1


def test_auto_close_closes_a_stock_jsm_ticket_once(stack):
    key = resolved_ticket(stack)
    stack.clock.advance(timedelta(days=6))  # past 3 business days

    outcome = reconcile(stack.runtime, "jira", key)

    assert outcome.result.refused == [] and outcome.result.warnings == []
    assert status(stack, key) == "Closed"
    assert stack.jira.issue(key)["fields"]["resolution"]["name"] == "Done"
    assert len(auto_close_comments(stack, key)) == 1
    before = writes(stack)
    assert reconcile(stack.runtime, "jira", key).result.writes == []
    assert writes(stack) == before


def test_required_field_nobody_supplies_stops_the_transition_named_and_never_sent(stack, caplog):
    # A site whose admin put a required "Satisfaction" on the Close screen.
    stack.jira.require_transition_field("Closed", "Satisfaction")
    key = resolved_ticket(stack)
    stack.clock.advance(timedelta(days=6))
    before = refused()

    with caplog.at_level(logging.WARNING, logger="connector.platforms.jira"):
        first = reconcile(stack.runtime, "jira", key)

    assert status(stack, key) == "Resolved"
    [reason] = first.result.refused
    assert "'Satisfaction'" in reason and "'Closed'" in reason and "transition_fields.closed" in reason
    assert reason in first.result.warnings
    assert refused() == before + 1
    [record] = [r for r in caplog.records if r.getMessage() == "jira.transition_fields_missing"]
    assert record.fields == ["Satisfaction"] and record.to_status == "Closed"
    assert transition_posts(stack) == 0  # no request that would fail
    assert len(auto_close_comments(stack, key)) == 1  # the comment of the same plan landed, once

    # Nothing loops: the next reconcile sends no write at all and reports the same.
    before_writes = writes(stack)
    second = reconcile(stack.runtime, "jira", key)
    assert second.result.refused == [reason] and writes(stack) == before_writes
    assert transition_posts(stack) == 0 and len(auto_close_comments(stack, key)) == 1

    # The admin maps a value: the transition lands, with it, exactly once.
    stack.runtime.config.platforms.jira.transition_fields[Status.CLOSED] = {"resolution": "Done", "Satisfaction": 5}
    stack.runtime.adapters.clear()
    third = reconcile(stack.runtime, "jira", key)
    assert third.result.refused == [] and status(stack, key) == "Closed"
    assert stack.jira.issue(key)["fields"]["customfield_10058"] == 5
    assert transition_posts(stack) == 1
    assert reconcile(stack.runtime, "jira", key).result.writes == [] and transition_posts(stack) == 1


def test_value_the_screen_does_not_allow_is_reported_not_sent(stack):
    config = load_config(DEFAULT_CONFIG)
    config.platforms.jira.transition_fields[Status.RESOLVED] = {"resolution": "Fixed"}  # not a JSM resolution
    stack.runtime.config = config
    stack.runtime.adapters.clear()
    key = stack.jira.create_issue("Printer jam", description="jams", components=["hardware"], environment="HP",
                                  created=FRIDAY - timedelta(hours=2), fields=COMPLETE,
                                  history=[(FRIDAY - timedelta(hours=1), "In Progress")])
    adapter = stack.runtime.adapter("jira")
    ticket = adapter.fetch(key)
    plan = Plan(platform="jira", ticket_id=ticket.id, ticket_key=key, evaluated_at=FRIDAY,
                actions=[Transition(rule="test", reason="fixed", to=Status.RESOLVED)])
    result = adapter.apply(ticket, plan)
    [reason] = result.refused
    assert "Resolution" in reason and "'Fixed'" in reason and "Done" in reason and "'Resolved'" in reason
    assert transition_posts(stack) == 0 and status(stack, key) == "In Progress"


def test_transition_jira_refuses_anyway_is_reported_and_not_resent_until_the_issue_changes(stack):
    key = resolved_ticket(stack)
    stack.clock.advance(timedelta(days=6))
    # A workflow validator the screen metadata does not show, answering like Jira does.
    stack.jira.inject(400, path_prefix="/rest/api/2/issue/", method="POST", times=1,
                      body={"errorMessages": [], "errors": {"customfield_10058": "Satisfaction is required."}})
    before = refused()

    first = reconcile(stack.runtime, "jira", key)

    [reason] = first.result.refused
    assert "Satisfaction is required." in reason and "'Closed'" in reason
    assert refused() == before + 1 and status(stack, key) == "Resolved"
    posts = transition_posts(stack)
    # Same issue state: the request that failed is not sent again.
    second = reconcile(stack.runtime, "jira", key)
    assert second.result.refused == [reason] and transition_posts(stack) == posts
    # Someone changes the issue (fills the field): the next reconcile tries again and it lands.
    stack.clock.advance(timedelta(minutes=1))
    stack.jira.set_fields(key, {"Satisfaction": 4}, author=AGENT)
    third = reconcile(stack.runtime, "jira", key)
    assert third.result.refused == [] and status(stack, key) == "Closed"


def test_site_that_ignores_the_nested_expand_on_the_issue_read_is_asked_per_transition(stack):
    stack.jira.store.issue_transition_fields = False
    key = stack.jira.create_issue("Printer jam", description="jams", components=["hardware"], environment="HP",
                                  created=FRIDAY - timedelta(hours=2), fields=COMPLETE,
                                  history=[(FRIDAY - timedelta(hours=1), "In Progress")])
    adapter = stack.runtime.adapter("jira")
    ticket = adapter.fetch(key)
    plan = Plan(platform="jira", ticket_id=ticket.id, ticket_key=key, evaluated_at=FRIDAY,
                actions=[Transition(rule="test", reason="fixed", to=Status.RESOLVED)])
    gets_before = stack.jira.count(method="GET")
    result = adapter.apply(ticket, plan)
    assert result.refused == [] and status(stack, key) == "Resolved"
    assert stack.jira.count(method="GET") == gets_before + 1  # GET /transitions?transitionId=51&expand=...
