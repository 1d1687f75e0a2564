"""The Zendesk adapter: two reads per reconcile, one ticket update per plan (two at most).

API calls are the scarce resource (Zendesk allows 200–2,500 requests a minute per account
and 30 updates of one ticket per 10 minutes), so the adapter is built around counting them:

- `fetch` is TWO requests (ONE for a settled ticket, see `fetch_if_changed`). `GET /api/v2/tickets/{id}.json` gives the current fields, tags
  and `updated_at`; `GET /api/v2/tickets/{id}/audits.json?include=users&page[size]=100`
  gives the status history (Create/Change events) and every comment with its author,
  visibility and body, plus the authors as a sideload – so the comments endpoint is not
  needed. The ticket show cannot be dropped: audits record changes, not state, so current
  custom-field values, tags and the exact `updated_at` (the safe-update stamp) would have to
  be replayed from every event ever written, and no audit sideload returns the ticket. The
  ticket is read first: a change landing between the two reads makes the stamp stale, so
  the write is refused with 409 and re-reconciled rather than based on a mixed picture.
  Audits are paged (cursor, 100 a page) only when a ticket has more. The ticket-field
  catalogue (`GET /api/v2/ticket_fields.json`), needed to resolve the field titles a
  mapping uses, is read once per adapter and only when the mapping names a field by title.
- `apply` sends nothing for a plan the ticket already shows. Otherwise ONE
  `PUT /api/v2/tickets/{id}.json` carries status, priority, group, assignee, custom fields,
  tag changes and the comment, so a one-time comment and the marker tag that records it
  land together or not at all. Update Ticket takes `tags` as the whole list
  (`additional_tags` / `remove_tags` are Update Many Tickets only: Zendesk "Adding tags to
  tickets without overwriting existing tags"), so the adapter sends the tags as read plus
  additions minus removals, and every update is a safe update (`safe_update` +
  `updated_stamp` = the fetched `updated_at`): if anyone changed the ticket since the fetch
  (an agent adding a tag, say), Zendesk answers 409 and `Conflict` is raised, so reconcile
  re-reads and re-plans instead of writing the old list over the new one.
- A 422 on an update: "Status: closed prevents ticket update" means Zendesk closed the
  ticket since the read (its auto-close automation) – `StaleTicket`, re-read and re-plan;
  any other 422 on an update that moves the status (a field required to solve is empty)
  makes the adapter resend the update once without the status, so the comment and markers
  land, and report the refused status by name (`ApplyResult.refused`, metric); the refusal
  is remembered against the ticket's stamp, so an unchanged ticket is not asked again.
- A closed ticket is never updated: its comments, with their markers, go to a follow-up
  ticket (`POST /api/v2/tickets` with `via_followup_source_id`), and `fetch` of a closed
  ticket with follow-ups reads their tags (one more request), so replays see the markers.
- Zendesk takes ONE comment per update. Comments of the same visibility are joined into
  one comment (blank line between them); a plan with both a public reply and an internal
  note needs a second update, which carries only the second comment and its markers – a
  marker never travels ahead of the comment it records. The second update's stamp is the
  `updated_at` returned by the first.
- Zendesk limits updates of one ticket to 30 per 10 minutes. The adapter counts its own
  updates per ticket and, when a plan would exceed the limit, raises `RateLimited` with
  the wait until enough slots free, without writing. (The count is per process: replicas
  share the account's limit, and Zendesk's own 429 is then handled like any other.)
- Impossible actions are warnings, not failures: a field the account does not have, a
  dropdown value that is not one of its options, a group with no id, a move back to "new",
  fields, status or tags for a closed ticket (Zendesk never lets a closed ticket change).
- `search` uses `/api/v2/search.json` (sorted, but capped by Zendesk at 1,000 results: page
  11 is a 422) and goes on with the cursor-paged `/api/v2/search/export.json` past that –
  at once for an unordered query, after the first 1,000 for an ordered one – without
  `type:` in the export's query (it takes `filter[type]`). `incremental_tickets` pages
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
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qsl, urlsplit

import requests
from zenpy import Zenpy
from zenpy.lib.exception import APIException, RatelimitBudgetExceeded, ZenpyException

from connector.metrics import API_CALLS, WRITES_REFUSED
from connector.model import (
    Action,
    AddComment,
    AddLabel,
    Assign,
    Plan,
    Platform,
    RemoveLabel,
    SetFields,
    SetPriority,
    Ticket,
    Transition,
)
from connector.platforms.base import (
    ApplyResult,
    BadRequest,
    HostError,
    NotFound,
    PlatformError,
    RateLimited,
    RetryPolicy,
    SkippedAction,
    StaleTicket,
    Unchanged,
    error_from_requests,
    refuse_redirects,
    error_from_response,
)
from connector.platforms.field_values import already_equal
from connector.platforms.mapping import PlatformMapping
from connector.platforms.zendesk_ticket import SYSTEM_FIELD_ATTRIBUTES, parse_zendesk_ticket
from connector.scrub import error_text, scrub_value
from connector.settings import Settings
from connector.timefmt import parse_instant

log = logging.getLogger(__name__)
# Its debug lines print request kwargs (comment bodies) and whole responses.
logging.getLogger("zenpy").setLevel(logging.WARNING)

T = TypeVar("T")

PLATFORM: Platform = "zendesk"
PAGE_SIZE = 100
INCREMENTAL_PAGE_SIZE = 1000
# /search.json never returns more than this many results for one query.
SEARCH_RESULT_LIMIT = 1000
TICKET_UPDATE_LIMIT = 30
TICKET_UPDATE_WINDOW = 600.0
COMMENT_SEPARATOR = "\n\n"
# Ticket ids are numbers; "#4540" is how the ticket's key is written.
_TICKET_REF = re.compile(r"^#?(\d+)$")
_TYPE_TICKET = re.compile(r"(?<![\w-])type:ticket\b", re.IGNORECASE)
_ORDERING = re.compile(r"(?<![\w-])(?:order_by|sort):\S+", re.IGNORECASE)

# Ticket attributes an API client may set directly in an update, and how their values look.
_ID_ATTRIBUTES = frozenset(
    {"group_id", "assignee_id", "organization_id", "requester_id", "problem_id", "brand_id", "ticket_form_id"}
)
_WRITABLE_ATTRIBUTES = _ID_ATTRIBUTES | {"subject", "type", "priority", "status", "due_at", "external_id"}
# Attributes a mapping may name that no update can change.
_READ_ONLY_ATTRIBUTES: dict[str, str] = {
    "description": "the description is the ticket's first comment and cannot be edited",
    "satisfaction_rating": "only the requester can rate a ticket",
    "tags": "tags are changed with add-label / remove-label actions",
    "custom_fields": "name the custom field itself, by id or title",
    "fields": "name the custom field itself, by id or title",
    "id": "the ticket id cannot change",
    "created_at": "Zendesk sets it",
    "updated_at": "Zendesk sets it",
}


class IncrementalPage(NamedTuple):
    """One page of the incremental ticket export and the cursor that resumes after it."""

    tickets: list[dict[str, Any]]
    cursor: str | None
    end_of_stream: bool


# --- the one HTTP session ---------------------------------------------------------------


class _ZendeskSession(requests.Session):
    """Counts every answer and turns a 429 into `RateLimited` before zenpy can sleep on it.

    `send` runs once per HTTP exchange (redirects included), whoever asked for it.
    """

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        response = super().send(request, **kwargs)
        API_CALLS.labels(platform=PLATFORM, method=request.method or "?", status=str(response.status_code)).inc()
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


# --- ticket fields ----------------------------------------------------------------------


class FieldResolutionError(ValueError):
    """A mapping names a field the account does not have, several fields, or one no update can set."""


@dataclass(frozen=True)
class _Target:
    """Where a value goes in an update: a ticket attribute, or a custom field (with its definition)."""

    attribute: str | None = None
    field: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        if self.attribute is not None:
            return self.attribute
        assert self.field is not None
        return str(self.field.get("title") or self.field.get("id"))


class TicketFieldCatalogue:
    """The account's ticket fields (`GET /api/v2/ticket_fields`) by id and by title."""

    def __init__(self, raw_fields: Sequence[Mapping[str, Any]]) -> None:
        self.raw = [dict(raw) for raw in raw_fields]
        self._by_id: dict[str, Mapping[str, Any]] = {}
        self._by_title: dict[str, list[Mapping[str, Any]]] = {}
        for raw in self.raw:
            if raw.get("id") is None:
                continue
            self._by_id[str(raw["id"])] = raw
            for title in {raw.get("title"), raw.get("raw_title")}:
                if isinstance(title, str):
                    self._by_title.setdefault(title.casefold(), []).append(raw)

    def resolve(self, ref: str) -> _Target:
        """The target a mapping means by `ref`: a custom field id, an attribute or a field title."""
        if ref.isdigit():
            found = self._by_id.get(ref)
            if found is None:
                raise FieldResolutionError(f"Zendesk has no ticket field with id {ref}")
            return _system_or_custom(found)
        matches = self._by_title.get(ref.casefold(), [])
        if len(matches) > 1:
            # An old field is often deactivated and replaced by one with the same title.
            matches = [match for match in matches if match.get("active", True)]
        if not matches:
            raise FieldResolutionError(f"Zendesk has no ticket field titled {ref!r}")
        if len(matches) > 1:
            ids = ", ".join(sorted(str(match.get("id")) for match in matches))
            raise FieldResolutionError(f"several active Zendesk ticket fields are titled {ref!r} ({ids}); map it by id")
        return _system_or_custom(matches[0])


def _system_or_custom(raw: Mapping[str, Any]) -> _Target:
    attribute = SYSTEM_FIELD_ATTRIBUTES.get(str(raw.get("type")))
    if attribute is None:
        return _Target(field=raw)
    return _attribute_target(attribute)


def _attribute_target(attribute: str) -> _Target:
    if attribute in _READ_ONLY_ATTRIBUTES:
        raise FieldResolutionError(f"{attribute!r} cannot be written: {_READ_ONLY_ATTRIBUTES[attribute]}")
    return _Target(attribute=attribute)


def zendesk_datetime(value: Any) -> str:
    """An instant as Zendesk writes its own timestamps, `2026-11-22T03:20:05Z`; no offset is refused."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise ValueError("a date-time needs a datetime or an ISO 8601 string")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a date-time without a UTC offset would be read in an unknown zone")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            return datetime.fromisoformat(value).date().isoformat()
    raise ValueError("a date field needs a date, a datetime or an ISO 8601 string")


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return zendesk_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _option_tag(options: Sequence[Mapping[str, Any]], value: Any) -> str:
    """The tag of the dropdown option `value` names, by its tag or its display name."""
    wanted = str(value)
    for option in options:
        if str(option.get("value")) == wanted:
            return wanted
    for option in options:
        if str(option.get("name", "")).casefold() == wanted.casefold():
            return str(option.get("value"))
    raise ValueError(f"{wanted!r} is not one of its options")


def format_custom_field_value(ticket_field: Mapping[str, Any], value: Any) -> Any:
    """`value` shaped for `custom_fields: [{id, value}]` by the field's type; None clears it.

    Dropdowns take the option's tag (a display name is translated), multi-selects a list of
    tags, dates `yyyy-mm-dd`, and a date-time written to a text field is ISO 8601 in UTC.
    """
    if value is None:
        return None
    kind = ticket_field.get("type")
    options = ticket_field.get("custom_field_options") or []
    if kind == "tagger":
        return _option_tag(options, value)
    if kind == "multiselect":
        items = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
        return [_option_tag(options, item) for item in items]
    if kind == "date":
        return _date_text(value)
    if kind == "checkbox":
        if not isinstance(value, bool):
            raise ValueError("a checkbox holds true or false")
        return value
    if kind == "integer":
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())):
            raise ValueError("an integer field needs a whole number")
        return int(value)
    if kind == "decimal":
        if isinstance(value, bool):
            raise ValueError("a decimal field cannot hold true/false")
        return value if isinstance(value, (int, float)) else float(value)
    if kind in ("text", "textarea", "regexp", "partialcreditcard"):
        return _text(value)
    return _text(value) if isinstance(value, (datetime, date)) else value


def _format_attribute(attribute: str, value: Any) -> Any:
    if value is None:
        return None
    if attribute in _ID_ATTRIBUTES:
        text = str(value).strip()
        if not text.isdigit():
            raise ValueError(f"{attribute} needs a numeric Zendesk id")
        return int(text)
    if attribute == "due_at":
        return zendesk_datetime(value)
    if attribute == "type":
        kind = str(value).casefold()
        if kind not in ("question", "incident", "problem", "task"):
            raise ValueError("the ticket type is question, incident, problem or task")
        return kind
    return _text(value)


# --- the update request ---------------------------------------------------------------


@dataclass
class _Update:
    """The body of one `PUT /api/v2/tickets/{id}.json` and the plan actions it carries."""

    attributes: dict[str, Any] = field(default_factory=dict)
    custom_fields: dict[int, Any] = field(default_factory=dict)
    add_tags: list[str] = field(default_factory=list)
    remove_tags: list[str] = field(default_factory=list)
    comment: dict[str, Any] | None = None
    carried: list[Action] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.attributes or self.custom_fields or self.add_tags or self.remove_tags or self.comment)

    @property
    def idempotent(self) -> bool:
        # Setting fields and tags twice leaves the same ticket; posting a comment twice does not.
        # (The safe-update stamp does not make a resend safe: Zendesk stamps are whole
        # seconds, so an update landing in the same second as the last one keeps the stamp.)
        return self.comment is None

    def tags(self, current: Sequence[str]) -> list[str]:
        """The whole tag list this update leaves: `current` (as read), plus additions, minus removals."""
        removed = set(self.remove_tags)
        kept = [tag for tag in current if tag not in removed]
        return kept + [tag for tag in self.add_tags if tag not in kept]

    def body(self, stamp: str | None, current_tags: Sequence[str] = ()) -> dict[str, Any]:
        ticket: dict[str, Any] = dict(self.attributes)
        if self.custom_fields:
            ticket["custom_fields"] = [{"id": key, "value": value} for key, value in self.custom_fields.items()]
        if self.add_tags or self.remove_tags:
            # Update Ticket takes `tags` as the whole list (additional_tags/remove_tags are
            # Update Many Tickets only: Zendesk "Adding tags to tickets without overwriting
            # existing tags"). The safe-update stamp below makes a human's tag added since
            # our read a 409, never an overwrite.
            ticket["tags"] = self.tags(current_tags)
        if self.comment is not None:
            ticket["comment"] = dict(self.comment)
        if stamp is not None:
            ticket["safe_update"] = True
            ticket["updated_stamp"] = stamp
        return {"ticket": ticket}


@dataclass
class _CommentGroup:
    """Comments of one visibility, posted as one Zendesk comment with all their markers."""

    public: bool
    bodies: list[str] = field(default_factory=list)
    markers: list[str] = field(default_factory=list)
    actions: list[AddComment] = field(default_factory=list)

    def comment(self) -> dict[str, Any]:
        return {"body": COMMENT_SEPARATOR.join(self.bodies), "public": self.public}


class _TagChanges:
    """Tag adds/removes of one plan reduced to their net effect; markers stay with their comments."""

    def __init__(self, current: frozenset[str], pinned: frozenset[str]) -> None:
        self._original = current
        self._tags = set(current)
        self._pinned = pinned
        self._order: list[str] = []
        self._actions: list[tuple[Action, str]] = []

    def add(self, action: Action, tag: str, result: ApplyResult) -> None:
        if tag in self._pinned:
            result.skipped.append(SkippedAction(action, f"tag {tag!r} is added with the comment it records"))
        elif tag in self._tags:
            result.skipped.append(SkippedAction(action, f"tag {tag!r} already present"))
        else:
            self._tags.add(tag)
            self._note(action, tag)

    def remove(self, action: Action, tag: str, result: ApplyResult) -> None:
        if tag in self._pinned:
            result.skipped.append(SkippedAction(action, f"tag {tag!r} records a comment of this plan"))
        elif tag not in self._tags:
            result.skipped.append(SkippedAction(action, f"tag {tag!r} not present"))
        else:
            self._tags.discard(tag)
            self._note(action, tag)

    def _note(self, action: Action, tag: str) -> None:
        self._actions.append((action, tag))
        if tag not in self._order:
            self._order.append(tag)

    def operations(self) -> tuple[list[str], list[str]]:
        adds = [t for t in self._order if t in self._tags and t not in self._original]
        removes = [t for t in self._order if t not in self._tags and t in self._original]
        return adds, removes

    def carried(self, result: ApplyResult) -> list[Action]:
        carried: list[Action] = []
        for action, tag in self._actions:
            wanted_present = isinstance(action, AddLabel)
            survives = (tag in self._tags) == wanted_present and (tag in self._original) != wanted_present
            if survives and not any(a is action for a in carried):
                carried.append(action)
            elif not survives:
                result.skipped.append(SkippedAction(action, f"tag {tag!r} undone by a later action of the plan"))
        return carried


class _UpdateLimiter:
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


# --- the adapter ----------------------------------------------------------------------


class ZendeskAdapter:
    """`PlatformAdapter` for Zendesk Support."""

    platform: Platform = PLATFORM

    def __init__(
        self,
        base_url: str,
        email: str,
        token: str,
        mapping: PlatformMapping,
        *,
        policy: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        clock: Callable[[], float] = time.monotonic,
        update_limit: int = TICKET_UPDATE_LIMIT,
        update_window: float = TICKET_UPDATE_WINDOW,
    ) -> None:
        """Build the client; no request is sent until a method needs one.

        `base_url` is the account URL, `https://acme.zendesk.com`, or any other base URL
        serving the same API (`http://127.0.0.1:8080`, a proxy path). `clock` (seconds,
        monotonic) times the per-ticket update limit.
        """
        parts = urlsplit(base_url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("ZendeskAdapter needs an http(s) base URL such as https://acme.zendesk.com")
        if not email or not token:
            raise ValueError("ZendeskAdapter needs the agent e-mail and an API token")
        self._base_url = base_url.rstrip("/")
        self._api_root = f"{self._base_url}/api/v2"
        self._mapping = mapping
        self._policy = policy or RetryPolicy()
        self._session = refuse_redirects(_ZendeskSession())
        self._client = Zenpy(
            subdomain=None,
            email=email,
            token=token,
            session=self._session,
            timeout=timeout,
            disable_cache=True,
        )
        # zenpy's request path: its timeout, its error checks and its exception types.
        self._api = self._client.tickets
        self._lock = threading.RLock()
        self._catalogue_cache: TicketFieldCatalogue | None = None
        self._limiter = _UpdateLimiter(update_limit, update_window, clock)
        # Status moves Zendesk refused (422), by ticket: (stamp after our write, status, reason).
        self._refused_statuses: dict[str, tuple[str, str, str]] = {}
        self._pending_refusals: dict[str, tuple[str, str]] = {}

    @property
    def base_url(self) -> str:
        """The account URL requests go to (no credentials in it)."""
        return self._base_url

    @classmethod
    def from_settings(cls, settings: Settings, mapping: PlatformMapping, **kwargs: Any) -> "ZendeskAdapter":
        if not settings.zendesk_url or not settings.zendesk_email or not settings.zendesk_token:
            raise ValueError("ZENDESK_URL, ZENDESK_EMAIL and ZENDESK_TOKEN must be set to talk to Zendesk")
        return cls(settings.zendesk_url, settings.zendesk_email, settings.zendesk_token, mapping, **kwargs)

    # --- reading ---------------------------------------------------------------------

    def fetch(self, ticket_id: str) -> Ticket:
        """The ticket with its status history and comments: the ticket, then its audits."""
        ref = _ticket_ref(ticket_id)
        return self._with_audits(ref, *self._show(ref))

    def fetch_if_changed(self, ticket_id: str,
                         settled: Callable[[datetime | None], bool]) -> Ticket | Unchanged:
        """`fetch`, stopping after the ticket read when `settled(updated_at)` says nothing can
        have changed since the last reconcile (a redelivered webhook, a repeated event): one
        request instead of two. Audits record changes, and every change (comment, field, tag,
        status) moves `updated_at` – the stamp Zendesk's own safe update compares
        (`updated_stamp`, Tickets API "Protecting against ticket update collisions"). Stamps
        are whole seconds, so a ticket is only ever settled by a whole read (ticket and
        audits) taken at least a second after its stamp, never by a write's answer
        (`connector.reconcile._settlement`): a comment made in the same second as our write
        shares that stamp and would be skipped."""
        ref = _ticket_ref(ticket_id)
        raw, sideloads = self._show(ref)
        try:
            updated = parse_instant(raw.get("updated_at"))
        except ValueError:
            updated = None
        if updated is not None and settled(updated):
            return Unchanged(ticket_id, updated)
        return self._with_audits(ref, raw, sideloads)

    def _show(self, ref: str) -> tuple[dict[str, Any], dict[str, list]]:
        """The ticket, with its requester and organization side-loaded in the same request
        (per-customer service levels, `connector.platforms.customer`)."""
        shown = self._get("ticket.show", f"tickets/{ref}.json", {"include": "users,organizations"})
        raw = shown.get("ticket")
        if not isinstance(raw, dict):
            raise HostError("the ticket answer has no ticket object", platform=PLATFORM, retryable=False)
        return raw, {name: [x for x in shown.get(name) or () if isinstance(x, dict)] for name in ("users", "organizations")}

    def _with_audits(self, ref: str, raw: dict[str, Any], sideloads: dict[str, list]) -> Ticket:
        audits: list[dict[str, Any]] = []
        users: dict[str, dict[str, Any]] = {str(user.get("id")): user for user in sideloads["users"]}
        for page in self._pages(
            "ticket.audits", f"tickets/{ref}/audits.json", {"include": "users", "page[size]": PAGE_SIZE}
        ):
            audits.extend(page.get("audits") or ())
            for user in page.get("users") or ():
                users.setdefault(str(user.get("id")), user)
        if str(raw.get("status") or "").casefold() == "closed" and raw.get("followup_ids"):
            raw = {**raw, "tags": self._with_follow_up_tags(raw)}
        return self.parse(raw, audits=audits, users=list(users.values()), organizations=sideloads["organizations"])

    def _with_follow_up_tags(self, raw: Mapping[str, Any]) -> list[str]:
        """A closed ticket's tags plus those its follow-ups added (where the connector puts the
        markers of what it could no longer write to the closed ticket). One more request, only
        for closed tickets that have follow-ups."""
        own = [str(tag) for tag in raw.get("tags") or ()]
        ids = [str(i) for i in raw.get("followup_ids") or () if str(i).isdigit()][:100]
        found = self._get("tickets.show_many", "tickets/show_many.json", {"ids": ",".join(ids)})
        added = {str(tag) for follow_up in found.get("tickets") or () for tag in follow_up.get("tags") or ()}
        return own + sorted(added - set(own))

    def parse(self, raw: dict[str, Any], *, audits: list[dict[str, Any]] | None = None,
              users: list[dict[str, Any]] | None = None, organizations: list[dict[str, Any]] | None = None) -> Ticket:
        """A raw ticket (from search or fetch) as the rules see it; without audits it has no
        status history or comments beyond what the ticket object itself carries."""
        catalogue = self._catalogue().raw if self._needs_catalogue(raw) else None
        return parse_zendesk_ticket(raw, self._mapping, audits=audits, users=users, ticket_fields=catalogue,
                                    base_url=self._base_url, organizations=organizations)

    def search(self, query: str, fields: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
        """Raw tickets matching a Zendesk search `query`, one page per request, fetched as consumed.

        Zendesk cannot select fields server-side; `fields` trims each ticket to those keys
        (and its id) so callers see the same shape on both platforms.
        """
        wanted = None if not fields else {"id", *fields}
        full_query = query if _TYPE_TICKET.search(query) else f"type:ticket {query}".strip()
        params: dict[str, Any] | None = {"query": full_query, "per_page": PAGE_SIZE}
        ordered = bool(_ORDERING.search(query))
        given: set[str] = set()
        first = True
        while params is not None:
            page = self._get("search", "search.json", params)
            over_cap = isinstance(page.get("count"), int) and page["count"] > SEARCH_RESULT_LIMIT
            if first and over_cap and not ordered:
                # Only the export endpoint reaches past Zendesk's 1,000-result cap; without an
                # order to keep, it serves every result from the start.
                yield from self._search_export(query, wanted, skip=given)
                return
            first = False
            for result in page.get("results") or ():
                if result.get("result_type", "ticket") == "ticket":
                    given.add(str(result.get("id")))
                    yield _trimmed(result, wanted)
            params = _next_params(page, params)
            if over_cap and params is not None and len(given) >= SEARCH_RESULT_LIMIT:
                params = None  # page 11 would be a 422 (Search API "Results limit")
        if ordered and over_cap:
            # The first 1,000 came in the order asked (what a "top N" caller reads); a caller
            # reading on gets the rest from the export, which knows no order.
            yield from self._search_export(query, wanted, skip=given)

    def _search_export(self, query: str, wanted: set[str] | None, *, skip: set[str]) -> Iterator[dict[str, Any]]:
        """Export Search Results: the object type goes in `filter[type]`, never in the query
        ("Searches with type in the query string will result in an error"), and it is ordered
        by created_at only, so ordering terms are dropped as well."""
        export_query = " ".join(_ORDERING.sub(" ", _TYPE_TICKET.sub(" ", query)).split())
        params = {"query": export_query, "filter[type]": "ticket", "page[size]": PAGE_SIZE}
        for page in self._pages("search.export", "search/export.json", params):
            for result in page.get("results") or ():
                if result.get("result_type", "ticket") == "ticket" and str(result.get("id")) not in skip:
                    yield _trimmed(result, wanted)

    def incremental_tickets(
        self,
        start_time: int | datetime | None = None,
        cursor: str | None = None,
        *,
        per_page: int = INCREMENTAL_PAGE_SIZE,
    ) -> Iterator[IncrementalPage]:
        """Tickets changed since `start_time` (or since `cursor`), a page per request.

        Each page carries the cursor to resume from; the last page has `end_of_stream` set
        and still a cursor, which is what a sync stores for its next run.
        """
        if (start_time is None) == (cursor is None):
            raise ValueError("give exactly one of start_time and cursor")
        params: dict[str, Any] = {"per_page": per_page}
        if cursor is not None:
            params["cursor"] = cursor
        else:
            assert start_time is not None
            params["start_time"] = int(start_time.timestamp()) if isinstance(start_time, datetime) else int(start_time)
        seen: set[str] = set()
        while True:
            page = self._get("incremental.tickets", "incremental/tickets/cursor.json", params)
            after = page.get("after_cursor")
            after = str(after) if after else None
            end = bool(page.get("end_of_stream")) or after is None or after in seen
            yield IncrementalPage(list(page.get("tickets") or ()), after, end)
            if end:
                return
            assert after is not None
            seen.add(after)
            params = {"per_page": per_page, "cursor": after}

    # --- writing ---------------------------------------------------------------------

    def apply(self, ticket: Ticket, plan: Plan) -> ApplyResult:
        """Write what `plan` asks and `ticket` does not already show, in one update (two at most)."""
        if plan.ticket_id not in (ticket.id, ticket.key):
            raise ValueError(f"plan for {plan.ticket_key} applied to ticket {ticket.key}")
        result = ApplyResult()
        groups = self._plan_comments(ticket, plan, result)
        pinned = frozenset(marker for group in groups for marker in group.markers)
        tags = _TagChanges(ticket.labels, pinned)
        first = _Update()
        transition: Transition | None = None

        for action in plan.actions:
            if isinstance(action, AddLabel):
                tags.add(action, action.label, result)
            elif isinstance(action, RemoveLabel):
                tags.remove(action, action.label, result)
            elif isinstance(action, SetFields):
                if self._plan_fields(ticket, action, first, result):
                    first.carried.append(action)
            elif isinstance(action, SetPriority):
                if ticket.priority == action.priority:
                    result.skipped.append(SkippedAction(action, f"priority is already {action.priority}"))
                else:
                    first.attributes["priority"] = self._mapping.write_priorities[action.priority]
                    first.carried.append(action)
            elif isinstance(action, Assign):
                if self._plan_assign(ticket, action, first, result):
                    first.carried.append(action)
            elif isinstance(action, Transition):
                if transition is not None:
                    result.skipped.append(SkippedAction(transition, "superseded by a later transition in the plan"))
                transition = action
        if transition is not None and self._plan_transition(ticket, transition, first, result):
            first.carried.append(transition)
        first.add_tags, first.remove_tags = tags.operations()
        first.carried.extend(tags.carried(result))

        updates = self._assign_comments(first, groups)
        if not updates:
            return result
        order = {id(action): index for index, action in enumerate(plan.actions)}
        if (ticket.raw_status or "").casefold() == "closed":
            return self._apply_to_closed(ticket, updates, groups, result, order)

        ref = _ticket_ref(ticket.id)
        wait = self._limiter.wait_needed(ref, len(updates))
        if wait > 0:
            log.warning(
                "zendesk.ticket_update_limit",
                extra={"platform": PLATFORM, "ticket": ticket.key, "updates": len(updates), "retry_after": round(wait, 1)},
            )
            raise RateLimited(
                f"ticket #{ref} reached Zendesk's limit of updates per ticket; next slot in {wait:.0f}s",
                retry_after=wait,
                platform=PLATFORM,
            )

        stamp = zendesk_datetime(ticket.updated) if ticket.updated is not None else None
        current_tags = sorted(ticket.labels)
        path = f"tickets/{ref}.json"
        with self._lock:
            self._pending_refusals.pop(ref, None)
        for update in updates:
            answer = self._send_update(ticket, ref, path, update, stamp, current_tags, result)
            if answer is None:  # only a refused status was left to send
                continue
            result.writes.append(f"PUT /api/v2/{path}")
            result.applied.extend(sorted(update.carried, key=lambda action: order[id(action)]))
            _check_tags(ticket, answer, update, result)
            stamp = _updated_at(answer) or stamp
            shown = answer.get("ticket")
            if isinstance(shown, Mapping) and isinstance(shown.get("tags"), list):
                current_tags = [str(tag) for tag in shown["tags"]]
            else:
                current_tags = update.tags(current_tags)
        self._remember_refusal(ref, stamp)

        log.info(
            "zendesk.applied",
            extra={
                "platform": PLATFORM,
                "ticket": ticket.key,
                "writes": len(result.writes),
                "actions": len(result.applied),
                "skipped": len(result.skipped),
            },
        )
        return result

    def _send_update(self, ticket: Ticket, ref: str, path: str, update: _Update, stamp: str | None,
                     current_tags: Sequence[str], result: ApplyResult) -> dict[str, Any] | None:
        """One safe update; a 422 is a re-plan (ticket closed meanwhile) or a refused status.

        - "Status: closed prevents ticket update": Zendesk closed the ticket since our read
          (the auto-close automation, typically 4 days after solving). Nothing of the update
          landed; `StaleTicket` makes reconcile re-read, and the plan for a closed ticket puts
          the comment on a follow-up ticket instead.
        - Any other 422 on an update that changes the status (a field required to solve is
          empty, a solve without assignee): the same update is sent ONCE more without the
          status, so the comment and markers that rode with it still land; the refused status
          is reported. If that fails too, the status was not the problem and the error stands.
        """
        try:
            return self._put_update(ref, path, update.body(stamp, current_tags), idempotent=update.idempotent)
        except RecordInvalid as exc:
            if exc.ticket_closed:
                log.info("zendesk.ticket_closed_meanwhile", extra={"platform": PLATFORM, "ticket": ticket.key})
                raise StaleTicket(f"ticket #{ref} was closed since it was read; re-read and re-plan",
                                  platform=PLATFORM, status=422) from None
            if "status" not in update.attributes:
                raise
            refused_status = update.attributes.pop("status")
            named = exc.named_fields()
            self._refuse_status(ticket, ref, update, refused_status, named, result)
            if update.empty:
                return None
            return self._put_update(ref, path, update.body(stamp, current_tags), idempotent=update.idempotent)

    def _refuse_status(self, ticket: Ticket, ref: str, update: _Update, status: str, named: list[str],
                       result: ApplyResult) -> None:
        reason = f"Zendesk refused status {status!r}: {'; '.join(named) or 'no reason given'}"
        log.warning("zendesk.status_refused", extra={"platform": PLATFORM, "ticket": ticket.key, "status": status,
                                                      "fields": named})
        WRITES_REFUSED.labels(platform=PLATFORM, what="status").inc()
        result.refused.append(reason)
        result.warnings.append(reason)
        for action in [a for a in update.carried if isinstance(a, Transition)]:
            update.carried.remove(action)
            result.skipped.append(SkippedAction(action, reason))
        with self._lock:
            self._pending_refusals[ref] = (status, reason)

    def _remember_refusal(self, ref: str, stamp: str | None) -> None:
        """Tie a refused status to the ticket's stamp after our writes: until someone changes
        the ticket (a human filling the required field moves `updated_at`), the same move is
        not sent again – so nothing loops on a refusal."""
        with self._lock:
            pending = self._pending_refusals.pop(ref, None)
            if pending is not None and stamp is not None:
                self._refused_statuses[ref] = (stamp, *pending)
                if len(self._refused_statuses) > 10_000:
                    self._refused_statuses.pop(next(iter(self._refused_statuses)))

    def _apply_to_closed(self, ticket: Ticket, updates: list[_Update], groups: list[_CommentGroup],
                         result: ApplyResult, order: Mapping[int, int]) -> ApplyResult:
        """A closed ticket is immutable; its comments go to a follow-up ticket, the rest is refused.

        Zendesk's way to continue a closed ticket is a new ticket with `via_followup_source_id`
        (POST /api/v2/tickets; Zendesk "Creating and updating tickets" > "Creating a follow-up
        ticket"). It carries the comment together with its marker tags, so it lands with its
        markers or not at all; `fetch` of the closed ticket reads its follow-ups' tags, so the
        next reconcile sees the markers and never creates a second follow-up.
        """
        reason = "Zendesk does not allow changes to a closed ticket"
        comment_actions = {id(action) for group in groups for action in group.actions}
        refused = [action for update in updates for action in update.carried if id(action) not in comment_actions]
        if refused:
            what = sorted({_refused_kind(action) for action in refused})
            log.warning("zendesk.ticket_closed", extra={"platform": PLATFORM, "ticket": ticket.key, "refused": what})
            for kind in what:
                WRITES_REFUSED.labels(platform=PLATFORM, what=kind).inc()
            result.skipped.extend(SkippedAction(action, reason) for action in refused)
            result.refused.append(f"status closed: {', '.join(what)} cannot be written to a closed ticket")
            result.warnings.append(reason)
        if not groups:
            return result
        source = _ticket_ref(ticket.id)
        created = self._create_follow_up(ticket, groups[0])
        result.writes.append("POST /api/v2/tickets.json")
        result.applied.extend(sorted(groups[0].actions, key=lambda action: order[id(action)]))
        follow_up = created.get("ticket") if isinstance(created.get("ticket"), Mapping) else {}
        new_ref = str(follow_up.get("id") or "")
        if not new_ref.isdigit():
            raise HostError("the follow-up ticket answer has no ticket id", platform=PLATFORM, retryable=False)
        log.info("zendesk.follow_up_created", extra={"platform": PLATFORM, "ticket": ticket.key,
                                                      "follow_up": f"#{new_ref}"})
        stamp = _updated_at(created)
        current = [str(tag) for tag in follow_up.get("tags") or ()]
        for group in groups[1:]:
            update = _Update(comment=group.comment(), add_tags=list(group.markers), carried=list(group.actions))
            path = f"tickets/{new_ref}.json"
            answer = self._put_update(new_ref, path, update.body(stamp, current), idempotent=False)
            result.writes.append(f"PUT /api/v2/{path}")
            result.applied.extend(sorted(group.actions, key=lambda action: order[id(action)]))
            stamp = _updated_at(answer) or stamp
        result.warnings.append(f"ticket {ticket.key} is closed: comments went to follow-up ticket #{new_ref} "
                               f"(via_followup_source_id {source})")
        return result

    def _create_follow_up(self, ticket: Ticket, group: _CommentGroup) -> dict[str, Any]:
        """POST the follow-up of a closed ticket: its requester, assignee, group and subject (the
        API does not promise to copy them), its tags plus the comment's markers."""
        body: dict[str, Any] = {
            "via_followup_source_id": int(_ticket_ref(ticket.id)),
            "subject": ticket.summary or f"Follow-up of {ticket.key}",
            "comment": group.comment(),
            # Naming tags replaces the inherited ones (Creating a follow-up ticket): keep them.
            "tags": sorted(set(ticket.labels) | set(group.markers)),
        }
        if ticket.raw_priority:
            body["priority"] = ticket.raw_priority
        for attribute, value in (("requester_id", ticket.reporter), ("assignee_id", ticket.assignee)):
            if value and str(value).isdigit():
                body[attribute] = int(value)
        if ticket.group and self._mapping.group_field == "group_id":
            group_id = self._mapping.group_value(ticket.group)
            if group_id.strip().isdigit():
                body["group_id"] = int(group_id)
        # The mapped fields too, so the rules read the follow-up as the same case (intake
        # complete, same category) rather than as a new ticket missing everything.
        copied = _Update()
        values = [(self._mapping.fields[name], value) for name, value in ticket.fields.items()
                  if name in self._mapping.fields]
        if ticket.category:
            values.append((self._mapping.category_field, ticket.category))
        for ref, value in values:
            try:
                target = self._resolve(ref)
                formatted = (_format_attribute(target.attribute, value) if target.attribute is not None
                             else format_custom_field_value(target.field or {}, value))
            except (FieldResolutionError, TypeError, ValueError):
                continue  # a value the parent holds but no update can write: the follow-up goes without
            if target.attribute in (None, "type", "priority", "due_at", "external_id"):
                _put_value(copied, target, formatted)
        body.update(copied.attributes)
        if copied.custom_fields:
            body["custom_fields"] = [{"id": key, "value": value} for key, value in copied.custom_fields.items()]

        def send() -> dict[str, Any]:
            return self._request("POST", "tickets.json", json={"ticket": body})

        # Not idempotent: a resend after a lost answer could create a second follow-up.
        return self._call("ticket.create_follow_up", "POST", send, idempotent=False)

    def _plan_comments(self, ticket: Ticket, plan: Plan, result: ApplyResult) -> list[_CommentGroup]:
        """The plan's comments grouped by visibility (first seen first), duplicates skipped."""
        groups: list[_CommentGroup] = []
        markers: set[str] = set()
        for action in plan.actions:
            if not isinstance(action, AddComment):
                continue
            if action.marker is not None:
                if action.marker in ticket.labels:
                    result.skipped.append(SkippedAction(action, f"already posted (marker {action.marker!r} present)"))
                    continue
                if action.marker in markers:
                    result.skipped.append(
                        SkippedAction(action, f"a comment with marker {action.marker!r} is already in this update")
                    )
                    continue
                markers.add(action.marker)
            group = next((g for g in groups if g.public == action.public), None)
            if group is None:
                group = _CommentGroup(public=action.public)
                groups.append(group)
            group.bodies.append(action.body)
            group.actions.append(action)
            if action.marker is not None:
                group.markers.append(action.marker)
        return groups

    @staticmethod
    def _assign_comments(first: _Update, groups: list[_CommentGroup]) -> list[_Update]:
        """The updates to send: field/tag changes ride with the first comment, a second visibility alone."""
        updates: list[_Update] = []
        for index, group in enumerate(groups):
            update = first if index == 0 else _Update()
            update.comment = group.comment()
            update.add_tags.extend(marker for marker in group.markers if marker not in update.add_tags)
            update.carried.extend(group.actions)
            updates.append(update)
        if not groups and not first.empty:
            updates.append(first)
        return [update for update in updates if not update.empty]

    def _plan_fields(self, ticket: Ticket, action: SetFields, update: _Update, result: ApplyResult) -> bool:
        written = False
        for name, value in action.fields.items():
            ref = self._mapping.fields.get(name, name)
            formatted = self._format(ref, value, action, result)
            if formatted is _UNWRITABLE:
                continue
            target, field_value = formatted
            # Only logical fields are parsed into the ticket; a raw id's value is unknown, so write it.
            if name in self._mapping.fields and already_equal(ticket.fields.get(name), field_value):
                result.skipped.append(SkippedAction(action, f"field {name!r} already holds that value"))
                continue
            _put_value(update, target, field_value)
            written = True
        return written

    def _plan_assign(self, ticket: Ticket, action: Assign, update: _Update, result: ApplyResult) -> bool:
        if action.group is None and action.assignee is None:
            result.skipped.append(SkippedAction(action, "names neither a group nor an assignee"))
            return False
        written = False
        if action.group is not None:
            value = self._mapping.group_value(action.group)
            if ticket.group is not None and ticket.group in (action.group, self._mapping.group_name(value)):
                result.skipped.append(SkippedAction(action, f"group is already {action.group!r}"))
            elif self._mapping.group_field == "group_id" and not value.strip().isdigit():
                self._warn(result, action, "zendesk.group_unmapped",
                           f"group {action.group!r} has no Zendesk group id in the mapping's groups")
            else:
                formatted = self._format(self._mapping.group_field, value, action, result, what=f"group {action.group!r}")
                if formatted is not _UNWRITABLE:
                    _put_value(update, *formatted)
                    written = True
        if action.assignee is not None:
            assignee = action.assignee.strip()
            if ticket.assignee == assignee:
                result.skipped.append(SkippedAction(action, "assignee is already set to that user"))
            elif assignee.isdigit():
                update.attributes["assignee_id"] = int(assignee)
                written = True
            elif "@" in assignee:
                # Zendesk resolves an agent by e-mail itself; no user lookup request needed.
                update.attributes["assignee_email"] = assignee
                written = True
            else:
                self._warn(result, action, "zendesk.assignee_invalid", "the assignee must be a Zendesk user id or an e-mail")
        return written

    def _plan_transition(self, ticket: Ticket, action: Transition, update: _Update, result: ApplyResult) -> bool:
        target = self._mapping.write_statuses[action.to]
        current = (ticket.raw_status or "").casefold()
        if ticket.is_in(action.to) or current == target.casefold():
            result.skipped.append(SkippedAction(action, f"already in status {target!r}"))
            return False
        if target.casefold() == "new":
            self._warn(result, action, "zendesk.transition_unavailable",
                       f"Zendesk cannot move a ticket from {ticket.raw_status!r} back to {target!r}",
                       to_status=target)
            return False
        with self._lock:
            remembered = self._refused_statuses.get(_ticket_ref(ticket.id))
        stamp = zendesk_datetime(ticket.updated) if ticket.updated is not None else None
        if remembered is not None and remembered[0] == stamp and remembered[1] == target:
            # Refused on this very version of the ticket: sending it again would fail the same way.
            reason = remembered[2]
            result.skipped.append(SkippedAction(action, reason))
            result.refused.append(reason)
            result.warnings.append(reason)
            return False
        update.attributes["status"] = target
        return True

    def _format(self, ref: str, value: Any, action: Action, result: ApplyResult, *, what: str | None = None) -> Any:
        """(target, value in Zendesk's shape), or _UNWRITABLE after recording why."""
        try:
            target = self._resolve(ref)
        except FieldResolutionError as exc:
            self._warn(result, action, "zendesk.field_unresolved", str(exc), field=ref)
            return _UNWRITABLE
        try:
            if target.attribute is not None:
                return target, _format_attribute(target.attribute, value)
            assert target.field is not None
            return target, format_custom_field_value(target.field, value)
        except (TypeError, ValueError) as exc:
            subject = what or f"field {target.name!r}"
            reason = f"value for {subject} cannot be written: {exc}"
            self._warn(result, action, "zendesk.field_value_invalid", reason, field=target.name)
            return _UNWRITABLE

    def _resolve(self, ref: str) -> _Target:
        # Attributes need no catalogue, so a plan of priorities and tags costs no field read.
        if ref in _WRITABLE_ATTRIBUTES or ref in _READ_ONLY_ATTRIBUTES:
            return _attribute_target(ref)
        return self._catalogue().resolve(ref)

    def _warn(self, result: ApplyResult, action: Action, event: str, reason: str, **fields: Any) -> None:
        log.warning(event, extra={"platform": PLATFORM, "rule": action.rule, **fields})
        result.skipped.append(SkippedAction(action, reason))
        result.warnings.append(reason)

    def _put_update(self, ref: str, path: str, body: dict[str, Any], *, idempotent: bool) -> dict[str, Any]:
        def send() -> dict[str, Any]:
            try:
                answer = self._request("PUT", path, json=body)
            except PlatformError as exc:
                if exc.may_have_taken_effect:
                    self._limiter.record(ref)
                raise
            self._limiter.record(ref)
            return answer

        return self._call("ticket.update", "PUT", send, idempotent=idempotent)

    # --- configuration reads (connector doctor) --------------------------------------------

    def read_json(self, operation: str, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One GET of `{ZENDESK_URL}/api/v2/{path}` under the retry policy, as parsed JSON.

        For `connector doctor`, which reads the account's configuration (the user, fields,
        groups, webhooks, triggers …) through the same auth, retries and error taxonomy as
        the adapter, and must never write: there is deliberately no method for other verbs."""
        return self._get(operation, path, params)

    def read_list(self, operation: str, path: str, key: str, params: Mapping[str, Any] | None = None,
                  *, limit: int = 1000) -> list[dict[str, Any]]:
        """Every item under `key` of a paged listing (cursor or offset), at most `limit`."""
        items: list[dict[str, Any]] = []
        for page in self._pages(operation, path, dict(params or {})):
            items.extend(item for item in page.get(key) or () if isinstance(item, dict))
            if len(items) >= limit:
                break
        return items[:limit]

    def field_catalogue(self) -> TicketFieldCatalogue:
        """The account's ticket fields (`GET /api/v2/ticket_fields.json`, read once per adapter)."""
        return self._catalogue()

    # --- plumbing ------------------------------------------------------------------------

    def _get(self, operation: str, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._call(operation, "GET", lambda: self._request("GET", path, params=params), idempotent=True)

    def _pages(self, operation: str, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every page of a listing, following cursor (`meta.has_more`) or offset (`next_page`) paging."""
        current: dict[str, Any] | None = params
        seen: list[dict[str, Any]] = []
        while current is not None:
            page = self._get(operation, path, current)
            yield page
            seen.append(current)
            current = _next_params(page, current)
            if current in seen:  # a server repeating its cursor must not loop us forever
                log.warning("zendesk.pagination_stuck", extra={"platform": PLATFORM, "operation": operation})
                return

    def _request(
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

    def _call(self, operation: str, method: str, fn: Callable[[], T], *, idempotent: bool) -> T:
        """One HTTP request under the retry policy, with library errors translated."""

        def attempt() -> T:
            try:
                return fn()
            except PlatformError:
                raise
            except APIException as exc:
                # `from None`: zenpy's message is the whole response body.
                raise _from_api_exception(exc) from None
            except requests.RequestException as exc:
                if exc.response is not None:
                    raise _from_response(exc.response) from None
                if not isinstance(exc, requests.exceptions.InvalidJSONError):  # that one had an answer
                    API_CALLS.labels(platform=PLATFORM, method=method, status="no_response").inc()
                raise error_from_requests(exc, platform=PLATFORM) from None
            except RatelimitBudgetExceeded:
                raise RateLimited("zenpy's rate-limit budget is spent", retry_after=None, platform=PLATFORM) from None
            except ZenpyException as exc:
                raise PlatformError(f"zenpy refused the request ({type(exc).__name__})", platform=PLATFORM) from None

        return self._policy.call(operation, attempt, idempotent=idempotent, platform=PLATFORM)

    def _catalogue(self) -> TicketFieldCatalogue:
        with self._lock:
            if self._catalogue_cache is None:
                fields: list[dict[str, Any]] = []
                for page in self._pages("ticket_fields.list", "ticket_fields.json", {}):
                    fields.extend(page.get("ticket_fields") or ())
                self._catalogue_cache = TicketFieldCatalogue(fields)
            return self._catalogue_cache

    def _needs_catalogue(self, raw: Mapping[str, Any]) -> bool:
        """True when the mapping names a field by title (the parser then needs the catalogue)."""
        refs = [*self._mapping.fields.values(), self._mapping.category_field, self._mapping.group_field]
        return any(not ref.isdigit() and (ref not in raw or ref in ("custom_fields", "fields")) for ref in refs)


_UNWRITABLE: Any = object()


def _refused_kind(action: Action) -> str:
    """The WRITES_REFUSED `what` of an action that cannot land."""
    if isinstance(action, Transition):
        return "transition"
    if isinstance(action, (AddLabel, RemoveLabel)):
        return "tags"
    if isinstance(action, AddComment):
        return "comment"
    return "field"


def _put_value(update: _Update, target: _Target, value: Any) -> None:
    if target.attribute is not None:
        update.attributes[target.attribute] = value
    else:
        assert target.field is not None
        update.custom_fields[int(target.field["id"])] = value


def _ticket_ref(ticket_id: str) -> str:
    match = _TICKET_REF.match(str(ticket_id).strip())
    if match is None:
        raise NotFound("not a Zendesk ticket id", platform=PLATFORM)
    return match.group(1)


def _trimmed(ticket: dict[str, Any], wanted: set[str] | None) -> dict[str, Any]:
    return ticket if wanted is None else {key: value for key, value in ticket.items() if key in wanted}


def _next_params(page: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any] | None:
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


def _check_tags(ticket: Ticket, answer: Mapping[str, Any], update: _Update, result: ApplyResult) -> None:
    """Warn when the answer shows a tag change did not land (Zendesk ignores what it does not accept).

    A marker that silently failed to land would let its comment be posted again on every
    reconcile, so this is checked on the answer the update returns anyway.
    """
    shown = answer.get("ticket")
    tags = shown.get("tags") if isinstance(shown, Mapping) else None
    if not isinstance(tags, list):
        return
    now = {str(tag) for tag in tags}
    missing = [tag for tag in update.add_tags if tag not in now]
    kept = [tag for tag in update.remove_tags if tag in now]
    if missing or kept:
        log.error(
            "zendesk.tags_not_applied",
            extra={"platform": PLATFORM, "ticket": ticket.key, "missing": missing, "not_removed": kept},
        )
        result.warnings.append(
            f"Zendesk did not apply tag changes: missing {missing}, not removed {kept}"
        )


def _updated_at(answer: Mapping[str, Any]) -> str | None:
    ticket = answer.get("ticket")
    stamp = ticket.get("updated_at") if isinstance(ticket, Mapping) else None
    return str(stamp) if stamp else None


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
