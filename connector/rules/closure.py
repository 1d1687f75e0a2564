"""Closure criteria: a ticket may only be resolved or closed with its knowledge recorded.

A ticket that entered resolved/closed without the required fields (root cause, solution,
the reporter's verification result …) is moved back to work with a comment naming what is
missing. If the reporter's verification says "not resolved", the ticket goes back to work
too. Each return is keyed on the number of times the ticket has entered a done status, so
it happens once per resolve attempt however often the event is replayed, and a second
attempt without the fields is answered again.

Example::

    - id: closure
      type: closure
      fields: [root_cause, solution, verification_result]
      by_category:
        outage: [root_cause, solution, verification_result, kb_link]
      not_resolved_values: ["not resolved", "未解决"]
      comment:
        template: "{{ ticket.key }} cannot be resolved yet. Missing: {{ missing | join(', ') }}"
      reopen_comment:
        public: true
        template: "The reporter says the problem is not solved; {{ ticket.key }} is back in progress."
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from connector.model import DONE_STATUSES, SetFields, Status, Ticket, Transition
from connector.rules.base import CommentSpec, EvalContext, RuleBase, register


def done_entries(ticket: Ticket) -> int:
    """How many times the ticket has entered resolved/closed from an open status."""
    count = 0
    for change in ticket.status_history:
        if change.to_status in DONE_STATUSES and change.from_status not in DONE_STATUSES:
            count += 1
    if count == 0 and ticket.status in DONE_STATUSES:
        count = 1  # created straight into a done status, or history not available
    return count


@register
class ClosureRule(RuleBase):
    type: Literal["closure"] = "closure"
    fields: list[str] = Field(description="logical fields required to enter resolved/closed")
    by_category: dict[str, list[str]] = Field(default_factory=dict, description="category -> fields, replacing `fields`")
    verification_field: str = "verification_result"
    not_resolved_values: list[str] = Field(default=["not resolved", "not_resolved", "unresolved"])
    reopen_status: Status = Status.IN_PROGRESS
    comment: CommentSpec
    reopen_comment: CommentSpec | None = None

    template_sample: ClassVar[dict] = {"missing": ["Root cause"], "missing_fields": ["root_cause"], "verification": "not resolved"}

    def comment_specs(self):
        specs = [(("comment",), self.comment)]
        if self.reopen_comment:
            specs.append((("reopen_comment",), self.reopen_comment))
        return specs

    def required_for(self, ticket: Ticket) -> list[str]:
        by_category = {k.casefold(): v for k, v in self.by_category.items()}
        return by_category.get((ticket.category or "").casefold(), self.fields)

    def evaluate(self, ctx: EvalContext) -> list:
        ticket = ctx.ticket
        if ticket.status not in DONE_STATUSES:
            return []
        attempt = done_entries(ticket)
        missing = [f for f in self.required_for(ticket) if not ticket.field_present(f)]
        verification = str(ticket.fields.get(self.verification_field) or "").strip()
        not_resolved = verification.casefold() in {v.casefold() for v in self.not_resolved_values}
        if not_resolved:
            marker = f"{self.id}-not-resolved-{attempt}"
            if ctx.has_marker(marker):
                return []
            reason = f"reporter's verification is '{verification}'"
            spec = self.reopen_comment or self.comment
            actions = [ctx.comment(self, spec, reason, marker, missing=[], missing_fields=[], verification=verification),
                       Transition(rule=self.id, reason=reason, to=self.reopen_status)]
            if ctx.field_mapped(self.verification_field):
                # The next resolve attempt needs a fresh verification, not this old "no".
                actions.append(SetFields(rule=self.id, reason=reason, fields={self.verification_field: None}))
            return actions
        if missing:
            marker = f"{self.id}-returned-{attempt}"
            if ctx.has_marker(marker):
                return []
            reason = f"entered {ticket.status.value} without {', '.join(missing)}"
            labels = [ctx.config.field_label(m) for m in missing]
            return [ctx.comment(self, self.comment, reason, marker, missing=labels, missing_fields=missing,
                                verification=verification),
                    Transition(rule=self.id, reason=reason, to=self.reopen_status)]
        return []
