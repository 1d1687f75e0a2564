"""Running a Jira workflow transition: picked by its target status, its screen filled from the mapping.

A workflow transition cannot ride in an edit, so it is a request of its own (sent after
the comments and the edit), picked from the fetched transitions by its target status
name. A transition the workflow does not offer is a warning (logged, counted, returned),
not a failure. A transition whose screen has required fields (stock JSM "Resolve this
issue" requires Resolution) gets them from the mapping's `transition_fields`; when the
mapping cannot supply one, the transition is not sent but reported
(`jira.transition_fields_missing`, `connector_writes_refused_total{what="transition"}`),
and a transition Jira refused with 400 is not resent until the issue changes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from connector.metrics import TRANSITIONS_UNAVAILABLE
from connector.model import Assign, SetFields, SetPriority, Ticket, Transition
from connector.platforms.base import ApplyResult, BadRequest, Conflict, SkippedAction
from connector.platforms.jira.client import PLATFORM, JiraClient, issue_ref
from connector.platforms.jira.fields import FieldResolutionError, format_field_value
from connector.platforms.jira.workflow import Workflow, is_allowed, pick_transition, screen_field_id
from connector.platforms.mapping import PlatformMapping
from connector.platforms.memory import BoundedMemory
from connector.platforms.writes import record_refusal, status_reached

log = logging.getLogger(__name__)


class TransitionWriter:
    """Sends the transition of a plan, and remembers the ones Jira refused."""

    def __init__(self, client: JiraClient, mapping: PlatformMapping) -> None:
        self._client = client
        self._mapping = mapping
        # (ticket id, transition id) -> (issue fingerprint when Jira refused it, fields the
        # connector's own edit wrote then, why).
        self._refusals: BoundedMemory[tuple[str, str], tuple[str, frozenset[str], str]] = BoundedMemory()

    def apply(
        self,
        ticket: Ticket,
        action: Transition,
        workflow: Workflow | None,
        result: ApplyResult,
    ) -> None:
        target = self._mapping.write_statuses[action.to]
        if status_reached(ticket, action, target, result):
            return
        key = issue_ref(ticket.key)
        if workflow is None:
            # A ticket that did not come from this adapter's fetch: ask what the workflow offers.
            workflow = Workflow(self._client.transitions(key), filled=None)
        transitions = workflow.transitions
        chosen = pick_transition(transitions, target)
        if chosen is None:
            available = sorted({str((t.get("to") or {}).get("name")) for t in transitions})
            reason = f"the workflow offers no transition from {ticket.raw_status!r} to {target!r}"
            log.warning(
                "jira.transition_unavailable",
                extra={
                    "platform": PLATFORM,
                    "ticket": ticket.key,
                    "rule": action.rule,
                    "from_status": ticket.raw_status,
                    "to_status": target,
                    "available": available,
                },
            )
            TRANSITIONS_UNAVAILABLE.labels(platform=PLATFORM, to_status=action.to.value).inc()
            result.skipped.append(SkippedAction(action, reason))
            result.warnings.append(reason)
            return
        transition_id = str(chosen["id"])
        refusal_key = (ticket.id, transition_id)
        earlier = self._refused_transition(refusal_key, workflow)
        if earlier is not None:
            # Jira refused this very request for this very issue state: sending it again
            # would fail the same way. It is tried again once the issue changes.
            self._refuse_transition(result, action, earlier, logged=False)
            return
        screen_values = self._transition_screen_values(ticket, action, target, chosen, workflow, result)
        if screen_values is None:
            return
        body: dict[str, Any] = {"transition": {"id": transition_id}}
        if screen_values:
            body["fields"] = screen_values
        try:
            path = self._client.transition_issue(key, body)
        except (BadRequest, Conflict) as exc:
            # A validator, a permission or a screen field refused it: the edit above stands, and
            # raising would only make the queue repeat a request that fails the same way.
            reason = f"Jira refused the transition to {target!r}: {exc.message}"
            log.warning(
                "jira.transition_rejected",
                extra={"platform": PLATFORM, "ticket": ticket.key, "rule": action.rule,
                       "to_status": target, "status": exc.status},
            )
            if isinstance(exc, BadRequest):
                self._remember_refusal(refusal_key, workflow, self._written_field_ids(result), reason)
                self._refuse_transition(result, action, reason, logged=True)
            else:
                result.skipped.append(SkippedAction(action, reason))
                result.warnings.append(reason)
            return
        result.writes.append(f"POST /rest/api/2/{path}")
        result.applied.append(action)

    def _transition_screen_values(
        self,
        ticket: Ticket,
        action: Transition,
        target: str,
        chosen: Mapping[str, Any],
        workflow: Workflow,
        result: ApplyResult,
    ) -> dict[str, Any] | None:
        """The `fields` a transition needs, from the mapping's `transition_fields`; None when a
        required field cannot be supplied (then it is reported and nothing is sent).

        Only fields on the transition's screen are sent: Jira refuses any other with 400 "cannot
        be set. It is not on the appropriate screen" (mozilla/jira-bugzilla-integration#1258).
        """
        screen = chosen.get("fields")
        if not isinstance(screen, Mapping):
            if chosen.get("hasScreen") is False:
                screen = {}
            else:
                # The site did not expand the screen on the issue read: ask the documented
                # endpoint, for this one transition only.
                listed = self._client.transitions(issue_ref(ticket.key), str(chosen["id"]))
                screen = next((t.get("fields") for t in listed if str(t.get("id")) == str(chosen["id"])), None)
                if not isinstance(screen, Mapping):
                    screen = {}
        wanted = self._mapping.transition_fields.get(action.to, {})
        values: dict[str, Any] = {}
        problems: list[str] = []
        for ref, value in wanted.items():
            field_id = screen_field_id(screen, ref)
            if field_id is None:
                continue  # not on this transition's screen: Jira would refuse it
            meta = screen[field_id] if isinstance(screen[field_id], Mapping) else {}
            schema = meta.get("schema") if isinstance(meta.get("schema"), Mapping) else {}
            holds_users = schema.get("type") == "user" or schema.get("items") == "user"
            try:
                formatted = format_field_value(schema, value, cloud=self._client.is_cloud() if holds_users else True)
            except (TypeError, ValueError) as exc:
                problems.append(f"{meta.get('name') or field_id} ({exc})")
                continue
            allowed = meta.get("allowedValues")
            if isinstance(allowed, list) and allowed and not is_allowed(formatted, allowed):
                names = ", ".join(str(a.get("name") or a.get("value") or a.get("id")) for a in allowed
                                  if isinstance(a, Mapping))
                problems.append(f"{meta.get('name') or field_id} (value {value!r} is not one of: {names})")
                continue
            values[field_id] = formatted
        missing = [
            str((meta if isinstance(meta, Mapping) else {}).get("name") or field_id)
            for field_id, meta in screen.items()
            if isinstance(meta, Mapping) and meta.get("required") and field_id not in values
            and not meta.get("hasDefaultValue") and not self._holds_value(ticket, workflow, field_id)
        ]
        if not missing and not problems:
            return values
        parts = []
        if missing:
            parts.append(f"requires {', '.join(repr(m) for m in missing)}, which the mapping "
                         f"(transition_fields.{action.to.value}) does not supply")
        if problems:
            parts.append(f"cannot take {'; '.join(problems)}")
        reason = f"the transition {chosen.get('name')!r} to {target!r} " + " and ".join(parts)
        log.warning(
            "jira.transition_fields_missing",
            extra={"platform": PLATFORM, "ticket": ticket.key, "rule": action.rule, "to_status": target,
                   "transition": str(chosen.get("id")), "fields": missing, "invalid": len(problems)},
        )
        self._refuse_transition(result, action, reason, logged=True)
        return None

    def _holds_value(self, ticket: Ticket, workflow: Workflow, field_id: str) -> bool:
        """Whether the issue already has a value Jira keeps for a required screen field."""
        if workflow.filled is not None:
            return field_id in workflow.filled
        for logical, ref in self._mapping.fields.items():
            if logical in ticket.fields and (ref == field_id or self._resolves_to(ref, field_id)):
                return True
        return False

    def _resolves_to(self, ref: str, field_id: str) -> bool:
        try:
            return self._client.catalogue().resolve(ref).id == field_id
        except FieldResolutionError:
            return False

    def _refuse_transition(self, result: ApplyResult, action: Transition, reason: str, *, logged: bool) -> None:
        if not logged:
            log.info("jira.transition_refused_again", extra={"platform": PLATFORM, "rule": action.rule,
                                                            "to_status": action.to.value})
        record_refusal(result, PLATFORM, "transition", reason, action)

    def _refused_transition(self, key: tuple[str, str], workflow: Workflow) -> str | None:
        """Why Jira refused this transition of this issue before, if the issue is still as it was.

        "As it was" ignores what the connector's own edit of that apply changed (the comment,
        labels and the fields it wrote, and so `updated`): those do not fix a refusal, and
        comparing `updated` would resend the failing request once after every own write.
        """
        entry = self._refusals.get(key)
        if entry is None or workflow.values is None:
            return None
        fingerprint, written, reason = entry
        return reason if workflow.fingerprint(written) == fingerprint else None

    def _remember_refusal(self, key: tuple[str, str], workflow: Workflow, written: frozenset[str],
                          reason: str) -> None:
        if workflow.values is None:
            return
        self._refusals.put(key, (workflow.fingerprint(written), written, reason))

    def _written_field_ids(self, result: ApplyResult) -> frozenset[str]:
        """Field ids the edit of this apply wrote (from the actions it carried)."""
        written: set[str] = set()
        for action in result.applied:
            refs: list[str] = []
            if isinstance(action, SetFields):
                refs = [self._mapping.fields.get(name, name) for name in action.fields]
            elif isinstance(action, Assign):
                refs = [self._mapping.group_field]
                written.add("assignee")
            elif isinstance(action, SetPriority):
                written.add("priority")
            for ref in refs:
                try:
                    written.add(self._client.catalogue().resolve(ref).id)
                except FieldResolutionError:
                    written.add(ref)
        return frozenset(written)
