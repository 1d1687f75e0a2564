"""The reconcile queue: which ticket to look at, collapsed, deduplicated, one ticket at a time.

An event is only a hint that a ticket changed, so the queue carries *which ticket to look
at*, never what the event said: the worker re-reads the ticket anyway. That is what makes
the tricks of this package safe (the package docstring lists them); this module is the
`ReconcileQueue` that ties them together:

- producer side (`enqueue_reconcile`, `schedule_reconcile`): the receiver, the sweep and
  the SLA timers admit a task with its delivery claim and pending flag in one write
  (`connector.queue.admission`);
- consumer side (`run_reconcile`, the huey task's body): take the ticket's lock
  (`connector.queue.locks`), clear the pending flag, run the reconciler it was given, and
  requeue it after a transient platform error (`connector.queue.retry`).

The reconciler is passed in (`reconcile=`, or bound by `connector.queue.worker`), so this
module never imports `connector.reconcile`: the receiver stays free of platform clients and
the dependencies point one way (worker → reconcile → queue storage).

The stores that live in the same backend (the deadline index, observations, problem
numbers) are opened here on first use, from this queue's huey.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Literal

from huey import Huey
from huey.api import Task

from connector.channels.delivery import ChatDelivery
from connector.metrics import RECONCILES
from connector.observe.store import ObservedStore, observed_store
from connector.problem_numbers import ProblemNumberStore, problem_numbers
from connector.queue.admission import Admitted, admission_store
from connector.queue.deadlines import DeadlineIndex, deadline_index
from connector.queue.locks import Liveness, TicketLocks
from connector.queue.retry import RequeuePolicy
from connector.queue.storage import QueueConfigError, QueueUnavailable, create_huey
from connector.queue.tasks import Reconcile, register_reconcile_task
from connector.queue.wakeup import wake_workers
from connector.settings import Settings

log = logging.getLogger("connector.queue")

EnqueueResult = Literal["queued", "duplicate"]
ScheduleResult = Literal["scheduled", "duplicate"]


class ReconcileQueue:
    """Queue reconciles of tickets, collapse bursts, dedupe deliveries and run one ticket at a time."""

    # The task body's reconciler: None in a producer (the receiver never runs tasks); a worker
    # binds it (`connector.queue.worker`), a test may set it on the class for every queue.
    reconcile: Reconcile | None = None

    def __init__(
        self,
        huey: Huey,
        *,
        delivery_ttl: timedelta = timedelta(hours=1),
        pending_stale_after: timedelta = timedelta(minutes=10),
        lock_stale_after: timedelta = timedelta(minutes=15),
        locked_retry_delay: timedelta = timedelta(seconds=2),
        retry_policy: RequeuePolicy = RequeuePolicy(),
        reconcile: Reconcile | None = None,
    ):
        self.huey = huey
        try:
            # The one write that accepts an event or arms a retry/timer (connector.queue.admission);
            # tests make the storage fail here.
            self.admission = admission_store(huey, delivery_ttl)
        except TypeError as exc:
            raise QueueConfigError(str(exc)) from None
        self._pending_stale_after = pending_stale_after.total_seconds()
        self._locked_retry_delay = locked_retry_delay
        self.retry_policy = retry_policy
        if reconcile is not None:
            self.reconcile = reconcile
        self.liveness = Liveness(huey)
        self._locks = TicketLocks(huey, self.liveness, lock_stale_after)
        self._task = register_reconcile_task(huey, self.run_reconcile)
        # Team-chat delivery (connector.channels): its own task, registered with every queue;
        # the worker gives it the runtime it reads.
        self.chat = ChatDelivery(huey)
        self._deadlines = None
        self._deadlines_lock = threading.Lock()
        self._observations = None
        self._problem_numbers = None

    @property
    def problem_numbers(self) -> ProblemNumberStore:
        """Problem-number sequences and each ticket's claimed number in this queue's backend
        (see `connector.problem_numbers`)."""
        with self._deadlines_lock:
            if self._problem_numbers is None:
                self._problem_numbers = problem_numbers(self.huey)
            return self._problem_numbers

    @property
    def deadlines(self) -> DeadlineIndex:
        """The SLA deadline index in this queue's backend (see `connector.queue.deadlines`)."""
        with self._deadlines_lock:
            if self._deadlines is None:
                self._deadlines = deadline_index(self.huey)
            return self._deadlines

    @property
    def observations(self) -> ObservedStore:
        """Observed actions (observe mode, rules in `mode: observe`) in this queue's backend
        (see `connector.observe.store`)."""
        with self._deadlines_lock:
            if self._observations is None:
                self._observations = observed_store(self.huey)
            return self._observations

    @classmethod
    def from_settings(cls, settings: Settings, **options) -> "ReconcileQueue":
        return cls(create_huey(settings), **options)

    # -- producer side (the webhook receiver, the sweep, the SLA timers) --------------------

    def enqueue_reconcile(self, platform: str, ticket_id: str, *, event_id: str | None = None) -> EnqueueResult:
        """Ask for a reconcile of one ticket as soon as a worker is free.

        "duplicate" when the delivery id was seen within the TTL, or when a reconcile of the
        ticket is already waiting (it will read the ticket after this event, so it covers it).
        Raise QueueUnavailable when the storage cannot record the request.

        The delivery claim, the pending flag and the task are one write (see
        `connector.queue.admission`): a process killed at any point leaves all three or none, so
        the platform's retry of a delivery that got no answer is queued, never "duplicate".
        """
        delivery_key = f"{platform}:{event_id}" if event_id else None
        try:
            admitted = self._admit(platform, ticket_id, delivery_key=delivery_key, due=time.time(),
                                   task=self._task.s(platform, ticket_id, holds_pending_flag=True))
        except Exception as exc:
            raise self._unavailable("queue.enqueue_failed", platform, ticket_id, exc) from exc
        return "queued" if admitted == "queued" else "duplicate"

    def schedule_reconcile(self, platform: str, ticket_id: str, at: datetime) -> ScheduleResult:
        """Reconcile the ticket at `at` (an SLA deadline); "duplicate" if that timer already exists.

        Every reconcile of a ticket computes its next deadline again, so without the dedupe a
        busy ticket would collect one timer per event for the same instant. The timer's key
        and its task are one write, like an event's (see `enqueue_reconcile`).
        """
        if at.tzinfo is None:
            raise ValueError("schedule_reconcile needs an aware datetime; a naive one has no defined instant")
        timer_key = f"timer:{platform}:{ticket_id}:{at.astimezone(timezone.utc).isoformat()}"
        task = self._task.s(platform, ticket_id, timer_key=timer_key, eta=at)
        try:
            admitted = self.admission.admit(
                delivery_key=None, flag_key=timer_key, flag_value=self.huey.serializer.serialize(time.time()),
                is_stale=lambda raw: False, task_data=self.huey.serialize_task(task), priority=task.priority)
        except Exception as exc:
            raise self._unavailable("queue.schedule_failed", platform, ticket_id, exc) from exc
        if admitted != "queued":
            return "duplicate"
        log.info("reconcile.timer_scheduled", extra={"platform": platform, "ticket_id": ticket_id, "due": at.isoformat()})
        return "scheduled"

    def _admit(self, platform: str, ticket_id: str, *, delivery_key: str | None, due: float,
               task: Task) -> Admitted:
        """Claim the delivery (if any) and the ticket's pending flag and store `task`, in one write.

        The flag is stamped with when its task is due; a flag older than `pending_stale_after`
        belongs to a task lost some other way (a worker killed between dequeuing a task and
        starting it) and is taken over, so it cannot silence a ticket for longer than that.
        """

        def is_stale(raw: bytes) -> bool:
            held_since = self.huey.serializer.deserialize(raw)
            # Not a time: set by someone else (an operator's `huey.lock_task`); respect it.
            return isinstance(held_since, (int, float)) and held_since + self._pending_stale_after < time.time()

        admitted = self.admission.admit(
            delivery_key=delivery_key, flag_key=self._pending_key(platform, ticket_id),
            flag_value=self.huey.serializer.serialize(due), is_stale=is_stale,
            task_data=self.huey.serialize_task(task), priority=task.priority)
        if admitted == "queued":
            # The admission stores the task with its own SQL, not huey's `enqueue`, so the
            # idle SQLite workers are woken here, after the commit (connector.queue.wakeup).
            wake_workers(self.huey)
        return admitted

    def pending_count(self) -> int:
        """Reconciles ready to run and waiting for a worker (timers and delayed retries excluded)."""
        return int(self.huey.pending_count())

    def check_writable(self) -> None:
        """Write and delete a probe key; raise QueueUnavailable saying what failed."""
        probe = f"readiness-probe:{os.getpid()}:{threading.get_ident()}"
        try:
            self.huey.put(probe, time.time())
            self.huey.delete(probe)
        except Exception as exc:
            raise QueueUnavailable(f"{type(exc).__name__}: {exc}") from exc

    # -- consumer side (the huey task body) -------------------------------------------------

    def run_reconcile(
        self,
        platform: str,
        ticket_id: str,
        *,
        attempt: int = 0,
        holds_pending_flag: bool = False,
        timer_key: str | None = None,
    ) -> str:
        """Reconcile one ticket under its lock; return what happened (the RECONCILES outcome or
        "deferred" when another worker holds the ticket)."""
        fields = {"platform": platform, "ticket_id": ticket_id, "attempt": attempt}
        lock_key = self._locks.key(platform, ticket_id)
        if not self._locks.take(lock_key):
            # Keep the pending flag: it still means "a reconcile is waiting for this ticket",
            # which is this task, back in a moment.
            self._task.schedule(
                (platform, ticket_id),
                {"attempt": attempt, "holds_pending_flag": holds_pending_flag, "timer_key": timer_key},
                delay=self._locked_retry_delay.total_seconds(),
            )
            log.info("reconcile.deferred_locked", extra=fields)
            return "deferred"
        try:
            if holds_pending_flag:
                # Before the fetch: an event from now on must queue one more reconcile,
                # because this one may read the ticket before that change.
                self.huey.delete(self._pending_key(platform, ticket_id))
            if timer_key is not None:
                self.huey.delete(timer_key)
            try:
                if self.reconcile is None:
                    raise QueueConfigError("this queue has no reconciler: only a worker runs reconciles "
                                           "(connector.queue.worker binds one)")
                outcome = self.reconcile(platform, ticket_id)
            except Exception as exc:
                if not isinstance(exc, self.retry_policy.transient):
                    RECONCILES.labels(platform=platform, outcome="error").inc()
                    log.error("reconcile.failed", extra={**fields, "error": type(exc).__name__}, exc_info=True)
                    return "error"
                return self._retry_later(platform, ticket_id, attempt, exc)
            RECONCILES.labels(platform=platform, outcome=outcome).inc()
            log.info("reconcile.done", extra={**fields, "outcome": outcome})
            return outcome
        finally:
            self._locks.release(lock_key)

    def _retry_later(self, platform: str, ticket_id: str, attempt: int, exc: Exception) -> str:
        fields = {"platform": platform, "ticket_id": ticket_id, "attempt": attempt, "error": type(exc).__name__}
        if attempt + 1 >= self.retry_policy.max_attempts:
            RECONCILES.labels(platform=platform, outcome="error").inc()
            # The sweep re-reads recently updated tickets, so giving up here delays the
            # ticket by one sweep period instead of losing it.
            log.error("reconcile.gave_up", extra={**fields, "max_attempts": self.retry_policy.max_attempts})
            return "gave_up"
        delay = self.retry_policy.delay(attempt, getattr(exc, "retry_after", None))
        RECONCILES.labels(platform=platform, outcome="retry").inc()
        due = time.time() + delay.total_seconds()
        task = self._task.s(platform, ticket_id, attempt=attempt + 1, holds_pending_flag=True,
                            delay=delay.total_seconds())
        try:
            # Flag and task in one write (see `enqueue_reconcile`): a worker killed here
            # leaves both or neither, never a flag that silences the ticket's events.
            admitted = self._admit(platform, ticket_id, delivery_key=None, due=due, task=task)
        except Exception:
            log.error("reconcile.retry_not_stored", extra=fields, exc_info=True)
            return "error"
        if admitted != "queued":
            # A reconcile for this ticket is already waiting and will do the same work.
            log.info("reconcile.retry_collapsed", extra=fields)
            return "retry"
        log.warning("reconcile.retry_scheduled", extra={**fields, "delay_seconds": delay.total_seconds()})
        return "retry"

    # -- flags and locks ----------------------------------------------------------------------

    @staticmethod
    def _pending_key(platform: str, ticket_id: str) -> str:
        return f"pending:reconcile:{platform}:{ticket_id}"

    @staticmethod
    def _unavailable(event: str, platform: str, ticket_id: str, exc: Exception) -> QueueUnavailable:
        log.error(event, extra={"platform": platform, "ticket_id": ticket_id, "error": type(exc).__name__})
        return QueueUnavailable(f"queue storage failed: {type(exc).__name__}")
