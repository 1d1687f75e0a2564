"""Writing to a closed Zendesk ticket: its comments go to a follow-up ticket, the rest is refused.

A closed ticket is immutable (Zendesk never lets a closed ticket change). Zendesk's way to
continue one is a new ticket with `via_followup_source_id` (POST /api/v2/tickets; Zendesk
"Creating and updating tickets" > "Creating a follow-up ticket"). It carries the comment
together with its marker tags, so it lands with its markers or not at all; `fetch` of the
closed ticket reads its follow-ups' tags, so the next reconcile sees the markers and never
creates a second follow-up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from connector.metrics import WRITES_REFUSED
from connector.model import Action, AddComment, AddLabel, RemoveLabel, Ticket, Transition
from connector.platforms.base import ApplyResult, HostError, SkippedAction
from connector.platforms.mapping import PlatformMapping
from connector.platforms.zendesk.client import PLATFORM, ZendeskClient, ticket_ref
from connector.platforms.zendesk.fields import FieldResolutionError, format_value, resolve_target
from connector.platforms.zendesk.update import CommentGroup, Update, updated_at

log = logging.getLogger(__name__)


def apply_to_closed(client: ZendeskClient, mapping: PlatformMapping, ticket: Ticket, updates: list[Update],
                    groups: list[CommentGroup], result: ApplyResult, order: Mapping[int, int]) -> ApplyResult:
    """The first comment group becomes a follow-up ticket, further groups updates of it."""
    reason = "Zendesk does not allow changes to a closed ticket"
    comment_actions = {id(action) for group in groups for action in group.actions}
    refused = [action for update in updates for action in update.carried if id(action) not in comment_actions]
    if refused:
        what = sorted({_refused_kind(action) for action in refused})
        log.warning("zendesk.ticket_closed", extra={"platform": PLATFORM, "ticket": ticket.key, "refused": what})
        for kind in what:
            WRITES_REFUSED.labels(platform=PLATFORM, what=kind).inc()
        result.skipped.extend(SkippedAction(action, reason) for action in refused)
        result.refused.append(f"status closed: {', '.join(what)} cannot be written to a closed ticket")
        result.warnings.append(reason)
    if not groups:
        return result
    source = ticket_ref(ticket.id)
    created = _create_follow_up(client, mapping, ticket, groups[0])
    result.writes.append("POST /api/v2/tickets.json")
    result.applied.extend(sorted(groups[0].actions, key=lambda action: order[id(action)]))
    follow_up = created.get("ticket") if isinstance(created.get("ticket"), Mapping) else {}
    new_ref = str(follow_up.get("id") or "")
    if not new_ref.isdigit():
        raise HostError("the follow-up ticket answer has no ticket id", platform=PLATFORM, retryable=False)
    log.info("zendesk.follow_up_created", extra={"platform": PLATFORM, "ticket": ticket.key,
                                                  "follow_up": f"#{new_ref}"})
    stamp = updated_at(created)
    current = [str(tag) for tag in follow_up.get("tags") or ()]
    for group in groups[1:]:
        update = Update(comment=group.comment(), add_tags=list(group.markers), carried=list(group.actions))
        path, answer = client.update_ticket(new_ref, update.body(stamp, current), idempotent=False)
        result.writes.append(f"PUT /api/v2/{path}")
        result.applied.extend(sorted(group.actions, key=lambda action: order[id(action)]))
        stamp = updated_at(answer) or stamp
    result.warnings.append(f"ticket {ticket.key} is closed: comments went to follow-up ticket #{new_ref} "
                           f"(via_followup_source_id {source})")
    return result

def _create_follow_up(client: ZendeskClient, mapping: PlatformMapping, ticket: Ticket,
                      group: CommentGroup) -> dict[str, Any]:
    """POST the follow-up of a closed ticket: its requester, assignee, group and subject (the
    API does not promise to copy them), its tags plus the comment's markers."""
    body: dict[str, Any] = {
        "via_followup_source_id": int(ticket_ref(ticket.id)),
        "subject": ticket.summary or f"Follow-up of {ticket.key}",
        "comment": group.comment(),
        # Naming tags replaces the inherited ones (Creating a follow-up ticket): keep them.
        "tags": sorted(set(ticket.labels) | set(group.markers)),
    }
    if ticket.raw_priority:
        body["priority"] = ticket.raw_priority
    for attribute, value in (("requester_id", ticket.reporter), ("assignee_id", ticket.assignee)):
        if value and str(value).isdigit():
            body[attribute] = int(value)
    if ticket.group and mapping.group_field == "group_id":
        group_id = mapping.group_value(ticket.group)
        if group_id.strip().isdigit():
            body["group_id"] = int(group_id)
    # The mapped fields too, so the rules read the follow-up as the same case (intake
    # complete, same category) rather than as a new ticket missing everything.
    copied = Update()
    values = [(mapping.fields[name], value) for name, value in ticket.fields.items()
              if name in mapping.fields]
    if ticket.category:
        values.append((mapping.category_field, ticket.category))
    for ref, value in values:
        try:
            target = resolve_target(ref, client.catalogue)
            formatted = format_value(target, value)
        except (FieldResolutionError, TypeError, ValueError):
            continue  # a value the parent holds but no update can write: the follow-up goes without
        if target.attribute in (None, "type", "priority", "due_at", "external_id"):
            copied.put(target, formatted)
    body.update(copied.attributes)
    if copied.custom_fields:
        body["custom_fields"] = [{"id": key, "value": value} for key, value in copied.custom_fields.items()]
    # Not idempotent: a resend after a lost answer could create a second follow-up.
    return client.create_ticket(body)


def _refused_kind(action: Action) -> str:
    """The WRITES_REFUSED `what` of an action that cannot land."""
    if isinstance(action, Transition):
        return "transition"
    if isinstance(action, (AddLabel, RemoveLabel)):
        return "tags"
    if isinstance(action, AddComment):
        return "comment"
    return "field"
