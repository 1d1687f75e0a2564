"""Which actions of a plan are written and which only recorded, and the backlog on enforcement.

- **Split.** With `CONNECTOR_MODE=observe` every action is observed; otherwise the actions
  of rules in `mode: observe` are, and the rest are enforced, in the same reconcile.
- **Record.** Observed actions go to the store (deduped by fingerprint, see
  `connector.observe.records`) and to the log as `observe.recorded` – names, ids, markers
  and targets only, never a comment body or an e-mail.
- **Backlog.** Observed one-time comments are re-planned on every reconcile, because their
  marker is never written. When the rule is then enforced, posting them all at once would
  flood every open ticket with stale notices ("SLA breached" a week late). So a comment
  with a marker whose fingerprint was first recorded as observed more than
  `rollout.backlog_hours` (default 24) before the moment it is enforced is *recorded as
  done without posting*: only its marker label is written (so it is never planned again),
  with a `rollout.backlog_marked` log event. A fresh one (observed less than that ago, or
  never observed) is posted normally. State actions (transition, assign, priority, fields)
  are the ticket's desired state, not a moment, and are applied as usual.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.config import SupportConfig
from connector.model import AddComment, AddLabel, Assign, Plan, SetFields, SetPriority, Ticket, Transition
from connector.observe.records import Observation, fingerprint, observation
from connector.observe.store import ObservedStore

log = logging.getLogger("connector.observe")


@dataclass(frozen=True)
class Split:
    enforced: Plan  # the plan to apply (the original plan when nothing is observed)
    observed: list  # actions to record instead


def observed_rules(config: SupportConfig, observe_all: bool) -> frozenset[str]:
    return frozenset(r.id for r in config.rules if observe_all or r.mode == "observe")


def split(plan: Plan, config: SupportConfig, *, observe_all: bool) -> Split:
    rules = observed_rules(config, observe_all)
    if not rules:
        return Split(plan, [])
    observed = [a for a in plan.actions if observe_all or a.rule in rules]
    if not observed:
        return Split(plan, [])
    enforced = [a for a in plan.actions if not (observe_all or a.rule in rules)]
    return Split(plan.model_copy(update={"actions": enforced}), observed)


def _target(action) -> dict[str, object]:
    """What the log may say about an action's target: no bodies, no people."""
    if isinstance(action, Transition):
        return {"to": str(action.to)}
    if isinstance(action, Assign):
        return {"group": action.group, "assignee_set": action.assignee is not None}
    if isinstance(action, SetPriority):
        return {"priority": action.priority}
    if isinstance(action, SetFields):
        return {"fields": sorted(action.fields)}
    if isinstance(action, AddComment):
        return {"public": action.public}
    return {}


def record(store: ObservedStore, ticket: Ticket, actions: list, now: datetime) -> list[Observation]:
    """Store each observed action (once per fingerprint) and log it."""
    stored = []
    for action in actions:
        row = store.record(observation(ticket, action, now))
        stored.append(row)
        log.info("observe.recorded", extra={
            "platform": row.platform, "ticket_id": row.ticket_id, "ticket_key": row.ticket_key, "rule": row.rule,
            "action": row.action, "marker": row.marker, **_target(action), "new": row.new, "times": row.times,
            "first_seen": row.first_seen.isoformat(), "at": now.isoformat(), "fingerprint": row.fingerprint,
        })
    return stored


def settle_backlog(store: ObservedStore, ticket: Ticket, plan: Plan, now: datetime, backlog_hours: float) -> Plan:
    """Replace each stale observed one-time comment of the enforced plan by its marker label."""
    limit = timedelta(hours=backlog_hours)
    actions, changed = [], False
    for action in plan.actions:
        if isinstance(action, AddComment) and action.marker:
            first = store.first_seen(fingerprint(ticket.platform, ticket.id, action))
            if first is not None and now - first > limit:
                changed = True
                log.info("rollout.backlog_marked", extra={
                    "platform": ticket.platform, "ticket_id": ticket.id, "ticket_key": ticket.key,
                    "rule": action.rule, "marker": action.marker, "first_seen": first.isoformat(),
                    "backlog_hours": backlog_hours, "outcome": "recorded as done without posting",
                })
                actions.append(AddLabel(
                    rule=action.rule, label=action.marker,
                    reason=f"recorded as done without posting: first observed {first.isoformat()}, more than "
                           f"{backlog_hours:g} h before the rule was enforced ({action.reason})"))
                continue
        actions.append(action)
    return plan.model_copy(update={"actions": actions}) if changed else plan
