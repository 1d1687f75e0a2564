"""The SLA clocks as computed before the one-pass rewrite (commit 04f6d3a), kept verbatim as the
reference `tests/test_sla_one_pass.py` compares `connector.sla` against. Not used by the connector.

Original docstring: SLA clocks computed from a ticket's own history, to the minute, in business time.

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
- the targets are those of the ticket's current priority: a priority change re-targets
  the whole clock, as Jira Service Management does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Protocol

from connector.model import DONE_STATUSES, AuthorRole, SlaClock, Status, Ticket


class Calendar(Protocol):
    name: str

    def business_minutes_between(self, start: datetime, end: datetime) -> float: ...

    def add_business_minutes(self, start: datetime, minutes: float) -> datetime: ...


@dataclass(frozen=True)
class Timeline:
    """The spans during which a clock ran; the last may still be running (end None)."""

    intervals: tuple[tuple[datetime, datetime | None], ...]
    now: datetime
    calendar: Calendar

    @property
    def running(self) -> bool:
        return bool(self.intervals) and self.intervals[-1][1] is None

    def elapsed(self) -> float:
        return sum(self.calendar.business_minutes_between(s, e or self.now) for s, e in self.intervals)

    def reached_at(self, minutes: float) -> datetime | None:
        """When the clock reached (or, if it keeps running, will reach) `minutes`; None if it never will."""
        used = 0.0
        for start, end in self.intervals:
            if end is None:
                return self.calendar.add_business_minutes(start, minutes - used)
            span = self.calendar.business_minutes_between(start, end)
            if used + span >= minutes:
                return self.calendar.add_business_minutes(start, minutes - used)
            used += span
        return None


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
    """The ticket's status at `now` (a change made exactly at `now` counts)."""
    # A stable sort keeps the platform's order for changes made in the same instant.
    history = sorted(ticket.status_history, key=lambda c: c.at)
    past = [c for c in history if c.at <= now]
    if past:
        return past[-1].to_status
    if history and history[0].from_status:
        return history[0].from_status
    return ticket.status if not history else Status.NEW


def _running_intervals(segments, begin: datetime, stop: datetime | None, paused: frozenset[Status],
                       now: datetime, status_now: Status) -> tuple[tuple[datetime, datetime | None], ...]:
    """Spans between begin and stop (or now) in which the clock runs; open-ended if running now."""
    end_of_clock = stop or now
    out: list[list] = []
    for seg_start, seg_end, status in segments:
        if status in paused or status in DONE_STATUSES:
            continue
        s, e = max(seg_start, begin), min(seg_end, end_of_clock)
        if e <= s:
            continue
        if out and out[-1][1] == s:
            out[-1][1] = e
        else:
            out.append([s, e])
    if stop is None and status_now not in paused and status_now not in DONE_STATUSES:
        if out and out[-1][1] == now:
            out[-1][1] = None
        else:
            out.append([max(begin, now), None])
    return tuple((s, e) for s, e in out)


def agent_updates(ticket: Ticket) -> list[datetime]:
    """Instants of public agent comments: what counts as a response to the customer."""
    return sorted(c.created for c in ticket.comments
                  if c.public and c.author_role == AuthorRole.AGENT and c.created >= ticket.created)


def _first_done(segments) -> datetime | None:
    for start, _, status in segments:
        if status in DONE_STATUSES:
            return start
    return None


def build_clock(metric: str, ticket: Ticket, now: datetime, *, target_minutes: int, clock: str,
                calendar: Calendar, paused: frozenset[Status], warn_percents: Iterable[int] = ()
                ) -> tuple[SlaClock, Timeline] | None:
    """Compute one metric's clock, or None when it does not apply to the ticket now."""
    segments = status_segments(ticket, now)
    updates = agent_updates(ticket)
    cycle = 0
    if metric == "first_response":
        begin = ticket.created
        responded = updates[0] if updates else None
        done_at = _first_done(segments)
        stop = min((t for t in (responded, done_at) if t is not None and t <= now), default=None)
    elif metric == "resolution":
        begin = ticket.created
        stop = now if segments and segments[-1][2] in DONE_STATUSES else None
        if stop is not None:
            stop = segments[-1][0]
    elif metric == "periodic_update":
        if not updates or ticket.status in DONE_STATUSES:
            return None
        past = [t for t in updates if t <= now]
        if not past:
            return None
        begin, stop, cycle = past[-1], None, len(past)
    else:
        raise ValueError(f"unknown SLA metric {metric!r}")

    status_now = status_at(ticket, now)
    timeline = Timeline(_running_intervals(segments, begin, stop, paused, now, status_now), now, calendar)
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
    warn_at = ()
    if state == "running":
        warn_at = tuple(at for at in (timeline.reached_at(target_minutes * p / 100) for p in warn_percents) if at)
    return SlaClock(
        metric=metric, target_minutes=target_minutes, clock=clock, calendar=calendar.name,
        elapsed_minutes=round(elapsed, 3), remaining_minutes=round(max(0.0, target_minutes - elapsed), 3),
        state=state, started=begin, due=due, breached_at=breached_at, stopped_at=stop, cycle=cycle,
        warn_at=warn_at,
    ), timeline
