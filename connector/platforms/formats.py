"""Dates and instants as a rule writes them, checked before either platform sees them.

Rules hand the adapters dates and date-times as Python objects or ISO 8601 strings. Both
platforms store a date as `yyyy-mm-dd`; an instant without a UTC offset would be read in
a zone nobody chose (the Jira server's, Zendesk's account's) and silently move a
deadline, so it is refused here. Each adapter then prints the instant in its own format
(`jira.fields.jira_datetime`, `zendesk.fields.zendesk_datetime`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any


def aware_datetime(value: Any, *, zone: str) -> datetime:
    """`value` as a datetime with a UTC offset; `zone` names where a naive one would be read."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise ValueError("a date-time needs a datetime or an ISO 8601 string")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a date-time without a UTC offset would be read in {zone}")
    return moment


def iso_date(value: Any) -> str:
    """`yyyy-mm-dd`; a datetime gives its date in its own time zone."""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            return datetime.fromisoformat(value).date().isoformat()
    raise ValueError("a date field needs a date, a datetime or an ISO 8601 string")
