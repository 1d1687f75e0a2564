"""Routing: an unassigned ticket goes to the team that owns its category or keywords.

Routes are tried in order; the first whose categories and keywords match wins, else the
default. Only tickets with no group yet are routed, so a human reassignment is never undone.
Keywords match case-insensitively anywhere in the summary or description, which also
works for Chinese text without word segmentation.

Example::

    - id: routing
      type: routing
      routes:
        - categories: [network]
          group: network-team
        - keywords: [invoice, billing, 发票]
          group: billing
          assignee: billing-lead
      default: {group: L1}
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from connector.model import Assign, Status, Ticket
from connector.rules.base import EvalContext, RuleBase, Strict, register


class Destination(Strict):
    group: str | None = None
    assignee: str | None = None

    @model_validator(mode="after")
    def _some(self):
        if not self.group and not self.assignee:
            raise ValueError("give a `group`, an `assignee` or both")
        return self


class Route(Destination):
    categories: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)

    def matches(self, ticket: Ticket) -> bool:
        if self.categories and (ticket.category or "").casefold() not in {c.casefold() for c in self.categories}:
            return False
        if self.keywords:
            text = f"{ticket.summary}\n{ticket.description}".casefold()
            return any(k.casefold() in text for k in self.keywords)
        return True


@register
class RoutingRule(RuleBase):
    type: Literal["routing"] = "routing"
    statuses: list[Status] = Field(default=[Status.NEW, Status.IN_PROGRESS],
                                   description="route only in these statuses (not while waiting for intake)")
    routes: list[Route] = Field(default_factory=list)
    default: Destination | None = None

    def evaluate(self, ctx: EvalContext) -> list:
        ticket = ctx.ticket
        if ticket.group or ticket.assignee or not any(ticket.is_in(s) for s in self.statuses):
            return []
        for index, route in enumerate(self.routes):
            if route.matches(ticket):
                what = ", ".join(filter(None, [f"category {ticket.category}" if route.categories else "",
                                               "keywords" if route.keywords else ""])) or "route"
                return [Assign(rule=self.id, reason=f"routes[{index}] matched ({what})",
                               group=route.group, assignee=route.assignee)]
        if self.default:
            return [Assign(rule=self.id, reason="no route matched; default team",
                           group=self.default.group, assignee=self.default.assignee)]
        return []
