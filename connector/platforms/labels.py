"""A plan's label (Jira) or tag (Zendesk) changes, reduced to their net effect on the ticket.

Both platforms get the same diffing: an add of a label the ticket has, or a remove of one
it lacks, is skipped; an add undone by a later remove of the same plan sends nothing; and
a marker that records a comment of this plan is never removed by it (the comment and its
marker travel together, see `comment_marker`). Only how the result goes over the wire
differs – Jira takes `update.labels` operations, Zendesk the whole tag list – so the
adapters read `changes()` and shape it themselves.
"""

from __future__ import annotations

from connector.model import Action, AddLabel
from connector.platforms.base import ApplyResult, SkippedAction


class LabelChanges:
    """Label adds/removes of one plan against the labels the ticket was read with.

    `noun` ("label", "tag") is how skip reasons name them. `pinned` are markers of comments
    this plan posts: the plan cannot add them by itself (they ride with their comment) nor
    remove them. `pin` adds a marker once its comment has landed (Jira posts comments
    before the edit that carries labels).
    """

    def __init__(self, current: frozenset[str], *, noun: str, pinned: frozenset[str] = frozenset()) -> None:
        self._noun = noun
        self._original = current
        self._labels = set(current)
        self._pinned = set(pinned)
        self._order: list[str] = []
        self._actions: list[tuple[Action, str]] = []

    def add(self, action: Action, label: str, result: ApplyResult) -> None:
        if label in self._pinned:
            result.skipped.append(SkippedAction(action, f"{self._noun} {label!r} is added with the comment it records"))
        elif label in self._labels:
            result.skipped.append(SkippedAction(action, f"{self._noun} {label!r} already present"))
        else:
            self._labels.add(label)
            self._note(action, label)

    def remove(self, action: Action, label: str, result: ApplyResult) -> None:
        if label in self._pinned:
            result.skipped.append(SkippedAction(action, f"{self._noun} {label!r} records a comment of this plan"))
        elif label not in self._labels:
            result.skipped.append(SkippedAction(action, f"{self._noun} {label!r} not present"))
        else:
            self._labels.discard(label)
            self._note(action, label)

    def pin(self, marker: str) -> None:
        """Add the marker of a comment that has just landed (for searching by label)."""
        self._pinned.add(marker)
        self._labels.add(marker)
        if marker not in self._order:
            self._order.append(marker)

    def _note(self, action: Action, label: str) -> None:
        self._actions.append((action, label))
        if label not in self._order:
            self._order.append(label)

    def changes(self) -> list[tuple[str, bool]]:
        """(label, added?) for every label whose presence this plan changes, first touched first."""
        changed = []
        for label in self._order:
            present = label in self._labels
            if present != (label in self._original):
                changed.append((label, present))
        return changed

    def carried(self, result: ApplyResult) -> list[Action]:
        """Label actions whose effect survives; the others are recorded as skipped."""
        carried: list[Action] = []
        for action, label in self._actions:
            wanted_present = isinstance(action, AddLabel)
            survives = (label in self._labels) == wanted_present and (label in self._original) != wanted_present
            if survives and not any(a is action for a in carried):
                carried.append(action)
            elif not survives:
                result.skipped.append(
                    SkippedAction(action, f"{self._noun} {label!r} undone by a later action of the plan"))
        return carried
