"""The rules engine: ticket + instant + config in, plan out. Pure: no clock, no I/O.

Rules run in file order; each sees the ticket as the earlier rules' actions will leave it
(so completing intake and routing happen in one plan, and escalation reads the clocks the
SLA rule just computed). Applying the plan and evaluating again yields an empty plan.

A rule in `mode: observe` is evaluated like any other, but its actions are only recorded,
never written (`connector.observe`), so they are not projected onto the ticket: the
enforced rules after it decide on the ticket as it will really be. With `observe_all`
(CONNECTOR_MODE=observe) nothing is written at all, and every action is projected, so the
record shows exactly the plan enforce mode would apply.
"""

from __future__ import annotations

from datetime import datetime

from connector.config import SupportConfig
from connector.model import Plan, Ticket, trusted
from connector.rules.base import EvalContext
from connector.rules.projection import project


def evaluate(ticket: Ticket, now: datetime, config: SupportConfig, *, observe_all: bool = False) -> Plan:
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
            if observe_all or rule.mode != "observe":
                ctx.ticket = project(ctx.ticket, produced, now)
    # Every part is already valid (the ticket was, the actions and clocks are the rules' own).
    return trusted(
        Plan, platform=ticket.platform, ticket_id=ticket.id, ticket_key=ticket.key, evaluated_at=now,
        actions=actions, sla=dict(ctx.sla), next_deadline=min(ctx.deadlines, default=None),
        sla_tier=ctx.sla_rule.tier_name if ctx.sla_rule is not None else None,
    )
