"""The rules engine: ticket + instant + config in, plan out. Pure: no clock, no I/O.

Rules run in file order; each sees the ticket as the earlier rules' actions will leave it
(so completing intake and routing happen in one plan, and escalation reads the clocks the
SLA rule just computed). Applying the plan and evaluating again yields an empty plan.
"""

from __future__ import annotations

from datetime import datetime

from connector.config import SupportConfig
from connector.model import Plan, Ticket
from connector.rules.base import EvalContext
from connector.rules.projection import project


def evaluate(ticket: Ticket, now: datetime, config: SupportConfig) -> Plan:
    if now.tzinfo is None:
        raise ValueError("evaluate() needs a timezone-aware instant")
    ctx = EvalContext(ticket=ticket, now=now, config=config)
    actions: list = []
    for rule in config.rules:
        if not rule.applies(ctx.ticket):
            continue
        produced = rule.evaluate(ctx)
        if produced:
            actions.extend(produced)
            ctx.ticket = project(ctx.ticket, produced, now)
    return Plan(
        platform=ticket.platform, ticket_id=ticket.id, ticket_key=ticket.key, evaluated_at=now,
        actions=actions, sla=dict(ctx.sla), next_deadline=min(ctx.deadlines, default=None),
    )
