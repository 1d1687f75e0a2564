"""SLA clocks computed from a ticket's own history, to the minute, in business time.

Nothing is stored between runs: every clock is rebuilt from the status history and the
comments the platform keeps, so a restart, a replica or a replayed event gives the same
answer, and `simulate --now` can show any moment of a ticket's life. Rules:

- first response: from creation to the first public comment by an agent (the connector's
  own notices do not count), or to resolution if nobody answered;
- resolution: from creation while the ticket is open; entering resolved/closed stops it,
  a reopen resumes it with the time already used;
- periodic update: from the last public agent comment while the ticket is open; every
  new update starts a new cycle (breach notices are once per cycle);
- statuses listed as pausing (waiting for customer / third party / information) stop
  every clock while they last;
- the targets are those of the ticket's priority (the rule reads `ticket.priority`; in
  `simulate --now` that is the priority at `now`, see `connector.history.ticket_as_of`): a
  priority change re-targets the whole clock, as Jira Service Management does;
- a clock at `now` is the clock of the ticket as it stood then: status changes and
  comments made after `now` are cut off once, before any metric is built, so a ticket
  resolved (or closed, or reopened) later is judged by its status at `now`
  (`connector.history.ticket_as_of` gives the same clocks; `tests/test_clocks_at_now.py`).

All metrics of a ticket are computed in one pass (`compute_clocks`): the status segments,
the agents' updates and the ticket's status now are derived once, every instant is turned
into integer microseconds once, and the calendar is asked in microseconds, so a sweep over
thousands of tickets spends its time counting, not converting time zones. `build_clock`
(one metric) is the same computation for callers that want a single clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from operator import itemgetter
from typing import Iterable, Protocol, Sequence

from connector.calendar import _US_PER_MINUTE, _from_us, _minutes_to_us, _to_us
from connector.model import DONE_STATUSES, AuthorRole, SlaClock, Status, Ticket, adopt
from connector.history import status_at as model_status_at

_AGENT = AuthorRole.AGENT


class Calendar(Protocol):
    name: str
    tz: tzinfo

    def business_minutes_between(self, start: datetime, end: datetime) -> float: ...

    def add_business_minutes(self, start: datetime, minutes: float) -> datetime: ...

    def business_us_between(self, start_us: int, end_us: int) -> int: ...

    def add_business_us(self, start_us: int, need_us: int) -> int: ...

    def business_position_us(self, instant: int) -> int: ...


@dataclass(frozen=True, slots=True)
class MetricTarget:
    """One metric's target, prepared once per rule and priority (durations already parsed)."""

    metric: str
    target_minutes: int
    clock: str  # "business" or "calendar", as the SlaClock reports it
    calendar: Calendar


class Timeline:
    """The spans during which a clock ran; the last may still be running (end None).

    Kept in integer microseconds with each closed span's business minutes counted once,
    so `elapsed()` and every `reached_at()` (due time, warnings, escalation levels) reuse
    them instead of asking the calendar again.
    """

    __slots__ = ("spans", "now_us", "now", "calendar", "_minutes", "_open_minutes")

    def __init__(self, spans: Sequence[tuple[int, int | None]], now: datetime, calendar: Calendar,
                 now_us: int | None = None, measured: tuple[list[float], float | None] | None = None) -> None:
        self.spans = spans if isinstance(spans, tuple) else tuple(spans)
        self.now = now
        now_us = self.now_us = _to_us(now, "now") if now_us is None else now_us
        self.calendar = calendar
        if measured is None:
            # Business minutes of each closed span, and of the open one up to now, the way
            # `business_minutes_between` returns them.
            between = calendar.business_us_between
            measured = ([between(s, e) / _US_PER_MINUTE for s, e in self.spans if e is not None],
                        between(self.spans[-1][0], now_us) / _US_PER_MINUTE
                        if self.spans and self.spans[-1][1] is None else None)
        self._minutes, self._open_minutes = measured

    @property
    def intervals(self) -> tuple[tuple[datetime, datetime | None], ...]:
        tz = getattr(self.calendar, "tz", None)
        return tuple((_from_us(s, tz), _from_us(e, tz) if e is not None else None) for s, e in self.spans)

    @property
    def running(self) -> bool:
        return bool(self.spans) and self.spans[-1][1] is None

    def elapsed(self) -> float:
        # Summed in span order from 0, exactly as the per-span calendar calls always were.
        if self._open_minutes is None:
            return sum(self._minutes)
        return sum([*self._minutes, self._open_minutes])

    def reached_at(self, minutes: float) -> datetime | None:
        """When the clock reached (or, if it keeps running, will reach) `minutes`; None if it never will."""
        instant = self.reached_at_us(minutes)
        return None if instant is None else _from_us(instant, self.calendar.tz)

    def reached_at_us(self, minutes: float) -> int | None:
        used = 0.0
        closed = self._minutes
        for index, (start, end) in enumerate(self.spans):
            if end is None:
                return self.calendar.add_business_us(start, _minutes_to_us(minutes - used))
            span = closed[index]
            if used + span >= minutes:
                return self.calendar.add_business_us(start, _minutes_to_us(minutes - used))
            used += span
        return None


class TicketTimes:
    """What every clock of one ticket at one instant is built from, derived once.

    Segments are (start µs, end µs, status, start datetime) of the ticket's life from
    creation to `now`; the start datetimes are kept because a clock reports the platform's
    own instants (started, stopped_at) as they were given, offset included. Agent updates
    are (µs, datetime) of public agent comments, oldest first.
    """

    __slots__ = ("ticket", "now", "now_us", "created_us", "segments", "updates", "status_now", "first_done",
                 "_positions")

    def __init__(self, ticket: Ticket, now: datetime) -> None:
        self.ticket = ticket
        self.now = now
        self._positions: dict = {}
        now_us = self.now_us = _us(now, "now")
        created = ticket.created
        created_us = self.created_us = _us(created, "created")
        try:
            history = [((c.at - _EPOCH) // _ONE_US, c) for c in ticket.status_history]
            updates = [((c.created - _EPOCH) // _ONE_US, c.created) for c in ticket.comments
                       if c.public and c.author_role == _AGENT]
        except TypeError:  # a naive or odd instant: the calendar's conversion says which
            history = [(_us(c.at, "at"), c) for c in ticket.status_history]
            updates = [(_us(c.created, "created"), c.created) for c in ticket.comments
                       if c.public and c.author_role == _AGENT]
        # A stable sort keeps the platform's order for changes made in the same instant.
        history.sort(key=_first)
        if history:
            first_us, first = history[0]
            current = first.from_status or (first.to_status if first_us <= created_us else Status.NEW)
            status_now = first.from_status or Status.NEW  # before its first change, if none was made by now
        else:
            current = status_now = ticket.status
        # The ticket as it stood at `now`, cut once for every metric: a change or a comment
        # made after `now` had not happened yet (one made at `now` counts), so it neither
        # stops nor restarts a clock – `ticket_as_of(ticket, now)` gives the same clocks.
        past = len(history)
        for index, (at_us, _) in enumerate(history):
            if at_us > now_us:
                past = index
                break
        segments: list[tuple[int, int, Status, datetime]] = []
        first_done = None
        start, start_us = created, created_us
        for at_us, change in history[:past]:
            status_now = change.to_status
            if at_us >= created_us:  # max(change.at, ticket.created): the first on a tie
                at, clamped_us = change.at, at_us
            else:
                at, clamped_us = created, created_us
            if clamped_us > start_us:
                segments.append((start_us, clamped_us, current, start))
                if first_done is None and current in DONE_STATUSES:
                    first_done = (start_us, start)
                start, start_us = at, clamped_us
            current = change.to_status
        if now_us > start_us:
            segments.append((start_us, now_us, current, start))
            if first_done is None and current in DONE_STATUSES:
                first_done = (start_us, start)
        self.status_now = status_now
        self.segments = segments
        self.first_done = first_done
        updates = [u for u in updates if created_us <= u[0] <= now_us]
        updates.sort(key=_first)
        self.updates = updates

    def clock(self, target: MetricTarget, paused: frozenset[Status], warn_percents: Iterable[int] = ()
              ) -> tuple[SlaClock, Timeline] | None:
        """One metric's clock, or None when it does not apply to the ticket now."""
        ticket = self.ticket
        metric = target.metric
        cycle = 0
        if metric == "first_response":
            begin, begin_us = ticket.created, self.created_us
            responded = self.updates[0] if self.updates else None
            stop = stop_us = None
            for candidate in (responded, self.first_done):  # the earlier; the response on a tie
                if candidate is not None and (stop_us is None or candidate[0] < stop_us):
                    stop_us, stop = candidate[0], candidate[1]
        elif metric == "resolution":
            begin, begin_us = ticket.created, self.created_us
            stop = stop_us = None
            if self.segments and self.segments[-1][2] in DONE_STATUSES:
                stop_us, stop = self.segments[-1][0], self.segments[-1][3]
        elif metric == "periodic_update":
            # Applies while the ticket is open at `now` (not as it is today), from the last
            # agent update made by then.
            if not self.updates or self.status_now in DONE_STATUSES:
                return None
            updates = self.updates
            (begin_us, begin), stop, stop_us, cycle = updates[-1], None, None, len(updates)
        else:
            raise ValueError(f"unknown SLA metric {metric!r}")
        return self._finish(target, paused, warn_percents, begin, begin_us, stop, stop_us, cycle)

    def response_clock(self, target: MetricTarget, paused: frozenset[Status], begin: datetime,
                       stop: datetime | None, warn_percents: Iterable[int] = ()) -> tuple[SlaClock, Timeline]:
        """A clock from `begin` (an escalation) to `stop` (the group's first comment) or now:
        the escalation response metric, paused and counted like the others."""
        begin_us = _us(begin, "escalated")
        stop_us = None if stop is None else _us(stop, "responded")
        if stop_us is not None and stop_us > self.now_us:
            stop = stop_us = None
        return self._finish(target, paused, tuple(warn_percents), begin, begin_us, stop, stop_us, 0)

    def _finish(self, target: MetricTarget, paused: frozenset[Status], warn_percents, begin: datetime, begin_us: int,
                stop: datetime | None, stop_us: int | None, cycle: int) -> tuple[SlaClock, Timeline]:
        metric = target.metric
        timeline = self._timeline(begin_us, stop_us, paused, target.calendar)
        target_minutes = target.target_minutes
        elapsed = timeline.elapsed()
        breached_at = timeline.reached_at(target_minutes) if elapsed >= target_minutes else None
        if stop is not None:
            state = "breached" if elapsed > target_minutes else "met"
            due = None
        elif elapsed >= target_minutes:
            state, due = "breached", breached_at
        elif timeline.running:
            state, due = "running", timeline.reached_at(target_minutes)
        else:
            state, due = "paused", None
        warn_at: tuple = ()
        if state == "running":
            warn_at = tuple(at for at in (timeline.reached_at(target_minutes * p / 100) for p in warn_percents) if at)
        # Every value is already of its field's type: the clock needs no validation pass.
        return adopt(SlaClock, {
            "metric": metric, "target_minutes": target_minutes, "clock": target.clock,
            "calendar": target.calendar.name, "elapsed_minutes": float(round(elapsed, 3)),
            "remaining_minutes": float(round(max(0.0, target_minutes - elapsed), 3)),
            "state": state, "started": begin, "due": due, "breached_at": breached_at, "stopped_at": stop,
            "cycle": cycle, "warn_at": warn_at,
        }), timeline

    def _timeline(self, begin: int, stop: int | None, paused: frozenset[Status], calendar: Calendar) -> Timeline:
        """The spans between begin and stop (or now) in which the clock runs – open-ended if it
        runs now – with their business minutes, in one walk over the segments."""
        now = self.now_us
        end_of_clock = now if stop is None else stop
        out: list[list] = []
        for seg_start, seg_end, status, _ in self.segments:
            if status in paused or status in DONE_STATUSES:
                continue
            s = seg_start if seg_start > begin else begin
            e = seg_end if seg_end < end_of_clock else end_of_clock
            if e <= s:
                continue
            if out and out[-1][1] == s:
                out[-1][1] = e
            else:
                out.append([s, e])
        status_now = self.status_now
        running = stop is None and status_now not in paused and status_now not in DONE_STATUSES
        if running:
            if out and out[-1][1] == now:
                out[-1][1] = None
            else:
                out.append([begin if begin > now else now, None])
        # Business minutes as differences of business positions, each instant of the ticket
        # looked up once per calendar: the metrics share creation, segment boundaries and now.
        memo = self._positions.get(calendar)
        if memo is None:
            memo = self._positions[calendar] = {}
        lookup = calendar.business_position_us
        closed: list[float] = []
        open_minutes = None
        spans = tuple([(s, e) for s, e in out])
        for s, e in spans:
            start_at = memo.get(s)
            if start_at is None:
                start_at = memo[s] = lookup(s)
            end = now if e is None else e
            end_at = memo.get(end)
            if end_at is None:
                end_at = memo[end] = lookup(end)
            business = end_at - start_at
            minutes = (business if business > 0 else 0) / _US_PER_MINUTE
            if e is None:
                open_minutes = minutes
            else:
                closed.append(minutes)
        return Timeline(spans, self.now, calendar, now, (closed, open_minutes))


_first = itemgetter(0)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)


def _us(moment: datetime, what: str) -> int:
    """Microseconds since the epoch; the calendar's own conversion (and its error) for anything odd."""
    try:
        return (moment - _EPOCH) // _ONE_US
    except TypeError:  # naive, or not a datetime: let the calendar say what is wrong
        return _to_us(moment, what)


def compute_clocks(ticket: Ticket, now: datetime, targets: Sequence[MetricTarget], *, paused: frozenset[Status],
                   warn_percents: Iterable[int] = ()) -> dict[str, tuple[SlaClock, Timeline]]:
    """Every metric in `targets` that applies to the ticket now, from one pass over its history."""
    if not targets:
        return {}
    times = TicketTimes(ticket, now)
    warn_percents = tuple(warn_percents)
    out = {}
    for target in targets:
        built = times.clock(target, paused, warn_percents)
        if built:
            out[target.metric] = built
    return out


def status_segments(ticket: Ticket, now: datetime) -> list[tuple[datetime, datetime, Status]]:
    """The ticket's life as consecutive (start, end, status) spans from creation to `now`."""
    history = sorted(ticket.status_history, key=lambda c: c.at)
    if history:
        first = history[0]
        current = first.from_status or (first.to_status if first.at <= ticket.created else Status.NEW)
    else:
        current = ticket.status
    segments = []
    start = ticket.created
    for change in history:
        at = max(change.at, ticket.created)
        if at > start:
            segments.append((start, min(at, now), current))
            start = at
        current = change.to_status
    if now > start:
        segments.append((start, now, current))
    return segments


def status_at(ticket: Ticket, now: datetime) -> Status:
    """The ticket's status at `now` (a change made exactly at `now` counts); see `connector.history.status_at`."""
    return model_status_at(ticket, now)


def agent_updates(ticket: Ticket) -> list[datetime]:
    """Instants of public agent comments: what counts as a response to the customer."""
    return sorted(c.created for c in ticket.comments
                  if c.public and c.author_role == AuthorRole.AGENT and c.created >= ticket.created)


def build_clock(metric: str, ticket: Ticket, now: datetime, *, target_minutes: int, clock: str,
                calendar: Calendar, paused: frozenset[Status], warn_percents: Iterable[int] = ()
                ) -> tuple[SlaClock, Timeline] | None:
    """Compute one metric's clock, or None when it does not apply to the ticket now."""
    if metric not in ("first_response", "resolution", "periodic_update"):
        raise ValueError(f"unknown SLA metric {metric!r}")
    target = MetricTarget(metric, target_minutes, clock, calendar)
    return TicketTimes(ticket, now).clock(target, paused, tuple(warn_percents))
