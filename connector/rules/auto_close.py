"""Auto-close: a resolved ticket the reporter does not answer is closed after N business days.

Resolved is a question to the reporter ("does this fix it?"). If they say nothing for the
configured business time, the ticket is closed with a comment saying so; a reply from the
reporter after resolution stops the countdown (an agent then decides). The close is keyed
on the resolve attempt, so a reopened and re-resolved ticket gets a fresh countdown and a
replayed event never posts the comment twice.

Example::

    - id: auto-close
      type: auto-close
      after: 3bd
      calendar: standard
      comment:
        public: true
        template: "We have not heard back about {{ ticket.key }} since {{ resolved }}, so we are closing it."
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from connector.model import AuthorRole, Status, Transition
from connector.rules.base import CommentSpec, EvalContext, RuleBase, check_duration, register
from connector.rules.closure import done_entries
from connector.timefmt import format_instant


@register
class AutoCloseRule(RuleBase):
    type: Literal["auto-close"] = "auto-close"
    after: str = Field(default="3bd", description="business time in resolved without a reporter reply")
    calendar: str
    close_status: Status = Status.CLOSED
    comment: CommentSpec

    template_sample: ClassVar[dict] = {"resolved": "2026-11-20 15:00 CST", "due": "2026-11-25 15:00 CST"}

    @field_validator("after")
    @classmethod
    def _duration(cls, value: str) -> str:
        return check_duration(value)

    def prepare(self, config) -> None:
        self.minutes_in(self.after, config.calendar(self.calendar))

    def comment_specs(self):
        return [(("comment",), self.comment)]

    def check(self, config) -> list[tuple[tuple, str]]:
        problems = super().check(config)
        if self.calendar not in config.calendars:
            problems.append((("calendar",), f"calendar '{self.calendar}' is not defined; defined calendars: "
                                            f"{', '.join(config.calendars) or 'none'}"))
        return problems

    def evaluate(self, ctx: EvalContext) -> list:
        ticket = ctx.ticket
        if ticket.status != Status.RESOLVED:
            return []
        entered = [c.at for c in ticket.status_history if c.to_status == Status.RESOLVED]
        resolved_at = max(entered) if entered else (ticket.resolved or ticket.updated or ticket.created)
        if any(c.author_role == AuthorRole.REQUESTER and c.created > resolved_at for c in ticket.comments):
            return []
        calendar = ctx.config.calendar(self.calendar)
        due = calendar.add_business_minutes(resolved_at, self.minutes_in(self.after, calendar))
        if ctx.now < due:
            ctx.add_deadline(due)
            return []
        marker = f"{self.id}-{done_entries(ticket)}"
        reason = f"resolved since {format_instant(resolved_at, calendar.tz)} without a reply from the reporter"
        close = Transition(rule=self.id, reason=reason, to=self.close_status)
        if ctx.has_marker(marker):
            # The comment went out but the ticket is still resolved (the close was refused,
            # e.g. a required field on the Close screen, or the worker died in between):
            # keep asking for the close; the adapter reports it rather than resending a refusal.
            return [close]
        return [ctx.comment(self, self.comment, reason, marker, resolved=format_instant(resolved_at, calendar.tz),
                            due=format_instant(due, calendar.tz)),
                close]
