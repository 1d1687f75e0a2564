"""A Zendesk ticket, with its audits and sideloaded users, turned into the neutral `Ticket`.

Zendesk spreads one ticket over several responses: the ticket object
(`GET /api/v2/tickets/{id}.json?include=users`), its audits (the only record of when the
status changed, `GET /api/v2/tickets/{id}/audits.json`) and its comments
(`GET /api/v2/tickets/{id}/comments.json`). The parser accepts any of them that the
caller has, merges comments that appear in both, and does no I/O – so the adapter, the
simulator and tests over recorded responses share one reading of the ticket.

Differences from Jira that the rules must not see are settled here:
- the ticket's description is also its first comment; that opening comment is left out,
  because an agent who opens a ticket for a caller has not thereby responded to it;
- custom fields are `[{id, value}]`; the mapping names them by numeric id or by the
  title admins see, resolved through the ticket-field catalogue;
- a dropdown ("tagger") value is its tag, which is also what triggers and views use;
- the group is a numeric id, translated through the mapping's group names.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    status_change,
)
from connector.platforms.customer import zendesk_organizations, zendesk_requester_domain
from connector.platforms.mapping import PlatformMapping
from connector.satisfaction import satisfaction_level

# System ticket fields in the catalogue (GET /api/v2/ticket_fields) and the ticket
# attribute that holds their value, so a mapping may name them by title too.
SYSTEM_FIELD_ATTRIBUTES: dict[str, str] = {
    "subject": "subject",
    "description": "description",
    "status": "status",
    "tickettype": "type",
    "priority": "priority",
    "group": "group_id",
    "assignee": "assignee_id",
}

# Ticket attributes that hold the custom-field list, never a field value themselves.
_CUSTOM_FIELD_LISTS = frozenset({"custom_fields", "fields"})


def parse_zendesk_ticket(
    ticket: dict,
    mapping: PlatformMapping,
    *,
    audits: list[dict] | None = None,
    comments: list[dict] | None = None,
    users: list[dict] | None = None,
    ticket_fields: list[dict] | None = None,
    base_url: str | None = None,
    organizations: list[dict] | None = None,
) -> Ticket:
    """Build a `Ticket` from a Zendesk ticket object and whatever of its context is at hand.

    `ticket` is the inner "ticket" of the show response; `audits`, `comments`, `users`
    and `ticket_fields` are the lists of the audits, comments, `include=users` sideload
    and ticket-field endpoints; `organizations` the `include=organizations` sideload
    (the ticket's organization name, see `customer`). Without audits the status history is unknown and left
    empty. `base_url` is the account URL (`https://acme.zendesk.com`); without it the
    host of `ticket["url"]` is used. Raises `MalformedTicketError` (a ValueError) when
    the ticket lacks its id, status or creation time.
    """
    if not isinstance(ticket, Mapping):
        raise MalformedTicketError(f"a Zendesk ticket must be a JSON object, found {type(ticket).__name__}")
    ticket_id = id_text(ticket.get("id"))
    if ticket_id is None:
        raise MalformedTicketError(
            "a Zendesk ticket needs an 'id' (pass the inner \"ticket\" object of GET /api/v2/tickets/{id}.json)"
        )
    where = f"ticket #{ticket_id}"
    raw_status = ticket.get("status")
    status = mapping.logical_status(raw_status if isinstance(raw_status, str) else None)
    if status is None:
        raise MalformedTicketError(
            f"{where}: status {raw_status!r} is not in the mapping's statuses "
            "(Zendesk uses new, open, pending, hold, solved, closed)"
        )
    created = parse_time(ticket.get("created_at"), what=f"{where} created_at")
    audit_list = _list_arg(audits, "audits", where)
    history = _status_history(audit_list, mapping, created=created, raw_current=raw_status, current=status, where=where)
    resolver = _FieldResolver(ticket, _list_arg(ticket_fields, "ticket_fields", where))
    raw_priority = ticket.get("priority") or None
    user_list = _list_arg(users, "users", where)
    logical_fields = _logical_fields(mapping, resolver)

    return Ticket(
        platform="zendesk",
        id=ticket_id,
        key=f"#{ticket_id}",
        url=_agent_url(ticket, ticket_id, base_url),
        summary=str(ticket.get("subject") or ticket.get("raw_subject") or ""),
        description=str(ticket.get("description") or ""),
        category=first_text(resolver.raw(mapping.category_field)),
        priority=mapping.logical_priority(raw_priority),
        raw_priority=raw_priority,
        status=status,
        raw_status=raw_status,
        status_equivalents=mapping.status_equivalents(raw_status),
        reporter=id_text(ticket.get("requester_id")),
        organizations=zendesk_organizations(ticket, _list_arg(organizations, "organizations", where)),
        requester_email_domain=zendesk_requester_domain(ticket, user_list),
        requester_locale=_requester_locale(ticket, user_list),
        assignee=id_text(ticket.get("assignee_id")),
        group=mapping.group_name(first_text(resolver.raw(mapping.group_field))),
        labels=frozenset(str(tag) for tag in ticket.get("tags") or ()),
        fields=logical_fields,
        # A mapped satisfaction field first; else Zendesk's own CSAT on the ticket.
        satisfaction=(satisfaction_level(logical_fields.get("satisfaction"))
                      or satisfaction_level(ticket.get("satisfaction_rating"))),
        created=created,
        updated=optional_time(ticket.get("updated_at"), what=f"{where} updated_at"),
        # The ticket object has no solved time; the audits say when it got there.
        resolved=last_entered(history, DONE_STATUSES) if status in DONE_STATUSES else None,
        status_history=history,
        priority_history=_priority_history(audit_list, mapping, where=where),
        marker_times=_tag_times(audit_list, where=where),
        comments=_comments(
            ticket,
            mapping,
            audit_list,
            _list_arg(comments, "comments", where),
            user_list,
            created=created,
            where=where,
        ),
    )


def _requester_locale(ticket: Mapping[str, Any], users: list[Mapping[str, Any]]) -> str | None:
    """The requester's `locale` ("zh-CN") from the sideloaded users (`include=users`; the
    user object's `locale`, https://developer.zendesk.com/api-reference/ticketing/users/users/);
    None when the requester is not among them."""
    requester = id_text(ticket.get("requester_id"))
    for user in users:
        if requester is not None and id_text(user.get("id")) == requester:
            locale = user.get("locale")
            return locale.strip() if isinstance(locale, str) and locale.strip() else None
    return None


def _list_arg(value: Any, name: str, where: str) -> list[Mapping[str, Any]]:
    return require_list({name: value}, name, where=where)


# --- status -----------------------------------------------------------------------------


def _status_history(
    audits: list[Mapping[str, Any]],
    mapping: PlatformMapping,
    *,
    created: datetime,
    raw_current: str,
    current: Status,
    where: str,
) -> tuple[StatusChange, ...]:
    """Status Create/Change events of the audits, oldest first, starting at creation."""
    if not audits:
        return ()

    def logical(raw: Any) -> Status:
        return history_status(str(raw) if raw is not None else None, known=mapping.statuses)

    changes: list[StatusChange] = []
    for audit in audits:
        events = [
            event
            for event in require_list(audit, "events", where=f"{where} audit {audit.get('id')}")
            if event.get("field_name") == "status" and event.get("type") in ("Create", "Change")
        ]
        if not events:
            continue
        at = parse_time(audit.get("created_at"), what=f"{where} audit {audit.get('id')} created_at")
        for event in events:
            raw_to = id_text(event.get("value"))
            raw_from = id_text(event.get("previous_value")) if event["type"] == "Change" else None
            changes.append(status_change(at, raw_from, raw_to, logical))
    return complete_history(changes, created, current, raw_current, logical)


def _priority_history(audits: list[Mapping[str, Any]], mapping: PlatformMapping, *,
                      where: str) -> tuple[PriorityChange, ...]:
    """Priority Change events of the audits ("The value of a ticket field was changed",
    https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_audits/), oldest
    first; for `simulate --now` in the past (`connector.history.ticket_as_of`)."""
    changes: list[PriorityChange] = []
    for audit in audits or ():
        events = [event for event in require_list(audit, "events", where=f"{where} audit {audit.get('id')}")
                  if event.get("field_name") == "priority" and event.get("type") == "Change"]
        if not events:
            continue
        at = parse_time(audit.get("created_at"), what=f"{where} audit {audit.get('id')} created_at")
        for event in events:
            changes.append(PriorityChange(at=at, from_priority=mapping.logical_priority(id_text(event.get("previous_value"))),
                                          to_priority=mapping.logical_priority(id_text(event.get("value")))))
    changes.sort(key=lambda c: c.at)
    return tuple(changes)


# --- comments ---------------------------------------------------------------------------


def _comments(
    ticket: Mapping[str, Any],
    mapping: PlatformMapping,
    audits: list[Mapping[str, Any]],
    listed: list[Mapping[str, Any]],
    users: list[Mapping[str, Any]],
    *,
    created: datetime,
    where: str,
) -> tuple[Comment, ...]:
    """Comments from the comments list and the audits' Comment events, once each."""
    users_by_id = {id_text(user.get("id")): user for user in users}
    requester = id_text(ticket.get("requester_id"))
    opening: set[str] = set()
    found: dict[str, tuple[Mapping[str, Any], datetime]] = {}

    for audit in audits:
        events = require_list(audit, "events", where=f"{where} audit {audit.get('id')}")
        is_creation = any(event.get("type") == "Create" for event in events)
        for event in events:
            if event.get("type") != "Comment":
                continue
            comment_id = _comment_id(event, where)
            if is_creation:
                opening.add(comment_id)
            at = parse_time(audit.get("created_at"), what=f"{where} audit {audit.get('id')} created_at")
            found.setdefault(comment_id, (event, at))

    for raw in listed:
        comment_id = _comment_id(raw, where)
        at = parse_time(raw.get("created_at"), what=f"{where} comment {comment_id} created_at")
        if not audits and at == created:
            opening.add(comment_id)
        # The comments endpoint has the comment's own timestamp; prefer it.
        found[comment_id] = (raw, at)

    result = []
    for comment_id, (raw, at) in found.items():
        if comment_id in opening:
            continue
        author = id_text(raw.get("author_id"))
        result.append(
            Comment(
                id=comment_id,
                author=author,
                author_role=_author_role(author, users_by_id.get(author), requester, mapping.connector_account),
                public=bool(raw.get("public", True)),
                body=str(raw.get("body") or raw.get("plain_body") or ""),
                created=at,
            )
        )
    return tuple(sorted(result, key=lambda comment: (comment.created, comment.id)))


def _comment_id(raw: Mapping[str, Any], where: str) -> str:
    comment_id = id_text(raw.get("id"))
    if comment_id is None:
        raise MalformedTicketError(f"{where}: a comment has no 'id'")
    return comment_id


def _author_role(
    author: str | None, user: Mapping[str, Any] | None, requester: str | None, connector_account: str | None
) -> AuthorRole:
    if connector_account and author is not None:
        email = str((user or {}).get("email") or "")
        if author == connector_account or (email and email.casefold() == connector_account.casefold()):
            return AuthorRole.CONNECTOR
    if author is not None and author == requester:
        return AuthorRole.REQUESTER
    # CCs and other customers who reply are end-users too: they are not the support team.
    if user is not None and user.get("role") == "end-user":
        return AuthorRole.REQUESTER
    return AuthorRole.AGENT


# --- fields -----------------------------------------------------------------------------


class _FieldResolver:
    """Finds a value by custom-field id, ticket attribute, or the field's title."""

    def __init__(self, ticket: Mapping[str, Any], catalogue: list[Mapping[str, Any]]) -> None:
        self._ticket = ticket
        entries = ticket.get("custom_fields")
        if entries is None:
            entries = ticket.get("fields")
        self._custom: dict[str, Any] = {
            str(entry.get("id")): entry.get("value")
            for entry in entries or ()
            if isinstance(entry, Mapping) and entry.get("id") is not None
        }
        self._by_title: dict[str, list[Mapping[str, Any]]] = {}
        for field in catalogue:
            for title in {field.get("title"), field.get("raw_title")}:
                if isinstance(title, str):
                    self._by_title.setdefault(title.casefold(), []).append(field)

    def raw(self, ref: str) -> Any:
        if ref.isdigit():
            return self._custom.get(ref)
        if ref in self._ticket and ref not in _CUSTOM_FIELD_LISTS:
            return self._attribute(ref)
        # Two fields may share a title (an old inactive one); take the one holding something.
        values = [self._field_value(field) for field in self._by_title.get(ref.casefold(), ())]
        return next((value for value in values if plain_value(value) is not None), None)

    def _field_value(self, field: Mapping[str, Any]) -> Any:
        attribute = SYSTEM_FIELD_ATTRIBUTES.get(str(field.get("type")))
        if attribute is not None:
            return self._attribute(attribute)
        return self._custom.get(str(field.get("id")))

    def _attribute(self, name: str) -> Any:
        value = self._ticket.get(name)
        if name == "satisfaction_rating":
            # {"score": "good" | "bad" | "offered" | "unoffered", ...}; unoffered = no survey.
            score = value.get("score") if isinstance(value, Mapping) else None
            return None if score in (None, "", "unoffered") else score
        return value


def _logical_fields(mapping: PlatformMapping, resolver: _FieldResolver) -> dict[str, Any]:
    values = {}
    for logical, ref in mapping.fields.items():
        value = plain_value(resolver.raw(ref))
        if value is not None:
            values[logical] = value
    return values


def _agent_url(ticket: Mapping[str, Any], ticket_id: str, base_url: str | None) -> str | None:
    if not base_url:
        api_url = ticket.get("url")
        if not isinstance(api_url, str) or "://" not in api_url:
            return None
        parts = urlsplit(api_url)
        base_url = f"{parts.scheme}://{parts.netloc}"
    return f"{base_url.rstrip('/')}/agent/tickets/{ticket_id}"


def _tag_times(audits: list[Mapping[str, Any]], *, where: str) -> dict[str, datetime]:
    """When each tag was first added: tags carry no time, but the audit of the update that
    added one does – its Create/Change event with `field_name: "tags"` lists the tags
    (`value`) and, for a Change, those before (`previous_value`), and the audit has its
    `created_at` ("Ticket Audits", https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_audits/).
    Keyed by tag; the escalation response clock reads the marker tags' entries."""
    times: dict[str, datetime] = {}
    for audit in audits or ():
        events = require_list(audit, "events", where=f"{where} audit {audit.get('id')}")
        tag_events = [e for e in events if e.get("field_name") == "tags" and e.get("type") in ("Create", "Change")]
        if not tag_events:
            continue
        at = parse_time(audit.get("created_at"), what=f"{where} audit {audit.get('id')} created_at")
        for event in tag_events:
            before = set(_tag_list(event.get("previous_value")))
            for tag in _tag_list(event.get("value")):
                if tag not in before and (tag not in times or at < times[tag]):
                    times[tag] = at
    return times


def _tag_list(value: Any) -> list[str]:
    """An audit's tag value: a list, or (as some sites send) one space-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return []
