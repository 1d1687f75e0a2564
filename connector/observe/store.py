"""Where observed actions are kept: the queue's own backend, bounded, shared by every process.

Like the deadline index (`connector.queue.deadlines`) the records live next to the queue – a
table in the SQLite file `<data_dir>/queue.db`, or a sorted set and hashes in Redis when
`CONNECTOR_QUEUE_URL=redis://…` – so every worker, the receiver's `/observed` page and
`connector observed` see the same records, and no extra service is needed.

Bounded: a record not re-planned for `MAX_AGE` (30 days) is dropped, and beyond
`MAX_RECORDS` (10,000) the least recently seen go first. A week of observing a busy desk
dedupes to a few records per ticket, well inside the bound. Times are the runtime's clock
(the sandbox clock in tests), as for SLA timers.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from typing import Protocol

from huey import Huey
from huey.storage import RedisStorage, SqliteStorage

from connector.observe.records import Observation
from connector.queue.storage import backend_store, create_huey

MAX_RECORDS = 10_000
MAX_AGE = timedelta(days=30)
DEFAULT_LIMIT = 200


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise ValueError("observations need aware datetimes; a naive one has no defined instant")
    return moment.timestamp()


def _instant(epoch: float | bytes | str) -> datetime:
    return datetime.fromtimestamp(float(epoch), timezone.utc)


class ObservedStore(Protocol):
    def record(self, observation: Observation) -> Observation:
        """Insert, or on a known fingerprint move `last_seen` and count; return the stored record."""
        ...

    def first_seen(self, fingerprint: str) -> datetime | None: ...

    def latest(self, *, since: datetime | None = None, platform: str | None = None,
               limit: int | None = DEFAULT_LIMIT) -> list[Observation]:
        """Records last seen at or after `since`, most recently seen first."""
        ...

    def clear(self) -> None: ...


def _row(fingerprint: str, data: dict, first: float, last: float, times: int, new: bool = False) -> Observation:
    return Observation(
        fingerprint=fingerprint, platform=data["platform"], ticket_id=data["ticket_id"],
        ticket_key=data["ticket_key"], rule=data["rule"], action=data["action"], marker=data.get("marker"),
        details=data.get("details") or {}, reason=data.get("reason", ""), first_seen=_instant(first),
        last_seen=_instant(last), times=int(times), new=new,
    )


def _data(observation: Observation) -> str:
    return json.dumps({
        "platform": observation.platform, "ticket_id": observation.ticket_id, "ticket_key": observation.ticket_key,
        "rule": observation.rule, "action": observation.action, "marker": observation.marker,
        "details": observation.details, "reason": observation.reason,
    }, ensure_ascii=False, default=str)


class SqliteObservedStore:
    """Records as a table in the queue's SQLite file."""

    def __init__(self, storage: SqliteStorage, *, max_records: int = MAX_RECORDS, max_age: timedelta = MAX_AGE):
        self._storage = storage
        self._queue = storage.name
        self._max_records = max_records
        self._max_age = max_age.total_seconds()
        storage.sql(
            "create table if not exists connector_observed ("
            "queue text not null, fingerprint text not null, platform text not null, data text not null, "
            "first_seen real not null, last_seen real not null, times integer not null, "
            "primary key (queue, fingerprint))",
            commit=True,
        )
        storage.sql("create index if not exists connector_observed_seen on connector_observed (queue, last_seen)",
                    commit=True)

    def record(self, observation: Observation) -> Observation:
        now = _epoch(observation.last_seen)
        with self._storage.db(commit=True) as cursor:
            # One statement under SQLite's write lock: two workers re-planning the same
            # action count twice and keep the first `first_seen`. RETURNING needs SQLite
            # 3.35 (https://www.sqlite.org/lang_returning.html), as the deadline index does.
            cursor.execute(
                "insert into connector_observed (queue, fingerprint, platform, data, first_seen, last_seen, times) "
                "values (?, ?, ?, ?, ?, ?, 1) on conflict (queue, fingerprint) do update set "
                "data = excluded.data, last_seen = max(connector_observed.last_seen, excluded.last_seen), "
                "times = connector_observed.times + 1 returning first_seen, last_seen, times",
                (self._queue, observation.fingerprint, observation.platform, _data(observation),
                 _epoch(observation.first_seen), now),
            )
            first, last, times = cursor.fetchone()
            if times == 1:
                self._prune(cursor, now)
        return _row(observation.fingerprint, json.loads(_data(observation)), first, last, times, new=times == 1)

    def _prune(self, cursor, now: float) -> None:
        cursor.execute("delete from connector_observed where queue = ? and last_seen < ?",
                       (self._queue, now - self._max_age))
        cursor.execute(
            "delete from connector_observed where queue = ? and rowid in (select rowid from connector_observed "
            "where queue = ? order by last_seen desc limit -1 offset ?)",
            (self._queue, self._queue, self._max_records),
        )

    def first_seen(self, fingerprint: str) -> datetime | None:
        rows = self._storage.sql("select first_seen from connector_observed where queue = ? and fingerprint = ?",
                                 (self._queue, fingerprint), results=True)
        return _instant(rows[0][0]) if rows else None

    def latest(self, *, since: datetime | None = None, platform: str | None = None,
               limit: int | None = DEFAULT_LIMIT) -> list[Observation]:
        rows = self._storage.sql(
            "select fingerprint, data, first_seen, last_seen, times from connector_observed "
            "where queue = ? and last_seen >= ? and (? is null or platform = ?) "
            "order by last_seen desc, rowid limit ?",
            (self._queue, _epoch(since) if since else float("-inf"), platform, platform,
             -1 if limit is None else limit),
            results=True,
        )
        return [_row(fp, json.loads(data), first, last, times) for fp, data, first, last, times in rows]

    def clear(self) -> None:
        self._storage.sql("delete from connector_observed where queue = ?", (self._queue,), commit=True)


class RedisObservedStore:
    """Records in Redis: a sorted set by `last_seen`, and hashes for data, `first_seen` and counts."""

    def __init__(self, storage: RedisStorage, *, max_records: int = MAX_RECORDS, max_age: timedelta = MAX_AGE):
        self._conn = storage.conn
        prefix = f"connector.{storage.name}.observed"
        self._seen, self._data, self._first, self._times = (f"{prefix}.{part}" for part in ("seen", "data", "first", "times"))
        self._max_records = max_records
        self._max_age = max_age.total_seconds()

    def record(self, observation: Observation) -> Observation:
        fp, now = observation.fingerprint, _epoch(observation.last_seen)
        pipe = self._conn.pipeline(transaction=True)  # MULTI/EXEC: applied as one, in order
        pipe.hset(self._data, fp, _data(observation))
        pipe.hsetnx(self._first, fp, repr(_epoch(observation.first_seen)))
        pipe.hincrby(self._times, fp, 1)
        # GT: a late writer never moves last_seen back; "this flag doesn't prevent adding new
        # elements" (https://redis.io/commands/zadd/, GT since Redis 6.2).
        pipe.zadd(self._seen, {fp: now}, gt=True)
        pipe.hget(self._first, fp)
        pipe.zscore(self._seen, fp)
        _, _, times, _, first, last = pipe.execute()
        if times == 1:
            self._prune(now)
        return _row(fp, json.loads(_data(observation)), first, last, times, new=times == 1)

    def _prune(self, now: float) -> None:
        old = self._conn.zrangebyscore(self._seen, "-inf", now - self._max_age)
        excess = self._conn.zcard(self._seen) - len(old) - self._max_records
        if excess > 0:
            old += self._conn.zrange(self._seen, len(old), len(old) + excess - 1)
        if old:
            pipe = self._conn.pipeline(transaction=True)
            pipe.zrem(self._seen, *old)
            for key in (self._data, self._first, self._times):
                pipe.hdel(key, *old)
            pipe.execute()

    def first_seen(self, fingerprint: str) -> datetime | None:
        value = self._conn.hget(self._first, fingerprint)
        return None if value is None else _instant(value)

    def latest(self, *, since: datetime | None = None, platform: str | None = None,
               limit: int | None = DEFAULT_LIMIT) -> list[Observation]:
        floor = _epoch(since) if since else "-inf"
        found: list[Observation] = []
        start, page = 0, 500
        while limit is None or len(found) < limit:
            members = self._conn.zrevrangebyscore(self._seen, "+inf", floor, start=start, num=page, withscores=True)
            if not members:
                break
            start += len(members)
            fps = [m.decode() if isinstance(m, bytes) else m for m, _ in members]
            datas = self._conn.hmget(self._data, fps)
            firsts = self._conn.hmget(self._first, fps)
            counts = self._conn.hmget(self._times, fps)
            for (fp, (_, last)), data, first, times in zip(zip(fps, members), datas, firsts, counts):
                if data is None or first is None:
                    continue  # pruned meanwhile
                row = _row(fp, json.loads(data), first, last, int(times or 1))
                if platform is None or row.platform == platform:
                    found.append(row)
        return found if limit is None else found[:limit]

    def clear(self) -> None:
        self._conn.delete(self._seen, self._data, self._first, self._times)


class LazyObservedStore:
    """The store of the queue that `settings` name, opened on first use (a worker's runtime is
    built before it knows whether any rule is observed; most reconciles never need it)."""

    def __init__(self, settings) -> None:
        self._settings = settings
        self._store: ObservedStore | None = None
        self._lock = threading.Lock()

    def _open(self) -> ObservedStore:
        with self._lock:
            if self._store is None:
                self._store = observed_store(create_huey(self._settings))
            return self._store

    def record(self, observation: Observation) -> Observation:
        return self._open().record(observation)

    def first_seen(self, fingerprint: str) -> datetime | None:
        return self._open().first_seen(fingerprint)

    def latest(self, **options) -> list[Observation]:
        return self._open().latest(**options)

    def clear(self) -> None:
        self._open().clear()


def observed_store(huey: Huey) -> ObservedStore:
    """The store living in the same backend as `huey`'s queue."""
    return backend_store(huey, sqlite=SqliteObservedStore, redis=RedisObservedStore, what="observed actions need")
