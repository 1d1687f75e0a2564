"""The sweep: catch what webhooks and queue tasks missed, and rebuild SLA timers.

Webhooks get lost (Jira retries ~30 min, Zendesk a few times), queue tasks die with a
crashed worker, and a restored backend may have lost the deadline index. The platform is
the system of record, so a periodic read of it bounds how long any of that can go unseen:

- **recent** (every 5 min by default): tickets updated since the previous recent sweep,
  minus an overlap. Catches a lost webhook within one period.
- **full** (every 60 min by default): every open ticket, plus recently closed ones (they
  still have follow-up and auto-close deadlines). Re-arms every ticket's timer, so losing
  the deadline index costs at most one period of lateness.

For each ticket a listing returns:

0. A ticket *settled* at the stamp the listing shows – the same `updated` stamp as at its last
   reconcile, which left nothing to write, under the same config, and its next deadline not
   reached (`DeadlineEntry.settled`) – is skipped without parsing or evaluating it: the rules
   are pure, so its plan is the empty one made then, and its timer still stands. A full
   sweep of a quiet site is then a search plus one index read per page. A hot reload changes
   the config fingerprint, so the next sweep evaluates everything under the new rules.
1. Jira results are complete tickets: they are evaluated in-process (no API call). An
   empty plan re-arms the ticket's timer from `plan.next_deadline`. A plan with actions is
   *not* applied from the search snapshot: a reconcile is queued, which re-reads the
   ticket under its per-ticket lock and writes. A snapshot can be minutes old by then, and
   writing from it could repeat a breach comment a worker posted in between; one extra GET
   for the few tickets that need a write is the price (their timers usually fired already).
2. Tickets a listing cannot fully describe (all of Zendesk's; Jira tickets whose embedded
   changelog or comments are cut short) and not settled are completed by the source where it
   can (Jira: the missing changelog entries of a whole page in one bulk request, comment
   pages per ticket) and evaluated like complete tickets; what it cannot complete is queued
   for a reconcile. So a page of 100 tickets costs its search request, plus one bulk
   request when some of them have long histories, plus comment pages only for tickets with
   more comments than a listing embeds.

Timers re-armed by evaluated tickets are written to the deadline index once per page (one
SQLite transaction, one Redis pipeline), not once per ticket.

The sweep never writes to a platform itself, so it needs no per-ticket lock and changes
nothing it is paging through. One sweep per platform runs at a time cluster-wide (a lease
in the queue backend, renewed after every page); checkpoints are saved only once the page
before them has been handled, so an interrupted sweep resumes without gaps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING

from connector.platforms.base import PlatformError
from connector.platforms.field_values import MalformedTicketError
from connector.reconcile import reconcile_fetched
from connector.settings import fields
from connector.sync.sources import DEFAULT_OVERLAP, Batch, Found, Source, source_for
from connector.sync.state import SweepBusy, SyncState

if TYPE_CHECKING:
    from connector.model import Ticket
    from connector.queue.deadlines import DeadlineIndex, Record
    from connector.queue.reconcile_queue import ReconcileQueue
    from connector.reconcile import Runtime

log = logging.getLogger(__name__)

# The defaults of CONNECTOR_SYNC_RECENT_INTERVAL and CONNECTOR_SYNC_FULL_INTERVAL (`connector.settings`).
DEFAULT_RECENT_INTERVAL = timedelta(seconds=fields()["sync_recent_interval"].default)
DEFAULT_FULL_INTERVAL = timedelta(seconds=fields()["sync_full_interval"].default)


class SweepKind(str, Enum):
    RECENT = "recent"
    FULL = "full"


@dataclass
class SweepReport:
    """What one sweep saw and did; `connector sync` prints it, logs carry it."""

    platform: str
    kind: str
    started: datetime
    tickets: int = 0
    evaluated: int = 0  # complete tickets evaluated from the listing (no fetch)
    completed: int = 0  # of those, listings cut short that the source completed first
    timers_armed: int = 0  # of those, tickets left with a next deadline
    queued: int = 0  # reconciles queued (a write is due, or the listing was not enough)
    collapsed: int = 0  # of those, already waiting in the queue
    unchanged: int = 0  # skipped: settled at the stamp the listing shows (see the module docstring)
    skipped: int = 0  # deleted or unreadable
    checkpoint: str | None = None
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0  # of the sweeping thread only (`time.thread_time`), not the whole process
    reasons: dict[str, int] = field(default_factory=dict)

    def as_fields(self) -> dict[str, object]:
        return {
            "platform": self.platform, "kind": self.kind, "tickets": self.tickets, "evaluated": self.evaluated,
            "completed": self.completed,
            "timers_armed": self.timers_armed, "queued": self.queued, "collapsed": self.collapsed,
            "unchanged": self.unchanged, "skipped": self.skipped,
            "wall_seconds": round(self.wall_seconds, 3), "cpu_seconds": round(self.cpu_seconds, 3),
        }


@dataclass(frozen=True)
class Swept:
    """One ticket handled by a sweep, as the progress bar sees it."""

    ticket_id: str
    action: str  # evaluated | queued | collapsed | unchanged | skipped


class Sweep:
    """One running sweep: iterate it (one `Swept` per ticket), then read `report`.

    Holds the platform's lease from construction until it is exhausted or closed; use it as
    a context manager so an abandoned iteration releases the lease.
    """

    def __init__(self, sweeper: "Sweeper", platform: str, kind: SweepKind):
        self._sweeper = sweeper
        self.platform = platform
        self.kind = kind
        self._lease = sweeper.state.acquire(platform)
        now = sweeper.runtime.clock()
        self.report = SweepReport(platform, kind.value, started=now)
        self._iterator = self._run(now)

    def __iter__(self) -> Iterator[Swept]:
        return self._iterator

    def __enter__(self) -> "Sweep":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._iterator.close()
        self._sweeper.state.release(self._lease)

    def _batches(self, now: datetime) -> Iterator[Batch]:
        source = self._sweeper.source(self.platform)
        state = self._sweeper.state
        if self.kind is SweepKind.RECENT:
            checkpoint = state.checkpoint(self.platform, SweepKind.RECENT.value)
            return source.recent(checkpoint, now, self._sweeper.recent_interval)
        return source.open_tickets(now)

    def _run(self, now: datetime) -> Iterator[Swept]:
        sweeper = self._sweeper
        report = self.report
        # The sweep runs in one thread; other threads of the process (queue workers, an
        # in-process sandbox in benchmarks) are not its cost.
        wall0, cpu0 = time.monotonic(), time.thread_time()
        log.info("sync.started", extra={"platform": self.platform, "kind": self.kind.value, "now": now.isoformat()})
        try:
            seen_ids: set[str] = set()
            for batch in self._batches(now):
                fresh = [f for f in batch.found if f.ticket_id not in seen_ids]
                seen_ids.update(f.ticket_id for f in fresh)
                settled = self._settled(fresh)
                completed = self._complete([f for f in fresh if f.ticket_id not in settled])
                records: list[Record] = []
                swept = []
                for found in fresh:
                    if found.ticket is None and found.ticket_id in completed:
                        found = replace(found, ticket=completed[found.ticket_id])
                        report.completed += 1
                    report.tickets += 1
                    action = self._handle(found, found.ticket_id in settled, records)
                    report.reasons[action] = report.reasons.get(action, 0) + 1
                    swept.append(Swept(found.ticket_id, action))
                self._record(records)
                yield from swept
                if batch.checkpoint is not None and self.kind is SweepKind.RECENT:
                    sweeper.state.save_checkpoint(self.platform, SweepKind.RECENT.value, batch.checkpoint)
                    report.checkpoint = batch.checkpoint
                if not sweeper.state.renew(self._lease):
                    log.warning("sync.lease_lost", extra={"platform": self.platform, "kind": self.kind.value})
                    return
            sweeper.state.mark_completed(self.platform, self.kind.value, now)
        finally:
            report.wall_seconds = time.monotonic() - wall0
            report.cpu_seconds = time.thread_time() - cpu0
            sweeper.state.release(self._lease)
        log.info("sync.finished", extra=report.as_fields())

    def _settled(self, fresh: list[Found]) -> set[str]:
        """Ids of the page's tickets settled at the stamp the listing shows (one index read)."""
        runtime = self._sweeper.runtime
        ids = [f.ticket_id for f in fresh if f.skip_reason is None and f.ticket_id and f.updated is not None]
        if not ids:
            return set()
        entries = self._sweeper.index.entries(self.platform, ids)
        now, fingerprint = runtime.clock(), runtime.config_fingerprint()
        return {f.ticket_id for f in fresh
                if (entry := entries.get(f.ticket_id)) is not None and entry.settled(f.updated, now, fingerprint)}

    def _record(self, records: list[Record]) -> None:
        """The page's re-armed timers in one transaction. A failure is logged, not raised: the
        next sweep evaluates those tickets again and re-arms them."""
        if not records or self._sweeper.runtime.schedule is None:
            return
        try:
            self._sweeper.index.record_many(records)
        except Exception as exc:
            log.warning("sync.timers_not_armed", extra={"platform": self.platform, "tickets": len(records),
                                                        "error": type(exc).__name__})

    def _complete(self, wanting: list[Found]) -> dict[str, "Ticket"]:
        """Complete the cut-short listings of one page that are not skipped as settled."""
        wanting = [f for f in wanting if f.ticket is None and f.raw is not None and f.skip_reason is None]
        if not wanting:
            return {}
        try:
            return self._sweeper.source(self.platform).complete(wanting)
        except PlatformError as exc:
            # They are queued instead; the sweep goes on with the rest of the page.
            log.warning("sync.complete_failed", extra={"platform": self.platform, "tickets": len(wanting),
                                                       "error": type(exc).__name__})
            return {}

    def _handle(self, found: Found, settled: bool, records: list[Record]) -> str:

        report = self.report
        if found.skip_reason is not None or not found.ticket_id:
            report.skipped += 1
            return "skipped"
        if settled:
            report.unchanged += 1
            return "unchanged"
        if found.ticket is None and found.listed is not None:
            try:
                found = replace(found, ticket=self._sweeper.source(self.platform).parse(found.listed))
            except (MalformedTicketError, ValueError) as exc:
                log.warning("sync.ticket_unreadable", extra={"platform": self.platform, "ticket_id": found.ticket_id,
                                                             "error": str(exc)})
                report.skipped += 1
                return "skipped"
        if found.ticket is not None:
            try:
                # The sweep's start precedes every page's search: a lower bound of when each
                # listing was taken.
                outcome = reconcile_fetched(self._sweeper.runtime, found.ticket, write=False, records=records,
                                            read_at=self.report.started)
            except (MalformedTicketError, ValueError) as exc:
                # A ticket the rules cannot read must not stop the sweep of the others;
                # a queued reconcile reports it through the worker's own error path.
                log.warning("sync.evaluate_failed", extra={"platform": self.platform, "ticket_id": found.ticket_id,
                                                           "error": type(exc).__name__})
                return self._queue(found.ticket_id)
            report.evaluated += 1
            if outcome.outcome == "needs_write":
                return self._queue(found.ticket_id)
            if outcome.plan is not None and outcome.plan.next_deadline is not None:
                report.timers_armed += 1
            return "evaluated"
        return self._queue(found.ticket_id)

    def _queue(self, ticket_id: str) -> str:
        result = self._sweeper.queue.enqueue_reconcile(self.platform, ticket_id)
        self.report.queued += 1
        if result == "duplicate":
            self.report.collapsed += 1
            return "collapsed"
        return "queued"


class Sweeper:
    """Runs sweeps for a runtime (adapters, config, clock) against a queue and its backend."""

    def __init__(
        self,
        runtime: "Runtime",
        queue: "ReconcileQueue",
        *,
        recent_interval: timedelta = DEFAULT_RECENT_INTERVAL,
        full_interval: timedelta = DEFAULT_FULL_INTERVAL,
        overlap: timedelta = DEFAULT_OVERLAP,
        state: SyncState | None = None,
        index: "DeadlineIndex | None" = None,
        sources: dict[str, Source] | None = None,
    ):
        self.runtime = runtime
        self.queue = queue
        self.recent_interval = recent_interval
        self.full_interval = full_interval
        self.overlap = overlap
        self.state = state or SyncState(queue.huey, liveness=queue.liveness)
        self.index = index or queue.deadlines
        self._sources = dict(sources or {})

    def source(self, platform: str) -> Source:
        if platform not in self._sources:
            self._sources[platform] = source_for(platform, self.runtime.adapter(platform), overlap=self.overlap)
        return self._sources[platform]

    def start(self, platform: str, kind: SweepKind | str) -> Sweep:
        """Begin a sweep; raise SweepBusy when another sweep of `platform` is running."""
        return Sweep(self, platform, SweepKind(kind))

    def run(self, platform: str, kind: SweepKind | str) -> SweepReport:
        with self.start(platform, kind) as sweep:
            for _ in sweep:
                pass
            return sweep.report

    def due(self, platform: str, now: datetime) -> list[SweepKind]:
        """The sweep kinds whose period has elapsed at `now`, full first.

        A full sweep never completed (a new install, a lost backend) is due at once: it is
        what re-arms the timers.
        """
        kinds = []
        for kind, interval in ((SweepKind.FULL, self.full_interval), (SweepKind.RECENT, self.recent_interval)):
            last = self.state.last_completed(platform, kind.value)
            if last is None or now - last >= interval:
                kinds.append(kind)
        return kinds

    def tick(self, platforms: list[str]) -> list[SweepReport]:
        """Run every sweep that is due; a platform whose sweep is running elsewhere is skipped."""
        reports = []
        now = self.runtime.clock()
        for platform in platforms:
            for kind in self.due(platform, now):
                try:
                    reports.append(self.run(platform, kind))
                except SweepBusy:
                    log.info("sync.skipped_busy", extra={"platform": platform, "kind": kind.value})
                    break
                except Exception as exc:
                    # One platform being down must not stop the other's sweep; the next tick retries.
                    log.error("sync.failed", extra={"platform": platform, "kind": kind.value,
                                                    "error": type(exc).__name__, "detail": str(exc)})
                    break
        return reports
