"""End to end on Jira: the real `jira` client over HTTP against the sandbox, through the
receiver, the SQLite queue and the workers, for every step of the standard process."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from connector.config import load_config
from connector.metrics import REGISTRY
from connector.reconcile import Runtime, reconcile
from connector.sandbox.jira import AGENT, CONNECTOR, CUSTOMER
from connector.sandbox.server import Clock
from connector.settings import DEFAULT_CONFIG
from connector.stack import LocalStack

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
INTAKE = {"Impact scope": "Shanghai office", "Steps to reproduce": "Connect, wait", "Error message": "ERR_TIMEOUT",
          "Occurred at": FRIDAY - timedelta(hours=1)}


@pytest.fixture
def stack(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY)) as running:
        yield running


def connector_comments(stack, key):
    return [c for c in stack.jira.issue(key)["fields"]["comment"]["comments"] if c["author"]["accountId"] == CONNECTOR]


def writes(stack):
    return sum(n for call, n in stack.jira.calls.items() if call.method != "GET")


def status(stack, key):
    return stack.jira.issue(key)["fields"]["status"]["name"]


def test_intake_request_then_reporter_completes_and_ticket_is_routed(stack):
    key = stack.jira.create_issue("VPN drops", description="drops", components=["network"],
                                  created=FRIDAY - timedelta(minutes=5), fields=INTAKE)
    stack.settle()
    [request] = connector_comments(stack, key)
    assert request["jsdPublic"] is True and "Environment (OS / browser / product version)" in request["body"]
    assert "Exact error message" not in request["body"]
    assert status(stack, key) == "Waiting for customer"
    stack.jira.set_fields(key, {"environment": "Windows 11"}, author=CUSTOMER)
    stack.settle()
    fields = stack.jira.issue(key)["fields"]
    assert fields["status"]["name"] == "In Progress"
    assert "spc-intake-complete" in fields["labels"]
    assert fields["customfield_10059"] == "network-team"  # Support group
    assert len(connector_comments(stack, key)) == 1


def test_p0_without_response_gets_one_breach_notice_and_escalation(stack):
    key = stack.jira.create_issue("Checkout down", description="502", priority="Highest", components=["outage"],
                                  environment="POS 4.2", created=FRIDAY - timedelta(hours=1), fields=INTAKE)
    stack.settle()
    bodies = [c["body"] for c in connector_comments(stack, key)]
    assert sum("SLA breached" in b for b in bodies) == 1
    assert sum("no first response within 30m" in b for b in bodies) == 1
    assert all(c["jsdPublic"] is False for c in connector_comments(stack, key))
    fields = stack.jira.issue(key)["fields"]
    assert fields["customfield_10059"] == "L2"
    assert {"spc-sla-breach-first_response", "spc-escalation-l2-first-response"} <= set(fields["labels"])
    # Agents see the due times in Jira's own date-time fields.
    assert fields["customfield_10060"].startswith("2026-11-20T14:30:00")


def test_resolved_without_root_cause_is_moved_back_once_per_attempt(stack):
    key = stack.jira.create_issue("Reports slow", description="504", components=["performance"], environment="Chrome",
                                  created=FRIDAY - timedelta(hours=2), fields=INTAKE,
                                  history=[(FRIDAY - timedelta(hours=1), "In Progress")])
    stack.settle()
    stack.jira.set_status(key, "Resolved", author=AGENT)
    stack.settle()
    assert status(stack, key) == "In Progress"
    [notice] = [c for c in connector_comments(stack, key) if "moved back" in c["body"]]
    assert "Root cause" in notice["body"] and notice["jsdPublic"] is False
    stack.clock.advance(timedelta(minutes=5))
    stack.jira.set_status(key, "Resolved", author=AGENT)
    stack.settle()
    assert len([c for c in connector_comments(stack, key) if "moved back" in c["body"]]) == 2
    assert {"spc-closure-returned-1", "spc-closure-returned-2"} <= set(stack.jira.issue(key)["fields"]["labels"])


def test_reporter_not_resolved_sends_ticket_back_to_work(stack):
    key = stack.jira.create_issue("Tax rate wrong", description="PDF", components=["billing"], environment="Web",
                                  created=FRIDAY - timedelta(hours=2), fields={**INTAKE, "Root cause": "rounding",
                                                                               "Solution": "patched"},
                                  history=[(FRIDAY - timedelta(hours=1), "In Progress")])
    stack.settle()
    stack.jira.set_fields(key, {"Verification result": "Not resolved"}, author=CUSTOMER)
    stack.jira.set_status(key, "Resolved", author=AGENT)
    stack.settle()
    assert status(stack, key) == "In Progress"
    assert any("not solved" in c["body"] and c["jsdPublic"] for c in connector_comments(stack, key))


def test_closed_p1_gets_follow_up_due(stack):
    key = stack.jira.create_issue("SSO fails", description="SAML", priority="High", components=["login"],
                                  environment="Okta", created=FRIDAY - timedelta(hours=2),
                                  fields={**INTAKE, "Root cause": "cert", "Solution": "new cert",
                                          "Verification result": "Resolved",
                                          "Knowledge base link": "https://kb.example.com/sso-cert"},
                                  history=[(FRIDAY - timedelta(hours=1), "In Progress")])
    stack.jira.add_comment(key, "Fixing", author=AGENT, at=FRIDAY - timedelta(minutes=50))
    stack.settle()
    stack.jira.set_status(key, "Resolved", author=AGENT)
    stack.settle()  # the due field is written while Resolved: Closed allows no edits (stock workflow)
    stack.jira.set_status(key, "Closed", author=AGENT)
    stack.settle()
    fields = stack.jira.issue(key)["fields"]
    assert fields["status"]["name"] == "Closed"
    assert fields["customfield_10062"].startswith("2026-11-25T15:00:00")  # Follow-up due: 3 business days


def test_same_webhook_three_times_out_of_order_gives_one_comment_per_action(stack):
    stack.jira.webhooks.enabled = False
    key = stack.jira.create_issue("VPN drops", description="drops", components=["network"],
                                  created=FRIDAY - timedelta(minutes=5), fields=INTAKE)
    stack.jira.add_comment(key, "Any news?", author=CUSTOMER)
    stack.jira.set_fields(key, {"Impact scope": "whole office"}, author=CUSTOMER)
    deliveries = stack.jira.webhook_log * 3
    random.Random(4).shuffle(deliveries)
    url = f"{stack.receiver.base_url}/webhooks/jira"
    answers = [requests.post(url, data=d.body, headers=d.headers, timeout=5).status_code for d in deliveries]
    assert set(answers) <= {200, 202} and answers.count(202) >= 1
    stack.settle()
    bodies = [c["body"] for c in connector_comments(stack, key)]
    assert len(bodies) == 1 and "please add" in bodies[0]
    assert set(stack.jira.issue(key)["fields"]["labels"]) == {"spc-intake-requested", "spc-similar-cases-none"}


def test_reconcile_with_nothing_to_change_sends_no_write(stack):
    key = stack.jira.create_issue("VPN drops", description="drops", components=["network"],
                                  created=FRIDAY - timedelta(minutes=5), fields=INTAKE)
    stack.settle()
    before = writes(stack)
    stack.jira.reset_calls()
    outcome = reconcile(stack.runtime, "jira", key)
    assert outcome.outcome == "noop"
    assert writes(stack) == 0 and before > 0
    assert stack.jira.count(method="GET") == 1  # one read: issue + changelog + transitions


def test_injected_429s_are_waited_out_for_at_least_retry_after(stack):
    key = stack.jira.create_issue("VPN drops", description="drops", components=["network"],
                                  created=FRIDAY - timedelta(minutes=5), fields=INTAKE)
    stack.settle()
    stack.jira.reset_calls()
    stack.jira.inject(429, retry_after=1, times=2, path_prefix="/rest/api/2/issue/")
    started = time.monotonic()
    outcome = reconcile(stack.runtime, "jira", key)
    assert time.monotonic() - started >= 2.0  # two waits of at least Retry-After
    assert outcome.outcome == "noop"
    assert stack.jira.count(status=429) == 2 and stack.jira.count(method="GET", status=200) == 1


def test_transition_the_workflow_does_not_offer_is_reported_not_crashed(tmp_path):
    config = load_config(DEFAULT_CONFIG)
    closure = next(rule for rule in config.rules if rule.id == "closure")
    closure.reopen_status = "waiting_for_third_party"  # "Pending": not offered from Resolved
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY)) as stack:
        stack.runtime.config = config
        stack.jira.webhooks.enabled = False  # this test drives the reconcile itself, no worker race
        key = stack.jira.create_issue("Reports slow", description="504", components=["performance"],
                                      environment="Chrome", created=FRIDAY - timedelta(hours=2), fields=INTAKE,
                                      history=[(FRIDAY - timedelta(hours=1), "In Progress"),
                                               (FRIDAY - timedelta(minutes=30), "Resolved")])
        before = REGISTRY.get_sample_value("connector_transitions_unavailable_total",
                                           {"platform": "jira", "to_status": "waiting_for_third_party"}) or 0
        outcome = reconcile(stack.runtime, "jira", key)
        assert outcome.outcome == "applied"
        assert any("Pending" in w or "waiting_for_third_party" in w for w in outcome.result.warnings)
        assert status(stack, key) == "Resolved"
        assert len([c for c in connector_comments(stack, key) if "moved back" in c["body"]]) == 1
        after = REGISTRY.get_sample_value("connector_transitions_unavailable_total",
                                          {"platform": "jira", "to_status": "waiting_for_third_party"})
        assert after == before + 1
        # Nothing is repeated on the next reconcile: the comment's marker is on the ticket.
        assert reconcile(stack.runtime, "jira", key).result.writes == []


def test_data_center_with_personal_access_token(tmp_path):
    from connector.sandbox.jira import JiraSandbox
    from connector.settings import Settings

    with JiraSandbox(deployment="Server", clock=Clock(FRIDAY), timezone="Asia/Shanghai",
                     deliver_webhooks=False) as jira:
        key = jira.create_issue("VPN drops", description="drops", components=["network"],
                                created=FRIDAY - timedelta(minutes=5), fields=INTAKE)
        settings = Settings(jira_url=jira.base_url, jira_token=jira.pat)
        runtime = Runtime(settings=settings, config=load_config(DEFAULT_CONFIG), clock=jira.clock.now)
        assert reconcile(runtime, "jira", key).outcome == "applied"
        assert jira.issue(key)["fields"]["status"]["name"] == "Waiting for customer"
