"""The closing summary and the satisfaction read-back end to end: sandbox → signed webhook →
receiver → queue → worker → the real `jira` / `zenpy` clients, with the shipped configuration.

An agent resolves a ticket whose knowledge is recorded: the connector posts one public
summary (in the reporter's language on Zendesk, whose user objects carry `locale`), and
nothing more on the next reconcile. A resolve the closure rule sends back gets no summary.
The customer then rates through the platform's own survey (Zendesk legacy CSAT "good", a
JSM request-feedback rating) and the adapter reads the rating back on the process's scale.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from connector.reconcile import reconcile
from connector.sandbox import jira as jira_sandbox
from connector.sandbox import zendesk as zendesk_sandbox
from connector.sandbox.server import Clock
from connector.stack import LocalStack

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
KNOWLEDGE = {"Root cause": "an expired database password", "Solution": "rotated the password",
             "Verification result": "Resolved", "Knowledge base link": "https://kb.example.com/7",
             "Recurrence note": "first time", "Preventive measures": "password expiry is now monitored"}
JIRA_FIELDS = {"Impact scope": "Shanghai office", "Steps to reproduce": "Open the report", "Error message": "none",
               "Occurred at": FRIDAY - timedelta(hours=3), **KNOWLEDGE}
ZENDESK_FIELDS = {"Category": "network", "Impact scope": "Shanghai office", "Steps to reproduce": "Open the report",
                  "Error message": "none", "Occurred at": "2026-11-20", "Environment": "Web", **KNOWLEDGE}


@pytest.fixture
def stack(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY), zendesk=True) as running:
        yield running


# --- Jira ---------------------------------------------------------------------------------------


def jira_summaries(stack, key):
    return [c for c in stack.jira.issue(key)["fields"]["comment"]["comments"]
            if c["author"]["accountId"] == jira_sandbox.CONNECTOR and "has been resolved" in c["body"]]


def jira_resolved(stack, fields):
    key = stack.jira.create_issue("Monthly report is empty", description="The report shows no rows",
                                  priority="High", components=["network"], environment="Chrome 131",
                                  created=FRIDAY - timedelta(hours=2), fields=fields)
    stack.settle()
    stack.jira.set_status(key, "In Progress", at=FRIDAY - timedelta(hours=1))
    stack.settle()
    stack.jira.set_status(key, "Resolved")
    stack.settle()
    return key


def test_jira_resolve_posts_one_public_summary_and_reads_the_feedback_back(stack):
    key = jira_resolved(stack, JIRA_FIELDS)
    [summary] = jira_summaries(stack, key)
    assert summary["jsdPublic"] is True
    assert "rotated the password" in summary["body"] and "password expiry is now monitored" in summary["body"]
    assert "Handling time: 2h (business hours" in summary["body"]
    assert "spc-closing-summary-sent-1" in stack.jira.issue(key)["fields"]["labels"]
    assert reconcile(stack.runtime, "jira", key).result.writes == []

    adapter = stack.runtime.adapter("jira")
    assert adapter.fetch(key).satisfaction is None
    feedback_url = f"{stack.jira.base_url}/rest/servicedeskapi/request/{key}/feedback"
    auth = (stack.jira.email, stack.jira.api_token)
    assert requests.get(feedback_url, auth=auth, timeout=10).status_code == 404  # not rated yet
    stack.jira.give_feedback(key, 3, comment="Fixed, but slowly")
    stack.settle()
    assert adapter.fetch(key).satisfaction == "basically satisfied"
    assert requests.get(feedback_url, auth=auth, timeout=10).json() == {
        "type": "csat", "rating": 3, "comment": {"body": "Fixed, but slowly"}}
    assert len(jira_summaries(stack, key)) == 1  # the rating is not a new resolve


def test_jira_resolve_sent_back_by_closure_gets_no_summary(stack):
    key = jira_resolved(stack, {k: v for k, v in JIRA_FIELDS.items() if k != "Root cause"})
    assert stack.jira.issue(key)["fields"]["status"]["name"] == "In Progress"
    assert jira_summaries(stack, key) == []


def test_jira_only_the_reporter_rates_a_resolved_request(stack):
    key = stack.jira.create_issue("Question", description="How?", fields=JIRA_FIELDS)
    from connector.sandbox.jira_store import JiraApiError

    with pytest.raises(JiraApiError, match="resolved request"):
        stack.jira.give_feedback(key, 5)
    stack.jira.set_status(key, "Resolved")
    with pytest.raises(JiraApiError, match="Only the reporter"):
        stack.jira.give_feedback(key, 5, author=jira_sandbox.AGENT)


# --- Zendesk ------------------------------------------------------------------------------------


def zendesk_summaries(stack, ticket_id, words):
    return [e for audit in stack.zendesk.audits(ticket_id) for e in audit["events"]
            if e["type"] == "Comment" and e["author_id"] == zendesk_sandbox.CONNECTOR and words in e["body"]]


def zendesk_solved(stack, requester, fields):
    ticket_id = stack.zendesk.create_ticket("月报为空", "月报没有数据", requester=requester, priority="high",
                                            custom_fields=fields, created=FRIDAY - timedelta(hours=2))
    stack.settle()
    stack.zendesk.set_status(ticket_id, "open", author=zendesk_sandbox.AGENT, at=FRIDAY - timedelta(hours=1))
    stack.settle()
    stack.zendesk.set_status(ticket_id, "solved", author=zendesk_sandbox.AGENT)
    stack.settle()
    return ticket_id


def test_zendesk_summary_speaks_the_requester_s_language_and_reads_csat_back(stack):
    requester = stack.zendesk.add_user("Li Lei", "lilei@example.com", locale="zh-CN")
    ticket_id = zendesk_solved(stack, requester, ZENDESK_FIELDS)
    [summary] = zendesk_summaries(stack, ticket_id, "已解决")
    assert summary["public"] is True and "预防措施：password expiry is now monitored" in summary["body"]
    assert "spc-closing-summary-sent-1" in stack.zendesk.ticket(ticket_id)["tags"]
    assert reconcile(stack.runtime, "zendesk", str(ticket_id)).result.writes == []

    adapter = stack.runtime.adapter("zendesk")
    assert adapter.fetch(str(ticket_id)).satisfaction is None  # "unoffered"
    stack.zendesk.rate(ticket_id, "good", comment="快")
    assert stack.zendesk.ticket(ticket_id)["satisfaction_rating"]["score"] == "good"
    assert adapter.fetch(str(ticket_id)).satisfaction == "satisfied"
    assert reconcile(stack.runtime, "zendesk", str(ticket_id)).result.writes == []


def test_zendesk_english_requester_and_the_rating_rules(stack):
    ticket_id = zendesk_solved(stack, zendesk_sandbox.CUSTOMER, ZENDESK_FIELDS)
    assert len(zendesk_summaries(stack, ticket_id, "has been resolved")) == 1
    from connector.sandbox.zendesk_store import ZendeskApiError

    with pytest.raises(ZendeskApiError) as refused:
        stack.zendesk.rate(ticket_id, "good", author=zendesk_sandbox.AGENT)
    assert refused.value.status == 403
    # Over HTTP the caller is the connector's agent: refused too, nothing recorded.
    answer = requests.post(f"{stack.zendesk.base_url}/api/v2/tickets/{ticket_id}/satisfaction_rating",
                           json={"satisfaction_rating": {"score": "good"}},
                           auth=(f"{stack.zendesk.email}/token", stack.zendesk.api_token), timeout=10)
    assert answer.status_code == 403
    assert stack.zendesk.ticket(ticket_id)["satisfaction_rating"] == {"score": "unoffered"}
    stack.zendesk.rate(ticket_id, "bad")
    assert stack.runtime.adapter("zendesk").fetch(str(ticket_id)).satisfaction == "needs improvement"


def test_zendesk_resolve_sent_back_by_closure_gets_no_summary(stack):
    fields = {k: v for k, v in ZENDESK_FIELDS.items() if k != "Root cause"}
    ticket_id = zendesk_solved(stack, zendesk_sandbox.CUSTOMER, fields)
    assert stack.zendesk.ticket(ticket_id)["status"] == "open"
    assert zendesk_summaries(stack, ticket_id, "has been resolved") == []
