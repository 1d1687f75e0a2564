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

Escalation response clock (metric `escalation_response`): a level with `assign_group` and
`response: 1h` starts a clock when it hands the ticket to the group; it stops at the first
comment (public or internal) made after the hand-off by a member of that group. A member is
an author listed under the rule's `members: {<group>: [<user id>, ...]}` (Jira accountId or
name, Zendesk user id – the `author` the parsers read), or the ticket's assignee while the
ticket's group is still that group. A later level may then fire on
`when: {metric: escalation_response, breached: true}`. The clock is counted in the sla
rule's calendar (business time unless `response: 1h calendar`) and paused in its pause
statuses, like the other metrics.

When the hand-off happened comes from the ticket itself, never from the connector's memory:
`Ticket.marker_times` (the level's marker – Jira: the `created` of the connector comment
carrying the `ref:` trailer; Zendesk: the `created_at` of the audit whose tags event added
the marker tag). A level with `response` therefore needs a `comment` (on Jira the comment
is the dated record). With several hand-offs to the same group (e.g. `l2` and
`l2-first-response`) the first one starts the clock; a hand-off to another group with its
own `response` starts a new one; a later hand-off without `response` (the team lead after
the breach) leaves the last clock as it was. No recorded time – no clock (fail closed).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from connector.calendar import ContinuousCalendar, parse_duration
from connector.rules.notices import NoticeSpec, check_routes, notice
from connector.model import DONE_STATUSES, AddLabel, Assign, AuthorRole, Priority, SetPriority, trusted
from connector.rules.base import EvalContext, Match, RuleBase, Strict, next_priority, register
from connector.rules.projection import project
from connector.rules.sla import METRIC_LABELS, SlaRule, Target, clock_context
from connector.rules.tiers import applicable_sla, default_sla
from connector.sla import MetricTarget, TicketTimes
from connector.templates import SAMPLE_CLOCK


class Trigger(Strict):
    metric: Literal["first_response", "resolution", "periodic_update", "escalation_response"]
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
    comment: NoticeSpec | None = None
    response: Target | None = Field(default=None, description="the group's response target after this hand-off, e.g. 1h")


@register
class EscalationRule(RuleBase):
    type: Literal["escalation"] = "escalation"
    sla: str | None = Field(default=None, description="id of the sla rule whose calendar and pauses to use "
                            "(default: the ticket's tier, the first enabled sla rule whose `when` matches)")
    levels: list[Level]
    members: dict[str, list[str]] = Field(default_factory=dict,
                                          description="group -> user ids whose comments answer an escalation")

    template_sample: ClassVar[dict] = {"clock": SAMPLE_CLOCK, "level": "l2"}

    def comment_specs(self):
        return [(("levels", i, "comment"), lvl.comment) for i, lvl in enumerate(self.levels) if lvl.comment]

    def check(self, config) -> list[str]:
        problems = super().check(config) + check_routes(self, config)
        position = {rule.id: i for i, rule in enumerate(config.rules)}
        sla_rules = [r for r in config.rules if isinstance(r, SlaRule)]
        if self.sla and self.sla not in position:
            problems.append((("sla",), f"sla rule '{self.sla}' is not defined"))
        elif not sla_rules:
            problems.append(((), "needs an `sla` rule to read clocks from; add one before this rule"))
        else:
            # Without `sla:` it reads the clocks of whichever tier applies: after all of them.
            source = self.sla or max(sla_rules, key=lambda r: position[r.id]).id
            if position[source] > position[self.id]:
                problems.append(((), f"must come after the sla rule '{source}' it reads clocks from"))
        for i, level in enumerate(self.levels):
            if level.response and not level.assign_group:
                problems.append((("levels", i, "response"), "a response target needs `assign_group`: the group whose response is timed"))
            if level.response and not level.comment:
                problems.append((("levels", i, "response"),
                                 "a response target needs a `comment`: its marker dates the hand-off on Jira"))
        return problems

    def evaluate(self, ctx: EvalContext) -> list:
        ticket = ctx.ticket
        self.response_clock(ctx)
        if ticket.status in DONE_STATUSES:
            return []
        actions: list = []
        projected = 0
        handed_off = False
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
            if level.response is not None and level.assign_group:
                handed_off = True
        if handed_off:
            # The hand-off written by this plan starts the response clock: wake up when it is
            # due, as the ticket will read once the marker is recorded (projected at `now`).
            built = self._build_response_clock(project(ctx.ticket, actions, ctx.now), ctx)
            if built is not None and built[0].state == "running":
                ctx.add_deadline(built[0].due)
        return actions

    def _handoff(self, ticket, ctx: EvalContext) -> tuple[Level, datetime] | None:
        """The escalation whose response is timed: (level, when) from the ticket's dated markers."""
        fired = []
        for level in self.levels:
            if level.assign_group is None:
                continue
            at = ticket.marker_times.get(ctx.marker(f"{self.id}-{level.id}"))
            if at is not None and at <= ctx.now:
                fired.append((at, level))
        if not fired:
            return None
        fired.sort(key=lambda pair: pair[0])
        # The latest timed hand-off; a later untimed one (the team lead taking over after the
        # breach) does not erase it, so the report still scores the breach.
        last = next((i for i in range(len(fired) - 1, -1, -1) if fired[i][1].response is not None), None)
        if last is None:
            return None
        group = fired[last][1].assign_group
        start = last
        while start > 0 and fired[start - 1][1].assign_group == group:
            start -= 1  # an earlier hand-off to the same group started the clock already
        return fired[last][1], fired[start][0]

    def response_clock(self, ctx: EvalContext) -> None:
        """Put the escalation response clock (if a timed hand-off happened) into `ctx.sla`."""
        built = self._build_response_clock(ctx.ticket, ctx)
        if built is not None:
            ctx.sla["escalation_response"], ctx.sla_timelines["escalation_response"] = built

    def _build_response_clock(self, ticket, ctx: EvalContext):
        """(clock, timeline) of the response to the latest timed hand-off of `ticket`, or None."""
        handoff = self._handoff(ticket, ctx)
        if handoff is None:
            return None
        level, begin = handoff
        group = level.assign_group
        members = set(self.members.get(group, ()))
        if ticket.assignee and ticket.group == group:
            members.add(ticket.assignee)
        responded = next((c.created for c in sorted(ticket.comments, key=lambda c: c.created)
                          if c.created >= begin and c.author in members and c.author_role != AuthorRole.CONNECTOR
                          and c.author is not None), None)
        sla_rule = self._sla_rule(ctx)
        business = ctx.config.calendar(sla_rule.calendar)
        calendar = ContinuousCalendar() if level.response.clock == "calendar" else business
        target = MetricTarget("escalation_response", round(parse_duration(level.response.within, business)),
                              level.response.clock, calendar)
        return TicketTimes(ticket, ctx.now).response_clock(target, frozenset(sla_rule.pause_statuses), begin, responded)

    def _sla_rule(self, ctx: EvalContext) -> SlaRule:
        """The sla rule named by `sla:`, else the ticket's tier (`connector.rules.tiers`): the
        one whose clocks this evaluation holds, else the one that applies; with none, the
        default tier (check() guarantees there is an sla rule)."""
        if self.sla is None:
            tier = ctx.sla_rule or applicable_sla(ctx.config, ctx.ticket) or default_sla(ctx.config)
            if tier is not None:
                return tier
        return next(rule for rule in ctx.config.rules
                    if isinstance(rule, SlaRule) and (self.sla is None or rule.id == self.sla))

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
            actions.append(notice(ctx, self, level.comment, reason, marker, clock=clock_context(clock, tz), level=level.id))
        else:
            actions.append(trusted(AddLabel, rule=self.id, reason=reason, label=ctx.marker(marker)))
        return actions

    def _calendar_name(self, ctx: EvalContext) -> str:
        """The calendar of the sla rule (tier) this rule reads for the ticket."""
        return self._sla_rule(ctx).calendar
