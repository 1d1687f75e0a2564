"""`POST /webhooks/zendesk`: Zendesk event webhooks and trigger/automation webhooks.

Zendesk reaches us in two shapes. An *event webhook* subscribes to
`zen:event-type:ticket.*` events and sends a fixed JSON document (ticket id in `detail.id`
and in `subject` as `zen:ticket:<id>`). A *trigger or automation* webhook sends whatever
JSON body the admin wrote in Zendesk; we require it to carry `"ticket_id": "{{ticket.id}}"`
(Zendesk placeholders render as strings). Both collapse to "reconcile ticket X".

The same order of checks as for Jira applies; the signature additionally covers the
`X-Zendesk-Webhook-Signature-Timestamp`, which must lie inside a replay window.
"""

from __future__ import annotations

import re
from collections.abc import Callable

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
    reject_bad_signature,
    require_secret_or_unsigned,
)
from webhooks.signatures import ZENDESK_SIGNATURE_HEADER, ZENDESK_TIMESTAMP_HEADER, verify_zendesk_signature
from webhooks.state import receiver_state

PLATFORM = "zendesk"
EVENT_TYPE_PREFIX = "zen:event-type:"
TICKET_EVENT_PREFIX = "zen:event-type:ticket."
TRIGGER_EVENT = "trigger"
# Per-delivery id of trigger webhooks; event webhooks carry their event id in the body.
INVOCATION_ID_HEADER = "X-Zendesk-Webhook-Invocation-Id"

# Zendesk ids are positive 64-bit integers (at most 19 digits); placeholders such as
# {{ticket.id}} render them as decimal strings.
_TICKET_ID = re.compile(r"[1-9][0-9]{0,18}")
_TICKET_SUBJECT = re.compile(r"zen:ticket:(.*)", re.DOTALL)
_EXPECTED = "a Zendesk ticket id (digits)"

blueprint = Blueprint("zendesk_webhooks", __name__)


def _as_ticket_id(value: object) -> str | None:
    """The ticket id as a string; None when absent; 400 when present but not a ticket id."""
    return checked_ticket_id(PLATFORM, value, _TICKET_ID, _EXPECTED)


def event_ticket_id(payload: JsonObject) -> str | None:
    detail = payload.get("detail")
    if isinstance(detail, dict) and (ticket_id := _as_ticket_id(detail.get("id"))):
        return ticket_id
    subject = payload.get("subject")
    if isinstance(subject, str) and (match := _TICKET_SUBJECT.fullmatch(subject.strip())):
        return _as_ticket_id(match.group(1))
    return None


def caused_by_connector(payload: JsonObject) -> bool:
    """True when the connector's own Zendesk user made this change: its reconcile already
    evaluated the state its writes produce, so reading the ticket again would be wasted."""
    detail = payload.get("detail")
    actor = detail.get("actor_id") if isinstance(detail, dict) else None
    if actor is None:
        return False
    # Never waits for Zendesk: while the identity is unknown the event is simply reconciled.
    own = receiver_state().zendesk_identity.user_id()
    return own is not None and str(actor) == own


def reconcile_ticket_event(event_type: str, payload: JsonObject) -> ResponseReturnValue:
    ticket_id = event_ticket_id(payload)
    if ticket_id is None:
        missing_ticket_id(PLATFORM, event_type)
    if caused_by_connector(payload):
        return ignore(PLATFORM, "own_change", event_type)
    event_id = payload.get("id")
    return queue_reconcile(PLATFORM, event_type, ticket_id, event_id if isinstance(event_id, str) and event_id else None)


def ticket_deleted(event_type: str, payload: JsonObject) -> ResponseReturnValue:
    # Nothing left to bring in line; timers already scheduled will end as not_found.
    return nothing_to_reconcile(PLATFORM, event_type, "ticket_deleted")


EventHandler = Callable[[str, JsonObject], ResponseReturnValue]

# Every other `zen:event-type:ticket.*` type (created, status_changed, comment_added,
# tags_changed, …) means "the ticket changed": reconcile_ticket_event.
DELETED_EVENT_HANDLERS: dict[str, EventHandler] = {
    "zen:event-type:ticket.soft_deleted": ticket_deleted,
    "zen:event-type:ticket.permanently_deleted": ticket_deleted,
}


def ticket_event_handler(event_type: str) -> EventHandler | None:
    if event_type in DELETED_EVENT_HANDLERS:
        return DELETED_EVENT_HANDLERS[event_type]
    if event_type.startswith(TICKET_EVENT_PREFIX):
        return reconcile_ticket_event
    return None


def reconcile_trigger(payload: JsonObject) -> ResponseReturnValue:
    ticket_id = _as_ticket_id(payload.get("ticket_id"))
    if ticket_id is None:
        # e.g. an unrendered "{{ticket.id}}" or an empty value in the admin's JSON body
        missing_ticket_id(PLATFORM, TRIGGER_EVENT)
    return queue_reconcile(PLATFORM, TRIGGER_EVENT, ticket_id, request.headers.get(INVOCATION_ID_HEADER) or None)


@blueprint.post("/webhooks/zendesk")
def receive_zendesk_event() -> ResponseReturnValue:
    state = receiver_state()
    secrets = state.settings.zendesk_webhook_secrets
    require_secret_or_unsigned(PLATFORM, secrets, "ZENDESK_WEBHOOK_SECRET")
    body = read_body(PLATFORM)
    if secrets and not verify_zendesk_signature(
        secrets,
        body,
        request.headers.get(ZENDESK_SIGNATURE_HEADER),
        request.headers.get(ZENDESK_TIMESTAMP_HEADER),
        window=state.zendesk_replay_window,
    ):
        reject_bad_signature(PLATFORM)
    payload = parse_json_object(PLATFORM, body)

    event_type = payload.get("type")
    if isinstance(event_type, str) and event_type.startswith(EVENT_TYPE_PREFIX):
        handler = ticket_event_handler(event_type)
        if handler is None:  # user.*, organization.*, … events
            return ignore(PLATFORM, "unhandled_event", event_type)
        return handler(event_type, payload)
    if "ticket_id" in payload:
        return reconcile_trigger(payload)
    return ignore(PLATFORM, "unknown_event", event_type if isinstance(event_type, str) else None)
