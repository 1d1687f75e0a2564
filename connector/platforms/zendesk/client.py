"""The one place that talks HTTP to Zendesk: one short method per API operation the adapter uses.

`/api/v2/incremental/tickets/cursor.json` (admins only) for the sweep, yielding each page
  with the cursor to resume from.

It is built on zenpy for authentication (`email/token` basic auth set up on the session),
its request path (`_call_api`, with its timeout) and its error types (`APIException`,
`RecordNotFoundException`), which are translated into the taxonomy in `base.py`. zenpy's
own waiting is switched off rather than stacked under `RetryPolicy`: the session is ours
(zenpy's default one mounts a urllib3 `Retry` that resends on 503 and connection errors),
proactive rate limiting stays off, and a 429 is raised by the session itself before
zenpy's retry-after loop (which sleeps in one-second steps and parses the header with
`int()`) can see it; `ratelimit_budget` was not used because its exception drops the
response, and with it the `Retry-After` the policy must honour. Raw JSON is kept
throughout (the parser reads Zendesk's own shapes), and URLs are built here from
`ZENDESK_URL`: zenpy's URL builder only knows `https://{subdomain}.{domain}` (the scheme
is a per-API attribute, the only other override is the process-wide
`ZENPY_FORCE_NETLOC`), so `http://127.0.0.1:PORT` or a proxy path could not be expressed
per adapter. zenpy is given no subdomain on purpose: any zenpy helper that tried to build
its own URL would fail loudly rather than talk to another host. zenpy's logger is capped
at WARNING because its debug lines carry request payloads and response bodies.

Zendesk also limits updates of one ticket to 30 per 10 minutes; the client counts its own
updates per ticket (`UpdateLimiter`) so a plan that would exceed the limit is refused
before anything is written. (The count is per process: replicas share the account's
limit, and Zendesk's own 429 is then handled like any other.)
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import requests
from zenpy import Zenpy
from zenpy.lib.exception import APIException, RatelimitBudgetExceeded, ZenpyException

from connector.model import Platform
from connector.platforms.base import (
    BadRequest,
    HostError,
    NotFound,
    PlatformError,
    RateLimited,
    RetryPolicy,
    error_from_response,
    refuse_redirects,
)
from connector.platforms.transport import call_platform, count_answer, failure_without_answer
from connector.platforms.zendesk.fields import TicketFieldCatalogue
from connector.scrub import error_text, scrub_value

log = logging.getLogger(__name__)
# Its debug lines print request kwargs (comment bodies) and whole responses.
logging.getLogger("zenpy").setLevel(logging.WARNING)

T = TypeVar("T")

PLATFORM: Platform = "zendesk"
PAGE_SIZE = 100
TICKET_UPDATE_LIMIT = 30
TICKET_UPDATE_WINDOW = 600.0
# Ticket ids are numbers; "#4540" is how the ticket's key is written.
_TICKET_REF = re.compile(r"^#?(\d+)$")


def ticket_ref(ticket_id: str) -> str:
    """The numeric id of `ticket_id` ("4540" or "#4540"), else NotFound (nothing reaches a URL unchecked)."""
    match = _TICKET_REF.match(str(ticket_id).strip())
    if match is None:
        raise NotFound("not a Zendesk ticket id", platform=PLATFORM)
    return match.group(1)


class _ZendeskSession(requests.Session):
    """Counts every answer and turns a 429 into `RateLimited` before zenpy can sleep on it.

    `send` runs once per HTTP exchange (redirects included), whoever asked for it.
    """

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        response = super().send(request, **kwargs)
        count_answer(PLATFORM, request.method, response.status_code)
        if response.status_code == 429:
            message = _error_message(response) or "rate limited"
            response.close()
            raise error_from_response(429, response.headers, message, platform=PLATFORM)
        return response


def _error_message(response: requests.Response) -> str:
    """Zendesk's reason from an error body: `error`, `description` and field details, no payload."""
    try:
        payload = response.json()
    except ValueError:
        return ""
    if not isinstance(payload, Mapping):
        return ""
    parts: list[str] = []
    error = payload.get("error")
    if isinstance(error, Mapping):  # {"error": {"title": ..., "message": ...}}
        parts.extend(str(error[key]) for key in ("title", "message") if error.get(key))
    elif error:
        parts.append(str(error))
    if payload.get("description"):
        parts.append(str(payload["description"]))
    details = payload.get("details")
    if isinstance(details, Mapping):
        for name, problems in details.items():
            for problem in problems if isinstance(problems, list) else [problems]:
                text = problem.get("description") if isinstance(problem, Mapping) else problem
                if text:
                    parts.append(f"{name}: {text}")
    text = ": ".join(parts[:2]) + ("" if len(parts) <= 2 else " (" + "; ".join(parts[2:]) + ")")
    # A proxy's or an echoing answer carries the request's credentials and e-mail addresses.
    return error_text(text)


class UpdateLimiter:
    """Zendesk's per-ticket update limit, counted from this adapter's own updates."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._sent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_needed(self, ticket_id: str, updates: int) -> float:
        """Seconds until `updates` more updates of the ticket fit in the window (0: now)."""
        with self._lock:
            now = self._clock()
            sent = self._expire(ticket_id, now)
            over = len(sent) + updates - self._limit
            if over <= 0:
                return 0.0
            if over > len(sent):  # more updates than the limit in one plan: cannot ever fit
                return self._window
            return max(0.0, sent[over - 1] + self._window - now)

    def record(self, ticket_id: str) -> None:
        with self._lock:
            now = self._clock()
            self._expire(ticket_id, now).append(now)
            if len(self._sent) > 10_000:
                # Tickets not touched for a window hold only expired entries.
                for key in [k for k, v in self._sent.items() if not v or v[-1] <= now - self._window]:
                    del self._sent[key]

    def _expire(self, ticket_id: str, now: float) -> deque[float]:
        sent = self._sent.setdefault(ticket_id, deque())
        while sent and sent[0] <= now - self._window:
            sent.popleft()
        return sent


class ZendeskClient:
    """Zendesk Support's REST API under the retry policy, with raw JSON in and out."""

    def __init__(
        self,
        base_url: str,
        email: str,
        token: str,
        *,
        policy: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        updates: UpdateLimiter | None = None,
    ) -> None:
        parts = urlsplit(base_url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("ZendeskAdapter needs an http(s) base URL such as https://acme.zendesk.com")
        if not email or not token:
            raise ValueError("ZendeskAdapter needs the agent e-mail and an API token")
        self.base_url = base_url.rstrip("/")
        self._api_root = f"{self.base_url}/api/v2"
        self._policy = policy or RetryPolicy()
        self._session = refuse_redirects(_ZendeskSession())
        self._zenpy = Zenpy(
            subdomain=None,
            email=email,
            token=token,
            session=self._session,
            timeout=timeout,
            disable_cache=True,
        )
        # zenpy's request path: its timeout, its error checks and its exception types.
        self._api = self._zenpy.tickets
        self._lock = threading.RLock()
        self._catalogue: TicketFieldCatalogue | None = None
        self.updates = updates or UpdateLimiter(TICKET_UPDATE_LIMIT, TICKET_UPDATE_WINDOW, time.monotonic)

    # --- tickets -------------------------------------------------------------------------

    def show_ticket(self, ref: str) -> tuple[dict[str, Any], dict[str, list]]:
        """The ticket, with its requester and organization side-loaded in the same request
        (per-customer service levels, `connector.platforms.customer`): (ticket, side-loads)."""
        shown = self.get("ticket.show", f"tickets/{ref}.json", {"include": "users,organizations"})
        raw = shown.get("ticket")
        if not isinstance(raw, dict):
            raise HostError("the ticket answer has no ticket object", platform=PLATFORM, retryable=False)
        return raw, {name: [x for x in shown.get(name) or () if isinstance(x, dict)]
                     for name in ("users", "organizations")}

    def audit_pages(self, ref: str) -> Iterator[dict[str, Any]]:
        """The ticket's audits with their authors sideloaded, cursor-paged 100 at a time."""
        return self.pages("ticket.audits", f"tickets/{ref}/audits.json", {"include": "users", "page[size]": PAGE_SIZE})

    def show_many(self, ids: list[str]) -> dict[str, Any]:
        return self.get("tickets.show_many", "tickets/show_many.json", {"ids": ",".join(ids)})

    def update_ticket(self, ref: str, body: dict[str, Any], *, idempotent: bool) -> tuple[str, dict[str, Any]]:
        """`PUT /tickets/{id}.json`, counted against the ticket's update limit: (path, answer)."""
        path = f"tickets/{ref}.json"

        def send() -> dict[str, Any]:
            try:
                answer = self.request("PUT", path, json=body)
            except PlatformError as exc:
                if exc.may_have_taken_effect:
                    self.updates.record(ref)
                raise
            self.updates.record(ref)
            return answer

        return path, self.call("ticket.update", "PUT", send, idempotent=idempotent)

    def create_ticket(self, ticket: dict[str, Any]) -> dict[str, Any]:
        # Not idempotent: a resend after a lost answer could create a second ticket.
        return self.call("ticket.create_follow_up", "POST",
                         lambda: self.request("POST", "tickets.json", json={"ticket": ticket}), idempotent=False)

    # --- the account, read once per process ----------------------------------------------

    def catalogue(self) -> TicketFieldCatalogue:
        """The account's ticket fields (`GET /api/v2/ticket_fields.json`, read once)."""
        with self._lock:
            if self._catalogue is None:
                fields: list[dict[str, Any]] = []
                for page in self.pages("ticket_fields.list", "ticket_fields.json", {}):
                    fields.extend(page.get("ticket_fields") or ())
                self._catalogue = TicketFieldCatalogue(fields)
            return self._catalogue

    def read_list(self, operation: str, path: str, key: str, params: Mapping[str, Any] | None = None,
                  *, limit: int = 1000) -> list[dict[str, Any]]:
        """Every item under `key` of a paged listing (cursor or offset), at most `limit`."""
        items: list[dict[str, Any]] = []
        for page in self.pages(operation, path, dict(params or {})):
            items.extend(item for item in page.get(key) or () if isinstance(item, dict))
            if len(items) >= limit:
                break
        return items[:limit]

    # --- plumbing ------------------------------------------------------------------------

    def get(self, operation: str, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One GET of `{ZENDESK_URL}/api/v2/{path}` under the retry policy, as parsed JSON."""
        return self.call(operation, "GET", lambda: self.request("GET", path, params=params), idempotent=True)

    def pages(self, operation: str, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every page of a listing, following cursor (`meta.has_more`) or offset (`next_page`) paging."""
        current: dict[str, Any] | None = params
        seen: list[dict[str, Any]] = []
        while current is not None:
            page = self.get(operation, path, current)
            yield page
            seen.append(current)
            current = next_params(page, current)
            if current in seen:  # a server repeating its cursor must not loop us forever
                log.warning("zendesk.pagination_stuck", extra={"platform": PLATFORM, "operation": operation})
                return

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One request through zenpy's request path; raises zenpy/requests errors, or RateLimited."""
        send = {"GET": self._session.get, "PUT": self._session.put, "POST": self._session.post}[method]
        kwargs: dict[str, Any] = {"params": dict(params) if params else None, "timeout": self._api.timeout}
        if json is not None:
            kwargs["json"] = json
        response = self._api._call_api(send, f"{self._api_root}/{path}", **kwargs)
        payload = response.json()
        if not isinstance(payload, dict):
            raise HostError("the answer is not a JSON object", platform=PLATFORM, status=response.status_code,
                            retryable=False)
        return payload

    def call(self, operation: str, method: str, fn: Callable[[], T], *, idempotent: bool) -> T:
        """One HTTP request under the retry policy, with library errors translated."""
        return call_platform(self._policy, PLATFORM, operation, fn, lambda exc: _translate(exc, method), idempotent=idempotent)


def next_params(page: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The query of the next page, or None on the last one.

    Only the query is taken from Zendesk's links: the path and host stay those the adapter
    was configured with, so a proxy or test server in front of Zendesk keeps being used.
    """
    meta = page.get("meta")
    if isinstance(meta, Mapping) and "has_more" in meta:
        if not meta.get("has_more"):
            return None
        after = meta.get("after_cursor")
        if not after:
            links = page.get("links") or {}
            after = dict(parse_qsl(urlsplit(str(links.get("next") or "")).query)).get("page[after]")
        return {**params, "page[after]": after} if after else None
    next_page = page.get("next_page")
    if isinstance(next_page, str) and next_page:
        return dict(parse_qsl(urlsplit(next_page).query))
    return None



class RecordInvalid(BadRequest):
    """422 RecordInvalid: Zendesk validated the update and refused all of it; `details` is its
    `details` object ({"status": [...]}, {"base": [{"ticket_field_id": ...}]})."""

    def __init__(self, message: str, *, details: Mapping[str, Any]) -> None:
        super().__init__(message, platform=PLATFORM, status=422)
        self.details = details

    @property
    def ticket_closed(self) -> bool:
        """The ticket is closed (by an agent or the auto-close automation since our read).

        Zendesk says "Status: closed prevents ticket update" (older accounts "Status closed
        prevents ticket update", Speedygeek/ZendeskApi_v2#59) under `details.status`.
        """
        problems = self.details.get("status")
        return isinstance(problems, list) and any(
            "closed prevents" in str(problem.get("description", "")).casefold()
            for problem in problems if isinstance(problem, Mapping))

    def named_fields(self) -> list[str]:
        """What the refusal names: each problem's description ("Root cause: is required when
        solving a ticket", facetoe/zenpy#114), else the attribute it is listed under."""
        named: list[str] = []
        for attribute, problems in self.details.items():
            for problem in problems if isinstance(problems, list) else [problems]:
                text = problem.get("description") if isinstance(problem, Mapping) else problem
                named.append(str(text) if text else str(attribute))
        return named


def _translate(exc: Exception, method: str) -> PlatformError | None:
    if isinstance(exc, APIException):
        return _from_api_exception(exc)  # zenpy's message is the whole response body
    if isinstance(exc, requests.RequestException):
        if exc.response is not None:
            return _from_response(exc.response)
        return failure_without_answer(exc, platform=PLATFORM, method=method)
    if isinstance(exc, RatelimitBudgetExceeded):
        return RateLimited("zenpy's rate-limit budget is spent", retry_after=None, platform=PLATFORM)
    if isinstance(exc, ZenpyException):
        return PlatformError(f"zenpy refused the request ({type(exc).__name__})", platform=PLATFORM)
    return None


def _from_response(response: requests.Response) -> PlatformError:
    if response.status_code == 422:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        details = payload.get("details") if isinstance(payload, Mapping) else None
        if isinstance(details, Mapping):
            return RecordInvalid(_error_message(response), details=scrub_value(details))
    return error_from_response(response.status_code, response.headers, _error_message(response), platform=PLATFORM)


def _from_api_exception(exc: APIException) -> PlatformError:
    response = getattr(exc, "response", None)
    if response is None:
        return PlatformError("Zendesk rejected the request", platform=PLATFORM)
    return _from_response(response)
