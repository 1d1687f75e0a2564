"""Review gate: a critical change may only be resolved once a second person has checked it.

"Key operations (data changes, system configuration changes) need a second person's check;
major changes (version upgrades, architecture) need a review beforehand." A ticket whose
change-type field (logical field `change_type`) holds one of `change_types` cannot stay in
resolved/closed until a reviewer is recorded (logical field `reviewer`) who is not the
assignee: one person cannot review their own change. Otherwise the ticket is moved back to
`reopen_status` with a comment naming what is missing, like the closure rule.

Values are compared case-insensitively with `_`, `-` and spaces treated alike, so the
Zendesk tag `data_fix` and the Jira option "Data fix" both match `data fix`. The reviewer
is compared with the assignee by identity: on Jira a user-picker field gives the accountId
(Cloud) or username (Data Center), like the assignee; on Zendesk the field holds the
reviewer's user id (the assignee is `assignee_id`).

Each return is keyed on the number of times the ticket has entered a done status
(`<id>-returned-<attempt>`), so it happens once per resolve attempt however often the
event is replayed, and a second attempt still without a reviewer is answered again.

Approvals (`approvals: true`, the default): on Jira a Jira Service Management approval is
the other record of a second person's check. A critical change also passes when the ticket
carries an approval whose final decision is "approved" and in which at least one approver
who decided "approved" is not the assignee (compared by identity like the reviewer:
accountId on Cloud, username/key on Data Center). A declined or pending approval, or one
approved only by the assignee, does not count. Reading approvals costs a request of its
own (`GET /rest/servicedeskapi/request/{key}/approval`), so the rule is pure and says when
it needs them (`wants_approvals`): only for a ticket in a done status, of a critical change
type, that the reviewer field does not already let pass and that this resolve attempt has
not been answered for. `connector.approvals.with_approvals` reads them then, between fetch
and evaluate; a ticket whose approvals were not read (`ticket.approvals is None`: simulate,
the sweep's read-only pass) is judged without them (fail closed – the sweep then queues a
reconcile, which reads them). Zendesk has no approval record the connector reads (its
approval requests API is an early-access feature of some plans, see
`connector.approvals`), so nothing changes there: the reviewer field is the only record.

Example::

    - id: review-gate
      type: review-gate
      change_types: ["data fix", "configuration", "upgrade", "architecture"]
      reopen_status: in_progress
      comment:
        template: "{{ ticket.key }} needs a second person's review first: {{ missing | join(', ') }}"
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from connector.model import DONE_STATUSES, Approval, Status, Ticket, Transition
from connector.rules.base import CommentSpec, EvalContext, RuleBase, register
from connector.rules.closure import done_entries

if TYPE_CHECKING:
    from connector.config import SupportConfig


def normalized(value: object) -> str:
    """`Data fix`, `data_fix` and `DATA-FIX` alike."""
    return re.sub(r"[\s_-]+", " ", str(value or "")).strip().casefold()


@register
class ReviewGateRule(RuleBase):
    type: Literal["review-gate"] = "review-gate"
    change_types: list[str] = Field(min_length=1, description="values of `change_type_field` that need a review")
    change_type_field: str = Field(default="change_type", description="logical field holding the change type")
    reviewer_field: str = Field(default="reviewer", description="logical field holding the reviewer (a user)")
    approvals: bool = Field(default=True, description="on Jira, a Jira Service Management approval by someone "
                                                        "other than the assignee also records the review")
    approval_alternative: str = Field(
        default="or an approval by someone other than the assignee",
        description="what `missing` adds to the reviewer field's label where approvals count")
    reopen_status: Status = Status.IN_PROGRESS
    comment: CommentSpec

    # Platforms whose tickets carry approvals the connector reads (Jira Service Management).
    APPROVAL_PLATFORMS: ClassVar[frozenset[str]] = frozenset({"jira"})

    template_sample: ClassVar[dict] = {"missing": ["Reviewer"], "missing_fields": ["reviewer"],
                                       "change_type": "data fix", "reviewer": None,
                                       "self_review": False}

    @field_validator("change_types")
    @classmethod
    def _not_blank(cls, values: list[str]) -> list[str]:
        if any(not normalized(v) for v in values):
            raise ValueError("change_types must not contain an empty value")
        return values

    def comment_specs(self):
        return [(("comment",), self.comment)]

    def check(self, config: "SupportConfig") -> list[tuple[tuple, str]]:
        problems = super().check(config)
        known = set(config.platforms.jira.fields) | set(config.platforms.zendesk.fields)
        for key in ("change_type_field", "reviewer_field"):
            name = getattr(self, key)
            if name not in known:
                problems.append(((key,), f"field '{name}' is not mapped on any platform; map it under "
                                         f"platforms.<platform>.fields.{name}"))
        if self.reopen_status in DONE_STATUSES:
            problems.append((("reopen_status",), "must be an open status: the ticket goes back to work"))
        return problems

    def critical_change(self, ticket) -> str | None:
        """The entry of `change_types` the ticket's change type matches, or None.

        The configured spelling is what the comment shows, so one ticket reads the same on
        both platforms (Jira gives the option "Data fix", Zendesk its tag `data_fix`)."""
        value = ticket.fields.get(self.change_type_field)
        values = value if isinstance(value, (list, tuple)) else [value]
        found = {normalized(v) for v in values if v is not None}
        return next((wanted for wanted in self.change_types if normalized(wanted) in found), None)

    def missing(self, ticket) -> tuple[list[str], str | None]:
        """(what is missing, the reviewer as recorded); [] when the reviewer field records the review."""
        if not ticket.field_present(self.reviewer_field):
            return [self.reviewer_field], None
        reviewer = str(ticket.fields[self.reviewer_field]).strip()
        if same_person(reviewer, ticket.assignee):
            return [self.reviewer_field], reviewer  # reviewing one's own change does not count
        return [], reviewer

    def counts_approvals(self, ticket: Ticket) -> bool:
        """True when an approval on `ticket` may record the review (option on, platform has them)."""
        return self.approvals and ticket.platform in self.APPROVAL_PLATFORMS

    def wants_approvals(self, ticket: Ticket, config: "SupportConfig") -> bool:
        """True when this rule's outcome for `ticket` depends on its approvals. Pure: nothing is read.

        Only then is the extra request made (`connector.approvals.with_approvals`): the ticket
        is in a done status as a critical change, the reviewer field does not let it pass,
        and this resolve attempt has not been answered yet."""
        if ticket.approvals is not None or not self.counts_approvals(ticket) or not self.applies(ticket):
            return False
        if ticket.status not in DONE_STATUSES or self.critical_change(ticket) is None:
            return False
        if not self.missing(ticket)[0]:
            return False
        marker = config.marker(f"{self.id}-returned-{done_entries(ticket)}")
        return marker not in ticket.labels and marker not in ticket.comment_markers

    def approved_by_another(self, ticket: Ticket) -> tuple[bool, bool]:
        """(an approval by someone other than the assignee exists, one approved only by the
        assignee exists). Approvals not read count as none (fail closed)."""
        if not self.counts_approvals(ticket):
            return False, False
        by_assignee_only = False
        for approval in ticket.approvals or ():
            if not _approved(approval):
                continue
            yes = [a.approver for a in approval.approvers if _approved_decision(a.decision)]
            if any(not same_person(who, ticket.assignee) for who in yes):
                return True, False
            by_assignee_only = by_assignee_only or bool(yes)
        return False, by_assignee_only

    def evaluate(self, ctx: EvalContext) -> list:
        ticket = ctx.ticket
        change_type = self.critical_change(ticket) if ticket.status in DONE_STATUSES else None
        if change_type is None:
            return []
        missing, reviewer = self.missing(ticket)
        if not missing:
            return []
        approved, approved_by_assignee = self.approved_by_another(ticket)
        if approved:
            return []
        marker = f"{self.id}-returned-{done_entries(ticket)}"
        if ctx.has_marker(marker):
            return []
        label = ctx.config.field_label(self.reviewer_field)
        if self.counts_approvals(ticket):
            label = f"{label} ({self.approval_alternative})"
        self_review = reviewer is not None or approved_by_assignee
        reason = (f"entered {ticket.status.value} as a critical change reviewed only by its assignee" if self_review
                  else f"entered {ticket.status.value} as a critical change without {self.reviewer_field}")
        return [ctx.comment(self, self.comment, reason, marker, missing=[label], missing_fields=missing,
                            change_type=change_type, reviewer=reviewer, self_review=self_review),
                Transition(rule=self.id, reason=reason, to=self.reopen_status)]


def same_person(who: str | None, assignee: str | None) -> bool:
    """True when `who` is the assignee (identities compared case-insensitively)."""
    return bool(who and assignee) and str(who).strip().casefold() == str(assignee).strip().casefold()


def _approved_decision(decision: str) -> bool:
    return str(decision or "").strip().casefold() == "approved"


def _approved(approval: Approval) -> bool:
    """Jira's own verdict: `finalDecision` "approved" (a declined or pending one does not count)."""
    return _approved_decision(approval.final_decision)
