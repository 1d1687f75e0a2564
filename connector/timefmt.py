"""How instants and durations are written in comments and date-time fields.

Agents read due times in the ticket's business calendar zone; fields get ISO 8601 with the
offset so both platforms store the exact instant. Comparisons are to the minute, the
precision SLAs are promised in, so a platform's rounding never triggers a rewrite.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo


def format_minutes(minutes: float) -> str:
    """90 -> '1h 30m'; business durations are shown as hours and minutes, never days."""
    total = int(round(minutes))
    hours, mins = divmod(total, 60)
    if hours and mins:
        return f"{hours}h {mins}m"
    return f"{hours}h" if hours else f"{mins}m"


def format_instant(at: datetime, tz: tzinfo, *, iso: bool = False) -> str:
    local = at.astimezone(tz).replace(second=0, microsecond=0)
    if iso:
        return local.isoformat()
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def parse_instant(value) -> datetime | None:
    """Read a date-time written by us or by a platform (ISO 8601, or Jira's +0000 form)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit() and ":" not in text[-5:]:
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def same_instant(value, at: datetime, tz: tzinfo | None = None) -> bool:
    """True when a field already shows `at`: to the minute, or to the day for a date-only
    field (Zendesk date fields hold YYYY-MM-DD), read in the calendar's zone `tz`."""
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip()) == at.astimezone(tz).date()
        except ValueError:
            return False
    current = parse_instant(value)
    return current is not None and abs(current - at) < timedelta(minutes=1)
