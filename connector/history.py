"""A ticket as it stood at an instant: its status, priority and record cut at `at`.

`connector simulate --now` in the past, every SLA clock (`connector.sla` asks for the status
at an instant) and the review report (tickets as they stood at the period's end) read a
ticket's past from the platform's own dated records – the status history, the priority
changes, the comments – never from today's values, so a ticket resolved the next day shows
its resolution clock running at a moment it was still open. Apart from `connector.model`
because the model says what a ticket is, this module what it was.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connector.model import AuthorRole, Comment, DONE_STATUSES, Priority, Status, Ticket, replaced

def status_at(ticket: Ticket, at: datetime) -> Status:
    """The ticket's status at `at` (a change made exactly at `at` counts).

    Before its first recorded change a ticket had that change's `from_status`; with no
    `from_status` (a history that starts mid-way) it was new. With no history at all the
    current status is all the platform tells.
    """
    # A stable sort keeps the platform's order for changes made in the same instant.
    history = sorted(ticket.status_history, key=lambda c: c.at)
    past = [c for c in history if c.at <= at]
    if past:
        return past[-1].to_status
    if history and history[0].from_status:
        return history[0].from_status
    return ticket.status if not history else Status.NEW


def priority_at(ticket: Ticket, at: datetime) -> Priority | None:
    """The ticket's priority at `at` from its dated priority changes (one made at `at` counts);
    before the first, that change's previous value; with none, the current priority."""
    history = sorted(ticket.priority_history, key=lambda c: c.at)
    past = [c for c in history if c.at <= at]
    if past:
        return past[-1].to_priority
    return history[0].from_priority if history else ticket.priority


def ticket_as_of(ticket: Ticket, at: datetime) -> Ticket:
    """The ticket as it stood at `at`, as far as the platform's timestamped records tell.

    Those records are the status history (Jira: the changelog's `histories[].created`;
    Zendesk: the audits, "a read-only history of all updates to a ticket", each with its
    `created_at`, https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_audits/)
    and the comments' `created`.

    Rewound: status history and comments (later ones dropped), the status (the last
    change made by `at`, see `status_at`), `resolved` (the last entry into
    resolved/closed by `at` if the ticket was resolved then, else none), `updated` (the
    last record kept, if the current one is later), comment markers (only those of the
    comments kept; a marker label whose connector comment was posted after `at` is dropped
    too), the priority (from `priority_history`, when the platform's record of it was
    read); the raw status (with `status_equivalents`) and the raw priority are dropped when
    the value at `at` differs from the current one (they describe the current one). Not
    rewound, because the ticket carries no dated history of them: fields, other
    labels/tags, assignee, group, summary and description – they are the current values.
    The same ticket object comes back when nothing postdates `at` and the status agrees
    with the history (no copy).
    """
    history = ticket.status_history
    comments = ticket.comments
    later_change = any(c.at > at for c in history)
    later_comment = any(c.created > at for c in comments)
    # The history decides the status whenever there is one (as the SLA clocks read it);
    # with none, the current status is all the platform tells.
    status = status_at(ticket, at) if history else ticket.status
    later_stamp = (ticket.resolved is not None and ticket.resolved > at) or (
        ticket.updated is not None and ticket.updated > at)
    later_priority = any(c.at > at for c in ticket.priority_history)
    later_marks = {m for m, when in ticket.marker_times.items() if when > at}
    if not (later_change or later_comment or later_stamp or later_priority or later_marks
            or status != ticket.status):
        return ticket
    update: dict[str, Any] = {}
    if later_marks:
        # A marker recorded after `at` had not been recorded yet (nor its tag/label).
        update["marker_times"] = {m: w for m, w in ticket.marker_times.items() if m not in later_marks}
        update["labels"] = ticket.labels - later_marks
        update["comment_markers"] = ticket.comment_markers - later_marks
    if later_priority:
        priority = priority_at(ticket, at)
        update["priority_history"] = tuple(c for c in ticket.priority_history if c.at <= at)
        if priority != ticket.priority:
            update["priority"] = priority
            update["raw_priority"] = None  # names the current priority
    if later_change or status != ticket.status:
        update["status"] = status
        update["status_history"] = tuple(c for c in history if c.at <= at)
        if status != ticket.status:
            update["status_equivalents"] = frozenset()  # they describe the current raw status only
            update["raw_status"] = None
    if later_comment:
        kept = tuple(c for c in comments if c.created <= at)
        update["comments"] = kept
        from connector.platforms.comment_marker import carried_marker  # model stays import-free at load

        def carried(chosen: tuple[Comment, ...]) -> set[str | None]:
            return {carried_marker(c.body) for c in chosen if c.author_role == AuthorRole.CONNECTOR}

        # A one-time notice posted after `at` had not been posted: its marker (carried in the
        # comment on Jira, see `comment_marker`, and the label that mirrors it) goes with it.
        kept_markers = carried(kept)
        unsent = carried(tuple(c for c in comments if c.created > at)) - kept_markers - {None}
        markers_now = update.get("comment_markers", ticket.comment_markers)
        if markers_now:
            update["comment_markers"] = frozenset(m for m in markers_now if m in kept_markers)
        labels_now = update.get("labels", ticket.labels)
        if unsent & labels_now:
            update["labels"] = labels_now - unsent
    if later_change or (ticket.resolved is not None and ticket.resolved > at):
        update["resolved"] = _resolved_at(ticket, status, at)
    if ticket.updated is not None and ticket.updated > at:
        stamps = [ticket.created, *(c.at for c in history if c.at <= at), *(c.created for c in comments if c.created <= at),
                  *(c.at for c in ticket.priority_history if c.at <= at)]
        update["updated"] = max(s for s in stamps if s <= at) if any(s <= at for s in stamps) else ticket.created
    return replaced(ticket, **update)


def _resolved_at(ticket: Ticket, status: Status, at: datetime) -> datetime | None:
    """When the ticket was resolved as it stood at `at`: its last entry from an open status
    into resolved/closed made by then; None when it was open then.

    Jira's own resolution date is "the latest date that the Resolution field was set to a
    value" (http://jiradev.blogspot.com/2010/11/resolved-resolution-and-resolution-date.html),
    a field change the status history does not carry; Zendesk's ticket has no solved time
    at all (its audits say when it got there). The status history is the record both have,
    so resolved → closed keeps the time the ticket left the open statuses."""
    if status not in DONE_STATUSES:
        return None
    entered = None
    for change in sorted(ticket.status_history, key=lambda c: c.at):
        if change.at > at:
            break
        if change.to_status in DONE_STATUSES and change.from_status not in DONE_STATUSES:
            entered = change.at
    if entered is None:  # done since before its recorded history: the platform's own stamp, if it was by then
        return ticket.resolved if ticket.resolved is not None and ticket.resolved <= at else None
    return entered
