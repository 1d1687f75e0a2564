"""How a plan is shown to people (text) and to other tools (JSON, a stable interface).

The JSON shape is part of DESIGN.md's interfaces: {"ticket", "actions", "sla",
"next_deadline"}, every action naming the rule that caused it, and its `mode`: "observe"
for a rule in `mode: observe` (recorded, never written), else "enforce".
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from connector.model import Plan, Ticket
from connector.timefmt import format_minutes


def _mode(action, observed: Set[str]) -> str:
    return "observe" if action.rule in observed else "enforce"


def plan_as_json(ticket: Ticket, plan: Plan, observed: Set[str] = frozenset()) -> dict[str, Any]:
    return {
        "ticket": {
            "platform": ticket.platform, "id": ticket.id, "key": ticket.key, "url": ticket.url,
            "summary": ticket.summary, "category": ticket.category, "priority": ticket.priority,
            "status": ticket.status.value, "raw_status": ticket.raw_status, "group": ticket.group,
            "assignee": ticket.assignee, "labels": sorted(ticket.labels),
            "created": ticket.created.isoformat(),
            # Per-customer service levels: who the customer is (never the e-mail, only its
            # domain) and the contract tier whose clocks "sla" holds.
            "organizations": list(ticket.organizations) if ticket.organizations is not None else None,
            "requester_email_domain": ticket.requester_email_domain, "sla_tier": plan.sla_tier,
        },
        "evaluated_at": plan.evaluated_at.isoformat(),
        "actions": [{**action.model_dump(mode="json"), "mode": _mode(action, observed)} for action in plan.actions],
        "sla": {metric: clock.model_dump(mode="json") for metric, clock in plan.sla.items()},
        "next_deadline": plan.next_deadline.isoformat() if plan.next_deadline else None,
    }


def _describe(action) -> str:
    kind = action.type
    if kind == "comment":
        visibility = "public comment" if action.public else "internal note"
        first_line = action.body.strip().splitlines()[0] if action.body.strip() else ""
        marker = f" [marker {action.marker}]" if action.marker else ""
        return f"{visibility}{marker}: {first_line}"
    if kind == "transition":
        return f"transition to {action.to.value}"
    if kind == "set-fields":
        return "set " + ", ".join(f"{k}={v!r}" for k, v in action.fields.items())
    if kind == "add-label":
        return f"add label {action.label}"
    if kind == "remove-label":
        return f"remove label {action.label}"
    if kind == "assign":
        parts = [f"group {action.group}" if action.group else "", f"user {action.assignee}" if action.assignee else ""]
        return "assign " + " and ".join(p for p in parts if p)
    if kind == "set-priority":
        return f"set priority {action.priority}"
    return kind


def plan_as_text(ticket: Ticket, plan: Plan, observed: Set[str] = frozenset()) -> str:
    lines = [
        f"{ticket.key} [{ticket.platform}] {ticket.summary}",
        f"  status {ticket.status.value} ({ticket.raw_status}), priority {ticket.priority or '-'}, "
        f"category {ticket.category or '-'}, group {ticket.group or '-'}",
        f"  evaluated at {plan.evaluated_at.isoformat()}",
    ]
    if plan.actions:
        lines.append("  actions:")
        for action in plan.actions:
            only = " (observed: recorded, not written)" if action.rule in observed else ""
            lines.append(f"    - [{action.rule}] {_describe(action)}{only}")
            lines.append(f"        because {action.reason}")
    else:
        lines.append("  actions: none (the ticket already follows the process)")
    if plan.sla:
        lines.append(f"  SLA (tier {plan.sla_tier}):" if plan.sla_tier else "  SLA:")
        for metric, clock in plan.sla.items():
            due = f", due {clock.due.isoformat(timespec='minutes')}" if clock.due else ""
            lines.append(f"    {metric}: {clock.state}, {format_minutes(clock.elapsed_minutes)} of "
                         f"{format_minutes(clock.target_minutes)} ({clock.clock}){due}")
    lines.append(f"  next deadline: {plan.next_deadline.isoformat(timespec='seconds') if plan.next_deadline else 'none'}")
    return "\n".join(lines)
