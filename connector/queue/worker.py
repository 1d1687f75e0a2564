"""Running the queue's consumer: the worker process (`run_worker`) and in-process threads.

This is the top of the queue package: it binds the reconcile task's body to the
reconciler (`connector.reconcile`) and starts the SLA pump and the sweeps
(`connector.sync.scheduler`) next to huey's consumer, so it imports both; nothing in the
queue package below it does. The worker process builds its `Runtime` once and passes it to
what needs it (the task body, the sweeps, the hot reload); only `WorkerThreads` without an
explicit `reconcile` falls back to the process-wide runtime (`connector.reconcile.get_runtime`,
installed by tests and the demo with `set_runtime`) – the one place where huey calls the task.

An idle worker waits for the next task as `Settings.worker_wait` (`CONNECTOR_WORKER_WAIT`) says:

- "wakeup" (default): Redis – a blocking pop; SQLite – the receiver wakes the worker
  through a FIFO (`connector.queue.wakeup`), with a fallback poll once a second.
- "poll": SQLite polled every POLL_INTERVAL without backoff (costs idle CPU; measured
  by bench/latency.py, kept for comparison and for file systems without FIFOs).
- "huey": huey's stock consumer (poll after 0.1 s, backing off ×1.15 to 10 s), the
  behaviour before the wake-up; for the baseline of bench/latency.py.
"""

from __future__ import annotations

import logging
import os
import signal

from huey.consumer import Consumer

from connector.config import SupportConfig
from connector.queue.reconcile_queue import ReconcileQueue
from connector.queue.storage import QueueConfigError
from connector.queue.tasks import Reconcile
from connector.queue.wakeup import FALLBACK_POLL_SECONDS, WakeupListener, WakeupSqliteStorage
from connector.reconcile import Runtime, build_runtime, get_runtime, reconcile_ticket
from connector.reconcile import reconcile as reconcile_with
from connector.reload import ConfigWatcher
from connector.settings import WORKER_WAIT_MODES, Settings
from connector.sync.scheduler import SyncIntervals, SyncService, configured_platforms

log = logging.getLogger("connector.queue")

WORKER_SHUTDOWN_TIMEOUT = 25  # seconds; below the usual 30 s a supervisor waits before SIGKILL

POLL_INTERVAL = 0.05  # seconds between polls in the "poll" mode


class _Consumer(Consumer):
    """huey's consumer, plus the worker side of the wake-up: the listener runs while the
    consumer runs, and threads waiting for a wake-up are released as soon as it stops."""

    wakeup: WakeupListener | None = None
    fallback_poll: float = FALLBACK_POLL_SECONDS

    def start_wakeup(self) -> None:
        if self.wakeup is None:
            return
        try:
            self.wakeup.start()
        except OSError as exc:
            # A file system without FIFOs, a read-only data dir: poll instead (bounded by
            # the consumer's max_delay), and say so once.
            log.warning("worker.wakeup_unavailable", extra={
                "error": type(exc).__name__, "directory": str(self.wakeup.directory),
                "hint": f"polling every {self.max_delay} s instead; the data dir must allow named pipes"})
            self.wakeup = None
            return
        self.huey.storage.attach(self.wakeup, fallback_poll=self.fallback_poll)

    def stop_wakeup(self) -> None:
        if self.wakeup is not None:
            self.huey.storage.detach()
            self.wakeup.stop()

    def stop(self, graceful: bool = False) -> None:
        self.stop_flag.set()  # first, so a released thread does not go back to waiting
        if self.wakeup is not None:
            self.wakeup.release()
        super().stop(graceful)


def _create_consumer(queue: "ReconcileQueue", mode: str, *, workers: int, poll_interval: float | None = None,
                     max_delay: float | None = None, **options) -> _Consumer:
    """A thread consumer whose idle wait follows `mode` (see the module docstring).

    With a wake-up (SQLite) or a blocking pop (Redis) the consumer's own poll delays apply
    only after a failed read (storage down) or without a listener; they are capped at
    `max_delay` (1 s) so a worker is back within a second of the storage's return, where
    huey's default waited up to 10 s. `max_delay` is also the wake-up's fallback poll.
    """
    storage = queue.huey.storage
    if mode == "huey":
        delays: dict[str, float] = {}
    elif mode == "poll":
        interval = poll_interval or POLL_INTERVAL
        delays = {"initial_delay": interval, "max_delay": max(interval, max_delay or 0), "backoff": 1.0}
    else:
        interval = poll_interval or 0.1
        delays = {"initial_delay": interval, "max_delay": max(interval, max_delay or FALLBACK_POLL_SECONDS),
                  "backoff": 2.0}
    consumer = _Consumer(queue.huey, workers=workers, worker_type="thread", **delays, **options)
    if mode == "wakeup" and isinstance(storage, WakeupSqliteStorage):
        consumer.wakeup = WakeupListener(storage.wakeup_dir)
        consumer.fallback_poll = consumer.max_delay
    return consumer


def _bind(queue: ReconcileQueue, reconcile: Reconcile | None) -> None:
    """Give the queue its task body unless it has one (a test's stand-in, say)."""
    if reconcile is not None:
        queue.reconcile = reconcile
    elif queue.reconcile is None:
        # The one place that reaches the process-wide runtime (see the module docstring).
        queue.reconcile = reconcile_ticket
    if queue.chat.runtime is None:
        queue.chat.runtime = get_runtime  # the chat task reads the same runtime


def run_worker(settings: Settings, workers: int = 2, *, queue: ReconcileQueue | None = None,
               sync: bool = True, reconcile: Reconcile | None = None) -> None:
    """Run the huey consumer in this process until SIGTERM (finish running tasks) or SIGINT (stop now).

    With `sync` (the default) the process also runs the SLA deadline pump (a thread, every
    few seconds) and the periodic sweeps (a huey periodic task, every minute); see
    `connector.sync.scheduler`. Pass `queue` to run a queue built elsewhere, `reconcile` to
    run something else than the reconciler (tests).

    The worker's `Runtime` is built here from `settings` once the config has loaded, and
    passed to the task body and the sweeps.

    The config is hot-reloaded (`connector.reload`): on SIGHUP and when its files change.
    huey's consumer would answer SIGHUP by re-executing the process, which with a broken
    new config would end in a worker that refuses to start; that action is taken away from
    it, so a broken config is rejected and the last good one keeps running.
    """
    mode = settings.worker_wait
    queue = queue or ReconcileQueue.from_settings(settings)
    runtimes: list[Runtime] = []

    def on_change(config: SupportConfig) -> None:
        if runtimes:
            runtimes[0].replace_config(config)
        else:
            runtimes.append(build_runtime(settings, config))

    watcher = ConfigWatcher(settings.config_path, on_change=on_change, poll_interval=settings.config_poll_every)
    if watcher.check(force=True) == "rejected":
        raise QueueConfigError(f"the config at {settings.config_path} does not load; "
                               f"run `connector check-config {settings.config_path}`")
    runtime = runtimes[0]
    # The chat task and the runtime share the worker's queue: its outbox, its delivery task.
    runtime.chat = queue.chat
    queue.chat.runtime = lambda: runtime
    if reconcile is None and queue.reconcile is None:
        queue.reconcile = lambda platform, ticket_id: reconcile_with(runtime, platform, ticket_id).outcome
    else:
        _bind(queue, reconcile)
    service = None
    if sync:
        service = SyncService(queue, lambda: runtime, configured_platforms(settings),
                              SyncIntervals.from_settings(settings))
        service.register_periodic()
        service.start_pump()
    queue.liveness.start()
    consumer = _create_consumer(
        queue, mode,
        workers=workers,
        periodic=True,
        graceful_signal="TERM",
        shutdown_timeout=WORKER_SHUTDOWN_TIMEOUT,
    )
    consumer._signal_actions.pop(signal.SIGHUP, None)  # see the docstring: reload, never re-exec
    watcher.install_sighup()
    watcher.start()
    consumer.start_wakeup()
    log.info("worker.started", extra={"workers": workers, "pid": os.getpid(), "sync": sync, "wait": mode,
                                      "wakeup": consumer.wakeup is not None})
    try:
        consumer.run()
    finally:
        consumer.stop_wakeup()
        watcher.stop()
        if service is not None:
            service.stop_pump()
        queue.liveness.stop()
    log.info("worker.stopped", extra={"pid": os.getpid()})


class WorkerThreads:
    """A huey consumer running in threads of the current process, without signal handlers.

    For tests and single-process tools (a demo): huey's `Consumer.run()` installs signal
    handlers, which only the main thread may do, so this starts the consumer's scheduler and
    worker threads directly and stops them with the consumer's own graceful stop.

    Idle threads wait as `wait` says (see the module docstring); `poll_interval` is the first
    poll delay, and the fallback poll of the wake-up is max(poll_interval, 0.5) s. The tasks
    run `reconcile` if given, else the queue's own `reconcile`, else the process-wide runtime's.
    """

    def __init__(self, queue: ReconcileQueue, workers: int = 2, *, poll_interval: float = 0.05,
                 wait: str = "wakeup", reconcile: Reconcile | None = None):
        if wait not in WORKER_WAIT_MODES:
            raise ValueError(f"wait must be one of {WORKER_WAIT_MODES}, not {wait!r}")
        _bind(queue, reconcile)
        self._consumer = _create_consumer(
            queue, wait,
            workers=workers,
            poll_interval=poll_interval,
            max_delay=max(poll_interval, 0.5),  # as before this had a wake-up: tests poll briskly
            periodic=False,
            check_worker_health=False,
            shutdown_timeout=WORKER_SHUTDOWN_TIMEOUT,
        )
        self._liveness = queue.liveness
        self._started = False

    @property
    def wakeup(self) -> WakeupListener | None:
        """The wake-up listener while it runs (SQLite in "wakeup" mode), else None."""
        return self._consumer.wakeup

    def start(self) -> "WorkerThreads":
        if self._started:
            raise RuntimeError("these worker threads were already started")
        self._started = True
        self._liveness.start()
        self._consumer.start_wakeup()
        self._consumer.scheduler.start()
        for _, thread in self._consumer.worker_threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Let running reconciles finish, then stop the threads."""
        if self._started:
            self._consumer.stop(graceful=True)
            self._consumer.stop_wakeup()
            self._liveness.stop()

    def __enter__(self) -> "WorkerThreads":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
