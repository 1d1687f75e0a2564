"""The receiver's HTTP server: waitress, with a deadline on receiving each request.

Why waitress: it reads every request – headers and body – in one asynchronous I/O loop and
hands it to a worker thread only once it is complete ("It handles I/O to and from clients
using the wasyncore … It services requests via threads",
https://docs.pylonsproject.org/projects/waitress/en/latest/design.html). A client that sends
its body at one byte a second costs a socket and a buffer, not a thread, so signed webhooks
and /healthz keep their threads. gunicorn's `gthread` worker (what ran before) reads the
request in the thread that serves it; gunicorn itself says threaded and sync workers need a
buffering proxy in front when clients are slow ("If you want to deploy Gunicorn to handle
unbuffered requests (ie, serving requests directly from the internet) you should use one of
the async workers", https://github.com/benoitc/gunicorn/blob/21.0.1/docs/source/faq.rst).
gunicorn's async workers (gevent/eventlet) would need monkey-patching under huey, SQLite and
redis-py, and have no deadline on reading a request either.

What waitress does not bound by itself, this module does:

- `channel_timeout` only closes connections *idle* that long; a client trickling a byte a
  second is never idle. `DeadlineChannel` remembers when the first byte of the request it is
  receiving arrived, and `DeadlineServer.maintenance` drops every connection whose request is
  still incomplete `READ_DEADLINE` seconds later (nginx's `client_header_timeout` /
  `client_body_timeout` bound only the gap between two reads:
  https://nginx.org/en/docs/http/ngx_http_core_module.html#client_body_timeout).
- At `connection_limit` waitress stops accepting, so a flood of slow connections would lock
  out Jira too. At the limit, `DeadlineServer` first drops the connections that have been
  receiving a request (or sitting idle) the longest, never one whose request is being
  served, and keeps accepting.
- Graceful stop: `serve_until_stopped` stops accepting at SIGTERM/SIGINT, drops idle and
  half-received connections (nothing of theirs was stored or acknowledged), lets the
  requests being served finish and flush their answers, then ends the threads.
"""

from __future__ import annotations

import logging
import resource
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer

from connector.metrics import RECEIVER_CONNECTIONS, RECEIVER_CONNECTIONS_DROPPED, RECEIVER_REQUESTS_WAITING

log = logging.getLogger(__name__)
# waitress logs "Task queue depth is N" on every request that finds no idle thread: a line
# per event in any burst (1,300 lines for 1,500 events over 16 connections). The depth is the
# gauge connector_receiver_requests_waiting instead.
logging.getLogger("waitress.queue").setLevel(logging.ERROR)

# Jira and Zendesk send a whole delivery (a few KiB) at once; 10 s to receive one request,
# headers and body, is generous for them and bounds what a trickling client can hold.
READ_DEADLINE = 10.0
# A connection with nothing to do (keep-alive between requests, or a client that went
# quiet mid-request) is closed after this many seconds.
IDLE_TIMEOUT = 15
# Open connections at most: each costs a socket and at most MAX_HEADER_BYTES in memory
# (bodies above INBUF_OVERFLOW go to a temporary file). The loop uses poll(), not select(),
# so 1024 descriptors is no limit; the process's open-files limit is raised to fit.
CONNECTION_LIMIT = 1000
# At the limit, drop this many of the longest-waiting connections at once.
_EVICT_BATCH = 50
_EVICT_LOG_INTERVAL = 10.0  # seconds
THREADS = 8  # as before: threads serve complete requests only, a few ms each
MAX_HEADER_BYTES = 64 * 1024
INBUF_OVERFLOW = 64 * 1024
_LOOP_TIMEOUT = 0.2  # seconds; how soon the loop notices a stop request


class DeadlineChannel(HTTPChannel):
    """An HTTP connection that knows since when it has been receiving its current request."""

    receiving_since: float | None = None

    def received(self, data: bytes) -> bool:
        before = self.request
        result = super().received(data)
        if self.request is None:
            self.receiving_since = None  # every byte so far belonged to complete requests
        elif self.request is not before or self.receiving_since is None:
            self.receiving_since = time.time()  # a new request started in this chunk
        return result


class DeadlineServer(TcpWSGIServer):
    """waitress's TCP server with a deadline on receiving a request and eviction at the limit."""

    channel_class = DeadlineChannel
    read_deadline = READ_DEADLINE

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # idle connections: channel_timeout
        cutoff = now - self.read_deadline
        dropped = 0
        states = {"receiving": 0, "serving": 0, "idle": 0}
        for channel in list(self.active_channels.values()):
            since = getattr(channel, "receiving_since", None)
            if since is not None and since < cutoff and not channel.requests and not channel.will_close:
                channel.will_close = True
                dropped += 1
            states["serving" if channel.requests else "receiving" if since is not None else "idle"] += 1
        for state, count in states.items():
            RECEIVER_CONNECTIONS.labels(state).set(count)
        RECEIVER_REQUESTS_WAITING.set(len(self.task_dispatcher.queue))
        if dropped:
            RECEIVER_CONNECTIONS_DROPPED.labels("read_deadline").inc(dropped)
            # One line per sweep, not per connection: a flood must not flood the log too.
            log.warning("receiver.slow_requests_dropped", extra={
                "connections": dropped, "read_deadline_seconds": self.read_deadline})

    def readable(self) -> bool:
        if self.accepting and len(self._map) >= self.adj.connection_limit:
            self._evict(time.time())
        return super().readable()

    _evicted = 0  # since the last log line
    _evict_logged_at = 0.0

    def _evict(self, now: float) -> None:
        """Drop the connections that have waited longest for a complete request, to accept new ones."""
        candidates = [c for c in self.active_channels.values()
                      if not c.requests and not c.will_close and not c.total_outbufs_len]
        candidates.sort(key=lambda c: c.receiving_since if c.receiving_since is not None else c.last_activity)
        for channel in candidates[:_EVICT_BATCH]:
            channel.will_close = True
        self._evicted += min(len(candidates), _EVICT_BATCH)
        RECEIVER_CONNECTIONS_DROPPED.labels("connection_limit").inc(min(len(candidates), _EVICT_BATCH))
        if self._evicted and now - self._evict_logged_at >= _EVICT_LOG_INTERVAL:
            # At most one line per interval, with the count: a flood must not flood the log.
            log.warning("receiver.connection_limit_reached", extra={
                "limit": self.adj.connection_limit, "dropped": self._evicted})
            self._evicted, self._evict_logged_at = 0, now


def fit_connection_limit(wanted: int = CONNECTION_LIMIT, spare: int = 100) -> int:
    """The connection limit this process can hold: raise the soft descriptor limit towards
    `wanted + spare` (up to the hard limit), else lower the connection limit to fit.

    Past the descriptor limit accept() fails (EMFILE) while the map looks below the
    connection limit, so eviction never starts and new clients wait in the backlog.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + spare
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < needed:
        fitted = max(10, soft - spare)
        log.warning("receiver.connection_limit_lowered", extra={
            "wanted": wanted, "limit": fitted, "open_files_limit": soft,
            "fix": f"raise the open-files limit to {needed} (systemd LimitNOFILE=, ulimit -n)"})
        return fitted
    return wanted


def create_server(app: Callable, host: str, port: int, *, max_body_bytes: int, threads: int = THREADS,
                  **overrides: Any) -> DeadlineServer:
    """A bound, listening server for `app` (see https://docs.pylonsproject.org/projects/waitress/en/latest/arguments.html)."""
    options: dict[str, Any] = {
        "host": host, "port": port, "threads": threads,
        "channel_timeout": IDLE_TIMEOUT, "cleanup_interval": 1,
        "connection_limit": fit_connection_limit(), "asyncore_use_poll": True,
        "max_request_header_size": MAX_HEADER_BYTES,
        # The app enforces the exact limit and logs the refusal; waitress refuses a declared
        # length above it before reading the body (413), and cuts off a chunked one.
        "max_request_body_size": max_body_bytes + 1,
        "inbuf_overflow": INBUF_OVERFLOW,
        "ident": "connector",
        "expose_tracebacks": False,
        "log_socket_errors": False,  # resets by clients are not the operator's problem
    }
    options.update(overrides)
    return DeadlineServer(app, adj=Adjustments(**options))


def serve_until_stopped(server: DeadlineServer, *, shutdown_timeout: float,
                        on_hangup: Callable[[], None] | None = None) -> None:
    """Run the I/O loop in this (main) thread until SIGTERM or SIGINT, then stop gracefully."""
    stop = threading.Event()

    def on_stop(signum: int, frame) -> None:
        if not stop.is_set():
            log.info("receiver.stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    if on_hangup is not None:
        signal.signal(signal.SIGHUP, lambda signum, frame: on_hangup())
    socket_map = server._map
    while not stop.is_set():
        wasyncore.loop(timeout=_LOOP_TIMEOUT, map=socket_map, use_poll=True, count=1)
    _drain(server, shutdown_timeout)


def _drain(server: DeadlineServer, timeout: float) -> None:
    """Stop accepting; answer what is being served; drop the rest; end the threads."""
    socket_map = server._map
    server.accepting = False
    server.del_channel()
    server.socket.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = 0
        for channel in list(server.active_channels.values()):
            if channel.requests or channel.total_outbufs_len:
                busy += 1
            elif not channel.will_close:
                channel.will_close = True  # idle or half-received: nothing was acknowledged
        if not busy:
            break
        wasyncore.loop(timeout=_LOOP_TIMEOUT, map=socket_map, use_poll=True, count=1)
    else:
        log.error("receiver.stop_timeout", extra={"after_seconds": timeout,
                                                 "connections": len(server.active_channels)})
    wasyncore.loop(timeout=0, map=socket_map, use_poll=True, count=1)  # close what was marked
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
    server.trigger.close()
    wasyncore.close_all(socket_map)
