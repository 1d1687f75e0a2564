"""Running the timers and sweeps inside a worker process.

Two mechanisms, because they need different granularity:

- **The deadline pump** runs in a thread of every worker process, every 10 s by default
  (`CONNECTOR_PUMP_INTERVAL`, seconds). A breach notice is promised within a minute of its
  deadline; huey's periodic tasks fire once a minute at best, which would use the whole
  budget before the reconcile even started. Several worker processes each run a pump;
  claiming a timer is atomic, so each timer is queued once.
- **The sweeps** run from a huey periodic task every minute (`crontab(minute='*')`), which
  starts whichever sweep is due (`CONNECTOR_SYNC_RECENT_INTERVAL`, default 300 s;
  `CONNECTOR_SYNC_FULL_INTERVAL`, default 3600 s). Every consumer's scheduler enqueues the
  tick, so with several workers several ticks run; the per-platform lease and the
  "last completed" stamps in the queue backend make all but one of them return at once.

Which platforms are swept follows the settings: Jira when `JIRA_URL` is set, Zendesk
when `ZENDESK_URL` is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from huey import crontab

from connector.settings import Settings
from connector.sync.pump import DEFAULT_PUMP_INTERVAL, DeadlinePump, PumpThread
from connector.sync.sweep import DEFAULT_FULL_INTERVAL, DEFAULT_RECENT_INTERVAL, Sweeper

if TYPE_CHECKING:
    from connector.queue.reconcile_queue import ReconcileQueue
    from connector.reconcile import Runtime

log = logging.getLogger(__name__)

SYNC_TASK_NAME = "connector_sync_tick"


@dataclass(frozen=True)
class SyncIntervals:
    pump: timedelta = DEFAULT_PUMP_INTERVAL
    recent: timedelta = DEFAULT_RECENT_INTERVAL
    full: timedelta = DEFAULT_FULL_INTERVAL

    @classmethod
    def from_settings(cls, settings: Settings) -> "SyncIntervals":
        """CONNECTOR_PUMP_INTERVAL, CONNECTOR_SYNC_RECENT_INTERVAL, CONNECTOR_SYNC_FULL_INTERVAL."""
        return cls(pump=settings.pump_every, recent=settings.sync_recent_every, full=settings.sync_full_every)


def configured_platforms(settings: Settings) -> list[str]:
    platforms = []
    if settings.jira_url:
        platforms.append("jira")
    if settings.zendesk_url:
        platforms.append("zendesk")
    return platforms


class SyncService:
    """The pump thread and the periodic sweep task of one worker process."""

    def __init__(
        self,
        queue: "ReconcileQueue",
        runtime: "Callable[[], Runtime]",
        platforms: list[str],
        intervals: SyncIntervals = SyncIntervals(),
        clock: Callable[[], datetime] | None = None,
    ):
        self.queue = queue
        self._runtime = runtime
        self.platforms = platforms
        self.intervals = intervals
        self._clock = clock
        self._pump_thread: PumpThread | None = None

    def sweeper(self) -> Sweeper:
        # The runtime is built lazily (in the worker, after fork) and carries the clock.
        return Sweeper(self._runtime(), self.queue, recent_interval=self.intervals.recent,
                       full_interval=self.intervals.full)

    def pump(self) -> DeadlinePump:
        return DeadlinePump(self.queue, self._clock or (lambda: self._runtime().clock()))

    def register_periodic(self) -> None:
        """Register the minute tick on the queue's huey instance (before its consumer starts)."""

        def tick() -> int:
            return len(self.sweeper().tick(self.platforms))

        self.queue.huey.periodic_task(crontab(minute="*"), name=SYNC_TASK_NAME)(tick)

    def start_pump(self) -> None:
        self._pump_thread = PumpThread(self.pump(), self.intervals.pump).start()

    def stop_pump(self) -> None:
        if self._pump_thread is not None:
            self._pump_thread.stop()
            self._pump_thread = None
