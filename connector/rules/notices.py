"""What a rule's notice says about chat: which channels, for which priorities, which words.

A notice (`sla` `notify.breach` / `notify.warning`, an `escalation` level's `comment`) is a
`NoticeSpec`: a comment spec plus an optional `channels:`::

    notify:
      breach:
        template: "{{ clock.metric_label }} target of {{ clock.target }} breached"
        channels:
          to: [ops-chat]          # names under the top-level `channels:`
          priorities: [P0, P1]    # only tickets of these priorities (empty/omitted: any)
          template: "🚨 {{ ticket.key }} {{ notice }}\n{{ ticket.url }}"   # optional

`channels: [ops-chat]` is short for `{to: [ops-chat]}` (every priority). The message
template sees what the comment template sees (`ticket`, `now`, `clock`, `level`) plus
`notice`, the rendered comment; the default is the notice followed by the ticket's key,
summary and link. The filter is a priority list rather than a full `when:` match because the
rule's own `when:` (and a level's `only:`) already pick the tickets; this only decides which
of the notices are worth a chat message.

The chat message exists only with its comment: it rides on the `AddComment` action under the
comment's marker, so "once per event" is the comment's own one-time guarantee.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from connector import templates
from connector.model import AddComment, ChatNotice, Priority, replaced
from connector.rules.base import CommentSpec, EvalContext, Strict



class ChatRoute(Strict):
    to: list[str] = Field(min_length=1, description="channel names defined under the top-level `channels:`")
    priorities: list[Priority] = Field(default_factory=list, description="only these priorities (empty: any)")
    template: str | None = Field(default=None, description="Jinja2 text of the chat message (default: the notice "
                                 "plus the ticket's key, summary and link)")

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value):
        if isinstance(value, (list, str)):
            return {"to": [value] if isinstance(value, str) else value}
        return value

    def wants(self, priority: str | None) -> bool:
        return not self.priorities or priority in self.priorities


class NoticeSpec(CommentSpec):
    """A comment spec whose notice may also go to team chat."""

    channels: ChatRoute | None = Field(default=None, description="also post this notice to these chat channels")


def notice(ctx: EvalContext, rule, spec: CommentSpec, reason: str, marker: str | None, **extra: Any) -> AddComment:
    """`ctx.comment(...)` plus the chat messages the spec routes (for the ticket's priority)."""
    action = ctx.comment(rule, spec, reason, marker, **extra)
    route = getattr(spec, "channels", None)
    if route is None or action.marker is None or not route.wants(ctx.ticket.priority):
        return action
    if route.template:
        text = templates.render(route.template, {"ticket": templates.ticket_context(ctx.ticket), "now": ctx.now,
                                                 "notice": action.body.strip(), **extra})
    else:
        ticket = ctx.ticket
        text = f"{action.body.strip()}\n{ticket.key} {ticket.summary}" + (f"\n{ticket.url}" if ticket.url else "")
    chat = tuple(ChatNotice(channel=name, text=text) for name in route.to)
    return replaced(action, chat=chat)


def check_routes(rule, config) -> list[tuple[tuple, str]]:
    """Problems of the rule's chat routes: channels not defined, templates that do not render."""
    problems: list[tuple[tuple, str]] = []
    defined = config.channels
    for where, spec in rule.comment_specs():
        route = getattr(spec, "channels", None)
        if route is None:
            continue
        for i, name in enumerate(route.to):
            if name not in defined:
                known = ", ".join(sorted(defined)) or "none defined"
                problems.append((where + ("channels", "to", i),
                                 f"channel '{name}' is not defined under the top-level `channels:` ({known})"))
        if route.template:
            sample = {"ticket": templates.SAMPLE_TICKET, "now": datetime(2026, 11, 20, 9, 0), "notice": "notice",
                      **rule.template_sample}
            problem = templates.check(route.template, sample)
            if problem:
                problems.append((where + ("channels", "template"), problem))
    return problems
