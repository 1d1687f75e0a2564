"""What the loaded rules need from a platform, read from the config alone (no I/O).

The doctor checks a site against the rules, not against everything a rule type could do:
a field nobody reads need not exist, a status nobody moves tickets into need not be
reachable. This module walks the rules once and lists, in logical (platform-neutral)
terms, the fields they read and write (and in which statuses they write them), the
transitions they make, the priorities, groups and assignees they set, and whether they
post internal notes. Each platform's doctor module translates that through its mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connector.config import SupportConfig
from connector.model import DONE_STATUSES, PRIORITIES, Status
from connector.rules.auto_close import AutoCloseRule
from connector.rules.closing_summary import ClosingSummaryRule
from connector.rules.closure import ClosureRule
from connector.rules.escalation import EscalationRule
from connector.rules.follow_up import FollowUpRule
from connector.rules.problem_number import FIELD as PROBLEM_NUMBER, ProblemNumberRule
from connector.rules.required_fields import RequiredFieldsRule
from connector.rules.review_gate import ReviewGateRule
from connector.rules.routing import RoutingRule
from connector.rules.similar_cases import SimilarCasesRule
from connector.rules.sla import SlaRule

OPEN_STATUSES = frozenset(s for s in Status if s not in DONE_STATUSES)
# Written in the status a ticket is in when the rule acts; the special names stand for
# what is not a logical field: the group field, the assignee, the priority and the labels
# that carry markers.
GROUP, ASSIGNEE, PRIORITY, LABELS = "@group", "@assignee", "@priority", "@labels"


@dataclass(frozen=True)
class Move:
    """A transition the rules make: from any of `sources` into `target`, by rule `rule`."""

    rule: str
    sources: frozenset[Status]
    target: Status


@dataclass
class Needs:
    """Everything the enabled rules ask of a platform, in logical names."""

    # logical field -> ids of the rules that read it
    reads: dict[str, set[str]] = field(default_factory=dict)
    # logical field (or GROUP/ASSIGNEE/PRIORITY/LABELS) -> statuses the ticket is in when written
    writes: dict[str, set[Status]] = field(default_factory=dict)
    # logical field -> ids of the rules that write it
    writers: dict[str, set[str]] = field(default_factory=dict)
    moves: list[Move] = field(default_factory=list)
    priorities: set[str] = field(default_factory=set)  # P0..P3 read or written
    groups: dict[str, set[str]] = field(default_factory=dict)  # group -> rule ids
    assignees: dict[str, set[str]] = field(default_factory=dict)  # user -> rule ids
    internal_notes: set[str] = field(default_factory=set)  # rule ids posting internal notes
    public_comments: set[str] = field(default_factory=set)
    reads_category: bool = False
    # rule ids that pick a comment's language by the requester's locale (Jira: `GET /user`)
    reads_requester_locale: set[str] = field(default_factory=set)
    # logical field -> (rule id, values the rule recognises in it: any one must be choosable)
    recognised: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)

    def read(self, name: str, rule: str) -> None:
        if name == "category":
            self.reads_category = True
        elif name == "priority":
            self.priorities.update(PRIORITIES)
        else:
            self.reads.setdefault(name, set()).add(rule)

    def write(self, name: str, rule: str, statuses: frozenset[Status] | set[Status]) -> None:
        self.writes.setdefault(name, set()).update(statuses)
        self.writers.setdefault(name, set()).add(rule)

    def route(self, rule: str, group: str | None, assignee: str | None,
              statuses: frozenset[Status] | set[Status]) -> None:
        """A rule sets the group and/or the assignee (a routing destination, an escalation level)."""
        if group:
            self.groups.setdefault(group, set()).add(rule)
            self.write(GROUP, rule, statuses)
        if assignee:
            self.assignees.setdefault(assignee, set()).add(rule)
            self.write(ASSIGNEE, rule, statuses)

    def comment(self, rule: str, public: bool, statuses: frozenset[Status] | set[Status]) -> None:
        (self.public_comments if public else self.internal_notes).add(rule)
        # The marker of a one-time comment is also written as a label, for agents' searches.
        self.write(LABELS, rule, statuses)

    @property
    def statuses(self) -> set[Status]:
        """Every logical status a rule moves tickets into or out of."""
        out: set[Status] = set()
        for move in self.moves:
            out |= move.sources | {move.target}
        return out


def rule_needs(config: SupportConfig) -> Needs:
    """What the enabled rules of `config` read, write and move."""
    needs = Needs()
    for rule in config.rules:
        if not rule.enabled:
            continue
        _NEEDS.get(type(rule), lambda rule, needs: None)(rule, needs)
    return needs


def _required_fields(rule: RequiredFieldsRule, needs: Needs) -> None:
    intake = frozenset(rule.intake_statuses)
    for name in {*rule.fields, *(f for fs in rule.by_category.values() for f in fs),
                 *(f for fs in rule.by_priority.values() for f in fs)}:
        needs.read(name, rule.id)
    if rule.by_priority:
        needs.priorities.update(PRIORITIES)
    needs.comment(rule.id, rule.comment.public, intake)
    needs.moves.append(Move(rule.id, intake, rule.waiting_status))
    needs.moves.append(Move(rule.id, frozenset({rule.waiting_status}), rule.resume_status))
    needs.write(LABELS, rule.id, {rule.waiting_status})


def _routing(rule: RoutingRule, needs: Needs) -> None:
    statuses = frozenset(rule.statuses)
    needs.reads_category = needs.reads_category or any(r.categories for r in rule.routes)
    for destination in (*rule.routes, rule.default):
        if destination is not None:
            needs.route(rule.id, destination.group, destination.assignee, statuses)


def _sla(rule: SlaRule, needs: Needs) -> None:
    needs.priorities.update(str(p) for p in rule.targets)
    for logical in rule.due_fields.values():
        needs.write(logical, rule.id, OPEN_STATUSES)
    notify = rule.notify
    for spec in (getattr(notify, "warning", None), getattr(notify, "breach", None)):
        if spec is not None:
            needs.comment(rule.id, spec.public, OPEN_STATUSES)


def _escalation(rule: EscalationRule, needs: Needs) -> None:
    for level in rule.levels:
        needs.route(rule.id, level.assign_group, level.assign_user, OPEN_STATUSES)
        if level.raise_priority or level.set_priority:
            needs.priorities.update(PRIORITIES)
            needs.write(PRIORITY, rule.id, OPEN_STATUSES)
        if level.comment is not None:
            needs.comment(rule.id, level.comment.public, OPEN_STATUSES)
        needs.write(LABELS, rule.id, OPEN_STATUSES)


def _closure(rule: ClosureRule, needs: Needs) -> None:
    for name in {*rule.fields, *(f for fs in rule.by_category.values() for f in fs), rule.verification_field}:
        needs.read(name, rule.id)
    if rule.require_kb_link_when_first_of_kind:
        needs.read(rule.kb_field, rule.id)
        if rule.recurrence_note_field:
            needs.read(rule.recurrence_note_field, rule.id)
    if rule.not_resolved_values:
        needs.recognised[rule.verification_field] = (rule.id, frozenset(rule.not_resolved_values))
    # A "not resolved" verification is cleared while the ticket is still resolved/closed.
    needs.write(rule.verification_field, rule.id, DONE_STATUSES)
    needs.comment(rule.id, rule.comment.public, DONE_STATUSES)
    if rule.reopen_comment is not None:
        needs.comment(rule.id, rule.reopen_comment.public, DONE_STATUSES)
    needs.moves.append(Move(rule.id, frozenset(DONE_STATUSES), rule.reopen_status))


def _review_gate(rule: ReviewGateRule, needs: Needs) -> None:
    # Reads only: the change type (one of its values must be choosable) and the reviewer.
    needs.read(rule.change_type_field, rule.id)
    needs.read(rule.reviewer_field, rule.id)
    needs.recognised[rule.change_type_field] = (rule.id, frozenset(rule.change_types))
    needs.comment(rule.id, rule.comment.public, DONE_STATUSES)
    needs.moves.append(Move(rule.id, frozenset(DONE_STATUSES), rule.reopen_status))


def _closing_summary(rule: ClosingSummaryRule, needs: Needs) -> None:
    # Reads the knowledge it summarises; posts one public comment while resolved/closed.
    for name in (rule.solution_field, rule.root_cause_field, rule.preventive_measures_field):
        needs.read(name, rule.id)
    needs.comment(rule.id, rule.comment.public, DONE_STATUSES)
    if len(rule.comment.templates) > 1:  # one language: nothing to choose, no user read
        needs.reads_requester_locale.add(rule.id)


def _auto_close(rule: AutoCloseRule, needs: Needs) -> None:
    needs.comment(rule.id, rule.comment.public, {Status.RESOLVED})
    needs.moves.append(Move(rule.id, frozenset({Status.RESOLVED}), rule.close_status))


def _follow_up(rule: FollowUpRule, needs: Needs) -> None:
    if rule.when.priorities:
        needs.priorities.update(str(p) for p in rule.when.priorities)
    if rule.due_field:
        needs.write(rule.due_field, rule.id, {Status.CLOSED})
    if rule.reminder is not None:
        needs.comment(rule.id, rule.reminder.public, {Status.CLOSED})


def _similar_cases(rule: SimilarCasesRule, needs: Needs) -> None:
    needs.comment(rule.id, rule.comment.public, frozenset(rule.statuses))
    needs.read("root_cause", rule.id)
    needs.read("solution", rule.id)


def _problem_number(rule: ProblemNumberRule, needs: Needs) -> None:
    # Read (an existing number is kept) and written in every open status: a ticket gets its
    # number at its first reconcile, whatever status intake has moved it to by then.
    needs.read(PROBLEM_NUMBER, rule.id)
    needs.write(PROBLEM_NUMBER, rule.id, OPEN_STATUSES)


_NEEDS = {
    RequiredFieldsRule: _required_fields,
    RoutingRule: _routing,
    SlaRule: _sla,
    EscalationRule: _escalation,
    ClosureRule: _closure,
    AutoCloseRule: _auto_close,
    FollowUpRule: _follow_up,
    SimilarCasesRule: _similar_cases,
    ProblemNumberRule: _problem_number,
    ReviewGateRule: _review_gate,
    ClosingSummaryRule: _closing_summary,
}
