"""The durable queue between the webhook receiver and the reconciler.

An event is only a hint that a ticket changed, so the queue carries *which ticket to look
at*, never what the event said: the worker re-reads the ticket anyway. That is what makes
the three tricks in this module safe:

- **Burst collapsing.** Jira sends several webhooks for one edit (issue_updated plus
  comment_created, a retry or two). A per-ticket "pending" flag in huey's key/value storage
  is set when a reconcile is queued and cleared by the task *before* it fetches the ticket,
  so any number of events for one ticket cost one reconcile, and an event that arrives while
  a reconcile is running queues exactly one more (which will see the newer state).
- **Delivery dedupe.** A platform redelivers the same event (same delivery id) when it did
  not see our answer in time; the ids seen in the last hour are remembered in the queue's
  own storage, so every receiver process and every replica shares them.
- **One write per accepted event.** The delivery claim, the pending flag and the task are
  stored together in one SQLite transaction / one Redis script (`connector.admission`), so
  a receiver killed at any instant leaves all of them or none: the platform's retry of an
  unanswered delivery is queued, never answered "duplicate" over a task that does not exist.
- **One reconcile per ticket at a time.** A per-ticket lock in the same storage; a task that
  finds the lock taken comes back a moment later instead of failing, so two workers never
  write to one ticket concurrently.

Transient platform failures (429 with Retry-After, 5xx, timeouts) reschedule the task no
earlier than the platform asked, a bounded number of times; after that the periodic sweep
picks the ticket up again. Flags and locks carry a timestamp and are taken over when stale,
so a worker killed mid-task cannot silence a ticket forever. A lock also names its holder
(see `Liveness`): a worker process that heartbeats into the queue's storage, so a lock
whose holder was killed (`kill -9`, a lost machine) is taken over as soon as the holder is
known to be dead – at once on the same host, within the heartbeat timeout elsewhere –
instead of after the 15-minute age limit. Takeovers are compare-and-swap operations in the
backend, so two workers racing for one dead holder's lock cannot both win.

SLA timers do not use huey's `eta` scheduling: they live in a deadline index in the same
storage (`ReconcileQueue.deadlines`, see `connector.sync.deadlines`), fired by a pump that
`run_worker` runs next to the consumer together with the periodic sweeps, so tests can
move a clock instead of waiting. `schedule_reconcile` remains for one-off delayed runs.

Storage: SQLite file `<data_dir>/queue.db` by default (one host, no extra service), Redis
when `CONNECTOR_QUEUE_URL=redis://…` (several hosts).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from datetime import datetime, timedelta, timezone
from typing import Literal, Mapping
from urllib.parse import urlsplit

from huey import Huey, SqliteHuey
from huey.api import Task
from huey.consumer import Consumer
from huey.storage import RedisStorage, SqliteStorage

from connector.admission import Admitted, admission_store
from connector.metrics import RECONCILES
from connector.settings import Settings
from connector.wakeup import FALLBACK_POLL_SECONDS, WakeupListener, WakeupSqliteStorage

log = logging.getLogger(__name__)

QUEUE_NAME = "connector"
QUEUE_FILE = "queue.db"
REDIS_SCHEMES = ("redis", "rediss", "unix")

REDIS_READ_TIMEOUT = 1  # seconds a worker's blocking pop waits before it looks at its stop flag

EnqueueResult = Literal["queued", "duplicate"]
ScheduleResult = Literal["scheduled", "duplicate"]


class QueueUnavailable(Exception):
    """The queue's storage could not record the request; the caller must not report success."""


class QueueConfigError(Exception):
    """CONNECTOR_QUEUE_URL names a backend that cannot be used; the message says how to fix it."""


def reconcile_ticket(platform: str, ticket_id: str) -> str:
    """Run one reconcile and return its outcome label (applied, noop, not_found, …).

    A module-level indirection so the receiver never imports the reconciler and the platform
    clients, and so tests can substitute the reconciler without a platform behind it.
    """
    from connector.reconcile import reconcile_ticket as reconcile

    return reconcile(platform, ticket_id)


def _transient_error_types() -> tuple[type[BaseException], ...]:
    from connector.platforms.base import Conflict, HostError, RateLimited, Timeout

    # Conflict: reconcile() already re-read and re-planned a few times at once; a ticket that
    # keeps changing under us is tried again later rather than dropped until the next sweep.
    return (RateLimited, HostError, Timeout, Conflict)


# --- storage ----------------------------------------------------------------------------------


def create_huey(settings: Settings) -> Huey:
    """The huey instance the settings ask for; raise QueueConfigError when it cannot be built."""
    if not settings.queue_url:
        data_dir = settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        # results=False: nobody waits on a reconcile's return value, and stored results
        # would only grow the key/value table the flags and locks live in.
        # WakeupSqliteStorage: storing a task wakes the idle workers (connector.wakeup).
        return SqliteHuey(QUEUE_NAME, filename=str(data_dir / QUEUE_FILE), results=False,
                          storage_class=WakeupSqliteStorage)
    scheme = urlsplit(settings.queue_url).scheme
    if scheme not in REDIS_SCHEMES:
        # Only the scheme is echoed: the URL may carry a password.
        raise QueueConfigError(
            f"CONNECTOR_QUEUE_URL has the unsupported scheme {scheme!r}; "
            "use redis://host:6379/0 (or rediss://), or leave it unset for the SQLite file in CONNECTOR_DATA_DIR"
        )
    try:
        import redis  # noqa: F401  (huey's Redis storage needs it; say so before huey does)
    except ImportError:
        raise QueueConfigError(
            "CONNECTOR_QUEUE_URL points at Redis but the 'redis' package is not installed; "
            "run `pip install redis` (or unset CONNECTOR_QUEUE_URL to use the SQLite file)"
        ) from None
    from huey import PriorityRedisHuey

    # A worker waits for a task with a blocking pop (BZPOPMIN on the priority queue,
    # huey/storage.py `RedisPriorityQueue.dequeue`; https://redis.io/commands/bzpopmin/):
    # Redis answers the moment a task is pushed, so an idle worker picks it up at once and
    # costs one round trip per `read_timeout` while idle. huey's default, made explicit so
    # that no upgrade turns it into polling with backoff. A `socket_timeout` in the URL must
    # stay above REDIS_READ_TIMEOUT or every idle pop ends in a timeout error.
    return PriorityRedisHuey(QUEUE_NAME, url=settings.queue_url, results=False,
                             blocking=True, read_timeout=REDIS_READ_TIMEOUT)


# --- compare-and-swap on huey's key/value storage --------------------------------------------

_REDIS_CAS = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
"""


def compare_and_swap(huey: Huey, key: str, expected_raw: bytes, value: object) -> bool:
    """Replace `key`'s value with `value` only if it still holds `expected_raw` (as stored).

    huey's storage API offers `put_if_empty` but no conditional replace, and taking over a
    stale lock needs one: with read-then-put, two workers that both saw the dead holder
    would both "win" and reconcile one ticket at once. Both backends can do it atomically.
    """
    new_raw = huey.serializer.serialize(value)
    storage = huey.storage
    if isinstance(storage, RedisStorage):
        return bool(storage.conn.eval(_REDIS_CAS, 1, storage.result_key, key, bytes(expected_raw), new_raw))
    if isinstance(storage, SqliteStorage):
        with storage.db(commit=True) as cursor:
            cursor.execute("update kv set value = ? where queue = ? and key = ? and value = ?",
                           (new_raw, storage.name, key, bytes(expected_raw)))
            return cursor.rowcount == 1
    raise QueueConfigError(f"the reconcile queue needs SQLite or Redis storage, not {type(storage).__name__}")


def raw_value(huey: Huey, key: str) -> bytes | None:
    from huey.constants import EmptyData

    raw = huey.storage.peek_data(key)
    return None if raw is EmptyData else bytes(raw)


# --- who holds a lock, and is it still alive ----------------------------------------------------

HEARTBEAT_INTERVAL = timedelta(seconds=5)
HEARTBEAT_TIMEOUT = timedelta(seconds=30)  # six missed beats: a paused VM is not yet dead


def _process_scope() -> str | None:
    """Kernel boot id + pid namespace: two processes with the same scope see the same pids.

    Only then may one process decide another is dead by its pid; two containers on one host
    share the boot id but not the pid namespace, and two hosts share neither.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pid_namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{pid_namespace}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@dataclass(frozen=True)
class Holder:
    """Who took a lock or lease: stored with it so others can tell whether it is still alive."""

    owner: str  # a random id per process, the key of its heartbeat
    scope: str | None
    pid: int
    beats: bool  # whether this process keeps a heartbeat; without one only the age rule applies


class Liveness:
    """This process's identity in the queue's storage, its heartbeat, and the dead-holder test.

    A worker process calls `start()`; a thread then writes `time.time()` under its heartbeat
    key every `interval`, and `stop()` deletes the key. A holder is dead when it ran in this
    process scope and its pid no longer exists (exact, immediate), or when it keeps a
    heartbeat and the heartbeat is older than `timeout` or gone (another machine).
    """

    def __init__(self, huey: Huey, *, interval: timedelta = HEARTBEAT_INTERVAL,
                 timeout: timedelta = HEARTBEAT_TIMEOUT):
        if timeout <= interval:
            raise ValueError("the heartbeat timeout must be longer than its interval")
        self._huey = huey
        self._interval = interval.total_seconds()
        self._timeout = timeout.total_seconds()
        self._scope = _process_scope()
        self._owner_pid: int | None = None
        self._owner = ""
        self._beating = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _key(self, owner: str) -> str:
        return f"worker:heartbeat:{owner}"

    def holder(self) -> Holder:
        """This process as a holder; a forked child gets an identity of its own."""
        if self._owner_pid != os.getpid():
            self._owner_pid = os.getpid()
            self._owner = uuid.uuid4().hex
            self._beating = False
        return Holder(self._owner, self._scope, os.getpid(), self._beating)

    def beat(self) -> None:
        self._huey.put(self._key(self.holder().owner), time.time())

    def start(self) -> "Liveness":
        self.holder()
        self.beat()  # before any lock is taken with beats=True
        self._beating = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="connector-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._interval + 1)
            self._thread = None
        if self._beating:
            self._beating = False
            try:
                self._huey.delete(self._key(self._owner))
            except Exception:
                log.warning("worker.heartbeat_not_removed", extra={"owner": self._owner})

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.beat()
            except Exception as exc:
                # The storage is down; so is everything this worker could do. Keep trying.
                log.warning("worker.heartbeat_failed", extra={"error": type(exc).__name__})

    def is_dead(self, holder: Holder) -> bool:
        if holder.owner == self.holder().owner:
            return False
        if holder.scope is not None and holder.scope == self._scope and not _pid_alive(holder.pid):
            return True
        if not holder.beats:
            return False
        last = self._huey.get(self._key(holder.owner), peek=True)
        return not isinstance(last, (int, float)) or last + self._timeout < time.time()


# --- the queue --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a reconcile that met a transient platform error is retried."""

    max_attempts: int = 5
    first_delay: timedelta = timedelta(seconds=5)
    max_backoff: timedelta = timedelta(minutes=15)

    def delay(self, attempt: int, retry_after: float | None) -> timedelta:
        """Exponential backoff, but never sooner than the platform's Retry-After."""
        backoff = min(self.first_delay * (2**attempt), self.max_backoff)
        return max(backoff, timedelta(seconds=retry_after or 0))


class ReconcileQueue:
    """Queue reconciles of tickets, collapse bursts, dedupe deliveries and run one ticket at a time."""

    def __init__(
        self,
        huey: Huey,
        *,
        delivery_ttl: timedelta = timedelta(hours=1),
        pending_stale_after: timedelta = timedelta(minutes=10),
        lock_stale_after: timedelta = timedelta(minutes=15),
        locked_retry_delay: timedelta = timedelta(seconds=2),
        retry_policy: RetryPolicy = RetryPolicy(),
    ):
        self.huey = huey
        try:
            # The one write that accepts an event or arms a retry/timer (connector.admission);
            # tests make the storage fail here.
            self.admission = admission_store(huey, delivery_ttl)
        except TypeError as exc:
            raise QueueConfigError(str(exc)) from None
        self._pending_stale_after = pending_stale_after.total_seconds()
        self._lock_stale_after = lock_stale_after.total_seconds()
        self._locked_retry_delay = locked_retry_delay
        self.retry_policy = retry_policy
        self.liveness = Liveness(huey)

        def reconcile_task(
            platform: str,
            ticket_id: str,
            attempt: int = 0,
            holds_pending_flag: bool = False,
            timer_key: str | None = None,
        ) -> str:
            return self.run_reconcile(
                platform, ticket_id, attempt=attempt, holds_pending_flag=holds_pending_flag, timer_key=timer_key
            )

        # The registered name is what a serialized task refers to, so the receiver and the
        # worker (separate processes, separate ReconcileQueue objects) must agree on it.
        self._task = huey.task(name="reconcile_ticket")(reconcile_task)
        # Team-chat delivery (connector.channels): its own task, registered with every queue.
        from connector.channels.delivery import ChatDelivery

        self.chat = ChatDelivery(huey)
        self._deadlines = None
        self._deadlines_lock = threading.Lock()
        self._observations = None
        self._problem_numbers = None

    @property
    def problem_numbers(self):
        """Problem-number sequences and each ticket's claimed number in this queue's backend
        (see `connector.problem_numbers`)."""
        with self._deadlines_lock:
            if self._problem_numbers is None:
                from connector.problem_numbers import problem_numbers

                self._problem_numbers = problem_numbers(self.huey)
            return self._problem_numbers

    @property
    def deadlines(self):
        """The SLA deadline index in this queue's backend (see `connector.sync.deadlines`)."""
        with self._deadlines_lock:
            if self._deadlines is None:
                from connector.sync.deadlines import deadline_index

                self._deadlines = deadline_index(self.huey)
            return self._deadlines

    @property
    def observations(self):
        """Observed actions (observe mode, rules in `mode: observe`) in this queue's backend
        (see `connector.observe.store`)."""
        with self._deadlines_lock:
            if self._observations is None:
                from connector.observe.store import observed_store

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
        `connector.admission`): a process killed at any point leaves all three or none, so
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
            # idle SQLite workers are woken here, after the commit (connector.wakeup).
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
        lock_key = self._lock_key(platform, ticket_id)
        if not self._take_lock(lock_key):
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
                outcome = reconcile_ticket(platform, ticket_id)
            except Exception as exc:
                if not isinstance(exc, _transient_error_types()):
                    RECONCILES.labels(platform=platform, outcome="error").inc()
                    log.error("reconcile.failed", extra={**fields, "error": type(exc).__name__}, exc_info=True)
                    return "error"
                return self._retry_later(platform, ticket_id, attempt, exc)
            RECONCILES.labels(platform=platform, outcome=outcome).inc()
            log.info("reconcile.done", extra={**fields, "outcome": outcome})
            return outcome
        finally:
            self._release_lock(lock_key)

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

    def _lock_key(self, platform: str, ticket_id: str) -> str:
        # huey's own lock-key format, so `huey.is_locked("reconcile:jira:10000")` and
        # `huey.flush_locks(...)` work on these locks for an operator.
        return f"{self.huey.name}.lock.reconcile:{platform}:{ticket_id}"

    def _take_lock(self, key: str) -> bool:
        """Take a per-ticket lock, stamped with this process as its holder.

        A held lock is taken over when it is older than `lock_stale_after`, or at once when
        its holder is dead (`Liveness.is_dead`): a worker killed mid-reconcile leaves its
        lock behind, and the ticket must not wait 15 minutes for that.
        """
        mine = (time.time(), self.liveness.holder())
        if self.huey.put_if_empty(key, mine):
            return True
        raw = raw_value(self.huey, key)
        if raw is None:
            return self.huey.put_if_empty(key, mine)
        held = self.huey.serializer.deserialize(raw)
        if isinstance(held, (int, float)):  # a lock written before holders were recorded
            held = (held, None)
        if not (isinstance(held, tuple) and len(held) == 2 and isinstance(held[0], (int, float))):
            return False  # an operator's `huey.lock_task`: respect it, no age known
        held_since, holder = held
        age = time.time() - held_since
        dead = isinstance(holder, Holder) and self.liveness.is_dead(holder)
        if (dead or age > self._lock_stale_after) and compare_and_swap(self.huey, key, raw, mine):
            log.warning("queue.stale_lock_taken_over", extra={
                "key": key, "age_seconds": round(age), "holder_dead": dead,
                "holder_pid": holder.pid if isinstance(holder, Holder) else None})
            return True
        return False

    def _release_lock(self, key: str) -> None:
        """Delete the lock only while it is still ours: after a takeover it belongs to another."""
        held = self.huey.get(key, peek=True)
        if isinstance(held, tuple) and len(held) == 2 and getattr(held[1], "owner", None) == self.liveness.holder().owner:
            self.huey.delete(key)
        else:
            log.warning("queue.lock_lost", extra={"key": key})

    @staticmethod
    def _unavailable(event: str, platform: str, ticket_id: str, exc: Exception) -> QueueUnavailable:
        log.error(event, extra={"platform": platform, "ticket_id": ticket_id, "error": type(exc).__name__})
        return QueueUnavailable(f"queue storage failed: {type(exc).__name__}")


# --- running workers --------------------------------------------------------------------------

WORKER_SHUTDOWN_TIMEOUT = 25  # seconds; below the usual 30 s a supervisor waits before SIGKILL

WORKER_WAIT_ENV = "CONNECTOR_WORKER_WAIT"
WORKER_WAIT_MODES = ("wakeup", "poll", "huey")
POLL_INTERVAL = 0.05  # seconds between polls in the "poll" mode


def worker_wait_mode(environ: Mapping[str, str] | None = None) -> str:
    """How an idle worker waits for the next task (`CONNECTOR_WORKER_WAIT`).

    - "wakeup" (default): Redis – a blocking pop; SQLite – the receiver wakes the worker
      through a FIFO (`connector.wakeup`), with a fallback poll once a second.
    - "poll": SQLite polled every POLL_INTERVAL without backoff (costs idle CPU; measured
      by bench/latency.py, kept for comparison and for file systems without FIFOs).
    - "huey": huey's stock consumer (poll after 0.1 s, backing off ×1.15 to 10 s), the
      behaviour before the wake-up; for the baseline of bench/latency.py.
    """
    env = os.environ if environ is None else environ
    mode = (env.get(WORKER_WAIT_ENV) or "wakeup").strip().lower()
    if mode not in WORKER_WAIT_MODES:
        raise QueueConfigError(f"{WORKER_WAIT_ENV}={mode!r} is not one of {', '.join(WORKER_WAIT_MODES)}; "
                               "leave it unset for the default (wakeup)")
    return mode


def wake_workers(huey: Huey) -> int:
    """Wake the idle workers of a SQLite queue now; for code that stores a task without
    huey's `enqueue` (which does this by itself). Redis wakes its blocked pops by itself."""
    storage = huey.storage
    return storage.notify() if isinstance(storage, WakeupSqliteStorage) else 0


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
    """A thread consumer whose idle wait follows `mode` (see `worker_wait_mode`).

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


def run_worker(settings: Settings, workers: int = 2, *, queue: ReconcileQueue | None = None,
               sync: bool = True) -> None:
    """Run the huey consumer in this process until SIGTERM (finish running tasks) or SIGINT (stop now).

    With `sync` (the default) the process also runs the SLA deadline pump (a thread, every
    few seconds) and the periodic sweeps (a huey periodic task, every minute); see
    `connector.sync.scheduler`. Pass `queue` to run a queue built elsewhere.

    An idle worker waits for the next task without polling (`worker_wait_mode`): a
    blocking pop on Redis, a wake-up from whoever stored the task on SQLite.

    The config is hot-reloaded (`connector.reload`): on SIGHUP and when its files change.
    huey's consumer would answer SIGHUP by re-executing the process, which with a broken
    new config would end in a worker that refuses to start; that action is taken away from
    it, so a broken config is rejected and the last good one keeps running.
    """
    import signal

    from connector.reconcile import apply_config
    from connector.reload import ConfigWatcher, poll_interval_from_env

    mode = worker_wait_mode()
    queue = queue or ReconcileQueue.from_settings(settings)
    watcher = ConfigWatcher(settings.config_path, on_change=apply_config)
    if watcher.check(force=True) == "rejected":
        raise QueueConfigError(f"the config at {settings.config_path} does not load; "
                               f"run `connector check-config {settings.config_path}`")
    service = None
    if sync:
        from connector.reconcile import get_runtime
        from connector.sync.scheduler import SyncIntervals, SyncService, configured_platforms

        service = SyncService(queue, get_runtime, configured_platforms(settings), SyncIntervals.from_env())
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
    watcher.start(poll_interval_from_env())
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

    Idle threads wait as `wait` says (see `worker_wait_mode`); `poll_interval` is the first
    poll delay, and the fallback poll of the wake-up is max(poll_interval, 0.5) s.
    """

    def __init__(self, queue: ReconcileQueue, workers: int = 2, *, poll_interval: float = 0.05,
                 wait: str = "wakeup"):
        if wait not in WORKER_WAIT_MODES:
            raise ValueError(f"wait must be one of {WORKER_WAIT_MODES}, not {wait!r}")
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
