"""The subset of Zendesk's search language the connector's sweep uses, and a refusal for the rest.

The sweep finds work with queries like ``type:ticket status<solved updated>2026-11-20T09:00:00Z``;
if the sandbox quietly ignored a term it did not understand, a sweep with a typo would pass
every test and miss tickets in production. So every term is either implemented with
Zendesk's meaning or refused with a 400, never skipped:

- ``type:ticket`` (the sandbox holds no other searchable objects);
- ``status``/``priority`` with ``:`` ``<`` ``<=`` ``>`` ``>=`` over Zendesk's order
  (new < open < pending < hold < solved < closed; low < normal < high < urgent);
- ``created``/``updated`` with a date (a whole day: ``updated>2026-11-20`` starts on the 21st),
  an ISO 8601 time, or a relative span (``updated>4hours``: within the last four hours);
- ``tags:``, ``ticket_type:``, ``group:`` (name or id), ``assignee:``/``requester:`` (id, e-mail,
  name, ``me``, ``none``), ``subject:``, ``description:``;
- ``order_by:`` (created/updated/priority/status/ticket_type) and ``sort:`` (asc/desc);
- free words and ``"quoted phrases"`` over subject, description and comments;
- ``-`` before any term negates it. Repeated ``:`` terms on one keyword are alternatives
  (``status:new status:open``), everything else must hold together.

Dates are read in UTC (an account's time zone is not modelled).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from connector.sandbox.zendesk_store import PRIORITIES, STATUSES, TICKET_TYPES, parse_iso

ORDERED: dict[str, tuple[str, ...]] = {"status": STATUSES, "priority": PRIORITIES}
TIME_KEYWORDS = frozenset({"created", "updated"})
EQUALITY_KEYWORDS = frozenset({"type", "tags", "tag", "ticket_type", "group", "assignee", "requester",
                               "subject", "description", "order_by", "sort"})
SORT_KEYS = {"created": "created", "created_at": "created", "updated": "updated", "updated_at": "updated",
             "priority": "priority", "status": "status", "ticket_type": "ticket_type"}
_UNITS = {"minute": 60, "minutes": 60, "min": 60, "mins": 60, "hour": 3600, "hours": 3600, "day": 86400,
          "days": 86400, "week": 604800, "weeks": 604800, "month": 2592000, "months": 2592000,
          "year": 31536000, "years": 31536000}
_TOKEN = re.compile(r'(-)?(?:([A-Za-z_]+)(<=|>=|:|<|>))?("[^"]*"|[^\s"]+)|(\S)')
_RELATIVE = re.compile(r"(\d+)([a-z]+)")


class SearchError(ValueError):
    """A query the sandbox cannot answer faithfully; the HTTP layer turns it into a 400."""


@dataclass(frozen=True)
class TicketFacts:
    """What search can see of one ticket."""

    id: int
    status: str
    priority: str | None
    type: str | None
    tags: frozenset[str]
    group_id: int | None
    group_name: str | None
    assignee: frozenset[str]  # id, e-mail and name, casefolded; empty when unassigned
    requester: frozenset[str]
    subject: str
    description: str
    text: str  # subject, description and comment bodies, casefolded
    created: datetime
    updated: datetime


Predicate = Callable[[TicketFacts], bool]


@dataclass
class Query:
    predicates: list[Predicate] = field(default_factory=list)
    alternatives: dict[str, list[Predicate]] = field(default_factory=dict)
    order_by: str | None = None
    descending: bool = True

    def matches(self, facts: TicketFacts) -> bool:
        return all(p(facts) for p in self.predicates) and all(
            any(p(facts) for p in group) for group in self.alternatives.values())


def parse(query: str, *, now: datetime, me: Sequence[str]) -> Query:
    """Parse a Zendesk search query; `me` are the API user's id/e-mail/name for `assignee:me`."""
    if query.count('"') % 2:
        raise SearchError('unbalanced quotes: a phrase needs a closing "')
    result = Query()
    for match in _TOKEN.finditer(query):
        negated, keyword, operator, raw, stray = match.groups()
        if stray is not None:
            raise SearchError(f"cannot read {stray!r} in the query")
        value = raw[1:-1] if raw.startswith('"') else raw
        if keyword is None:
            predicate = _text(value)
            result.predicates.append(_negate(predicate) if negated else predicate)
            continue
        keyword = keyword.casefold()
        if keyword in ("order_by", "sort"):
            _ordering(result, keyword, operator, value)
            continue
        predicate = _term(keyword, operator, value, now=now, me=me)
        if negated:
            result.predicates.append(_negate(predicate))
        elif operator == ":" and keyword not in ("type",):
            result.alternatives.setdefault(keyword, []).append(predicate)
        else:
            result.predicates.append(predicate)
    return result


def _negate(predicate: Predicate) -> Predicate:
    return lambda facts: not predicate(facts)


def _ordering(result: Query, keyword: str, operator: str, value: str) -> None:
    if operator != ":":
        raise SearchError(f"{keyword} takes ':', as in {keyword}:{'updated_at' if keyword == 'order_by' else 'asc'}")
    if keyword == "order_by":
        if value.casefold() not in SORT_KEYS:
            raise SearchError(f"cannot order by {value!r}; use one of {', '.join(sorted(set(SORT_KEYS)))}")
        result.order_by = SORT_KEYS[value.casefold()]
    elif value.casefold() in ("asc", "desc"):
        result.descending = value.casefold() == "desc"
    else:
        raise SearchError(f"sort must be asc or desc, not {value!r}")


def _text(value: str) -> Predicate:
    words = value.casefold().split() if value else []
    if not words:
        raise SearchError("an empty phrase matches nothing")
    phrase = " ".join(words)
    return lambda facts: phrase in " ".join(facts.text.split())


def _term(keyword: str, operator: str, value: str, *, now: datetime, me: Sequence[str]) -> Predicate:
    if keyword in ORDERED:
        order = ORDERED[keyword]
        wanted = value.casefold()
        if wanted not in order:
            raise SearchError(f"{keyword} {value!r} is not one of {', '.join(order)}")
        rank = order.index(wanted)
        compare = _comparison(operator)
        return lambda facts: (getattr(facts, keyword) is not None
                              and compare(order.index(getattr(facts, keyword)), rank))
    if keyword in TIME_KEYWORDS:
        start, end = _time_span(value, now)
        attribute = keyword
        if start == end:  # an instant: the operators compare exactly
            return lambda facts: _comparison(operator)(getattr(facts, attribute), start)
        if operator == ":":
            return lambda facts: start <= getattr(facts, attribute) < end
        return {
            ">": lambda facts: getattr(facts, attribute) >= end,
            ">=": lambda facts: getattr(facts, attribute) >= start,
            "<": lambda facts: getattr(facts, attribute) < start,
            "<=": lambda facts: getattr(facts, attribute) < end,
        }[operator]
    if keyword not in EQUALITY_KEYWORDS:
        raise SearchError(f"the sandbox does not support the search keyword {keyword!r}")
    if operator != ":":
        raise SearchError(f"{keyword} only takes ':' (found {operator!r})")
    wanted = value.casefold()
    if keyword == "type":
        if wanted != "ticket":
            raise SearchError(f"type:{value} is not supported; the sandbox searches tickets only")
        return lambda facts: True
    if keyword in ("tags", "tag"):
        return lambda facts: wanted in facts.tags
    if keyword == "ticket_type":
        if wanted not in TICKET_TYPES:
            raise SearchError(f"ticket_type {value!r} is not one of {', '.join(TICKET_TYPES)}")
        return lambda facts: facts.type == wanted
    if keyword == "group":
        if wanted == "none":
            return lambda facts: facts.group_id is None
        return lambda facts: wanted in (str(facts.group_id), (facts.group_name or "").casefold())
    if keyword in ("assignee", "requester"):
        if wanted == "none":
            return lambda facts: not getattr(facts, keyword)
        refs = {r.casefold() for r in me} if wanted == "me" else {wanted}
        return lambda facts: bool(refs & getattr(facts, keyword))
    words = " ".join(wanted.split())
    return lambda facts: words in " ".join(getattr(facts, keyword).casefold().split())


def _comparison(operator: str) -> Callable[[Any, Any], bool]:
    return {":": lambda a, b: a == b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}[operator]


def _time_span(value: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) that the value names: a whole UTC day, one instant, or 'N units ago'."""
    relative = _RELATIVE.fullmatch(value.casefold())
    if relative and relative.group(2) in _UNITS:
        moment = now - timedelta(seconds=int(relative.group(1)) * _UNITS[relative.group(2)])
        return moment, moment
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise SearchError(f"{value!r} is not a date") from None
        start = datetime.combine(day, time(0), tzinfo=now.tzinfo)
        return start, start + timedelta(days=1)
    moment = parse_iso(value)
    if moment is None:
        raise SearchError(f"{value!r} is not a date (YYYY-MM-DD), an ISO 8601 time or a span such as 4hours")
    return moment, moment


def sort_key(order_by: str | None) -> Callable[[TicketFacts], Any]:
    if order_by == "created":
        return lambda f: (f.created, f.id)
    if order_by == "updated":
        return lambda f: (f.updated, f.id)
    if order_by == "priority":
        return lambda f: (PRIORITIES.index(f.priority) if f.priority else -1, f.id)
    if order_by == "status":
        return lambda f: (STATUSES.index(f.status), f.id)
    if order_by == "ticket_type":
        return lambda f: (f.type or "", f.id)
    return lambda f: f.id
