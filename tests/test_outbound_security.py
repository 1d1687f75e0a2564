"""Outbound requests go only to the configured base URL: no redirect is ever followed."""

from __future__ import annotations

import pytest
import responses

from connector.platforms.base import HostError
from connector.platforms.jira import JiraAdapter
from connector.platforms.mapping import default_jira_mapping, default_zendesk_mapping
from connector.platforms.zendesk import ZendeskAdapter
from connector.platforms.base import RetryPolicy

NO_WAIT = RetryPolicy(sleep=lambda seconds: None)


@responses.activate
def test_jira_adapter_does_not_follow_a_redirect_to_another_host():
    responses.get("https://acme.atlassian.net/rest/api/2/issue/SUP-1", status=302,
                  headers={"Location": "https://evil.example.com/steal"})
    responses.get("https://evil.example.com/steal", json={})
    adapter = JiraAdapter("https://acme.atlassian.net", "bot@acme.com", "token", default_jira_mapping(),
                          deployment="Cloud", policy=NO_WAIT)
    with pytest.raises(HostError, match="redirect"):
        adapter.fetch("SUP-1")
    assert [call.request.url.split("?")[0] for call in responses.calls] == [
        "https://acme.atlassian.net/rest/api/2/issue/SUP-1"]


@responses.activate
def test_zendesk_adapter_does_not_follow_a_redirect():
    responses.get("https://acme.zendesk.com/api/v2/tickets/7.json", status=301,
                  headers={"Location": "https://other.example.com/api/v2/tickets/7.json"})
    responses.get("https://other.example.com/api/v2/tickets/7.json", json={})
    adapter = ZendeskAdapter("https://acme.zendesk.com", "bot@acme.com", "token", default_zendesk_mapping(),
                             policy=NO_WAIT)
    with pytest.raises(HostError, match="redirect"):
        adapter.fetch("7")
    assert all("other.example.com" not in call.request.url for call in responses.calls)
