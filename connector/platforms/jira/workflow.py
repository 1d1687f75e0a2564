"""What one fetch says about an issue's workflow position, kept for the apply that follows.

The fetch expands `transitions.fields` (each transition the workflow offers now, with its
screen's fields) and `editmeta` (what the edit screen lets the connector set in the
current status), so `apply` needs no second read. Both are kept per ticket, used once, in
a bounded memory (`platforms.memory`); a transition Jira refused is remembered against a
fingerprint of the issue's fields so it is not resent until the issue changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.platforms.field_values import plain_value
from connector.platforms.memory import BoundedMemory

# Fields that change without anyone fixing anything a transition could need.
_VOLATILE_FIELDS = frozenset({"updated", "comment", "labels", "lastViewed", "watches", "votes", "worklog"})


@dataclass(frozen=True)
class Workflow:
    """What one fetch said about the issue's workflow position: the transitions it offers
    (with their screens), the ids of the fields that hold a value, and each field's value as
    JSON (both None when not known: transitions read without the issue)."""

    transitions: list[dict[str, Any]]
    filled: frozenset[str] | None
    values: Mapping[str, str] | None = None

    @classmethod
    def from_issue(cls, raw: Mapping[str, Any], transitions: list[dict[str, Any]]) -> Workflow:
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


def screen_field_id(screen: Mapping[str, Any], ref: str) -> str | None:
    """The id of the screen field `ref` names (by id, or by its display name)."""
    if ref in screen:
        return ref
    folded = ref.casefold()
    for field_id, meta in screen.items():
        if isinstance(meta, Mapping) and str(meta.get("name") or "").casefold() == folded:
            return str(field_id)
    return None


def is_allowed(value: Any, allowed: Sequence[Any]) -> bool:
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


def pick_transition(transitions: Sequence[Mapping[str, Any]], target: str) -> Mapping[str, Any] | None:
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


class FetchMemory:
    """The workflow position and edit screen of each fetched issue, until its apply.

    Each is used at most once: after an apply the workflow position may have changed. A
    fetch not followed by an apply (simulate, dry runs) is forgotten when the memory is full.
    """

    def __init__(self) -> None:
        self._workflows: BoundedMemory[str, Workflow] = BoundedMemory()
        self._editmeta: BoundedMemory[str, dict[str, Any]] = BoundedMemory()

    def remember(self, ticket_id: str, raw: Mapping[str, Any]) -> None:
        transitions = raw.get("transitions")
        if isinstance(transitions, list):
            self._workflows.put(ticket_id, Workflow.from_issue(raw, transitions))
        editmeta = raw.get("editmeta")
        fields = editmeta.get("fields") if isinstance(editmeta, Mapping) else None
        if isinstance(fields, Mapping):
            self._editmeta.put(ticket_id, dict(fields))

    def take(self, ticket_id: str) -> tuple[Workflow | None, dict[str, Any] | None]:
        """(the transitions offered, what the edit screen allowed) at the fetch; None for a
        ticket not fetched here – then the edit is sent whole, and a 400 naming fields is
        answered by dropping them and sending the rest once more (no extra read just to
        learn the screen)."""
        return self._workflows.pop(ticket_id), self._editmeta.pop(ticket_id)
