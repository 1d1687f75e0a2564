"""Dry-run: evaluate the rules on a saved ticket without any platform access.

This is what `connector simulate` and the bundled examples run, and what admins use to see
what a rule change would do to a real ticket before it is deployed.

`--now` may lie in the ticket's past: the rules then see the ticket as it stood at that
instant (`connector.history.ticket_as_of`) – status changes and comments made later had not
happened, so a ticket resolved the next day shows its resolution clock running, and the
plan is the one the connector would have made then. Fields, labels, priority and assignee
are the current ones: the saved ticket carries no dated history of them (see the README).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from connector.config import SupportConfig
from connector.history import ticket_as_of
from connector.model import Plan, Ticket
from connector.platforms.ticket_json import load_ticket_json
from connector.rules.engine import evaluate


def evaluate_at(ticket: Ticket, now: datetime, config: SupportConfig) -> tuple[Ticket, Plan]:
    """The ticket as it stood at `now`, and the plan the rules make for it then."""
    if now.tzinfo is None:
        raise ValueError("the instant to evaluate at needs a UTC offset, e.g. 2026-11-20T15:00:00+08:00")
    if now < ticket.created:
        raise ValueError(f"the ticket was created at {ticket.created.isoformat()}, after --now "
                         f"{now.isoformat()}: pick an instant in its life")
    view = ticket_as_of(ticket, now)
    return view, evaluate(view, now, config)


def simulate_file(platform: str, path: Path, config: SupportConfig, now: datetime) -> tuple[Ticket, Plan]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON (line {exc.lineno}): {exc.msg}") from None
    ticket = load_ticket_json(platform, data, config.platforms.for_platform(platform))
    return evaluate_at(ticket, now, config)
