"""Problem numbers claimed in the queue's storage: unique across workers and restarts, never reassigned.

The `problem-number` rule plans `SetFields(problem_number="(next problem number)")`; just
before the write, `assign` replaces the placeholder with a number claimed here. A claim is
one atomic step that does two things together:

- takes the next value of the day's sequence (per prefix and day of the claim, in the
  rule's calendar's time zone), and
- records that number for the ticket (platform, ticket id, rule).

A ticket that already has a recorded number gets that number back and the sequence does not
move. So a claim whose write failed (a 400, a worker killed between claim and write) is
reused by the next reconcile – the number is never given to anyone else and the ticket never
gets a second one – and a number an agent blanked out is written back, not replaced.

Storage follows the queue, like the deadline index and the observed store:

- SQLite (`<data_dir>/queue.db`): one `BEGIN EXCLUSIVE` transaction on huey's connection
  (`connector.queue.admission.exclusive_transaction`) – look up the ticket, `INSERT … ON CONFLICT
  DO UPDATE … RETURNING` the day's counter, insert the ticket's row. SQLite serialises
  writers across processes with the database lock (https://www.sqlite.org/lockingv3.html),
  so two workers never get one value. RETURNING needs SQLite 3.35, as elsewhere.
- Redis: one Lua script (scripts run atomically, https://redis.io/docs/latest/develop/
  interact/programmability/eval-intro/) – `HGET` of the ticket's number, else `INCR` of the
  day's key with an `EXPIRE` of a few days (the day's sequence is needed only while that day
  can still be claimed; INCR's "counter" pattern, a key per day, https://redis.io/commands/incr/)
  and `HSET` of the ticket's number.

The ticket → number records are kept (a few dozen bytes per ticket): "never reassigned"
must hold for as long as a ticket can lose its field.
"""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime, timedelta
from typing import Protocol

from huey import Huey
from huey.storage import RedisStorage, SqliteStorage

from connector.metrics import WRITES_REFUSED
from connector.model import Plan, SetFields, Ticket, replaced
from connector.queue.admission import exclusive_transaction
from connector.queue.storage import backend_store, create_huey

log = logging.getLogger("connector.problem_numbers")

# How long Redis keeps a day's counter after its last claim: the day is over after at most
# 24 h in any time zone; the rest covers clocks that disagree between hosts.
DAY_KEY_TTL = timedelta(days=3)


class ProblemNumberStore(Protocol):
    def claim(self, platform: str, ticket_id: str, rule: str, head: str, day: date, width: int) -> str:
        """The ticket's number for `rule`: the recorded one, else `head` + the day's next
        sequence value padded to `width`, recorded for the ticket in the same step."""
        ...

    def recorded(self, platform: str, ticket_id: str, rule: str) -> str | None: ...

    def clear(self) -> None: ...


class SqliteProblemNumbers:
    def __init__(self, storage: SqliteStorage):
        self._storage = storage
        self._queue = storage.name
        storage.sql("create table if not exists connector_problem_sequence ("
                    "queue text not null, head text not null, day text not null, last integer not null, "
                    "primary key (queue, head, day))", commit=True)
        storage.sql("create table if not exists connector_problem_number ("
                    "queue text not null, platform text not null, ticket_id text not null, rule text not null, "
                    "number text not null, primary key (queue, platform, ticket_id, rule))", commit=True)

    def claim(self, platform: str, ticket_id: str, rule: str, head: str, day: date, width: int) -> str:
        key = (self._queue, platform, ticket_id, rule)
        with exclusive_transaction(self._storage) as cursor:
            cursor.execute("select number from connector_problem_number "
                           "where queue = ? and platform = ? and ticket_id = ? and rule = ?", key)
            row = cursor.fetchone()
            if row is not None:
                return row[0]
            cursor.execute(
                "insert into connector_problem_sequence (queue, head, day, last) values (?, ?, ?, 1) "
                "on conflict (queue, head, day) do update set last = connector_problem_sequence.last + 1 "
                "returning last",
                (self._queue, head, day.isoformat()))
            number = f"{head}{cursor.fetchone()[0]:0{width}d}"
            cursor.execute("insert into connector_problem_number (queue, platform, ticket_id, rule, number) "
                           "values (?, ?, ?, ?, ?)", (*key, number))
            return number

    def recorded(self, platform: str, ticket_id: str, rule: str) -> str | None:
        rows = self._storage.sql("select number from connector_problem_number "
                                 "where queue = ? and platform = ? and ticket_id = ? and rule = ?",
                                 (self._queue, platform, ticket_id, rule), results=True)
        return rows[0][0] if rows else None

    def clear(self) -> None:
        for table in ("connector_problem_sequence", "connector_problem_number"):
            self._storage.sql(f"delete from {table} where queue = ?", (self._queue,), commit=True)


_REDIS_CLAIM = """
local found = redis.call('HGET', KEYS[2], ARGV[1])
if found then return found end
local sequence = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
local number = ARGV[2] .. string.format('%0' .. ARGV[3] .. 'd', sequence)
redis.call('HSET', KEYS[2], ARGV[1], number)
return number
"""


class RedisProblemNumbers:
    def __init__(self, storage: RedisStorage):
        self._conn = storage.conn
        self._prefix = f"connector.{storage.name}.problem"
        self._numbers = f"{self._prefix}.numbers"
        self._script = self._conn.register_script(_REDIS_CLAIM)

    @staticmethod
    def _field(platform: str, ticket_id: str, rule: str) -> str:
        return f"{platform}:{ticket_id}:{rule}"

    def claim(self, platform: str, ticket_id: str, rule: str, head: str, day: date, width: int) -> str:
        day_key = f"{self._prefix}.seq:{head}:{day.isoformat()}"
        found = self._script(keys=[day_key, self._numbers],
                             args=[self._field(platform, ticket_id, rule), head, int(width),
                                   int(DAY_KEY_TTL.total_seconds())])
        return found.decode() if isinstance(found, bytes) else found

    def recorded(self, platform: str, ticket_id: str, rule: str) -> str | None:
        found = self._conn.hget(self._numbers, self._field(platform, ticket_id, rule))
        return found.decode() if isinstance(found, bytes) else found

    def clear(self) -> None:
        keys = [self._numbers, *self._conn.scan_iter(match=f"{self._prefix}.seq:*")]
        self._conn.delete(*keys)


def problem_numbers(huey: Huey) -> ProblemNumberStore:
    """The store living in the same backend as `huey`'s queue."""
    return backend_store(huey, sqlite=SqliteProblemNumbers, redis=RedisProblemNumbers, what="problem numbers need")


class LazyProblemNumbers:
    """The store of the queue that `settings` name, opened on the first claim."""

    def __init__(self, settings) -> None:
        self._settings = settings
        self._store: ProblemNumberStore | None = None
        self._lock = threading.Lock()

    def _open(self) -> ProblemNumberStore:
        with self._lock:
            if self._store is None:
                self._store = problem_numbers(create_huey(self._settings))
            return self._store

    def claim(self, *args, **kwargs) -> str:
        return self._open().claim(*args, **kwargs)

    def recorded(self, platform: str, ticket_id: str, rule: str) -> str | None:
        return self._open().recorded(platform, ticket_id, rule)

    def clear(self) -> None:
        self._open().clear()


def assign(store: ProblemNumberStore, ticket: Ticket, plan: Plan, config, now: datetime) -> tuple[Plan, list[str]]:
    """`plan` with every "(next problem number)" replaced by the ticket's claimed number, and
    the warnings of claims that failed (that field is then left out of the write; the next
    reconcile tries again and, if the claim had landed, gets the same number)."""
    from connector.rules.problem_number import NEXT_NUMBER, ProblemNumberRule

    if not any(isinstance(a, SetFields) and NEXT_NUMBER in a.fields.values() for a in plan.actions):
        return plan, []
    rules = {rule.id: rule for rule in config.rules if isinstance(rule, ProblemNumberRule)}
    actions, warnings = [], []
    for action in plan.actions:
        names = [n for n, v in action.fields.items() if v == NEXT_NUMBER] if isinstance(action, SetFields) else []
        if not names:
            actions.append(action)
            continue
        fields = dict(action.fields)
        rule = rules.get(action.rule)
        fields_log = {"platform": ticket.platform, "ticket_id": ticket.id, "ticket_key": ticket.key,
                      "rule": action.rule}
        try:
            if rule is None:
                raise LookupError(f"no problem-number rule with id {action.rule!r}")
            day = now.astimezone(config.calendar(rule.calendar).tz).date()
            number = store.claim(ticket.platform, ticket.id, rule.id, rule.head(day), day, rule.width)
        except Exception as exc:
            for name in names:
                del fields[name]
            WRITES_REFUSED.labels(ticket.platform, "problem_number").inc()
            warnings.append(f"problem number not assigned ({type(exc).__name__}); the next reconcile tries again")
            log.warning("problem_number.not_claimed", extra={**fields_log, "error": type(exc).__name__})
        else:
            for name in names:
                fields[name] = number
            log.info("problem_number.claimed", extra={**fields_log, "number": number})
        if fields:
            actions.append(replaced(action, fields=fields))
    return replaced(plan, actions=actions), warnings
