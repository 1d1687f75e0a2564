"""Reading Jira Service Management approvals: the real `jira` library through the adapter over
HTTP against the strict sandbox – the documented page shape, paging by `isLastPage`, a project
without approvals (403 on Cloud, 404 on Data Center) answered as "none" and remembered, and
other errors raised rather than read as "no approval"."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests

from connector.platforms.base import HostError
from connector.sandbox.jira import AGENT, JiraApiError, JiraSandbox
from connector.sandbox.server import Clock
from tests.jira_sandbox_adapter import adapter_for

NOW = datetime(2026, 11, 20, 7, 0, tzinfo=timezone.utc)
APPROVALS = "/rest/servicedeskapi/request/{issueIdOrKey}/approval"


@pytest.fixture(params=["Cloud", "Server"])
def jira(request):
    with JiraSandbox(deployment=request.param, clock=Clock(NOW), deliver_webhooks=False) as sandbox:
        sandbox.add_user("acc-bob", "Bob Reviewer", "bob@example.com", name="bob")
        yield sandbox


def approval_calls(sandbox, status=None) -> int:
    return sandbox._calls.count("GET", APPROVALS, status)


def test_the_documented_page_shape(jira):
    key = jira.create_issue("Rates table fix", assignee=AGENT)
    approval_id = jira.add_approval(key, ["acc-bob"], name="Data fix review")
    jira.decide_approval(key, approval_id, "acc-bob", "approve")
    auth = (jira.email, jira.api_token) if jira.deployment == "Cloud" else None
    headers = {} if auth else {"Authorization": f"Bearer {jira.pat}"}
    page = requests.get(f"{jira.base_url}/rest/servicedeskapi/request/{key}/approval", auth=auth,
                        headers=headers, timeout=10).json()
    assert {"size", "start", "limit", "isLastPage", "values", "_links"} <= page.keys()
    assert page["start"] == 0 and page["limit"] == 50 and page["isLastPage"] is True and page["size"] == 1
    [dto] = page["values"]
    assert dto["id"] == approval_id and dto["name"] == "Data fix review" and dto["finalDecision"] == "approved"
    [entry] = dto["approvers"]
    assert entry["approverDecision"] == "approved"
    if jira.deployment == "Cloud":
        assert entry["approver"]["accountId"] == "acc-bob" and "name" not in entry["approver"]
    else:
        assert entry["approver"]["name"] == "bob" and "accountId" not in entry["approver"]
    assert {"iso8601", "jira", "friendly", "epochMillis"} <= dto["createdDate"].keys()
    assert dto["completedDate"]["epochMillis"] == int(NOW.timestamp() * 1000)


def test_the_adapter_pages_until_the_last_page_and_reads_identities(jira):
    jira.approval_page_max = 2
    key = jira.create_issue("Upgrade", assignee=AGENT)
    ids = [jira.add_approval(key, ["acc-bob", AGENT], name=f"step {n}") for n in range(5)]
    jira.decide_approval(key, ids[-1], "acc-bob", "approve")
    jira.decide_approval(key, ids[0], AGENT, "decline")
    adapter = adapter_for(jira)
    ticket = adapter.fetch(key)
    jira.reset_calls()
    approvals = adapter.approvals(ticket)
    assert [a.id for a in approvals] == ids and approval_calls(jira) == 3  # 2 + 2 + 1
    bob = "acc-bob" if jira.deployment == "Cloud" else "bob"
    assert approvals[-1].final_decision == "approved" and approvals[-1].completed is not None
    assert [(d.approver, d.decision) for d in approvals[-1].approvers][0] == (bob, "approved")
    assert approvals[0].final_decision == "declined"
    assert approvals[1].final_decision == "pending" and approvals[1].completed is None
    # The assignee compares with the approvers: the same identity on both sides.
    assert ticket.assignee in {d.approver for d in approvals[0].approvers}


def test_a_request_without_approvals_is_one_request_and_none():
    with JiraSandbox(clock=Clock(NOW), deliver_webhooks=False) as jira:
        adapter = adapter_for(jira)
        ticket = adapter.fetch(jira.create_issue("Question"))
        jira.reset_calls()
        assert adapter.approvals(ticket) == () and approval_calls(jira, 200) == 1


@pytest.mark.parametrize("deployment, status", [("Cloud", 403), ("Server", 404)])
def test_a_project_without_service_management_has_none_and_is_asked_once(deployment, status):
    with JiraSandbox(deployment=deployment, service_management=False, clock=Clock(NOW),
                     deliver_webhooks=False) as jira:
        adapter = adapter_for(jira)
        first = adapter.fetch(jira.create_issue("Software bug"))
        second = adapter.fetch(jira.create_issue("Another bug"))
        jira.reset_calls()
        assert adapter.approvals(first) == ()
        assert adapter.approvals(second) == () and adapter.approvals(first) == ()
        assert approval_calls(jira, status) == 1 and approval_calls(jira) == 1


def test_a_failing_read_is_raised_not_taken_for_no_approval():
    with JiraSandbox(clock=Clock(NOW), deliver_webhooks=False) as jira:
        adapter = adapter_for(jira)
        ticket = adapter.fetch(jira.create_issue("Upgrade"))
        jira.inject(status=503, path_prefix="/rest/servicedeskapi/")
        with pytest.raises(HostError):
            adapter.approvals(ticket)
        # Not remembered as a project without approvals: the next read asks again.
        jira.add_approval(ticket.key, ["acc-agent"])
        assert len(adapter.approvals(ticket)) == 1


def test_only_an_approver_may_answer_and_only_once(jira):
    key = jira.create_issue("Config change", assignee=AGENT)
    approval_id = jira.add_approval(key, ["acc-bob"])
    with pytest.raises(JiraApiError) as refused:
        jira.decide_approval(key, approval_id, AGENT, "approve")
    assert refused.value.status == 403
    assert jira.decide_approval(key, approval_id, "acc-bob", "decline") == "declined"
    with pytest.raises(JiraApiError) as again:
        jira.decide_approval(key, approval_id, "acc-bob", "approve")
    assert again.value.status == 400
