"""The deadline pump: fires the SLA timers of the deadline index (`connector.queue.deadlines`).

A pump asks the index, every few seconds, for rows due at `clock.now()` and queues a
reconcile for each through `ReconcileQueue.enqueue_reconcile`, so burst collapsing and the
per-ticket lock apply to timers exactly as to webhooks. Claiming is atomic, so two pumps –
one per worker process – never both queue the same timer. The clock is injected: the worker
passes real time; tests and the bench pass the sandbox clock and call `pump()` themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from connector.queue.deadlines import CLAIM_BATCH, DeadlineIndex
from connector.queue.reconcile_queue import ReconcileQueue
from connector.queue.storage import QueueUnavailable
from connector.settings import fields

log = logging.getLogger("connector.sync.deadlines")  # the timers' log name, kept across the move

DEFAULT_PUMP_INTERVAL = timedelta(seconds=fields()["pump_interval"].default)  # CONNECTOR_PUMP_INTERVAL's


class DeadlinePump:
    """Turns due timers into queued reconciles; `pump()` is one pass, safe to call from anywhere."""

    def __init__(self, queue: ReconcileQueue, clock: Callable[[], datetime], index: DeadlineIndex | None = None):
        self.queue = queue
        self.index = index or queue.deadlines
        self.clock = clock

    def pump(self) -> int:
        """Queue a reconcile for every timer due now; return how many were queued or collapsed.

        When the queue cannot store a task the claimed timer is put back, so it fires on the
        next pass instead of being lost.
        """
        now = self.clock()
        fired = 0
        while True:
            timers = self.index.claim_due(now)
            for position, timer in enumerate(timers):
                try:
                    result = self.queue.enqueue_reconcile(timer.platform, timer.ticket_id)
                except QueueUnavailable:
                    for left in timers[position:]:
                        self.index.rearm(left)
                    log.error("deadline.pump_stalled", extra={"rearmed": len(timers) - position})
                    return fired
                fired += 1
                log.info("deadline.fired", extra={
                    "platform": timer.platform, "ticket_id": timer.ticket_id, "due": timer.due.isoformat(),
                    "late_seconds": round((now - timer.due).total_seconds(), 3), "queued": result,
                })
            if len(timers) < CLAIM_BATCH:
                return fired


class PumpThread:
    """Runs `pump.pump()` every `interval` in a daemon thread of the worker process.

    A thread rather than a huey periodic task because huey's periodic tasks are
    minute-granular, and a breach notice is promised within a minute of its deadline: the
    pump interval (10 s by default) plus the queue's pick-up delay is the latency.
    """

    def __init__(self, pump: DeadlinePump, interval: timedelta = DEFAULT_PUMP_INTERVAL):
        if interval <= timedelta(0):
            raise ValueError("the pump interval must be positive")
        self._pump = pump
        self._interval = interval.total_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="connector-deadline-pump", daemon=True)

    def start(self) -> "PumpThread":
        self._thread.start()
        log.info("deadline.pump_started", extra={"interval_seconds": self._interval})
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._pump.pump()
            except Exception:
                # The storage may be briefly locked or unreachable; the next pass retries.
                log.exception("deadline.pump_failed")
            self._stop.wait(max(0.0, self._interval - (time.monotonic() - started)))
