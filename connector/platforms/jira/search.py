"""Searching Jira with JQL, a page per request, fetched as the caller consumes them.

Cloud pages `/rest/api/2/search/jql` with `nextPageToken` (the old `/search` answers 410
there); Data Center pages `/rest/api/2/search` with `startAt`. REST v2 is used throughout
because its rich text is plain strings, which is what the parser and the comment bodies
use; v3 has the same shapes with ADF bodies.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from connector.platforms.jira.client import JiraClient
from connector.platforms.mapping import PlatformMapping

SEARCH_PAGE_SIZE = 100


def search_issues(
    client: JiraClient, query: str, fields: Sequence[str] | None = None, page_size: int = SEARCH_PAGE_SIZE,
    expand: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Raw issues matching the JQL `query`.

    `expand="changelog"` brings each issue's history along, so a sweep can evaluate
    the rules on the search result without reading every issue again.
    """
    wanted = list(fields) if fields else ["*all"]
    # The library turns JQL names into field ids from its own cache; fill it from the
    # catalogue so it does not send a second GET /field outside the retry policy.
    client.catalogue()
    if client.is_cloud():
        token: str | None = None
        while True:
            page = client.search_jql_page(query, token, page_size, wanted, expand)
            yield from page.get("issues") or ()
            token = page.get("nextPageToken")
            if not token or page.get("isLast"):
                return
    start = 0
    while True:
        page = client.search_page(query, start, page_size, wanted, expand)
        issues = page.get("issues") or []
        yield from issues
        start += len(issues)
        total = page.get("total")
        if not issues or (isinstance(total, int) and start >= total):
            return


def rule_fields(client: JiraClient, mapping: PlatformMapping, base: Sequence[str]) -> list[str]:
    """`base` plus the field ids of everything the mapping reads (category, group, logical
    fields): what a search must return for the rules to be evaluated on its results."""
    catalogue = client.catalogue()
    wanted = list(base)
    for ref in (mapping.category_field, mapping.group_field, *mapping.fields.values(),
                *filter(None, [mapping.organizations_field])):
        try:
            field_id = catalogue.resolve(ref).id
        except ValueError:
            continue  # fetch() reports unresolvable mappings; a search reads what exists
        if field_id not in wanted:
            wanted.append(field_id)
    return wanted
