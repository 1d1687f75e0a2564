"""Whether the queue's Redis keeps what the receiver acknowledged.

A 2xx to Jira or Zendesk means "stored, do not send it again", so with Redis as the queue the
event is only as safe as Redis's persistence. Redis's defaults keep data in memory with RDB
snapshots at most every few minutes (or none at all, as in many container images): a crash
or restart loses every event acknowledged since the last snapshot, and the platform never
resends them. The append-only file with `appendfsync everysec` loses at most about one
second of writes, `always` none ("Redis persistence",
https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/), so the
connector needs `appendonly yes` and `appendfsync everysec` or `always`.

Managed Redis services often refuse `CONFIG` (renamed or blocked by ACL): the answer is then
"unknown", which is not an error – their persistence is a setting of the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

DURABLE_FSYNC = ("always", "everysec")


@dataclass(frozen=True)
class Persistence:
    state: Literal["persisting", "not_persisting", "unknown"]
    detail: str  # what was read, e.g. "appendonly no"; never the URL or a password


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def redis_persistence(client: Any) -> Persistence:
    """Read `CONFIG GET append*` from a redis-py client (one round trip)."""
    import redis

    try:
        found = client.config_get("append*") or {}
    except redis.ResponseError as exc:  # unknown command, NOPERM, renamed CONFIG
        return Persistence("unknown", f"CONFIG GET refused ({type(exc).__name__})")
    except redis.RedisError as exc:  # unreachable: the queue's own check reports that
        return Persistence("unknown", f"Redis did not answer CONFIG GET ({type(exc).__name__})")
    settings = {_text(k): _text(v) for k, v in found.items()}
    appendonly, appendfsync = settings.get("appendonly"), settings.get("appendfsync")
    if appendonly != "yes":
        return Persistence("not_persisting", f"appendonly {appendonly or 'unset'}")
    if appendfsync not in DURABLE_FSYNC:
        return Persistence("not_persisting", f"appendonly yes, appendfsync {appendfsync or 'unset'}")
    return Persistence("persisting", f"appendonly yes, appendfsync {appendfsync}")
