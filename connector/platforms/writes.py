"""Turning a plan into writes: the steps every adapter takes the same way.

An adapter's `apply` sends nothing for what the ticket already shows and reports what it
cannot write instead of failing the plan. The walk over the plan (which action is
already done, which transition wins), the checks on comments that carry a marker, and how
a skipped, impossible or refused write is reported are the same on Jira and Zendesk, so
they live here once; the adapters' `write` modules only decide how a write looks on the
wire. What is reported where:

- skipped (`ApplyResult.skipped`): the action needs no write or cannot be written;
- warning (`ApplyResult.warnings`, a log event): an admin should look at it;
- refused (`ApplyResult.refused`, `connector_writes_refused_total`): the platform refused
  it and would refuse it again, so it is not resent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from connector.metrics import WRITES_REFUSED
from connector.model import (
    Action,
    AddComment,
    AddLabel,
    Assign,
    Plan,
    RemoveLabel,
    SetFields,
    SetPriority,
    Ticket,
    Transition,
)
from connector.platforms.base import ApplyResult, SkippedAction
from connector.platforms.field_values import already_equal
from connector.platforms.labels import LabelChanges
from connector.platforms.mapping import PlatformMapping

# What a value formatter returns for a value it recorded as impossible to write.
UNWRITABLE: Any = object()


def check_plan_target(ticket: Ticket, plan: Plan) -> None:
    """A plan is only ever applied to the ticket it was made for."""
    if plan.ticket_id not in (ticket.id, ticket.key):
        raise ValueError(f"plan for {plan.ticket_key} applied to ticket {ticket.key}")


def walk_plan(
    ticket: Ticket,
    plan: Plan,
    result: ApplyResult,
    labels: LabelChanges,
    *,
    fields: Callable[[SetFields], bool],
    priority: Callable[[SetPriority], None],
    assign: Callable[[Assign], bool],
    comment: Callable[[AddComment], None] | None = None,
) -> tuple[list[Action], Transition | None]:
    """Sort the plan's actions into writes, in plan order: (actions carried, the transition).

    Label changes go to `labels`; `fields` and `assign` say whether they wrote anything;
    a priority already set is skipped; of several transitions the last one wins. Comments
    go to `comment` (None: the adapter groups them itself).
    """
    carried: list[Action] = []
    transition: Transition | None = None
    for action in plan.actions:
        if isinstance(action, AddLabel):
            labels.add(action, action.label, result)
        elif isinstance(action, RemoveLabel):
            labels.remove(action, action.label, result)
        elif isinstance(action, AddComment):
            if comment is not None:
                comment(action)
        elif isinstance(action, SetFields):
            if fields(action):
                carried.append(action)
        elif isinstance(action, SetPriority):
            if ticket.priority == action.priority:
                result.skipped.append(SkippedAction(action, f"priority is already {action.priority}"))
            else:
                priority(action)
                carried.append(action)
        elif isinstance(action, Assign):
            if assign(action):
                carried.append(action)
        elif isinstance(action, Transition):
            if transition is not None:
                result.skipped.append(SkippedAction(transition, "superseded by a later transition in the plan"))
            transition = action
    return carried, transition


def plan_order(plan: Plan) -> Mapping[int, int]:
    """Position of each action (by identity) in the plan, to report applied actions in order."""
    return {id(action): index for index, action in enumerate(plan.actions)}


def field_changes(
    ticket: Ticket,
    action: SetFields,
    mapping: PlatformMapping,
    result: ApplyResult,
    shape: Callable[[str, Any], Any],
    *,
    compare_shaped: bool,
) -> list[tuple[Any, Any]]:
    """(where, value) for each field of `action` that changes the ticket; the rest is skipped.

    `shape(ref, value)` resolves the mapping's field reference and shapes the value for the
    platform (UNWRITABLE after recording why it cannot). Only logical fields are parsed
    into the ticket, so only they can be "already equal"; a raw id's value is unknown and
    is written. `compare_shaped` compares the shaped value (Zendesk: a dropdown's display
    name becomes its tag) instead of the rule's.
    """
    changes: list[tuple[Any, Any]] = []
    for name, value in action.fields.items():
        logical = name in mapping.fields
        current = ticket.fields.get(name)
        if logical and not compare_shaped and already_equal(current, value):
            result.skipped.append(SkippedAction(action, f"field {name!r} already holds that value"))
            continue
        shaped = shape(mapping.fields.get(name, name), value)
        if shaped is UNWRITABLE:
            continue
        where, written = shaped
        if logical and compare_shaped and already_equal(current, written):
            result.skipped.append(SkippedAction(action, f"field {name!r} already holds that value"))
            continue
        changes.append((where, written))
    return changes


def comment_recorded(action: AddComment, result: ApplyResult, *, recorded: Iterable[str],
                     planned: Iterable[str], scope: str = "plan") -> bool:
    """True (and the action skipped) when a one-time comment's marker says it is already on
    the ticket (`recorded`) or already part of this write (`planned`)."""
    if action.marker is None:
        return False
    if action.marker in recorded:
        result.skipped.append(SkippedAction(action, f"already posted (marker {action.marker!r} present)"))
        return True
    if action.marker in planned:
        result.skipped.append(SkippedAction(action, f"a comment with marker {action.marker!r} is already in this {scope}"))
        return True
    return False


def status_reached(ticket: Ticket, action: Transition, target: str, result: ApplyResult) -> bool:
    """True (and the transition skipped) when the ticket is already in the target status."""
    if ticket.is_in(action.to) or (ticket.raw_status or "").casefold() == target.casefold():
        result.skipped.append(SkippedAction(action, f"already in status {target!r}"))
        return True
    return False


def plan_assignment(
    ticket: Ticket,
    action: Assign,
    result: ApplyResult,
    *,
    group: Callable[[str], bool],
    assignee: Callable[[str], bool],
    group_aliases: Iterable[str | None] = (),
) -> bool:
    """Whether `action` writes anything: its group unless the ticket is in it already (by
    name, or by an alias such as the mapped id's name), then its assignee. `group` and
    `assignee` add the write and say whether they did."""
    if action.group is None and action.assignee is None:
        result.skipped.append(SkippedAction(action, "names neither a group nor an assignee"))
        return False
    written = False
    if action.group is not None:
        if ticket.group is not None and ticket.group in (action.group, *group_aliases):
            result.skipped.append(SkippedAction(action, f"group is already {action.group!r}"))
        elif group(action.group):
            written = True
    if action.assignee is not None and assignee(action.assignee):
        written = True
    return written


def assignee_unchanged(ticket: Ticket, action: Assign, assignee: str, result: ApplyResult) -> bool:
    if ticket.assignee == assignee:
        result.skipped.append(SkippedAction(action, "assignee is already set to that user"))
        return True
    return False


def log_applied(log: logging.Logger, platform: str, ticket: Ticket, result: ApplyResult) -> None:
    """The `<platform>.applied` event of an apply that wrote something (counts, no content)."""
    log.info(f"{platform}.applied", extra={
        "platform": platform,
        "ticket": ticket.key,
        "writes": len(result.writes),
        "actions": len(result.applied),
        "skipped": len(result.skipped),
        "refused": len(result.refused),
    })


def warn(log: logging.Logger, platform: str, result: ApplyResult, action: Action, event: str, reason: str,
         **fields: Any) -> None:
    """An action that cannot be written (a field the site lacks, a value it cannot take): an
    admin should look at the mapping or the rule; the rest of the plan goes on."""
    log.warning(event, extra={"platform": platform, "rule": action.rule, **fields})
    result.skipped.append(SkippedAction(action, reason))
    result.warnings.append(reason)


def record_refusal(result: ApplyResult, platform: str, what: str, reason: str,
                   action: Action | None = None) -> None:
    """A write the platform refused and would refuse again: counted, reported, not resent."""
    WRITES_REFUSED.labels(platform=platform, what=what).inc()
    if action is not None:
        result.skipped.append(SkippedAction(action, reason))
    result.warnings.append(reason)
    result.refused.append(reason)
