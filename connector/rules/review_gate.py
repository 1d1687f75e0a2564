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

Jira Service Management approvals are not read (yet): the reviewer field is the record.

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

from connector.model import DONE_STATUSES, Status, Transition
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
    reopen_status: Status = Status.IN_PROGRESS
    comment: CommentSpec

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
        """(what is missing, the reviewer as recorded); [] when the review is in place."""
        if not ticket.field_present(self.reviewer_field):
            return [self.reviewer_field], None
        reviewer = str(ticket.fields[self.reviewer_field]).strip()
        if ticket.assignee and reviewer.casefold() == str(ticket.assignee).strip().casefold():
            return [self.reviewer_field], reviewer  # reviewing one's own change does not count
        return [], reviewer

    def evaluate(self, ctx: EvalContext) -> list:
        ticket = ctx.ticket
        change_type = self.critical_change(ticket) if ticket.status in DONE_STATUSES else None
        if change_type is None:
            return []
        missing, reviewer = self.missing(ticket)
        if not missing:
            return []
        marker = f"{self.id}-returned-{done_entries(ticket)}"
        if ctx.has_marker(marker):
            return []
        label = ctx.config.field_label(self.reviewer_field)
        self_review = reviewer is not None
        reason = (f"entered {ticket.status.value} as a critical change reviewed only by its assignee" if self_review
                  else f"entered {ticket.status.value} as a critical change without {self.reviewer_field}")
        return [ctx.comment(self, self.comment, reason, marker, missing=[label], missing_fields=missing,
                            change_type=change_type, reviewer=reviewer, self_review=self_review),
                Transition(rule=self.id, reason=reason, to=self.reopen_status)]
