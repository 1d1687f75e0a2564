"""Similar past cases: a new ticket gets one internal note listing resolved tickets like it.

Agents solve a problem faster when they see how the same problem was solved before, with
its root cause and solution. The lookup itself (the platform's search, then BM25 ranking)
happens outside the pure engine, in `connector.knowledge.enrich`, and only when a rule's
`wants_lookup` says it will use the answer; this rule only reads `ticket.similar_cases`
(None: nobody looked, so it does nothing).

Once per ticket: the note is recorded by the marker `<id>-suggested`. When the lookup
finds nothing above `min_score`, the marker `<id>-none` is added instead, so the search is
not repeated on every later reconcile (and "first of its kind" tickets can be searched
for). The same settings (`min_score`, recall sizes) define "similar" for the closure rule's
knowledge-base gate.

Example::

    - id: similar-cases
      type: similar-cases
      categories_off: [billing]          # or `when: {categories: [network, login]}`
      statuses: [new, waiting_for_information]
      min_score: 0.2
      max_results: 3
      comment:
        public: false
        template: |
          Similar resolved cases:
          {% for case in cases %}
          - {{ case.key }} {{ case.summary }} ({{ case.url }})
            Root cause: {{ case.root_cause }}
            Solution: {{ case.solution }}
          {% endfor %}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from connector.model import AddLabel, SimilarCase, Status, Ticket, trusted
from connector.rules.base import CommentSpec, EvalContext, RuleBase, register

if TYPE_CHECKING:
    from connector.config import SupportConfig

SAMPLE_CASES = [{
    "key": "SUP-7", "url": "https://example.atlassian.net/browse/SUP-7", "summary": "VPN 连接频繁断开",
    "root_cause": "Expired gateway certificate", "solution": "Renewed the certificate", "score": 0.62,
}]


@register
class SimilarCasesRule(RuleBase):
    type: Literal["similar-cases"] = "similar-cases"
    statuses: list[Status] = Field(
        default=[Status.NEW, Status.WAITING_FOR_INFORMATION],
        description="statuses of a ticket that is still new; list every status intake may move a new ticket to, "
                    "since earlier rules in the same reconcile may have moved it",
    )
    categories_off: list[str] = Field(default_factory=list, description="categories that get no suggestions")
    min_score: float = Field(default=0.2, ge=0, le=1,
                             description="share (0..1) of the ticket's weighted terms a resolved case must share")
    max_results: int = Field(default=3, ge=1, le=10, description="how many cases the note lists at most")
    recall_terms: int = Field(default=3, ge=1, le=5,
                              description="platform searches per lookup, one per key term of the ticket")
    recall_limit: int = Field(default=50, ge=1, le=100, description="resolved tickets read per search, newest first")
    comment: CommentSpec

    template_sample: ClassVar[dict] = {"cases": SAMPLE_CASES}

    def comment_specs(self):
        return [(("comment",), self.comment)]

    def _suggested(self, name: str) -> str:
        return f"{self.id}-{name}"

    def wants_lookup(self, ticket: Ticket, config: "SupportConfig") -> bool:
        """True when this rule would act on the ticket once it knows its similar cases."""
        if not self.applies(ticket):
            return False
        if ticket.category and ticket.category.casefold() in {c.casefold() for c in self.categories_off}:
            return False
        if not any(ticket.is_in(status) for status in self.statuses):
            return False
        markers = ticket.markers
        return config.marker(self._suggested("suggested")) not in markers and \
            config.marker(self._suggested("none")) not in markers

    def evaluate(self, ctx: EvalContext) -> list:
        ticket = ctx.ticket
        if ticket.similar_cases is None or not self.wants_lookup(ticket, ctx.config):
            return []
        cases = [c for c in ticket.similar_cases if c.score >= self.min_score][: self.max_results]
        if not cases:
            reason = f"no resolved case scores {self.min_score} or more"
            return [trusted(AddLabel, rule=self.id, reason=reason, label=ctx.marker(self._suggested("none")))]
        reason = f"{len(cases)} similar resolved case(s): {', '.join(c.key for c in cases)}"
        return [ctx.comment(self, self.comment, reason, self._suggested("suggested"),
                            cases=[case_context(c) for c in cases])]


def case_context(case: SimilarCase) -> dict:
    """The variables a template sees for one case (`score` rounded as a person reads it)."""
    return {"key": case.key, "url": case.url or "", "summary": case.summary, "root_cause": case.root_cause,
            "solution": case.solution, "score": round(case.score, 2)}


def similar_settings(config: "SupportConfig") -> SimilarCasesRule | None:
    """The similar-cases rule whose settings define "similar" for the whole config: the first
    one, enabled or not (an admin may switch the notes off and keep the closure gate)."""
    return next((rule for rule in config.rules if isinstance(rule, SimilarCasesRule)), None)
