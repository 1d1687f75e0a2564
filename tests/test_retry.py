"""The shared retry policy and error taxonomy, without any HTTP: waits are recorded, not slept."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from connector.platforms.base import (
    BadRequest,
    Conflict,
    HostError,
    NotFound,
    PlatformError,
    RateLimited,
    RetryPolicy,
    Timeout,
    Unauthorized,
    error_from_requests,
    error_from_response,
    parse_retry_after,
)

NOW = datetime(2026, 4, 20, 10, 0, tzinfo=timezone.utc)


class Script:
    """A call that fails with the given errors in turn, then returns "done"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def policy(sleeps: list[float], **kwargs) -> RetryPolicy:
    # uniform -> the upper bound: waits become exact and the largest jitter allowed.
    return RetryPolicy(sleep=sleeps.append, uniform=lambda low, high: high, **kwargs)


# --- Retry-After ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), (" 120 ", 120.0), ("0.5", 0.5), ("-4", 0.0), ("", None), ("soon", None), (None, None)],
)
def test_retry_after_in_seconds(header, seconds):
    assert parse_retry_after(header, now=NOW) == seconds


def test_retry_after_as_http_date():
    header = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(header, now=NOW) == 90.0


def test_retry_after_date_in_the_past_means_now():
    header = format_datetime(NOW - timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(header, now=NOW) == 0.0


# --- translation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, BadRequest, False),
        (401, Unauthorized, False),
        (403, Unauthorized, False),
        (404, NotFound, False),
        (408, Timeout, True),
        (409, Conflict, False),
        (410, NotFound, False),
        (422, BadRequest, False),
        (429, RateLimited, True),
        (500, HostError, False),
        (502, HostError, True),
        (503, HostError, True),
        (504, HostError, True),
    ],
)
def test_status_codes_map_onto_the_taxonomy(status, kind, retryable):
    error = error_from_response(status, {}, "reason from the platform", platform="jira")
    assert type(error) is kind
    assert error.retryable is retryable
    assert error.status == status
    assert error.message == "reason from the platform"


def test_rate_limit_carries_retry_after_and_was_not_processed():
    error = error_from_response(429, {"Retry-After": "7"}, "", platform="zendesk")
    assert isinstance(error, RateLimited)
    assert error.retry_after == 7.0
    assert error.may_have_taken_effect is False
    assert str(error) == "zendesk HTTP 429: HTTP 429"


def test_service_unavailable_keeps_retry_after():
    error = error_from_response(503, {"Retry-After": "45"}, "maintenance", platform="jira")
    assert isinstance(error, HostError) and error.retry_after == 45.0


def _refused() -> requests.ConnectionError:
    cause = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    return requests.ConnectionError(MaxRetryError(None, "/rest/api/2/issue/SUP-1", cause))


@pytest.mark.parametrize(
    ("exc", "kind", "taken_effect", "retryable"),
    [
        (requests.ConnectTimeout("connect timed out"), Timeout, False, True),
        (requests.ReadTimeout("read timed out"), Timeout, True, True),
        (_refused(), HostError, False, True),
        (requests.ConnectionError(ProtocolError("Connection aborted.")), HostError, True, True),
        (requests.exceptions.SSLError("certificate verify failed"), HostError, False, False),
        (requests.exceptions.ChunkedEncodingError("connection broken"), HostError, True, True),
        (requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0), HostError, True, False),
        (requests.exceptions.InvalidURL("bad url"), PlatformError, True, False),
    ],
)
def test_requests_failures_map_onto_the_taxonomy(exc, kind, taken_effect, retryable):
    error = error_from_requests(exc, platform="jira")
    assert type(error) is kind
    assert error.may_have_taken_effect is taken_effect
    assert error.retryable is retryable


# --- the policy -----------------------------------------------------------------------


def test_success_needs_no_wait():
    sleeps: list[float] = []
    assert policy(sleeps).call("op", Script(), idempotent=True) == "done"
    assert sleeps == []


def test_waits_at_least_retry_after_then_succeeds():
    sleeps: list[float] = []
    call = Script(RateLimited("slow down", retry_after=3.0))
    assert policy(sleeps).call("op", call, idempotent=True) == "done"
    assert call.calls == 2
    assert len(sleeps) == 1 and 3.0 <= sleeps[0] <= 4.0


def test_waits_at_least_retry_after_even_with_the_smallest_jitter():
    sleeps: list[float] = []
    lowest = RetryPolicy(sleep=sleeps.append, uniform=lambda low, high: low)
    lowest.call("op", Script(RateLimited("slow down", retry_after=3.0)), idempotent=True)
    assert sleeps == [3.0]


def test_required_wait_beyond_the_inline_limit_raises_at_once():
    sleeps: list[float] = []
    call = Script(RateLimited("slow down", retry_after=120.0))
    with pytest.raises(RateLimited) as raised:
        policy(sleeps).call("op", call, idempotent=True)
    assert raised.value.retry_after == 120.0
    assert call.calls == 1 and sleeps == []


def test_inline_limit_is_configurable():
    sleeps: list[float] = []
    call = Script(HostError("maintenance", status=503, retry_after=10.0))
    with pytest.raises(HostError):
        policy(sleeps, inline_wait_limit=5.0).call("op", call, idempotent=True)
    assert call.calls == 1


def test_exponential_backoff_is_capped_and_attempts_are_bounded():
    sleeps: list[float] = []
    failures = [HostError("bad gateway", status=502) for _ in range(10)]
    call = Script(*failures)
    with pytest.raises(HostError):
        policy(sleeps, max_attempts=6, backoff_initial=1.0, backoff_max=8.0).call("op", call, idempotent=True)
    assert call.calls == 6
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 8.0]


def test_backoff_jitter_stays_between_half_and_full_step():
    seen: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        seen.append((low, high))
        return low

    RetryPolicy(uniform=uniform).backoff(3)
    assert seen == [(2.0, 4.0)]


@pytest.mark.parametrize(
    "error",
    [BadRequest("no such field", status=400), Unauthorized("expired", status=401), NotFound("gone", status=404),
     Conflict("edited meanwhile", status=409), HostError("bug", status=500, retryable=False)],
)
def test_errors_that_cannot_heal_are_not_retried(error):
    sleeps: list[float] = []
    call = Script(error)
    with pytest.raises(type(error)):
        policy(sleeps).call("op", call, idempotent=True)
    assert call.calls == 1 and sleeps == []


def test_programming_errors_propagate_untouched():
    call = Script(KeyError("fields"))
    with pytest.raises(KeyError):
        policy([]).call("op", call, idempotent=True)
    assert call.calls == 1


def test_non_idempotent_write_is_not_resent_when_it_may_have_landed():
    sleeps: list[float] = []
    call = Script(Timeout("read timeout", may_have_taken_effect=True))
    with pytest.raises(Timeout):
        policy(sleeps).call("comment", call, idempotent=False)
    assert call.calls == 1


def test_non_idempotent_write_is_resent_when_nothing_was_processed():
    sleeps: list[float] = []
    call = Script(
        RateLimited("slow down", retry_after=1.0),
        HostError("refused", may_have_taken_effect=False),
        Timeout("connect timeout", may_have_taken_effect=False),
    )
    assert policy(sleeps).call("comment", call, idempotent=False) == "done"
    assert call.calls == 4


def test_idempotent_call_is_resent_after_a_read_timeout():
    call = Script(Timeout("read timeout", may_have_taken_effect=True))
    assert policy([]).call("get", call, idempotent=True) == "done"
    assert call.calls == 2


def test_rate_limit_without_retry_after_uses_backoff_and_keeps_none():
    sleeps: list[float] = []
    call = Script(*[RateLimited("slow down", retry_after=None) for _ in range(4)])
    with pytest.raises(RateLimited) as raised:
        policy(sleeps).call("op", call, idempotent=True)
    assert raised.value.retry_after is None
    assert sleeps == [1.0, 2.0, 4.0]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"backoff_initial": 0}, {"backoff_initial": 5, "backoff_max": 1}, {"inline_wait_limit": -1}],
)
def test_nonsense_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
