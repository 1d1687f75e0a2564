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


def in_progress_ticket(stack) -> str:
    """A ticket an agent is working on, every field filled: nothing but the move is left."""
    return stack.jira.create_issue("Printer jam", description="jams", components=["hardware"], environment="HP",
                                   created=FRIDAY - timedelta(hours=2), fields=COMPLETE,
                                   history=[(FRIDAY - timedelta(hours=1), "In Progress")])


def resolve_plan(ticket_id: str, key: str) -> Plan:
    """A plan of one action: move the ticket to Resolved."""
    return Plan(platform="jira", ticket_id=ticket_id, ticket_key=key, evaluated_at=FRIDAY,
                actions=[Transition(rule="test", reason="fixed", to=Status.RESOLVED)])


def auto_close_comments(stack, key) -> list[dict]:
    return [c for c in stack.jira.issue(key)["fields"]["comment"]["comments"]
            if c["author"]["accountId"] == CONNECTOR and "closing it" in c["body"]]


# --- point 2: transitions with required fields -------------------------------------------------


def test_moving_a_ticket_to_resolved_fills_the_stock_resolution_and_lands_once(stack):
    key = in_progress_ticket(stack)
    adapter = stack.runtime.adapter("jira")
    ticket = adapter.fetch(key)
    plan = resolve_plan(ticket.id, key)

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
    key = in_progress_ticket(stack)
    adapter = stack.runtime.adapter("jira")
    ticket = adapter.fetch(key)
    plan = resolve_plan(ticket.id, key)
    result = adapter.apply(ticket, plan)
    [reason] = result.refused
    assert "Resolution" in reason and "'Fixed'" in reason and "Done" in reason and "'Resolved'" in reason
    assert transition_posts(stack) == 0 and status(stack, key) == "In Progress"


def test_transition_jira_refuses_anyway_is_reported_and_not_resent_until_the_issue_changes(stack):
    key = resolved_ticket(stack)
    stack.clock.advance(timedelta(days=6))
    # A workflow validator the screen metadata does not show, answering like Jira does.
    stack.jira.inject(400, path_prefix=f"/rest/api/2/issue/{key}/transitions", method="POST", times=1,
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
    key = in_progress_ticket(stack)
    adapter = stack.runtime.adapter("jira")
    ticket = adapter.fetch(key)
    plan = resolve_plan(ticket.id, key)
    gets_before = stack.jira.count(method="GET")
    result = adapter.apply(ticket, plan)
    assert result.refused == [] and status(stack, key) == "Resolved"
    assert stack.jira.count(method="GET") == gets_before + 1  # GET /transitions?transitionId=51&expand=...


# --- point 4: more comments and history than one read embeds -----------------------------------

WEDNESDAY = datetime(2026, 11, 18, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def long_ticket(jira, *, comments: int = 150, changes: int = 120, priority: str = "High") -> str:
    """A P1 ticket whose first response and early waiting periods are in its oldest comments
    and changelog entries: exactly what a capped read drops."""
    key = jira.create_issue("Sync stalls", description="stalls", components=["network"], environment="Linux",
                            priority=priority, created=WEDNESDAY, fields=COMPLETE)
    at = WEDNESDAY
    for n in range(min(changes, 20)):  # early flips: half of them pause the clocks
        at += timedelta(minutes=7)
        jira.set_status(key, "Waiting for customer" if n % 2 == 0 else "In Progress", author=AGENT, at=at)
    for n in range(changes - min(changes, 20)):
        at += timedelta(minutes=1)
        jira.set_fields(key, {"Impact scope": f"office {n}"}, author=AGENT, at=at)
    for n in range(comments):
        at += timedelta(minutes=2)
        jira.add_comment(key, f"update {n}", author=AGENT if n % 3 == 0 else None, at=at)
    return key


def test_sla_clocks_of_a_long_ticket_equal_those_of_the_whole_ticket(stack):
    from connector.rules.engine import evaluate

    key = long_ticket(stack.jira)
    now = WEDNESDAY + timedelta(days=2)
    adapter = stack.runtime.adapter("jira")
    adapter.field_catalogue()  # the field list is read once per process; not part of a fetch
    gets = {path: stack.jira.count(method="GET", path=path) for path in (
        "/rest/api/2/issue/{issueIdOrKey}", "/rest/api/2/issue/{issueIdOrKey}/comment",
        "/rest/api/2/issue/{issueIdOrKey}/changelog")}

    fetched = adapter.fetch(key)

    # One issue read, one comment page (the 50 oldest), one changelog page (the 20 oldest).
    assert {path: stack.jira.count(method="GET", path=path) - n for path, n in gets.items()} == {
        "/rest/api/2/issue/{issueIdOrKey}": 1, "/rest/api/2/issue/{issueIdOrKey}/comment": 1,
        "/rest/api/2/issue/{issueIdOrKey}/changelog": 1}
    whole = adapter.parse(stack.jira.issue(key, expand="changelog,names"))  # uncapped, as stored
    assert len(fetched.comments) == len(whole.comments) == 150
    assert fetched.status_history == whole.status_history
    config = stack.runtime.config
    completed_plan, whole_plan = evaluate(fetched, now, config), evaluate(whole, now, config)
    assert completed_plan.sla == whole_plan.sla and completed_plan.next_deadline == whole_plan.next_deadline
    assert {"first_response", "periodic_update", "resolution"} <= set(whole_plan.sla)

    # What the capped read alone would have said: different clocks (the test can fail).
    capped = stack.jira.store.issue_json(stack.jira.store.get(key), expand="changelog,names",
                                         comment_cap=100, changelog_cap=100)
    capped_plan = evaluate(adapter.parse(capped), now, config)
    assert capped_plan.sla["first_response"] != whole_plan.sla["first_response"]
    assert capped_plan.sla["resolution"] != whole_plan.sla["resolution"]


def steady(stack, key) -> None:
    for _ in range(3):
        if reconcile(stack.runtime, "jira", key).result.writes == []:
            return
    raise AssertionError(f"{key} does not settle")


def test_sweep_completes_only_the_cut_short_tickets_in_bulk(stack):
    short = [stack.jira.create_issue(f"Printer {n}", description="jams", components=["hardware"], environment="HP",
                                     priority="Low", created=FRIDAY - timedelta(hours=3), fields=COMPLETE,
                                     history=[(FRIDAY - timedelta(hours=2), "In Progress")]) for n in range(4)]
    for key in short:
        stack.jira.add_comment(key, "On it", author=AGENT, at=FRIDAY - timedelta(hours=2))
    history_only = long_ticket(stack.jira, comments=10, changes=60, priority="Low")
    both = long_ticket(stack.jira, comments=130, changes=60, priority="Low")
    for key in (*short, history_only, both):
        steady(stack, key)
    stack.clock.advance(timedelta(minutes=1))
    for key in (history_only, both):  # changed since their last reconcile: the sweep must look
        stack.jira.add_comment(key, "Still there?", at=stack.clock.now())
    # The sweep starts a second later: a listing taken in the millisecond of a change cannot
    # settle the ticket (a later change in that millisecond would keep its stamp).
    stack.clock.advance(timedelta(seconds=1))
    stack.runtime.adapter("jira").is_cloud()  # asked once per process, not per sweep
    calls_before = dict(stack.jira.calls)

    report = stack.sweeper().run("jira", "full")

    spent = {(call.method, call.path): n - calls_before.get(call, 0) for call, n in stack.jira.calls.items()
             if n - calls_before.get(call, 0)}
    assert report.tickets == 6 and report.evaluated == 6 and report.completed == 2 and report.queued == 0
    assert spent == {
        ("GET", "/rest/api/2/search/jql"): 2,  # open tickets, recently closed ones
        ("POST", "/rest/api/3/changelog/bulkfetch"): 1,  # both long histories in one request
        ("GET", "/rest/api/2/issue/{issueIdOrKey}/comment"): 1,  # only the ticket with 131 comments
    }

    # Unchanged since: the cut-short tickets are skipped without a request.
    calls_before = dict(stack.jira.calls)
    again = stack.sweeper().run("jira", "full")
    spent = {(call.method, call.path): n - calls_before.get(call, 0) for call, n in stack.jira.calls.items()
             if n - calls_before.get(call, 0)}
    assert again.completed == 0 and spent == {("GET", "/rest/api/2/search/jql"): 2}


def test_data_center_listing_completes_comments_and_leaves_long_histories_to_a_fetch(tmp_path):
    from connector.sandbox.jira import JiraSandbox
    from connector.settings import Settings
    from connector.platforms.jira import JiraAdapter

    with JiraSandbox(deployment="Server", clock=Clock(FRIDAY), timezone="Asia/Shanghai",
                     deliver_webhooks=False) as jira:
        chatty = long_ticket(jira, comments=130, changes=10)
        storied = long_ticket(jira, comments=5, changes=60)
        config = load_config(DEFAULT_CONFIG)
        adapter = JiraAdapter.from_settings(Settings(jira_url=jira.base_url, jira_token=jira.pat),
                                            config.platforms.jira)
        raws = list(adapter.search("ORDER BY key ASC", expand="changelog"))
        completed = adapter.complete_listed(raws)
        ids = {jira.issue(chatty)["id"]: chatty, jira.issue(storied)["id"]: storied}
        assert [ids[i] for i in completed] == [chatty]
        [raw] = completed.values()
        assert len(raw["fields"]["comment"]["comments"]) == raw["fields"]["comment"]["total"] == 130
        # The long history needs the issue read, which Data Center does not cap.
        assert len(adapter.fetch(storied).status_history) == 21  # creation + 20 changes


def test_sweep_queues_the_cut_short_tickets_it_could_not_complete(stack):
    history_only = long_ticket(stack.jira, comments=10, changes=60, priority="Low")
    steady(stack, history_only)
    stack.clock.advance(timedelta(minutes=1))
    stack.jira.add_comment(history_only, "Still there?", at=stack.clock.now())
    stack.jira.inject(403, path_prefix="/rest/api/3/changelog/bulkfetch", times=None)

    report = stack.sweeper().run("jira", "full")

    assert report.completed == 0 and report.queued == 1 and report.evaluated == 0
    assert stack.jira.count(method="POST", path="/rest/api/3/changelog/bulkfetch", status=403) == 1
    stack.jira.clear_faults()
    stack.settle()  # the queued reconcile reads the issue (and pages its changelog) instead
