"""The chat outbox in the queue's storage: each notification recorded once, sent once.

A chat message rides on a one-time comment (`AddComment.chat`, under the comment's marker).
Its life, keyed by (platform, ticket, marker, channel):

    staged ──(the comment was written)──▶ ready ──(a delivery task claims it)──▶ sending
                                            ▲                                     │
                                            └────── retry later (5xx, 429, rate-limit code)
                                                                                  ▼
                                                                    sent | failed (reported)

- **staged**, right before the adapter writes the plan (`stage`): an insert that does nothing
  when the row exists, so a second reconcile, a redelivered webhook or a second worker that
  plans the same comment adds nothing.
- **ready**, after the write succeeded (`release`): a compare-and-set from staged; only the
  caller that moves it enqueues the delivery task, so two racing workers enqueue one task.
  A write that failed leaves the row staged; the next reconcile plans the same comment,
  writes it and releases it then. A worker killed between the write and the release leaves
  a staged row whose marker the ticket now shows: the next reconcile of that ticket (an
  event, its SLA timer or the periodic sweep) finds it (`outstanding`) and releases it.
- **sending**, claimed by the delivery task with a lease (`claim`): a compare-and-set from
  ready (or from sending whose lease ran out), so only one task sends.
- **sent** / **failed** / back to **ready** with the attempt counted and the next try's time.

The unavoidable window: a worker killed after the chat service accepted a message and before
`finish` recorded it leaves the row `sending`; when its lease runs out, the next reconcile of
the ticket re-enqueues it and the message is sent again. Delivery is therefore exactly once
except for that crash, where it is at least once – chat webhooks have no idempotency key to
make the second request harmless.

Storage follows the queue, like the problem numbers: SQLite (`<data_dir>/queue.db`,
statements under `connector.queue.admission.exclusive_transaction`, so concurrent workers and
processes serialise on the database lock) or Redis (one Lua script per transition; scripts
run atomically, https://redis.io/docs/latest/develop/interact/programmability/eval-intro/).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Protocol

from huey import Huey
from huey.storage import RedisStorage, SqliteStorage

from connector.queue.storage import backend_store

from connector.queue.admission import exclusive_transaction

# A `ready` row whose task should have run this long ago, or a `sending` row whose lease ran
# out, is re-enqueued by the next reconcile of its ticket.
LEASE_SECONDS = 120.0
STALE_READY_SECONDS = 600.0
# A finished entry (sent or failed) is kept this long, then removed: it only answers "was
# this sent?" while something could still ask, and the comment's marker on the ticket keeps
# the notice from being planned again long after. SQLite deletes them at most once an hour
# (on a stage); Redis lets the entry's key expire.
RETENTION_SECONDS = 30 * 24 * 3600.0
PRUNE_EVERY_SECONDS = 3600.0
FINISHED = ("sent", "failed")


def entry_id(platform: str, ticket_id: str, marker: str, channel: str) -> str:
    return hashlib.sha256(json.dumps([platform, str(ticket_id), marker, channel]).encode()).hexdigest()[:32]


@dataclass
class Entry:
    id: str
    platform: str
    ticket_id: str
    marker: str
    channel: str
    state: str
    payload: dict
    attempts: int = 0
    next_at: float = 0.0
    reason: str = ""


class ChatOutbox(Protocol):
    def stage(self, platform: str, ticket_id: str, marker: str, channel: str, payload: dict) -> bool: ...
    def release(self, entry_id: str, now: float) -> bool: ...
    def claim(self, entry_id: str, now: float) -> Entry | None: ...
    def finish(self, entry_id: str, state: str, reason: str = "", next_at: float = 0.0) -> None: ...
    def requeue(self, entry_id: str, now: float) -> bool: ...
    def outstanding(self, platform: str, ticket_id: str, now: float) -> list[Entry]: ...
    def get(self, entry_id: str) -> Entry | None: ...
    def entries(self) -> list[Entry]: ...
    def clear(self) -> None: ...


_COLUMNS = "id, platform, ticket_id, marker, channel, state, payload, attempts, next_at, reason"


class SqliteChatOutbox:
    def __init__(self, storage: SqliteStorage):
        self._storage = storage
        self._queue = storage.name
        storage.sql("create table if not exists connector_chat_outbox ("
                    "queue text not null, id text not null, platform text not null, ticket_id text not null, "
                    "marker text not null, channel text not null, state text not null, payload text not null, "
                    "attempts integer not null default 0, next_at real not null default 0, "
                    "lease_until real not null default 0, reason text not null default '', "
                    "primary key (queue, id))", commit=True)
        storage.sql("create index if not exists connector_chat_outbox_ticket "
                    "on connector_chat_outbox (queue, platform, ticket_id)", commit=True)
        self._pruned_at = 0.0  # when this process last removed finished entries

    def _tx(self):
        return exclusive_transaction(self._storage)

    def prune(self, now: float) -> int:
        """Remove entries finished more than RETENTION_SECONDS before `now`; how many."""
        with self._tx() as cursor:
            cursor.execute("delete from connector_chat_outbox where queue = ? and state in (?, ?) and next_at < ?",
                           (self._queue, *FINISHED, now - RETENTION_SECONDS))
            return cursor.rowcount

    @staticmethod
    def _entry(row) -> Entry:
        return Entry(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]), row[7], row[8], row[9])

    def stage(self, platform, ticket_id, marker, channel, payload) -> bool:
        now = time.time()
        if now - self._pruned_at > PRUNE_EVERY_SECONDS:
            self._pruned_at = now
            self.prune(now)
        with self._tx() as cursor:
            cursor.execute("insert into connector_chat_outbox (queue, id, platform, ticket_id, marker, channel, "
                           "state, payload) values (?, ?, ?, ?, ?, ?, 'staged', ?) on conflict do nothing",
                           (self._queue, entry_id(platform, ticket_id, marker, channel), platform, str(ticket_id),
                            marker, channel, json.dumps(payload, ensure_ascii=False)))
            return cursor.rowcount == 1

    def release(self, entry_id, now) -> bool:
        with self._tx() as cursor:
            cursor.execute("update connector_chat_outbox set state = 'ready', next_at = ? "
                           "where queue = ? and id = ? and state = 'staged'", (now, self._queue, entry_id))
            return cursor.rowcount == 1

    def claim(self, entry_id, now) -> Entry | None:
        with self._tx() as cursor:
            cursor.execute("update connector_chat_outbox set state = 'sending', lease_until = ? "
                           "where queue = ? and id = ? and (state = 'ready' or (state = 'sending' and lease_until < ?))",
                           (now + LEASE_SECONDS, self._queue, entry_id, now))
            if cursor.rowcount != 1:
                return None
            cursor.execute(f"select {_COLUMNS} from connector_chat_outbox where queue = ? and id = ?",
                           (self._queue, entry_id))
            return self._entry(cursor.fetchone())

    def finish(self, entry_id, state, reason="", next_at=0.0) -> None:
        if state in FINISHED:
            next_at = time.time()  # when it finished: what retention counts from
        with self._tx() as cursor:
            cursor.execute("update connector_chat_outbox set state = ?, reason = ?, next_at = ?, lease_until = 0, "
                           "attempts = attempts + 1 where queue = ? and id = ? and state = 'sending'",
                           (state, reason[:300], next_at, self._queue, entry_id))

    def requeue(self, entry_id, now) -> bool:
        """Take over a stale ready/sending row for a new task (compare-and-set on its time)."""
        with self._tx() as cursor:
            cursor.execute("update connector_chat_outbox set state = 'ready', next_at = ?, lease_until = 0 "
                           "where queue = ? and id = ? and ((state = 'ready' and next_at < ?) "
                           "or (state = 'sending' and lease_until < ?))",
                           (now, self._queue, entry_id, now - STALE_READY_SECONDS, now))
            return cursor.rowcount == 1

    def outstanding(self, platform, ticket_id, now) -> list[Entry]:
        rows = self._storage.sql(
            f"select {_COLUMNS} from connector_chat_outbox where queue = ? and platform = ? and ticket_id = ? and "
            "(state = 'staged' or (state = 'ready' and next_at < ?) or (state = 'sending' and lease_until < ?))",
            (self._queue, platform, str(ticket_id), now - STALE_READY_SECONDS, now), results=True)
        return [self._entry(row) for row in rows]

    def get(self, entry_id) -> Entry | None:
        rows = self._storage.sql(f"select {_COLUMNS} from connector_chat_outbox where queue = ? and id = ?",
                                 (self._queue, entry_id), results=True)
        return self._entry(rows[0]) if rows else None

    def entries(self) -> list[Entry]:
        rows = self._storage.sql(f"select {_COLUMNS} from connector_chat_outbox where queue = ? order by rowid",
                                 (self._queue,), results=True)
        return [self._entry(row) for row in rows]

    def clear(self) -> None:
        self._storage.sql("delete from connector_chat_outbox where queue = ?", (self._queue,), commit=True)


# KEYS[1] = the entry's hash; ARGV[1] = now; transitions by name in ARGV[2].
_REDIS_TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
local now = tonumber(ARGV[1])
local op = ARGV[2]
if op == 'stage' then
  if state then return 0 end
  redis.call('HSET', KEYS[1], 'state', 'staged', 'platform', ARGV[3], 'ticket_id', ARGV[4], 'marker', ARGV[5],
             'channel', ARGV[6], 'payload', ARGV[7], 'attempts', 0, 'next_at', 0, 'lease_until', 0, 'reason', '')
  redis.call('SADD', KEYS[2], KEYS[1])
  return 1
end
if not state then return 0 end
local lease = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0')
local next_at = tonumber(redis.call('HGET', KEYS[1], 'next_at') or '0')
if op == 'release' then
  if state ~= 'staged' then return 0 end
  redis.call('HSET', KEYS[1], 'state', 'ready', 'next_at', now)
  return 1
elseif op == 'claim' then
  if state == 'ready' or (state == 'sending' and lease < now) then
    redis.call('HSET', KEYS[1], 'state', 'sending', 'lease_until', now + tonumber(ARGV[3]))
    return 1
  end
  return 0
elseif op == 'finish' then
  if state ~= 'sending' then return 0 end
  redis.call('HSET', KEYS[1], 'state', ARGV[3], 'reason', ARGV[4], 'next_at', ARGV[5], 'lease_until', 0)
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  if ARGV[3] == 'sent' or ARGV[3] == 'failed' then
    redis.call('EXPIRE', KEYS[1], math.floor(tonumber(ARGV[6])))
    redis.call('SREM', KEYS[2], KEYS[1])
  end
  return 1
elseif op == 'requeue' then
  if (state == 'ready' and next_at < now - tonumber(ARGV[3])) or (state == 'sending' and lease < now) then
    redis.call('HSET', KEYS[1], 'state', 'ready', 'next_at', now, 'lease_until', 0)
    return 1
  end
  return 0
end
return 0
"""


class RedisChatOutbox:
    def __init__(self, storage: RedisStorage):
        self._conn = storage.conn
        self._prefix = f"connector.{storage.name}.chat"
        self._script = self._conn.register_script(_REDIS_TRANSITION)

    def _key(self, entry_id: str) -> str:
        return f"{self._prefix}.entry:{entry_id}"

    def _ticket_key(self, platform: str, ticket_id: str) -> str:
        return f"{self._prefix}.ticket:{platform}:{ticket_id}"

    def _run(self, entry_id: str, now: float, op: str, *args, keys: tuple = ()) -> bool:
        return bool(self._script(keys=[self._key(entry_id), *keys], args=[now, op, *args]))

    def stage(self, platform, ticket_id, marker, channel, payload) -> bool:
        eid = entry_id(platform, ticket_id, marker, channel)
        return self._run(eid, time.time(), "stage", platform, str(ticket_id), marker, channel,
                         json.dumps(payload, ensure_ascii=False),
                         keys=(self._ticket_key(platform, str(ticket_id)),))

    def release(self, entry_id, now) -> bool:
        return self._run(entry_id, now, "release")

    def claim(self, entry_id, now) -> Entry | None:
        return self.get(entry_id) if self._run(entry_id, now, "claim", LEASE_SECONDS) else None

    def finish(self, entry_id, state, reason="", next_at=0.0) -> None:
        now = time.time()
        entry = self.get(entry_id)
        ticket_key = self._ticket_key(entry.platform, entry.ticket_id) if entry else f"{self._prefix}.ticket:?"
        self._run(entry_id, now, "finish", state, reason[:300], now if state in FINISHED else next_at,
                  RETENTION_SECONDS, keys=(ticket_key,))

    def requeue(self, entry_id, now) -> bool:
        return self._run(entry_id, now, "requeue", STALE_READY_SECONDS)

    def _load(self, key: str) -> Entry | None:
        data = {k.decode(): v.decode() for k, v in self._conn.hgetall(key).items()}
        if not data:
            return None
        return Entry(key.rsplit(":", 1)[1], data["platform"], data["ticket_id"], data["marker"], data["channel"],
                     data["state"], json.loads(data["payload"]), int(data["attempts"]), float(data["next_at"]),
                     data["reason"])

    def outstanding(self, platform, ticket_id, now) -> list[Entry]:
        found = []
        for key in self._conn.smembers(self._ticket_key(platform, str(ticket_id))):
            key = key.decode()
            entry = self._load(key)
            if entry is None:
                continue
            lease = float(self._conn.hget(key, "lease_until") or 0)
            if entry.state == "staged" or (entry.state == "ready" and entry.next_at < now - STALE_READY_SECONDS) \
                    or (entry.state == "sending" and lease < now):
                found.append(entry)
        return found

    def get(self, entry_id) -> Entry | None:
        return self._load(self._key(entry_id))

    def entries(self) -> list[Entry]:
        """Every entry still kept (inspection and tests: a scan, nothing indexes them all)."""
        keys = sorted(k.decode() for k in self._conn.scan_iter(match=f"{self._prefix}.entry:*"))
        return [e for e in (self._load(k) for k in keys) if e is not None]

    def clear(self) -> None:
        keys = list(self._conn.scan_iter(match=f"{self._prefix}.*"))
        if keys:
            self._conn.delete(*keys)


def chat_outbox(huey: Huey) -> ChatOutbox:
    """The outbox living in the same backend as `huey`'s queue."""
    return backend_store(huey, sqlite=SqliteChatOutbox, redis=RedisChatOutbox, what="the chat outbox needs")
