"""Searching Zendesk: the Search API, its export past 1,000 results, and the incremental export.

`search` uses `/api/v2/search.json` (sorted, but capped by Zendesk at 1,000 results: page
11 is a 422) and goes on with the cursor-paged `/api/v2/search/export.json` past that –
at once for an unordered query, after the first 1,000 for an ordered one – without
`type:` in the export's query (it takes `filter[type]`). `incremental_tickets` pages
`/api/v2/incremental/tickets/cursor.json` (admins only) for the sweep, yielding each page
with the cursor to resume from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from connector.platforms.zendesk.client import PAGE_SIZE, ZendeskClient, next_params

INCREMENTAL_PAGE_SIZE = 1000
# /search.json never returns more than this many results for one query.
SEARCH_RESULT_LIMIT = 1000
_TYPE_TICKET = re.compile(r"(?<![\w-])type:ticket\b", re.IGNORECASE)
_ORDERING = re.compile(r"(?<![\w-])(?:order_by|sort):\S+", re.IGNORECASE)


class IncrementalPage(NamedTuple):
    """One page of the incremental ticket export and the cursor that resumes after it."""

    tickets: list[dict[str, Any]]
    cursor: str | None
    end_of_stream: bool


def search_tickets(client: ZendeskClient, query: str,
                   fields: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
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
        page = client.get("search", "search.json", params)
        over_cap = isinstance(page.get("count"), int) and page["count"] > SEARCH_RESULT_LIMIT
        if first and over_cap and not ordered:
            # Only the export endpoint reaches past Zendesk's 1,000-result cap; without an
            # order to keep, it serves every result from the start.
            yield from _search_export(client, query, wanted, skip=given)
            return
        first = False
        for result in page.get("results") or ():
            if result.get("result_type", "ticket") == "ticket":
                given.add(str(result.get("id")))
                yield _trimmed(result, wanted)
        params = next_params(page, params)
        if over_cap and params is not None and len(given) >= SEARCH_RESULT_LIMIT:
            params = None  # page 11 would be a 422 (Search API "Results limit")
    if ordered and over_cap:
        # The first 1,000 came in the order asked (what a "top N" caller reads); a caller
        # reading on gets the rest from the export, which knows no order.
        yield from _search_export(client, query, wanted, skip=given)


def _search_export(client: ZendeskClient, query: str, wanted: set[str] | None, *,
                   skip: set[str]) -> Iterator[dict[str, Any]]:
    """Export Search Results: the object type goes in `filter[type]`, never in the query
    ("Searches with type in the query string will result in an error"), and it is ordered
    by created_at only, so ordering terms are dropped as well."""
    export_query = " ".join(_ORDERING.sub(" ", _TYPE_TICKET.sub(" ", query)).split())
    params = {"query": export_query, "filter[type]": "ticket", "page[size]": PAGE_SIZE}
    for page in client.pages("search.export", "search/export.json", params):
        for result in page.get("results") or ():
            if result.get("result_type", "ticket") == "ticket" and str(result.get("id")) not in skip:
                yield _trimmed(result, wanted)


def incremental_tickets(
    client: ZendeskClient,
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
        page = client.get("incremental.tickets", "incremental/tickets/cursor.json", params)
        after = page.get("after_cursor")
        after = str(after) if after else None
        end = bool(page.get("end_of_stream")) or after is None or after in seen
        yield IncrementalPage(list(page.get("tickets") or ()), after, end)
        if end:
            return
        assert after is not None
        seen.add(after)
        params = {"per_page": per_page, "cursor": after}


def _trimmed(ticket: dict[str, Any], wanted: set[str] | None) -> dict[str, Any]:
    return ticket if wanted is None else {key: value for key, value in ticket.items() if key in wanted}
