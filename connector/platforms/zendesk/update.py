"""The body of a Zendesk ticket update, and the comments of one plan grouped into updates.

Zendesk takes ONE comment per update. Comments of the same visibility are joined into one
comment (blank line between them); a plan with both a public reply and an internal note
needs a second update, which carries only the second comment and its markers – a marker
never travels ahead of the comment it records. Update Ticket takes `tags` as the whole
list (`additional_tags` / `remove_tags` are Update Many Tickets only: Zendesk "Adding
tags to tickets without overwriting existing tags"), so an update sends the tags as read
plus additions minus removals, as a safe update (`safe_update` + `updated_stamp`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.model import Action, AddComment
from connector.platforms.zendesk.fields import Target

COMMENT_SEPARATOR = "\n\n"


@dataclass
class Update:
    """The body of one `PUT /api/v2/tickets/{id}.json` and the plan actions it carries."""

    attributes: dict[str, Any] = field(default_factory=dict)
    custom_fields: dict[int, Any] = field(default_factory=dict)
    add_tags: list[str] = field(default_factory=list)
    remove_tags: list[str] = field(default_factory=list)
    comment: dict[str, Any] | None = None
    carried: list[Action] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.attributes or self.custom_fields or self.add_tags or self.remove_tags or self.comment)

    @property
    def idempotent(self) -> bool:
        # Setting fields and tags twice leaves the same ticket; posting a comment twice does not.
        # (The safe-update stamp does not make a resend safe: Zendesk stamps are whole
        # seconds, so an update landing in the same second as the last one keeps the stamp.)
        return self.comment is None

    def tags(self, current: Sequence[str]) -> list[str]:
        """The whole tag list this update leaves: `current` (as read), plus additions, minus removals."""
        removed = set(self.remove_tags)
        kept = [tag for tag in current if tag not in removed]
        return kept + [tag for tag in self.add_tags if tag not in kept]

    def body(self, stamp: str | None, current_tags: Sequence[str] = ()) -> dict[str, Any]:
        ticket: dict[str, Any] = dict(self.attributes)
        if self.custom_fields:
            ticket["custom_fields"] = [{"id": key, "value": value} for key, value in self.custom_fields.items()]
        if self.add_tags or self.remove_tags:
            # Update Ticket takes `tags` as the whole list (additional_tags/remove_tags are
            # Update Many Tickets only: Zendesk "Adding tags to tickets without overwriting
            # existing tags"). The safe-update stamp below makes a human's tag added since
            # our read a 409, never an overwrite.
            ticket["tags"] = self.tags(current_tags)
        if self.comment is not None:
            ticket["comment"] = dict(self.comment)
        if stamp is not None:
            ticket["safe_update"] = True
            ticket["updated_stamp"] = stamp
        return {"ticket": ticket}


    def put(self, target: Target, value: Any) -> None:
        """Set an attribute or a custom field."""
        if target.attribute is not None:
            self.attributes[target.attribute] = value
        else:
            assert target.field is not None
            self.custom_fields[int(target.field["id"])] = value

@dataclass
class CommentGroup:
    """Comments of one visibility, posted as one Zendesk comment with all their markers."""

    public: bool
    bodies: list[str] = field(default_factory=list)
    markers: list[str] = field(default_factory=list)
    actions: list[AddComment] = field(default_factory=list)

    def comment(self) -> dict[str, Any]:
        return {"body": COMMENT_SEPARATOR.join(self.bodies), "public": self.public}



def updates_for(first: Update, groups: list[CommentGroup]) -> list[Update]:
    """The updates to send: field/tag changes ride with the first comment, a second visibility alone."""
    updates: list[Update] = []
    for index, group in enumerate(groups):
        update = first if index == 0 else Update()
        update.comment = group.comment()
        update.add_tags.extend(marker for marker in group.markers if marker not in update.add_tags)
        update.carried.extend(group.actions)
        updates.append(update)
    if not groups and not first.empty:
        updates.append(first)
    return [update for update in updates if not update.empty]


def updated_at(answer: Mapping[str, Any]) -> str | None:
    """The ticket's new `updated_at` from an update's answer: the next safe update's stamp."""
    ticket = answer.get("ticket")
    stamp = ticket.get("updated_at") if isinstance(ticket, Mapping) else None
    return str(stamp) if stamp else None
