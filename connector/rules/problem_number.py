"""Problem numbers: every report gets a unique number like TS20261120001, at intake.

"Every report gets a unique problem number": the number is the prefix, the day of the claim
in the calendar's time zone, and that day's sequence (zero-padded to `width`). The rules
engine is pure, so this rule cannot take a number: it asks for one with a `SetFields`
action holding `NEXT_NUMBER` ("(next problem number)"), and the reconciler claims the number
in the queue's storage just before the write (`connector.problem_numbers.assign`). What
`simulate`, `connector observed` and observe mode show is that placeholder: nothing is
claimed for a plan that is only looked at.

A ticket whose field already holds something is left alone (an agent's own number, a number
written before). Done tickets are left alone too: a number is an intake thing, and a closed
Zendesk ticket cannot be edited at all.

Example::

    - id: problem-number
      type: problem-number
      prefix: TS
      width: 3
      calendar: standard
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, field_validator

from connector.model import DONE_STATUSES, SetFields, trusted
from connector.rules.base import EvalContext, RuleBase, register

FIELD = "problem_number"
# The value a plan carries until the reconciler claims the number; shown by simulate/observe.
NEXT_NUMBER = "(next problem number)"

_PROBE_DAYS = (date(2026, 1, 2), date(2026, 1, 3), date(2026, 2, 2), date(2027, 1, 2))


@register
class ProblemNumberRule(RuleBase):
    type: Literal["problem-number"] = "problem-number"
    prefix: str = Field(default="TS", pattern=r"^[A-Za-z0-9_.-]*$", max_length=20,
                        description="text before the date, e.g. TS")
    date_format: str = Field(default="%Y%m%d", description="strftime format of the claim's day (calendar's time zone)")
    width: int = Field(default=3, ge=1, le=9, description="digits of the per-day sequence, zero-padded")
    calendar: str = Field(description="calendar whose time zone decides the day (and when the sequence restarts)")

    @field_validator("date_format")
    @classmethod
    def _distinct_days(cls, value: str) -> str:
        # The sequence restarts every day, so two days must never print the same: a format
        # without the day (or the year) would hand out one number twice.
        printed = {day.strftime(value) for day in _PROBE_DAYS}
        if len(printed) != len(_PROBE_DAYS):
            raise ValueError(f"date_format {value!r} must print year, month and day (e.g. %Y%m%d): "
                             "the sequence restarts every day, so a format without them repeats numbers")
        return value

    def check(self, config) -> list[tuple[tuple, str]]:
        problems = super().check(config)
        if self.calendar not in config.calendars:
            problems.append((("calendar",), f"calendar '{self.calendar}' is not defined; defined calendars: "
                                            f"{', '.join(config.calendars) or 'none'}"))
        if FIELD not in config.platforms.jira.fields and FIELD not in config.platforms.zendesk.fields:
            problems.append(((), f"field '{FIELD}' is not mapped on any platform; map it under "
                                 f"platforms.<platform>.fields.{FIELD}"))
        return problems

    def number(self, day: date, sequence: int) -> str:
        """The number for the `sequence`-th claim of `day` (a sequence past `width` digits
        just gets longer: still unique, the day's part is fixed)."""
        return f"{self.head(day)}{sequence:0{self.width}d}"

    def head(self, day: date) -> str:
        return f"{self.prefix}{day.strftime(self.date_format)}"

    def evaluate(self, ctx: EvalContext) -> list:
        ticket = ctx.ticket
        if ticket.status in DONE_STATUSES or not ctx.field_mapped(FIELD) or ticket.field_present(FIELD):
            return []
        return [trusted(SetFields, rule=self.id, reason="a new report gets its problem number",
                        fields={FIELD: NEXT_NUMBER})]
