"""The Jira closing summary in the reporter's language, end to end through webhooks: sandbox →
signed webhook → receiver → queue → worker → the real `jira` client, with the shipped
configuration (English and Chinese templates, default English).

The reporter embedded in a Jira issue has no `locale`; the worker reads the reporter's User
(`GET /rest/api/2/user`) only when a summary is owed, once per reporter per process. The
sandbox's call counts show the endpoint untouched for an open ticket, for the reconcile after
the summary, and for a second ticket of the same reporter.
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
USER = "/rest/api/2/user"
FIELDS = {"Impact scope": "Shanghai office", "Steps to reproduce": "Open the report", "Error message": "none",
          "Occurred at": FRIDAY - timedelta(hours=3), "Root cause": "an expired database password",
          "Solution": "rotated the password", "Verification result": "Resolved",
          "Knowledge base link": "https://kb.example.com/7", "Recurrence note": "first time",
          "Preventive measures": "password expiry is now monitored"}


@pytest.fixture
def stack(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY)) as running:
        running.jira.add_user("acc-lilei", "Li Lei", "lilei@example.com", name="lilei", locale="zh_CN")
        running.jira.validate_responses = True
        yield running


def user_reads(stack) -> int:
    return stack.jira.count("GET", USER)


def summaries(stack, key):
    return [c for c in stack.jira.issue(key)["fields"]["comment"]["comments"]
            if c["author"]["accountId"] == jira_sandbox.CONNECTOR and "ref: spc-closing-summary-sent-" in c["body"]]


def opened(stack, reporter):
    key = stack.jira.create_issue("Monthly report is empty", description="The report shows no rows",
                                  priority="High", components=["network"], environment="Chrome 131",
                                  created=FRIDAY - timedelta(hours=2), fields=FIELDS, reporter=reporter)
    stack.settle()
    stack.jira.set_status(key, "In Progress", at=FRIDAY - timedelta(hours=1))
    stack.settle()
    return key


def resolve(stack, key):
    stack.jira.set_status(key, "Resolved")
    stack.settle()


def test_a_zh_cn_reporter_gets_the_chinese_summary_with_one_user_read(stack):
    key = opened(stack, "acc-lilei")
    assert user_reads(stack) == 0  # an open ticket: no summary owed, nothing read
    resolve(stack, key)
    [summary] = summaries(stack, key)
    assert summary["jsdPublic"] is True
    assert "已解决" in summary["body"] and "预防措施：password expiry is now monitored" in summary["body"]
    assert "has been resolved" not in summary["body"]
    assert stack.jira.count("GET", USER, 200) == 1
    # The next reconcile finds the summary sent: nothing written, the user not read again.
    assert reconcile(stack.runtime, "jira", key).result.writes == []
    assert user_reads(stack) == 1
    assert stack.jira.spec_violations == []


def test_an_english_reporter_gets_the_english_summary(stack):
    key = opened(stack, jira_sandbox.CUSTOMER)  # Carl's profile says en_US
    resolve(stack, key)
    [summary] = summaries(stack, key)
    assert "has been resolved" in summary["body"] and "已解决" not in summary["body"]
    assert user_reads(stack) == 1
    assert reconcile(stack.runtime, "jira", key).result.writes == []
    assert user_reads(stack) == 1


def test_a_second_ticket_of_the_same_reporter_costs_no_read(stack):
    first, second = opened(stack, "acc-lilei"), opened(stack, "acc-lilei")
    resolve(stack, first)
    resolve(stack, second)
    assert ["已解决" in s["body"] for k in (first, second) for s in summaries(stack, k)] == [True, True]
    assert user_reads(stack) == 1


def test_a_reporter_whose_profile_hides_the_locale_gets_the_default(stack):
    stack.jira.set_locale("acc-lilei", None)
    key = opened(stack, "acc-lilei")
    resolve(stack, key)
    [summary] = summaries(stack, key)
    assert "has been resolved" in summary["body"]
    assert stack.jira.count("GET", USER, 200) == 1


def test_a_failed_user_read_does_not_fail_the_reconcile(stack):
    key = opened(stack, "acc-lilei")
    stack.jira.inject(500, times=None, path_prefix=USER)
    resolve(stack, key)
    [summary] = summaries(stack, key)  # in the default language, posted once
    assert "has been resolved" in summary["body"]
    assert stack.jira.count("GET", USER, 500) >= 1
