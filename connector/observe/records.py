"""One recorded action of an observed rule, and the fingerprint that dedupes it.

Without markers being written, an observed one-time action (a breach notice, an intake
request) is planned again on every reconcile of its ticket. It is stored once, under a
fingerprint of what it is – platform, ticket, rule, action type, and the action's identity:
the marker of a one-time comment, the label of a label change, the target of a transition,
assignment or priority, the names of the fields set, else a hash of the action's content –
never of its wording or reason, which may mention the current time. Each re-plan only moves
`last_seen` and counts `times`; `first_seen` stays, which is what the rollout's backlog rule
(`connector.observe.rollout`) reads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.model import AddComment, AddLabel, Assign, RemoveLabel, SetFields, SetPriority, Ticket, Transition


@dataclass(frozen=True)
class Observation:
    """An action the connector would have written, as stored and listed."""

    fingerprint: str
    platform: str
    ticket_id: str
    ticket_key: str
    rule: str
    action: str  # the Action's type: comment, transition, set-fields, …
    marker: str | None
    details: dict[str, Any]
    reason: str
    first_seen: datetime
    last_seen: datetime
    times: int = 1
    # True when this record was created by the call that returned it (not a re-plan).
    new: bool = field(default=False, compare=False)

    def summary(self) -> str:
        """One line saying what would have been written, for the text listing and the page."""
        d = self.details
        if self.action == "comment":
            kind = "public comment" if d.get("public") else "internal note"
            body = " ".join(str(d.get("body", "")).split())
            return f"{kind}: {body[:120]}{'…' if len(body) > 120 else ''}"
        if self.action == "transition":
            return f"move to {d.get('to')}"
        if self.action == "assign":
            target = ", ".join(f"{k} {v}" for k, v in (("group", d.get("group")), ("assignee", d.get("assignee"))) if v)
            return f"assign to {target}"
        if self.action == "set-priority":
            return f"set priority {d.get('priority')}"
        if self.action == "set-fields":
            return "set " + ", ".join(f"{k} = {v}" for k, v in sorted((d.get("fields") or {}).items()))
        if self.action in ("add-label", "remove-label"):
            return f"{'add' if self.action == 'add-label' else 'remove'} label {d.get('label')}"
        return self.action

    def as_json(self) -> dict[str, Any]:
        return {
            "platform": self.platform, "ticket_id": self.ticket_id, "ticket_key": self.ticket_key, "rule": self.rule,
            "action": self.action, "marker": self.marker, "details": self.details, "reason": self.reason,
            "first_seen": self.first_seen.isoformat(), "last_seen": self.last_seen.isoformat(), "times": self.times,
            "fingerprint": self.fingerprint,
        }


def details(action) -> dict[str, Any]:
    """What the action would write: its own fields minus rule, reason and type (JSON-safe)."""
    return action.model_dump(mode="json", exclude={"rule", "reason", "type"})


def _identity(action) -> Any:
    if isinstance(action, AddComment):
        return action.marker or hashlib.sha256(action.body.encode()).hexdigest()
    if isinstance(action, (AddLabel, RemoveLabel)):
        return action.label
    if isinstance(action, Transition):
        return str(action.to)
    if isinstance(action, Assign):
        return [action.group, action.assignee]
    if isinstance(action, SetPriority):
        return action.priority
    if isinstance(action, SetFields):
        # Field names, not values: a due date recomputed on every reconcile is the same
        # action, shown with its latest value.
        return sorted(action.fields)
    return details(action)


def fingerprint(platform: str, ticket_id: str, action) -> str:
    key = [platform, str(ticket_id), action.rule, action.type, _identity(action)]
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]


def observation(ticket: Ticket, action, now: datetime) -> Observation:
    """A fresh record of `action` on `ticket` at `now` (the store keeps the first one's `first_seen`)."""
    return Observation(
        fingerprint=fingerprint(ticket.platform, ticket.id, action), platform=ticket.platform,
        ticket_id=str(ticket.id), ticket_key=ticket.key, rule=action.rule, action=action.type,
        marker=getattr(action, "marker", None) or (action.label if isinstance(action, AddLabel) else None),
        details=details(action), reason=action.reason, first_seen=now, last_seen=now,
    )
