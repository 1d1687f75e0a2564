"""Reading a Jira reporter's locale: the real `jira` library through the adapter over HTTP against
the strict sandbox – `GET /rest/api/2/user` by accountId (Cloud) / username (Data Center), one
request per reporter per process, a gone user (404) or a missing permission (403) answered as
"unknown" and remembered, other failures logged and answered as "unknown" without failing."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest
import requests

from connector.sandbox.jira import CUSTOMER, JiraSandbox
from connector.sandbox.server import Clock
from tests.jira_sandbox_adapter import adapter_for

NOW = datetime(2026, 11, 20, 7, 0, tzinfo=timezone.utc)
USER = "/rest/api/2/user"


@pytest.fixture(params=["Cloud", "Server"])
def jira(request):
    with JiraSandbox(deployment=request.param, clock=Clock(NOW), deliver_webhooks=False,
                     validate_responses=True) as sandbox:
        sandbox.add_user("acc-lilei", "Li Lei", "lilei@example.com", name="lilei", locale="zh_CN")
        yield sandbox
        assert sandbox.spec_violations == []


def user_calls(sandbox, status=None) -> int:
    return sandbox.count("GET", USER, status)


def test_the_issue_s_reporter_has_no_locale_the_user_resource_has(jira):
    key = jira.create_issue("Report empty", reporter="acc-lilei")
    adapter = adapter_for(jira)
    ticket = adapter.fetch(key)
    assert "locale" not in jira.issue(key)["fields"]["reporter"] and ticket.requester_locale is None
    assert ticket.reporter == ("acc-lilei" if jira.deployment == "Cloud" else "lilei")
    jira.reset_calls()
    assert adapter.reporter_locale(ticket) == "zh_CN" and user_calls(jira, 200) == 1


def test_one_request_per_reporter_per_process(jira):
    first, second = (jira.create_issue(f"Report {n}", reporter="acc-lilei") for n in (1, 2))
    other = jira.create_issue("Question", reporter=CUSTOMER)
    adapter = adapter_for(jira)
    tickets = [adapter.fetch(k) for k in (first, second, other)]
    jira.reset_calls()
    assert [adapter.reporter_locale(t) for t in tickets] == ["zh_CN", "zh_CN", "en_US"]
    assert user_calls(jira) == 2  # Li Lei once for both tickets, Carl once
    assert [adapter.reporter_locale(t) for t in tickets] == ["zh_CN", "zh_CN", "en_US"]
    assert user_calls(jira) == 2


def test_a_gone_user_is_unknown_and_remembered(jira):
    ticket = adapter_for(jira).fetch(jira.create_issue("Report", reporter="acc-lilei"))
    gone = ticket.model_copy(update={"reporter": "acc-gone"})
    adapter = adapter_for(jira)
    jira.reset_calls()
    assert adapter.reporter_locale(gone) is None and user_calls(jira, 404) == 1
    assert adapter.reporter_locale(gone) is None and user_calls(jira) == 1


def test_without_browse_users_the_locale_is_unknown_and_remembered(jira):
    ticket = adapter_for(jira).fetch(jira.create_issue("Report", reporter="acc-lilei"))
    jira.browse_users = False
    adapter = adapter_for(jira)
    jira.reset_calls()
    assert adapter.reporter_locale(ticket) is None and user_calls(jira, 403) == 1
    jira.browse_users = True
    assert adapter.reporter_locale(ticket) is None and user_calls(jira) == 1


def test_a_hidden_locale_is_unknown_and_remembered(jira):
    jira.set_locale("acc-lilei", None)
    adapter = adapter_for(jira)
    ticket = adapter.fetch(jira.create_issue("Report", reporter="acc-lilei"))
    jira.reset_calls()
    assert adapter.reporter_locale(ticket) is None and adapter.reporter_locale(ticket) is None
    assert user_calls(jira, 200) == 1


@pytest.mark.parametrize("status", [500, 429, 401])
def test_other_failures_are_logged_and_not_remembered(jira, caplog, status):
    adapter = adapter_for(jira)
    ticket = adapter.fetch(jira.create_issue("Report", reporter="acc-lilei"))
    jira.reset_calls()
    jira.inject(status, times=1, path_prefix=USER, retry_after=0 if status == 429 else None)
    with caplog.at_level(logging.WARNING, logger="connector.platforms.jira.users"):
        assert adapter.reporter_locale(ticket) is None
    assert [r.message for r in caplog.records] == ["jira.reporter_locale_failed"]
    assert caplog.records[0].status == status
    # Not remembered: the next ticket of this reporter asks again, and now gets the answer.
    assert adapter.reporter_locale(ticket) == "zh_CN" and user_calls(jira) == 2


def test_cloud_refuses_a_username_and_data_center_accepts_one(jira):
    auth = {"auth": (jira.email, jira.api_token)} if jira.deployment == "Cloud" else {
        "headers": {"Authorization": f"Bearer {jira.pat}"}}
    answer = requests.get(f"{jira.base_url}{USER}", params={"username": "lilei"}, timeout=10, **auth)
    if jira.deployment == "Cloud":
        assert answer.status_code == 400
        assert answer.json()["errorMessages"] == ["The 'accountId' query parameter needs to be provided"]
    else:
        assert answer.status_code == 200 and answer.json()["locale"] == "zh_CN"
        assert answer.json()["name"] == "lilei" and "accountId" not in answer.json()
