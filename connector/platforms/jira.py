"""The Jira adapter: one read per reconcile; per plan a comment post each, one edit, a transition.

API calls are the scarce resource (rate limits are per site and shared with every other
integration), so the adapter is built around counting them:

- `fetch` is ONE request, `GET /rest/api/2/issue/{key}?expand=changelog,names,transitions.fields,editmeta`:
  the changelog gives the status history for SLA clocks, `names` resolves custom field
  display names, and the transitions with their screens' fields and `editmeta` (what the
  edit screen lets the connector set in the current status) are kept so `apply` needs no
  second read. Jira Cloud embeds only the most recent 100 changelog entries and at most 100
  comments (the oldest are the ones left out; `total` still counts them all). When
  `changelog.total` says there are more, the rest is paged from
  `/rest/api/2/issue/{key}/changelog` (Cloud only – Data Center returns the whole changelog
  with the issue; if it ever reports more, the event `jira.changelog_truncated` is logged
  and the ticket is parsed with what came); when `fields.comment.total` does, the missing
  comments are paged from `/rest/api/2/issue/{key}/comment` (oldest first, 100 a page),
  because first-response and update clocks read from a cut list would be wrong.
- `complete_listed` does the same for search results, which embed even less (40 changelog
  entries per issue, JRACLOUD-96459): only for the results that are cut short, with one
  `POST /rest/api/3/changelog/bulkfetch` for the changelogs of up to 1,000 issues (Cloud).
- `apply` sends nothing for a plan the ticket already shows (marker present, field equal,
  priority equal, status reached). Otherwise, in this order:
  1. each comment is `POST /rest/api/2/issue/{key}/comment` – the documented way, and the
     only one that works on a status whose workflow property `jira.issue.editable` is false
     (Closed, in stock workflows): commenting is a permission of its own there. Internal
     notes carry the property `sd.public.comment = {"internal": true}` (pycontribs/jira#313,
     jenkinsci/jira-plugin#375; what the library's `add_comment(is_internal=True)` sends).
     Atlassian's Comment schema documents `jsdPublic` ("Defaults to true when comments are
     created in the Jira Cloud Platform") and points at the Service Management API
     (`POST /rest/servicedeskapi/request/{key}/comment`, `"public": false`) for internal
     ones; the property is used instead because it needs no second API, no Service
     Management permission scheme and works on Cloud and Data Center alike, and it fails
     closed all the same: Jira Cloud answers with `jsdPublic`, and a note that landed
     public is deleted at once (`DELETE …/comment/{id}`) and reported. (A property inside an
     edit's `update.comment` is documented nowhere and is not used.)
     A one-time comment carries its marker as a last line (`ref: <marker>`, see
     `comment_marker`), so it records itself the moment it lands: a crash, a lost answer or
     a refused edit afterwards cannot make it repeat; the parser reads markers only from
     the connector account's own comments.
  2. ONE `PUT /rest/api/2/issue/{key}` with the field values and label changes that
     `editmeta` lists, plus the marker labels of the comments just posted (agents search
     by label) and of markers only a comment shows (a crash between 1 and 2). Fields the
     screen or status does not allow are not sent: they are reported (`ApplyResult.refused`,
     the `jira.write_refused` event, `connector_writes_refused_total`) and, since the next
     read's editmeta says the same, never resent. If the edit still answers 400 naming
     fields (the screen changed since the read, or the ticket came without editmeta), those
     are dropped and reported and the rest is sent once more.
  3. A workflow transition cannot ride in an edit, so it is a request of its own, picked
     from the fetched transitions by its target status name. A transition the workflow
     does not offer is a warning (logged, counted, returned), not a failure. A transition
     whose screen has required fields (stock JSM "Resolve this issue" requires Resolution)
     gets them from the mapping's `transition_fields`; when the mapping cannot supply one,
     the transition is not sent but reported (`jira.transition_fields_missing`,
     `connector_writes_refused_total{what="transition"}`), and a transition Jira refused
     with 400 is not resent until the issue changes.
  A plan with a comment and a marker therefore costs one request more than when comment
  and label shared the edit (comment POST + label PUT).
- `search` pages `/rest/api/2/search/jql` with `nextPageToken` on Cloud (the old
  `/search` answers 410 there) and `/rest/api/2/search` with `startAt` on Data Center.
  REST v2 is used throughout because its rich text is plain strings, which is what the
  parser and the comment bodies use; v3 has the same shapes with ADF bodies.

It is built on the `jira` library for authentication (basic auth with an e-mail and API
token on Cloud, a bearer personal access token on Data Center), its JSON error parsing and
its search helpers. The library's own retries are off (`max_retries=0`: ResilientSession
then sends once and never sleeps), every request goes through the shared `RetryPolicy`,
and library exceptions become the taxonomy in `base.py`. Three requests have no public
library call that sends exactly that one request (an edit without the reload and
"autofix" of `Issue.update`, a transition with a string id, a changelog page); they go
through the library's own session, so auth, headers and error parsing stay the same.
The library's logger is set to CRITICAL because it logs response bodies on bad JSON.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime
from typing import Any, TypeVar

import requests
from jira import JIRA
from jira.exceptions import JIRAError

from connector.metrics import API_CALLS, TRANSITIONS_UNAVAILABLE, WRITES_REFUSED
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
    Conflict,
    NotFound,
    PlatformError,
    RetryPolicy,
    SkippedAction,
    Unauthorized,
    error_from_requests,
    refuse_redirects,
    error_from_response,
)
from connector.platforms.comment_marker import carried_marker, with_marker
from connector.platforms.field_values import already_equal, plain_value, rich_text
from connector.platforms.jira_issue import parse_jira_issue
from connector.platforms.mapping import PlatformMapping
from connector.scrub import error_text
from connector.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

PLATFORM: Platform = "jira"
# `transitions.fields`: each transition with its screen's fields (required, schema, allowed
# values), so a transition's required fields are known without a second read; `editmeta`:
# what the edit screen allows in the current status.
FETCH_EXPAND = "changelog,names,transitions.fields,editmeta"
CHANGELOG_PAGE_SIZE = 100
COMMENT_PAGE_SIZE = 100  # Jira Cloud never returns more comments a page (pycontribs/jira#1938)
# POST /rest/api/3/changelog/bulkfetch: up to 1,000 issues a request, up to 10,000 entries a page.
BULK_CHANGELOG_ISSUES = 1000
BULK_CHANGELOG_PAGE_SIZE = 10000
SEARCH_PAGE_SIZE = 100
# Transitions kept from fetches that were not (yet) followed by an apply (simulate, dry runs).
TRANSITION_CACHE_SIZE = 1024
# A numeric issue id or a key such as SUP-42; anything else must not reach a URL path.
_ISSUE_REF = re.compile(r"^(?:\d+|[A-Za-z][A-Za-z0-9_]*-\d+)$")


# --- field catalogue and value formatting ---------------------------------------------


class FieldResolutionError(ValueError):
    """A mapping names a field the site does not have, or a name several fields share."""


@dataclass(frozen=True)
class JiraField:
    """One entry of `GET /rest/api/2/field`: id, display name and the schema that shapes writes."""

    id: str
    name: str
    schema: Mapping[str, Any]

    @property
    def type(self) -> str | None:
        return self.schema.get("type")


class FieldCatalogue:
    """The site's fields by id and by display name (names are not unique in Jira)."""

    def __init__(self, raw_fields: Sequence[Mapping[str, Any]]) -> None:
        self._by_id: dict[str, JiraField] = {}
        self._by_name: dict[str, list[JiraField]] = {}
        self._clauses: dict[str, str] = {}
        for raw in raw_fields:
            field_id = raw.get("id")
            if not isinstance(field_id, str):
                continue
            entry = JiraField(id=field_id, name=str(raw.get("name") or field_id), schema=raw.get("schema") or {})
            self._by_id[field_id] = entry
            self._by_name.setdefault(entry.name.casefold(), []).append(entry)
            for clause in raw.get("clauseNames") or ():
                self._clauses[str(clause)] = field_id

    def resolve(self, ref: str) -> JiraField:
        """The field a mapping means by `ref`: an id (`customfield_10050`) or a display name."""
        if ref in self._by_id:
            return self._by_id[ref]
        matches = self._by_name.get(ref.casefold(), [])
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise FieldResolutionError(f"Jira has no field with id or name {ref!r}")
        ids = ", ".join(sorted(m.id for m in matches))
        raise FieldResolutionError(f"several Jira fields are named {ref!r} ({ids}); map it by id")

    def names(self) -> dict[str, str]:
        return {field_id: entry.name for field_id, entry in self._by_id.items()}

    def clause_ids(self) -> dict[str, str]:
        """JQL clause name -> field id, the table the library keeps for its search helpers."""
        return dict(self._clauses)


def jira_datetime(value: Any) -> str:
    """Jira's date-time format, `2026-04-25T10:00:00.000+0000`; a value without offset is refused."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise ValueError("a date-time field needs a datetime or an ISO 8601 string")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a date-time without a UTC offset would be read in the server's zone")
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}.{moment.microsecond // 1000:03d}{moment.strftime('%z')}"


def jira_date(value: Any) -> str:
    """Jira's date format, `yyyy-MM-dd`; a datetime gives its date in its own time zone."""
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


def format_field_value(schema: Mapping[str, Any], value: Any, *, cloud: bool) -> Any:
    """`value` shaped for the `fields` part of an edit, by the field's schema type.

    None clears the field. Values that already have Jira's shape (a dict) pass through, so
    a rule can still write a cascading select or anything else not covered here.
    """
    if value is None or isinstance(value, Mapping):
        return value
    kind = schema.get("type")
    if kind == "array":
        items = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
        item_schema = {"type": schema.get("items")}
        return [format_field_value(item_schema, item, cloud=cloud) for item in items]
    if kind == "string":
        return str(value)
    if kind == "number":
        if isinstance(value, bool):
            raise ValueError("a number field cannot hold true/false")
        return value if isinstance(value, (int, float)) else float(value)
    if kind == "date":
        return jira_date(value)
    if kind == "datetime":
        return jira_datetime(value)
    if kind in ("option", "option-with-child"):
        return {"value": str(value)}
    if kind == "user":
        return {"accountId": str(value)} if cloud else {"name": str(value)}
    if kind in ("group", "priority", "version", "component", "resolution"):
        return {"name": str(value)}
    return value


# --- the edit request -----------------------------------------------------------------


@dataclass
class _Edit:
    """Collects one plan's field values and label operations into one `PUT /issue/{key}`.

    Comments are not part of it: they are posted first, through the comment endpoint."""

    fields: dict[str, Any]
    labels: list[dict[str, str]]
    # field id (or "labels") -> the plan's actions that write it, to report a refusal by rule.
    owners: dict[str, list[Action]] = dataclass_field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.fields or self.labels)

    def set(self, field_id: str, value: Any, action: Action) -> None:
        self.fields[field_id] = value
        owners = self.owners.setdefault(field_id, [])
        if not any(owner is action for owner in owners):
            owners.append(action)

    def alive(self, action: Action) -> bool:
        """True while some write of `action` is still in the edit."""
        written = set(self.fields) | ({"labels"} if self.labels else set())
        owned = {key for key, owners in self.owners.items() if any(owner is action for owner in owners)}
        return bool(owned & written) or not owned

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.fields:
            body["fields"] = self.fields
        if self.labels:
            body["update"] = {"labels": self.labels}
        return body


# --- the adapter ----------------------------------------------------------------------


class JiraAdapter:
    """`PlatformAdapter` for Jira Cloud and Data Center."""

    platform: Platform = PLATFORM

    def __init__(
        self,
        base_url: str,
        user: str | None,
        token: str,
        mapping: PlatformMapping,
        *,
        deployment: str | None = None,
        policy: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (5.0, 30.0),
    ) -> None:
        """Build the client; no request is sent until a method needs one.

        `user` set means Jira Cloud style basic auth (e-mail + API token); `user` None means a
        Data Center personal access token sent as `Authorization: Bearer`. `deployment`
        ("Cloud", "Server" or "DataCenter") saves the one `serverInfo` request that
        otherwise tells them apart when it first matters (assignee shape, search, changelog).
        """
        if not base_url or not token:
            raise ValueError("JiraAdapter needs a base URL and a token")
        self._base_url = base_url.rstrip("/")
        self._mapping = mapping
        self._policy = policy or RetryPolicy()
        auth: dict[str, Any] = {"basic_auth": (user, token)} if user else {"token_auth": token}
        self._client = JIRA(
            server=self._base_url,
            get_server_info=False,
            max_retries=0,
            timeout=timeout,
            logging=False,
            **auth,
        )
        self._client._session.hooks["response"].append(_count_response)
        refuse_redirects(self._client._session)
        self._lock = threading.RLock()
        self._deployment: str | None = None
        if deployment is not None:
            self._set_deployment(deployment)
        self._catalogue_cache: FieldCatalogue | None = None
        self._transitions: OrderedDict[str, _Workflow] = OrderedDict()
        # (ticket id, transition id) -> (issue fingerprint when Jira refused it, fields the
        # connector's own edit wrote then, why).
        self._refusals: OrderedDict[tuple[str, str], tuple[str, frozenset[str], str]] = OrderedDict()
        # editmeta.fields of fetched tickets, kept like the transitions until their apply.
        self._editmeta: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # (ticket id, marker) of comments Jira refused in this process: not resent (bounded).
        self._refused_comments: OrderedDict[tuple[str, str], None] = OrderedDict()
        # The connector account's own ids from GET /myself, asked at most once per process.
        self._own_ids: frozenset[str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, mapping: PlatformMapping, **kwargs: Any) -> "JiraAdapter":
        if not settings.jira_url or not settings.jira_token:
            raise ValueError("JIRA_URL and JIRA_TOKEN must be set to talk to Jira")
        return cls(settings.jira_url, settings.jira_user, settings.jira_token, mapping, **kwargs)

    # --- reading ---------------------------------------------------------------------

    def fetch(self, ticket_id: str) -> Ticket:
        """The issue with its status history, comments and available transitions (one request)."""
        ref = _issue_ref(ticket_id)
        raw = self._call(
            "issue.get", "GET", lambda: self._client.issue(ref, expand=FETCH_EXPAND).raw, idempotent=True
        )
        raw = self._complete_comments(self._complete_changelog(raw))
        names = self._catalogue_cache.names() if self._catalogue_cache else None
        ticket = parse_jira_issue(raw, self._mapping, base_url=self._base_url, field_names=names,
                                  connector_ids=self._connector_ids(raw))
        transitions = raw.get("transitions")
        if isinstance(transitions, list):
            self._remember_transitions(ticket.id, _Workflow.from_issue(raw, transitions))
        self._remember_editmeta(ticket.id, raw.get("editmeta"))
        return ticket

    def search(
        self, query: str, fields: Sequence[str] | None = None, page_size: int = SEARCH_PAGE_SIZE,
        expand: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Raw issues matching the JQL `query`, one page per request, fetched as consumed.

        `expand="changelog"` brings each issue's history along, so a sweep can evaluate
        the rules on the search result without reading every issue again.
        """
        wanted = list(fields) if fields else ["*all"]
        # The library turns JQL names into field ids from its own cache; fill it from the
        # catalogue so it does not send a second GET /field outside the retry policy.
        self._catalogue()
        if self._is_cloud():
            token: str | None = None
            while True:
                page = self._call("search.jql", "GET", lambda: self._client.enhanced_search_issues(
                    query, nextPageToken=token, maxResults=page_size, fields=list(wanted), expand=expand,
                    json_result=True), idempotent=True)
                yield from page.get("issues") or ()
                token = page.get("nextPageToken")
                if not token or page.get("isLast"):
                    return
        start = 0
        while True:
            page = self._call("search", "GET", lambda: self._client.search_issues(
                query, startAt=start, maxResults=page_size, fields=list(wanted), expand=expand,
                json_result=True), idempotent=True)
            issues = page.get("issues") or []
            yield from issues
            start += len(issues)
            total = page.get("total")
            if not issues or (isinstance(total, int) and start >= total):
                return

    def rule_fields(self, base: Sequence[str]) -> list[str]:
        """`base` plus the field ids of everything the mapping reads (category, group, logical
        fields): what a search must return for the rules to be evaluated on its results."""
        mapping = self._mapping
        catalogue = self._catalogue()
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

    def parse(self, raw: dict[str, Any]) -> Ticket:
        """A raw issue (from search or fetch) as the rules see it."""
        return parse_jira_issue(raw, self._mapping, base_url=self._base_url, field_names=self._catalogue().names(),
                                connector_ids=self._own_ids or frozenset())

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
        if changelog_short and self._is_cloud():
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
        url = self._client._get_url("changelog/bulkfetch", base="{server}/rest/api/3/{path}")
        for start in range(0, len(issue_ids), BULK_CHANGELOG_ISSUES):
            chunk = list(issue_ids[start:start + BULK_CHANGELOG_ISSUES])
            token: str | None = None
            while True:
                body: dict[str, Any] = {"issueIdsOrKeys": chunk, "maxResults": BULK_CHANGELOG_PAGE_SIZE}
                if token:
                    body["nextPageToken"] = token
                page = self._call(
                    "changelog.bulkfetch", "POST",
                    lambda: self._client._session.post(url, data=json.dumps(body)).json(),
                    idempotent=True,  # a read, although it is a POST
                )
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
        key = _issue_ref(str(raw.get("key") or raw.get("id")))
        start = 0
        # Oldest first from the start: the missing ones come first, and paging stops as soon
        # as every comment `total` counts has been seen.
        while len(merged) < total:
            listed = self._call(
                "issue.comments", "GET",
                lambda: self._client._get_json(
                    f"issue/{key}/comment",
                    params={"startAt": start, "maxResults": COMMENT_PAGE_SIZE, "orderBy": "created"},
                ),
                idempotent=True,
            )
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
        if not self._is_cloud():
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
            page = self._call(
                "issue.changelog",
                "GET",
                lambda: self._client._get_json(
                    f"issue/{_issue_ref(key)}/changelog",
                    params={"startAt": start, "maxResults": CHANGELOG_PAGE_SIZE},
                ),
                idempotent=True,
            )
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

    # --- writing ---------------------------------------------------------------------

    def apply(self, ticket: Ticket, plan: Plan) -> ApplyResult:
        """Write what `plan` asks and `ticket` does not already show.

        Order: each comment is posted first (it carries its own marker, so it is recorded
        the moment it lands), then one edit with the fields and labels the edit screen
        allows (marker labels included, for searchability), then the transition.
        """
        if plan.ticket_id not in (ticket.id, ticket.key):
            raise ValueError(f"plan for {plan.ticket_key} applied to ticket {ticket.key}")
        result = ApplyResult()
        transitions = self._forget_transitions(ticket.id)
        editmeta = self._forget_editmeta(ticket.id)
        edit = _Edit(fields={}, labels=[])
        labels = _LabelChanges(ticket.labels)
        transition: Transition | None = None
        carried: list[Action] = []
        comments: list[AddComment] = []

        for action in plan.actions:
            if isinstance(action, AddLabel):
                labels.add(action, action.label, result)
            elif isinstance(action, RemoveLabel):
                labels.remove(action, action.label, result)
            elif isinstance(action, AddComment):
                self._plan_comment(ticket, action, comments, result)
            elif isinstance(action, SetFields):
                if self._plan_fields(ticket, action, edit, result):
                    carried.append(action)
            elif isinstance(action, SetPriority):
                if ticket.priority == action.priority:
                    result.skipped.append(SkippedAction(action, f"priority is already {action.priority}"))
                else:
                    edit.set("priority", {"name": self._mapping.write_priorities[action.priority]}, action)
                    carried.append(action)
            elif isinstance(action, Assign):
                if self._plan_assign(ticket, action, edit, result):
                    carried.append(action)
            elif isinstance(action, Transition):
                if transition is not None:
                    result.skipped.append(SkippedAction(transition, "superseded by a later transition in the plan"))
                transition = action

        for comment in comments:
            recorded = self._post_comment(ticket, comment, result)
            if recorded and comment.marker is not None:
                labels.pin(comment.marker)

        edit.labels = labels.operations()
        for action in labels.carried(result):
            edit.owners.setdefault("labels", []).append(action)
            carried.append(action)
        self._send_edit(ticket, edit, editmeta, carried, result)
        order = {id(action): index for index, action in enumerate(plan.actions)}
        result.applied.sort(key=lambda action: order.get(id(action), len(order)))

        if transition is not None:
            self._apply_transition(ticket, transition, transitions, result)

        if result.writes:
            log.info(
                "jira.applied",
                extra={
                    "platform": PLATFORM,
                    "ticket": ticket.key,
                    "writes": len(result.writes),
                    "actions": len(result.applied),
                    "skipped": len(result.skipped),
                    "refused": len(result.refused),
                },
            )
        return result

    def _plan_comment(
        self, ticket: Ticket, action: AddComment, comments: list[AddComment], result: ApplyResult
    ) -> None:
        if action.marker is not None:
            # Labels and the markers the connector's own comments carry both count: after a
            # crash between the comment and the edit, only the comment shows the marker.
            if action.marker in ticket.markers:
                result.skipped.append(SkippedAction(action, f"already posted (marker {action.marker!r} present)"))
                return
            if any(planned.marker == action.marker for planned in comments):
                result.skipped.append(
                    SkippedAction(action, f"a comment with marker {action.marker!r} is already in this plan")
                )
                return
            if (ticket.id, action.marker) in self._refused_comments:
                result.skipped.append(
                    SkippedAction(action, f"Jira refused this comment before (marker {action.marker!r}); not resent")
                )
                return
        comments.append(action)

    def _post_comment(self, ticket: Ticket, action: AddComment, result: ApplyResult) -> bool:
        """Post one comment through the comment endpoint; True when it is now on the ticket
        as asked (or was refused for good, which its marker label may then record).

        An internal note carries `sd.public.comment = {"internal": true}` (what the `jira`
        library's `add_comment(is_internal=True)` sends). Jira Cloud answers with `jsdPublic`:
        a note that landed public anyway (a project without Service Management, a site that
        ignores the property) is deleted again at once and reported – an internal note is
        never left where a customer can read it.
        """
        key = _issue_ref(ticket.key)
        body = with_marker(action.body, action.marker) if action.marker else action.body
        internal = not action.public
        path = f"issue/{key}/comment"
        try:
            # Not idempotent: a resent POST may add the comment twice. If the answer is lost,
            # the next reconcile sees the marker in the comment and does not post again.
            answer = self._call(
                "issue.comment", "POST",
                lambda: self._client.add_comment(key, body, is_internal=internal).raw,
                idempotent=False,
            )
        except (BadRequest, Unauthorized) as exc:
            if isinstance(exc, Unauthorized) and exc.status != 403:
                raise  # 401: credentials, not this comment
            self._refuse_comment(ticket, action, f"Jira refused the comment ({exc.status}): {exc.message}", result)
            return action.marker is not None
        result.writes.append(f"POST /rest/api/2/{path}")
        if internal and answer.get("jsdPublic") is True:
            self._withdraw_public_note(ticket, action, str(answer.get("id")), result)
            return action.marker is not None
        result.applied.append(action)
        return True

    def _withdraw_public_note(self, ticket: Ticket, action: AddComment, comment_id: str, result: ApplyResult) -> None:
        path = f"issue/{_issue_ref(ticket.key)}/comment/{comment_id}"
        reason = (
            f"internal note could not be written as internal on {ticket.key} (Jira made it public: is the "
            "project a Jira Service Management project?)"
        )
        try:
            self._call("issue.comment.delete", "DELETE", lambda: self._send("DELETE", path), idempotent=True)
        except PlatformError as exc:
            reason += f"; deleting it failed ({exc}): delete comment {comment_id} by hand"
            log.error("jira.internal_note_left_public",
                      extra={"platform": PLATFORM, "ticket": ticket.key, "comment": comment_id, "rule": action.rule})
        else:
            result.writes.append(f"DELETE /rest/api/2/{path}")
            reason += "; it was deleted again"
        self._refuse_comment(ticket, action, reason, result)

    def _refuse_comment(self, ticket: Ticket, action: AddComment, reason: str, result: ApplyResult) -> None:
        with self._lock:
            if action.marker is not None:
                self._refused_comments[(ticket.id, action.marker)] = None
                while len(self._refused_comments) > TRANSITION_CACHE_SIZE:
                    self._refused_comments.popitem(last=False)
        self._refuse(result, action, "comment", reason, ticket=ticket.key, marker=action.marker)

    def _refuse(self, result: ApplyResult, action: Action | None, what: str, reason: str, **fields: Any) -> None:
        """A write Jira refuses and would refuse again: reported, counted, not resent."""
        log.warning("jira.write_refused", extra={"platform": PLATFORM, "what": what, "reason": reason,
                                                 "rule": action.rule if action else None, **fields})
        WRITES_REFUSED.labels(platform=PLATFORM, what=what).inc()
        result.refused.append(reason)
        result.warnings.append(reason)
        if action is not None:
            result.skipped.append(SkippedAction(action, reason))

    def _send_edit(
        self,
        ticket: Ticket,
        edit: _Edit,
        editmeta: dict[str, Any] | None,
        carried: list[Action],
        result: ApplyResult,
    ) -> None:
        """The one edit, with only what the edit screen allows; a stale screen is retried once."""
        if edit.empty:
            return
        if editmeta is not None:
            self._drop_uneditable(ticket, edit, set(editmeta), carried, result, _screen_reason(ticket, editmeta))
            if edit.empty:
                return
        # Markers that only a connector comment shows (the process stopped between the
        # comment and this edit) get their label now, since an edit goes out anyway.
        if editmeta is None or "labels" in editmeta:
            pending = {op.get("add") for op in edit.labels}
            for marker in sorted(ticket.comment_markers - ticket.labels - pending):
                edit.labels.append({"add": marker})
        path = f"issue/{_issue_ref(ticket.key)}"
        for attempt in (1, 2):
            body = edit.body()
            try:
                # Fields and labels only: setting them twice leaves the same issue.
                self._call("issue.edit", "PUT", lambda: self._send("PUT", path, body), idempotent=True)
            except BadRequest as exc:
                # Bound to plain names: the reasons below are built after `exc` is unbound.
                message = exc.message
                errors = getattr(exc, "field_errors", {}) or {}
                named = set(errors) & (set(edit.fields) | {"labels"})
                if attempt == 1 and named:
                    # The screen changed since the read (or the ticket came without editmeta):
                    # drop what Jira named, report it, send the rest once more.
                    self._drop_uneditable(
                        ticket, edit, (set(edit.fields) | {"labels"}) - named, carried, result,
                        lambda field_id: f"Jira refused it: {errors.get(field_id, message)}",
                    )
                    if edit.empty:
                        return
                    continue
                # The edit as a whole is refused (e.g. the status allows no edits): report
                # every part of it; the next read's editmeta keeps them from being resent.
                self._drop_uneditable(ticket, edit, set(), carried, result,
                                      lambda field_id: f"Jira refused the edit: {message}")
                return
            result.writes.append(f"PUT /rest/api/2/{path}")
            result.applied.extend(action for action in carried if edit.alive(action))
            return

    def _drop_uneditable(
        self,
        ticket: Ticket,
        edit: _Edit,
        editable: set[str],
        carried: list[Action],
        result: ApplyResult,
        why: Callable[[str], str],
    ) -> None:
        """Remove from `edit` every field (and the labels) not in `editable`, reporting each
        with the rules that asked for it."""
        dropped = [field_id for field_id in edit.fields if field_id not in editable]
        if edit.labels and "labels" not in editable:
            dropped.append("labels")
        names = self._catalogue_cache.names() if self._catalogue_cache else {}
        for field_id in dropped:
            if field_id == "labels":
                edit.labels = []
            else:
                del edit.fields[field_id]
            owners = edit.owners.get(field_id, [])
            if field_id == "labels" and not owners:
                # Only marker labels of comments just posted: each comment carries its own
                # marker, so the label (kept for searching) is no loss worth a report.
                continue
            what = "labels" if field_id == "labels" else "field"
            subject = "labels" if what == "labels" else f"field {names.get(field_id, field_id)!r} ({field_id})"
            reason = f"{ticket.key}: {subject} not written – {why(field_id)}"
            self._refuse(result, owners[0] if owners else None, what, reason, ticket=ticket.key, field=field_id)
            for extra in owners[1:]:
                result.skipped.append(SkippedAction(extra, reason))
        carried[:] = [action for action in carried if edit.alive(action)]

    def _plan_fields(self, ticket: Ticket, action: SetFields, edit: _Edit, result: ApplyResult) -> bool:
        written = False
        for name, value in action.fields.items():
            ref = self._mapping.fields.get(name, name)
            # Only logical fields are parsed into the ticket; a raw id's value is unknown, so write it.
            if name in self._mapping.fields and already_equal(ticket.fields.get(name), value):
                result.skipped.append(SkippedAction(action, f"field {name!r} already holds that value"))
                continue
            formatted = self._format(ref, value, action, result)
            if formatted is _UNWRITABLE:
                continue
            field_id, field_value = formatted
            edit.set(field_id, field_value, action)
            written = True
        return written

    def _plan_assign(self, ticket: Ticket, action: Assign, edit: _Edit, result: ApplyResult) -> bool:
        if action.group is None and action.assignee is None:
            result.skipped.append(SkippedAction(action, "names neither a group nor an assignee"))
            return False
        written = False
        if action.group is not None:
            if ticket.group == action.group:
                result.skipped.append(SkippedAction(action, f"group is already {action.group!r}"))
            else:
                value = self._mapping.group_value(action.group)
                formatted = self._format(self._mapping.group_field, value, action, result)
                if formatted is not _UNWRITABLE:
                    field_id, field_value = formatted
                    edit.set(field_id, field_value, action)
                    written = True
        if action.assignee is not None:
            if ticket.assignee == action.assignee:
                result.skipped.append(SkippedAction(action, "assignee is already set to that user"))
            else:
                user_key = "accountId" if self._is_cloud() else "name"
                edit.set("assignee", {user_key: action.assignee}, action)
                written = True
        return written

    def _format(self, ref: str, value: Any, action: Action, result: ApplyResult) -> Any:
        """(field id, value in Jira's shape), or _UNWRITABLE after recording why."""
        try:
            field = self._catalogue().resolve(ref)
        except FieldResolutionError as exc:
            self._warn(result, action, "jira.field_unresolved", str(exc), field=ref)
            return _UNWRITABLE
        # Only user values differ between Cloud and Data Center; ask which it is only then.
        holds_users = field.type == "user" or field.schema.get("items") == "user"
        cloud = self._is_cloud() if holds_users else True
        try:
            return field.id, format_field_value(field.schema, value, cloud=cloud)
        except (TypeError, ValueError) as exc:
            reason = f"value for field {field.name!r} ({field.type}) cannot be written: {exc}"
            self._warn(result, action, "jira.field_value_invalid", reason, field=field.id)
            return _UNWRITABLE

    def _warn(self, result: ApplyResult, action: Action, event: str, reason: str, **fields: Any) -> None:
        log.warning(event, extra={"platform": PLATFORM, "rule": action.rule, **fields})
        result.skipped.append(SkippedAction(action, reason))
        result.warnings.append(reason)

    def _apply_transition(
        self,
        ticket: Ticket,
        action: Transition,
        workflow: "_Workflow | None",
        result: ApplyResult,
    ) -> None:
        target = self._mapping.write_statuses[action.to]
        if ticket.is_in(action.to) or (ticket.raw_status or "").casefold() == target.casefold():
            result.skipped.append(SkippedAction(action, f"already in status {target!r}"))
            return
        key = _issue_ref(ticket.key)
        if workflow is None:
            # A ticket that did not come from this adapter's fetch: ask what the workflow offers.
            listed = self._call(
                "issue.transitions", "GET",
                lambda: self._client.transitions(key, expand="transitions.fields"), idempotent=True,
            )
            workflow = _Workflow(listed, filled=None)
        transitions = workflow.transitions
        chosen = _pick_transition(transitions, target)
        if chosen is None:
            available = sorted({str((t.get("to") or {}).get("name")) for t in transitions})
            reason = f"the workflow offers no transition from {ticket.raw_status!r} to {target!r}"
            log.warning(
                "jira.transition_unavailable",
                extra={
                    "platform": PLATFORM,
                    "ticket": ticket.key,
                    "rule": action.rule,
                    "from_status": ticket.raw_status,
                    "to_status": target,
                    "available": available,
                },
            )
            TRANSITIONS_UNAVAILABLE.labels(platform=PLATFORM, to_status=action.to.value).inc()
            result.skipped.append(SkippedAction(action, reason))
            result.warnings.append(reason)
            return
        transition_id = str(chosen["id"])
        refusal_key = (ticket.id, transition_id)
        earlier = self._refused_transition(refusal_key, workflow)
        if earlier is not None:
            # Jira refused this very request for this very issue state: sending it again
            # would fail the same way. It is tried again once the issue changes.
            self._refuse_transition(result, action, earlier, logged=False)
            return
        screen_values = self._transition_screen_values(ticket, action, target, chosen, workflow, result)
        if screen_values is None:
            return
        path = f"issue/{key}/transitions"
        body: dict[str, Any] = {"transition": {"id": transition_id}}
        if screen_values:
            body["fields"] = screen_values
        try:
            # Not idempotent: a resent transition may run its post-functions twice.
            self._call("issue.transition", "POST", lambda: self._send("POST", path, body), idempotent=False)
        except (BadRequest, Conflict) as exc:
            # A validator, a permission or a screen field refused it: the edit above stands, and
            # raising would only make the queue repeat a request that fails the same way.
            reason = f"Jira refused the transition to {target!r}: {exc.message}"
            log.warning(
                "jira.transition_rejected",
                extra={"platform": PLATFORM, "ticket": ticket.key, "rule": action.rule,
                       "to_status": target, "status": exc.status},
            )
            if isinstance(exc, BadRequest):
                self._remember_refusal(refusal_key, workflow, self._written_field_ids(result), reason)
                self._refuse_transition(result, action, reason, logged=True)
            else:
                result.skipped.append(SkippedAction(action, reason))
                result.warnings.append(reason)
            return
        result.writes.append(f"POST /rest/api/2/{path}")
        result.applied.append(action)

    def _transition_screen_values(
        self,
        ticket: Ticket,
        action: Transition,
        target: str,
        chosen: Mapping[str, Any],
        workflow: "_Workflow",
        result: ApplyResult,
    ) -> dict[str, Any] | None:
        """The `fields` a transition needs, from the mapping's `transition_fields`; None when a
        required field cannot be supplied (then it is reported and nothing is sent).

        Only fields on the transition's screen are sent: Jira refuses any other with 400 "cannot
        be set. It is not on the appropriate screen" (mozilla/jira-bugzilla-integration#1258).
        """
        screen = chosen.get("fields")
        if not isinstance(screen, Mapping):
            if chosen.get("hasScreen") is False:
                screen = {}
            else:
                # The site did not expand the screen on the issue read: ask the documented
                # endpoint, for this one transition only.
                listed = self._call(
                    "issue.transitions", "GET",
                    lambda: self._client.transitions(_issue_ref(ticket.key), id=str(chosen["id"]),
                                                     expand="transitions.fields"),
                    idempotent=True,
                )
                screen = next((t.get("fields") for t in listed if str(t.get("id")) == str(chosen["id"])), None)
                if not isinstance(screen, Mapping):
                    screen = {}
        wanted = self._mapping.transition_fields.get(action.to, {})
        values: dict[str, Any] = {}
        problems: list[str] = []
        for ref, value in wanted.items():
            field_id = _screen_field_id(screen, ref)
            if field_id is None:
                continue  # not on this transition's screen: Jira would refuse it
            meta = screen[field_id] if isinstance(screen[field_id], Mapping) else {}
            schema = meta.get("schema") if isinstance(meta.get("schema"), Mapping) else {}
            holds_users = schema.get("type") == "user" or schema.get("items") == "user"
            try:
                formatted = format_field_value(schema, value, cloud=self._is_cloud() if holds_users else True)
            except (TypeError, ValueError) as exc:
                problems.append(f"{meta.get('name') or field_id} ({exc})")
                continue
            allowed = meta.get("allowedValues")
            if isinstance(allowed, list) and allowed and not _is_allowed(formatted, allowed):
                names = ", ".join(str(a.get("name") or a.get("value") or a.get("id")) for a in allowed
                                  if isinstance(a, Mapping))
                problems.append(f"{meta.get('name') or field_id} (value {value!r} is not one of: {names})")
                continue
            values[field_id] = formatted
        missing = [
            str((meta if isinstance(meta, Mapping) else {}).get("name") or field_id)
            for field_id, meta in screen.items()
            if isinstance(meta, Mapping) and meta.get("required") and field_id not in values
            and not meta.get("hasDefaultValue") and not self._holds_value(ticket, workflow, field_id)
        ]
        if not missing and not problems:
            return values
        parts = []
        if missing:
            parts.append(f"requires {', '.join(repr(m) for m in missing)}, which the mapping "
                         f"(transition_fields.{action.to.value}) does not supply")
        if problems:
            parts.append(f"cannot take {'; '.join(problems)}")
        reason = f"the transition {chosen.get('name')!r} to {target!r} " + " and ".join(parts)
        log.warning(
            "jira.transition_fields_missing",
            extra={"platform": PLATFORM, "ticket": ticket.key, "rule": action.rule, "to_status": target,
                   "transition": str(chosen.get("id")), "fields": missing, "invalid": len(problems)},
        )
        self._refuse_transition(result, action, reason, logged=True)
        return None

    def _holds_value(self, ticket: Ticket, workflow: "_Workflow", field_id: str) -> bool:
        """Whether the issue already has a value Jira keeps for a required screen field."""
        if workflow.filled is not None:
            return field_id in workflow.filled
        for logical, ref in self._mapping.fields.items():
            if logical in ticket.fields and (ref == field_id or self._resolves_to(ref, field_id)):
                return True
        return False

    def _resolves_to(self, ref: str, field_id: str) -> bool:
        try:
            return self._catalogue().resolve(ref).id == field_id
        except FieldResolutionError:
            return False

    def _refuse_transition(self, result: ApplyResult, action: Transition, reason: str, *, logged: bool) -> None:
        WRITES_REFUSED.labels(platform=PLATFORM, what="transition").inc()
        if not logged:
            log.info("jira.transition_refused_again", extra={"platform": PLATFORM, "rule": action.rule,
                                                            "to_status": action.to.value})
        result.skipped.append(SkippedAction(action, reason))
        result.warnings.append(reason)
        result.refused.append(reason)

    def _refused_transition(self, key: tuple[str, str], workflow: "_Workflow") -> str | None:
        """Why Jira refused this transition of this issue before, if the issue is still as it was.

        "As it was" ignores what the connector's own edit of that apply changed (the comment,
        labels and the fields it wrote, and so `updated`): those do not fix a refusal, and
        comparing `updated` would resend the failing request once after every own write.
        """
        with self._lock:
            entry = self._refusals.get(key)
        if entry is None or workflow.values is None:
            return None
        fingerprint, written, reason = entry
        return reason if workflow.fingerprint(written) == fingerprint else None

    def _remember_refusal(self, key: tuple[str, str], workflow: "_Workflow", written: frozenset[str],
                          reason: str) -> None:
        if workflow.values is None:
            return
        with self._lock:
            self._refusals[key] = (workflow.fingerprint(written), written, reason)
            self._refusals.move_to_end(key)
            while len(self._refusals) > TRANSITION_CACHE_SIZE:
                self._refusals.popitem(last=False)

    def _written_field_ids(self, result: ApplyResult) -> frozenset[str]:
        """Field ids the edit of this apply wrote (from the actions it carried)."""
        written: set[str] = set()
        for action in result.applied:
            refs: list[str] = []
            if isinstance(action, SetFields):
                refs = [self._mapping.fields.get(name, name) for name in action.fields]
            elif isinstance(action, Assign):
                refs = [self._mapping.group_field]
                written.add("assignee")
            elif isinstance(action, SetPriority):
                written.add("priority")
            for ref in refs:
                try:
                    written.add(self._catalogue().resolve(ref).id)
                except FieldResolutionError:
                    written.add(ref)
        return frozenset(written)

    # --- read-only inspection of the site (connector doctor) -----------------------------

    def read_json(self, operation: str, path: str, params: Mapping[str, Any] | None = None, *,
                  api: str = "rest/api/2") -> Any:
        """One GET of `{server}/{api}/{path}` under the retry policy, as parsed JSON.

        For `connector doctor`, which reads the site's configuration (permissions, statuses,
        priorities, webhooks …) through the same auth, retries and error taxonomy as the
        adapter, and must never write: there is deliberately no method for other verbs."""
        url = self._client._get_url(path, base="{server}/" + api + "/{path}")
        return self._call(operation, "GET", lambda: self._client._session.get(url, params=dict(params or {})).json(),
                          idempotent=True)

    def field_catalogue(self) -> FieldCatalogue:
        """The site's fields (`GET /field`, read once per adapter)."""
        return self._catalogue()

    def is_cloud(self) -> bool:
        return self._is_cloud()

    # --- plumbing ------------------------------------------------------------------------

    def _call(self, operation: str, method: str, fn: Callable[[], T], *, idempotent: bool) -> T:
        """One HTTP request under the retry policy, with library errors translated."""

        def attempt() -> T:
            try:
                return fn()
            except JIRAError as exc:
                # `from None`: a JIRAError's text carries request headers and response bodies,
                # which must not reach logs through a chained traceback.
                raise _from_jira_error(exc) from None
            except requests.RequestException as exc:
                if exc.response is None:
                    API_CALLS.labels(platform=PLATFORM, method=method, status="no_response").inc()
                raise error_from_requests(exc, platform=PLATFORM) from None

        return self._policy.call(operation, attempt, idempotent=idempotent, platform=PLATFORM)

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        url = self._client._get_url(path)
        # ResilientSession raises JIRAError for any non-2xx answer.
        if body is None:
            self._client._session.request(method, url)
        else:
            self._client._session.request(method, url, data=json.dumps(body))

    def _connector_ids(self, raw: Mapping[str, Any]) -> frozenset[str]:
        """The connector account's ids, asked from `GET /myself` once per process, and only
        when the mapping cannot tell the connector's comments apart by itself.

        That is the case when no `connector_account` is configured (a Data Center personal
        access token has no user name in the settings), or when a comment carrying a marker
        trailer has an author the configured account does not match (Jira Cloud may hide
        e-mail addresses). Without it the connector's own internal notes would count as
        agent responses and the markers they carry would be ignored.
        """
        with self._lock:
            if self._own_ids is not None:
                return self._own_ids
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
        me = self._call("myself", "GET", self._client.myself, idempotent=True)
        ids = frozenset(str(me[k]) for k in ("accountId", "name", "key") if isinstance(me, Mapping) and me.get(k))
        with self._lock:
            self._own_ids = ids
        return ids

    def _catalogue(self) -> FieldCatalogue:
        with self._lock:
            if self._catalogue_cache is None:
                raw = self._call("field.list", "GET", self._client.fields, idempotent=True)
                self._catalogue_cache = FieldCatalogue(raw)
                # Same table the library would build from a GET /field of its own.
                self._client._fields_cache_value = self._catalogue_cache.clause_ids()
            return self._catalogue_cache

    def _is_cloud(self) -> bool:
        with self._lock:
            if self._deployment is None:
                info = self._call("server.info", "GET", self._client.server_info, idempotent=True)
                self._set_deployment(str(info.get("deploymentType") or "Server"))
            return self._deployment == "Cloud"

    def _set_deployment(self, deployment: str) -> None:
        self._deployment = deployment
        # The library's Cloud-only helpers (enhanced_search_issues) check this attribute.
        self._client.deploymentType = deployment

    def _remember_transitions(self, ticket_id: str, workflow: "_Workflow") -> None:
        with self._lock:
            self._transitions[ticket_id] = workflow
            self._transitions.move_to_end(ticket_id)
            while len(self._transitions) > TRANSITION_CACHE_SIZE:
                self._transitions.popitem(last=False)

    def _remember_editmeta(self, ticket_id: str, editmeta: Any) -> None:
        fields = editmeta.get("fields") if isinstance(editmeta, Mapping) else None
        if not isinstance(fields, Mapping):
            return
        with self._lock:
            self._editmeta[ticket_id] = dict(fields)
            self._editmeta.move_to_end(ticket_id)
            while len(self._editmeta) > TRANSITION_CACHE_SIZE:
                self._editmeta.popitem(last=False)

    def _forget_editmeta(self, ticket_id: str) -> dict[str, Any] | None:
        """What the edit screen allowed at the fetch; None for a ticket not fetched here.

        Without it the edit is sent whole and a 400 naming fields is answered by dropping
        them and sending the rest once more (no extra read just to learn the screen)."""
        with self._lock:
            return self._editmeta.pop(ticket_id, None)

    def _forget_transitions(self, ticket_id: str) -> "_Workflow | None":
        # Used at most once: after this apply the workflow position may have changed.
        with self._lock:
            return self._transitions.pop(ticket_id, None)


_UNWRITABLE: Any = object()


# Fields that change without anyone fixing anything a transition could need.
_VOLATILE_FIELDS = frozenset({"updated", "comment", "labels", "lastViewed", "watches", "votes", "worklog"})


@dataclass(frozen=True)
class _Workflow:
    """What one fetch said about the issue's workflow position: the transitions it offers
    (with their screens), the ids of the fields that hold a value, and each field's value as
    JSON (both None when not known: transitions read without the issue)."""

    transitions: list[dict[str, Any]]
    filled: frozenset[str] | None
    values: Mapping[str, str] | None = None

    @classmethod
    def from_issue(cls, raw: Mapping[str, Any], transitions: list[dict[str, Any]]) -> "_Workflow":
        fields = raw.get("fields")
        if not isinstance(fields, Mapping):
            return cls(transitions, frozenset(), {})
        filled = frozenset(fid for fid, value in fields.items() if plain_value(value) is not None)
        values = {str(fid): json.dumps(value, sort_keys=True, default=str) for fid, value in fields.items()
                  if fid not in _VOLATILE_FIELDS}
        return cls(transitions, filled, values)

    def fingerprint(self, ignore: frozenset[str]) -> str:
        values = self.values or {}
        return json.dumps({fid: value for fid, value in sorted(values.items()) if fid not in ignore})


def _screen_field_id(screen: Mapping[str, Any], ref: str) -> str | None:
    """The id of the screen field `ref` names (by id, or by its display name)."""
    if ref in screen:
        return ref
    folded = ref.casefold()
    for field_id, meta in screen.items():
        if isinstance(meta, Mapping) and str(meta.get("name") or "").casefold() == folded:
            return str(field_id)
    return None


def _is_allowed(value: Any, allowed: Sequence[Any]) -> bool:
    """Whether a formatted value ({"name": …}, {"value": …}, {"id": …}) is among `allowedValues`."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, Mapping):
            return True  # plain values (text, numbers) are not offered from a list
        if not any(
            isinstance(option, Mapping)
            and any(k in item and str(item[k]) == str(option.get(k)) for k in ("id", "name", "value"))
            for option in allowed
        ):
            return False
    return True


class _LabelChanges:
    """Label adds/removes of one plan, reduced to their net effect on the ticket's labels.

    A marker label pinned by a comment just posted is added for searching (the comment
    itself carries the marker that stops it being posted again).
    """

    def __init__(self, current: frozenset[str]) -> None:
        self._original = current
        self._labels = set(current)
        self._pinned: list[str] = []
        self._order: list[str] = []
        self._actions: list[tuple[Action, str]] = []

    def add(self, action: Action, label: str, result: ApplyResult) -> None:
        if label in self._labels:
            result.skipped.append(SkippedAction(action, f"label {label!r} already present"))
            return
        self._labels.add(label)
        self._note(action, label)

    def remove(self, action: Action, label: str, result: ApplyResult) -> None:
        if label in self._pinned:
            result.skipped.append(SkippedAction(action, f"label {label!r} records a comment of this plan"))
            return
        if label not in self._labels:
            result.skipped.append(SkippedAction(action, f"label {label!r} not present"))
            return
        self._labels.discard(label)
        self._note(action, label)

    def pin(self, marker: str) -> None:
        self._pinned.append(marker)
        self._labels.add(marker)
        if marker not in self._order:
            self._order.append(marker)

    def is_pinned(self, marker: str) -> bool:
        return marker in self._pinned

    def _note(self, action: Action, label: str) -> None:
        self._actions.append((action, label))
        if label not in self._order:
            self._order.append(label)

    def operations(self) -> list[dict[str, str]]:
        ops = []
        for label in self._order:
            if label in self._labels and label not in self._original:
                ops.append({"add": label})
            elif label not in self._labels and label in self._original:
                ops.append({"remove": label})
        return ops

    def carried(self, result: ApplyResult) -> list[Action]:
        """Label actions whose effect survives; the others are recorded as skipped."""
        carried = []
        for action, label in self._actions:
            wanted_present = isinstance(action, AddLabel)
            survives = (label in self._labels) == wanted_present and (label in self._original) != wanted_present
            if survives and not any(a is action for a in carried):
                carried.append(action)
            elif not survives:
                result.skipped.append(SkippedAction(action, f"label {label!r} undone by a later action of the plan"))
        return carried


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


def _pick_transition(transitions: Sequence[Mapping[str, Any]], target: str) -> Mapping[str, Any] | None:
    """The transition into status `target` (by name, case-insensitive) the user may run now."""
    for transition in transitions:
        to_name = (transition.get("to") or {}).get("name")
        if (
            isinstance(to_name, str)
            and to_name.casefold() == target.casefold()
            and transition.get("isAvailable", True) is not False
            and transition.get("id") is not None
        ):
            return transition
    return None


def _screen_reason(ticket: Ticket, editmeta: Mapping[str, Any]) -> Callable[[str], str]:
    if not editmeta:
        status = ticket.raw_status or ticket.status.value
        text = (f"status {status!r} allows no edits (workflow property jira.issue.editable=false, "
                "or the connector's account lacks Edit Issues)")
        return lambda field_id: text
    return lambda field_id: "not on the issue's edit screen (add it to the screen, or map another field)"


def _author_ids(author: Any) -> set[str]:
    if not isinstance(author, Mapping):
        return set()
    return {str(author[k]).casefold() for k in ("accountId", "name", "key", "emailAddress") if author.get(k)}


def _issue_ref(ticket_id: str) -> str:
    text = str(ticket_id).strip()
    if not _ISSUE_REF.match(text):
        raise NotFound("not a Jira issue key or id", platform=PLATFORM)
    return text


def _from_jira_error(exc: JIRAError) -> PlatformError:
    # `exc.text` is Jira's reason, or the whole body of an answer that is not Jira's JSON (a
    # proxy's page may echo the request with its Authorization header); PlatformError
    # scrubs and cuts it. Never str(exc): the jira library prints the request headers.
    if exc.status_code is None:
        return PlatformError(exc.text or "the jira library reported an error", platform=PLATFORM)
    headers = exc.response.headers if exc.response is not None else None
    error = error_from_response(exc.status_code, headers, exc.text or "", platform=PLATFORM)
    # Jira names refused fields in `errors` ({"customfield_10059": "Field … cannot be set …"}).
    try:
        payload = exc.response.json() if exc.response is not None else None
    except ValueError:
        payload = None
    errors = payload.get("errors") if isinstance(payload, dict) else None
    # Scrubbed and cut like the message (connector.scrub): they end up in warnings and logs.
    error.field_errors = ({error_text(str(k), 100): error_text(str(v)) for k, v in list(errors.items())[:50]}  # type: ignore[attr-defined]
                          if isinstance(errors, dict) else {})
    return error


def _count_response(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """requests response hook: every answer from Jira, whoever sent the request."""
    API_CALLS.labels(
        platform=PLATFORM, method=response.request.method or "?", status=str(response.status_code)
    ).inc()
