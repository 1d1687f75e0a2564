"""A Jira issue, as the REST API returns it, turned into the platform-neutral `Ticket`.

The input is exactly the body of `GET /rest/api/2/issue/{key}?expand=changelog,names`
(Cloud or Data Center; v3 ADF rich text is tolerated), so the same function serves the
adapter's single read per reconcile, `connector simulate --ticket-json`, and tests over
recorded responses – with no network and no `jira` library objects involved.

Jira lets every site rename statuses and name custom fields freely, so everything goes
through the `PlatformMapping`: field references may be ids (`customfield_10050`) or the
display names admins see, resolved with the `names` map that `expand=names` returns or a
catalogue from `GET /rest/api/2/field`. A status the mapping does not know falls back on
Jira's own status category, because a new custom workflow status must never stop the
connector from working on a ticket.

Comments written by the connector's own account may end in a marker trailer
(`ref: <marker>`, see `comment_marker`); those markers become `Ticket.comment_markers`, so
a one-time comment records itself even when its marker label never landed. Whether a
comment is public comes from `jsdPublic` (Cloud) or the `sd.public.comment` property (Data
Center, when present); the connector's own comments that say neither are not public.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from connector.model import DONE_STATUSES, AuthorRole, Comment, PriorityChange, Status, StatusChange, Ticket
from connector.platforms.field_values import (
    complete_history,
    MalformedTicketError,
    first_text,
    history_status,
    id_text,
    last_entered,
    optional_time,
    parse_time,
    plain_value,
    require_list,
    require_mapping,
    rich_text,
    status_change,
)
from connector.platforms.comment_marker import carried_marker
from connector.platforms.customer import email_domain, jira_organizations
from connector.platforms.mapping import PlatformMapping
from connector.satisfaction import satisfaction_level

# Jira's three status categories (the fourth, "undefined", is never assigned to a status).
STATUS_CATEGORY_FALLBACK: dict[str, Status] = {
    "new": Status.NEW,
    "indeterminate": Status.IN_PROGRESS,
    "done": Status.CLOSED,
}

# Identity keys of a Jira user: Cloud has accountId; Data Center has name and key.
_USER_IDS = ("accountId", "name", "key")
# Logical fields whose user value is read as an identity (accountId / username), not a name.
IDENTITY_FIELDS = frozenset({"reviewer"})


def parse_jira_issue(
    issue: dict,
    mapping: PlatformMapping,
    *,
    base_url: str | None = None,
    field_names: dict[str, str] | None = None,
    connector_ids: frozenset[str] = frozenset(),
) -> Ticket:
    """Build a `Ticket` from a Jira issue fetched with `expand=changelog,names`.

    `connector_ids` are further identities (accountId, username) of the connector's own
    account besides `mapping.connector_account`, e.g. what `GET /myself` answered: its
    comments never count as agent responses, and only its comments carry markers.

    `base_url` is the site's browser URL (`https://acme.atlassian.net`); without it the
    host of `issue["self"]` is used. `field_names` (field id -> display name, from
    `GET /rest/api/2/field`) resolves display-name references when the issue carries no
    `names` map. Raises `MalformedTicketError` (a ValueError) when the issue lacks its
    id, key, fields, status or creation time.
    """
    if not isinstance(issue, Mapping):
        raise MalformedTicketError(f"a Jira issue must be a JSON object, found {type(issue).__name__}")
    issue_id = id_text(issue.get("id"))
    key = issue.get("key")
    if not issue_id or not isinstance(key, str) or not key:
        raise MalformedTicketError(
            "a Jira issue needs 'id' and 'key' (the body of GET /rest/api/2/issue/{key}?expand=changelog,names)"
        )
    where = f"issue {key}"
    fields = require_mapping(issue, "fields", where=where)

    created = parse_time(fields.get("created"), what=f"{where} fields.created")
    status_obj = require_mapping(fields, "status", where=f"{where} fields")
    raw_status = status_obj.get("name")
    status = _current_status(mapping, status_obj, where=where)

    history = _status_history(issue, mapping, created=created, raw_current=raw_status, current=status)
    names = issue.get("names")
    resolver = _FieldResolver(fields, {**(field_names or {}), **(names if isinstance(names, Mapping) else {})})
    reporter = fields.get("reporter")
    comments = _comments(fields, mapping, reporter, where=where, connector_ids=connector_ids)
    priority_obj = fields.get("priority") or {}
    raw_priority = priority_obj.get("name") if isinstance(priority_obj, Mapping) else None

    resolved = optional_time(fields.get("resolutiondate"), what=f"{where} fields.resolutiondate")
    if resolved is None and status in DONE_STATUSES:
        resolved = last_entered(history, DONE_STATUSES)
    logical_fields = _logical_fields(mapping, resolver)

    return Ticket(
        platform="jira",
        id=issue_id,
        key=key,
        url=_browse_url(issue, key, base_url),
        summary=str(fields.get("summary") or ""),
        description=rich_text(fields.get("description")),
        category=_category(fields, mapping, resolver),
        priority=mapping.logical_priority(raw_priority),
        raw_priority=raw_priority,
        status=status,
        raw_status=raw_status,
        status_equivalents=mapping.status_equivalents(raw_status),
        reporter=_user_id(reporter),
        organizations=_organizations(mapping, resolver),
        # Only the domain; hidden by the reporter's privacy setting on Cloud: None (customer.py).
        requester_email_domain=email_domain(reporter.get("emailAddress")) if isinstance(reporter, Mapping) else None,
        requester_locale=_locale(reporter),
        assignee=_user_id(fields.get("assignee")),
        group=_group(mapping, resolver),
        labels=frozenset(str(label) for label in fields.get("labels") or ()),
        comment_markers=frozenset(
            marker for comment in comments
            if comment.author_role == AuthorRole.CONNECTOR and (marker := carried_marker(comment.body))
        ),
        marker_times=_marker_times(comments, _label_times(issue, where=where)),
        fields=logical_fields,
        # The mapped Satisfaction field: JSM's request feedback (1–5) or an option field.
        satisfaction=satisfaction_level(logical_fields.get("satisfaction")),
        created=created,
        updated=optional_time(fields.get("updated"), what=f"{where} fields.updated"),
        resolved=resolved,
        status_history=history,
        priority_history=_priority_history(issue, mapping),
        comments=comments,
    )


# --- status -----------------------------------------------------------------------------


def _current_status(mapping: PlatformMapping, status_obj: Mapping[str, Any], *, where: str) -> Status:
    raw = status_obj.get("name")
    mapped = mapping.logical_status(raw)
    if mapped is not None:
        return mapped
    category = (status_obj.get("statusCategory") or {}).get("key")
    fallback = STATUS_CATEGORY_FALLBACK.get(category)
    if fallback is None:
        raise MalformedTicketError(
            f"{where}: status {raw!r} is not in the mapping's statuses and has no status category "
            "(new / indeterminate / done) to fall back on"
        )
    return fallback


def _is_status_item(item: Mapping[str, Any]) -> bool:
    # Cloud writes field "Status" with fieldId "status"; Data Center only field "status".
    # A custom field an admin named "Status" has a customfield_ id and must not match.
    if item.get("fieldId"):
        return item["fieldId"] == "status"
    return str(item.get("field", "")).casefold() == "status" and item.get("fieldtype") != "custom"


def _status_history(
    issue: Mapping[str, Any],
    mapping: PlatformMapping,
    *,
    created: datetime,
    raw_current: str | None,
    current: Status,
) -> tuple[StatusChange, ...]:
    """Status transitions from the changelog, oldest first, starting at creation.

    The changelog has no entry for the status an issue was created in: it is the
    `fromString` of the first status change, or the current status when none happened.
    Without a changelog at all (a webhook's issue) the history is unknown and left empty.
    """
    changelog = issue.get("changelog")
    if not isinstance(changelog, Mapping):
        return ()
    where = f"issue {issue.get('key')} changelog"

    # The current status may be known only through its category; history reuses that.
    known = dict(mapping.statuses)
    if raw_current:
        known[raw_current.casefold()] = current

    def logical(raw: str | None) -> Status:
        return history_status(raw, known=known)

    changes = [status_change(at, item.get("fromString"), item.get("toString"), logical)
               for at, item in _dated_items(changelog, _is_status_item, where)]
    return complete_history(changes, created, current, raw_current, logical)


def _dated_items(changelog: Mapping[str, Any], wanted: Callable[[Mapping[str, Any]], bool],
                 where: str) -> Iterator[tuple[datetime, Mapping[str, Any]]]:
    """(when, item) for each changelog item `wanted` accepts, in the changelog's order; a
    history's `created` is parsed only when it has such an item."""
    for history in require_list(changelog, "histories", where=where):
        items = [item for item in history.get("items") or () if isinstance(item, Mapping) and wanted(item)]
        if not items:
            continue
        at = parse_time(history.get("created"), what=f"{where} history {history.get('id')} created")
        for item in items:
            yield at, item


def _is_priority_item(item: Mapping[str, Any]) -> bool:
    # As `_is_status_item`: the system field only, never a custom field named "Priority".
    if item.get("fieldId"):
        return item["fieldId"] == "priority"
    return str(item.get("field", "")).casefold() == "priority" and item.get("fieldtype") != "custom"


def _priority_history(issue: Mapping[str, Any], mapping: PlatformMapping) -> tuple[PriorityChange, ...]:
    """Priority changes from the changelog (items of field "priority", names in
    `fromString`/`toString`), oldest first; for `simulate --now` in the past
    (`connector.history.ticket_as_of`). Without a changelog: none known."""
    changelog = issue.get("changelog")
    if not isinstance(changelog, Mapping):
        return ()
    where = f"issue {issue.get('key')} changelog"
    changes = [PriorityChange(at=at, from_priority=mapping.logical_priority(item.get("fromString")),
                              to_priority=mapping.logical_priority(item.get("toString")))
               for at, item in _dated_items(changelog, _is_priority_item, where)]
    changes.sort(key=lambda c: c.at)
    return tuple(changes)


# --- people and comments ----------------------------------------------------------------


def _user_id(user: Any) -> str | None:
    """accountId on Cloud, username on Data Center."""
    if not isinstance(user, Mapping):
        return None
    return id_text(user.get("accountId")) or id_text(user.get("name")) or id_text(user.get("key"))


def _is_user(value: Any) -> bool:
    """A Jira user object: Cloud's carries accountId; Data Center's name, key and displayName."""
    return isinstance(value, Mapping) and (
        "accountId" in value or ("key" in value and "name" in value and "displayName" in value))


def _identities(user: Any, keys: tuple[str, ...]) -> set[str]:
    if not isinstance(user, Mapping):
        return set()
    return {str(user[k]).casefold() for k in keys if user.get(k)}


def _comment_role(author: Any, reporter: Any, connector_ids: frozenset[str]) -> AuthorRole:
    if connector_ids & _identities(author, _USER_IDS + ("emailAddress",)):
        return AuthorRole.CONNECTOR
    if _identities(author, _USER_IDS) & _identities(reporter, _USER_IDS):
        return AuthorRole.REQUESTER
    return AuthorRole.AGENT


def _internal_property(properties: Any) -> bool | None:
    """The `sd.public.comment` property's verdict (True: internal), None when absent."""
    if not isinstance(properties, list):
        return None
    for prop in properties:
        if isinstance(prop, Mapping) and prop.get("key") == "sd.public.comment":
            value = prop.get("value")
            return bool(value.get("internal")) if isinstance(value, Mapping) else None
    return None


def _locale(user: Any) -> str | None:
    """The user's `locale` ("zh_CN") where the user object carries it: the full User of
    `GET /rest/api/2/user` has it ("may be returned as null" by privacy settings), the
    UserDetails embedded in an issue does not (Jira platform OpenAPI, schemas User and
    UserDetails) – then the reporter's User is read when a closing summary needs it
    (`users.ReporterLocales`, `connector.locales`)."""
    locale = user.get("locale") if isinstance(user, Mapping) else None
    return locale.strip() if isinstance(locale, str) and locale.strip() else None


def _comment_public(raw: Mapping[str, Any], role: AuthorRole) -> bool:
    """Whether the customer sees a comment.

    Jira Cloud says so in `jsdPublic` (internal notes false). Data Center has no such
    attribute (pycontribs/jira#1011); there the `sd.public.comment` property decides when
    the comment carries its properties (`/comment?expand=properties`). A connector comment
    that says neither is taken as not public: the connector's own notes never count as a
    response anyway, and nothing may treat one as a reply the customer saw.
    """
    public = raw.get("jsdPublic")
    if isinstance(public, bool):
        return public
    internal = _internal_property(raw.get("properties"))
    if internal is not None:
        return not internal
    return role != AuthorRole.CONNECTOR


def _comments(
    fields: Mapping[str, Any], mapping: PlatformMapping, reporter: Any, *, where: str,
    connector_ids: frozenset[str] = frozenset(),
) -> tuple[Comment, ...]:
    page = fields.get("comment")
    if page is None:
        return ()
    if not isinstance(page, Mapping):
        raise MalformedTicketError(f"{where} fields.comment must be an object with a 'comments' list")
    own = {i.casefold() for i in connector_ids}
    if mapping.connector_account:
        own.add(mapping.connector_account.casefold())
    comments = []
    for raw in require_list(page, "comments", where=f"{where} fields.comment"):
        comment_id = id_text(raw.get("id"))
        if comment_id is None:
            raise MalformedTicketError(f"{where} fields.comment.comments: a comment has no 'id'")
        author = raw.get("author")
        role = _comment_role(author, reporter, frozenset(own))
        comments.append(
            Comment(
                id=comment_id,
                author=_user_id(author),
                author_role=role,
                public=_comment_public(raw, role),
                body=rich_text(raw.get("body")),
                created=parse_time(raw.get("created"), what=f"{where} comment {comment_id} created"),
            )
        )
    return tuple(sorted(comments, key=lambda comment: comment.created))


# --- fields -----------------------------------------------------------------------------


class _FieldResolver:
    """Finds a field's value by id or by the display name admins know it by."""

    def __init__(self, fields: Mapping[str, Any], names: Mapping[str, str]) -> None:
        self._fields = fields
        self._ids_by_name: dict[str, list[str]] = {}
        for field_id, name in names.items():
            if isinstance(name, str):
                self._ids_by_name.setdefault(name.casefold(), []).append(field_id)

    def raw(self, ref: str) -> Any:
        if ref in self._fields:
            return self._fields[ref]
        # Jira allows two custom fields with one name; take the one that holds something.
        candidates = [fid for fid in self._ids_by_name.get(ref.casefold(), ()) if fid in self._fields]
        for field_id in candidates:
            if plain_value(self._fields[field_id]) is not None:
                return self._fields[field_id]
        return None

    def present(self, ref: str) -> bool:
        """True when the issue carries the field at all (an empty value included)."""
        return ref in self._fields or any(fid in self._fields for fid in self._ids_by_name.get(ref.casefold(), ()))


def _category(fields: Mapping[str, Any], mapping: PlatformMapping, resolver: _FieldResolver) -> str | None:
    if mapping.category_field == "components":
        for component in fields.get("components") or ():
            if isinstance(component, Mapping) and component.get("name"):
                return str(component["name"])
        return None
    return first_text(resolver.raw(mapping.category_field))


def _organizations(mapping: PlatformMapping, resolver: _FieldResolver) -> tuple[str, ...] | None:
    """The JSM organizations; None when the site or the read has no Organizations field."""
    ref = mapping.organizations_field
    if not ref or not resolver.present(ref):
        return None
    return jira_organizations(resolver.raw(ref))


def _group(mapping: PlatformMapping, resolver: _FieldResolver) -> str | None:
    return mapping.group_name(first_text(resolver.raw(mapping.group_field)))


def _logical_fields(mapping: PlatformMapping, resolver: _FieldResolver) -> dict[str, Any]:
    values = {}
    for logical, ref in mapping.fields.items():
        raw = resolver.raw(ref)
        # The review gate's reviewer (a user picker) gives the user's identity, like
        # `assignee`, so the two compare; other user fields keep their display name.
        value = _user_id(raw) if logical in IDENTITY_FIELDS and _is_user(raw) else plain_value(raw)
        if value is not None:
            values[logical] = value
    return values


def _browse_url(issue: Mapping[str, Any], key: str, base_url: str | None) -> str | None:
    if base_url:
        return f"{base_url.rstrip('/')}/browse/{key}"
    self_url = issue.get("self")
    if not isinstance(self_url, str) or "://" not in self_url:
        return None
    # Data Center may live under a context path (https://host/jira/rest/api/2/issue/1).
    site = self_url.split("/rest/api/", 1)[0] if "/rest/api/" in self_url else None
    if site is None:
        parts = urlsplit(self_url)
        site = f"{parts.scheme}://{parts.netloc}"
    return f"{site.rstrip('/')}/browse/{key}"


def _marker_times(comments, label_times: Mapping[str, datetime]) -> dict:
    """When each marker was first recorded: the `created` of the connector comment with its
    `ref:` trailer (the comment is the record; the label may travel in a later request), or
    the time the changelog shows the marker label added – whichever is earlier. Jira's
    comment resource has `created`, https://developer.atlassian.com/cloud/jira/platform/rest/v2/api-group-issue-comments/."""
    times: dict = dict(label_times)
    for comment in comments:
        if comment.author_role == AuthorRole.CONNECTOR and (marker := carried_marker(comment.body)):
            if marker not in times or comment.created < times[marker]:
                times[marker] = comment.created
    return times


def _is_labels_item(item: Mapping[str, Any]) -> bool:
    # As `_is_status_item`: the system Labels field only, never a custom field named "labels".
    if item.get("fieldId"):
        return item["fieldId"] == "labels"
    return str(item.get("field", "")).casefold() == "labels" and item.get("fieldtype") != "custom"


def _label_times(issue: Mapping[str, Any], *, where: str) -> dict[str, datetime]:
    """When each label was first added, from the changelog: a "labels" item lists the labels
    before (`fromString`) and after (`toString`), space-separated (e.g. `{"field": "labels",
    "fieldtype": "jira", "fromString": null, "toString": "V5.0"}`, as public clients log them),
    and its history has `created`. Like Zendesk's tag audits (`zendesk.ticket._tag_times`):
    author-independent, so `connector simulate` on a saved issue dates the connector's
    markers without knowing its account. Without a changelog: none known."""
    changelog = issue.get("changelog")
    if not isinstance(changelog, Mapping):
        return {}
    times: dict[str, datetime] = {}
    for at, item in _dated_items(changelog, _is_labels_item, f"{where} changelog"):
        before = set(str(item.get("fromString") or "").split())
        for label in str(item.get("toString") or "").split():
            if label not in before and (label not in times or at < times[label]):
                times[label] = at
    return times
