"""Writing a plan to Zendesk: ONE safe ticket update (two at most) – nothing for a no-op.

`apply` sends nothing for a plan the ticket already shows. Otherwise ONE
`PUT /api/v2/tickets/{id}.json` carries status, priority, group, assignee, custom fields,
tag changes and the comment, so a one-time comment and the marker tag that records it
land together or not at all (`update.py`: one comment per update, the whole tag list).
Every update is a safe update (`safe_update` + `updated_stamp` = the fetched
`updated_at`): if anyone changed the ticket since the fetch (an agent adding a tag, say),
Zendesk answers 409 and `Conflict` is raised, so reconcile re-reads and re-plans instead
of writing the old list over the new one.

- A 422 on an update: "Status: closed prevents ticket update" means Zendesk closed the
  ticket since the read (its auto-close automation) – `StaleTicket`, re-read and re-plan;
  any other 422 on an update that moves the status (a field required to solve is empty)
  makes the adapter resend the update once without the status, so the comment and markers
  land, and report the refused status by name (`ApplyResult.refused`, metric); the refusal
  is remembered against the ticket's stamp, so an unchanged ticket is not asked again.
- A closed ticket is never updated: `follow_up.py`.
- Zendesk limits updates of one ticket to 30 per 10 minutes; when a plan would exceed the
  limit (`client.UpdateLimiter`), `RateLimited` is raised with the wait, without writing.
- Impossible actions are warnings, not failures: a field the account does not have, a
  dropdown value that is not one of its options, a group with no id, a move back to "new",
  fields, status or tags for a closed ticket.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from connector.model import Action, AddComment, Assign, Plan, SetFields, SetPriority, Ticket, Transition
from connector.platforms import writes
from connector.platforms.base import ApplyResult, RateLimited, SkippedAction, StaleTicket
from connector.platforms.labels import LabelChanges
from connector.platforms.mapping import PlatformMapping
from connector.platforms.memory import BoundedMemory
from connector.platforms.zendesk.client import PLATFORM, RecordInvalid, ZendeskClient, ticket_ref
from connector.platforms.zendesk.fields import FieldResolutionError, format_value, resolve_target, zendesk_datetime
from connector.platforms.zendesk.follow_up import apply_to_closed
from connector.platforms.zendesk.update import CommentGroup, Update, updated_at, updates_for

log = logging.getLogger(__name__)

# Refused status moves remembered (per ticket); a worker sees every ticket of an account.
REFUSAL_MEMORY_SIZE = 10_000


class TicketWriter:
    """Applies plans to tickets, and remembers the status moves Zendesk refused."""

    def __init__(self, client: ZendeskClient, mapping: PlatformMapping) -> None:
        self._client = client
        self._mapping = mapping
        # Status moves Zendesk refused (422), by ticket: (stamp after our write, status, reason).
        self._refused_statuses: BoundedMemory[str, tuple[str, str, str]] = BoundedMemory(REFUSAL_MEMORY_SIZE)
        self._pending_refusals: BoundedMemory[str, tuple[str, str]] = BoundedMemory(REFUSAL_MEMORY_SIZE)

    def apply(self, ticket: Ticket, plan: Plan) -> ApplyResult:
        """Write what `plan` asks and `ticket` does not already show, in one update (two at most)."""
        writes.check_plan_target(ticket, plan)
        result = ApplyResult()
        groups = self._plan_comments(ticket, plan, result)
        pinned = frozenset(marker for group in groups for marker in group.markers)
        tags = LabelChanges(ticket.labels, noun="tag", pinned=pinned)
        first = Update()

        def set_priority(action: SetPriority) -> None:
            first.attributes["priority"] = self._mapping.write_priorities[action.priority]

        carried, transition = writes.walk_plan(
            ticket, plan, result, tags,
            fields=lambda action: self._plan_fields(ticket, action, first, result),
            priority=set_priority,
            assign=lambda action: self._plan_assign(ticket, action, first, result),
        )
        first.carried.extend(carried)
        if transition is not None and self._plan_transition(ticket, transition, first, result):
            first.carried.append(transition)
        changes = tags.changes()
        first.add_tags = [tag for tag, added in changes if added]
        first.remove_tags = [tag for tag, added in changes if not added]
        first.carried.extend(tags.carried(result))

        updates = updates_for(first, groups)
        if not updates:
            return result
        order = writes.plan_order(plan)
        if (ticket.raw_status or "").casefold() == "closed":
            return apply_to_closed(self._client, self._mapping, ticket, updates, groups, result, order)

        ref = ticket_ref(ticket.id)
        wait = self._client.updates.wait_needed(ref, len(updates))
        if wait > 0:
            log.warning(
                "zendesk.ticket_update_limit",
                extra={"platform": PLATFORM, "ticket": ticket.key, "updates": len(updates), "retry_after": round(wait, 1)},
            )
            raise RateLimited(
                f"ticket #{ref} reached Zendesk's limit of updates per ticket; next slot in {wait:.0f}s",
                retry_after=wait,
                platform=PLATFORM,
            )

        stamp = zendesk_datetime(ticket.updated) if ticket.updated is not None else None
        current_tags = sorted(ticket.labels)
        self._pending_refusals.pop(ref)
        for update in updates:
            sent = self._send_update(ticket, ref, update, stamp, current_tags, result)
            if sent is None:  # only a refused status was left to send
                continue
            path, answer = sent
            result.writes.append(f"PUT /api/v2/{path}")
            result.applied.extend(sorted(update.carried, key=lambda action: order[id(action)]))
            _check_tags(ticket, answer, update, result)
            stamp = updated_at(answer) or stamp
            shown = answer.get("ticket")
            if isinstance(shown, Mapping) and isinstance(shown.get("tags"), list):
                current_tags = [str(tag) for tag in shown["tags"]]
            else:
                current_tags = update.tags(current_tags)
        self._remember_refusal(ref, stamp)

        writes.log_applied(log, PLATFORM, ticket, result)
        return result

    def _send_update(self, ticket: Ticket, ref: str, update: Update, stamp: str | None,
                     current_tags: Sequence[str], result: ApplyResult) -> tuple[str, dict[str, Any]] | None:
        """One safe update; a 422 is a re-plan (ticket closed meanwhile) or a refused status.

        - "Status: closed prevents ticket update": Zendesk closed the ticket since our read
          (the auto-close automation, typically 4 days after solving). Nothing of the update
          landed; `StaleTicket` makes reconcile re-read, and the plan for a closed ticket puts
          the comment on a follow-up ticket instead.
        - Any other 422 on an update that changes the status (a field required to solve is
          empty, a solve without assignee): the same update is sent ONCE more without the
          status, so the comment and markers that rode with it still land; the refused status
          is reported. If that fails too, the status was not the problem and the error stands.
        """
        try:
            return self._client.update_ticket(ref, update.body(stamp, current_tags), idempotent=update.idempotent)
        except RecordInvalid as exc:
            if exc.ticket_closed:
                log.info("zendesk.ticket_closed_meanwhile", extra={"platform": PLATFORM, "ticket": ticket.key})
                raise StaleTicket(f"ticket #{ref} was closed since it was read; re-read and re-plan",
                                  platform=PLATFORM, status=422) from None
            if "status" not in update.attributes:
                raise
            refused_status = update.attributes.pop("status")
            named = exc.named_fields()
            self._refuse_status(ticket, ref, update, refused_status, named, result)
            if update.empty:
                return None
            return self._client.update_ticket(ref, update.body(stamp, current_tags), idempotent=update.idempotent)

    def _refuse_status(self, ticket: Ticket, ref: str, update: Update, status: str, named: list[str],
                       result: ApplyResult) -> None:
        reason = f"Zendesk refused status {status!r}: {'; '.join(named) or 'no reason given'}"
        log.warning("zendesk.status_refused", extra={"platform": PLATFORM, "ticket": ticket.key, "status": status,
                                                      "fields": named})
        writes.record_refusal(result, PLATFORM, "status", reason)
        for action in [a for a in update.carried if isinstance(a, Transition)]:
            update.carried.remove(action)
            result.skipped.append(SkippedAction(action, reason))
        self._pending_refusals.put(ref, (status, reason))

    def _remember_refusal(self, ref: str, stamp: str | None) -> None:
        """Tie a refused status to the ticket's stamp after our writes: until someone changes
        the ticket (a human filling the required field moves `updated_at`), the same move is
        not sent again – so nothing loops on a refusal."""
        pending = self._pending_refusals.pop(ref)
        if pending is not None and stamp is not None:
            self._refused_statuses.put(ref, (stamp, *pending))

    def _plan_comments(self, ticket: Ticket, plan: Plan, result: ApplyResult) -> list[CommentGroup]:
        """The plan's comments grouped by visibility (first seen first), duplicates skipped."""
        groups: list[CommentGroup] = []
        markers: set[str] = set()
        for action in plan.actions:
            if not isinstance(action, AddComment):
                continue
            if writes.comment_recorded(action, result, recorded=ticket.labels, planned=markers, scope="update"):
                continue
            if action.marker is not None:
                markers.add(action.marker)
            group = next((g for g in groups if g.public == action.public), None)
            if group is None:
                group = CommentGroup(public=action.public)
                groups.append(group)
            group.bodies.append(action.body)
            group.actions.append(action)
            if action.marker is not None:
                group.markers.append(action.marker)
        return groups

    def _plan_fields(self, ticket: Ticket, action: SetFields, update: Update, result: ApplyResult) -> bool:
        changes = writes.field_changes(ticket, action, self._mapping, result,
                                lambda ref, value: self._format(ref, value, action, result), compare_shaped=True)
        for target, value in changes:
            update.put(target, value)
        return bool(changes)

    def _plan_assign(self, ticket: Ticket, action: Assign, update: Update, result: ApplyResult) -> bool:
        def group(name: str) -> bool:
            value = self._mapping.group_value(name)
            if self._mapping.group_field == "group_id" and not value.strip().isdigit():
                writes.warn(log, PLATFORM, result, action, "zendesk.group_unmapped",
                     f"group {name!r} has no Zendesk group id in the mapping's groups")
                return False
            formatted = self._format(self._mapping.group_field, value, action, result, what=f"group {name!r}")
            if formatted is writes.UNWRITABLE:
                return False
            update.put(*formatted)
            return True

        def assignee(user: str) -> bool:
            user = user.strip()
            if writes.assignee_unchanged(ticket, action, user, result):
                return False
            if user.isdigit():
                update.attributes["assignee_id"] = int(user)
            elif "@" in user:
                # Zendesk resolves an agent by e-mail itself; no user lookup request needed.
                update.attributes["assignee_email"] = user
            else:
                writes.warn(log, PLATFORM, result, action, "zendesk.assignee_invalid",
                     "the assignee must be a Zendesk user id or an e-mail")
                return False
            return True

        aliases = [self._mapping.group_name(self._mapping.group_value(action.group))] if action.group is not None else []
        return writes.plan_assignment(ticket, action, result, group=group, assignee=assignee, group_aliases=aliases)

    def _plan_transition(self, ticket: Ticket, action: Transition, update: Update, result: ApplyResult) -> bool:
        target = self._mapping.write_statuses[action.to]
        if writes.status_reached(ticket, action, target, result):
            return False
        if target.casefold() == "new":
            writes.warn(log, PLATFORM, result, action, "zendesk.transition_unavailable",
                 f"Zendesk cannot move a ticket from {ticket.raw_status!r} back to {target!r}", to_status=target)
            return False
        remembered = self._refused_statuses.get(ticket_ref(ticket.id))
        stamp = zendesk_datetime(ticket.updated) if ticket.updated is not None else None
        if remembered is not None and remembered[0] == stamp and remembered[1] == target:
            # Refused on this very version of the ticket: sending it again would fail the same way.
            reason = remembered[2]
            result.skipped.append(SkippedAction(action, reason))
            result.refused.append(reason)
            result.warnings.append(reason)
            return False
        update.attributes["status"] = target
        return True

    def _format(self, ref: str, value: Any, action: Action, result: ApplyResult, *, what: str | None = None) -> Any:
        """(target, value in Zendesk's shape), or writes.UNWRITABLE after recording why."""
        try:
            target = resolve_target(ref, self._client.catalogue)
        except FieldResolutionError as exc:
            writes.warn(log, PLATFORM, result, action, "zendesk.field_unresolved", str(exc), field=ref)
            return writes.UNWRITABLE
        try:
            return target, format_value(target, value)
        except (TypeError, ValueError) as exc:
            subject = what or f"field {target.name!r}"
            reason = f"value for {subject} cannot be written: {exc}"
            writes.warn(log, PLATFORM, result, action, "zendesk.field_value_invalid", reason, field=target.name)
            return writes.UNWRITABLE



def _check_tags(ticket: Ticket, answer: Mapping[str, Any], update: Update, result: ApplyResult) -> None:
    """Warn when the answer shows a tag change did not land (Zendesk ignores what it does not accept).

    A marker that silently failed to land would let its comment be posted again on every
    reconcile, so this is checked on the answer the update returns anyway.
    """
    shown = answer.get("ticket")
    tags = shown.get("tags") if isinstance(shown, Mapping) else None
    if not isinstance(tags, list):
        return
    now = {str(tag) for tag in tags}
    missing = [tag for tag in update.add_tags if tag not in now]
    kept = [tag for tag in update.remove_tags if tag in now]
    if missing or kept:
        log.error(
            "zendesk.tags_not_applied",
            extra={"platform": PLATFORM, "ticket": ticket.key, "missing": missing, "not_removed": kept},
        )
        result.warnings.append(
            f"Zendesk did not apply tag changes: missing {missing}, not removed {kept}"
        )
