"""Where a sweep finds tickets, per platform: one `Source` for Jira, one for Zendesk.

The sweep itself is platform-neutral; a source knows how its platform lists "tickets
updated since the last sweep" and "every ticket that may still have a deadline", at the
platform's largest page size, and how much of the ticket a listing already holds:

- **Jira**: JQL search with `expand=changelog` and only the fields the rules read, so each
  result parses into a complete `Ticket` and is evaluated without a second GET. Search
  embeds at most 40 changelog entries per issue (JRACLOUD-96459) and a capped comment
  list: a result cut short (`total` larger than what came) is handed over with its raw
  listing, and `complete` fills in the rest for just those, in bulk (one
  `POST /rest/api/3/changelog/bulkfetch` for the changelogs of a whole page on Cloud, and
  comment pages per issue) – only when the sweep decides the ticket needs evaluating.
  What cannot be completed that way (a Data Center changelog) is queued for a reconcile,
  whose fetch reads the whole issue.
- **Zendesk**: the incremental ticket export (1,000 tickets a request, resumable cursor)
  and search. Neither carries the audits the status history comes from, so tickets are
  handed over by id with their `updated_at`; the sweep skips those settled at that stamp
  (`connector.queue.deadlines`) and queues a reconcile for the others. The incremental
  export is for admins only (an agent's token gets 403: the endpoints' "Allowed For:
  Admins", Zendesk community post
  4428358191514) and allows 10 requests a minute (Incremental Exports API reference), so on
  a 403 the recent sweep falls back to search (`updated>…`), remembers that for the life
  of the process (one 403, one log line, not one per sweep) and keeps a time checkpoint.
  Search indexes new changes with a delay ("It can take up to a few minutes for new
  tickets, users, and other resources to be indexed", Search API reference), so its window
  reaches back `SEARCH_INDEX_LAG` further.

Recent-updates windows: Jira JQL dates are minute-precise and read in the *searching
user's* profile time zone, which the connector does not know without another request, so
the window is written as a relative offset (`updated >= -7m`), which Jira evaluates on its
own clock in any zone. The window reaches back to the previous sweep's start minus an
overlap (default 2 min) covering the minute rounding and clock skew between hosts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from connector.model import Ticket
from connector.platforms.base import Unauthorized
from connector.platforms.field_values import MalformedTicketError
from connector.timefmt import parse_instant

log = logging.getLogger(__name__)

JIRA_SEARCH_PAGE_SIZE = 100  # Jira Cloud returns at most 100 issues a page when fields are requested
DEFAULT_OVERLAP = timedelta(minutes=2)
# Done tickets still have deadlines: a follow-up due 3 business days after closing, an
# auto-close 3 business days after resolving. Two weeks covers those plus a long holiday
# (China's National Day week) in the standard calendar.
DEFAULT_CLOSED_LOOKBACK = timedelta(days=14)
# How far a search-based recent sweep reaches back beyond its checkpoint (search indexing lag).
SEARCH_INDEX_LAG = timedelta(minutes=5)

# Jira fields `parse_jira_issue` reads besides the mapped ones.
JIRA_BASE_FIELDS = (
    "summary", "description", "status", "priority", "reporter", "assignee", "labels", "components",
    "created", "updated", "resolutiondate", "comment",
)


@dataclass(frozen=True)
class Found:
    """One ticket a listing returned. `listed` (or `ticket`) is set when the listing held
    everything the rules need; otherwise the sweep must have it completed or fetched."""

    ticket_id: str
    updated: datetime | None
    ticket: Ticket | None = None
    skip_reason: str | None = None  # deleted, malformed: counted, not reconciled
    # The listing's own representation when it was cut short: `Source.complete` can finish it.
    raw: dict[str, Any] | None = None
    # A complete listing, parsed (`Source.parse`) only when the sweep evaluates the ticket:
    # most tickets of a full sweep are settled and skipped on their stamp, and parsing was
    # half of the CPU a ticket cost.
    listed: dict[str, Any] | None = None


@dataclass(frozen=True)
class Batch:
    """One page. `checkpoint`, when set, is where the next recent sweep resumes once this
    page is processed (the Zendesk cursor after it; the Jira watermark on the last page)."""

    found: list[Found]
    checkpoint: str | None = None


class Source(Protocol):
    platform: str

    def recent(self, checkpoint: str | None, now: datetime, default_window: timedelta) -> Iterator[Batch]:
        """Tickets changed since `checkpoint` (None: within `default_window` before `now`)."""
        ...

    def open_tickets(self, now: datetime) -> Iterator[Batch]:
        """Every ticket that may still have a deadline: open ones and recently closed ones."""
        ...

    def complete(self, found: list[Found]) -> dict[str, Ticket]:
        """Tickets for listings that were cut short (`Found.raw`), by id; those left out need a fetch."""
        ...

    def parse(self, listed: dict[str, Any]) -> Ticket:
        """The ticket of a complete listing (`Found.listed`); raises MalformedTicketError/ValueError."""
        ...


# --- Jira ---------------------------------------------------------------------------------


class JiraSource:
    """Jira Cloud (enhanced search, `nextPageToken`) and Data Center (`startAt`)."""

    platform = "jira"

    def __init__(self, adapter: Any, *, overlap: timedelta = DEFAULT_OVERLAP,
                 closed_lookback: timedelta = DEFAULT_CLOSED_LOOKBACK, page_size: int = JIRA_SEARCH_PAGE_SIZE):
        self._adapter = adapter
        self._overlap = overlap
        self._closed_lookback = closed_lookback
        self._page_size = page_size

    def recent(self, checkpoint: str | None, now: datetime, default_window: timedelta) -> Iterator[Batch]:
        since = datetime.fromisoformat(checkpoint) if checkpoint else now - default_window
        minutes = max(1, math.ceil((now - since + self._overlap).total_seconds() / 60))
        # ORDER BY key: a ticket updated during the sweep (by an agent, or by a worker
        # applying a queued reconcile) keeps its place, so paging neither repeats nor skips it.
        previous: Batch | None = None
        for batch in self._pages(f"updated >= -{minutes}m ORDER BY key ASC"):
            if previous is not None:
                yield previous
            previous = batch
        # Saved only with the last page: pages are not in `updated` order, so an interrupted
        # sweep must start over. The next window starts where this one was taken.
        yield Batch(previous.found if previous else [], checkpoint=now.isoformat())

    def open_tickets(self, now: datetime) -> Iterator[Batch]:
        yield from self._pages("statusCategory != Done ORDER BY key ASC")
        days = max(1, math.ceil(self._closed_lookback.total_seconds() / 86400))
        yield from self._pages(f"statusCategory = Done AND updated >= -{days}d ORDER BY key ASC")

    def _pages(self, jql: str) -> Iterator[Batch]:
        page: list[Found] = []
        for raw in self._search(jql):
            page.append(self._found(raw))
            if len(page) >= self._page_size:
                yield Batch(page)
                page = []
        if page:
            yield Batch(page)

    def _found(self, raw: dict[str, Any]) -> Found:
        ticket_id = str(raw.get("id") or raw.get("key") or "")
        fields = raw.get("fields") if isinstance(raw.get("fields"), dict) else {}
        changelog = raw.get("changelog") or {}
        comments = fields.get("comment") or {}
        truncated = _truncated(changelog, "histories") or _truncated(comments, "comments")
        try:
            updated = parse_instant(fields.get("updated"))
            if truncated:
                return Found(ticket_id, updated, raw=raw)
            return Found(ticket_id, updated, listed=raw)
        except (MalformedTicketError, ValueError) as exc:
            log.warning("sync.ticket_unreadable", extra={"platform": "jira", "ticket_id": ticket_id, "error": str(exc)})
            return Found(ticket_id, None, skip_reason="malformed")

    def complete(self, found: list[Found]) -> dict[str, Ticket]:
        raws = [f.raw for f in found if f.raw is not None]
        completer = getattr(self._adapter, "complete_listed", None)
        if not raws or completer is None:
            return {}
        tickets: dict[str, Ticket] = {}
        for issue_id, raw in completer(raws).items():
            try:
                tickets[issue_id] = self._parse(raw)
            except (MalformedTicketError, ValueError) as exc:
                # Queued instead: the worker's fetch reports it through its own error path.
                log.warning("sync.ticket_unreadable",
                            extra={"platform": "jira", "ticket_id": issue_id, "error": str(exc)})
        return tickets

    def _search(self, jql: str) -> Iterator[dict[str, Any]]:
        adapter = self._adapter
        return adapter.search(jql, fields=adapter.rule_fields(JIRA_BASE_FIELDS), page_size=self._page_size,
                              expand="changelog")

    def _parse(self, raw: dict[str, Any]) -> Ticket:
        return self._adapter.parse(raw)

    parse = _parse


def _truncated(page: Any, key: str) -> bool:
    if not isinstance(page, dict):
        return False
    items = page.get(key)
    total = page.get("total")
    return isinstance(total, int) and isinstance(items, list) and total > len(items)


# --- Zendesk ------------------------------------------------------------------------------


class ZendeskSource:
    """Zendesk Support: the cursor-based incremental ticket export, and search for open tickets."""

    platform = "zendesk"

    def __init__(self, adapter: Any, *, overlap: timedelta = DEFAULT_OVERLAP):
        self._adapter = adapter
        self._overlap = overlap

    def recent(self, checkpoint: str | None, now: datetime, default_window: timedelta) -> Iterator[Batch]:
        key = _account_key(self._adapter)
        if key not in _INCREMENTAL_FORBIDDEN:
            try:
                yield from self._incremental(checkpoint, now, default_window)
                return
            except Unauthorized as exc:
                # 401 is a bad token (search would fail too); only a 403 means "not an admin".
                if exc.status != 403:
                    raise
                _INCREMENTAL_FORBIDDEN.add(key)
                log.warning("sync.incremental_export_forbidden", extra={
                    "platform": "zendesk", "fallback": "search",
                    "fix": "the incremental export is for admins only; give the connector's Zendesk user the "
                           "admin role to use it, or leave it an agent: the sweep searches instead",
                })
        yield from self._search_recent(checkpoint, now, default_window)

    def _incremental(self, checkpoint: str | None, now: datetime, default_window: timedelta) -> Iterator[Batch]:
        # The export's cursor is exact (no minute rounding), so the overlap only widens the
        # very first window, which starts from a time instead of a cursor.
        since = _checkpoint_time(checkpoint)
        if checkpoint and since is None:
            pages = self._adapter.incremental_tickets(cursor=checkpoint)
        else:
            # No checkpoint, or a time one left by a search sweep of an earlier process.
            start = (since or now - default_window) - self._overlap
            pages = self._adapter.incremental_tickets(start_time=start)
        for page in pages:
            yield Batch([self._found(raw) for raw in page.tickets], checkpoint=page.cursor)

    def _search_recent(self, checkpoint: str | None, now: datetime, default_window: timedelta) -> Iterator[Batch]:
        since = (_checkpoint_time(checkpoint) or now - default_window) - max(self._overlap, SEARCH_INDEX_LAG)
        stamp = since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        previous: Batch | None = None
        for batch in self._batches(self._adapter.search(f"updated>{stamp}", fields=["updated_at", "status"])):
            if previous is not None:
                yield previous
            previous = batch
        # Like Jira's: the checkpoint (this sweep's start) is saved with the last page only.
        yield Batch(previous.found if previous else [], checkpoint=now.isoformat())

    def open_tickets(self, now: datetime) -> Iterator[Batch]:
        # Closed tickets cannot change in Zendesk, so nothing could be written to them.
        yield from self._batches(self._adapter.search("status<closed", fields=["updated_at", "status"]))

    def _batches(self, results: Iterator[dict[str, Any]]) -> Iterator[Batch]:
        page: list[Found] = []
        for raw in results:
            page.append(self._found(raw))
            if len(page) >= 100:
                yield Batch(page)
                page = []
        if page:
            yield Batch(page)

    def complete(self, found: list[Found]) -> dict[str, Ticket]:
        return {}  # a listing never holds the audits: every ticket is fetched by its reconcile

    def parse(self, listed: dict[str, Any]) -> Ticket:
        raise ValueError("a Zendesk listing holds no status history; the ticket must be fetched")

    @staticmethod
    def _found(raw: dict[str, Any]) -> Found:
        ticket_id = str(raw.get("id") or "")
        if raw.get("status") == "deleted":
            return Found(ticket_id, None, skip_reason="deleted")
        try:
            updated = parse_instant(raw.get("updated_at"))
        except ValueError:
            updated = None
        return Found(ticket_id, updated)


# Zendesk accounts (by base URL) whose incremental export answered 403 in this process.
_INCREMENTAL_FORBIDDEN: set[str] = set()


def _account_key(adapter: Any) -> str:
    return str(getattr(adapter, "base_url", None) or id(adapter))


def _checkpoint_time(checkpoint: str | None) -> datetime | None:
    """The time a search sweep saved; None for an incremental export cursor (or nothing)."""
    if not checkpoint:
        return None
    try:
        moment = datetime.fromisoformat(checkpoint)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def source_for(platform: str, adapter: Any, **options: Any) -> Source:
    if platform == "jira":
        return JiraSource(adapter, **options)
    if platform == "zendesk":
        return ZendeskSource(adapter, **{k: v for k, v in options.items() if k == "overlap"})
    raise ValueError(f"unknown platform {platform!r}; expected 'jira' or 'zendesk'")
