"""SLA timers: a durable index of each ticket's next deadline, and the pump that fires them.

Why not huey's own `eta` timers: they run on the host's real time, so a test, the demo or a
benchmark cannot move time forward, and a busy ticket re-armed by every event collects one
queued task per event. Instead every reconcile *replaces* one row per ticket – (platform,
ticket id, due instant) – in the queue's own backend, and deletes the due instant when the
plan has no next deadline. A pump asks the index, every few seconds, for rows due at
`clock.now()` and queues a reconcile for each through `ReconcileQueue.enqueue_reconcile`,
so burst collapsing and the per-ticket lock apply to timers exactly as to webhooks.

- A stale row is harmless: the reconcile it triggers recomputes everything from the fresh
  ticket and writes the new next deadline (or none).
- Claiming is atomic (one UPDATE … RETURNING in SQLite, ZREM's return value in Redis), so
  two pumps – one per worker process – never both queue the same timer.
- A claimed row keeps `seen`, the ticket's `updated` stamp at its last reconcile. The sweep
  compares it with what a search reports to skip tickets nothing happened to since (this is
  what makes a Zendesk recent-updates sweep cheap: its export holds no status history, so
  every ticket it cannot skip costs a fetch).
- The clock is injected: the worker passes real time; tests and the bench pass the sandbox
  clock and call `pump()` themselves.

Storage follows the queue: a table in the SQLite file (`<data_dir>/queue.db`), or a sorted
set plus a hash in Redis when `CONNECTOR_QUEUE_URL=redis://…`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Protocol

from huey import Huey
from huey.storage import RedisStorage, SqliteStorage

if TYPE_CHECKING:
    from connector.queue import ReconcileQueue

log = logging.getLogger(__name__)

DEFAULT_PUMP_INTERVAL = timedelta(seconds=10)
# Rows claimed per storage round trip; a backlog (after an outage) drains over several.
CLAIM_BATCH = 500


@dataclass(frozen=True)
class DueTimer:
    platform: str
    ticket_id: str
    due: datetime


@dataclass(frozen=True)
class DeadlineEntry:
    """What the index knows about one ticket: its armed deadline (None: no timer) and the
    ticket's `updated` stamp when it was last reconciled."""

    due: datetime | None
    seen: datetime | None


class DeadlineIndex(Protocol):
    def record(self, platform: str, ticket_id: str, due: datetime | None, seen: datetime | None) -> None:
        """Replace the ticket's row: arm `due` (None disarms) and remember `seen`."""
        ...

    def claim_due(self, now: datetime, limit: int = CLAIM_BATCH) -> list[DueTimer]:
        """Disarm and return timers due at `now`, earliest first; each is returned to one caller only."""
        ...

    def rearm(self, timer: DueTimer) -> None:
        """Put a claimed timer back unless a reconcile armed a new one meanwhile."""
        ...

    def entry(self, platform: str, ticket_id: str) -> DeadlineEntry | None: ...

    def seen_stamps(self, platform: str, ticket_ids: Iterable[str]) -> dict[str, datetime]: ...

    def armed(self, platform: str | None = None) -> list[DueTimer]:
        """Every armed timer, earliest first (tests, `connector sync` summaries)."""
        ...

    def clear(self) -> None: ...


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise ValueError("deadlines need aware datetimes; a naive one has no defined instant")
    return moment.timestamp()


def _instant(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def _stamp(seen: datetime | None) -> str | None:
    return None if seen is None else seen.astimezone(timezone.utc).isoformat()


def _unstamp(text: str | bytes | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.decode() if isinstance(text, bytes) else text)


class SqliteDeadlineIndex:
    """The index as a table in the queue's SQLite file (one host, no extra service)."""

    def __init__(self, storage: SqliteStorage):
        self._storage = storage
        self._queue = storage.name
        storage.sql(
            "create table if not exists connector_deadline ("
            "queue text not null, platform text not null, ticket_id text not null, "
            "due real, fired real, seen text, primary key (queue, platform, ticket_id))",
            commit=True,
        )
        storage.sql("create index if not exists connector_deadline_due on connector_deadline (queue, due)", commit=True)

    def record(self, platform: str, ticket_id: str, due: datetime | None, seen: datetime | None) -> None:
        self._storage.sql(
            "insert into connector_deadline (queue, platform, ticket_id, due, seen) values (?, ?, ?, ?, ?) "
            "on conflict (queue, platform, ticket_id) do update set due = excluded.due, "
            "seen = coalesce(excluded.seen, connector_deadline.seen)",
            (self._queue, platform, ticket_id, None if due is None else _epoch(due), _stamp(seen)),
            commit=True,
        )

    def claim_due(self, now: datetime, limit: int = CLAIM_BATCH) -> list[DueTimer]:
        # One statement: SQLite runs it under the database's write lock, so a second pump
        # (another process) sees these rows already disarmed. RETURNING shows values after
        # the update, so the instant being fired is copied to `fired` on the way.
        with self._storage.db(commit=True) as cursor:
            cursor.execute(
                "update connector_deadline set fired = due, due = null where rowid in ("
                " select rowid from connector_deadline where queue = ? and due is not null and due <= ?"
                " order by due limit ?) "
                "and due is not null returning platform, ticket_id, fired",
                (self._queue, _epoch(now), limit),
            )
            rows = cursor.fetchall()
        return sorted((DueTimer(p, t, _instant(d)) for p, t, d in rows), key=lambda timer: timer.due)

    def rearm(self, timer: DueTimer) -> None:
        self._storage.sql(
            "update connector_deadline set due = ? where queue = ? and platform = ? and ticket_id = ? and due is null",
            (_epoch(timer.due), self._queue, timer.platform, timer.ticket_id),
            commit=True,
        )

    def entry(self, platform: str, ticket_id: str) -> DeadlineEntry | None:
        rows = self._storage.sql(
            "select due, seen from connector_deadline where queue = ? and platform = ? and ticket_id = ?",
            (self._queue, platform, ticket_id),
            results=True,
        )
        if not rows:
            return None
        due, seen = rows[0]
        return DeadlineEntry(None if due is None else _instant(due), _unstamp(seen))

    def seen_stamps(self, platform: str, ticket_ids: Iterable[str]) -> dict[str, datetime]:
        ids = list(ticket_ids)
        found: dict[str, datetime] = {}
        for start in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._storage.sql(
                f"select ticket_id, seen from connector_deadline where queue = ? and platform = ? "
                f"and seen is not null and ticket_id in ({marks})",
                (self._queue, platform, *chunk),
                results=True,
            )
            found.update({ticket_id: _unstamp(seen) for ticket_id, seen in rows})  # type: ignore[misc]
        return found

    def armed(self, platform: str | None = None) -> list[DueTimer]:
        rows = self._storage.sql(
            "select platform, ticket_id, due from connector_deadline where queue = ? and due is not null "
            "and (? is null or platform = ?) order by due",
            (self._queue, platform, platform),
            results=True,
        )
        return [DueTimer(p, t, _instant(d)) for p, t, d in rows]

    def clear(self) -> None:
        self._storage.sql("delete from connector_deadline where queue = ?", (self._queue,), commit=True)


class RedisDeadlineIndex:
    """The index in Redis: a sorted set of armed timers (score = due epoch) and a hash of stamps."""

    def __init__(self, storage: RedisStorage):
        self._conn = storage.conn
        self._due_key = f"connector.{storage.name}.deadline.due"
        self._seen_key = f"connector.{storage.name}.deadline.seen"

    @staticmethod
    def _member(platform: str, ticket_id: str) -> str:
        return f"{platform}:{ticket_id}"

    @staticmethod
    def _split(member: bytes | str) -> tuple[str, str]:
        text = member.decode() if isinstance(member, bytes) else member
        platform, _, ticket_id = text.partition(":")
        return platform, ticket_id

    def record(self, platform: str, ticket_id: str, due: datetime | None, seen: datetime | None) -> None:
        member = self._member(platform, ticket_id)
        pipe = self._conn.pipeline(transaction=True)
        if due is None:
            pipe.zrem(self._due_key, member)
        else:
            pipe.zadd(self._due_key, {member: _epoch(due)})
        if seen is not None:
            pipe.hset(self._seen_key, member, _stamp(seen))
        pipe.execute()

    def claim_due(self, now: datetime, limit: int = CLAIM_BATCH) -> list[DueTimer]:
        candidates = self._conn.zrangebyscore(self._due_key, "-inf", _epoch(now), start=0, num=limit, withscores=True)
        claimed = []
        for member, score in candidates:
            # ZREM answers 1 to exactly one caller: that pump owns the timer.
            if self._conn.zrem(self._due_key, member):
                platform, ticket_id = self._split(member)
                claimed.append(DueTimer(platform, ticket_id, _instant(score)))
        return claimed

    def rearm(self, timer: DueTimer) -> None:
        self._conn.zadd(self._due_key, {self._member(timer.platform, timer.ticket_id): _epoch(timer.due)}, nx=True)

    def entry(self, platform: str, ticket_id: str) -> DeadlineEntry | None:
        member = self._member(platform, ticket_id)
        due = self._conn.zscore(self._due_key, member)
        seen = self._conn.hget(self._seen_key, member)
        if due is None and seen is None:
            return None
        return DeadlineEntry(None if due is None else _instant(due), _unstamp(seen))

    def seen_stamps(self, platform: str, ticket_ids: Iterable[str]) -> dict[str, datetime]:
        ids = list(ticket_ids)
        if not ids:
            return {}
        values = self._conn.hmget(self._seen_key, [self._member(platform, t) for t in ids])
        return {t: _unstamp(v) for t, v in zip(ids, values) if v is not None}  # type: ignore[misc]

    def armed(self, platform: str | None = None) -> list[DueTimer]:
        timers = [DueTimer(*self._split(m), _instant(s)) for m, s in self._conn.zrange(self._due_key, 0, -1, withscores=True)]
        return [t for t in timers if platform is None or t.platform == platform]

    def clear(self) -> None:
        self._conn.delete(self._due_key, self._seen_key)


def deadline_index(huey: Huey) -> DeadlineIndex:
    """The index living in the same backend as `huey`'s queue."""
    if isinstance(huey.storage, SqliteStorage):
        return SqliteDeadlineIndex(huey.storage)
    if isinstance(huey.storage, RedisStorage):
        return RedisDeadlineIndex(huey.storage)
    raise TypeError(f"the deadline index needs SQLite or Redis storage, not {type(huey.storage).__name__}")


class DeadlinePump:
    """Turns due timers into queued reconciles; `pump()` is one pass, safe to call from anywhere."""

    def __init__(self, queue: "ReconcileQueue", clock: Callable[[], datetime], index: DeadlineIndex | None = None):
        self.queue = queue
        self.index = index or queue.deadlines
        self.clock = clock

    def pump(self) -> int:
        """Queue a reconcile for every timer due now; return how many were queued or collapsed.

        When the queue cannot store a task the claimed timer is put back, so it fires on the
        next pass instead of being lost.
        """
        from connector.queue import QueueUnavailable

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
