"""The account's Zendesk ticket fields, and values shaped the way a ticket update takes them.

A value goes either to a ticket attribute (`priority`, `group_id`, `due_at` …) or to a
custom field (`custom_fields: [{id, value}]`). A mapping names custom fields by id or by
title (titles are resolved against `GET /api/v2/ticket_fields`; an inactive field that
shares a title with an active one is ignored); a system field's title resolves to its
attribute. Attributes no update can change (the description, the satisfaction rating …)
are refused with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from connector.platforms.formats import aware_datetime, iso_date
from connector.platforms.zendesk.ticket import SYSTEM_FIELD_ATTRIBUTES

# Ticket attributes an API client may set directly in an update, and how their values look.
ID_ATTRIBUTES = frozenset(
    {"group_id", "assignee_id", "organization_id", "requester_id", "problem_id", "brand_id", "ticket_form_id"}
)
WRITABLE_ATTRIBUTES = ID_ATTRIBUTES | {"subject", "type", "priority", "status", "due_at", "external_id"}
# Attributes a mapping may name that no update can change.
READ_ONLY_ATTRIBUTES: dict[str, str] = {
    "description": "the description is the ticket's first comment and cannot be edited",
    "satisfaction_rating": "only the requester can rate a ticket",
    "tags": "tags are changed with add-label / remove-label actions",
    "custom_fields": "name the custom field itself, by id or title",
    "fields": "name the custom field itself, by id or title",
    "id": "the ticket id cannot change",
    "created_at": "Zendesk sets it",
    "updated_at": "Zendesk sets it",
}



class FieldResolutionError(ValueError):
    """A mapping names a field the account does not have, several fields, or one no update can set."""


@dataclass(frozen=True)
class Target:
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

    def resolve(self, ref: str) -> Target:
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


def _system_or_custom(raw: Mapping[str, Any]) -> Target:
    attribute = SYSTEM_FIELD_ATTRIBUTES.get(str(raw.get("type")))
    if attribute is None:
        return Target(field=raw)
    return attribute_target(attribute)


def attribute_target(attribute: str) -> Target:
    if attribute in READ_ONLY_ATTRIBUTES:
        raise FieldResolutionError(f"{attribute!r} cannot be written: {READ_ONLY_ATTRIBUTES[attribute]}")
    return Target(attribute=attribute)



def zendesk_datetime(value: Any) -> str:
    """An instant as Zendesk writes its own timestamps, `2026-11-22T03:20:05Z`; no offset is refused."""
    moment = aware_datetime(value, zone="an unknown zone")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        return iso_date(value)
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


def format_attribute(attribute: str, value: Any) -> Any:
    if value is None:
        return None
    if attribute in ID_ATTRIBUTES:
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


def resolve_target(ref: str, catalogue: Callable[[], TicketFieldCatalogue]) -> Target:
    """Where `ref` writes. Attributes need no catalogue, so a plan of priorities and tags
    costs no field read."""
    if ref in WRITABLE_ATTRIBUTES or ref in READ_ONLY_ATTRIBUTES:
        return attribute_target(ref)
    return catalogue().resolve(ref)


def format_value(target: Target, value: Any) -> Any:
    """`value` shaped for `target`; TypeError/ValueError says why it cannot be written."""
    if target.attribute is not None:
        return format_attribute(target.attribute, value)
    assert target.field is not None
    return format_custom_field_value(target.field, value)
