"""Intake: a new ticket must carry what the engineer needs before work starts.

Missing items get ONE comment listing exactly what is missing (recorded by a marker, so
replays never repeat it) and the ticket waits in "waiting for information". When the
reporter has supplied everything, the ticket moves on by itself. Once intake is complete
the rule leaves the ticket alone, so an agent who sets it back to waiting is not fought.

Example::

    - id: intake
      type: required-fields
      fields: [category, priority, environment, impact_scope, repro_steps, error_message, occurred_at]
      by_category:
        question: [category, priority, environment]
      by_priority:
        P0: [impact_scope, error_message, occurred_at]
      comment:
        public: true
        template: |
          To start on {{ ticket.key }} we need:
          {% for item in missing %}- {{ item }}
          {% endfor %}
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from connector.model import AddLabel, Priority, Status, Ticket, Transition, trusted
from connector.rules.base import CommentSpec, EvalContext, RuleBase, register

PSEUDO_FIELDS = ("category", "priority")


@register
class RequiredFieldsRule(RuleBase):
    type: Literal["required-fields"] = "required-fields"
    fields: list[str] = Field(description="logical fields every ticket needs ('category' and 'priority' allowed)")
    by_category: dict[str, list[str]] = Field(default_factory=dict, description="category -> fields, replacing `fields`")
    by_priority: dict[Priority, list[str]] = Field(default_factory=dict, description="priority -> fields required in addition")
    intake_statuses: list[Status] = Field(default=[Status.NEW], description="statuses in which a ticket is still in intake")
    waiting_status: Status = Status.WAITING_FOR_INFORMATION
    resume_status: Status = Status.IN_PROGRESS
    comment: CommentSpec

    template_sample: ClassVar[dict] = {"missing": ["Environment", "Exact error message"], "missing_fields": ["environment", "error_message"]}

    def comment_specs(self):
        return [(("comment",), self.comment)]

    def check(self, config) -> list[str]:
        problems = super().check(config)
        known = set(config.platforms.jira.fields) | set(config.platforms.zendesk.fields) | set(PSEUDO_FIELDS)
        for name in {*self.fields, *(f for fs in self.by_category.values() for f in fs),
                     *(f for fs in self.by_priority.values() for f in fs)}:
            if name not in known:
                problems.append(((), f"field '{name}' is not mapped on any platform; known fields: {', '.join(sorted(known))}"))
        return problems

    def required_for(self, ticket: Ticket) -> list[str]:
        return list(self._required(ticket))

    def _required(self, ticket: Ticket) -> tuple[str, ...]:
        # Derived once per (category, priority) seen: the answer depends on nothing else.
        memo = self.prepared()
        key = ("required", ticket.category, ticket.priority)
        found = memo.get(key)
        if found is None:
            by_category = {k.casefold(): v for k, v in self.by_category.items()}
            base = by_category.get((ticket.category or "").casefold(), self.fields)
            extra = self.by_priority.get(ticket.priority, []) if ticket.priority else []
            if len(memo) > 4096:  # categories are free text: keep the memo bounded
                memo.clear()
            found = memo[key] = tuple(dict.fromkeys([*base, *extra]))
        return found

    @staticmethod
    def _present(ticket: Ticket, name: str) -> bool:
        if name == "category":
            return bool(ticket.category)
        if name == "priority":
            return ticket.priority is not None
        return ticket.field_present(name)

    def evaluate(self, ctx: EvalContext) -> list:
        ticket = ctx.ticket
        if ctx.has_marker(f"{self.id}-complete"):
            return []
        requested = ctx.has_marker(f"{self.id}-requested")
        in_intake = any(ticket.is_in(s) for s in self.intake_statuses)
        if not in_intake and not (requested and ticket.is_in(self.waiting_status)):
            return []  # past intake, whatever is missing: nothing to ask and nothing to resume
        missing = [name for name in self._required(ticket) if not self._present(ticket, name)]
        if missing:
            if not in_intake:
                return []
            reason = f"intake incomplete: missing {', '.join(missing)}"
            actions = []
            if not requested:
                labels = [ctx.config.field_label(m) for m in missing]
                actions.append(ctx.comment(self, self.comment, reason, f"{self.id}-requested",
                                           missing=labels, missing_fields=missing))
            # Level-triggered: if the request was posted but the transition was lost (a worker
            # killed between the two writes), the next reconcile still moves the ticket.
            actions.append(Transition(rule=self.id, reason=reason, to=self.waiting_status))
            return actions
        if requested and ticket.is_in(self.waiting_status):
            reason = "intake complete: every required item is now given"
            return [Transition(rule=self.id, reason=reason, to=self.resume_status),
                    trusted(AddLabel, rule=self.id, reason=reason, label=ctx.marker(f"{self.id}-complete"))]
        return []
