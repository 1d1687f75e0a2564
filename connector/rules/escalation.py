"""Escalation levels: when a share of an SLA target is used up, or on breach, act.

Each level fires once per ticket (recorded by the marker `<rule>-<level>`), so an agent who
hands the ticket back to L1 after an escalation is not overruled on the next event. The
levels read the clocks the `sla` rule computed in the same evaluation, so this rule must
come after it in the file.

Example::

    - id: escalation
      type: escalation
      levels:
        - id: l2
          when: {metric: resolution, percent: 50}
          assign_group: L2
          comment: {template: "Escalated to L2: {{ clock.percent }}% of the resolution time is used."}
        - id: team-lead
          when: {metric: resolution, breached: true}
          assign_user: team-lead
          raise_priority: true
          comment: {template: "Resolution target breached; the team lead is now involved."}
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from connector.model import DONE_STATUSES, AddLabel, Assign, Priority, SetPriority, trusted
from connector.rules.base import CommentSpec, EvalContext, Match, RuleBase, Strict, next_priority, register
from connector.rules.projection import project
from connector.rules.sla import METRIC_LABELS, SlaRule, clock_context
from connector.templates import SAMPLE_CLOCK


class Trigger(Strict):
    metric: Literal["first_response", "resolution", "periodic_update"]
    percent: int | None = Field(default=None, ge=1, le=100, description="fire when this share of the target is used")
    breached: bool = Field(default=False, description="fire on breach")

    @model_validator(mode="after")
    def _one(self) -> "Trigger":
        if (self.percent is None) == (not self.breached):
            raise ValueError("give exactly one of `percent: N` or `breached: true`")
        return self


class Level(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    when: Trigger
    only: Match = Field(default_factory=Match, description="further limit this level to some tickets")
    assign_group: str | None = None
    assign_user: str | None = None
    raise_priority: bool = False
    set_priority: Priority | None = None
    comment: CommentSpec | None = None


@register
class EscalationRule(RuleBase):
    type: Literal["escalation"] = "escalation"
    sla: str | None = Field(default=None, description="id of the sla rule whose clocks to use (default: the first)")
    levels: list[Level]

    template_sample: ClassVar[dict] = {"clock": SAMPLE_CLOCK, "level": "l2"}

    def comment_specs(self):
        return [(("levels", i, "comment"), lvl.comment) for i, lvl in enumerate(self.levels) if lvl.comment]

    def check(self, config) -> list[str]:
        problems = super().check(config)
        position = {rule.id: i for i, rule in enumerate(config.rules)}
        sla_rules = [r for r in config.rules if isinstance(r, SlaRule)]
        if self.sla and self.sla not in position:
            problems.append((("sla",), f"sla rule '{self.sla}' is not defined"))
        elif not sla_rules:
            problems.append(((), "needs an `sla` rule to read clocks from; add one before this rule"))
        else:
            source = self.sla or sla_rules[0].id
            if position[source] > position[self.id]:
                problems.append(((), f"must come after the sla rule '{source}' it reads clocks from"))
        return problems

    def evaluate(self, ctx: EvalContext) -> list:
        ticket = ctx.ticket
        if ticket.status in DONE_STATUSES:
            return []
        actions: list = []
        projected = 0
        for level in self.levels:
            # Later levels see what earlier ones did (no second "assign L2"): project only what
            # the previous level added onto the ticket as it already stands.
            if projected < len(actions):
                ticket = project(ticket, actions[projected:], ctx.now)
                projected = len(actions)
            clock = ctx.sla.get(level.when.metric)
            timeline = ctx.sla_timelines.get(level.when.metric)
            marker = f"{self.id}-{level.id}"
            if clock is None or not level.only.matches(ticket) or ctx.has_marker(marker):
                continue
            if level.when.breached:
                fired = clock.state == "breached"
            else:
                fired = clock.elapsed_percent >= level.when.percent and clock.state != "met"
            if not fired:
                if clock.state == "running":  # wake up when this level is due (asked only then)
                    if level.when.breached:
                        due = clock.breached_at or clock.due
                    else:
                        due = timeline.reached_at(clock.target_minutes * level.when.percent / 100) if timeline else None
                    ctx.add_deadline(due)
                continue
            actions.extend(self._act(ctx, ticket, level, clock, marker))
        return actions

    def _act(self, ctx: EvalContext, ticket, level: Level, clock, marker: str) -> list:
        label = METRIC_LABELS[clock.metric]
        reason = (f"{label} target breached" if level.when.breached
                  else f"{level.when.percent}% of the {label} target used") + f": escalation level {level.id}"
        actions: list = []
        if (level.assign_group and level.assign_group != ticket.group) or (level.assign_user and level.assign_user != ticket.assignee):
            actions.append(Assign(rule=self.id, reason=reason, group=level.assign_group, assignee=level.assign_user))
        priority = level.set_priority or (next_priority(ticket.priority) if level.raise_priority else None)
        if priority and priority != ticket.priority:
            actions.append(SetPriority(rule=self.id, reason=reason, priority=priority))
        if level.comment:
            tz = ctx.config.calendar(self._calendar_name(ctx)).tz
            actions.append(ctx.comment(self, level.comment, reason, marker, clock=clock_context(clock, tz), level=level.id))
        else:
            actions.append(trusted(AddLabel, rule=self.id, reason=reason, label=ctx.marker(marker)))
        return actions

    def _calendar_name(self, ctx: EvalContext) -> str:
        """The calendar of the sla rule this rule reads (check() guarantees there is one)."""
        memo = self.prepared()
        found = memo.get("calendar")
        if found is None or found[0] is not ctx.config:
            name = next(rule.calendar for rule in ctx.config.rules
                        if isinstance(rule, SlaRule) and (self.sla is None or rule.id == self.sla))
            found = memo["calendar"] = (ctx.config, name)
        return found[1]
