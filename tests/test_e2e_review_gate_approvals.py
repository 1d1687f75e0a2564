"""The review gate's approvals end to end: sandbox Jira → signed webhook → receiver → queue →
worker → the real `jira` client, with the shipped configuration.

A data fix resolved without a reviewer but with a Jira Service Management approval by a
second person stays resolved; without one (or with one declined, or approved only by the
assignee) it is moved back with a note naming both records. The approvals endpoint – an extra
request – is called only for a critical change in a done status that the reviewer field does
not settle: never for an open ticket, an ordinary change or a ticket with a reviewer.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.reconcile import reconcile
from connector.sandbox import jira as jira_sandbox
from connector.sandbox.server import Clock
from connector.stack import LocalStack

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
KNOWLEDGE = {"Root cause": "a bad row in the rates table", "Solution": "corrected the row",
             "Verification result": "Resolved", "Knowledge base link": "https://kb.example.com/42",
             "Recurrence note": "first time", "Preventive measures": "a check on the rates table"}
FIELDS = {"Impact scope": "Shanghai office", "Steps to reproduce": "Open the invoice", "Error message": "none",
          "Occurred at": FRIDAY - timedelta(hours=3), **KNOWLEDGE, "Change type": "Data fix"}
APPROVALS = "/rest/servicedeskapi/request/{issueIdOrKey}/approval"
REVIEWER = "acc-reviewer"
AGENT = jira_sandbox.AGENT


@pytest.fixture
def stack(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY)) as running:
        running.jira.add_user(REVIEWER, "Rita Reviewer", "rita@example.com")
        yield running


def approval_reads(stack) -> int:
    return stack.jira._calls.count("GET", APPROVALS)


def in_progress(stack, fields=FIELDS) -> str:
    key = stack.jira.create_issue("Invoice totals wrong", description="rates", components=["billing"],
                                  environment="Web", assignee=AGENT, created=FRIDAY - timedelta(hours=2),
                                  fields=fields)
    stack.settle()
    stack.jira.set_status(key, "In Progress", at=FRIDAY - timedelta(hours=1))
    stack.settle()
    return key


def resolve(stack, key) -> str:
    stack.jira.clock.advance(timedelta(minutes=5))
    stack.jira.set_status(key, "Resolved", author=AGENT)
    stack.settle()
    return stack.jira.issue(key)["fields"]["status"]["name"]


def gate_notes(stack, key):
    return [c for c in stack.jira.issue(key)["fields"]["comment"]["comments"]
            if c["author"]["accountId"] == jira_sandbox.CONNECTOR and "critical change" in c["body"]]


def test_an_approval_by_a_second_person_lets_the_data_fix_stay_resolved(stack):
    key = in_progress(stack)
    assert approval_reads(stack) == 0  # open: the outcome does not depend on approvals
    approval = stack.jira.add_approval(key, [REVIEWER, AGENT], name="Data fix review")
    stack.jira.decide_approval(key, approval, REVIEWER, "approve")
    assert resolve(stack, key) == "Resolved" and gate_notes(stack, key) == []
    assert approval_reads(stack) >= 1
    # Idempotent: nothing is written on the next reconcile.
    assert reconcile(stack.runtime, "jira", key).result.writes == []
    # The sweep's read-only pass does not read approvals (fail closed): it skips the settled
    # ticket or queues a reconcile, which reads them – either way the resolve stands.
    stack.jira.reset_calls()
    stack.sweep("full")
    stack.settle()
    assert stack.jira.issue(key)["fields"]["status"]["name"] == "Resolved" and gate_notes(stack, key) == []
    assert approval_reads(stack) <= 1


def test_without_an_approval_the_data_fix_is_moved_back_naming_both_records(stack):
    key = in_progress(stack)
    assert resolve(stack, key) == "In Progress"
    [note] = gate_notes(stack, key)
    assert "Reviewer (or an approval by someone other than the assignee)" in note["body"]
    assert note["jsdPublic"] is False
    assert "spc-review-gate-returned-1" in stack.jira.issue(key)["fields"]["labels"]
    assert reconcile(stack.runtime, "jira", key).result.writes == []


def test_a_declined_approval_or_one_by_the_assignee_does_not_count(stack):
    key = in_progress(stack)
    declined = stack.jira.add_approval(key, [REVIEWER])
    stack.jira.decide_approval(key, declined, REVIEWER, "decline")
    assert resolve(stack, key) == "In Progress"
    own = stack.jira.add_approval(key, [AGENT])
    stack.jira.decide_approval(key, own, AGENT, "approve")
    assert resolve(stack, key) == "In Progress"
    notes = gate_notes(stack, key)
    assert len(notes) == 2 and "cannot review their own change" in notes[-1]["body"]


def test_the_approval_step_resolving_the_request_is_picked_up_by_its_webhook(stack):
    # A JSM approval step on "In Progress" whose Approve transition goes to Resolved: the
    # approver's decision moves the request, and that status change's webhook is reconciled.
    key = in_progress(stack)
    approval = stack.jira.add_approval(key, [REVIEWER], approve_to="Resolved", decline_to="In Progress")
    stack.jira.decide_approval(key, approval, REVIEWER, "approve")
    stack.settle()
    assert stack.jira.issue(key)["fields"]["status"]["name"] == "Resolved" and gate_notes(stack, key) == []


def test_the_approvals_endpoint_is_not_called_when_the_outcome_does_not_depend_on_it(stack):
    ordinary = in_progress(stack, {**FIELDS, "Change type": "Standard"})
    assert resolve(stack, ordinary) == "Resolved"
    reviewed = in_progress(stack, {**FIELDS, "Reviewer": REVIEWER})
    assert resolve(stack, reviewed) == "Resolved"
    open_critical = in_progress(stack)
    stack.jira.add_comment(open_critical, "Any news?")
    stack.settle()
    assert approval_reads(stack) == 0
    # The control: the same kind of ticket resolved without a reviewer does ask (once).
    assert resolve(stack, open_critical) == "In Progress" and approval_reads(stack) == 1
