"""Closing summary: when a problem is resolved, tell the reporter the result and ask for a rating.

"When a problem is closed, tell the reporter the result – solution, handling time,
preventive measures – and collect satisfaction (satisfied / basically satisfied / needs
improvement)." When the ticket enters resolved/closed this rule posts ONE public comment
rendered from the ticket's solution, root cause (optional), preventive measures and the
handling time, asking the reporter to verify the fix and to rate it, in the reporter's
language.

Handling time is business time from creation to the (latest) resolution, in the calendar
of the SLA tier that applies to the ticket (`connector.rules.tiers`: a premium customer in
Berlin hears Berlin working hours) or in the rule's own `calendar` when it names one, counted by the SLA clock machinery (`connector.sla.build_clock`, the
resolution metric): time in `pause_statuses` (waiting for the customer / a third party /
information) does not count by default, so the reporter is told the same minutes the SLA
rule judged and the review report shows; set `pause_statuses: []` to count every business
minute. Time spent resolved before a reopen does not count either (the clock stops while
the ticket is done).

Language: the requester's locale as the platform gives it (Zendesk user `locale`, Jira
user `locale`) picks one of `comment.templates` – the exact tag first (`zh-CN`, `_` and
`-` alike, any case), then the language alone (`zh-TW` → a `zh` template, `en-US` → `en`);
anything else, or no locale, gets `comment.default`. The reporter embedded in a Jira issue
carries no locale, so it is read (`GET /rest/api/2/user`) between fetch and evaluate, only
when `wants_reporter_locale` says the outcome depends on it (`connector.locales`).

Once per resolve attempt: the marker is `<id>-sent-<attempt>`, the attempt being the
number of times the ticket has entered a done status (`closure.done_entries`), so a
replayed event posts nothing, and a ticket reopened and resolved again gets a fresh
summary. Never for a resolve another rule sends back. In the same plan: the engine shows
each rule the ticket as the earlier rules' actions leave it, so this rule must come after
the `closure` and `review-gate` rules (the config check says so) – a ticket they move back
to work is no longer resolved when this rule looks. In a later plan: their markers for
this attempt (`<id>-returned-<attempt>`, `<id>-not-resolved-<attempt>`) are on the ticket,
also when the workflow offered no transition back and the ticket stayed resolved. A resolution older than
`max_delay_hours` (wall clock) gets no summary: turning the rule on must not mail every
reporter of last year's tickets.

Example::

    - id: closing-summary
      type: closing-summary
      comment:
        public: true
        default: en
        templates:
          en: |
            {{ ticket.key }} is resolved. Solution: {{ solution }} ... Handling time: {{ handling_time }}.
          zh-CN: |
            {{ ticket.key }} 已解决。解决方案：{{ solution }} …… 处理时长：{{ handling_time }}。
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from connector.model import DONE_STATUSES, Status, Ticket
from connector.rules.base import CommentSpec, EvalContext, RuleBase, Strict, register
from connector.rules.closure import done_entries
from connector.rules.tiers import applicable_sla
from connector.sla import build_clock
from connector.timefmt import format_instant, format_minutes

if TYPE_CHECKING:
    from connector.config import SupportConfig

# Rules that may move a resolved ticket back to work in the same plan.
SENDS_BACK = ("closure", "review-gate")


def _tag(locale: str) -> str:
    return locale.strip().replace("_", "-").casefold()


class LocalizedComment(Strict):
    """A public comment with one template per language; `default` is used for any other."""

    templates: dict[str, str] = Field(min_length=1, description="language tag (en, zh-CN …) -> Jinja2 template")
    default: str = Field(description="language of the template used when the reporter's is unknown or not listed")
    public: bool = True

    @model_validator(mode="after")
    def _default_listed(self) -> "LocalizedComment":
        if self.default not in self.templates:
            raise ValueError(f"default '{self.default}' has no template; languages with one: "
                             f"{', '.join(self.templates)}")
        return self

    def language_for(self, locale: str | None) -> str:
        """The language whose template answers a reporter with `locale`."""
        if locale and locale.strip():
            wanted = _tag(locale)
            by_tag = {_tag(lang): lang for lang in self.templates}
            if wanted in by_tag:
                return by_tag[wanted]
            primary = wanted.split("-", 1)[0]
            for tag, lang in by_tag.items():
                if tag.split("-", 1)[0] == primary:
                    return lang
        return self.default


@register
class ClosingSummaryRule(RuleBase):
    type: Literal["closing-summary"] = "closing-summary"
    calendar: str | None = Field(
        default=None, description="name of a calendar under `calendars:`; handling time is its business time "
                                  "(default: the calendar of the SLA tier that applies to the ticket)")
    pause_statuses: list[Status] = Field(
        default=[Status.WAITING_FOR_INFORMATION, Status.WAITING_FOR_CUSTOMER, Status.WAITING_FOR_THIRD_PARTY],
        description="time in these statuses is not handling time ([] counts every business minute)")
    solution_field: str = "solution"
    root_cause_field: str = "root_cause"
    preventive_measures_field: str = "preventive_measures"
    max_delay_hours: float = Field(default=24, gt=0,
                                   description="no summary for a resolution older than this (wall-clock hours)")
    comment: LocalizedComment

    template_sample: ClassVar[dict] = {
        "solution": "Restarted the report service", "root_cause": "Expired database password",
        "preventive_measures": "Password expiry is monitored", "handling_time": "5h 30m",
        "handling_minutes": 330.0, "resolved": "2026-11-20 15:30 CST", "language": "en",
    }

    def comment_specs(self):
        return [(("comment", "templates", lang), CommentSpec(template=text, public=self.comment.public))
                for lang, text in self.comment.templates.items()]

    def check(self, config: "SupportConfig") -> list[tuple[tuple, str]]:
        problems = super().check(config)
        if self.calendar is not None and self.calendar not in config.calendars:
            problems.append((("calendar",), f"calendar '{self.calendar}' is not defined; defined calendars: "
                                            f"{', '.join(config.calendars) or 'none'}"))
        known = set(config.platforms.jira.fields) | set(config.platforms.zendesk.fields)
        for key in ("solution_field", "root_cause_field", "preventive_measures_field"):
            name = getattr(self, key)
            if name not in known:
                problems.append(((key,), f"field '{name}' is not mapped on any platform; map it under "
                                         f"platforms.<platform>.fields.{name}"))
        position = next(i for i, rule in enumerate(config.rules) if rule is self)
        later = [rule.id for rule in config.rules[position + 1:] if rule.type in SENDS_BACK and rule.enabled]
        if later:
            problems.append((("type",), f"must come after the rules that may send a resolved ticket back "
                                        f"({', '.join(later)}): move this rule below them, so a ticket they move "
                                        "back gets no closing summary"))
        return problems

    def sent_back(self, ctx: EvalContext, attempt: int) -> bool:
        """True when a closure or review-gate rule answered this resolve attempt by sending the
        ticket back – recorded by its marker even where the move itself could not be made (a
        workflow without that transition): the resolve does not stand, so there is nothing to
        summarise."""
        for rule in ctx.config.rules:
            if rule.type in SENDS_BACK and rule.enabled:
                if ctx.has_marker(f"{rule.id}-returned-{attempt}") or ctx.has_marker(f"{rule.id}-not-resolved-{attempt}"):
                    return True
        return False

    def calendar_for(self, ticket: Ticket, ctx: EvalContext):
        """The rule's own calendar, else the one of the SLA tier that measured the ticket (a
        premium customer in Berlin is told its handling time in Berlin's working hours), else
        None: no calendar to count business time in."""
        if self.calendar is not None:
            return ctx.config.calendar(self.calendar)
        tier = applicable_sla(ctx.config, ticket)
        return ctx.config.calendar(tier.calendar) if tier is not None else None

    def handling_minutes(self, ticket: Ticket, ctx: EvalContext, calendar) -> float | None:
        """Business minutes from creation to resolution – the SLA resolution clock's elapsed time."""
        built = build_clock("resolution", ticket, ctx.now, target_minutes=1, clock="business",
                            calendar=calendar, paused=frozenset(self.pause_statuses))
        return None if built is None else built[0].elapsed_minutes

    def due(self, ctx: EvalContext) -> tuple[datetime, str, Any] | None:
        """(resolved at, marker, calendar) when a summary is owed for `ctx.ticket` now, else None:
        a done status, this resolve attempt neither answered nor sent back, the resolution
        younger than `max_delay_hours`, a calendar to count business time in."""
        ticket = ctx.ticket
        resolved = resolved_at(ticket)
        if ticket.status not in DONE_STATUSES or resolved is None:
            return None  # not resolved, or a resolution the platform gives no time for: nothing to tell
        attempt = done_entries(ticket)
        marker = f"{self.id}-sent-{attempt}"
        if ctx.has_marker(marker) or self.sent_back(ctx, attempt):
            return None
        if (ctx.now - resolved).total_seconds() > self.max_delay_hours * 3600:
            return None
        calendar = self.calendar_for(ticket, ctx)
        if calendar is None:
            return None  # no SLA applies and no calendar is named: no business time to tell
        return resolved, marker, calendar

    def wants_reporter_locale(self, ticket: Ticket, now: datetime, config: "SupportConfig") -> bool:
        """True when this rule's outcome for `ticket` at `now` depends on the reporter's locale
        the platform did not give with the ticket. Pure: nothing is read.

        Only then is the extra request made (`connector.locales.with_reporter_locale`; on Jira
        the issue's reporter carries no locale): the rule would post a summary now (`due`), the
        ticket's `requester_locale` is unknown, and the templates are in more than one language
        (with one, every reporter gets the same text). An open ticket, a summary already sent,
        a resolve sent back or a single-language config cost no request."""
        if ticket.requester_locale is not None or len(self.comment.templates) < 2 or not self.applies(ticket):
            return False
        return self.due(EvalContext(ticket=ticket, now=now, config=config)) is not None

    def evaluate(self, ctx: EvalContext) -> list:
        ticket = ctx.ticket
        owed = self.due(ctx)
        if owed is None:
            return []
        resolved, marker, calendar = owed
        minutes = self.handling_minutes(ticket, ctx, calendar)
        if minutes is None:
            return []
        language = self.comment.language_for(ticket.requester_locale)
        tz = calendar.tz
        values = {
            "solution": _text(ticket, self.solution_field), "root_cause": _text(ticket, self.root_cause_field),
            "preventive_measures": _text(ticket, self.preventive_measures_field),
            "handling_time": format_minutes(minutes), "handling_minutes": minutes,
            "resolved": format_instant(resolved, tz), "language": language,
        }
        spec = CommentSpec(template=self.comment.templates[language], public=self.comment.public)
        reason = f"entered {ticket.status.value}: closing summary in {language}"
        return [ctx.comment(self, spec, reason, marker, **values)]


def resolved_at(ticket: Ticket) -> datetime | None:
    """When the ticket last entered resolved/closed from an open status (its history), else
    the platform's own resolution time."""
    entries = [c.at for c in ticket.status_history
               if c.to_status in DONE_STATUSES and c.from_status not in DONE_STATUSES]
    return max(entries) if entries else ticket.resolved


def _text(ticket: Ticket, name: str) -> str:
    value = ticket.fields.get(name)
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value).strip()
