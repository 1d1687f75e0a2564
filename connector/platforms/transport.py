"""What both adapters do with every HTTP exchange: count it, and name a failure without an answer.

Every request to a platform is counted (`connector_api_calls_total`, by platform, method
and status) whoever sent it – the adapter, the client library, `connector doctor` –
because the per-site rate limit is the scarce resource this metric watches. A request
that got no answer at all (refused, timed out, cut off) is counted as `no_response`, and
becomes the taxonomy error that says whether it may have reached the platform.

`call_platform` is how both clients send a request: under the one retry policy, with whatever the
client library raises translated into the taxonomy of `base.py` first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import requests

from connector.metrics import API_CALLS
from connector.platforms.base import PlatformError, RetryPolicy, error_from_requests

T = TypeVar("T")


def count_answer(platform: str, method: str | None, status: int) -> None:
    """One answer from the platform."""
    API_CALLS.labels(platform=platform, method=method or "?", status=str(status)).inc()


def failure_without_answer(exc: requests.RequestException, *, platform: str, method: str) -> PlatformError:
    """The taxonomy error for a `requests` failure with no HTTP answer to read, counted.

    An answer that is not JSON did arrive (and was counted when it did), so it is not
    counted again."""
    if not isinstance(exc, requests.exceptions.InvalidJSONError):
        API_CALLS.labels(platform=platform, method=method, status="no_response").inc()
    return error_from_requests(exc, platform=platform)


def call_platform(
    policy: RetryPolicy,
    platform: str,
    operation: str,
    fn: Callable[[], T],
    translate: Callable[[Exception], PlatformError | None],
    *,
    idempotent: bool,
) -> T:
    """Run one request `fn` under `policy`; `translate` turns a library exception into the
    taxonomy (None: not a platform failure, a programming error that propagates as is)."""

    def attempt() -> T:
        try:
            return fn()
        except PlatformError:
            raise
        except Exception as exc:
            error = translate(exc)
            if error is None:
                raise
            # `from None`: library exceptions carry request headers and response bodies,
            # which must not reach logs through a chained traceback.
            raise error from None

    return policy.call(operation, attempt, idempotent=idempotent, platform=platform)
