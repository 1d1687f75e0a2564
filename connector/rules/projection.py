"""What a ticket looks like once a plan's actions are applied, without touching any platform.

The engine projects each rule's actions before the next rule runs (so one reconcile can move
a completed intake on and route it in one plan), and tests use the same projection to prove
idempotence: apply a plan, evaluate again, get nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from connector.model import (
    AddComment, AddLabel, Assign, AuthorRole, Comment, DONE_STATUSES, RemoveLabel, SetFields,
    SetPriority, StatusChange, Ticket, Transition, replaced, trusted,
)


def project(ticket: Ticket, actions: Iterable, now: datetime) -> Ticket:
    """Return a copy of `ticket` as it will read after `actions` are written at `now`."""
    actions = list(actions)
    if not actions:
        return ticket
    labels = set(ticket.labels)
    fields = dict(ticket.fields)
    comments = list(ticket.comments)
    history = list(ticket.status_history)
    marker_times = None
    changes: dict = {}
    for action in actions:
        if isinstance(action, AddLabel):
            labels.add(action.label)
        elif isinstance(action, RemoveLabel):
            labels.discard(action.label)
        elif isinstance(action, SetFields):
            fields.update(action.fields)
        elif isinstance(action, AddComment):
            # Every value is already valid (the action's own, the engine's instant): no validation.
            comments.append(trusted(Comment, id=f"projected-{len(comments) + 1}", author=None,
                                    author_role=AuthorRole.CONNECTOR, public=action.public,
                                    body=action.body, created=now))
            if action.marker:
                labels.add(action.marker)
                # The platform dates the marker by this write (the escalation response clock).
                if action.marker not in ticket.marker_times:
                    marker_times = marker_times or dict(ticket.marker_times)
                    marker_times.setdefault(action.marker, now)
        elif isinstance(action, Transition):
            current = changes.get("status", ticket.status)
            if action.to != current:
                history.append(trusted(StatusChange, at=now, from_status=current, to_status=action.to))
                changes["status"] = action.to
                changes["raw_status"] = None
                changes["status_equivalents"] = frozenset()
                changes["resolved"] = now if action.to in DONE_STATUSES else None
        elif isinstance(action, Assign):
            if action.group is not None:
                changes["group"] = action.group
            if action.assignee is not None:
                changes["assignee"] = action.assignee
        elif isinstance(action, SetPriority):
            changes["priority"] = action.priority
    if marker_times is not None:
        changes["marker_times"] = marker_times
    # A shallow copy: the ticket's own tuples and sets are never mutated, only replaced.
    return replaced(
        ticket, **changes, labels=frozenset(labels), fields=fields, comments=tuple(comments),
        status_history=tuple(history), updated=now,
    )
