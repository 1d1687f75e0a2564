"""Reading Jira Service Management approvals of one issue.

`GET /rest/servicedeskapi/request/{issueIdOrKey}/approval` lists every approval on a
customer request, paged (`start`, `limit`; the page says `isLastPage`) as `values` of
ApprovalDTO: `id`, `name`, `finalDecision` ("approved" | "declined" | "pending"),
`approvers` [{`approver`: a user – `accountId` on Cloud, `name`/`key` on Data Center –,
`approverDecision`}], `createdDate` / `completedDate` ({`iso8601`, `epochMillis`, …}).
Permission: to view the customer request. Sources:
https://developer.atlassian.com/cloud/jira/service-desk/rest/api-group-request/ ("Get
approvals") and https://developer.atlassian.com/server/jira-servicedesk/rest/v1005/api-group-approval/.

It is a request of its own, made only when the review gate's outcome depends on it
(`connector.approvals`). A project that is not a service project has no approvals: the
service-desk API answers 404 there (a site without Jira Service Management has no such
resource) or 403 (Cloud, for a project that is not a service project:
sooperset/mcp-atlassian#1051). Either way the answer is "no approvals" – fail closed, the
reviewer field is then the only record – and the project is remembered for the life of the
process, so its issues do not cost that request again. The answer cannot tell a project
without Service Management from one issue that is not a request, so in the rare second case
the project's approvals are ignored until the worker restarts: the gate then falls back to
the reviewer field (a wrongful move back, never a wrongful pass). Other errors (401, 429,
5xx, timeouts) are raised: the reconcile is retried rather than judged without the approval.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from connector.model import Approval, ApproverDecision, Ticket
from connector.platforms.base import NotFound, Unauthorized
from connector.platforms.jira.client import PLATFORM, JiraClient, issue_ref
from connector.platforms.jira.issue import _user_id
from connector.platforms.memory import BoundedMemory
from connector.timefmt import parse_instant

log = logging.getLogger(__name__)

# The documented default and the page size asked for; `isLastPage` decides, not the size.
APPROVAL_PAGE_SIZE = 50
# Paging stops after this many pages even if Jira never says `isLastPage` (a broken proxy).
MAX_APPROVAL_PAGES = 20


class ApprovalReader:
    """Approvals of issues, with projects that have none remembered per process."""

    def __init__(self, client: JiraClient, *, memory: BoundedMemory[str, bool] | None = None) -> None:
        self._client = client
        # Project key -> True when the service-desk API said the project has no approvals.
        self._without = memory if memory is not None else BoundedMemory()

    def approvals(self, ticket: Ticket) -> tuple[Approval, ...]:
        """Every approval on the issue, oldest page first; () for a project without approvals."""
        project = _project(ticket.key)
        if project in self._without:
            return ()
        ref = issue_ref(ticket.key or ticket.id)
        values: list[Any] = []
        start = 0
        for _ in range(MAX_APPROVAL_PAGES):
            try:
                page = self._client.approval_page(ref, start, APPROVAL_PAGE_SIZE)
            except (NotFound, Unauthorized) as exc:
                if exc.status == 401:
                    raise  # the credentials, not the project: never taken for "no approvals"
                self._without.put(project, True)
                log.warning("jira.approvals_unavailable", extra={
                    "platform": PLATFORM, "ticket_key": ticket.key, "project": project, "status": exc.status})
                return ()
            listed = page.get("values") if isinstance(page, Mapping) else None
            listed = [v for v in listed or () if isinstance(v, Mapping)]
            values.extend(listed)
            if not listed or not isinstance(page, Mapping) or page.get("isLastPage", True):
                break
            start += len(listed)
        return tuple(approval for raw in values if (approval := parse_approval(raw)) is not None)


def parse_approval(raw: Mapping[str, Any]) -> Approval | None:
    """An ApprovalDTO as the rules see it; None without an id (nothing to tell it apart by)."""
    approval_id = raw.get("id")
    if approval_id in (None, ""):
        return None
    approvers = []
    for entry in raw.get("approvers") or ():
        if not isinstance(entry, Mapping):
            continue
        who = _user_id(entry.get("approver"))
        if who:
            approvers.append(ApproverDecision(approver=who, decision=str(entry.get("approverDecision") or "pending")))
    completed = raw.get("completedDate")
    when = completed.get("iso8601") if isinstance(completed, Mapping) else None
    return Approval(id=str(approval_id), name=str(raw.get("name") or ""),
                    final_decision=str(raw.get("finalDecision") or "pending"), approvers=tuple(approvers),
                    # Context only (an unreadable date is None): the decision is what counts.
                    completed=parse_instant(when))


def _project(key: str) -> str:
    """The project key of an issue key (SUP-42 -> SUP)."""
    return key.rsplit("-", 1)[0] if "-" in key else key
