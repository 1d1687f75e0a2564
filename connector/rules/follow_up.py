"""Follow-up: after a P0/P1 is closed, someone revisits the customer within N business days.

When the ticket enters resolved/closed the revisit due instant is computed in the rule's
calendar (and written to a date-time field when one is mapped). When it is due and no
agent has written to the reporter since closing, the assignee gets one internal reminder.
A public agent comment after closing, or the agent adding the `<prefix><rule>-done` label,
counts as the revisit and is recorded with that marker.

Example::

    - id: follow-up
      type: follow-up
      when: {priorities: [P0, P1]}
      within: 3bd
      calendar: standard
      due_field: follow_up_due
      reminder:
        template: "Follow-up with the reporter of {{ ticket.key }} is due ({{ due }})."
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from connector.model import DONE_STATUSES, AddLabel, AuthorRole, SetFields, Ticket, trusted
from connector.rules.base import CommentSpec, EvalContext, RuleBase, check_duration, register
from connector.timefmt import format_instant, same_instant


def closed_at(ticket: Ticket):
    """When the ticket last entered a done status (None while it is open)."""
    if ticket.status not in DONE_STATUSES:
        return None
    entered = [c.at for c in ticket.status_history
               if c.to_status in DONE_STATUSES and c.from_status not in DONE_STATUSES]
    return max(entered) if entered else (ticket.resolved or ticket.updated or ticket.created)


@register
class FollowUpRule(RuleBase):
    type: Literal["follow-up"] = "follow-up"
    within: str = Field(default="3bd", description="business time after closing: 3bd, 8h …")
    calendar: str
    due_field: str | None = None
    reminder: CommentSpec

    template_sample: ClassVar[dict] = {"due": "2026-11-25 09:00 CST"}

    @field_validator("within")
    @classmethod
    def _duration(cls, value: str) -> str:
        return check_duration(value)

    def prepare(self, config) -> None:
        self.minutes_in(self.within, config.calendar(self.calendar))

    def comment_specs(self):
        return [(("reminder",), self.reminder)]

    def check(self, config) -> list[str]:
        problems = super().check(config)
        if self.calendar not in config.calendars:
            problems.append((("calendar",), f"calendar '{self.calendar}' is not defined; defined calendars: {', '.join(config.calendars) or 'none'}"))
        return problems

    def evaluate(self, ctx: EvalContext) -> list:
        ticket = ctx.ticket
        closed = closed_at(ticket)
        done_marker = f"{self.id}-done"
        if closed is None or ctx.has_marker(done_marker):
            return []
        calendar = ctx.config.calendar(self.calendar)
        due = calendar.add_business_minutes(closed, self.minutes_in(self.within, calendar))
        actions: list = []
        if self.due_field and ctx.field_mapped(self.due_field) and not same_instant(ticket.fields.get(self.due_field), due, calendar.tz):
            actions.append(trusted(SetFields, rule=self.id, reason="follow-up due after closing",
                                     fields={self.due_field: format_instant(due, calendar.tz, iso=True)}))
        revisited = any(c.created > closed and c.public and c.author_role == AuthorRole.AGENT for c in ticket.comments)
        if revisited:
            actions.append(trusted(AddLabel, rule=self.id, reason="an agent wrote to the reporter after closing",
                                    label=ctx.marker(done_marker)))
            return actions
        if ctx.now >= due:
            marker = f"{self.id}-reminded"
            if not ctx.has_marker(marker):
                actions.append(ctx.comment(self, self.reminder, "follow-up is due", marker,
                                           due=format_instant(due, calendar.tz)))
        else:
            ctx.add_deadline(due)
        return actions
