"""What every platform adapter shares: the error taxonomy, the one retry policy, the protocol.

Why this exists: the worker, the sweep and the queue must react to "rate limited", "ticket
gone" or "credentials revoked" the same way whether the ticket lives in Jira or Zendesk,
so library exceptions (`JIRAError`, zenpy's `APIException`, `requests` errors) are
translated here into one small tree and never leak past an adapter.

Retries happen in exactly one place. Both client libraries retry on their own (the `jira`
library's ResilientSession may retry earlier than `Retry-After` and resend a POST; zenpy
sleeps on 429 without limit), so adapters turn that off and route every request through
`RetryPolicy.call`. Its rules:

- Retried: 429, 502/503/504, 408, connection failures and timeouts. Never any other 4xx
  (the request is wrong and will stay wrong) and never a 500 (a server bug; the durable
  queue reschedules with its own, longer, back-off).
- Waits at least `Retry-After` (seconds or an HTTP-date), else a jittered exponential
  back-off (1 s, 2 s, 4 s … capped at 30 s). A required wait longer than the inline limit
  (30 s) is not slept: the error is raised at once, carrying `retry_after`, so the queue
  reschedules the reconcile instead of a worker sitting idle for minutes.
- At most `max_attempts` (4) requests per call.
- Non-idempotent writes are resent only when the platform cannot have acted on them:
  after a 429 (refused before processing) or a failure to connect (nothing was sent).
  After a read timeout, a dropped connection or a 5xx the request may have been carried
  out, and a resent "add comment" would post the comment twice. Such errors are raised
  instead; the next reconcile re-reads the ticket and sees whether the write landed (a
  one-time comment travels with its marker label in one request, so the re-read tells).
  A write is idempotent when repeating it leaves the same state: setting fields and adding
  or removing labels are; adding a comment or running a workflow transition is not.

The sleep function, the jitter source and the clock are injectable so tests neither wait
nor depend on chance, and can assert that every wait honoured `Retry-After`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

import requests
import tenacity
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from connector.model import Action, Plan, Platform, Ticket
from connector.scrub import error_text

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_INLINE_WAIT_LIMIT = 30.0
DEFAULT_BACKOFF_INITIAL = 1.0
DEFAULT_BACKOFF_MAX = 30.0

# Gateway errors: a proxy or load balancer in front of the platform failed, usually briefly.
TRANSIENT_SERVER_STATUSES = frozenset({502, 503, 504})


# --- error taxonomy ---------------------------------------------------------------------


class PlatformError(Exception):
    """A platform call failed; subclasses say how, so callers never parse messages.

    `retryable` says whether the same request may succeed if sent again soon;
    `may_have_taken_effect` whether the platform may already have acted on it (which is what
    forbids resending a non-idempotent write); `retry_after` is the wait the platform asked
    for, in seconds, when it said.
    """

    retryable: bool = False
    may_have_taken_effect: bool = True

    def __init__(
        self,
        message: str,
        *,
        platform: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        # The one place every platform error text becomes an exception message: an answer
        # echoing the request (a proxy's or Jira's error page) carries the API token and
        # customers' e-mail addresses, and the message goes into log lines (connector.scrub).
        message = error_text(message)
        super().__init__(message)
        self.message = message
        self.platform = platform
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f"{self.platform} " if self.platform else ""
        status = f"HTTP {self.status}: " if self.status is not None else ""
        return f"{where}{status}{self.message}"


class Unauthorized(PlatformError):
    """401/403: the token is wrong, expired or lacks a permission; retrying cannot help."""


class NotFound(PlatformError):
    """404/410: the ticket (or endpoint) does not exist or is hidden from the connector."""


class Conflict(PlatformError):
    """409: the platform refused because of a concurrent change; the next reconcile re-reads."""


class StaleTicket(Conflict):
    """The ticket changed between our read and our write in a way that makes the write moot
    (e.g. Zendesk closed a solved ticket by itself: 422 "Status: closed prevents ticket
    update"). Like a 409, the answer is to re-read the ticket and plan again at once."""


class BadRequest(PlatformError):
    """Another 4xx; `message` is the platform's own reason (e.g. a field it rejected)."""


class RateLimited(PlatformError):
    """429. `retry_after` is the platform's Retry-After in seconds, None when it gave none."""

    retryable = True
    # A 429 is answered before the request is processed.
    may_have_taken_effect = False

    def __init__(self, message: str, *, retry_after: float | None, platform: str | None = None) -> None:
        super().__init__(message, platform=platform, status=429, retry_after=retry_after)


class HostError(PlatformError):
    """5xx, a broken connection or an unusable answer: the platform side failed."""

    def __init__(
        self,
        message: str,
        *,
        platform: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool = True,
        may_have_taken_effect: bool = True,
    ) -> None:
        super().__init__(message, platform=platform, status=status, retry_after=retry_after)
        self.retryable = retryable
        self.may_have_taken_effect = may_have_taken_effect


class Timeout(PlatformError):
    """No answer in time. A connect timeout sent nothing; a read timeout may have been acted on."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        platform: str | None = None,
        status: int | None = None,
        may_have_taken_effect: bool = True,
    ) -> None:
        super().__init__(message, platform=platform, status=status)
        self.may_have_taken_effect = may_have_taken_effect


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date (RFC 9110).

    A date in the past means "now" (0). Anything unreadable gives None, so the caller falls
    back on its own back-off rather than guessing.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    reference = now or datetime.now(timezone.utc)
    return max(0.0, (when - reference).total_seconds())


def error_from_response(
    status: int,
    headers: Mapping[str, str] | None,
    message: str,
    *,
    platform: str,
    now: datetime | None = None,
) -> PlatformError:
    """The taxonomy error for an HTTP error answer; `message` is the platform's reason."""
    headers = headers or {}
    retry_after = parse_retry_after(headers.get("Retry-After"), now=now)
    text = message or f"HTTP {status}"
    if status == 429:
        return RateLimited(text, retry_after=retry_after, platform=platform)
    if status in (401, 403):
        return Unauthorized(text, platform=platform, status=status)
    if status in (404, 410):
        return NotFound(text, platform=platform, status=status)
    if status == 409:
        return Conflict(text, platform=platform, status=status)
    if 300 <= status < 400:
        # Redirects are never followed (refuse_redirects): the base URL is wrong.
        return HostError(f"HTTP {status}: the platform answered with a redirect; check the base URL",
                         platform=platform, status=status, retryable=False, may_have_taken_effect=False)
    if status == 408:
        # The server gave up waiting for the request to arrive: it did not act on it.
        return Timeout(text, platform=platform, status=status, may_have_taken_effect=False)
    if status >= 500:
        return HostError(
            text,
            platform=platform,
            status=status,
            retry_after=retry_after,
            retryable=status in TRANSIENT_SERVER_STATUSES,
        )
    return BadRequest(text, platform=platform, status=status)


def _nothing_was_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection failed before the request went out (refused, DNS, connect timeout)."""
    reason: Any = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3 MaxRetryError wraps the cause
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def error_from_requests(exc: requests.RequestException, *, platform: str) -> PlatformError:
    """The taxonomy error for a `requests` failure that produced no HTTP answer to read."""
    name = type(exc).__name__
    if isinstance(exc, requests.ConnectTimeout):
        return Timeout(f"connect timeout ({name})", platform=platform, may_have_taken_effect=False)
    if isinstance(exc, requests.Timeout):
        return Timeout(f"read timeout ({name})", platform=platform, may_have_taken_effect=True)
    if isinstance(exc, requests.exceptions.SSLError):
        # A certificate problem does not fix itself within seconds.
        return HostError(f"TLS failure ({name})", platform=platform, retryable=False, may_have_taken_effect=False)
    if isinstance(exc, requests.ConnectionError):
        sent = not _nothing_was_sent(exc)
        return HostError(f"connection failed ({name})", platform=platform, may_have_taken_effect=sent)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return HostError(f"answer cut off ({name})", platform=platform)
    if isinstance(exc, requests.TooManyRedirects):
        # Sessions follow no redirects (see refuse_redirects): a platform that redirects is
        # misconfigured (wrong base URL, http→https) and credentials must not follow it.
        return HostError(f"the platform answered with a redirect; check the base URL ({name})",
                         platform=platform, retryable=False, may_have_taken_effect=False)
    if isinstance(exc, requests.exceptions.InvalidJSONError):
        # A login page from an SSO proxy, say: resending gets the same page.
        return HostError(f"answer is not JSON ({name})", platform=platform, retryable=False)
    return PlatformError(f"request failed ({name})", platform=platform)


def refuse_redirects(session: requests.Session) -> requests.Session:
    """Make a session follow no redirect at all.

    Outbound requests go only to the configured base URL: a redirect to another host would
    carry the API token along (requests strips Authorization only on some host changes,
    and never for a token in the query), so it is an error the admin must fix instead.
    """
    session.max_redirects = 0
    return session


# --- the retry policy -------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """The one retry policy for every platform call (see the module docstring for the rules)."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    inline_wait_limit: float = DEFAULT_INLINE_WAIT_LIMIT
    backoff_initial: float = DEFAULT_BACKOFF_INITIAL
    backoff_max: float = DEFAULT_BACKOFF_MAX
    sleep: Callable[[float], None] = time.sleep
    # (low, high) -> a number between them; fixed in tests to make waits exact.
    uniform: Callable[[float, float], float] = random.uniform

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.inline_wait_limit < 0 or self.backoff_initial <= 0 or self.backoff_max < self.backoff_initial:
            raise ValueError("need inline_wait_limit >= 0 and 0 < backoff_initial <= backoff_max")

    def backoff(self, attempt: int) -> float:
        """Jittered exponential wait after failed attempt number `attempt` (1-based).

        "Equal jitter": between half and all of initial * 2^(attempt-1), capped, so workers
        that failed together spread out yet never hammer the platform with near-zero waits.
        """
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** (attempt - 1))
        return min(self.uniform(ceiling / 2, ceiling), self.inline_wait_limit)

    def wait_for(self, error: PlatformError, attempt: int) -> float:
        """Seconds to sleep before resending after `error` on attempt `attempt`."""
        if error.retry_after is not None:
            # At least what the platform asked for, plus a little spread so a crowd of
            # workers told "3 seconds" does not come back in the same millisecond.
            return error.retry_after + self.uniform(0.0, min(self.backoff_initial, 1.0))
        return self.backoff(attempt)

    def should_retry(self, error: BaseException, *, idempotent: bool) -> bool:
        if not isinstance(error, PlatformError) or not error.retryable:
            return False
        if not idempotent and error.may_have_taken_effect:
            return False
        if error.retry_after is not None and error.retry_after > self.inline_wait_limit:
            return False
        return True

    def call(
        self,
        operation: str,
        fn: Callable[[], T],
        *,
        idempotent: bool,
        platform: str | None = None,
    ) -> T:
        """Run `fn` (one HTTP request that raises `PlatformError` on failure) under the policy.

        `operation` names the call in log events (e.g. "issue.edit"). Exceptions that are not
        `PlatformError` are programming errors and propagate at once.
        """

        def retry(state: tenacity.RetryCallState) -> bool:
            assert state.outcome is not None
            error = state.outcome.exception()
            if error is None:
                return False
            retrying = self.should_retry(error, idempotent=idempotent)
            if not retrying and isinstance(error, PlatformError) and error.retryable:
                log.info(
                    "platform.retry_deferred",
                    extra={
                        "platform": platform,
                        "operation": operation,
                        "attempt": state.attempt_number,
                        "error": type(error).__name__,
                        "status": error.status,
                        "retry_after": error.retry_after,
                        "idempotent": idempotent,
                    },
                )
            return retrying

        def wait(state: tenacity.RetryCallState) -> float:
            assert state.outcome is not None
            error = state.outcome.exception()
            assert isinstance(error, PlatformError)
            return self.wait_for(error, state.attempt_number)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            assert state.outcome is not None and state.next_action is not None
            error = state.outcome.exception()
            log.warning(
                "platform.retry",
                extra={
                    "platform": platform,
                    "operation": operation,
                    "attempt": state.attempt_number,
                    "wait_seconds": round(state.next_action.sleep, 3),
                    "error": type(error).__name__,
                    "status": getattr(error, "status", None),
                },
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            retry=retry,
            wait=wait,
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn)


# --- what adapters return and promise ---------------------------------------------------


@dataclass(frozen=True)
class SkippedAction:
    """An action of the plan that caused no write, and why (already done, impossible …)."""

    action: Action
    reason: str


@dataclass
class ApplyResult:
    """What `apply` did: the write requests it sent, the actions they carried, what it skipped.

    `warnings` are things an admin should look at that did not fail the plan, such as a
    transition the workflow does not offer from the ticket's current status.
    """

    writes: list[str] = field(default_factory=list)
    applied: list[Action] = field(default_factory=list)
    skipped: list[SkippedAction] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Writes the platform refused and that would be refused again (a field not on the edit
    # screen, a status that forbids edits, a transition field nobody can supply), each naming
    # the field or status; reported (log, `connector_writes_refused_total`) and not resent.
    refused: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.writes)


@dataclass(frozen=True)
class Unchanged:
    """`fetch_if_changed`'s answer when the ticket read alone showed the ticket settled (same
    `updated` stamp as at its last reconcile, next deadline not reached, same config): the
    rest of the read (Zendesk's audits) was not made, so there is no ticket to evaluate."""

    ticket_id: str
    updated: datetime | None


@runtime_checkable
class PlatformAdapter(Protocol):
    """One platform: read a ticket, write a plan back, list tickets for the sweep."""

    platform: Platform

    def fetch(self, ticket_id: str) -> Ticket:
        """The ticket with its status history and comments, in as few requests as possible."""
        ...

    def apply(self, ticket: Ticket, plan: Plan) -> ApplyResult:
        """Write what `plan` asks and `ticket` does not already show; no request for a no-op."""
        ...

    def search(self, query: str, fields: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
        """Raw tickets matching a platform query (JQL for Jira), paged lazily."""
        ...
