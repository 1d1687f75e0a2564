"""Admitting a reconcile: the delivery claim, the pending flag and the task, stored as ONE write.

Accepting a webhook writes three things: the delivery id (so the platform's redelivery of
the same event is answered "duplicate"), the ticket's pending flag (so a burst of events
for one ticket collapses into one reconcile) and the task itself. Written one after the
other, a receiver killed between them (`kill -9`, an OOM kill, a lost pod) leaves a claim
or a flag without a task: the platform's retry of that delivery is then answered 200
"duplicate" with nothing queued, and every new event for the ticket is swallowed until
the flag goes stale – only the sweep would find the ticket again.

So the three are one write here:

- **SQLite**: one `BEGIN EXCLUSIVE` transaction on huey's own connection to its own file –
  the claim in `connector_recent_delivery`, the flag in huey's `kv` table and the row in
  huey's `task` table (the very statement `SqliteStorage.enqueue` runs). A process killed
  before the COMMIT leaves nothing: SQLite rolls an unfinished transaction back when the
  file is next opened (https://www.sqlite.org/atomiccommit.html, https://www.sqlite.org/wal.html).
  It is also one fsync per accepted event instead of three – and with group commit
  (`GroupCommit`) one fsync per *batch* of the events that arrived while the previous
  commit was running, each event still answered only after its own data is committed.
- **Redis**: one Lua script. Redis runs a script atomically – no other client sees a state
  in between – and a client killed mid-request either sent the whole EVALSHA or nothing
  (https://redis.io/docs/latest/develop/interact/programmability/eval-intro/). A script is
  not rolled back when a command inside it fails, so every check that could fail (key
  types) runs before the first write; and Redis refuses a script's writes for lack of
  memory (`maxmemory`) only at its first write, "otherwise we can't stop in the middle"
  (redis/redis, the OOM check in the scripting engine's `redis.call`). The task is stored
  exactly as huey's `RedisStorage`/`PriorityRedisStorage` would store it (LPUSH, or ZADD
  with huey's 8-byte time prefix), so huey's consumer dequeues it as its own.

Storing the task ourselves bypasses `Huey.enqueue`, so huey's `SIGNAL_ENQUEUED` is not sent
for these tasks and huey's `immediate` mode does not apply to them; the connector uses
neither (its consumer-side signals – executing, complete, error – are unaffected).

The pending flag's stamp is huey-serialized (a pickled time), which Lua cannot read: when
the flag is held, the script first answers with its value and writes nothing; the caller
decides whether it is stale, and a second run takes the flag over only if it still holds
exactly that value (compare-and-swap), else the event collapses into the waiting task.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, Literal, Protocol, TypeVar

from huey import Huey
from huey.storage import RedisStorage, SqliteStorage

log = logging.getLogger(__name__)

# "queued": claim, flag and task stored. "seen": the delivery id was claimed before, nothing
# written. "pending": the flag is held by a waiting task, which covers this event; only the
# delivery claim was stored (in the same write).
Admitted = Literal["queued", "seen", "pending"]
IsStale = Callable[[bytes], bool]


class AdmissionStore(Protocol):
    def admit(self, *, delivery_key: str | None, flag_key: str, flag_value: bytes, is_stale: IsStale,
              task_data: bytes, priority: float | None) -> Admitted: ...


T = TypeVar("T")


@contextlib.contextmanager
def exclusive_transaction(storage: SqliteStorage) -> Iterator[sqlite3.Cursor]:
    """huey's lock and connection, BEGIN EXCLUSIVE … COMMIT; ROLLBACK on any failure.

    Unlike `SqliteStorage.db(commit=True)` this also rolls back when the COMMIT itself fails:
    SQLite leaves the transaction open after a COMMIT refused for a deferred foreign key
    ("the COMMIT will fail and the transaction remain open",
    https://www.sqlite.org/foreignkeys.html#fk_deferred) or SQLITE_BUSY
    (https://www.sqlite.org/lang_transaction.html), and the next BEGIN on the shared
    connection would then fail for every later event.
    """
    with storage.lock:
        conn = storage.conn
        cursor = conn.cursor()
        try:
            cursor.execute("begin exclusive")
            yield cursor
            conn.commit()
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        finally:
            cursor.close()


class _Item:
    __slots__ = ("work", "done", "value", "error")

    def __init__(self, work: Callable[[Any], Any]):
        self.work = work
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    """Run the writes of concurrent requests in one SQLite transaction: one fsync for the group.

    Why: in WAL mode at huey's default `synchronous=FULL` every COMMIT waits for an fsync
    of the WAL (https://www.sqlite.org/pragma.html#pragma_synchronous), and the writes of one
    file are serialized anyway (one writer at a time, https://www.sqlite.org/wal.html), so the
    receiver's eight threads used to queue behind each other's fsync. Here the first thread to
    arrive while no commit is running becomes the committer (leader/follower, no extra thread,
    nothing to restart after a fork): it takes every write waiting at that moment (at most
    `max_batch`), runs each inside its own SAVEPOINT of one `BEGIN EXCLUSIVE` transaction,
    COMMITs once and wakes the others. Writes that arrive during that commit wait for it and
    form the next group, so nobody waits for a timer: alone, a write commits at once.

    What each caller is told:
    - its own result only after the COMMIT of the transaction holding its write returned;
    - its own exception if its write raised (rolled back to its savepoint; the others of the
      group still commit) – the receiver answers 503 for exactly that request;
    - the COMMIT's exception if the COMMIT (or the transaction) failed: every write of the
      group is then rolled back and every caller of the group gets it (503 for each);
    - a process killed mid-group answered nobody of that group, and SQLite rolls the
      unfinished transaction back when the file is next opened.
    Writes run in arrival order, so a later write of the same ticket sees the earlier one
    (a burst for one ticket still collapses into one task).
    """

    def __init__(self, transaction: Callable[[], Any], max_batch: int = 64):
        # transaction(): a context manager yielding a cursor inside BEGIN … COMMIT, rolling
        # back on any failure, the COMMIT's included (`exclusive_transaction`).
        self._transaction = transaction
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._waiting: list[_Item] = []
        self._busy = False

    @property
    def waiting(self) -> int:
        """Writes waiting for the running commit (for tests and diagnostics)."""
        with self._cond:
            return len(self._waiting)

    def run(self, work: Callable[[Any], T]) -> T:
        """Run `work(cursor)` in a group transaction; its result once committed, else raise."""
        item = _Item(work)
        with self._cond:
            self._waiting.append(item)
            while True:
                while self._busy and not item.done:
                    self._cond.wait()
                if item.done:
                    break
                # No commit running and ours not done: lead the next group (it includes ours
                # unless more than max_batch were waiting before it; then loop).
                batch, self._waiting = self._waiting[:self._max_batch], self._waiting[self._max_batch:]
                self._busy = True
                self._cond.release()
                try:
                    self._commit(batch)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
        if item.error is not None:
            raise item.error
        return item.value

    def _commit(self, batch: list[_Item]) -> None:
        failure: BaseException | None = None
        try:
            with self._transaction() as cursor:
                if len(batch) == 1:  # alone: its failure rolls back the transaction, no savepoint needed
                    batch[0].value = batch[0].work(cursor)
                for item in batch if len(batch) > 1 else ():
                    cursor.execute("savepoint connector_admit")
                    try:
                        item.value = item.work(cursor)
                    except Exception as exc:  # this write only: undo it, keep the group's
                        cursor.execute("rollback to connector_admit")
                        item.error = exc
                    cursor.execute("release connector_admit")
        except BaseException as exc:
            # The transaction is rolled back: nothing of this group was stored, whatever a
            # write said. A BaseException (KeyboardInterrupt) still answers the followers.
            failure = exc
            for item in batch:
                item.value, item.error = None, exc
        finally:
            for item in batch:
                item.done = True
        if failure is not None and not isinstance(failure, Exception):
            raise failure


# Expired delivery claims are deleted at most this often (a claim is kept one TTL, an hour by
# default: a second more changes nothing), instead of one DELETE per accepted event.
PRUNE_INTERVAL = 1.0


class SqliteAdmission:
    """Claim, flag and task in one transaction of huey's SQLite file.

    huey's SQLite key/value store has no expiry, so delivery ids get their own small table
    whose old rows are pruned in the same transaction; its size stays bounded by one TTL's
    worth of events.
    """

    def __init__(self, storage: SqliteStorage, ttl: timedelta):
        self._storage = storage
        self._ttl = ttl.total_seconds()
        with storage.db(commit=True) as cursor:
            cursor.execute(
                "create table if not exists connector_recent_delivery ("
                "queue text not null, delivery_key text not null, seen_at real not null, "
                "primary key (queue, delivery_key))")
            cursor.execute(
                "create index if not exists connector_recent_delivery_seen_at "
                "on connector_recent_delivery (queue, seen_at)")
        self._group = GroupCommit(lambda: exclusive_transaction(storage))
        self._pruned_at = float("-inf")

    def admit(self, *, delivery_key: str | None, flag_key: str, flag_value: bytes, is_stale: IsStale,
              task_data: bytes, priority: float | None) -> Admitted:
        storage = self._storage
        queue = storage.name

        # Runs inside the group's transaction (GroupCommit: huey's lock, BEGIN EXCLUSIVE, a
        # savepoint of its own, COMMIT of the group before anyone is answered).
        def write(cursor) -> Admitted:
            if delivery_key is not None:
                now = time.time()
                if now - self._pruned_at >= PRUNE_INTERVAL:  # writes run one at a time: no race here
                    cursor.execute("delete from connector_recent_delivery where queue = ? and seen_at < ?",
                                   (queue, now - self._ttl))
                    self._pruned_at = now
                # A claim older than the TTL counts as gone even before the prune deletes it.
                cursor.execute("insert into connector_recent_delivery (queue, delivery_key, seen_at) values (?, ?, ?) "
                               "on conflict (queue, delivery_key) do update set seen_at = excluded.seen_at "
                               "where seen_at < ?", (queue, delivery_key, now, now - self._ttl))
                if cursor.rowcount != 1:
                    return "seen"
            cursor.execute("select value from kv where queue = ? and key = ?", (queue, flag_key))
            row = cursor.fetchone()
            if row is None:
                cursor.execute("insert into kv (queue, key, value) values (?, ?, ?)",
                               (queue, flag_key, storage.to_blob(flag_value)))
            elif is_stale(bytes(row[0])):
                cursor.execute("update kv set value = ? where queue = ? and key = ?",
                               (storage.to_blob(flag_value), queue, flag_key))
                log.warning("queue.stale_key_taken_over", extra={"key": flag_key})
            else:
                return "pending"
            # What SqliteStorage.enqueue runs, inside this transaction.
            cursor.execute("insert into task (queue, data, priority) values (?, ?, ?)",
                           (queue, storage.to_blob(task_data), priority or 0))
            return "queued"

        return self._group.run(write)


# KEYS: delivery claim, huey's key/value hash, huey's queue key.
# ARGV: [1] has a claim ('1'/'0'), [2] claim ttl (s), [3] flag field, [4] new flag value,
# [5] probe ('1': if the flag is held, write nothing and answer {'held', value}),
# [6] the held value the caller saw, [7] whether that value is stale ('1'/'0'),
# [8] task member, [9] score, [10] queue kind ('zset'/'list').
# The flag is taken when unset, or when it still holds the value the caller found stale
# (compare-and-swap); otherwise the event collapses into the waiting task.
_REDIS_ADMIT = """
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  return 'seen'
end
local kv_type = redis.call('TYPE', KEYS[2]).ok
if kv_type ~= 'hash' and kv_type ~= 'none' then
  return redis.error_reply('huey key/value ' .. KEYS[2] .. ' is a ' .. kv_type .. ', not a hash')
end
local queue_type = redis.call('TYPE', KEYS[3]).ok
if queue_type ~= ARGV[10] and queue_type ~= 'none' then
  return redis.error_reply('huey queue ' .. KEYS[3] .. ' is a ' .. queue_type .. ', not a ' .. ARGV[10])
end
local current = redis.call('HGET', KEYS[2], ARGV[3])
if current and ARGV[5] == '1' then
  return {'held', current}
end
local take = (not current) or (ARGV[7] == '1' and current == ARGV[6])
if ARGV[1] == '1' then
  redis.call('SET', KEYS[1], '1', 'EX', ARGV[2])
end
if not take then
  return 'pending'
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
if ARGV[10] == 'zset' then
  redis.call('ZADD', KEYS[3], ARGV[9], ARGV[8])
else
  redis.call('LPUSH', KEYS[3], ARGV[8])
end
if current then
  return 'taken_over'
end
return 'queued'
"""


class RedisAdmission:
    """Claim, flag and task in one Lua script; delivery claims are keys that expire by themselves."""

    def __init__(self, storage: RedisStorage, ttl: timedelta):
        self._storage = storage
        self._ttl = max(1, int(ttl.total_seconds()))
        self._script = storage.conn.register_script(_REDIS_ADMIT)

    def _claim_key(self, delivery_key: str) -> str:
        return f"connector.{self._storage.name}.delivery.{delivery_key}"

    def admit(self, *, delivery_key: str | None, flag_key: str, flag_value: bytes, is_stale: IsStale,
              task_data: bytes, priority: float | None) -> Admitted:
        storage = self._storage
        if storage.priority:
            # As PriorityRedisStorage.enqueue: the time prefix keeps equal priorities in order.
            member = struct.pack(">Q", int(time.time() * 1e6)) + task_data
            score, kind = (0 if priority is None else -priority), "zset"
        else:
            if priority:
                raise ValueError("a task priority needs huey's PriorityRedisStorage; build the queue with "
                                 "connector.queue.storage.create_huey, which uses PriorityRedisHuey")
            member, score, kind = task_data, 0, "list"
        keys = [self._claim_key(delivery_key) if delivery_key is not None else "", storage.result_key, storage.queue_key]

        def run(probe: bool, seen: bytes, seen_is_stale: bool):
            return self._script(keys=keys, args=[
                "1" if delivery_key is not None else "0", self._ttl, flag_key, flag_value,
                "1" if probe else "0", seen, "1" if seen_is_stale else "0", member, score, kind])

        # One round trip when the ticket has no waiting task; when it has, a second one after
        # deciding here whether the flag is stale (its stamp is huey-serialized, unreadable in Lua).
        answer = run(True, b"", False)
        if isinstance(answer, list):
            held = bytes(answer[1])
            answer = run(False, held, is_stale(held))
        answer = answer.decode() if isinstance(answer, bytes) else str(answer)
        if answer == "taken_over":
            log.warning("queue.stale_key_taken_over", extra={"key": flag_key})
            return "queued"
        if answer not in ("queued", "seen", "pending"):
            raise RuntimeError(f"unexpected answer from the admission script: {answer[:40]!r}")
        return answer  # type: ignore[return-value]


def admission_store(huey: Huey, ttl: timedelta) -> AdmissionStore:
    """The admission store of huey's backend; TypeError for a backend it cannot make atomic."""
    if isinstance(huey.storage, SqliteStorage):
        return SqliteAdmission(huey.storage, ttl)
    if isinstance(huey.storage, RedisStorage):
        return RedisAdmission(huey.storage, ttl)
    raise TypeError(f"the reconcile queue needs SQLite or Redis storage, not {type(huey.storage).__name__}")
