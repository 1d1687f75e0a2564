"""Who the connector is on Zendesk, so the receiver can skip events its own writes caused.

Zendesk event webhooks name the acting user (`detail.actor_id`) but the connector is
configured with an e-mail and a token, not its user id, so the receiver asks Zendesk
(`GET /api/v2/users/me.json`) and keeps the answer.

The question is never asked on a webhook's path: the answer is looked up in the background
when the app is built (and again after a failure, with a growing pause), and a webhook
that arrives while it is unknown is simply accepted. An unknown identity costs one no-op
reconcile per own change; a lookup inside the request would cost every thread of the
receiver the length of Zendesk's slowest answer. Jira needs no lookup: its webhooks name the
actor by the account the connector is configured with (`JIRA_USER`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import requests

from connector.settings import Settings

log = logging.getLogger(__name__)
LOOKUP_TIMEOUT = (2.0, 3.0)  # connect, read: the lookup thread is never held for long
FIRST_RETRY_AFTER = 30.0  # seconds before asking again after a failed lookup, doubled per failure
MAX_RETRY_AFTER = 300.0
_MAX_BODY = 64 * 1024  # users/me is a few hundred bytes; never buffer more from it


class ZendeskIdentity:
    """The connector's Zendesk user id for one receiver app, looked up off the request path."""

    def __init__(self, settings: Settings, *, timeout: tuple[float, float] = LOOKUP_TIMEOUT) -> None:
        self._settings = settings
        self._timeout = timeout
        # Guards the fields below only; never held while Zendesk is asked.
        self._lock = threading.Lock()
        self._user_id: str | None = None
        self._lookup_pid: int | None = None  # the process whose thread is asking now, if any
        self._next_attempt = 0.0
        self._retry_after = FIRST_RETRY_AFTER

    @property
    def configured(self) -> bool:
        s = self._settings
        return bool(s.zendesk_url and s.zendesk_email and s.zendesk_token)

    def start(self) -> None:
        """Begin the lookup in the background when it is due; return at once."""
        if not self.configured:
            return
        now = time.monotonic()
        with self._lock:
            # A lookup thread belongs to the process that started it: after a fork the child
            # has no such thread and must start its own.
            running = self._lookup_pid == os.getpid()
            if self._user_id is not None or running or now < self._next_attempt:
                return
            self._lookup_pid = os.getpid()
        threading.Thread(target=self._run, name="zendesk-identity", daemon=True).start()

    def user_id(self) -> str | None:
        """The connector's Zendesk user id, or None while unknown. Never waits for Zendesk."""
        known = self._user_id
        if known is None:
            self.start()
        return known

    def _run(self) -> None:
        user_id = None
        try:
            user_id = self._lookup()
        finally:
            self._finish(user_id)

    def _finish(self, user_id: str | None) -> None:
        with self._lock:
            self._lookup_pid = None
            if user_id is not None:
                self._user_id = user_id
                return
            self._next_attempt = time.monotonic() + self._retry_after
            self._retry_after = min(self._retry_after * 2, MAX_RETRY_AFTER)

    def _lookup(self) -> str | None:
        s = self._settings
        started = time.monotonic()
        try:
            with requests.get(
                f"{s.zendesk_url}/api/v2/users/me.json",
                auth=(f"{s.zendesk_email}/token", s.zendesk_token or ""),
                timeout=self._timeout, allow_redirects=False, stream=True,
            ) as response:
                body = response.raw.read(_MAX_BODY + 1, decode_content=True) if response.ok else b""
                status = response.status_code
            user = json.loads(body).get("user", {}) if body and len(body) <= _MAX_BODY else {}
            user_id = user.get("id") if isinstance(user, dict) else None
        except Exception as exc:  # noqa: BLE001  any failure (urllib3's read errors included) = unknown
            log.warning("zendesk.identity_unknown", extra={"error": type(exc).__name__,
                                                           "seconds": round(time.monotonic() - started, 2)})
            return None
        if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id <= 0:
            log.warning("zendesk.identity_unknown", extra={"status": status,
                                                           "seconds": round(time.monotonic() - started, 2)})
            return None
        log.info("zendesk.identity_known", extra={"user_id": user_id, "seconds": round(time.monotonic() - started, 2)})
        return str(user_id)
