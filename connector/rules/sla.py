"""SLA targets per priority, warning and breach notices, due times agents can see.

The clocks themselves are computed in `connector.sla` from the ticket's history; this rule
holds the targets, posts a warning at each threshold and one breach notice per metric (per
cycle, for periodic updates) – each recorded by a marker so it is never posted twice –
writes due instants into mapped date-time fields, and reports the next instant that matters
so the scheduler can wake up exactly then.

A target is a duration in business time of the rule's calendar ("30m", "2h", "1h30m",
"3bd" = three business days) or, with the word `calendar`, in wall-clock time ("24h calendar").

Several sla rules are contract tiers (per-customer service levels): the first enabled one
whose `when` matches the ticket (e.g. `when: {organizations: [Acme Europe]}` or
`when: {email_domains: [acme.example]}`) applies and the others stay quiet for that ticket;
the rule without `when` goes last as the default. `tier:` names the tier in reports
(default: the rule id). See `connector.rules.tiers`.

Example::

    - id: sla
      type: sla
      calendar: standard
      warn_at: [75]
      pause_statuses: [waiting_for_information, waiting_for_customer, waiting_for_third_party]
      targets:
        P0: {first_response: 30m, resolution: 24h calendar, periodic_update: 4h calendar}
        P1: {first_response: 2h, resolution: 1bd, periodic_update: 4h}
        P2: {first_response: 4h, resolution: 3bd}
        P3: {first_response: 8h, resolution: 5bd}
      due_fields: {first_response: sla_first_response_due, resolution: sla_resolution_due}
      notify:
        warning: {template: "{{ clock.metric_label }} due {{ clock.due }} ({{ clock.percent }}% used)"}
        breach: {template: "{{ clock.metric_label }} target of {{ clock.target }} breached at {{ clock.breached_at }}"}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from connector.calendar import ContinuousCalendar, parse_duration
from connector.rules.notices import NoticeSpec, check_routes, notice
from connector.model import DONE_STATUSES, Priority, SetFields, SlaClock, Status, trusted
from connector.rules.base import EvalContext, RuleBase, Strict, check_duration, register
from connector.rules.tiers import applicable_sla, sla_rules, unreachable_reason
from connector.sla import MetricTarget, compute_clocks
from connector.templates import SAMPLE_CLOCK
from connector.timefmt import format_instant, format_minutes, same_instant

METRICS = ("first_response", "resolution", "periodic_update")
METRIC_LABELS = {"first_response": "first response", "resolution": "resolution",
                 "periodic_update": "progress update", "escalation_response": "escalation response"}
_TARGET = re.compile(r"^\s*(?P<duration>\S+)\s*(?P<clock>business|calendar)?\s*$")


class Target(Strict):
    within: str = Field(description="duration: 30m, 2h, 1h30m, 3bd (business days)")
    clock: Literal["business", "calendar"] = "business"

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value):
        if isinstance(value, (int, float)):
            return {"within": f"{value}m"}
        if isinstance(value, str):
            match = _TARGET.match(value)
            if not match:
                raise ValueError(f"invalid target {value!r}; write e.g. '30m', '2h', '3bd' or '24h calendar'")
            return {"within": match["duration"], "clock": match["clock"] or "business"}
        return value

    @field_validator("within")
    @classmethod
    def _duration(cls, value: str) -> str:
        return check_duration(value)


class Targets(Strict):
    first_response: Target | None = None
    resolution: Target | None = None
    periodic_update: Target | None = None


class Notices(Strict):
    warning: NoticeSpec | None = None
    breach: NoticeSpec | None = None


def clock_context(clock: SlaClock, tz, percent: int | None = None) -> Mapping:
    """The `clock` variable of notice and escalation templates, times in the calendar's zone.

    A mapping that works each value out when a template first reads it: a notice usually
    shows three or four of these, and formatting instants in a zone is the costly part.
    """
    return _ClockContext(clock, tz, percent)


_CLOCK_VALUES = {
    "metric": lambda c, tz, percent: c.metric,
    "metric_label": lambda c, tz, percent: METRIC_LABELS[c.metric],
    "target": lambda c, tz, percent: format_minutes(c.target_minutes),
    "elapsed": lambda c, tz, percent: format_minutes(c.elapsed_minutes),
    "remaining": lambda c, tz, percent: format_minutes(c.remaining_minutes),
    "due": lambda c, tz, percent: format_instant(c.due, tz) if c.due else "",
    "breached_at": lambda c, tz, percent: format_instant(c.breached_at, tz) if c.breached_at else "",
    "percent": lambda c, tz, percent: percent if percent is not None else int(c.elapsed_percent),
    "cycle": lambda c, tz, percent: c.cycle,
}


class _ClockContext(Mapping):
    __slots__ = ("_clock", "_tz", "_percent", "_values")

    def __init__(self, clock: SlaClock, tz, percent: int | None) -> None:
        self._clock, self._tz, self._percent, self._values = clock, tz, percent, {}

    def __getitem__(self, key: str):
        values = self._values
        if key not in values:
            values[key] = _CLOCK_VALUES[key](self._clock, self._tz, self._percent)
        return values[key]

    def __iter__(self):
        return iter(_CLOCK_VALUES)

    def __len__(self) -> int:
        return len(_CLOCK_VALUES)

    def __repr__(self) -> str:
        return repr(dict(self))

    __str__ = __repr__


@register
class SlaRule(RuleBase):
    type: Literal["sla"] = "sla"
    tier: str | None = Field(default=None, description="name of the contract tier the report shows (default: the rule id); "
                             "the first enabled sla rule whose `when` matches applies, see connector.rules.tiers")
    calendar: str = Field(description="name of a calendar under `calendars:`")
    targets: dict[Priority, Targets]
    pause_statuses: list[Status] = Field(default=[Status.WAITING_FOR_INFORMATION, Status.WAITING_FOR_CUSTOMER,
                                                  Status.WAITING_FOR_THIRD_PARTY])
    warn_at: list[int] = Field(default=[75], description="percent of a target at which to warn")
    due_fields: dict[Literal["first_response", "resolution", "periodic_update"], str] = Field(default_factory=dict)
    notify: Notices = Field(default_factory=Notices)

    template_sample: ClassVar[dict] = {"clock": SAMPLE_CLOCK}

    # Prepared once per config (`prepare`, or on first use): per priority the parsed targets,
    # keyed by the business calendar they were counted with; and the pause set.
    _targets_by_priority: dict = PrivateAttr(default_factory=dict)
    _paused: frozenset = PrivateAttr(default=frozenset())
    _continuous: ContinuousCalendar = PrivateAttr(default_factory=ContinuousCalendar)

    @field_validator("warn_at")
    @classmethod
    def _percent(cls, values: list[int]) -> list[int]:
        for value in values:
            if not 0 < value < 100:
                raise ValueError(f"warn_at {value} must be between 1 and 99 (percent of the target)")
        return sorted(set(values))

    def comment_specs(self):
        return [(("notify", k), v) for k, v in (("warning", self.notify.warning), ("breach", self.notify.breach)) if v]

    def check(self, config) -> list[str]:
        problems = super().check(config) + check_routes(self, config)
        if self.calendar not in config.calendars:
            problems.append((("calendar",), f"calendar '{self.calendar}' is not defined; defined calendars: {', '.join(config.calendars) or 'none'}"))
        if self.enabled:
            unreachable = unreachable_reason(config, self)
            if unreachable:
                problems.append((("when",), unreachable))
            same = [r.id for r in sla_rules(config) if r is not self and r.tier_name == self.tier_name]
            if same:
                problems.append((("tier",), f"tier '{self.tier_name}' is also the tier of {', '.join(same)}; "
                                            "give each sla rule its own `tier:` name"))
        return problems

    @property
    def tier_name(self) -> str:
        """The contract tier this rule stands for, as reports show it."""
        return self.tier or self.id

    def target_minutes(self, target: Target, calendar) -> float:
        return parse_duration(target.within, calendar)

    def prepare(self, config) -> None:
        """Parse every target once (business days need the calendar), so evaluating parses nothing."""
        self._prepare_targets(config.calendar(self.calendar))

    def _prepare_targets(self, business) -> None:
        prepared = {}
        for priority, targets in self.targets.items():
            prepared[priority] = (business, tuple(
                MetricTarget(metric, round(parse_duration(target.within, business)), target.clock,
                             self._continuous if target.clock == "calendar" else business)
                for metric in METRICS if (target := getattr(targets, metric)) is not None))
        self._paused = frozenset(self.pause_statuses)
        self._targets_by_priority = prepared

    def _prepared(self, priority, business) -> tuple[MetricTarget, ...]:
        entry = self.__pydantic_private__["_targets_by_priority"].get(priority)  # no __getattr__ detour
        if entry is None or entry[0] is not business:
            # Not prepared yet, or for another config's calendar (a rule object reused).
            self._prepare_targets(business)
            entry = self._targets_by_priority[priority]
        return entry[1]

    def clocks(self, ctx: EvalContext):
        """Build every clock of the ticket's current priority in one pass; (clock, timeline) per metric."""
        ticket = ctx.ticket
        if not ticket.priority or not self.targets.get(ticket.priority):
            return {}
        targets = self._prepared(ticket.priority, ctx.config.calendar(self.calendar))
        return compute_clocks(ticket, ctx.now, targets, paused=self.__pydantic_private__["_paused"],
                              warn_percents=self.warn_at)

    def evaluate(self, ctx: EvalContext) -> list:
        ticket = ctx.ticket
        if ctx.sla_rule is not None or applicable_sla(ctx.config, ticket) is not self:
            return []  # another tier measures this ticket (connector.rules.tiers)
        ctx.sla_rule = self
        tz = ctx.config.calendar(self.calendar).tz
        actions: list = []
        due_updates: dict[str, str] = {}
        open_ticket = ticket.status not in DONE_STATUSES
        for metric, (clock, timeline) in self.clocks(ctx).items():
            ctx.sla[metric] = clock
            ctx.sla_timelines[metric] = timeline
            suffix = f"-c{clock.cycle}" if metric == "periodic_update" else ""
            if clock.state == "breached" and open_ticket and self.notify.breach:
                marker = f"{self.id}-breach-{metric}{suffix}"
                if not ctx.has_marker(marker):
                    reason = f"{METRIC_LABELS[metric]} target {format_minutes(clock.target_minutes)} breached"
                    actions.append(notice(ctx, self, self.notify.breach, reason, marker, clock=clock_context(clock, tz)))
            elif clock.state == "running" and open_ticket:
                for percent, at in zip(self.warn_at, clock.warn_at):
                    marker = f"{self.id}-warning-{metric}-{percent}{suffix}"
                    if at <= ctx.now and not ctx.has_marker(marker) and self.notify.warning:
                        reason = f"{percent}% of the {METRIC_LABELS[metric]} target used"
                        actions.append(notice(ctx, self, self.notify.warning, reason, marker,
                                                   clock=clock_context(clock, tz, percent)))
                    elif at > ctx.now:
                        ctx.add_deadline(at)
                ctx.add_deadline(clock.due)
            field = self.due_fields.get(metric)
            if field and clock.due and ctx.field_mapped(field) and not same_instant(ticket.fields.get(field), clock.due, tz):
                due_updates[field] = format_instant(clock.due, tz, iso=True)
        if due_updates:
            actions.insert(0, trusted(SetFields, rule=self.id, reason="SLA due times changed", fields=due_updates))
        return actions
