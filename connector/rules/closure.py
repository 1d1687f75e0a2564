"""Closure criteria: a ticket may only be resolved or closed with its knowledge recorded.

A ticket that entered resolved/closed without the required fields (root cause, solution,
the reporter's verification result …) is moved back to work with a comment naming what is
missing. If the reporter's verification says "not resolved", the ticket goes back to work
too. Each return is keyed on the number of times the ticket has entered a done status, so
it happens once per resolve attempt however often the event is replayed, and a second
attempt without the fields is answered again.

Knowledge-base gate (`require_kb_link_when_first_of_kind`): a problem nobody has solved
before must leave a knowledge-base article behind, and a known problem that comes back
needs a note saying why it recurs (the fix did not hold, a new site, a new version …).
Whether the ticket is a first of its kind is `ticket.similar_cases`, looked up before
evaluation by `connector.knowledge.enrich` with the settings of the config's
`similar-cases` rule: no resolved case above its `min_score` → `kb_field` is required;
one or more → `recurrence_note_field` is required. When `similar_cases` is None nobody
looked (no lookup was wanted, or the search failed) and the gate does not apply: it never
sends a ticket back on a guess. A resolve attempt that passes the gate is recorded by the
marker `<id>-knowledge-checked-<attempt>`, so the searches run once per attempt, not on
every later reconcile of a resolved ticket.

Example::

    - id: closure
      type: closure
      fields: [root_cause, solution, verification_result]
      by_category:
        outage: [root_cause, solution, verification_result, kb_link]
      not_resolved_values: ["not resolved", "未解决"]
      require_kb_link_when_first_of_kind: true
      kb_field: kb_link
      recurrence_note_field: recurrence_note
      comment:
        template: "{{ ticket.key }} cannot be resolved yet. Missing: {{ missing | join(', ') }}"
      reopen_comment:
        public: true
        template: "The reporter says the problem is not solved; {{ ticket.key }} is back in progress."
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from connector.model import DONE_STATUSES, AddLabel, SetFields, Status, Ticket, Transition, trusted
from connector.rules.base import CommentSpec, EvalContext, RuleBase, register
from connector.rules.similar_cases import SAMPLE_CASES, case_context

if TYPE_CHECKING:
    from connector.config import SupportConfig


def done_entries(ticket: Ticket) -> int:
    """How many times the ticket has entered resolved/closed from an open status."""
    count = 0
    for change in ticket.status_history:
        if change.to_status in DONE_STATUSES and change.from_status not in DONE_STATUSES:
            count += 1
    if count == 0 and ticket.status in DONE_STATUSES:
        count = 1  # created straight into a done status, or history not available
    return count


@register
class ClosureRule(RuleBase):
    type: Literal["closure"] = "closure"
    fields: list[str] = Field(description="logical fields required to enter resolved/closed")
    by_category: dict[str, list[str]] = Field(default_factory=dict, description="category -> fields, replacing `fields`")
    verification_field: str = "verification_result"
    not_resolved_values: list[str] = Field(default=["not resolved", "not_resolved", "unresolved"])
    reopen_status: Status = Status.IN_PROGRESS
    require_kb_link_when_first_of_kind: bool = Field(
        default=False, description="a ticket with no similar resolved case needs `kb_field`; one with similar "
                                   "cases needs `recurrence_note_field` (settings of the similar-cases rule)")
    kb_field: str = Field(default="kb_link", description="logical field holding the knowledge-base link")
    recurrence_note_field: str | None = Field(
        default="recurrence_note", description="logical field explaining why a known issue recurs; null: not required")
    comment: CommentSpec
    reopen_comment: CommentSpec | None = None

    template_sample: ClassVar[dict] = {"missing": ["Root cause"], "missing_fields": ["root_cause"],
                                       "verification": "not resolved", "similar": SAMPLE_CASES}

    def comment_specs(self):
        specs = [(("comment",), self.comment)]
        if self.reopen_comment:
            specs.append((("reopen_comment",), self.reopen_comment))
        return specs

    def check(self, config: "SupportConfig") -> list[tuple[tuple, str]]:
        problems = super().check(config)
        if not self.require_kb_link_when_first_of_kind:
            return problems
        if not any(rule.type == "similar-cases" for rule in config.rules):
            problems.append((("require_kb_link_when_first_of_kind",),
                             "needs a rule of type 'similar-cases': its min_score decides what counts as a "
                             "similar resolved case (set `enabled: false` on it to post no notes)"))
        known = set(config.platforms.jira.fields) | set(config.platforms.zendesk.fields)
        for key in ("kb_field", "recurrence_note_field"):
            name = getattr(self, key)
            if name is not None and name not in known:
                problems.append(((key,), f"field '{name}' is not mapped on any platform; known fields: "
                                         f"{', '.join(sorted(known))}"))
        return problems

    def _gate_fields(self) -> list[str]:
        return [self.kb_field, *([self.recurrence_note_field] if self.recurrence_note_field else [])]

    def _not_resolved(self, ticket: Ticket) -> bool:
        verification = str(ticket.fields.get(self.verification_field) or "").strip()
        return verification.casefold() in {v.casefold() for v in self.not_resolved_values}

    def wants_lookup(self, ticket: Ticket, config: "SupportConfig") -> bool:
        """True when the knowledge-base gate needs `ticket.similar_cases` to judge this resolve attempt.

        Only a ticket in resolved/closed whose current attempt has not been judged yet
        (neither sent back nor passed) and that lacks a gate field: with both the link and
        the note present, nothing the lookup could say would send it back.
        """
        if not self.require_kb_link_when_first_of_kind or not self.applies(ticket):
            return False
        if ticket.status not in DONE_STATUSES or self._not_resolved(ticket):
            return False
        attempt = done_entries(ticket)
        if {config.marker(f"{self.id}-returned-{attempt}"),
                config.marker(f"{self.id}-knowledge-checked-{attempt}")} & ticket.markers:
            return False
        return not all(ticket.field_present(name) for name in self._gate_fields())

    def knowledge_missing(self, ticket: Ticket) -> list[str]:
        """The gate's required fields that `ticket` lacks; [] when the gate is off or nobody looked."""
        if not self.require_kb_link_when_first_of_kind or ticket.similar_cases is None:
            return []
        if ticket.similar_cases:
            wanted = [self.recurrence_note_field] if self.recurrence_note_field else []
        else:
            wanted = [self.kb_field]
        return [name for name in wanted if not ticket.field_present(name)]

    def required_for(self, ticket: Ticket) -> list[str]:
        by_category = {k.casefold(): v for k, v in self.by_category.items()}
        return by_category.get((ticket.category or "").casefold(), self.fields)

    def evaluate(self, ctx: EvalContext) -> list:
        ticket = ctx.ticket
        if ticket.status not in DONE_STATUSES:
            return []
        attempt = done_entries(ticket)
        missing = [f for f in self.required_for(ticket) if not ticket.field_present(f)]
        missing += [f for f in self.knowledge_missing(ticket) if f not in missing]
        similar = [case_context(c) for c in ticket.similar_cases or ()]
        verification = str(ticket.fields.get(self.verification_field) or "").strip()
        if self._not_resolved(ticket):
            marker = f"{self.id}-not-resolved-{attempt}"
            if ctx.has_marker(marker):
                return []
            reason = f"reporter's verification is '{verification}'"
            spec = self.reopen_comment or self.comment
            actions = [ctx.comment(self, spec, reason, marker, missing=[], missing_fields=[], verification=verification,
                                   similar=similar),
                       Transition(rule=self.id, reason=reason, to=self.reopen_status)]
            if ctx.field_mapped(self.verification_field):
                # The next resolve attempt needs a fresh verification, not this old "no".
                actions.append(trusted(SetFields, rule=self.id, reason=reason, fields={self.verification_field: None}))
            return actions
        if missing:
            marker = f"{self.id}-returned-{attempt}"
            if ctx.has_marker(marker):
                return []
            reason = f"entered {ticket.status.value} without {', '.join(missing)}"
            labels = [ctx.config.field_label(m) for m in missing]
            return [ctx.comment(self, self.comment, reason, marker, missing=labels, missing_fields=missing,
                                verification=verification, similar=similar),
                    Transition(rule=self.id, reason=reason, to=self.reopen_status)]
        checked = f"{self.id}-knowledge-checked-{attempt}"
        if self.require_kb_link_when_first_of_kind and ticket.similar_cases is not None and not ctx.has_marker(checked):
            kind = "a known issue" if ticket.similar_cases else "a first of its kind"
            return [trusted(AddLabel, rule=self.id, reason=f"knowledge recorded for {kind}", label=ctx.marker(checked))]
        return []
