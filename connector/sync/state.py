"""What the sweep remembers between runs, kept in the queue's backend (SQLite file or Redis).

Two things, both shared by every worker process and every `connector sync --once`:

- **Checkpoints**: where the next recent-updates sweep resumes (a Jira time watermark, a
  Zendesk incremental-export cursor), and when each sweep kind last completed, which is
  how the minute-by-minute scheduler tick knows whether a sweep is due.
- **The sweep lease**: one sweep per platform at a time, cluster-wide. A sweep reads every
  open ticket; two at once would only double the API calls. The lease names its holder
  (`connector.queue.locks.Liveness`), so a worker killed mid-sweep gives the lease up as soon as
  it is known dead (at once on its own host, after the heartbeat timeout elsewhere); the
  lease also expires (default 30 min) as the last resort, and a running sweep renews it
  after every page. Takeovers are compare-and-swap, so two takers cannot both win.

huey's key/value storage holds both (`put`, `put_if_empty`, `get(peek=True)`); values are
pickled by huey, so datetimes and strings round-trip as they are.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from huey import Huey

from connector.queue.locks import Holder, Liveness
from connector.queue.storage import compare_and_swap, raw_value

log = logging.getLogger(__name__)

DEFAULT_LEASE_TTL = timedelta(minutes=30)


class SweepBusy(Exception):
    """Another sweep of this platform holds the lease; try again after it finishes."""


@dataclass(frozen=True)
class Lease:
    key: str
    token: str


class SyncState:
    def __init__(self, huey: Huey, *, lease_ttl: timedelta = DEFAULT_LEASE_TTL, liveness: Liveness | None = None):
        self._huey = huey
        self._lease_ttl = lease_ttl.total_seconds()
        self._liveness = liveness or Liveness(huey)

    # -- checkpoints ---------------------------------------------------------------------

    @staticmethod
    def _checkpoint_key(platform: str, kind: str) -> str:
        return f"sync:checkpoint:{platform}:{kind}"

    @staticmethod
    def _completed_key(platform: str, kind: str) -> str:
        return f"sync:completed:{platform}:{kind}"

    def checkpoint(self, platform: str, kind: str) -> str | None:
        value = self._huey.get(self._checkpoint_key(platform, kind), peek=True)
        return value if isinstance(value, str) else None

    def save_checkpoint(self, platform: str, kind: str, checkpoint: str) -> None:
        self._huey.put(self._checkpoint_key(platform, kind), checkpoint)

    def last_completed(self, platform: str, kind: str) -> datetime | None:
        value = self._huey.get(self._completed_key(platform, kind), peek=True)
        return value if isinstance(value, datetime) else None

    def mark_completed(self, platform: str, kind: str, at: datetime) -> None:
        self._huey.put(self._completed_key(platform, kind), at)

    # -- the lease -----------------------------------------------------------------------

    def acquire(self, platform: str) -> Lease:
        """Take the platform's sweep lease or raise SweepBusy.

        A lease that expired, or whose holder is dead, is taken over with a compare-and-swap:
        of several takers racing for it, exactly one wins.
        """
        key = f"sync:lease:{platform}"
        token = uuid.uuid4().hex
        mine = (token, time.time() + self._lease_ttl, self._liveness.holder())
        if self._huey.put_if_empty(key, mine):
            return Lease(key, token)
        raw = raw_value(self._huey, key)
        if raw is None:
            if self._huey.put_if_empty(key, mine):
                return Lease(key, token)
            raise SweepBusy(f"a {platform} sweep is already running (lease {key}); it ends by itself or expires")
        held = self._huey.serializer.deserialize(raw)
        if isinstance(held, tuple) and len(held) >= 2:
            expired = held[1] < time.time()
            holder = held[2] if len(held) > 2 else None
            dead = isinstance(holder, Holder) and self._liveness.is_dead(holder)
            if (expired or dead) and compare_and_swap(self._huey, key, raw, mine):
                log.warning("sync.lease_taken_over", extra={
                    "platform": platform, "expired": expired, "holder_dead": dead,
                    "expired_seconds_ago": round(time.time() - held[1]) if expired else None})
                return Lease(key, token)
        raise SweepBusy(f"a {platform} sweep is already running (lease {key}); it ends by itself or expires")

    def renew(self, lease: Lease) -> bool:
        """Extend the lease; False when another sweep took it over (this one should stop)."""
        held = self._huey.get(lease.key, peek=True)
        if not (isinstance(held, tuple) and held and held[0] == lease.token):
            return False
        self._huey.put(lease.key, (lease.token, time.time() + self._lease_ttl, self._liveness.holder()))
        return True

    def release(self, lease: Lease) -> None:
        held = self._huey.get(lease.key, peek=True)
        if isinstance(held, tuple) and held and held[0] == lease.token:
            self._huey.delete(lease.key)
