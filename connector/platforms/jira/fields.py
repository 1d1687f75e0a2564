"""The site's Jira fields, and values shaped the way an edit or a transition screen takes them.

A mapping names fields by id (`customfield_10050`) or by display name, and display names
are not unique in Jira, so names are resolved against `GET /rest/api/2/field` and an
ambiguous one is an error that says to map it by id. Values are shaped by the field's
schema type: an option is `{"value": …}`, a user `{"accountId": …}` on Cloud and
`{"name": …}` on Data Center, a date-time carries milliseconds and an offset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.platforms.formats import aware_datetime, iso_date


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
    moment: datetime = aware_datetime(value, zone="the server's zone")
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}.{moment.microsecond // 1000:03d}{moment.strftime('%z')}"


def jira_date(value: Any) -> str:
    """Jira's date format, `yyyy-MM-dd`; a datetime gives its date in its own time zone."""
    return iso_date(value)


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
