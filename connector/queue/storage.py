"""Building huey for the queue's backend, and the atomic operations huey's API lacks.

Storage: SQLite file `<data_dir>/queue.db` by default (one host, no extra service), Redis
when `CONNECTOR_QUEUE_URL=redis://…` (several hosts). Everything the connector keeps next to
the queue (pending flags, locks, heartbeats, the deadline index, observations, problem
numbers) lives in the same backend, so this module is the bottom of the queue package:
it imports nothing else of the connector.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from huey import Huey, SqliteHuey
from huey.constants import EmptyData
from huey.storage import RedisStorage, SqliteStorage

from connector.queue.wakeup import WakeupSqliteStorage
from connector.settings import Settings

QUEUE_NAME = "connector"
QUEUE_FILE = "queue.db"
REDIS_SCHEMES = ("redis", "rediss", "unix")

REDIS_READ_TIMEOUT = 1  # seconds a worker's blocking pop waits before it looks at its stop flag


class QueueUnavailable(Exception):
    """The queue's storage could not record the request; the caller must not report success."""


class QueueConfigError(Exception):
    """CONNECTOR_QUEUE_URL names a backend that cannot be used; the message says how to fix it."""


def create_huey(settings: Settings) -> Huey:
    """The huey instance the settings ask for; raise QueueConfigError when it cannot be built."""
    if not settings.queue_url:
        data_dir = settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        # results=False: nobody waits on a reconcile's return value, and stored results
        # would only grow the key/value table the flags and locks live in.
        # WakeupSqliteStorage: storing a task wakes the idle workers (connector.queue.wakeup).
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
        import redis  # noqa: F401  (an optional dependency: huey's Redis storage needs it; say so before huey does)
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
    """The value under `key` as stored (the `expected_raw` of `compare_and_swap`), None if unset."""
    raw = huey.storage.peek_data(key)
    return None if raw is EmptyData else bytes(raw)


def backend_store(huey: Huey, *, sqlite, redis, what: str):
    """One of the connector's own stores (deadline index, observed actions, problem numbers,
    chat outbox) living in the same backend as `huey`'s queue: `sqlite(storage)` or
    `redis(storage)`. `what` names the store in the error for any other backend."""
    if isinstance(huey.storage, SqliteStorage):
        return sqlite(huey.storage)
    if isinstance(huey.storage, RedisStorage):
        return redis(huey.storage)
    raise TypeError(f"{what} SQLite or Redis storage, not {type(huey.storage).__name__}")
