"""A one-try JiraAdapter on a sandbox Jira, Cloud or Data Center (tests of single reads)."""

from __future__ import annotations

from connector.platforms.base import RetryPolicy
from connector.platforms.jira import JiraAdapter
from connector.platforms.mapping import default_jira_mapping
from connector.sandbox.jira import JiraSandbox

ONE_TRY = RetryPolicy(max_attempts=1)


def adapter_for(sandbox: JiraSandbox) -> JiraAdapter:
    """The adapter as a site's settings would build it: an API token on Cloud, a personal
    access token on Data Center; one attempt, so a refused read shows at once."""
    if sandbox.deployment == "Cloud":
        return JiraAdapter(sandbox.base_url, sandbox.email, sandbox.api_token, default_jira_mapping(),
                           deployment="Cloud", policy=ONE_TRY)
    return JiraAdapter(sandbox.base_url, None, sandbox.pat, default_jira_mapping(), deployment="Server",
                       policy=ONE_TRY)
