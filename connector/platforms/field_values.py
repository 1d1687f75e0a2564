"""Turning platform field values into the plain values the rules compare.

Jira and Zendesk wrap the same fact in different envelopes: a select option is
`{"value": "Network"}` in Jira and the tag `"network"` in Zendesk, a user is an object,
rich text is a string in Jira REST v2 but an Atlassian Document Format (ADF) tree in v3,
and "nothing entered" may be `null`, `""`, `[]` or a blank ADF document. Rules only ask
"is the root cause given?" and "which category is it?", so both parsers reduce values
here, once, to strings, numbers, booleans or lists of them, and to `None` when nothing
is there. Times are parsed strictly: a timestamp without a UTC offset would silently
shift every SLA deadline, so it is rejected rather than guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from connector.model import Status, StatusChange


class MalformedTicketError(ValueError):
    """The platform's representation lacks something a ticket cannot be built without."""


# ADF block nodes whose text ends a line; inline nodes (text, mention, emoji) do not.
_ADF_BLOCKS = frozenset(
    {"paragraph", "heading", "blockquote", "codeBlock", "listItem", "rule", "panel",
     "tableRow", "mediaSingle", "mediaGroup", "decisionItem", "taskItem"}
)


def is_adf(value: Any) -> bool:
    """True for an Atlassian Document Format document (Jira REST v3 rich text)."""
    return isinstance(value, Mapping) and value.get("type") == "doc" and "content" in value


def adf_text(node: Any) -> str:
    """Plain text of an ADF document: text runs joined, one line per block, no markup."""
    lines: list[str] = []
    current: list[str] = []

    def end_line() -> None:
        if current:
            lines.append("".join(current).rstrip())
            current.clear()

    def walk(item: Any) -> None:
        if not isinstance(item, Mapping):
            return
        kind = item.get("type")
        attrs = item.get("attrs") or {}
        if kind == "text":
            current.append(str(item.get("text", "")))
        elif kind == "hardBreak":
            end_line()
        elif kind in ("mention", "emoji"):
            current.append(str(attrs.get("text") or attrs.get("shortName") or ""))
        elif kind in ("inlineCard", "blockCard"):
            current.append(str(attrs.get("url") or ""))
        for child in item.get("content") or ():
            walk(child)
        if kind in _ADF_BLOCKS:
            end_line()

    walk(node)
    end_line()
    return "\n".join(line for line in lines if line)


def rich_text(value: Any) -> str:
    """A description or comment body as plain text, whether REST v2 string or v3 ADF."""
    if value is None:
        return ""
    if is_adf(value):
        return adf_text(value)
    return str(value)


def plain_value(value: Any) -> Any:
    """The value a rule compares, or None when the field holds nothing.

    Option objects give their `value`, users/components/versions their `name` (or
    `displayName`), ADF its text; lists are reduced item by item and dropped when
    nothing is left. Date-time strings stay strings: only the ticket's own created /
    updated / resolved times become datetimes.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, (bool, int, float)):
        return value
    if is_adf(value):
        return adf_text(value) or None
    if isinstance(value, Mapping):
        for key in ("value", "name", "displayName"):
            if key in value:
                return plain_value(value[key])
        return dict(value) or None
    if isinstance(value, (list, tuple)):
        items = [plain for plain in (plain_value(item) for item in value) if plain is not None]
        return items or None
    return value


def first_text(value: Any) -> str | None:
    """A single-valued reading (category, group) of a value that may be a list."""
    plain = plain_value(value)
    if isinstance(plain, list):
        plain = plain[0] if plain else None
    if plain is None or isinstance(plain, dict):
        return None
    return str(plain)


def parse_time(value: Any, *, what: str) -> datetime:
    """A timezone-aware datetime from Jira's `2026-04-25T10:00:00.000+0000` or ISO 8601.

    `what` names the value in the error, so a bad file points at the field to fix.
    """
    if not isinstance(value, str) or not value.strip():
        raise MalformedTicketError(f"{what} is missing; expected a timestamp such as 2026-04-25T10:00:00.000+0000")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise MalformedTicketError(f"{what} {value!r} is not an ISO 8601 timestamp") from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise MalformedTicketError(f"{what} {value!r} has no UTC offset; SLA times need one")
    return parsed


def optional_time(value: Any, *, what: str) -> datetime | None:
    """Like parse_time, but None/"" mean "not yet" (a ticket that was never resolved)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_time(value, what=what)


def id_text(value: Any) -> str | None:
    """An account/user id as a string; numeric Zendesk ids and string Jira ids alike."""
    if value is None or value == "":
        return None
    return str(value)


def last_entered(history: Iterable[StatusChange], statuses: frozenset[Status]) -> datetime | None:
    """When the ticket last moved into `statuses` from outside them.

    Used for the resolved time where no date field says it: Resolved -> Closed is not a
    new resolution, so moves within `statuses` do not count.
    """
    entered = [
        change.at
        for change in history
        if change.to_status in statuses and (change.from_status is None or change.from_status not in statuses)
    ]
    return max(entered) if entered else None


# A history entry carries only a status name, not what it means: an unmapped name seen
# only in history is read as work in progress, which keeps SLA clocks running rather
# than pausing or stopping them on a guess.
UNMAPPED_HISTORY_STATUS = Status.IN_PROGRESS


def history_status(raw: str | None, *, known: Mapping[str, Status], fallback: Status = UNMAPPED_HISTORY_STATUS) -> Status:
    """The logical status of a name met in history; `known` maps casefolded names."""
    if raw is None:
        return fallback
    return known.get(raw.casefold(), fallback)


def require_mapping(container: Any, key: str, *, where: str) -> Mapping[str, Any]:
    """container[key] as an object, or a MalformedTicketError saying what was expected."""
    value = container.get(key) if isinstance(container, Mapping) else None
    if not isinstance(value, Mapping):
        found = "nothing" if value is None else type(value).__name__
        raise MalformedTicketError(f"{where}.{key} must be a JSON object, found {found}")
    return value


def require_list(container: Mapping[str, Any], key: str, *, where: str) -> list[Mapping[str, Any]]:
    """container[key] as a list of objects (absent or null means empty)."""
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise MalformedTicketError(f"{where}.{key} must be a list of JSON objects")
    return value


def comparable(value: Any) -> Any:
    """A value reduced so that what a ticket shows and what a rule wants compare equal:
    instants compare as instants ("…Z", "+0000" and "+00:00" alike), lists ignore order,
    numbers ignore int/float, option objects compare by their value."""
    plain = plain_value(value)
    if isinstance(plain, datetime):
        return plain if plain.tzinfo is not None else plain.isoformat()
    if isinstance(plain, date):
        return plain.isoformat()
    if isinstance(plain, str):
        try:
            moment = datetime.fromisoformat(plain)
        except ValueError:
            return plain
        return moment if moment.tzinfo is not None else plain
    if isinstance(plain, list):
        return sorted(str(comparable(item)) for item in plain)
    if isinstance(plain, (int, float)) and not isinstance(plain, bool):
        return float(plain)
    return plain


def already_equal(current: Any, desired: Any) -> bool:
    """True when a field showing `current` needs no write to hold `desired`."""
    return comparable(current) == comparable(desired)


def status_change(at: datetime, raw_from: str | None, raw_to: str, logical) -> StatusChange:
    """One recorded status move, with the logical status on either side of the raw names."""
    return StatusChange(
        at=at,
        from_status=logical(raw_from) if raw_from else None,
        to_status=logical(raw_to),
        raw_from=raw_from,
        raw_to=raw_to,
    )


def complete_history(changes: list, created: datetime, current, raw_current: str | None, logical) -> tuple:
    """Sort status changes and make the history start at creation.

    Both platforms record changes, not the starting status: the first change's "from" is
    where the ticket began (a later page of audits or a trimmed file may lack the creation
    event), and a ticket never changed has been in its current status since creation.
    """
    changes.sort(key=lambda change: change.at)
    if not changes:
        return (StatusChange(at=created, to_status=current, raw_to=raw_current),)
    first = changes[0]
    if first.raw_from:
        changes.insert(0, StatusChange(at=created, to_status=logical(first.raw_from), raw_to=first.raw_from))
    return tuple(changes)
