"""The steps every webhook delivery goes through, shared by the Jira and Zendesk blueprints.

Reading a bounded body, checking the secret is configured, parsing a JSON object, checking
ticket and delivery ids, and the answers: a rejection (`reject` → `DeliveryRejected`,
answered by `rejection_response`, which the app factory registers), an ignored event, or a
queued reconcile – each with its metric and log line. The blueprints hold only what differs
per platform: signature scheme and event vocabulary.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any, NoReturn

from flask import jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from connector.metrics import (
    EVENTS_IGNORED,
    EVENTS_RECEIVED,
    EVENTS_REJECTED,
    event_label,
    ignore_reason_label,
    platform_label,
    reject_reason_label,
)
from connector.queue.storage import QueueUnavailable
from webhooks.state import receiver_state

log = logging.getLogger("webhooks.app")  # the receiver's log name, kept across the module split

MAX_BODY_BYTES = 1024 * 1024  # real ticket events are a few KiB; 1 MiB bounds what we buffer
_READ_CHUNK = 64 * 1024

JsonObject = dict[str, Any]


# --- rejections -------------------------------------------------------------------------------


class DeliveryRejected(Exception):
    """Stop handling a delivery and answer `status` with `message`; counted under `reason`."""

    def __init__(self, platform: str, status: int, reason: str, message: str):
        super().__init__(message)
        self.platform = platform
        self.status = status
        self.reason = reason
        self.message = message


def reject(platform: str, status: int, reason: str, message: str) -> NoReturn:
    raise DeliveryRejected(platform, status, reason, message)


def rejection_response(exc: DeliveryRejected) -> ResponseReturnValue:
    EVENTS_REJECTED.labels(platform=platform_label(exc.platform), reason=reject_reason_label(exc.reason)).inc()
    log.warning("webhook.rejected", extra={"platform": exc.platform, "reason": exc.reason, "status_code": exc.status})
    response = jsonify(error=exc.message)
    response.status_code = exc.status
    if exc.status == 503:
        response.headers["Retry-After"] = "30"
    return response


# --- the shared steps of every delivery -------------------------------------------------------


def require_secret_or_unsigned(platform: str, secrets: tuple[str, ...], env_var: str) -> None:
    if not secrets and platform not in receiver_state().allow_unsigned:
        reject(platform, 503, "secret_not_configured", f"webhook secret not configured; set {env_var}")


def read_body(platform: str) -> bytes:
    """The raw body, refused when absent (400) or above MAX_BODY_BYTES (413).

    Both the declared Content-Length and the bytes actually read are checked: a chunked
    request declares no length at all.
    """
    declared = request.content_length
    if declared == 0:
        reject(platform, 400, "empty_body", "request body is empty")
    if declared is not None and declared > MAX_BODY_BYTES:
        reject(platform, 413, "body_too_large", f"request body is larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    received = 0
    try:
        while received <= MAX_BODY_BYTES:
            chunk = request.stream.read(min(_READ_CHUNK, MAX_BODY_BYTES + 1 - received))
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
    except RequestEntityTooLarge:
        received = MAX_BODY_BYTES + 1
    if received > MAX_BODY_BYTES:
        reject(platform, 413, "body_too_large", f"request body is larger than {MAX_BODY_BYTES} bytes")
    if received == 0:
        reject(platform, 400, "empty_body", "request body is empty")
    return b"".join(chunks)


def reject_bad_signature(platform: str) -> NoReturn:
    # One message for missing, malformed and wrong: the caller learns nothing about which.
    reject(platform, 401, "bad_signature", "invalid or missing webhook signature")


def parse_json_object(platform: str, body: bytes) -> JsonObject:
    try:
        payload = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are ValueErrors
        reject(platform, 400, "not_json", "body is not JSON")
    except RecursionError:  # a signed but absurdly nested document; no platform sends one
        reject(platform, 400, "too_deep", "body nests too deeply to be a webhook")
    if not isinstance(payload, dict):
        reject(platform, 400, "not_json_object", "body is not a JSON object")
    return payload


def missing_ticket_id(platform: str, event_type: str) -> NoReturn:
    reject(platform, 400, "missing_ticket_id", f"{event_type} event carries no ticket id")


# Ticket and delivery ids are checked before anything queues or logs them: the sender picks
# them, and a 900 KB "issue key" would otherwise be stored in the queue and written whole
# into every log line about it. Real ids are far shorter (a Jira key is a project key of a
# few letters plus a number, a Zendesk id a 64-bit integer, delivery ids UUID-like).
MAX_TICKET_ID_LENGTH = 64
MAX_DELIVERY_ID_LENGTH = 128
_DELIVERY_ID = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces


def bad_ticket_id(platform: str, expected: str) -> NoReturn:
    """400 naming the expected form; the offending value is neither echoed nor logged."""
    reject(platform, 400, "bad_ticket_id",
           f"ticket id is not {expected} of at most {MAX_TICKET_ID_LENGTH} characters")


def checked_ticket_id(platform: str, value: object, pattern: re.Pattern[str], expected: str) -> str | None:
    """The ticket id (a string, or a positive integer as JSON may carry it) when present and
    matching `pattern` in full; None when absent; 400 naming `expected` when malformed."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        value = str(value)
    if not isinstance(value, str):
        bad_ticket_id(platform, expected)
    value = value.strip()
    if len(value) > MAX_TICKET_ID_LENGTH or not pattern.fullmatch(value):
        bad_ticket_id(platform, expected)
    return value


def checked_delivery_id(platform: str, value: object) -> str | None:
    """The delivery id when present and well-formed; None when absent; 400 when malformed."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_DELIVERY_ID_LENGTH or not _DELIVERY_ID.fullmatch(value):
        reject(platform, 400, "bad_delivery_id",
               f"delivery id is not printable ASCII of at most {MAX_DELIVERY_ID_LENGTH} characters")
    return value


# --- outcomes ---------------------------------------------------------------------------------


def ignore(platform: str, reason: str, event_type: str | None = None) -> ResponseReturnValue:
    """Answer 200 without queueing: a 4xx/5xx would make the platform retry or disable the hook."""
    EVENTS_IGNORED.labels(platform=platform_label(platform), reason=ignore_reason_label(reason)).inc()
    log.info("webhook.ignored", extra={"platform": platform, "reason": reason, "event_type": _short(event_type)})
    return jsonify(status="ignored", reason=reason), 200


def nothing_to_reconcile(platform: str, event_type: str, reason: str) -> ResponseReturnValue:
    """A recognised event that needs no reconcile (e.g. the ticket was deleted)."""
    count_received(platform, event_type)
    return ignore(platform, reason, event_type)


def queue_reconcile(platform: str, event_type: str, ticket_id: str, delivery_id: str | None) -> ResponseReturnValue:
    """Queue a reconcile of the ticket: 202 queued, 200 duplicate, 503 when it cannot be stored.

    `ticket_id` is validated by the blueprint; the delivery id is checked here.
    """
    delivery_id = checked_delivery_id(platform, delivery_id)
    fields = {"platform": platform, "event_type": event_type, "ticket_id": ticket_id, "delivery_id": _short(delivery_id)}
    try:
        result = receiver_state().queue.enqueue_reconcile(platform, ticket_id, event_id=delivery_id)
    except QueueUnavailable:
        reject(platform, 503, "queue_unavailable", "event could not be stored; retry later")
    count_received(platform, event_type)
    ACCEPTED_SUMMARY.count(platform, result)
    if result == "duplicate":
        # 200, never 409: Jira retries 409 for half an hour.
        EVENTS_IGNORED.labels(platform=platform_label(platform), reason="duplicate").inc()
        log.debug("webhook.duplicate", extra=fields)
        return jsonify(status="duplicate"), 200
    log.debug("webhook.queued", extra=fields)
    return jsonify(status="queued"), 202


class AcceptedSummary:
    """One INFO line per `interval` counting accepted events, instead of one line per event.

    A per-event line at INFO cost about a fifth of the receiver's CPU per event (the JSON
    formatter and its secret scrubbing), and a Jira bulk edit of 1,000 issues wrote 1,000
    lines that say nothing a counter does not (`connector_webhook_events_received_total`).
    The per-event lines are DEBUG (`CONNECTOR_LOG_LEVEL=DEBUG` brings them back, with the
    delivery id); rejections (`webhook.rejected`, signature, size, unsigned) stay WARNING,
    one line each. The first accepted event after start is logged at once, so "it receives"
    is visible without waiting.
    """

    def __init__(self, interval: float = 60.0):
        self._interval = interval
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._since = time.monotonic()
        self._logged_at = float("-inf")

    def count(self, platform: str, result: str) -> None:
        now = time.monotonic()
        with self._lock:
            key = (platform, result)
            self._counts[key] = self._counts.get(key, 0) + 1
            if now - self._logged_at < self._interval:
                return
            counts, since = self._counts, self._since
            self._counts, self._since, self._logged_at = {}, now, now
        for (name, outcome), n in sorted(counts.items()):
            log.info("webhook.accepted_summary", extra={
                "platform": name, "result": outcome, "events": n, "seconds": round(now - since, 1)})


ACCEPTED_SUMMARY = AcceptedSummary()


def count_received(platform: str, event_type: str) -> None:
    # Label values from a closed set (connector.metrics): event types are sender-chosen.
    EVENTS_RECEIVED.labels(platform=platform_label(platform), event=event_label(platform, event_type)).inc()


def _short(value: str | None, limit: int = 100) -> str | None:
    """Bound what a sender-controlled string can put into a log line."""
    return value[:limit] if isinstance(value, str) else None
