"""Dry-run: evaluate the rules on a saved ticket without any platform access.

This is what `connector simulate` and the bundled examples run, and what admins use to see
what a rule change would do to a real ticket before it is deployed.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from connector.config import SupportConfig
from connector.model import Plan, Ticket
from connector.platforms.ticket_json import load_ticket_json
from connector.rules.engine import evaluate


def simulate_file(platform: str, path: Path, config: SupportConfig, now: datetime) -> tuple[Ticket, Plan]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON (line {exc.lineno}): {exc.msg}") from None
    ticket = load_ticket_json(platform, data, config.platforms.for_platform(platform))
    return ticket, evaluate(ticket, now, config)
