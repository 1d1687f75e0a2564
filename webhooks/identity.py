"""Who the connector is on Zendesk, so the receiver can skip events its own writes caused.

Zendesk event webhooks name the acting user (`detail.actor_id`) but the connector is
configured with an e-mail and a token, not its user id. The receiver asks Zendesk once per
process (`GET /api/v2/users/me.json`) and keeps the answer. If Zendesk cannot be asked, the
receiver simply does not filter (one no-op reconcile per own change) and asks again later:
an unreachable API must never cost an event.
"""

from __future__ import annotations

import logging
import threading
import time

import requests

from connector.settings import Settings

log = logging.getLogger(__name__)
RETRY_AFTER_FAILURE = 300.0  # seconds before asking again after a failed lookup
LOOKUP_TIMEOUT = (2.0, 3.0)


class ZendeskIdentity:
    """Cached per (site, account): one receiver process may serve tests or sites in turn."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str], str] = {}
        self._next_attempt: dict[tuple[str, str], float] = {}

    def user_id(self, settings: Settings) -> str | None:
        """The connector's Zendesk user id, or None when unknown (not configured, or the lookup failed)."""
        if not (settings.zendesk_url and settings.zendesk_email and settings.zendesk_token):
            return None
        account = (settings.zendesk_url, settings.zendesk_email)
        if account in self._known:
            return self._known[account]
        with self._lock:
            if account not in self._known and time.monotonic() >= self._next_attempt.get(account, 0.0):
                user_id = self._lookup(settings)
                if user_id is None:
                    self._next_attempt[account] = time.monotonic() + RETRY_AFTER_FAILURE
                else:
                    self._known[account] = user_id
        return self._known.get(account)

    @staticmethod
    def _lookup(settings: Settings) -> str | None:
        try:
            response = requests.get(
                f"{settings.zendesk_url}/api/v2/users/me.json",
                auth=(f"{settings.zendesk_email}/token", settings.zendesk_token or ""),
                timeout=LOOKUP_TIMEOUT, allow_redirects=False,
            )
            user_id = response.json().get("user", {}).get("id") if response.ok else None
        except (requests.RequestException, ValueError, AttributeError) as exc:
            log.warning("zendesk.identity_unknown", extra={"error": type(exc).__name__})
            return None
        if not user_id:
            log.warning("zendesk.identity_unknown", extra={"status": response.status_code})
            return None
        return str(user_id)


ZENDESK_IDENTITY = ZendeskIdentity()
