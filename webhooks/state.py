"""What the receiver's blueprints share at request time: its state, kept in `app.extensions`.

The app factory (`webhooks.app`) builds a `ReceiverState`; the blueprints and the shared
delivery steps (`webhooks.intake`) read it with `receiver_state()`. A module of its own so
that the blueprints never import the factory (which imports them).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Set
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from connector.queue.reconcile_queue import ReconcileQueue
from connector.queue.storage import QueueConfigError, QueueUnavailable
from connector.reload import ConfigWatcher
from connector.settings import Settings, fields
from webhooks.identity import ZendeskIdentity
from webhooks.signatures import ReplayWindow

log = logging.getLogger("webhooks.app")  # the receiver's log name, kept across the module split

PLATFORMS = ("jira", "zendesk")
EXTENSION = "connector"
# The variables that hold each platform's webhook secrets, as `connector.settings` names them.
SECRET_ENV_VARS = {platform: fields()[f"{platform}_webhook_secrets"].alias for platform in PLATFORMS}


@dataclass
class ReceiverState:
    """What the blueprints need from the app, kept in `app.extensions` by the factory.

    The queue is opened lazily when it could not be opened at start: a receiver whose
    SQLite file or Redis is unavailable when its HTTP worker boots must still come up, to
    answer 503 (so the platform retries) and to say why on `/readyz`, rather than crash
    in a loop that shows the platform nothing but refused connections.

    `zendesk_identity` is the connector's own Zendesk user, looked up in the background
    (webhooks.identity) so that no request ever waits for Zendesk.
    """

    settings: Settings
    opened_queue: ReconcileQueue | None
    allow_unsigned: frozenset[str]
    zendesk_replay_window: ReplayWindow
    config_watcher: ConfigWatcher
    zendesk_identity: ZendeskIdentity
    _opening: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def queue(self) -> ReconcileQueue:
        """The queue; raise QueueUnavailable when its storage still cannot be opened."""
        if self.opened_queue is None:
            with self._opening:
                if self.opened_queue is None:
                    self.opened_queue = open_queue(self.settings, at_start=False)
                    if self.opened_queue is None:
                        raise QueueUnavailable("the queue storage cannot be opened")
        return self.opened_queue


def open_queue(settings: Settings, *, at_start: bool) -> ReconcileQueue | None:
    try:
        return ReconcileQueue.from_settings(settings)
    except QueueConfigError:
        raise
    except Exception as exc:
        log.error("queue.open_failed", extra={"at_start": at_start, "error": f"{type(exc).__name__}: {exc}"})
        return None


def receiver_state() -> ReceiverState:
    return current_app.extensions[EXTENSION]



def webhook_secrets(settings: Settings, platform: str) -> tuple[str, ...]:
    return {"jira": settings.jira_webhook_secrets, "zendesk": settings.zendesk_webhook_secrets}[platform]


def unsigned_platforms(settings: Settings, allow_unsigned: Set[str]) -> frozenset[str]:
    """The platforms whose webhooks are really accepted unsigned: named by `--allow-unsigned`
    and without a secret. A configured secret always wins, so the flag is then void."""
    return frozenset(p for p in PLATFORMS if p in allow_unsigned and not webhook_secrets(settings, p))



def unsigned_problem() -> dict[str, Any] | None:
    """A `/readyz` warning while unsigned webhooks are accepted: a state to end, not to forget."""
    state = receiver_state()
    unsigned = sorted(unsigned_platforms(state.settings, state.allow_unsigned))
    if not unsigned:
        return None
    names = " and ".join(unsigned)
    return {
        "check": "webhook_signatures",
        "blocking": "no",
        "platforms": unsigned,
        "error": f"unsigned {names} webhooks are accepted (--allow-unsigned): anyone who can reach this "
                 "port can make the connector re-read tickets",
        "fix": f"set {' and '.join(SECRET_ENV_VARS[p] for p in unsigned)} (the webhook's secret) and restart "
               "without --allow-unsigned",
    }
