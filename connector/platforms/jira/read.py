"""Reading Jira issues: one request per fetch, completed only where Jira cut a list short.

`fetch` is ONE request, `GET /rest/api/2/issue/{key}?expand=changelog,names,transitions.fields,editmeta`:
the changelog gives the status history for SLA clocks, `names` resolves custom field
display names, and the transitions with their screens' fields and `editmeta` are kept
(`workflow.FetchMemory`) so `apply` needs no second read. Jira Cloud embeds only the most
recent 100 changelog entries and at most 100 comments (the oldest are the ones left out;
`total` still counts them all). When `changelog.total` says there are more, the rest is
paged from `/rest/api/2/issue/{key}/changelog` (Cloud only – Data Center returns the whole
changelog with the issue; if it ever reports more, the event `jira.changelog_truncated`
is logged and the ticket is parsed with what came); when `fields.comment.total` does, the
missing comments are paged from `/rest/api/2/issue/{key}/comment` (oldest first, 100 a
page), because first-response and update clocks read from a cut list would be wrong.

`complete_listed` does the same for search results, which embed even less (40 changelog
entries per issue, JRACLOUD-96459): only for the results that are cut short, with one
`POST /rest/api/3/changelog/bulkfetch` for the changelogs of up to 1,000 issues (Cloud).

Parsing the issue JSON into a `Ticket` is `issue.py`'s job; this module only gathers it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from connector.model import Ticket
from connector.platforms.comment_marker import carried_marker
from connector.platforms.field_values import rich_text
from connector.platforms.jira.client import PLATFORM, JiraClient, issue_ref
from connector.platforms.jira.issue import parse_jira_issue
from connector.platforms.jira.workflow import FetchMemory
from connector.platforms.mapping import PlatformMapping

log = logging.getLogger(__name__)

# `transitions.fields`: each transition with its screen's fields (required, schema, allowed
# values), so a transition's required fields are known without a second read; `editmeta`:
# what the edit screen allows in the current status.
FETCH_EXPAND = "changelog,names,transitions.fields,editmeta"
CHANGELOG_PAGE_SIZE = 100
COMMENT_PAGE_SIZE = 100  # Jira Cloud never returns more comments a page (pycontribs/jira#1938)
# POST /rest/api/3/changelog/bulkfetch: up to 1,000 issues a request, up to 10,000 entries a page.
BULK_CHANGELOG_ISSUES = 1000
BULK_CHANGELOG_PAGE_SIZE = 10000


class IssueReader:
    """Fetches and parses issues for one mapping."""

    def __init__(self, client: JiraClient, mapping: PlatformMapping, fetched: FetchMemory) -> None:
        self._client = client
        self._mapping = mapping
        self._fetched = fetched

    def fetch(self, ticket_id: str) -> Ticket:
        """The issue with its status history, comments and available transitions (one request)."""
        raw = self._client.get_issue(issue_ref(ticket_id), FETCH_EXPAND)
        raw = self._complete_comments(self._complete_changelog(raw))
        ticket = parse_jira_issue(raw, self._mapping, base_url=self._client.base_url,
                                  field_names=self._client.known_field_names(),
                                  connector_ids=self._connector_ids(raw))
        self._fetched.remember(ticket.id, raw)
        return ticket

    def parse(self, raw: dict[str, Any]) -> Ticket:
        """A raw issue (from search or fetch) as the rules see it."""
        return parse_jira_issue(raw, self._mapping, base_url=self._client.base_url,
                                field_names=self._client.catalogue().names(),
                                connector_ids=self._client.own_ids() or frozenset())

    def complete_listed(self, raws: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Search results whose embedded changelog or comments are cut short, completed.

        Returns issue id -> the issue with its whole changelog and every comment, for those it
        could complete; an issue left out (a Data Center changelog, which has no paging
        endpoint) needs a fetch. Changelogs of all the issues come from as few
        `POST /rest/api/3/changelog/bulkfetch` requests as their size allows (Cloud);
        comments are paged per issue from `/issue/{key}/comment`. Issues that are not cut
        short cost nothing.
        """
        changelog_short = [raw for raw in raws if _truncated(raw.get("changelog"), "histories")]
        histories: dict[str, list[dict[str, Any]]] = {}
        if changelog_short and self._client.is_cloud():
            histories = self._bulk_changelogs([str(raw.get("id")) for raw in changelog_short])
        completed: dict[str, dict[str, Any]] = {}
        for raw in raws:
            issue_id = str(raw.get("id") or "")
            if not issue_id:
                continue
            changelog = raw.get("changelog")
            if _truncated(changelog, "histories"):
                if issue_id not in histories:
                    continue
                merged = _merge_by_id(histories[issue_id], changelog.get("histories") or [])
                if len(merged) < changelog.get("total", 0):
                    continue
                raw = {**raw, "changelog": {**changelog, "startAt": 0, "maxResults": len(merged),
                                            "total": len(merged), "histories": merged}}
            completed[issue_id] = self._complete_comments(raw)
        return completed

    def _bulk_changelogs(self, issue_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Every changelog entry of the issues, oldest first, by issue id (Jira Cloud)."""
        out: dict[str, list[dict[str, Any]]] = {issue_id: [] for issue_id in issue_ids}
        for start in range(0, len(issue_ids), BULK_CHANGELOG_ISSUES):
            chunk = list(issue_ids[start:start + BULK_CHANGELOG_ISSUES])
            token: str | None = None
            while True:
                page = self._client.bulk_changelog_page(chunk, BULK_CHANGELOG_PAGE_SIZE, token)
                for entry in page.get("issueChangeLogs") or ():
                    issue_id = str(entry.get("issueId"))
                    if issue_id in out:
                        out[issue_id].extend(entry.get("changeHistories") or ())
                token = page.get("nextPageToken")
                if not token:
                    break
        return out

    def _complete_comments(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The issue with every comment, paging `/issue/{key}/comment` when `total` says the
        embedded page is short (Cloud embeds at most 100; the oldest are the ones missing)."""
        fields = raw.get("fields")
        page = fields.get("comment") if isinstance(fields, dict) else None
        if not _truncated(page, "comments"):
            return raw
        total = page["total"]
        merged = {str(c.get("id")): c for c in page.get("comments") or () if isinstance(c, dict)}
        key = issue_ref(str(raw.get("key") or raw.get("id")))
        start = 0
        # Oldest first from the start: the missing ones come first, and paging stops as soon
        # as every comment `total` counts has been seen.
        while len(merged) < total:
            listed = self._client.comment_page(key, start, COMMENT_PAGE_SIZE)
            comments = [c for c in listed.get("comments") or () if isinstance(c, dict)]
            for comment in comments:
                merged.setdefault(str(comment.get("id")), comment)
            start += len(comments)
            if not comments or start >= int(listed.get("total") or 0):
                break
        if len(merged) < total:
            log.warning("jira.comments_incomplete",
                        extra={"platform": PLATFORM, "ticket": key, "total": total, "read": len(merged)})
        comments = sorted(merged.values(), key=_chronological)
        complete = {**page, "startAt": 0, "maxResults": len(comments), "total": len(comments), "comments": comments}
        return {**raw, "fields": {**fields, "comment": complete}}

    def _complete_changelog(self, raw: dict[str, Any]) -> dict[str, Any]:
        changelog = raw.get("changelog")
        if not isinstance(changelog, dict):
            return raw
        histories = list(changelog.get("histories") or ())
        total = changelog.get("total")
        if not isinstance(total, int) or total <= len(histories):
            return raw
        key = str(raw.get("key") or raw.get("id"))
        if not self._client.is_cloud():
            log.warning(
                "jira.changelog_truncated",
                extra={"platform": PLATFORM, "ticket": key, "total": total, "returned": len(histories)},
            )
            return raw
        # The embedded entries are the most recent ones; /changelog pages from the oldest.
        # Keep reading until the pages reach the embedded part, merging by history id.
        older: list[dict[str, Any]] = []
        seen = {str(h.get("id")) for h in histories}
        missing = total - len(histories)
        start = 0
        while start < missing:
            page = self._client.changelog_page(issue_ref(key), start, CHANGELOG_PAGE_SIZE)
            values = page.get("values") or []
            for history in values:
                if str(history.get("id")) not in seen:
                    seen.add(str(history.get("id")))
                    older.append(history)
            if not values or page.get("isLast", True):
                break
            start += len(values)
        merged = older + histories
        return {**raw, "changelog": {**changelog, "startAt": 0, "maxResults": len(merged), "histories": merged}}

    def _connector_ids(self, raw: Mapping[str, Any]) -> frozenset[str]:
        """The connector account's ids, asked from `GET /myself` once per process, and only
        when the mapping cannot tell the connector's comments apart by itself.

        That is the case when no `connector_account` is configured (a Data Center personal
        access token has no user name in the settings), or when a comment carrying a marker
        trailer has an author the configured account does not match (Jira Cloud may hide
        e-mail addresses). Without it the connector's own internal notes would count as
        agent responses and the markers they carry would be ignored.
        """
        known = self._client.own_ids()
        if known is not None:
            return known
        comments = ((raw.get("fields") or {}).get("comment") or {}).get("comments") or []
        if not isinstance(comments, list) or not comments:
            return frozenset()
        account = (self._mapping.connector_account or "").casefold()
        if account:
            strangers = [
                c for c in comments
                if isinstance(c, Mapping) and carried_marker(rich_text(c.get("body")))
                and account not in _author_ids(c.get("author"))
            ]
            if not strangers:
                return frozenset()
        return self._client.myself()


def _truncated(page: Any, key: str) -> bool:
    """True when an embedded page (`changelog`, `fields.comment`) holds fewer than its `total`."""
    if not isinstance(page, Mapping):
        return False
    items, total = page.get(key), page.get("total")
    return isinstance(total, int) and isinstance(items, list) and total > len(items)


def _merge_by_id(older: Sequence[Mapping[str, Any]], newer: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for entry in (*older, *newer):
        if isinstance(entry, Mapping):
            merged.setdefault(str(entry.get("id")), dict(entry))
    return sorted(merged.values(), key=_chronological)


def _chronological(entry: Mapping[str, Any]) -> tuple[float, int]:
    """Sort key of a changelog entry or comment: its creation instant, then its id."""
    try:
        at = datetime.fromisoformat(str(entry.get("created"))).timestamp()
    except (TypeError, ValueError):
        at = float("inf")  # unreadable: last; the parser reports it
    try:
        number = int(entry.get("id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = 0
    return at, number


def _author_ids(author: Any) -> set[str]:
    if not isinstance(author, Mapping):
        return set()
    return {str(author[k]).casefold() for k in ("accountId", "name", "key", "emailAddress") if author.get(k)}
