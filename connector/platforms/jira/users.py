"""Reading a Jira reporter's locale, one request per reporter per process.

The reporter embedded in an issue is a UserDetails, which has no `locale`; the full User of
`GET /rest/api/2/user` has one ("The locale of the user. Depending on the user's privacy
setting, this may be returned as null": Jira platform OpenAPI, operation getUser and schema
User, connector/sandbox/specs/jira-platform.openapi.json). Jira Cloud names the user by
`accountId` (`username` and `key` are "no longer available" there, and a request without
`accountId` is refused: "The 'accountId' query parameter needs to be provided",
jenkinsci/jira-plugin#474); Data Center by `username` or `key` and answers the same User with
`locale` ("en_US": Atlassian KB "How to Retrieve Application Access of a User in Jira",
`/rest/api/2/user?username=admin`). The issue parser takes a Data Center user's `name` before
its `key` (`issue._user_id`), so Data Center is asked by `username`.

It is a request of its own, made only when the closing summary's outcome depends on it
(`connector.locales`), and each reporter's answer is remembered for the life of the process
(a bounded memory: a reporter with many tickets costs one request, not one per ticket; a
locale changed in the profile is seen after a worker restart).

The answer is a nicety, not a decision: without it the summary is written in the rule's
default language, which is acceptable – unlike the review gate's approvals, where a missing
answer would move a correctly approved change back. So no failure fails the reconcile:
- 404 (the user is gone, or the id is not one: "Returned if the user is not found"; Data
  Center: "The user named '…' does not exist", solidify/jira-azuredevops-migrator#26) and 403
  (the connector account lacks the *Browse users and groups* global permission, the
  operation's documented 403) answer None and are remembered: asking again cannot help;
- anything else (401, 429 past the retry policy, 5xx, timeouts, an answer without a locale
  string) is logged and answers None without being remembered, so a later ticket asks again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from connector.model import Ticket
from connector.platforms.base import NotFound, PlatformError, Unauthorized
from connector.platforms.jira.client import PLATFORM, JiraClient
from connector.platforms.jira.issue import _locale
from connector.platforms.memory import BoundedMemory

log = logging.getLogger(__name__)

# Stored for a reporter whose locale the site will not tell (404/403, or null by privacy).
_UNKNOWN = ""


class ReporterLocales:
    """Reporters' locales, each read once per process."""

    def __init__(self, client: JiraClient, *, memory: BoundedMemory[str, str] | None = None) -> None:
        self._client = client
        # Reporter id -> locale ("zh_CN"), or _UNKNOWN when the site does not tell.
        self._known = memory if memory is not None else BoundedMemory()

    def reporter_locale(self, ticket: Ticket) -> str | None:
        """The reporter's `locale` ("zh_CN"), None when unknown (no reporter, hidden, gone, a failure)."""
        reporter = ticket.reporter
        if not reporter:
            return None
        remembered = self._known.get(reporter)
        if remembered is not None:
            return remembered or None
        try:
            param = "accountId" if self._client.is_cloud() else "username"
            user = self._client.get_user({param: reporter})
        except (NotFound, Unauthorized) as exc:
            if exc.status == 401:
                return self._failed(ticket, exc)  # the credentials, not the user: ask again later
            self._known.put(reporter, _UNKNOWN)
            log.info("jira.reporter_locale_unavailable", extra={
                "platform": PLATFORM, "ticket_key": ticket.key, "status": exc.status})
            return None
        except PlatformError as exc:
            return self._failed(ticket, exc)
        if not isinstance(user, Mapping):
            return self._failed(ticket, None)
        locale = _locale(user)
        # A null locale (the user's privacy setting) is an answer too: remembered as unknown.
        self._known.put(reporter, locale or _UNKNOWN)
        return locale

    @staticmethod
    def _failed(ticket: Ticket, exc: PlatformError | None) -> None:
        """Log and answer None: the summary falls back to the rule's default language."""
        log.warning("jira.reporter_locale_failed", extra={
            "platform": PLATFORM, "ticket_key": ticket.key,
            "error": type(exc).__name__ if exc is not None else "not a user object",
            "status": exc.status if exc is not None else None})
        return None
