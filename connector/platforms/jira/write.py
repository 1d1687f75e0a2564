"""Writing a plan to Jira: a comment post each, ONE edit, a transition – nothing for a no-op.

`apply` sends nothing for a plan the ticket already shows (marker present, field equal,
priority equal, status reached). Otherwise, in this order:

1. each comment is `POST /rest/api/2/issue/{key}/comment` – the documented way, and the
   only one that works on a status whose workflow property `jira.issue.editable` is false
   (Closed, in stock workflows): commenting is a permission of its own there. Internal
   notes carry the property `sd.public.comment = {"internal": true}` (pycontribs/jira#313,
   jenkinsci/jira-plugin#375; what the library's `add_comment(is_internal=True)` sends).
   Atlassian's Comment schema documents `jsdPublic` ("Defaults to true when comments are
   created in the Jira Cloud Platform") and points at the Service Management API
   (`POST /rest/servicedeskapi/request/{key}/comment`, `"public": false`) for internal
   ones; the property is used instead because it needs no second API, no Service
   Management permission scheme and works on Cloud and Data Center alike, and it fails
   closed all the same: Jira Cloud answers with `jsdPublic`, and a note that landed
   public is deleted at once (`DELETE …/comment/{id}`) and reported. (A property inside an
   edit's `update.comment` is documented nowhere and is not used.)
   A one-time comment carries its marker as a last line (`ref: <marker>`, see
   `comment_marker`), so it records itself the moment it lands: a crash, a lost answer or
   a refused edit afterwards cannot make it repeat; the parser reads markers only from
   the connector account's own comments.
2. ONE `PUT /rest/api/2/issue/{key}` with the field values and label changes that
   `editmeta` lists, plus the marker labels of the comments just posted (agents search
   by label) and of markers only a comment shows (a crash between 1 and 2). Fields the
   screen or status does not allow are not sent: they are reported (`ApplyResult.refused`,
   the `jira.write_refused` event, `connector_writes_refused_total`) and, since the next
   read's editmeta says the same, never resent. If the edit still answers 400 naming
   fields (the screen changed since the read, or the ticket came without editmeta), those
   are dropped and reported and the rest is sent once more.
3. the transition (`transition.py`).

A plan with a comment and a marker therefore costs one request more than when comment
and label shared the edit (comment POST + label PUT).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from connector.model import Action, AddComment, Assign, Plan, SetFields, SetPriority, Ticket
from connector.platforms import writes
from connector.platforms.base import ApplyResult, BadRequest, PlatformError, SkippedAction, Unauthorized
from connector.platforms.comment_marker import with_marker
from connector.platforms.jira.client import PLATFORM, JiraClient, issue_ref
from connector.platforms.jira.fields import FieldResolutionError, format_field_value
from connector.platforms.jira.transition import TransitionWriter
from connector.platforms.jira.workflow import FetchMemory
from connector.platforms.labels import LabelChanges
from connector.platforms.mapping import PlatformMapping
from connector.platforms.memory import BoundedMemory

log = logging.getLogger(__name__)



@dataclass
class Edit:
    """Collects one plan's field values and label operations into one `PUT /issue/{key}`.

    Comments are not part of it: they are posted first, through the comment endpoint."""

    fields: dict[str, Any]
    labels: list[dict[str, str]]
    # field id (or "labels") -> the plan's actions that write it, to report a refusal by rule.
    owners: dict[str, list[Action]] = dataclass_field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.fields or self.labels)

    def set(self, field_id: str, value: Any, action: Action) -> None:
        self.fields[field_id] = value
        owners = self.owners.setdefault(field_id, [])
        if not any(owner is action for owner in owners):
            owners.append(action)

    def alive(self, action: Action) -> bool:
        """True while some write of `action` is still in the edit."""
        written = set(self.fields) | ({"labels"} if self.labels else set())
        owned = {key for key, owners in self.owners.items() if any(owner is action for owner in owners)}
        return bool(owned & written) or not owned

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.fields:
            body["fields"] = self.fields
        if self.labels:
            body["update"] = {"labels": self.labels}
        return body


class IssueWriter:
    """Applies plans to issues fetched through the same `FetchMemory`."""

    def __init__(self, client: JiraClient, mapping: PlatformMapping, fetched: FetchMemory) -> None:
        self._client = client
        self._mapping = mapping
        self._fetched = fetched
        self._transitions = TransitionWriter(client, mapping)
        # (ticket id, marker) of comments Jira refused in this process: not resent (bounded).
        self._refused_comments: BoundedMemory[tuple[str, str], bool] = BoundedMemory()

    def apply(self, ticket: Ticket, plan: Plan) -> ApplyResult:
        """Write what `plan` asks and `ticket` does not already show.

        Order: each comment is posted first (it carries its own marker, so it is recorded
        the moment it lands), then one edit with the fields and labels the edit screen
        allows (marker labels included, for searchability), then the transition.
        """
        writes.check_plan_target(ticket, plan)
        result = ApplyResult()
        workflow, editmeta = self._fetched.take(ticket.id)
        edit = Edit(fields={}, labels=[])
        labels = LabelChanges(ticket.labels, noun="label")
        comments: list[AddComment] = []

        def set_priority(action: SetPriority) -> None:
            edit.set("priority", {"name": self._mapping.write_priorities[action.priority]}, action)

        carried, transition = writes.walk_plan(
            ticket, plan, result, labels,
            comment=lambda action: self._plan_comment(ticket, action, comments, result),
            fields=lambda action: self._plan_fields(ticket, action, edit, result),
            priority=set_priority,
            assign=lambda action: self._plan_assign(ticket, action, edit, result),
        )

        for comment in comments:
            recorded = self._post_comment(ticket, comment, result)
            if recorded and comment.marker is not None:
                labels.pin(comment.marker)

        edit.labels = [{"add" if added else "remove": label} for label, added in labels.changes()]
        for action in labels.carried(result):
            edit.owners.setdefault("labels", []).append(action)
            carried.append(action)
        self._send_edit(ticket, edit, editmeta, carried, result)
        order = writes.plan_order(plan)
        result.applied.sort(key=lambda action: order.get(id(action), len(order)))

        if transition is not None:
            self._transitions.apply(ticket, transition, workflow, result)

        if result.writes:
            writes.log_applied(log, PLATFORM, ticket, result)
        return result

    def _plan_comment(
        self, ticket: Ticket, action: AddComment, comments: list[AddComment], result: ApplyResult
    ) -> None:
        # Labels and the markers the connector's own comments carry both count: after a
        # crash between the comment and the edit, only the comment shows the marker.
        planned = [comment.marker for comment in comments if comment.marker]
        if writes.comment_recorded(action, result, recorded=ticket.markers, planned=planned):
            return
        if action.marker is not None and (ticket.id, action.marker) in self._refused_comments:
            result.skipped.append(
                SkippedAction(action, f"Jira refused this comment before (marker {action.marker!r}); not resent")
            )
            return
        comments.append(action)

    def _post_comment(self, ticket: Ticket, action: AddComment, result: ApplyResult) -> bool:
        """Post one comment through the comment endpoint; True when it is now on the ticket
        as asked (or was refused for good, which its marker label may then record).

        An internal note carries `sd.public.comment = {"internal": true}` (what the `jira`
        library's `add_comment(is_internal=True)` sends). Jira Cloud answers with `jsdPublic`:
        a note that landed public anyway (a project without Service Management, a site that
        ignores the property) is deleted again at once and reported – an internal note is
        never left where a customer can read it.
        """
        key = issue_ref(ticket.key)
        body = with_marker(action.body, action.marker) if action.marker else action.body
        internal = not action.public
        path = f"issue/{key}/comment"
        try:
            # Not idempotent: a resent POST may add the comment twice. If the answer is lost,
            # the next reconcile sees the marker in the comment and does not post again.
            answer = self._client.add_comment(key, body, internal=internal)
        except (BadRequest, Unauthorized) as exc:
            if isinstance(exc, Unauthorized) and exc.status != 403:
                raise  # 401: credentials, not this comment
            self._refuse_comment(ticket, action, f"Jira refused the comment ({exc.status}): {exc.message}", result)
            return action.marker is not None
        result.writes.append(f"POST /rest/api/2/{path}")
        if internal and answer.get("jsdPublic") is True:
            self._withdraw_public_note(ticket, action, str(answer.get("id")), result)
            return action.marker is not None
        result.applied.append(action)
        return True

    def _withdraw_public_note(self, ticket: Ticket, action: AddComment, comment_id: str, result: ApplyResult) -> None:
        reason = (
            f"internal note could not be written as internal on {ticket.key} (Jira made it public: is the "
            "project a Jira Service Management project?)"
        )
        try:
            path = self._client.delete_comment(issue_ref(ticket.key), comment_id)
        except PlatformError as exc:
            reason += f"; deleting it failed ({exc}): delete comment {comment_id} by hand"
            log.error("jira.internal_note_left_public",
                      extra={"platform": PLATFORM, "ticket": ticket.key, "comment": comment_id, "rule": action.rule})
        else:
            result.writes.append(f"DELETE /rest/api/2/{path}")
            reason += "; it was deleted again"
        self._refuse_comment(ticket, action, reason, result)

    def _refuse_comment(self, ticket: Ticket, action: AddComment, reason: str, result: ApplyResult) -> None:
        if action.marker is not None:
            self._refused_comments.put((ticket.id, action.marker), True)
        self._refuse(result, action, "comment", reason, ticket=ticket.key, marker=action.marker)

    def _refuse(self, result: ApplyResult, action: Action | None, what: str, reason: str, **fields: Any) -> None:
        """A write Jira refuses and would refuse again: reported, counted, not resent."""
        log.warning("jira.write_refused", extra={"platform": PLATFORM, "what": what, "reason": reason,
                                                 "rule": action.rule if action else None, **fields})
        writes.record_refusal(result, PLATFORM, what, reason, action)

    def _send_edit(
        self,
        ticket: Ticket,
        edit: Edit,
        editmeta: dict[str, Any] | None,
        carried: list[Action],
        result: ApplyResult,
    ) -> None:
        """The one edit, with only what the edit screen allows; a stale screen is retried once."""
        if edit.empty:
            return
        if editmeta is not None:
            self._drop_uneditable(ticket, edit, set(editmeta), carried, result, _screen_reason(ticket, editmeta))
            if edit.empty:
                return
        # Markers that only a connector comment shows (the process stopped between the
        # comment and this edit) get their label now, since an edit goes out anyway.
        if editmeta is None or "labels" in editmeta:
            pending = {op.get("add") for op in edit.labels}
            for marker in sorted(ticket.comment_markers - ticket.labels - pending):
                edit.labels.append({"add": marker})
        key = issue_ref(ticket.key)
        for attempt in (1, 2):
            body = edit.body()
            try:
                path = self._client.edit_issue(key, body)
            except BadRequest as exc:
                # Bound to plain names: the reasons below are built after `exc` is unbound.
                message = exc.message
                errors = getattr(exc, "field_errors", {}) or {}
                named = set(errors) & (set(edit.fields) | {"labels"})
                if attempt == 1 and named:
                    # The screen changed since the read (or the ticket came without editmeta):
                    # drop what Jira named, report it, send the rest once more.
                    self._drop_uneditable(
                        ticket, edit, (set(edit.fields) | {"labels"}) - named, carried, result,
                        lambda field_id: f"Jira refused it: {errors.get(field_id, message)}",
                    )
                    if edit.empty:
                        return
                    continue
                # The edit as a whole is refused (e.g. the status allows no edits): report
                # every part of it; the next read's editmeta keeps them from being resent.
                self._drop_uneditable(ticket, edit, set(), carried, result,
                                      lambda field_id: f"Jira refused the edit: {message}")
                return
            result.writes.append(f"PUT /rest/api/2/{path}")
            result.applied.extend(action for action in carried if edit.alive(action))
            return

    def _drop_uneditable(
        self,
        ticket: Ticket,
        edit: Edit,
        editable: set[str],
        carried: list[Action],
        result: ApplyResult,
        why: Callable[[str], str],
    ) -> None:
        """Remove from `edit` every field (and the labels) not in `editable`, reporting each
        with the rules that asked for it."""
        dropped = [field_id for field_id in edit.fields if field_id not in editable]
        if edit.labels and "labels" not in editable:
            dropped.append("labels")
        names = self._client.known_field_names() or {}
        for field_id in dropped:
            if field_id == "labels":
                edit.labels = []
            else:
                del edit.fields[field_id]
            owners = edit.owners.get(field_id, [])
            if field_id == "labels" and not owners:
                # Only marker labels of comments just posted: each comment carries its own
                # marker, so the label (kept for searching) is no loss worth a report.
                continue
            what = "labels" if field_id == "labels" else "field"
            subject = "labels" if what == "labels" else f"field {names.get(field_id, field_id)!r} ({field_id})"
            reason = f"{ticket.key}: {subject} not written – {why(field_id)}"
            self._refuse(result, owners[0] if owners else None, what, reason, ticket=ticket.key, field=field_id)
            for extra in owners[1:]:
                result.skipped.append(SkippedAction(extra, reason))
        carried[:] = [action for action in carried if edit.alive(action)]

    def _plan_fields(self, ticket: Ticket, action: SetFields, edit: Edit, result: ApplyResult) -> bool:
        changes = writes.field_changes(ticket, action, self._mapping, result,
                                lambda ref, value: self._format(ref, value, action, result), compare_shaped=False)
        for field_id, value in changes:
            edit.set(field_id, value, action)
        return bool(changes)

    def _plan_assign(self, ticket: Ticket, action: Assign, edit: Edit, result: ApplyResult) -> bool:
        def group(name: str) -> bool:
            formatted = self._format(self._mapping.group_field, self._mapping.group_value(name), action, result)
            if formatted is writes.UNWRITABLE:
                return False
            field_id, field_value = formatted
            edit.set(field_id, field_value, action)
            return True

        def assignee(user: str) -> bool:
            if writes.assignee_unchanged(ticket, action, user, result):
                return False
            edit.set("assignee", {"accountId" if self._client.is_cloud() else "name": user}, action)
            return True

        return writes.plan_assignment(ticket, action, result, group=group, assignee=assignee)

    def _format(self, ref: str, value: Any, action: Action, result: ApplyResult) -> Any:
        """(field id, value in Jira's shape), or writes.UNWRITABLE after recording why."""
        try:
            field = self._client.catalogue().resolve(ref)
        except FieldResolutionError as exc:
            writes.warn(log, PLATFORM, result, action, "jira.field_unresolved", str(exc), field=ref)
            return writes.UNWRITABLE
        # Only user values differ between Cloud and Data Center; ask which it is only then.
        holds_users = field.type == "user" or field.schema.get("items") == "user"
        cloud = self._client.is_cloud() if holds_users else True
        try:
            return field.id, format_field_value(field.schema, value, cloud=cloud)
        except (TypeError, ValueError) as exc:
            reason = f"value for field {field.name!r} ({field.type}) cannot be written: {exc}"
            writes.warn(log, PLATFORM, result, action, "jira.field_value_invalid", reason, field=field.id)
            return writes.UNWRITABLE



def _screen_reason(ticket: Ticket, editmeta: Mapping[str, Any]) -> Callable[[str], str]:
    if not editmeta:
        status = ticket.raw_status or ticket.status.value
        text = (f"status {status!r} allows no edits (workflow property jira.issue.editable=false, "
                "or the connector's account lacks Edit Issues)")
        return lambda field_id: text
    return lambda field_id: "not on the issue's edit screen (add it to the screen, or map another field)"
