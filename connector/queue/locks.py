"""Who holds a per-ticket lock, and whether that holder is still alive.

One reconcile per ticket at a time: a per-ticket lock in the queue's storage; a task that
finds the lock taken comes back a moment later instead of failing, so two workers never
write to one ticket concurrently. A lock carries a timestamp and names its holder (a
`Holder`): a worker process that heartbeats into the queue's storage (`Liveness`), so a
lock whose holder was killed (`kill -9`, a lost machine) is taken over as soon as the
holder is known to be dead – at once on the same host, within the heartbeat timeout
elsewhere – instead of after the 15-minute age limit. Takeovers are compare-and-swap
operations in the backend (`connector.queue.storage`), so two workers racing for one dead
holder's lock cannot both win. The sweep's lease (`connector.sync.state`) uses the same
holders and heartbeats.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from huey import Huey

from connector.queue.storage import compare_and_swap, raw_value

log = logging.getLogger("connector.queue")

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



class TicketLocks:
    """Per-ticket locks stamped with this process as their holder (see the module docstring)."""

    def __init__(self, huey: Huey, liveness: Liveness, stale_after: timedelta):
        self._huey = huey
        self._liveness = liveness
        self._stale_after = stale_after.total_seconds()

    def key(self, platform: str, ticket_id: str) -> str:
        # huey's own lock-key format, so `huey.is_locked("reconcile:jira:10000")` and
        # `huey.flush_locks(...)` work on these locks for an operator.
        return f"{self._huey.name}.lock.reconcile:{platform}:{ticket_id}"

    def take(self, key: str) -> bool:
        """Take a per-ticket lock, stamped with this process as its holder.

        A held lock is taken over when it is older than `stale_after`, or at once when
        its holder is dead (`Liveness.is_dead`): a worker killed mid-reconcile leaves its
        lock behind, and the ticket must not wait 15 minutes for that.
        """
        mine = (time.time(), self._liveness.holder())
        if self._huey.put_if_empty(key, mine):
            return True
        raw = raw_value(self._huey, key)
        if raw is None:
            return self._huey.put_if_empty(key, mine)
        held = self._huey.serializer.deserialize(raw)
        if isinstance(held, (int, float)):  # a lock written before holders were recorded
            held = (held, None)
        if not (isinstance(held, tuple) and len(held) == 2 and isinstance(held[0], (int, float))):
            return False  # an operator's `huey.lock_task`: respect it, no age known
        held_since, holder = held
        age = time.time() - held_since
        dead = isinstance(holder, Holder) and self._liveness.is_dead(holder)
        if (dead or age > self._stale_after) and compare_and_swap(self._huey, key, raw, mine):
            log.warning("queue.stale_lock_taken_over", extra={
                "key": key, "age_seconds": round(age), "holder_dead": dead,
                "holder_pid": holder.pid if isinstance(holder, Holder) else None})
            return True
        return False

    def release(self, key: str) -> None:
        """Delete the lock only while it is still ours: after a takeover it belongs to another."""
        held = self._huey.get(key, peek=True)
        if isinstance(held, tuple) and len(held) == 2 and getattr(held[1], "owner", None) == self._liveness.holder().owner:
            self._huey.delete(key)
        else:
            log.warning("queue.lock_lost", extra={"key": key})

