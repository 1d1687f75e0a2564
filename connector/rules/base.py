"""What every rule type shares: matching, comment specs, the evaluation context, the registry.

Rule types follow Cloud Custodian's habit: each is a small class registered under its
`type` name, carrying its own schema (a pydantic model) and a YAML example in its docstring.
An unknown type fails at load time with the list of valid types.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from connector import templates
from connector.model import PRIORITIES, AddComment, Priority, SlaClock, Ticket, trusted

if TYPE_CHECKING:
    from connector.config import SupportConfig

RULE_TYPES: dict[str, type["RuleBase"]] = {}


def register(cls: type["RuleBase"]) -> type["RuleBase"]:
    """Register a rule class under the literal value of its `type` field."""
    type_name = cls.model_fields["type"].default
    RULE_TYPES[type_name] = cls
    return cls


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Match(Strict):
    """Which tickets a rule (or a part of it) applies to; an empty list means any.

    Lists are alternatives (any one of them), different keys must all hold. `organizations`
    are the customer's organizations (Jira Service Management organizations, the Zendesk
    organization), compared case-insensitively; `email_domains` is the requester's e-mail
    domain, where `example.com` matches `example.com` and any subdomain of it
    (`eu.example.com`, never `notexample.com`): whoever owns a domain owns its subdomains,
    and customers mail from both. Fail closed: a ticket whose organizations or requester
    e-mail the platform did not tell (a hidden e-mail, a site without the organizations
    field) matches no `organizations` / `email_domains` condition.
    """

    categories: list[str] = Field(default_factory=list)
    priorities: list[Priority] = Field(default_factory=list)
    platforms: list[str] = Field(default_factory=list)
    organizations: list[str] = Field(default_factory=list, description="customer organizations (names, any case)")
    email_domains: list[str] = Field(
        default_factory=list, description="requester e-mail domains; example.com also matches its subdomains")

    @field_validator("email_domains")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        domains = []
        for value in values:
            domain = value.strip().lstrip("@").rstrip(".").casefold()
            if not _DOMAIN.match(domain):
                raise ValueError(f"email_domains: {value!r} is not a domain; write e.g. example.com (no '@', no '*': "
                                 "a domain also matches its subdomains)")
            domains.append(domain)
        return domains

    @field_validator("organizations")
    @classmethod
    def _organizations(cls, values: list[str]) -> list[str]:
        if any(not value.strip() for value in values):
            raise ValueError("organizations: a name must not be empty")
        return values

    @property
    def unconditional(self) -> bool:
        """True when this matches every ticket (no condition given)."""
        return not (self.categories or self.priorities or self.platforms or self.organizations or self.email_domains)

    @property
    def customer_specific(self) -> bool:
        """True when this names customers (organizations or e-mail domains): a contract tier."""
        return bool(self.organizations or self.email_domains)

    def matches(self, ticket: Ticket) -> bool:
        if self.unconditional:
            return True  # the common `when:` of a rule that applies to every ticket
        # Folded per call, not cached: `model_copy(update=...)` would leave a cache stale.
        if self.categories and (ticket.category or "").casefold() not in {c.casefold() for c in self.categories}:
            return False
        if self.priorities and ticket.priority not in self.priorities:
            return False
        if self.platforms and ticket.platform not in self.platforms:
            return False
        if self.organizations and (ticket.organizations is None or not {o.strip().casefold() for o in self.organizations}
                                   .intersection(o.casefold() for o in ticket.organizations)):
            return False  # unknown organizations match no organization (fail closed)
        if self.email_domains and not domain_matches(ticket.requester_email_domain, self.email_domains):
            return False
        return True


_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9\u00a0-\uffff](?:[a-z0-9\u00a0-\uffff-]{0,61}[a-z0-9\u00a0-\uffff])?"
                     r"(?:\.[a-z0-9\u00a0-\uffff](?:[a-z0-9\u00a0-\uffff-]{0,61}[a-z0-9\u00a0-\uffff])?)+$")


def domain_matches(domain: str | None, wanted: Iterable[str]) -> bool:
    """True when `domain` is one of `wanted` (folded domains) or a subdomain of one; None never matches."""
    if not domain:
        return False
    domain = domain.rstrip(".").casefold()
    return any(domain == w or domain.endswith("." + w) for w in wanted)


class CommentSpec(Strict):
    """A comment the rule posts: a Jinja2 template and whether the customer sees it."""

    template: str
    public: bool = False


@dataclass
class EvalContext:
    """Mutable state of one evaluation: the ticket as projected by earlier rules' actions."""

    ticket: Ticket
    now: datetime
    config: "SupportConfig"
    sla: dict[str, SlaClock] = field(default_factory=dict)
    # Per metric: (running intervals, calendar) so later rules can ask when a share is reached.
    sla_timelines: dict[str, Any] = field(default_factory=dict)
    deadlines: list[datetime] = field(default_factory=list)
    # The sla rule (contract tier) whose clocks are in `sla`, once it ran (`connector.rules.tiers`).
    sla_rule: Any = None

    def marker(self, name: str) -> str:
        return self.config.marker(name)

    def has_marker(self, name: str) -> bool:
        # `ticket.markers` without building the union of both sets on every question.
        marker = self.marker(name)
        ticket = self.ticket
        return marker in ticket.labels or marker in ticket.comment_markers

    def add_deadline(self, at: datetime | None) -> None:
        if at is not None and at > self.now:
            self.deadlines.append(at)

    def field_mapped(self, logical: str) -> bool:
        """True when the ticket's platform has a field for `logical` (writes to unmapped fields are skipped)."""
        return logical in self.config.platforms.for_platform(self.ticket.platform).fields

    def comment(self, rule: "RuleBase", spec: CommentSpec, reason: str, marker: str | None, **extra: Any) -> AddComment:
        body = templates.render(spec.template, {"ticket": templates.ticket_context(self.ticket), "now": self.now, **extra})
        return trusted(AddComment, rule=rule.id, reason=reason, body=body, public=spec.public,
                          marker=self.marker(marker) if marker else None)


class RuleBase(Strict):
    """Fields every rule has. Subclasses add `type: Literal[...]` and their own settings."""

    type: str
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="unique id, used in markers and logs")
    description: str = ""
    enabled: bool = True
    mode: Literal["enforce", "observe"] = Field(
        default="enforce",
        description="enforce: write this rule's actions; observe: only record them (`connector observed`), "
                    "for a rule-by-rule rollout")
    when: Match = Field(default_factory=Match, description="which tickets the rule applies to")

    # Sample variables each rule's templates may use, checked at load time.
    template_sample: ClassVar[dict[str, Any]] = {}
    # What a rule derives from its own settings once (folded names, parsed durations …), filled
    # on first use; read through `prepared()`, which avoids pydantic's attribute detour.
    _prepared_memo: dict = PrivateAttr(default_factory=dict)

    def prepared(self) -> dict:
        return self.__pydantic_private__["_prepared_memo"]

    def prepare(self, config: "SupportConfig") -> None:
        """Derive once, when the config loads, what evaluating would otherwise work out per
        ticket (parsed durations, …). Evaluation prepares lazily as well, so a config built
        without `load_config` works the same; this only moves the cost to load time."""

    def minutes_in(self, duration: str, calendar) -> float:
        """`parse_duration(duration, calendar)`, parsed once per calendar (business days need it)."""
        memo = self.prepared()
        key = ("minutes", duration, calendar)
        found = memo.get(key)
        if found is None:
            from connector.calendar import parse_duration

            found = memo[key] = parse_duration(duration, calendar)
        return found

    def applies(self, ticket: Ticket) -> bool:
        if not self.enabled:
            return False
        when = self.when
        # Most rules apply to every ticket: answer that without a further call.
        return when.unconditional or when.matches(ticket)

    @abstractmethod
    def evaluate(self, ctx: EvalContext) -> list:
        """The actions this rule wants on `ctx.ticket` at `ctx.now`; pure, no I/O."""

    def comment_specs(self) -> Iterable[tuple[tuple, CommentSpec]]:
        """(key path inside the rule, spec) of every template in this rule, for load-time checks."""
        return ()

    def check(self, config: "SupportConfig") -> list[tuple[tuple, str]]:
        """Problems that need the whole config (calendar names, templates, field names),
        as (key path inside the rule, message)."""
        problems = []
        for where, spec in self.comment_specs():
            sample = {"ticket": templates.SAMPLE_TICKET, "now": datetime(2026, 11, 20, 9, 0), **self.template_sample}
            problem = templates.check(spec.template, sample)
            if problem:
                problems.append((where + ("template",), problem))
        return problems


def next_priority(priority: Priority | None) -> Priority | None:
    """One step more urgent (P2 -> P1); P0 stays P0."""
    if priority is None:
        return None
    index = PRIORITIES.index(priority)
    return PRIORITIES[max(0, index - 1)]


class _AnyCalendar:
    """Stands in for a calendar when only the spelling of a duration is checked."""

    business_day_minutes = 480.0


def check_duration(text: str) -> str:
    """Validate a duration's spelling at load time (its length in minutes needs the calendar)."""
    from connector.calendar import parse_duration

    parse_duration(text, _AnyCalendar())
    return text
