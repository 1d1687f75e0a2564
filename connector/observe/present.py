"""`connector observed` output: a terminal listing, JSON for scripts, CSV for a spreadsheet.

`--since` takes an ISO 8601 instant or a duration back from now (`24h`, `7d`, `90m`), since
the question an admin asks during an observation week is "what would it have done since
yesterday".
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta

from connector.observe.records import Observation

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
CSV_COLUMNS = ("last_seen", "first_seen", "times", "platform", "ticket_key", "ticket_id", "rule", "action",
               "marker", "summary", "reason", "details")


def parse_since(text: str, now: datetime) -> datetime:
    """An ISO 8601 instant with offset, or a duration (24h, 7d) back from `now`."""
    match = _DURATION.match(text)
    if match:
        return now - timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (e.g. 24h, 7d, 90m) nor an ISO 8601 instant "
                         "(e.g. 2026-11-20T09:00:00+08:00)") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; write e.g. 2026-11-20T09:00:00+08:00 or ...Z")
    return moment


def as_text(rows: list[Observation]) -> str:
    if not rows:
        return "nothing observed in this period"
    lines = []
    for row in rows:
        seen = f"{row.last_seen:%Y-%m-%d %H:%M}Z"
        again = f" (planned {row.times}× since {row.first_seen:%Y-%m-%d %H:%M}Z)" if row.times > 1 else ""
        lines.append(f"{seen}  {row.platform} {row.ticket_key}  [{row.rule}] {row.summary()}{again}")
        lines.append(f"      why: {row.reason}")
    lines.append(f"{len(rows)} observed action(s); nothing of this was written to the platform")
    return "\n".join(lines)


def as_json(rows: list[Observation]) -> str:
    return json.dumps([row.as_json() for row in rows], indent=2, ensure_ascii=False)


def as_csv(rows: list[Observation]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([row.last_seen.isoformat(), row.first_seen.isoformat(), row.times, row.platform,
                         row.ticket_key, row.ticket_id, row.rule, row.action, row.marker or "",
                         _cell(row.summary()), _cell(row.reason), _cell(json.dumps(row.details, ensure_ascii=False))])
    return out.getvalue()


def _cell(text: str) -> str:
    """Defuse spreadsheet formulas: ticket text starting with = + - @ (tab, CR) would run in a
    spreadsheet; a leading apostrophe keeps it text (https://owasp.org/www-community/attacks/CSV_Injection),
    as `connector report`'s CSV does."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
