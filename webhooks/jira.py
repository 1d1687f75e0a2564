"""`POST /webhooks/jira`: Jira admin webhooks (Cloud and Data Center).

The checks run in a fixed order, cheapest and least trusting first: a secret is configured,
a body is present and bounded, the `X-Hub-Signature` matches, the body is JSON, and only
then is the event type looked at. Every accepted event collapses to "reconcile issue X";
what changed is deliberately not read, because the worker re-reads the issue anyway.

Jira retries a delivery on 408/409/425/429/5xx for about half an hour with the same
`X-Atlassian-Webhook-Identifier`, so a redelivery is answered 200 "duplicate", and an
event type we do not act on is answered 200 so Jira neither retries nor disables the hook.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from webhooks.intake import (
    JsonObject,
    checked_ticket_id,
    ignore,
    missing_ticket_id,
    nothing_to_reconcile,
    parse_json_object,
    queue_reconcile,
    read_body,
    reject,
    reject_bad_signature,
    require_secret_or_unsigned,
)
from webhooks.signatures import JIRA_SIGNATURE_HEADER, verify_jira_signature
from webhooks.state import receiver_state

PLATFORM = "jira"
DELIVERY_ID_HEADER = "X-Atlassian-Webhook-Identifier"

blueprint = Blueprint("jira_webhooks", __name__)


# `comment.self` of a comment event: <site>[/context path]/rest/api/<2|3|latest>/issue/<id>/comment/<id>.
# Only a numeric issue id is taken from it, and only the id: the URL itself is never requested.
_COMMENT_SELF_PATH = re.compile(r"^(?P<context>(?:/[^/]+)*?)/rest/api/(?:2|3|latest)/issue/(?P<issue>\d{1,18})/comment/\d{1,18}$")


# A numeric issue id, or an issue key `<project key>-<number>`. Project keys start with an
# upper-case letter and hold only upper-case letters, digits and `_`, whatever
# `jira.projectkey.pattern` an admin sets ("Changing the project key format",
# https://confluence.atlassian.com/adminjiraserver0917/changing-the-project-key-format-1431246065.html);
# the issue key pattern itself cannot be configured.
_ISSUE_ID = re.compile(r"[0-9]{1,18}")
_ISSUE_KEY = re.compile(r"[A-Z][A-Z0-9_]*-[0-9]{1,18}")
_EXPECTED = "a Jira issue id (digits) or key (PROJ-123)"


def issue_id(payload: JsonObject) -> str | None:
    """The issue's numeric id (stable across project moves), else its key; 400 when malformed.

    Jira Data Center sends `comment_*` events without an `issue` object, only the comment,
    whose `self` link names the issue (Commit451/skyhook#152, captured from Jira 8.13;
    DefectDojo/django-DefectDojo#3217): the id is taken from there.
    """
    issue = payload.get("issue")
    if not isinstance(issue, dict):
        return comment_issue_id(payload)
    for field, pattern in (("id", _ISSUE_ID), ("key", _ISSUE_KEY)):
        value = checked_ticket_id(PLATFORM, issue.get(field), pattern, _EXPECTED)
        if value is not None:
            return value
    return None


def comment_issue_id(payload: JsonObject) -> str | None:
    """The issue id in `comment.self`, or None when there is none to trust.

    A link that is not exactly a comment URL of the REST API gives None (the event is then
    refused as carrying no ticket id). A well-formed link to another site than `JIRA_URL` is
    refused with 400: the signature says the sender holds our secret, so it is a second site
    sharing the secret, and its issue ids mean other issues here.
    """
    comment = payload.get("comment")
    self_url = comment.get("self") if isinstance(comment, dict) else None
    if not isinstance(self_url, str) or len(self_url) > 2048:
        return None
    try:
        parts = urlsplit(self_url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        return None
    match = _COMMENT_SELF_PATH.match(parts.path)
    if match is None:
        return None
    site = receiver_state().settings.jira_url
    if site and not _same_site(site, parts.scheme, parts.hostname, port, match.group("context")):
        reject(PLATFORM, 400, "foreign_site", "comment event names a comment of another Jira site than JIRA_URL")
    return match.group("issue")


def _same_site(site: str, scheme: str, host: str, port: int | None, context: str) -> bool:
    expected = urlsplit(site)
    default = {"http": 80, "https": 443}
    try:
        expected_port = expected.port or default.get(expected.scheme)
    except ValueError:
        return False
    return (
        expected.scheme == scheme
        and (expected.hostname or "").casefold() == host.casefold()
        and expected_port == (port or default.get(scheme))
        and expected.path.rstrip("/") == context
    )


def caused_by_connector(payload: JsonObject) -> bool:
    """True when the connector's own account made this change.

    Its writes are the result of a reconcile that already evaluated the state they produce
    (plans are idempotent), so reading the issue again would cost an API call for nothing.
    A human change in the same moment sends its own event, so nothing is missed.
    """
    account = receiver_state().settings.jira_user
    if not account:
        return False
    actor = payload.get("user")
    comment = payload.get("comment")
    if not isinstance(actor, dict) and isinstance(comment, dict):
        actor = comment.get("updateAuthor") or comment.get("author")
    if not isinstance(actor, dict):
        return False
    return any(actor.get(k) == account for k in ("emailAddress", "accountId", "name", "key"))


def reconcile_issue(event_type: str, payload: JsonObject, delivery_id: str | None) -> ResponseReturnValue:
    ticket_id = issue_id(payload)
    if ticket_id is None:
        missing_ticket_id(PLATFORM, event_type)
    if caused_by_connector(payload):
        return ignore(PLATFORM, "own_change", event_type)
    return queue_reconcile(PLATFORM, event_type, ticket_id, delivery_id)


def issue_deleted(event_type: str, payload: JsonObject, delivery_id: str | None) -> ResponseReturnValue:
    # A deleted issue has no state left to bring in line, and its markers went with it.
    # Timers already scheduled for it will find it gone and end as not_found.
    return nothing_to_reconcile(PLATFORM, event_type, "ticket_deleted")


EventHandler = Callable[[str, JsonObject, str | None], ResponseReturnValue]

EVENT_HANDLERS: dict[str, EventHandler] = {
    "jira:issue_created": reconcile_issue,
    "jira:issue_updated": reconcile_issue,
    "comment_created": reconcile_issue,
    "comment_updated": reconcile_issue,
    "jira:issue_deleted": issue_deleted,
}

# Events Jira can send that change nothing the support process looks at; the periodic
# sweep still re-reads recently updated issues, so an edge case here is delayed, not lost.
IGNORED_EVENTS = frozenset(
    {
        "comment_deleted",
        "worklog_created",
        "worklog_updated",
        "worklog_deleted",
        "jira:worklog_updated",
        "issuelink_created",
        "issuelink_deleted",
        "attachment_created",
        "attachment_deleted",
        "issue_property_set",
        "issue_property_deleted",
        "project_created",
        "project_updated",
        "project_deleted",
        "jira:version_created",
        "jira:version_updated",
        "jira:version_released",
        "jira:version_unreleased",
        "jira:version_deleted",
        "user_created",
        "user_updated",
        "user_deleted",
        "sprint_created",
        "sprint_started",
        "sprint_closed",
        "sprint_updated",
        "sprint_deleted",
        "board_created",
        "board_updated",
        "board_deleted",
        "board_configuration_changed",
    }
)


@blueprint.post("/webhooks/jira")
def receive_jira_event() -> ResponseReturnValue:
    secrets = receiver_state().settings.jira_webhook_secrets
    require_secret_or_unsigned(PLATFORM, secrets, "JIRA_WEBHOOK_SECRET")
    body = read_body(PLATFORM)
    if secrets and not verify_jira_signature(secrets, body, request.headers.get(JIRA_SIGNATURE_HEADER)):
        reject_bad_signature(PLATFORM)
    payload = parse_json_object(PLATFORM, body)

    event_type = payload.get("webhookEvent")
    if not isinstance(event_type, str) or not event_type:
        return ignore(PLATFORM, "no_event_type")
    handler = EVENT_HANDLERS.get(event_type)
    if handler is None:
        reason = "unhandled_event" if event_type in IGNORED_EVENTS else "unknown_event"
        return ignore(PLATFORM, reason, event_type)
    return handler(event_type, payload, request.headers.get(DELIVERY_ID_HEADER) or None)
