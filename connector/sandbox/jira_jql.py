"""The subset of JQL the connector's searches use, parsed strictly.

The sweep finds "recently updated" and "all open" tickets with JQL. If the sandbox silently
ignored a clause it did not understand, a search that would fail (or return something else)
against real Jira would pass every test. So anything outside this subset is a 400 with a
Jira-style error, not a best effort.

Supported: clauses joined by AND; fields project, key/issuekey, created, updated, status,
statusCategory, resolution, priority, labels, assignee, reporter, text/summary/description/
comment; operators = != > >= < <= ~ IN, NOT IN, IS [NOT] EMPTY|NULL; date values
"yyyy-MM-dd[ HH:mm]" (also with slashes) in the sandbox's time zone, and relative ones like
-5m, -2h, -1d, -1w; ORDER BY one or more of updated, created, key, priority, status.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

SUPPORTED = (
    "clauses joined by AND over project, key, created, updated, status, statusCategory, "
    "resolution, priority, labels, assignee, reporter, text, summary, description, comment; "
    "ORDER BY updated, created, key, priority, status"
)


class JqlError(ValueError):
    """The query is invalid or outside the sandbox's subset; the message is Jira's wording."""


@dataclass(frozen=True)
class IssueFacts:
    """What a JQL clause can look at, extracted from one stored issue."""

    id: int
    key: str
    project_key: str
    project_name: str
    project_id: str
    created: datetime
    updated: datetime
    status: str
    status_category_key: str
    status_category_name: str
    status_category_id: int
    resolution: str | None
    priority: str
    priority_rank: int
    labels: tuple[str, ...]
    assignee: tuple[str, ...]  # every identifier of the assignee (account id, name, e-mail, display name)
    reporter: tuple[str, ...]
    summary: str
    description: str
    comments: str
    other_text: str  # environment and text custom fields, searched by `text ~`


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>!=|>=|<=|!~|=|>|<|~)
      | (?P<punct>[(),])
      | (?P<word>[^\s"'(),=!<>~]+)
    )""",
    re.VERBOSE,
)
_RELATIVE = re.compile(r"^([+-]?)(\d+)([wdhm])$", re.IGNORECASE)
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")

_DATE_FIELDS = {"created", "updated"}
_FIELD_ALIASES = {
    "issuekey": "key", "id": "key", "createddate": "created", "updateddate": "updated",
    "statuscategory": "statusCategory",
}
_KNOWN_FIELDS = {
    "project", "key", "created", "updated", "status", "statusCategory", "resolution", "priority",
    "labels", "assignee", "reporter", "text", "summary", "description", "comment",
}
_EQUALITY_OPS = {"=", "!=", "in", "not in", "is", "is not"}
_OPS_BY_FIELD: dict[str, set[str]] = {
    "project": _EQUALITY_OPS, "key": _EQUALITY_OPS, "status": _EQUALITY_OPS,
    "statusCategory": _EQUALITY_OPS, "resolution": _EQUALITY_OPS, "priority": _EQUALITY_OPS,
    "labels": _EQUALITY_OPS, "assignee": _EQUALITY_OPS, "reporter": _EQUALITY_OPS,
    "created": {"=", "!=", ">", ">=", "<", "<=", "is", "is not"},
    "updated": {"=", "!=", ">", ">=", "<", "<=", "is", "is not"},
    "text": {"~", "!~"}, "summary": {"~", "!~"}, "description": {"~", "!~"}, "comment": {"~", "!~"},
}
_ORDER_FIELDS = {"updated", "created", "key", "priority", "status"}


@dataclass(frozen=True)
class Clause:
    field: str
    op: str
    values: tuple[Any, ...]  # str, datetime, or None for EMPTY


@dataclass(frozen=True)
class Query:
    clauses: tuple[Clause, ...]
    order_by: tuple[tuple[str, bool], ...]  # (field, descending)

    def referenced(self, field: str) -> list[str]:
        return [v for c in self.clauses if c.field == field for v in c.values if isinstance(v, str)]


def _error(message: str) -> JqlError:
    return JqlError(f"Error in the JQL Query: {message}")


def _tokens(jql: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(jql):
        if jql[pos:].strip() == "":
            break
        match = _TOKEN.match(jql, pos)
        if match is None or match.end() == pos:
            raise _error(f"The character '{jql[pos:].strip()[0]}' is a reserved JQL character. (line 1, character {pos + 1})")
        kind = match.lastgroup or "word"
        text = match.group(kind)
        if kind == "string":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        tokens.append((kind, text))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, jql: str, now: datetime, tz: tzinfo) -> None:
        self.jql = jql
        self.tokens = _tokens(jql)
        self.pos = 0
        self.now = now
        self.tz = tz

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _error(f"Expecting more input at the end of the query '{self.jql}'.")
        self.pos += 1
        return token

    def is_word(self, word: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token[0] == "word" and token[1].lower() == word

    def parse(self) -> Query:
        clauses: list[Clause] = []
        if self.peek() is not None and not self.is_word("order"):
            clauses.append(self.clause())
            while self.peek() is not None and not self.is_word("order"):
                if self.is_word("and"):
                    self.take()
                    clauses.append(self.clause())
                elif self.is_word("or"):
                    raise _error(f"the sandbox does not support OR; it supports {SUPPORTED}.")
                else:
                    raise _error(f"Expecting either 'OR' or 'AND' but got '{self.take()[1]}'.")
        order: list[tuple[str, bool]] = []
        if self.is_word("order"):
            self.take()
            if not self.is_word("by"):
                raise _error("Expecting 'by' after 'order'.")
            self.take()
            while True:
                name = self.take()[1]
                field = _FIELD_ALIASES.get(name.lower(), name.lower())
                if field not in _ORDER_FIELDS:
                    raise _error(f"the sandbox cannot order by '{name}'; it supports {SUPPORTED}.")
                descending = False
                if self.is_word("asc") or self.is_word("desc"):
                    descending = self.take()[1].lower() == "desc"
                order.append((field, descending))
                if self.peek() == ("punct", ","):
                    self.take()
                    continue
                break
            if self.peek() is not None:
                raise _error(f"Expecting end of query after ORDER BY but got '{self.take()[1]}'.")
        return Query(tuple(clauses), tuple(order))

    def clause(self) -> Clause:
        kind, name = self.take()
        if kind == "punct" and name == "(":
            raise _error(f"the sandbox does not support parenthesised clauses; it supports {SUPPORTED}.")
        if kind == "word" and name.lower() == "not":
            raise _error(f"the sandbox does not support NOT before a clause; it supports {SUPPORTED}.")
        if kind not in ("word", "string"):
            raise _error(f"Expecting a field name but got '{name}'.")
        field = _FIELD_ALIASES.get(name.lower(), name.lower())
        if field not in _KNOWN_FIELDS:
            raise _error(f"Field '{name}' does not exist or you do not have permission to view it.")
        op = self.operator()
        if op not in _OPS_BY_FIELD[field]:
            raise _error(f"The operator '{op.upper()}' is not supported by the '{name}' field.")
        if op in ("is", "is not"):
            kind, value = self.take()
            if value.lower() not in ("empty", "null"):
                raise _error(f"The operator '{op.upper()}' only supports EMPTY or NULL, not '{value}'.")
            return Clause(field, op, (None,))
        if op in ("in", "not in"):
            if self.take() != ("punct", "("):
                raise _error(f"Expecting '(' after '{op.upper()}'.")
            values = [self.value(field)]
            while self.peek() == ("punct", ","):
                self.take()
                values.append(self.value(field))
            if self.take() != ("punct", ")"):
                raise _error("Expecting ')' to close the list of values.")
            return Clause(field, op, tuple(values))
        return Clause(field, op, (self.value(field),))

    def operator(self) -> str:
        kind, text = self.take()
        if kind == "op":
            return text
        lowered = text.lower()
        if kind == "word" and lowered == "in":
            return "in"
        if kind == "word" and lowered in ("not", "is"):
            if lowered == "not" and self.is_word("in"):
                self.take()
                return "not in"
            if lowered == "is":
                if self.is_word("not"):
                    self.take()
                    return "is not"
                return "is"
        if kind == "word" and lowered in ("was", "changed"):
            raise _error(f"the sandbox does not support the history operator '{text.upper()}'; it supports {SUPPORTED}.")
        raise _error(f"Expecting operator but got '{text}'.")

    def value(self, field: str) -> Any:
        kind, text = self.take()
        if kind == "punct":
            raise _error(f"Expecting a value but got '{text}'.")
        if kind == "word" and self.peek() == ("punct", "("):
            raise _error(f"the sandbox does not support JQL functions such as '{text}()'; it supports {SUPPORTED}.")
        if field in _DATE_FIELDS:
            return self.date(field, text)
        return text

    def date(self, field: str, text: str) -> datetime:
        relative = _RELATIVE.match(text.strip())
        if relative:
            sign = -1 if relative.group(1) == "-" else 1
            amount = int(relative.group(2)) * sign
            unit = relative.group(3).lower()
            delta = {"w": timedelta(weeks=amount), "d": timedelta(days=amount),
                     "h": timedelta(hours=amount), "m": timedelta(minutes=amount)}[unit]
            return self.now + delta
        for fmt in _DATE_FORMATS:
            try:
                return datetime.strptime(text.strip(), fmt).replace(tzinfo=self.tz)
            except ValueError:
                continue
        raise _error(
            f"Date value '{text}' for field '{field}' is invalid. Valid formats include: "
            "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
        )


def parse(jql: str, *, now: datetime, tz: tzinfo) -> Query:
    """Parse `jql`; relative dates resolve against `now`, absolute ones in `tz`."""
    return _Parser(jql or "", now, tz).parse()


def _fold(value: str | None) -> str:
    return (value or "").casefold()


def _equals(field: str, facts: IssueFacts, value: Any) -> bool:
    if value is None:  # IS EMPTY
        return {
            "resolution": facts.resolution is None, "labels": not facts.labels,
            "assignee": not facts.assignee, "reporter": not facts.reporter,
        }.get(field, False)
    v = _fold(str(value))
    if field == "project":
        return v in (_fold(facts.project_key), _fold(facts.project_name), facts.project_id)
    if field == "key":
        return v in (_fold(facts.key), str(facts.id))
    if field == "status":
        return v == _fold(facts.status)
    if field == "statusCategory":
        return v in (_fold(facts.status_category_key), _fold(facts.status_category_name), str(facts.status_category_id))
    if field == "resolution":
        if v in ("unresolved",):
            return facts.resolution is None
        return facts.resolution is not None and v == _fold(facts.resolution)
    if field == "priority":
        return v == _fold(facts.priority)
    if field == "labels":
        return any(v == _fold(label) for label in facts.labels)
    if field in ("assignee", "reporter"):
        return any(v == _fold(ident) for ident in getattr(facts, field))
    raise AssertionError(field)


def _text_matches(field: str, facts: IssueFacts, phrase: str) -> bool:
    haystack = {
        "summary": facts.summary, "description": facts.description, "comment": facts.comments,
        "text": " ".join((facts.summary, facts.description, facts.comments, facts.other_text)),
    }[field].casefold()
    terms = re.findall(r"\w+", phrase.casefold())
    return bool(terms) and all(term in haystack for term in terms)


def _clause_matches(clause: Clause, facts: IssueFacts) -> bool:
    field, op, values = clause.field, clause.op, clause.values
    if field in ("created", "updated"):
        actual: datetime = getattr(facts, field)
        if op in ("is", "is not"):
            return op == "is not"  # both are always set
        target: datetime = values[0]
        # JQL dates have minute precision.
        actual = actual.replace(second=0, microsecond=0)
        return {
            "=": actual == target, "!=": actual != target, ">": actual > target,
            ">=": actual >= target, "<": actual < target, "<=": actual <= target,
        }[op]
    if op in ("~", "!~"):
        found = _text_matches(field, facts, str(values[0]))
        return found if op == "~" else not found
    hit = any(_equals(field, facts, v) for v in values)
    if op in ("=", "in", "is"):
        return hit
    if field == "labels" and op in ("!=", "not in") and not facts.labels:
        return False  # Jira: "labels != x" never matches issues without labels
    if field in ("assignee", "reporter") and op in ("!=", "not in") and not getattr(facts, field):
        return False
    return not hit


def matches(query: Query, facts: IssueFacts) -> bool:
    return all(_clause_matches(c, facts) for c in query.clauses)


def _sort_key(field: str, facts: IssueFacts) -> Any:
    if field == "key":
        project, _, number = facts.key.partition("-")
        return (project, int(number) if number.isdigit() else 0)
    if field == "priority":
        # Jira orders priority by scheme rank: ASC = most urgent first in its UI "order by priority DESC".
        return -facts.priority_rank
    if field == "status":
        return facts.status.casefold()
    return getattr(facts, field)


def order(query: Query, issues: Sequence[IssueFacts]) -> list[IssueFacts]:
    """Sort as Jira does: by the ORDER BY fields, else newest issue first."""
    ordered = sorted(issues, key=lambda f: f.id, reverse=True)
    for field, descending in reversed(query.order_by or (("key", True),)):
        ordered.sort(key=lambda f, field=field: _sort_key(field, f), reverse=descending)
    return ordered


def search(query: Query, issues: Sequence[IssueFacts],
           key_exists: Callable[[str], bool] | None = None) -> list[IssueFacts]:
    if key_exists is not None:
        for key in query.referenced("key"):
            if not key_exists(key):
                raise JqlError(f"An issue with key '{key}' does not exist for field 'key'.")
    return order(query, [f for f in issues if matches(query, f)])
