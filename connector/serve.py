"""Run the connector's processes: the webhook receiver (waitress), and the queue worker.

`serve` is the one-command deployment: a small supervisor process starting two children,
the receiver (`connector.http_server`: one process, an I/O loop that reads whole requests,
and a few threads that serve complete ones) and the queue worker (huey consumer). They are
siblings rather than parent and child so that each one's exit status reaches the supervisor
and neither reaps the other. The supervisor forwards SIGTERM and SIGINT to both and waits
for them to finish what they are doing; if either dies on its own, it stops the other and
exits non-zero, so the process manager sees the failure and restarts the whole unit instead
of running a receiver that queues work nobody does.

`worker` runs the queue worker alone, for deployments that scale receivers and workers
separately (Redis queue).

SIGHUP reloads the config (see `connector.reload`): the supervisor forwards it to both
children; the receiver's config watcher re-checks the files at once (and polls them every
CONNECTOR_CONFIG_POLL_INTERVAL seconds), keeping the last good config when the new one is
rejected.

The receiver used to run under gunicorn's `gthread` worker, whose threads read the request
themselves: eight clients trickling a body took every thread (issue 12). Setting
CONNECTOR_HTTP_SERVER=gunicorn still runs that stack, with its control socket off, so the
two can be compared (bench/slow_clients.py) and as a way back during the change-over; it is
not protected against slow clients and will be removed.
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Set
from typing import Any

from connector.queue.storage import create_huey
from connector.queue.worker import WORKER_SHUTDOWN_TIMEOUT, run_worker
from connector.scrub import scrub, scrub_traceback, scrub_value
from connector.settings import Settings

log = logging.getLogger(__name__)

# One HTTP process: the receiver does a few milliseconds of work per event, and a single
# process keeps the Prometheus counters of /metrics in one place. Threads absorb bursts.
RECEIVER_THREADS = 8
REQUEST_TIMEOUT = 30  # seconds (legacy gunicorn stack only); Jira gives up on a delivery after about 10
HTTP_SERVERS = ("waitress", "gunicorn")
_BIND_ATTEMPTS = 5  # a port still held by a receiver that is exiting: retry like gunicorn did
_KILL_AFTER = WORKER_SHUTDOWN_TIMEOUT + 5
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event and the record's `extra` fields.

    The code logs events with fields (`log.info("reconcile.done", extra={...})`); without
    this the fields would be dropped and an operator would see bare event names. JSON lines
    are what journald, Kubernetes and log shippers index without parsing rules.

    Every text of the line – the event, the fields, the exception and its traceback – is
    scrubbed of credentials, known secrets and e-mail addresses (`connector.scrub`): the
    last line of defence behind the scrubbing of platform error texts where they are
    raised, for a library exception or a field nobody thought of.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "event": scrub(_message(record)),
            "pid": record.process,
        }
        line.update({k: scrub_value(v) for k, v in vars(record).items()
                     if k not in _RECORD_ATTRIBUTES and not k.startswith("_")})
        if record.exc_info:
            # Its own scrub limit: a traceback is longer than an error text and worth keeping whole.
            line["exception"] = scrub_traceback(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = scrub_traceback(record.exc_text)
        return json.dumps(line, default=str, ensure_ascii=False)


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a broken format string must not lose the line
        return str(record.msg)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr at `level` (`Settings.log_level`, CONNECTOR_LOG_LEVEL), for `serve` and `worker`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def run_receiver(settings: Settings, host: str, port: int, allow_unsigned: Set[str] = frozenset()) -> int:
    """Serve the webhook receiver in this process until SIGTERM/SIGINT; return the exit status."""
    server_name = settings.http_server
    if server_name == "gunicorn":
        return _run_gunicorn(settings, host, port, allow_unsigned)
    from connector.http_server import create_server, serve_until_stopped
    from connector.reload import ConfigWatcher
    from webhooks.app import MAX_BODY_BYTES, create_app

    watcher = ConfigWatcher(settings.config_path, poll_interval=settings.config_poll_every)
    # From here on SIGHUP means "check the config now" (its default action would end us);
    # the poll thread started below does the check.
    signal.signal(signal.SIGHUP, lambda signum, frame: watcher.wake())
    watcher.check(force=True)
    app = create_app(settings, allow_unsigned=frozenset(allow_unsigned), config_watcher=watcher)
    for attempt in range(1, _BIND_ATTEMPTS + 1):
        try:
            server = create_server(app, host, port, max_body_bytes=MAX_BODY_BYTES, threads=RECEIVER_THREADS)
            break
        except OSError as exc:
            if attempt == _BIND_ATTEMPTS:
                log.error("receiver.bind_failed", extra={"host": host, "port": port, "error": str(exc)})
                return 1
            time.sleep(1)
    watcher.start()
    # Everything built so far (Flask, the rules, the metrics registry: ~70,000 objects) lives
    # as long as the process; frozen, it is no longer scanned by the cyclic GC, whose full
    # collections otherwise paused every request thread for 30-60 ms in the middle of a
    # burst (measured with gc.callbacks under bench/load.py's load).
    # https://docs.python.org/3/library/gc.html#gc.freeze
    gc.collect()
    gc.freeze()
    log.info("receiver.started", extra={"host": host, "port": port, "pid": os.getpid(), "server": server_name})
    try:
        serve_until_stopped(server, shutdown_timeout=WORKER_SHUTDOWN_TIMEOUT)
    finally:
        watcher.stop()
    log.info("receiver.stopped", extra={"pid": os.getpid()})
    return 0


def _run_gunicorn(settings: Settings, host: str, port: int, allow_unsigned: Set[str]) -> int:
    from connector.gunicorn_legacy import ReceiverApplication

    log.info("receiver.started", extra={"host": host, "port": port, "pid": os.getpid(), "server": "gunicorn"})
    try:
        ReceiverApplication(settings, host, port, allow_unsigned,
                            threads=RECEIVER_THREADS, timeout=REQUEST_TIMEOUT,
                            graceful_timeout=WORKER_SHUTDOWN_TIMEOUT).run()
    except SystemExit as exit_:  # gunicorn ends its arbiter with sys.exit
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0


def worker(settings: Settings, workers: int = 2) -> int:
    """Run the queue worker until SIGTERM (finish running reconciles) or SIGINT.

    The worker also fires SLA timers (the deadline pump) and runs the periodic sweeps, so
    `serve` with its worker child, or `worker` alone, is all a deployment needs.
    """
    configure_logging(settings.log_level)
    run_worker(settings, workers)
    return 0


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8080,
    with_worker: bool = True,
    workers: int = 2,
    *,
    allow_unsigned: Set[str] = frozenset(),
) -> int:
    """Run the receiver, and unless `with_worker=False` a queue worker with `workers` threads.

    Return the exit status: 0 after a requested shutdown, non-zero when a child failed.
    Raise QueueConfigError before starting anything when the queue settings are unusable.
    """
    configure_logging(settings.log_level)
    # Fail here, with the message, rather than in a child's boot where it is a stack trace.
    create_huey(settings)
    if not with_worker:
        return run_receiver(settings, host, port, allow_unsigned)

    context = multiprocessing.get_context("fork")
    children = {
        "worker": context.Process(target=_child_main, args=(worker, settings, workers), name="connector-worker"),
        "receiver": context.Process(
            target=_child_main,
            args=(run_receiver, settings, host, port, frozenset(allow_unsigned)),
            name="connector-receiver",
        ),
    }
    for child in children.values():
        child.start()
    return _supervise(children)


def _child_main(entry_point, *args) -> None:
    raise SystemExit(entry_point(*args))


def _supervise(children: dict[str, multiprocessing.process.BaseProcess]) -> int:
    signalled: set[str] = set()
    requested = False

    def stop(names) -> None:
        # Each child gets one SIGTERM: a second one makes huey abandon running tasks.
        for name in names:
            child = children[name]
            if name not in signalled and child.is_alive() and child.pid is not None:
                signalled.add(name)
                os.kill(child.pid, signal.SIGTERM)

    def forward_hangup(signum: int, frame) -> None:
        log.info("serve.reload_requested")
        for child in children.values():
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGHUP)

    def on_signal(signum: int, frame) -> None:
        nonlocal requested
        requested = True
        log.info("serve.stopping", extra={"signal": signal.Signals(signum).name})
        stop(children)

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, forward_hangup)
    try:
        multiprocessing.connection.wait([child.sentinel for child in children.values()])
        if not requested:
            for name, child in children.items():
                if not child.is_alive():
                    log.error("serve.child_exited", extra={"child": name, "exit_code": child.exitcode})
        stop(children)
        for name, child in children.items():
            child.join(_KILL_AFTER)
            if child.is_alive():
                log.error("serve.child_killed", extra={"child": name, "after_seconds": _KILL_AFTER})
                child.kill()
                child.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if requested and all(child.exitcode == 0 for child in children.values()):
        return 0
    failed = [child.exitcode for child in children.values() if child.exitcode]
    return failed[0] if failed and failed[0] > 0 else 1
