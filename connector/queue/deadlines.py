"""SLA timers: a durable index of each ticket's next deadline, in the queue's backend.

Why not huey's own `eta` timers: they run on the host's real time, so a test, the demo or a
benchmark cannot move time forward, and a busy ticket re-armed by every event collects one
queued task per event. Instead every reconcile *replaces* one row per ticket – (platform,
ticket id, due instant) – in the queue's own backend, and deletes the due instant when the
plan has no next deadline. A pump (`connector.sync.pump`) asks the index, every few
seconds, for rows due at `clock.now()` and queues a reconcile for each through
`ReconcileQueue.enqueue_reconcile`, so burst collapsing and the per-ticket lock apply to
timers exactly as to webhooks. The index is part of the queue package because it is a
store of the queue's backend, opened by `ReconcileQueue.deadlines` and written by every
reconcile; the pump that reads it is part of `connector.sync`.

- A stale row is harmless: the reconcile it triggers recomputes everything from the fresh
  ticket and writes the new next deadline (or none).
- Claiming is atomic (one UPDATE … RETURNING in SQLite, ZREM's return value in Redis), so
  two pumps – one per worker process – never both queue the same timer.
- A claimed row keeps `seen`, the ticket's `updated` stamp at its last reconcile, and – when
  that reconcile left nothing to write – the *settlement*: the stamp, the plan's next deadline
  (`next`, kept when the pump claims the timer) and the fingerprint of the config it was
  evaluated under. The rules are a pure function of ticket, instant and config, and the plan
  changes with time only at its next deadline, so while a ticket still shows that stamp, the
  config is the same and `now` is before `next`, evaluating it again must give the same empty
  plan: the sweep skips it without parsing or evaluating (a Jira search result) or without
  queueing a fetch (a Zendesk listing, which holds no status history), and a reconcile stops
  after the ticket read (Zendesk's audits are not read). A hot reload changes the fingerprint,
  so every ticket is evaluated again under the new config.
- The clock is injected: the worker passes real time; tests and the bench pass the sandbox
  clock and call `pump()` themselves.

Storage follows the queue: a table in the SQLite file (`<data_dir>/queue.db`), or a sorted
set plus a hash in Redis when `CONNECTOR_QUEUE_URL=redis://…`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from huey import Huey
from huey.storage import RedisStorage, SqliteStorage

from connector.queue.storage import backend_store

log = logging.getLogger("connector.sync.deadlines")  # the timers' log name, kept across the move

# Rows claimed per storage round trip; a backlog (after an outage) drains over several.
CLAIM_BATCH = 500


@dataclass(frozen=True)
class DueTimer:
    platform: str
    ticket_id: str
    due: datetime


@dataclass(frozen=True)
class DeadlineEntry:
    """What the index knows about one ticket: its armed deadline (None: no timer), the
    ticket's `updated` stamp when it was last reconciled, and the settlement (see the module
    docstring): `next`, the plan's next deadline then, and `config`, the fingerprint of the
    config it was evaluated under (None: not settled – a write was made whose resulting stamp
    is unknown, or nothing was recorded)."""

    due: datetime | None
    seen: datetime | None
    next: datetime | None = None
    config: str | None = None

    def settled(self, updated: datetime | None, now: datetime, config: str) -> bool:
        """True when evaluating the ticket at `now` must give the plan it gave last time: the
        same stamp, the same config, and its next deadline not reached yet."""
        if self.config is None or updated is None or self.seen != updated or self.config != config:
            return False
        return self.next is None or now < self.next


# One row of `DeadlineIndex.record_many`: (platform, ticket id, due, seen, config fingerprint).
Record = tuple[str, str, "datetime | None", "datetime | None", "str | None"]


class DeadlineIndex(Protocol):
    def record(self, platform: str, ticket_id: str, due: datetime | None, seen: datetime | None,
               config: str | None = None) -> None:
        """Replace the ticket's row: arm `due` (None disarms) and remember `seen`; with `config`
        (and `seen`) the ticket is settled at `seen` until `due` under that config."""
        ...

    def record_many(self, rows: Iterable[Record]) -> None:
        """`record` for many tickets in one storage transaction (a sweep page)."""
        ...

    def claim_due(self, now: datetime, limit: int = CLAIM_BATCH) -> list[DueTimer]:
        """Disarm and return timers due at `now`, earliest first; each is returned to one caller only."""
        ...

    def rearm(self, timer: DueTimer) -> None:
        """Put a claimed timer back unless a reconcile armed a new one meanwhile."""
        ...

    def entry(self, platform: str, ticket_id: str) -> DeadlineEntry | None: ...

    def entries(self, platform: str, ticket_ids: Iterable[str]) -> dict[str, DeadlineEntry]:
        """`entry` for many tickets in one round trip (a sweep page); unknown ids are left out."""
        ...

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
        # Files written before the settlement existed gain its two columns (NULL: not settled).
        columns = {row[1] for row in storage.sql("pragma table_info(connector_deadline)", results=True)}
        for column, kind in (("next", "real"), ("config", "text")):
            if column not in columns:
                try:
                    storage.sql(f"alter table connector_deadline add column {column} {kind}", commit=True)
                except Exception:  # another process added it first
                    pass

    _RECORD = (
        "insert into connector_deadline (queue, platform, ticket_id, due, seen, next, config) "
        "values (?, ?, ?, ?, ?, ?, ?) "
        "on conflict (queue, platform, ticket_id) do update set due = excluded.due, "
        "seen = coalesce(excluded.seen, connector_deadline.seen), next = excluded.next, config = excluded.config"
    )

    def _row(self, platform: str, ticket_id: str, due: datetime | None, seen: datetime | None,
             config: str | None) -> tuple:
        epoch = None if due is None else _epoch(due)
        return (self._queue, platform, ticket_id, epoch, _stamp(seen), epoch, config if seen is not None else None)

    def record(self, platform: str, ticket_id: str, due: datetime | None, seen: datetime | None,
               config: str | None = None) -> None:
        self._storage.sql(self._RECORD, self._row(platform, ticket_id, due, seen, config), commit=True)

    def record_many(self, rows: Iterable[Record]) -> None:
        values = [self._row(*row) for row in rows]
        if not values:
            return
        # One transaction, one fsync for the page, instead of one per ticket.
        with self._storage.db(commit=True) as cursor:
            cursor.executemany(self._RECORD, values)

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
            "select due, seen, next, config from connector_deadline where queue = ? and platform = ? and ticket_id = ?",
            (self._queue, platform, ticket_id),
            results=True,
        )
        if not rows:
            return None
        return self._entry(*rows[0])

    @staticmethod
    def _entry(due: float | None, seen: str | None, next_due: float | None, config: str | None) -> DeadlineEntry:
        return DeadlineEntry(None if due is None else _instant(due), _unstamp(seen),
                             None if next_due is None else _instant(next_due), config)

    def entries(self, platform: str, ticket_ids: Iterable[str]) -> dict[str, DeadlineEntry]:
        ids = list(ticket_ids)
        found: dict[str, DeadlineEntry] = {}
        for start in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._storage.sql(
                f"select ticket_id, due, seen, next, config from connector_deadline where queue = ? "
                f"and platform = ? and ticket_id in ({marks})",
                (self._queue, platform, *chunk),
                results=True,
            )
            found.update({ticket_id: self._entry(*rest) for ticket_id, *rest in rows})
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
    """The index in Redis: a sorted set of armed timers (score = due epoch), a hash of stamps
    and a hash of settlements ("stamp|next epoch|config fingerprint")."""

    def __init__(self, storage: RedisStorage):
        self._conn = storage.conn
        self._due_key = f"connector.{storage.name}.deadline.due"
        self._seen_key = f"connector.{storage.name}.deadline.seen"
        self._settled_key = f"connector.{storage.name}.deadline.settled"

    @staticmethod
    def _member(platform: str, ticket_id: str) -> str:
        return f"{platform}:{ticket_id}"

    @staticmethod
    def _split(member: bytes | str) -> tuple[str, str]:
        text = member.decode() if isinstance(member, bytes) else member
        platform, _, ticket_id = text.partition(":")
        return platform, ticket_id

    def record(self, platform: str, ticket_id: str, due: datetime | None, seen: datetime | None,
               config: str | None = None) -> None:
        pipe = self._conn.pipeline(transaction=True)
        self._record(pipe, platform, ticket_id, due, seen, config)
        pipe.execute()

    def record_many(self, rows: Iterable[Record]) -> None:
        pipe = self._conn.pipeline(transaction=True)  # one round trip for the page
        for row in rows:
            self._record(pipe, *row)
        pipe.execute()

    def _record(self, pipe, platform: str, ticket_id: str, due: datetime | None, seen: datetime | None,
                config: str | None) -> None:
        member = self._member(platform, ticket_id)
        if due is None:
            pipe.zrem(self._due_key, member)
        else:
            pipe.zadd(self._due_key, {member: _epoch(due)})
        if seen is not None:
            pipe.hset(self._seen_key, member, _stamp(seen))
        if seen is not None and config is not None:
            pipe.hset(self._settled_key, member, f"{_stamp(seen)}|{'' if due is None else _epoch(due)}|{config}")
        else:
            pipe.hdel(self._settled_key, member)

    @staticmethod
    def _settlement(value: bytes | str | None) -> tuple[datetime | None, str | None]:
        if value is None:
            return None, None
        text = value.decode() if isinstance(value, bytes) else value
        _, next_due, config = text.split("|", 2)
        return (_instant(float(next_due)) if next_due else None), config

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
        return self.entries(platform, [ticket_id]).get(ticket_id)

    def entries(self, platform: str, ticket_ids: Iterable[str]) -> dict[str, DeadlineEntry]:
        ids = list(ticket_ids)
        if not ids:
            return {}
        members = [self._member(platform, t) for t in ids]
        pipe = self._conn.pipeline(transaction=False)
        for member in members:
            pipe.zscore(self._due_key, member)
        pipe.hmget(self._seen_key, members)
        pipe.hmget(self._settled_key, members)
        answers = pipe.execute()
        dues, seens, settlements = answers[:len(ids)], answers[-2], answers[-1]
        found = {}
        for ticket_id, due, seen, settlement in zip(ids, dues, seens, settlements):
            if due is None and seen is None:
                continue
            next_due, config = self._settlement(settlement)
            found[ticket_id] = DeadlineEntry(None if due is None else _instant(due), _unstamp(seen), next_due, config)
        return found

    def armed(self, platform: str | None = None) -> list[DueTimer]:
        timers = [DueTimer(*self._split(m), _instant(s)) for m, s in self._conn.zrange(self._due_key, 0, -1, withscores=True)]
        return [t for t in timers if platform is None or t.platform == platform]

    def clear(self) -> None:
        self._conn.delete(self._due_key, self._seen_key, self._settled_key)


def deadline_index(huey: Huey) -> DeadlineIndex:
    """The index living in the same backend as `huey`'s queue."""
    return backend_store(huey, sqlite=SqliteDeadlineIndex, redis=RedisDeadlineIndex, what="the deadline index needs")
