"""`/healthz`, `/readyz` and `/metrics` for the process supervisor and the monitoring.

Liveness and readiness are kept apart on purpose: `/healthz` only says the process answers
(restart it if not), `/readyz` says whether it can do its job right now (route webhooks to
it or not). A receiver that cannot write its queue would answer 503 to every event; taking
it out of rotation and saying why is better. A config edit that was rejected by the hot
reload is reported under `warnings` with a 200: the last good config still runs, and every
receiver reads the same files, so a 503 would take the whole fleet out for a typo; `config`
says how the last reload went (ok / failed, when, the error). Readiness only reads that
verdict and never loads the config itself: a hostile hot reload must not hang it
(connector.reload). Also reported with a 200: states that work but must not be forgotten –
unsigned webhooks accepted (`--allow-unsigned`) and a Redis queue that would lose
acknowledged events on a restart (`queue_persistence`). Readiness never calls Jira or Zendesk: their
outages must not take the receiver down, since storing events is exactly what lets us ride
them out.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connector.metrics import QUEUE_DEPTH, REGISTRY
from connector.queue.persistence import Persistence, redis_persistence
from connector.queue.storage import QueueUnavailable
from webhooks.state import receiver_state, unsigned_problem

log = logging.getLogger(__name__)

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok"), 200


def queue_problem() -> dict[str, str] | None:
    settings = receiver_state().settings
    try:
        receiver_state().queue.check_writable()
    except QueueUnavailable as exc:
        # Also raised when the queue could not even be opened (see ReceiverState.queue).
        if settings.queue_url:
            fix = "check that the Redis server named by CONNECTOR_QUEUE_URL is running and reachable"
        else:
            fix = f"make {settings.data_dir} writable by the connector, or point CONNECTOR_DATA_DIR at a writable directory"
        return {"check": "queue", "error": f"queue is not writable ({exc})", "fix": fix}
    return None


def queue_persistence() -> Persistence | None:
    """How the queue's Redis persists; None for the SQLite queue (or a queue not open yet)."""
    from huey.storage import RedisStorage

    queue = receiver_state().opened_queue
    storage = queue.huey.storage if queue is not None else None
    return redis_persistence(storage.conn) if isinstance(storage, RedisStorage) else None


def persistence_problem(persistence: Persistence | None) -> dict[str, str] | None:
    """A warning (not a failure) when Redis would lose acknowledged events on a restart:
    the receiver still works, and taking every receiver out of rotation would lose more."""
    if persistence is None or persistence.state != "not_persisting":
        return None
    return {
        "check": "queue_persistence",
        "blocking": "no",
        "error": f"the queue's Redis does not persist every second ({persistence.detail}): a Redis crash or "
                 "restart loses events already acknowledged to Jira/Zendesk, which they will not resend",
        "fix": "set `appendonly yes` and `appendfsync everysec` in redis.conf (and `CONFIG SET appendonly yes` "
               "on the running server)",
    }


def config_problem() -> dict[str, str] | None:
    """The hot-reload verdict on the config files. Only read: a check runs in the watcher's
    poll thread (started here if this process has none), never in a readiness request, so a
    slow or hostile config cannot hang `/readyz` (connector.reload)."""
    watcher = receiver_state().config_watcher
    watcher.watch_in_background()
    return watcher.problem()


def config_reload() -> dict[str, object]:
    """The last config reload: ok / failed (with the error), when (connector.reload)."""
    return receiver_state().config_watcher.reload_state()


@blueprint.get("/readyz")
def readyz() -> ResponseReturnValue:
    queue = queue_problem()
    persistence = queue_persistence() if queue is None else None
    checks = (queue, config_problem(), persistence_problem(persistence), unsigned_problem())
    problems = [problem for problem in checks if problem is not None]
    failed = [p for p in problems if p.get("blocking", "yes") == "yes"]
    warnings = [p for p in problems if p.get("blocking") == "no"]
    for problem in problems:
        problem.pop("blocking", None)
    config = config_reload()
    if failed:
        log.warning("readiness.failed", extra={"checks": [problem["check"] for problem in failed]})
        body = {"status": "unavailable", "failed": failed}
        if warnings:
            body["warnings"] = warnings
        return jsonify({**body, "config": config}), 503
    body = {"status": "ready"}
    if persistence is not None:  # Redis queue: persisting, not_persisting or unknown (CONFIG refused)
        body["queue_persistence"] = persistence.state
    if warnings:
        body["warnings"] = warnings
    body["config"] = config
    return jsonify(body), 200


@blueprint.get("/metrics")
def metrics() -> ResponseReturnValue:
    try:
        QUEUE_DEPTH.set(receiver_state().queue.pending_count())
    except Exception as exc:  # the figures we have are still worth serving
        log.warning("metrics.queue_depth_unavailable", extra={"error": type(exc).__name__})
    return Response(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
