"""Platform-neutral machinery shared by the Jira and Zendesk sandboxes.

A sandbox is only useful if tests and the demo can make it misbehave the way a real SaaS
API does and can see exactly what the connector asked of it. Those needs are the same for
every platform, so they live here once:

- `Clock`: the sandbox's notion of "now". Tickets are back-dated and SLA deadlines are
  crossed by moving this clock, never by sleeping.
- `FaultInjector`: 429s with Retry-After, 503s and slow answers, scoped by path prefix and
  count, because API calls (not CPU) are the connector's scarce resource and its single
  retry policy must be exercised against them.
- `CallLog`: every request counted by (method, path template, status), so tests and
  benchmarks can assert "no-op reconcile = one read".
- `WebhookDispatcher`: delivers webhooks from a background thread with retries, like the
  platforms do, so an API response never waits on the receiver.
- `ThreadedServer`: a real HTTP server on 127.0.0.1, so the real client libraries (jira,
  zenpy) are exercised over real sockets.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

log = logging.getLogger(__name__)


class Clock:
    """A settable clock; frozen by default so timestamps in tests are exact.

    With `frozen=False` it ticks with real time from `start`, which suits a standalone
    sandbox driven by a human; `advance` and `set` still work and shift it.
    """

    def __init__(self, start: datetime | None = None, *, frozen: bool = True) -> None:
        if start is None:
            start = datetime.now(UTC).replace(microsecond=0)
        if start.tzinfo is None:
            raise ValueError("Clock needs a timezone-aware datetime")
        self._lock = threading.Lock()
        self._base = start
        self._frozen = frozen
        self._mono0 = time.monotonic()

    def now(self) -> datetime:
        with self._lock:
            if self._frozen:
                return self._base
            return self._base + timedelta(seconds=time.monotonic() - self._mono0)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._base += delta
            return self._base

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("Clock.set needs a timezone-aware datetime")
        with self._lock:
            self._base = moment
            self._mono0 = time.monotonic()


@dataclass
class Fault:
    """One injected misbehaviour; `remaining=None` means until cleared."""

    status: int | None
    retry_after: float | None
    remaining: int | None
    path_prefix: str | None
    method: str | None
    delay: float
    body: Any

    def body_for(self, request: Any) -> Any:
        """The error body: `body` itself, or what `body(request)` gives – a fault may echo the
        request, as a proxy's or a Jira error page does. A `str` is served as an HTML page."""
        return self.body(request) if callable(self.body) else self.body

    def matches(self, method: str, path: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


class FaultInjector:
    """Faults are consumed in the order they were injected; the first match wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def inject(
        self,
        status: int | None = 429,
        *,
        retry_after: float | None = None,
        times: int | None = 1,
        path_prefix: str | None = None,
        method: str | None = None,
        delay: float = 0.0,
        body: Any = None,
    ) -> Fault:
        if status is None and delay <= 0:
            raise ValueError("a fault needs an error status, a delay, or both")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for 'until cleared')")
        if status == 429 and retry_after is None:
            # Both Jira and Zendesk always send Retry-After with a 429.
            retry_after = 1
        fault = Fault(status, retry_after, times, path_prefix, method, delay, body)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
            self._faults = [f for f in self._faults if f.remaining is None or f.remaining > 0]
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if f.remaining is None or f.remaining > 0]


class Call(NamedTuple):
    method: str
    path: str  # the route template, e.g. /rest/api/2/issue/{issueIdOrKey}
    status: int


class CallLog:
    """Thread-safe request counter keyed by `Call`; plain tuples work as keys too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[Call] = Counter()

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._counts[Call(method.upper(), path, status)] += 1

    def snapshot(self) -> Counter[Call]:
        with self._lock:
            return Counter(self._counts)

    def count(self, method: str | None = None, path: str | None = None, status: int | None = None) -> int:
        with self._lock:
            return sum(
                n
                for call, n in self._counts.items()
                if (method is None or call.method == method.upper())
                and (path is None or call.path == path)
                and (status is None or call.status == status)
            )

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


@dataclass
class Delivery:
    """One webhook as built by the sandbox, and what happened when it was sent."""

    event: str
    url: str | None
    body: bytes
    headers: dict[str, str]
    identifier: str
    attempts: int = 0
    status: int | None = None  # last HTTP status from the receiver, None if unreachable/unsent
    delivered: bool = False
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)


# Statuses on which Jira (and Zendesk) retry a webhook; anything else is final.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))


class WebhookDispatcher:
    """Sends webhooks in order from one daemon thread, retrying failures a few times.

    `sign(body) -> headers` is the platform's signature scheme. Every webhook built is
    recorded in `log` even when delivery is off, so tests can assert what *would* have
    been sent without running a receiver.
    """

    def __init__(
        self,
        sign: Callable[[bytes], Mapping[str, str]],
        *,
        url: str | None = None,
        enabled: bool = True,
        max_attempts: int = 4,
        backoff: tuple[float, ...] = (0.2, 1.0, 3.0),
        timeout: float = 5.0,
        identifier_header: str | None = None,
    ) -> None:
        self.sign = sign
        self.url = url
        self.enabled = enabled
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.timeout = timeout
        self.identifier_header = identifier_header
        self.log: list[Delivery] = []
        self._log_lock = threading.Lock()
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._http = requests.Session()

    def send(self, event: str, body: bytes, extra_headers: Mapping[str, str] | None = None) -> Delivery:
        identifier = str(uuid.uuid4())
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "connector-sandbox"}
        if self.identifier_header:
            headers[self.identifier_header] = identifier
        headers.update(extra_headers or {})
        headers.update(self.sign(body))
        target = self.url if self.enabled else None
        delivery = Delivery(event=event, url=target, body=body, headers=headers, identifier=identifier)
        with self._log_lock:
            self.log.append(delivery)
        if target is None:
            delivery.done.set()
            return delivery
        self._ensure_thread()
        self._queue.put(delivery)
        return delivery

    @property
    def delivered(self) -> list[Delivery]:
        with self._log_lock:
            return [d for d in self.log if d.delivered]

    def clear(self) -> None:
        with self._log_lock:
            self.log.clear()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued webhook has been delivered or given up on."""
        deadline = time.monotonic() + timeout
        with self._log_lock:
            pending = list(self.log)
        for delivery in pending:
            if not delivery.done.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)
        self._thread = None
        self._http.close()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            delivery = self._queue.get()
            if delivery is None:
                return
            try:
                self._deliver(delivery)
            finally:
                delivery.done.set()

    def _deliver(self, delivery: Delivery) -> None:
        assert delivery.url is not None
        for attempt in range(1, self.max_attempts + 1):
            delivery.attempts = attempt
            try:
                response = self._http.post(
                    delivery.url, data=delivery.body, headers=delivery.headers, timeout=self.timeout
                )
                delivery.status = response.status_code
                if response.status_code < 300:
                    delivery.delivered = True
                    delivery.error = None
                    return
                delivery.error = f"HTTP {response.status_code}"
                if response.status_code not in RETRYABLE_STATUSES:
                    break
            except requests.RequestException as exc:
                delivery.error = type(exc).__name__
            if attempt < self.max_attempts:
                time.sleep(self.backoff[min(attempt - 1, len(self.backoff) - 1)])
        log.warning(
            "sandbox.webhook.failed",
            extra={"event": delivery.event, "attempts": delivery.attempts, "error": delivery.error},
        )


class _QuietRequestHandler(WSGIRequestHandler):
    """Access lines go to this module's logger at debug level, not to stderr."""

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("sandbox.http." + type, extra={"line": message % args})


class ThreadedServer:
    """A WSGI app served by werkzeug's threaded server on a background thread."""

    def __init__(self, app: Callable[..., Any], host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("server is not running; call start() first")
        return f"http://{self.host}:{self._server.server_port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> str:
        if self._server is not None:
            return self.base_url
        # port=0 lets the OS pick a free port; the bound port is read back from the socket.
        self._server = make_server(self.host, self.port, self.app, threaded=True, request_handler=_QuietRequestHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-http", daemon=True
        )
        self._thread.start()
        return self.base_url

    def serve_forever(self) -> None:
        """Serve on the calling thread (standalone mode) until interrupted."""
        self._server = make_server(self.host, self.port, self.app, threaded=True, request_handler=_QuietRequestHandler)
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()
            self._server = None

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None


class SandboxControls:
    """What tests and benchmarks do to any sandbox: inject faults, count calls, steer webhooks.

    A sandbox class mixes this in and provides `_server` (ThreadedServer), `store` (with a
    `base_url` its responses use), `_faults` (FaultInjector), `_calls` (CallLog), `webhooks`
    (WebhookDispatcher) and `webhook_secret`.
    """

    _server: "ThreadedServer"
    store: Any
    _faults: FaultInjector
    _calls: CallLog
    webhooks: "WebhookDispatcher"
    webhook_secret: str | None

    def start(self) -> str:
        url = self._server.start()
        self.store.base_url = url  # links in responses ("self") point at the real port
        return url

    def stop(self) -> None:
        self._server.stop()
        self.webhooks.close()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, status: int | None = 429, *, retry_after: float | None = None, times: int | None = 1,
               path_prefix: str | None = None, method: str | None = None, delay: float = 0.0,
               body: Any = None) -> Fault:
        """Make the next `times` matching requests fail with `status` (after `delay` seconds).

        `status=None` with a delay makes requests slow but successful; `times=None` keeps the
        fault until `clear_faults()`. A 429 always carries Retry-After (default 1 s). `body`
        replaces the platform-shaped default error body.
        """
        return self._faults.inject(status, retry_after=retry_after, times=times, path_prefix=path_prefix,
                                   method=method, delay=delay, body=body)

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def calls(self) -> Counter[Call]:
        """Requests served so far, keyed by (method, path template, status)."""
        return self._calls.snapshot()

    def count(self, method: str | None = None, path: str | None = None, status: int | None = None) -> int:
        return self._calls.count(method, path, status)

    def reset_calls(self) -> None:
        self._calls.reset()

    def set_webhook(self, url: str | None, secret: str | None = None) -> None:
        self.webhooks.url = url
        self.webhook_secret = secret

    @property
    def webhook_log(self) -> list[Delivery]:
        """Every webhook built, delivered or not (delivery may be off)."""
        return list(self.webhooks.log)

    def flush_webhooks(self, timeout: float = 10.0) -> bool:
        return self.webhooks.flush(timeout)
