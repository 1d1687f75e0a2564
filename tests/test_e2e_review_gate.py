"""The review gate end to end: the real `jira` / `zenpy` clients through the adapters and
`reconcile`, over HTTP against the strict sandboxes, with the shipped configuration.

A critical change resolved without a reviewer is moved back once per attempt with a note
naming the reviewer field; the next reconcile writes nothing; the assignee recorded as their
own reviewer is answered the same way; a second person's review lets the resolve stand.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.config import load_config
from connector.reconcile import Runtime, reconcile
from connector.sandbox.jira import AGENT as JIRA_AGENT, CONNECTOR as JIRA_CONNECTOR, JiraSandbox
from connector.sandbox.server import Clock
from connector.sandbox.zendesk import AGENT, CONNECTOR, GROUPS, L2_AGENT, ZendeskSandbox
from connector.settings import DEFAULT_CONFIG, Settings

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
KNOWLEDGE = {"Root cause": "a bad row in the rates table", "Solution": "corrected the row",
             "Verification result": "Resolved", "Knowledge base link": "https://kb.example.com/42",
             "Recurrence note": "first time"}
JIRA_FIELDS = {"Impact scope": "Shanghai office", "Steps to reproduce": "Open the invoice", "Error message": "none",
               "Occurred at": FRIDAY - timedelta(hours=3), **KNOWLEDGE, "Change type": "Data fix"}
ZENDESK_FIELDS = {"Category": "billing", "Impact scope": "Shanghai office", "Steps to reproduce": "Open the invoice",
                  "Error message": "none", "Occurred at": "2026-11-20", "Environment": "Web", **KNOWLEDGE,
                  "Change type": "Data fix"}
REVIEWER = "acc-reviewer"


def non_get(sandbox) -> int:
    return sum(n for call, n in sandbox.calls.items() if call.method != "GET")


# --- Jira ---------------------------------------------------------------------------------


@pytest.fixture
def jira():
    with JiraSandbox(clock=Clock(FRIDAY), timezone="Asia/Shanghai", deliver_webhooks=False,
                     validate_responses=True) as sandbox:
        sandbox.add_user(REVIEWER, "Rita Reviewer", "rita@example.com")
        yield sandbox
        assert sandbox.spec_violations == []


@pytest.fixture
def jira_runtime(jira, tmp_path):
    settings = Settings(jira_url=jira.base_url, jira_user=jira.email, jira_token=jira.api_token,
                        data_dir=tmp_path / "data")
    return Runtime(settings=settings, config=load_config(DEFAULT_CONFIG), clock=jira.clock.now)


def jira_notes(jira, key):
    return [c for c in jira.issue(key)["fields"]["comment"]["comments"]
            if c["author"]["accountId"] == JIRA_CONNECTOR and "critical change" in c["body"]]


def jira_resolve(jira, runtime, key):
    jira.clock.advance(timedelta(minutes=5))
    jira.set_status(key, "Resolved", author=JIRA_AGENT)
    reconcile(runtime, "jira", key)
    return jira.issue(key)["fields"]


def test_jira_critical_change_needs_a_second_persons_review(jira, jira_runtime):
    key = jira.create_issue("Invoice totals wrong", description="rates", components=["billing"], environment="Web",
                            assignee=JIRA_AGENT, created=FRIDAY - timedelta(hours=2), fields=JIRA_FIELDS,
                            history=[(FRIDAY - timedelta(hours=1), "In Progress")])
    reconcile(jira_runtime, "jira", key)
    fields = jira_resolve(jira, jira_runtime, key)
    assert fields["status"]["name"] == "In Progress"
    [note] = jira_notes(jira, key)
    assert "Reviewer" in note["body"] and "(data fix)" in note["body"] and note["jsdPublic"] is False
    assert "spc-review-gate-returned-1" in fields["labels"]
    # Idempotent: the next reconcile sends no write at all.
    jira.reset_calls()
    reconcile(jira_runtime, "jira", key)
    assert non_get(jira) == 0
    # The assignee as their own reviewer does not count.
    jira.set_fields(key, {"Reviewer": JIRA_AGENT}, author=JIRA_AGENT)
    fields = jira_resolve(jira, jira_runtime, key)
    assert fields["status"]["name"] == "In Progress"
    assert "own change" in jira_notes(jira, key)[-1]["body"] and len(jira_notes(jira, key)) == 2
    assert "spc-review-gate-returned-2" in fields["labels"]
    # A second person's review: the resolve stands, nothing more is said.
    jira.set_fields(key, {"Reviewer": REVIEWER}, author=JIRA_AGENT)
    fields = jira_resolve(jira, jira_runtime, key)
    assert fields["status"]["name"] == "Resolved" and len(jira_notes(jira, key)) == 2
    jira.reset_calls()
    reconcile(jira_runtime, "jira", key)
    assert non_get(jira) == 0


def test_jira_ordinary_change_is_not_gated(jira, jira_runtime):
    key = jira.create_issue("Invoice layout", description="pdf", components=["billing"], environment="Web",
                            assignee=JIRA_AGENT, created=FRIDAY - timedelta(hours=2),
                            fields={**JIRA_FIELDS, "Change type": "Standard"},
                            history=[(FRIDAY - timedelta(hours=1), "In Progress")])
    reconcile(jira_runtime, "jira", key)
    fields = jira_resolve(jira, jira_runtime, key)
    assert fields["status"]["name"] == "Resolved" and jira_notes(jira, key) == []


# --- Zendesk ------------------------------------------------------------------------------


@pytest.fixture
def zendesk():
    with ZendeskSandbox(clock=Clock(FRIDAY), deliver_webhooks=False) as sandbox:
        yield sandbox


@pytest.fixture
def zendesk_runtime(zendesk, tmp_path):
    settings = Settings(zendesk_url=zendesk.base_url, zendesk_email=zendesk.email, zendesk_token=zendesk.api_token,
                        data_dir=tmp_path / "data")
    config = load_config(DEFAULT_CONFIG)
    config.platforms.zendesk.groups = {name: str(group_id) for name, group_id in GROUPS.items()}
    return Runtime(settings=settings, config=config, clock=zendesk.clock.now)


def zendesk_notes(zendesk, ticket_id):
    return [e for audit in zendesk.audits(ticket_id) for e in audit["events"]
            if e["type"] == "Comment" and e["author_id"] == CONNECTOR and "critical change" in e["body"]]


def zendesk_resolve(zendesk, runtime, ticket_id):
    zendesk.clock.advance(timedelta(minutes=5))
    zendesk.set_status(ticket_id, "solved", author=AGENT)
    reconcile(runtime, "zendesk", str(ticket_id))
    return zendesk.ticket(ticket_id)


def test_zendesk_critical_change_needs_a_second_persons_review(zendesk, zendesk_runtime):
    ticket_id = zendesk.create_ticket("Invoice totals wrong", "The totals are wrong", custom_fields=ZENDESK_FIELDS,
                                      assignee=AGENT, group="L1", created=FRIDAY - timedelta(hours=2),
                                      history=[(FRIDAY - timedelta(hours=1), "open")])
    reconcile(zendesk_runtime, "zendesk", str(ticket_id))
    ticket = zendesk_resolve(zendesk, zendesk_runtime, ticket_id)
    assert ticket["status"] == "open"
    [note] = zendesk_notes(zendesk, ticket_id)
    assert "Reviewer" in note["body"] and note["public"] is False
    assert "spc-review-gate-returned-1" in ticket["tags"]
    zendesk.reset_calls()
    reconcile(zendesk_runtime, "zendesk", str(ticket_id))
    assert non_get(zendesk) == 0
    # The assignee's own id as the reviewer does not count.
    zendesk.set_fields(ticket_id, {"Reviewer": str(AGENT)}, author=AGENT)
    ticket = zendesk_resolve(zendesk, zendesk_runtime, ticket_id)
    assert ticket["status"] == "open" and "own change" in zendesk_notes(zendesk, ticket_id)[-1]["body"]
    assert "spc-review-gate-returned-2" in ticket["tags"]
    # Another agent's id: the solve stands.
    zendesk.set_fields(ticket_id, {"Reviewer": str(L2_AGENT)}, author=AGENT)
    ticket = zendesk_resolve(zendesk, zendesk_runtime, ticket_id)
    assert ticket["status"] == "solved" and len(zendesk_notes(zendesk, ticket_id)) == 2
    zendesk.reset_calls()
    reconcile(zendesk_runtime, "zendesk", str(ticket_id))
    assert non_get(zendesk) == 0
