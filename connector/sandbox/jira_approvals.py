"""Jira Service Management approvals in the sandbox Jira: stored on issues, decided, listed.

Modelled on Atlassian's documents:
- `GET /rest/servicedeskapi/request/{issueIdOrKey}/approval` ("Get approvals", permission:
  to view the customer request) lists every approval of a request as a page
  (`start`, `limit` – default 50 –, `size`, `isLastPage`, `_links`, `values`) of ApprovalDTO
  {`id`, `name`, `finalDecision` approved|declined|pending, `canAnswerApproval`,
  `approvers` [{`approver`: UserDTO, `approverDecision`}], `createdDate`, `completedDate`
  (DateDTO {`iso8601`, `jira`, `friendly`, `epochMillis`})}.
  https://developer.atlassian.com/cloud/jira/service-desk/rest/api-group-request/ and
  https://developer.atlassian.com/server/jira-servicedesk/rest/v1005/api-group-approval/.
  UserDTO: `accountId` on Cloud, `key`/`name` on Data Center, plus `displayName`,
  `emailAddress`, `active`, `timeZone`, `_links`.
- Answering one ("Answer approval", `decision` approve|decline) is allowed only to a user
  "assigned to the approval request"; anyone else is refused (403).
- "The approvers approve or decline the request … The request transitions to the next
  status in the workflow" (support.atlassian.com "What are approvals?"): the approval step's
  Approve / Decline transitions (confluence "Configuring Jira Service Management approvals").
  So a final decision on an approval created with `approve_to` / `decline_to` moves the
  issue there – a status change, which fires `jira:issue_updated` like any transition.
  Nothing documents a webhook for a decision that moves nothing; failing closed, such a
  decision fires none (the sweep still finds the ticket on its next pass).
- How many approvals a step needs is configurable ("one or more approvers"); here
  `required` (default 1). A single decline declines the approval: the documents do not
  say otherwise for a number condition, and a decline must never read as approved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

APPROVAL_PAGE_DEFAULT = 50


@dataclass
class StoredApproval:
    id: str
    name: str
    created: datetime
    # approver account id -> "pending" | "approved" | "declined", in the order given
    decisions: dict[str, str]
    required: int = 1
    approve_to: str | None = None
    decline_to: str | None = None
    completed: datetime | None = None
    final: str = "pending"

    def decide(self, account_id: str, decision: str, at: datetime) -> bool:
        """Record one approver's answer ("approve" | "decline"); True when that made the approval final."""
        if decision not in ("approve", "decline"):
            raise ValueError("decision must be 'approve' or 'decline'")
        if account_id not in self.decisions:
            raise PermissionError("The user is not an approver of this approval.")
        if self.final != "pending":
            raise RuntimeError("This approval has already been decided.")
        self.decisions[account_id] = "approved" if decision == "approve" else "declined"
        if decision == "decline":
            self.final = "declined"
        elif sum(1 for d in self.decisions.values() if d == "approved") >= self.required:
            self.final = "approved"
        if self.final == "pending":
            return False
        self.completed = at
        return True


@dataclass
class ApprovalBook:
    """The approvals of every issue of the sandbox, by issue id."""

    by_issue: dict[int, list[StoredApproval]] = field(default_factory=dict)
    next_id: int = 1

    def add(self, issue_id: int, name: str, approvers: list[str], at: datetime, *, required: int = 1,
            approve_to: str | None = None, decline_to: str | None = None) -> StoredApproval:
        if not approvers:
            raise ValueError("an approval needs at least one approver")
        if not 1 <= required <= len(approvers):
            raise ValueError("required must be between 1 and the number of approvers")
        approval = StoredApproval(str(self.next_id), name, at, {a: "pending" for a in approvers}, required,
                                  approve_to, decline_to)
        self.next_id += 1
        self.by_issue.setdefault(issue_id, []).append(approval)
        return approval

    def find(self, issue_id: int, approval_id: str) -> StoredApproval | None:
        return next((a for a in self.by_issue.get(issue_id, ()) if a.id == str(approval_id)), None)

    def page(self, issue_id: int, start: int, limit: int, *, base: str, key: str,
             user_json, date_json, viewer: str) -> dict[str, Any]:
        """One page of the issue's approvals as PagedDTOApprovalDTO."""
        approvals = self.by_issue.get(issue_id, [])
        chunk = approvals[start:start + limit]
        last = start + len(chunk) >= len(approvals)
        links: dict[str, Any] = {"base": base, "context": "",
                                 "self": f"{base}/rest/servicedeskapi/request/{key}/approval?start={start}&limit={limit}"}
        if not last:
            links["next"] = f"{base}/rest/servicedeskapi/request/{key}/approval?start={start + limit}&limit={limit}"
        if start > 0:
            links["prev"] = f"{base}/rest/servicedeskapi/request/{key}/approval?start={max(0, start - limit)}&limit={limit}"
        values = []
        for approval in chunk:
            dto: dict[str, Any] = {
                "id": approval.id, "name": approval.name, "finalDecision": approval.final,
                "canAnswerApproval": approval.final == "pending" and viewer in approval.decisions,
                "approvers": [{"approver": user_json(who), "approverDecision": decision}
                              for who, decision in approval.decisions.items()],
                "createdDate": date_json(approval.created),
                "_links": {"self": f"{base}/rest/servicedeskapi/request/{key}/approval/{approval.id}"},
            }
            if approval.completed is not None:
                dto["completedDate"] = date_json(approval.completed)
            values.append(dto)
        return {"_expands": [], "size": len(values), "start": start, "limit": limit, "isLastPage": last,
                "_links": links, "values": values}
