"""The figures of the periodic review, computed from `Ticket`s: pure, no I/O, no clock.

The review must say the same thing about a past month whenever it is run, and must agree
with what the SLA rule told agents at the time. So every ticket is looked at *as it was
at the end of the period* (`ticket_as_of` drops later status changes and comments): a
ticket resolved after the period counts as a leftover of that period, and a figure does
not change because someone touched an old ticket last week. Time is measured with the
SLA rule's own machinery (`connector.sla.build_clock`, `SlaRule.clocks`), never
re-implemented here.

Definitions (shown in every report's notes, so readers need not guess):

- tickets of a period: created in [start, end);
- first-response / resolution time: the SLA clock's elapsed business time in the rule's
  calendar, pauses (waiting for customer / third party / information) excluded – the same
  minutes the SLA judged. First response stops at the first public agent comment (or at
  resolution if nobody answered); resolution time is counted for tickets resolved or
  closed at the end of the period and includes the time worked after any reopen;
- median and p90: linear interpolation between closest ranks (numpy's default,
  Excel's PERCENTILE.INC);
- SLA compliance per priority and metric: met ÷ (met + breached) for first response and
  resolution, with the targets and clock type (business or calendar) of the SLA rule
  that applies to the ticket (its contract tier: the first enabled sla rule whose `when`
  matches, `connector.rules.tiers`); the same shares per tier (the rule's `tier:` or id); a clock still running within target at the end of the
  period is "open" and left out of the share. Progress updates are not scored: their
  clock describes only the current cycle, not the ticket's whole life;
- reopen rate: tickets that went from resolved/closed back to an open status ÷ tickets
  that reached resolved/closed at least once (a resolution the closure rule sent back
  counts: the resolution did not hold);
- satisfaction: the mapped `satisfaction` field; "positive" means a score of 4 or more
  (the 1–5 scale of Jira Service Management) or Zendesk's "good"; and on the process's
  own scale (satisfied / basically satisfied / needs improvement, `Ticket.satisfaction`,
  read from the field or the platform's CSAT, see `connector.satisfaction`) per priority
  and overall: each level's count and share of the rated tickets;
- leftovers: every ticket created before the end of the period and not resolved/closed
  at its end, however old, with its owner (group, assignee) and age in calendar days;
- trend: each headline figure of the previous period of the same length.

Why over 500 lines: the figures are one pure computation (periods → per-ticket facts →
per-period figures → headlines) meant to be read top to bottom next to the definitions
above; it is some 30 lines over the limit, and a split would separate a figure from its
definition.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Literal

from connector.config import SupportConfig
from connector.model import DONE_STATUSES, PRIORITIES, Status, Ticket
from connector.history import ticket_as_of as model_ticket_as_of
from connector.satisfaction import LEVELS
from connector.review.similarity import DEFAULT_THRESHOLD, Cluster, Similar, clusters
from connector.rules.base import EvalContext
from connector.rules.escalation import EscalationRule
from connector.rules.sla import SlaRule
from connector.rules.tiers import applicable_sla, default_sla, sla_rules
from connector.sla import build_clock

# Compliance is scored for these; `escalation_response` (the group's first comment after an
# escalation level's hand-off, `connector.rules.escalation`) only for escalated tickets.
SCORED_METRICS: tuple[str, ...] = ("first_response", "resolution", "escalation_response")
_MEASURED_METRICS: tuple[str, ...] = ("first_response", "resolution")
NO_VALUE = "(none)"
NOT_RATED = "not rated"
# Zendesk's survey states besides a real answer; "offered" means sent but not answered.
_POSITIVE_WORDS = frozenset({"good"})
_NEGATIVE_WORDS = frozenset({"bad"})
_UNANSWERED_WORDS = frozenset({"offered"})
POSITIVE_SCORE = 4.0


# --- periods ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A half-open span of time [start, end); both ends timezone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a review period needs timezone-aware start and end")
        if self.end <= self.start:
            raise ValueError("a review period must end after it starts")

    @classmethod
    def from_dates(cls, first: date, end: date, tz: tzinfo) -> Period:
        """Midnight of `first` to midnight of `end` (exclusive) in the calendar's zone `tz`."""
        return cls(datetime.combine(first, time(), tz), datetime.combine(end, time(), tz))

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def previous(self) -> Period:
        """The period of the same length just before this one, for the trend."""
        return Period(self.start - self.length, self.start)

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


# --- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float | None:
    """Linear interpolation between closest ranks: position (n - 1) * share of the sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class DurationStats:
    """Median and p90 of durations in business minutes; None when nothing was measured."""

    count: int
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, minutes: Iterable[float]) -> DurationStats:
        values = list(minutes)
        return cls(len(values), percentile(values, 0.5), percentile(values, 0.9))


@dataclass(frozen=True)
class Compliance:
    met: int = 0
    breached: int = 0
    open: int = 0  # still running within target at the end of the period

    @property
    def decided(self) -> int:
        return self.met + self.breached

    @property
    def percent(self) -> float | None:
        return 100.0 * self.met / self.decided if self.decided else None

    def add(self, state: str) -> Compliance:
        if state == "met":
            return Compliance(self.met + 1, self.breached, self.open)
        if state == "breached":
            return Compliance(self.met, self.breached + 1, self.open)
        return Compliance(self.met, self.breached, self.open + 1)


def share(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


# --- one ticket ----------------------------------------------------------------------------


def ticket_as_of(ticket: Ticket, at: datetime) -> Ticket | None:
    """The ticket as it stood at `at` (`connector.history.ticket_as_of`); None if not yet created."""
    if ticket.created >= at:
        return None
    return model_ticket_as_of(ticket, at)


def count_reopens(ticket: Ticket) -> int:
    """How often the ticket went from resolved/closed back to an open status."""
    history = sorted(ticket.status_history, key=lambda c: c.at)
    if not history:
        return 0
    previous = history[0].from_status
    reopens = 0
    for change in history:
        before = previous if previous is not None else change.from_status
        if before in DONE_STATUSES and change.to_status not in DONE_STATUSES:
            reopens += 1
        previous = change.to_status
    return reopens


def ever_done(ticket: Ticket) -> bool:
    return ticket.status in DONE_STATUSES or any(
        c.to_status in DONE_STATUSES or c.from_status in DONE_STATUSES for c in ticket.status_history
    )


def satisfaction_label(value: object) -> str:
    """A rating as a distribution bucket: '5', '4.5', 'good', 'bad', 'offered', or 'not rated'."""
    if value is None or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
        return NOT_RATED
    number = _number(value)
    if number is not None:
        return str(int(number)) if number == int(number) else f"{number:g}"
    return str(value).strip().casefold()


def satisfaction_positive(label: str) -> bool | None:
    """True/False for an answered rating, None for no answer."""
    if label == NOT_RATED or label in _UNANSWERED_WORDS:
        return None
    if label in _POSITIVE_WORDS:
        return True
    if label in _NEGATIVE_WORDS:
        return False
    number = _number(label)
    return None if number is None else number >= POSITIVE_SCORE


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


@dataclass(frozen=True)
class TicketFacts:
    """One ticket's contribution to the review, measured at the end of the period."""

    ticket: Ticket  # the as-of view
    first_response_minutes: float | None
    resolution_minutes: float | None
    sla: dict[str, str]  # scored metric -> met | breached | open
    reopens: int
    ever_done: bool
    satisfaction: str
    tier: str | None = None  # the contract tier (sla rule) that scored `sla`; None: no sla rule applies
    satisfaction_level: str | None = None  # connector.satisfaction.LEVELS, None: not rated

    @property
    def done(self) -> bool:
        return self.ticket.status in DONE_STATUSES


class SlaTerms:
    """Which SLA rule measures a ticket: its tier (`connector.rules.tiers.applicable_sla`, as
    the engine decides), else the default tier – which then only measures times, never scores.

    A review without an SLA rule has no calendar to count business time in, so the config
    must have one.
    """

    def __init__(self, config: SupportConfig) -> None:
        self.config = config
        self.rules = list(sla_rules(config))
        if not self.rules:
            raise ValueError("the review needs an enabled `sla` rule: its calendar counts the business time")
        self.default = default_sla(config)
        self.tiers = tuple(dict.fromkeys(r.tier_name for r in self.rules))

    @property
    def calendar(self):
        return self.config.calendar(self.default.calendar)

    def rule_for(self, ticket: Ticket) -> tuple[SlaRule, bool]:
        """(rule, whether it applies to the ticket and so may score its compliance)."""
        rule = applicable_sla(self.config, ticket)
        return (rule, True) if rule is not None else (self.default, False)

    def escalation_clock(self, view: Ticket, at: datetime):
        """The escalation response clock of the ticket at `at`, from the first enabled
        escalation rule that applies and times a hand-off – the engine's own computation."""
        for rule in self.config.rules:
            if isinstance(rule, EscalationRule) and rule.enabled and rule.applies(view):
                ctx = EvalContext(ticket=view, now=at, config=self.config)
                rule.response_clock(ctx)
                if "escalation_response" in ctx.sla:
                    return ctx.sla["escalation_response"]
        return None

    def facts(self, ticket: Ticket, at: datetime) -> TicketFacts | None:
        view = ticket_as_of(ticket, at)
        if view is None:
            return None
        rule, applies = self.rule_for(view)
        business = self.config.calendar(rule.calendar)
        paused = frozenset(rule.pause_statuses)
        measured = {}
        for metric in _MEASURED_METRICS:
            # The target does not matter for elapsed time; the clock is built only to measure.
            built = build_clock(metric, view, at, target_minutes=1, clock="business", calendar=business, paused=paused)
            clock = built[0] if built else None
            measured[metric] = clock.elapsed_minutes if clock is not None and clock.stopped_at is not None else None
        sla: dict[str, str] = {}
        if applies:
            for metric, (clock, _) in rule.clocks(EvalContext(ticket=view, now=at, config=self.config)).items():
                if metric in SCORED_METRICS:
                    sla[metric] = clock.state if clock.state in ("met", "breached") else "open"
            escalated = self.escalation_clock(view, at)
            if escalated is not None:
                sla["escalation_response"] = escalated.state if escalated.state in ("met", "breached") else "open"
        return TicketFacts(
            ticket=view,
            first_response_minutes=measured["first_response"],
            resolution_minutes=measured["resolution"] if view.status in DONE_STATUSES else None,
            sla=sla,
            reopens=count_reopens(view),
            ever_done=ever_done(view),
            satisfaction=satisfaction_label(view.fields.get("satisfaction")),
            tier=rule.tier_name if applies else None,
            satisfaction_level=view.satisfaction,
        )


# --- a period ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leftover:
    key: str
    url: str | None
    summary: str
    category: str | None
    priority: str | None
    status: Status
    group: str | None
    assignee: str | None
    created: datetime
    age_days: float
    breached: tuple[str, ...]  # SLA metrics already missed at the end of the period

    @property
    def owner(self) -> str:
        parts = [p for p in (self.group, self.assignee) if p]
        return " / ".join(parts) if parts else "unassigned"


@dataclass(frozen=True)
class PeriodFigures:
    period: Period
    as_of: datetime  # the instant every ticket is looked at: the period's end, or now if sooner
    tickets: int
    resolved: int  # of the period's tickets, resolved/closed at `as_of`
    by_category: dict[str, int]
    by_priority: dict[str, int]
    first_response: dict[str, DurationStats]  # "all", "P0" … "P3"
    resolution: dict[str, DurationStats]
    compliance: dict[tuple[str, str], Compliance]  # (priority or "all", metric)
    reopened: int
    ever_resolved: int
    repeats: list[Cluster]
    satisfaction: dict[str, int]
    leftovers: list[Leftover]
    # "all" and each priority with a rated ticket -> {level: tickets}, every level present.
    satisfaction_levels: dict[str, dict[str, int]] = field(default_factory=dict)
    ticket_urls: dict[str, str | None] = field(default_factory=dict)  # the period's tickets, key -> web link
    compliance_by_tier: dict[tuple[str, str], Compliance] = field(default_factory=dict)  # (tier, metric)

    @property
    def reopen_rate(self) -> float | None:
        return share(self.reopened, self.ever_resolved)

    @property
    def repeat_tickets(self) -> int:
        return sum(len(c.keys) for c in self.repeats)

    @property
    def satisfaction_positive(self) -> float | None:
        answers = [satisfaction_positive(label) for label, n in self.satisfaction.items() for _ in range(n)]
        rated = [a for a in answers if a is not None]
        return share(sum(rated), len(rated))

    def level_share(self, group: str, level: str) -> float | None:
        """Percent of the group's rated tickets that gave `level`; None when none was rated."""
        counts = self.satisfaction_levels.get(group)
        return share(counts[level], sum(counts.values())) if counts else None

    @property
    def rated(self) -> int:
        return sum(n for label, n in self.satisfaction.items() if satisfaction_positive(label) is not None)


def _priority_key(ticket: Ticket) -> str:
    return ticket.priority or NO_VALUE


def _ordered_priorities(counts: Counter) -> dict[str, int]:
    order = [p for p in PRIORITIES if p in counts] + sorted(k for k in counts if k not in PRIORITIES)
    return {k: counts[k] for k in order}


def _satisfaction_order(label: str) -> tuple:
    number = _number(label)
    if number is not None:
        return (0, -number, label)
    rank = {"good": 1, "bad": 2}.get(label)
    if rank is not None:
        return (rank, 0, label)
    if label in _UNANSWERED_WORDS:
        return (4, 0, label)
    if label == NOT_RATED:
        return (5, 0, label)
    return (3, 0, label)


def period_figures(terms: SlaTerms, tickets: Sequence[Ticket], period: Period, as_of: datetime,
                   repeat_threshold: float = DEFAULT_THRESHOLD) -> PeriodFigures:
    """Every figure of one period, each ticket looked at as of `as_of`."""
    cohort: list[TicketFacts] = []
    leftovers: list[Leftover] = []
    for ticket in sorted(tickets, key=lambda t: (t.created, t.key)):
        facts = terms.facts(ticket, as_of)
        if facts is None:
            continue
        if period.contains(ticket.created):
            cohort.append(facts)
        if not facts.done:
            view = facts.ticket
            leftovers.append(Leftover(
                key=view.key, url=view.url, summary=view.summary, category=view.category, priority=view.priority,
                status=view.status, group=view.group, assignee=view.assignee, created=view.created,
                age_days=(as_of - view.created).total_seconds() / 86400,
                breached=tuple(m for m in SCORED_METRICS if facts.sla.get(m) == "breached"),
            ))
    leftovers.sort(key=lambda item: (-item.age_days, item.key))

    by_category = Counter(f.ticket.category or NO_VALUE for f in cohort)
    by_priority = Counter(_priority_key(f.ticket) for f in cohort)
    groups = ["all", *PRIORITIES]

    def stats(attribute: str) -> dict[str, DurationStats]:
        return {g: DurationStats.of(getattr(f, attribute) for f in cohort
                                    if getattr(f, attribute) is not None and g in ("all", f.ticket.priority))
                for g in groups}

    compliance: dict[tuple[str, str], Compliance] = {}
    for f in cohort:
        for metric, state in f.sla.items():
            for group in ("all", _priority_key(f.ticket)):
                compliance[(group, metric)] = compliance.get((group, metric), Compliance()).add(state)
    by_tier: dict[tuple[str, str], Compliance] = {}
    for f in cohort:
        if f.tier is not None:
            for metric, state in f.sla.items():
                by_tier[(f.tier, metric)] = by_tier.get((f.tier, metric), Compliance()).add(state)
    satisfaction = Counter(f.satisfaction for f in cohort)
    satisfaction_levels: dict[str, dict[str, int]] = {}
    for group in ("all", *PRIORITIES, NO_VALUE):
        levels = Counter(f.satisfaction_level for f in cohort
                         if f.satisfaction_level and group in ("all", _priority_key(f.ticket)))
        if levels or group == "all":
            satisfaction_levels[group] = {level: levels[level] for level in LEVELS}
    repeats = clusters([Similar(f.ticket.key, f.ticket.category, f.ticket.summary) for f in cohort], repeat_threshold)
    return PeriodFigures(
        period=period, as_of=as_of, tickets=len(cohort), resolved=sum(f.done for f in cohort),
        by_category=dict(sorted(by_category.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_priority=_ordered_priorities(by_priority),
        first_response=stats("first_response_minutes"), resolution=stats("resolution_minutes"),
        compliance=compliance, reopened=sum(f.reopens > 0 for f in cohort),
        ever_resolved=sum(f.ever_done for f in cohort), repeats=repeats,
        satisfaction=dict(sorted(satisfaction.items(), key=lambda kv: _satisfaction_order(kv[0]))),
        leftovers=leftovers, ticket_urls={f.ticket.key: f.ticket.url for f in cohort},
        compliance_by_tier=by_tier,
        satisfaction_levels=satisfaction_levels,
    )


# --- the report -----------------------------------------------------------------------------

Unit = Literal["count", "minutes", "percent"]


@dataclass(frozen=True)
class Headline:
    """One figure with its value in the previous period; `better` says which way is good news."""

    name: str
    label: str
    unit: Unit
    current: float | None
    previous: float | None
    better: Literal["higher", "lower"] | None = None

    @property
    def delta(self) -> float | None:
        if self.current is None or self.previous is None:
            return None
        return self.current - self.previous

    @property
    def verdict(self) -> Literal["better", "worse", "same"] | None:
        """Whether the change is good news; None when there is no previous value or no direction."""
        delta = self.delta
        if delta is None or self.better is None:
            return None
        if abs(delta) < 1e-9:
            return "same"
        return "better" if (delta > 0) == (self.better == "higher") else "worse"


@dataclass(frozen=True)
class Report:
    platform: str
    calendar: str
    timezone: str
    generated_at: datetime
    repeat_threshold: float
    current: PeriodFigures
    previous: PeriodFigures
    headlines: list[Headline] = field(default_factory=list)
    tiers: tuple[str, ...] = ()  # the contract tiers (sla rules) in file order

    def headline(self, name: str) -> Headline:
        return next(h for h in self.headlines if h.name == name)


def _compliance_percent(figures: PeriodFigures, metric: str) -> float | None:
    cell = figures.compliance.get(("all", metric))
    return cell.percent if cell else None


def headlines(current: PeriodFigures, previous: PeriodFigures) -> list[Headline]:
    def pair(read) -> tuple[float | None, float | None]:
        return read(current), read(previous)

    rows = [
        ("tickets", "Tickets created", "count", lambda f: f.tickets, None),
        ("resolved_share", "Resolved by period end", "percent", lambda f: share(f.resolved, f.tickets), "higher"),
        ("first_response_median", "First response, median", "minutes", lambda f: f.first_response["all"].median, "lower"),
        ("first_response_p90", "First response, p90", "minutes", lambda f: f.first_response["all"].p90, "lower"),
        ("resolution_median", "Resolution, median", "minutes", lambda f: f.resolution["all"].median, "lower"),
        ("resolution_p90", "Resolution, p90", "minutes", lambda f: f.resolution["all"].p90, "lower"),
        ("sla_first_response", "SLA met: first response", "percent",
         lambda f: _compliance_percent(f, "first_response"), "higher"),
        ("sla_resolution", "SLA met: resolution", "percent", lambda f: _compliance_percent(f, "resolution"), "higher"),
        ("reopen_rate", "Reopen rate", "percent", lambda f: f.reopen_rate, "lower"),
        ("repeat_tickets", "Tickets in repeat problems", "count", lambda f: f.repeat_tickets, "lower"),
        ("satisfaction_positive", "Positive ratings", "percent", lambda f: f.satisfaction_positive, "higher"),
        ("leftovers", "Leftovers at period end", "count", lambda f: len(f.leftovers), "lower"),
    ]
    return [Headline(name, label, unit, *pair(read), better=better) for name, label, unit, read, better in rows]


def build_report(tickets: Sequence[Ticket], config: SupportConfig, period: Period, *, platform: str,
                 generated_at: datetime, repeat_threshold: float = DEFAULT_THRESHOLD) -> Report:
    """The review of `period` and its trend against the previous period of the same length.

    `tickets` must hold every ticket created in either period and every older ticket still
    open at either period's end (what `collect.collect_tickets` lists); others are ignored.
    """
    if generated_at.tzinfo is None:
        raise ValueError("generated_at must be timezone-aware")
    terms = SlaTerms(config)
    previous_period = period.previous()
    current = period_figures(terms, tickets, period, min(period.end, generated_at), repeat_threshold)
    previous = period_figures(terms, tickets, previous_period, min(previous_period.end, generated_at),
                              repeat_threshold)
    calendar = terms.calendar
    return Report(
        platform=platform, calendar=terms.default.calendar, timezone=str(calendar.tz), generated_at=generated_at,
        repeat_threshold=repeat_threshold, current=current, previous=previous,
        headlines=headlines(current, previous), tiers=terms.tiers,
    )
