"""Reading the tickets a review needs from Jira or Zendesk, through the adapters only.

What a review of [start, end) with its previous period [prev_start, start) needs is every
ticket created in either period plus every older ticket still open at either period's
end. Two searches cover exactly that, for both platforms:

- open now, created before the end: the backlog (and the period's own open tickets);
- resolved/closed now, created before the end and updated since the previous period began:
  a ticket that was open at a period end and is done now changed after that end, and a
  ticket created in a period and done now was updated when it was resolved.

Neither search language can say "created in the calendar's zone": JQL reads absolute dates
in the searching user's profile zone (unknown to the connector), Zendesk's search in UTC.
So the windows are widened by a day on each side and the exact cut is made locally on
each `Ticket.created` (see `metrics`), which costs a few extra tickets, never a missing one.

Search results do not carry what the figures need (Jira's `search()` takes no
`expand=changelog`; Zendesk's search has no audits), so each listed ticket is read with the
adapter's `fetch`, the same read a reconcile makes: 1 request per Jira issue, 2 per
Zendesk ticket, plus one request per search page (Jira 1,000 keys a page – only the key is
asked for; Zendesk 100, its maximum). Reads run on a few threads; every request goes
through the adapter's retry policy, which honours Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from connector.model import Ticket
from connector.platforms.base import NotFound
from connector.review.metrics import Period

log = logging.getLogger(__name__)

SEARCH_MARGIN = timedelta(days=1)
JIRA_KEY_PAGE_SIZE = 1000
FETCH_THREADS = 4


class ReviewAdapter(Protocol):
    """The part of a platform adapter a review uses."""

    def search(self, query: str, fields: Sequence[str] | None = None) -> Iterator[dict[str, Any]]: ...

    def fetch(self, ticket_id: str) -> Ticket: ...


# A progress reporter: given an iterable, a label and (if known) a length, returns a context
# manager yielding the same items; `click.progressbar` has this shape.
Progress = Callable[..., AbstractContextManager[Iterable[Any]]]


def no_progress(iterable: Iterable[Any], label: str = "", length: int | None = None) -> AbstractContextManager[Iterable[Any]]:
    return nullcontext(iterable)


def search_queries(platform: str, period: Period) -> list[str]:
    """The two searches that list every ticket the review of `period` (and its previous period) needs."""
    since = period.previous().start - SEARCH_MARGIN
    until = period.end + SEARCH_MARGIN
    if platform == "jira":
        def jql_time(at: datetime) -> str:
            return f'"{at.astimezone(timezone.utc):%Y-%m-%d %H:%M}"'

        return [
            f"created < {jql_time(until)} AND statusCategory != Done ORDER BY key ASC",
            f"created < {jql_time(until)} AND statusCategory = Done AND updated >= {jql_time(since)} ORDER BY key ASC",
        ]
    if platform == "zendesk":
        def zd_time(at: datetime) -> str:
            return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

        return [
            f"type:ticket created<{zd_time(until)} status<solved",
            f"type:ticket created<{zd_time(until)} status>=solved updated>{zd_time(since)}",
        ]
    raise ValueError(f"unknown platform {platform!r}; expected 'jira' or 'zendesk'")


@dataclass
class Collected:
    """The tickets read, and the ids listed but gone by the time they were read."""

    tickets: list[Ticket] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)


def list_ids(adapter: ReviewAdapter, platform: str, period: Period) -> Iterator[str]:
    """Ticket ids from both searches, each once, as the pages arrive."""
    seen: set[str] = set()
    for query in search_queries(platform, period):
        if platform == "jira":
            results = adapter.search(query, fields=["key"], page_size=JIRA_KEY_PAGE_SIZE)  # type: ignore[call-arg]
        else:
            results = adapter.search(query, fields=["id"])
        for raw in results:
            ticket_id = str(raw.get("key") or raw.get("id") or "")
            if ticket_id and ticket_id not in seen:
                seen.add(ticket_id)
                yield ticket_id


def collect_tickets(adapter: ReviewAdapter, platform: str, period: Period, *, progress: Progress = no_progress,
                    threads: int = FETCH_THREADS) -> Collected:
    """List, then read, every ticket the review of `period` needs; `progress` shows both phases."""
    with progress(list_ids(adapter, platform, period), label=f"Listing {platform} tickets") as listed:
        ids = list(listed)
    collected = Collected()

    def read(ticket_id: str) -> Ticket | None:
        try:
            return adapter.fetch(ticket_id)
        except NotFound:
            # Deleted (or moved out of reach) between the search and the read.
            return None

    pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="review-fetch")
    try:
        # map() keeps the listing's order and raises the first PlatformError to the caller.
        with progress(pool.map(read, ids), label=f"Reading {platform} tickets", length=len(ids)) as results:
            for ticket_id, ticket in zip(ids, results):
                if ticket is None:
                    collected.vanished.append(ticket_id)
                else:
                    collected.tickets.append(ticket)
    finally:
        # On an error, reads not yet started are dropped instead of spending the rate limit.
        pool.shutdown(wait=True, cancel_futures=True)
    if collected.vanished:
        log.info("review.tickets_vanished", extra={"platform": platform, "count": len(collected.vanished)})
    return collected
