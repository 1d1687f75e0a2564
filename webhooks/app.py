"""The webhook receiver: a Flask app that turns platform events into queued reconciles.

The receiver's only job is to answer the platform within milliseconds with a status that
tells it the truth: 2xx only once the event is safely stored (or needs no work), 4xx for a
request that will never be acceptable, 5xx when we cannot store it now so the platform
retries. It never talks to the platform's API, so a slow or rate-limited Jira or Zendesk
cannot make webhook deliveries time out.

This module is the app factory: it builds the receiver's state (`webhooks.state`) and
registers the blueprints. What both platform blueprints share – reading a bounded body,
the rejection/acceptance responses and their metrics – is `webhooks.intake`; the
blueprints hold only what differs per platform: signature scheme and event vocabulary.
Dependencies point one way: app → blueprints → intake → state.
"""

from __future__ import annotations

import logging
from collections.abc import Set

from flask import Flask

from connector.metrics import UNSIGNED_WEBHOOKS_ALLOWED
from connector.queue.reconcile_queue import ReconcileQueue
from connector.reload import ConfigWatcher
from connector.settings import Settings
from webhooks.health import blueprint as health_blueprint
from webhooks.identity import ZendeskIdentity
from webhooks.intake import MAX_BODY_BYTES, DeliveryRejected, rejection_response
from webhooks.jira import blueprint as jira_blueprint
from webhooks.observed import blueprint as observed_blueprint
from webhooks.signatures import ReplayWindow
from webhooks.state import (
    EXTENSION,
    PLATFORMS,
    SECRET_ENV_VARS,
    ReceiverState,
    open_queue,
    unsigned_platforms,
    webhook_secrets,
)
from webhooks.zendesk import blueprint as zendesk_blueprint

log = logging.getLogger(__name__)

_EXTENSION = EXTENSION  # tests reach the state through the app's extensions
__all__ = ["MAX_BODY_BYTES", "SECRET_ENV_VARS", "create_app", "unsigned_platforms"]


def create_app(
    settings: Settings | None = None,
    *,
    queue: ReconcileQueue | None = None,
    allow_unsigned: Set[str] = frozenset(),
    zendesk_replay_window: ReplayWindow = ReplayWindow(),
    config_watcher: ConfigWatcher | None = None,
) -> Flask:
    """Build the receiver.

    `allow_unsigned` names platforms whose webhooks are accepted without a signature when no
    secret is configured for them (local trials, the sandbox); a configured secret is always
    enforced. Without it, a platform with no secret answers 503 so the misconfiguration is
    visible and the platform keeps retrying until it is fixed.

    `config_watcher` carries the last good config across a SIGHUP restart of the HTTP
    worker; without one the app watches `settings.config_path` itself (for `/readyz`).
    """
    settings = settings or Settings.from_env()
    unknown = set(allow_unsigned) - set(PLATFORMS)
    if unknown:
        raise ValueError(f"allow_unsigned names unknown platforms {sorted(unknown)}; use {list(PLATFORMS)}")

    app = Flask(__name__)
    # One byte of slack: read_body reads one byte past the limit to tell "exactly 1 MiB"
    # from "more", and enforces the exact limit itself.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES + 1
    app.extensions[EXTENSION] = ReceiverState(
        settings=settings,
        opened_queue=queue or open_queue(settings, at_start=True),
        allow_unsigned=frozenset(allow_unsigned),
        zendesk_replay_window=zendesk_replay_window,
        config_watcher=_config_watcher(settings, config_watcher),
        zendesk_identity=ZendeskIdentity(settings),
    )
    # Asked now, in the background, so the first events find the answer; never on a request's path.
    app.extensions[EXTENSION].zendesk_identity.start()
    _warn_about_missing_secrets(settings, frozenset(allow_unsigned))

    app.register_blueprint(jira_blueprint)
    app.register_blueprint(zendesk_blueprint)
    app.register_blueprint(health_blueprint)
    # Read-only, unauthenticated like /metrics: keep both behind the network boundary.
    app.register_blueprint(observed_blueprint)
    app.register_error_handler(DeliveryRejected, rejection_response)
    return app



def _config_watcher(settings: Settings, given: ConfigWatcher | None) -> ConfigWatcher:
    """The watcher whose verdict `/readyz` reports: the one carried across a SIGHUP restart,
    or a new one that checks the files now, at start – `/readyz` itself never checks."""
    if given is not None:
        return given
    watcher = ConfigWatcher(settings.config_path, poll_interval=settings.config_poll_every)
    watcher.check(force=True)
    return watcher


def _warn_about_missing_secrets(settings: Settings, allow_unsigned: frozenset[str]) -> None:
    unsigned = unsigned_platforms(settings, allow_unsigned)
    for platform in PLATFORMS:
        UNSIGNED_WEBHOOKS_ALLOWED.labels(platform=platform).set(1 if platform in unsigned else 0)
        if platform in unsigned:
            log.warning("webhook.unsigned_accepted", extra={"platform": platform})
        elif platform in allow_unsigned:
            log.info("webhook.allow_unsigned_void", extra={"platform": platform, "reason": "secret_set"})
        elif not webhook_secrets(settings, platform):
            log.warning("webhook.secret_missing", extra={"platform": platform})

