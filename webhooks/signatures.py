"""Webhook signature checks for Jira and Zendesk.

Anyone who finds the webhook URL can POST to it, and every accepted event costs API calls
against the platform's rate limit, so nothing is parsed before the sender is proven. Both
checks compare in constant time over the raw bytes as received (re-serialised JSON would
not match), and accept any of several configured secrets so a secret can be rotated
without dropping events: configure old and new, switch the platform, remove the old one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

JIRA_SIGNATURE_HEADER = "X-Hub-Signature"
JIRA_SIGNATURE_PREFIX = "sha256="
ZENDESK_SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
ZENDESK_TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"

_SHA256_HEX_LENGTH = 64


def _hmac_sha256(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def jira_signature(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature` value Jira sends for `body` signed with `secret`."""
    return JIRA_SIGNATURE_PREFIX + _hmac_sha256(secret, body).hex()


def verify_jira_signature(secrets: Iterable[str], body: bytes, header: str | None) -> bool:
    """True when `header` is `sha256=<hex>` of HMAC-SHA256(secret, body) for one of `secrets`."""
    if not header or not header.startswith(JIRA_SIGNATURE_PREFIX):
        return False
    try:
        provided = bytes.fromhex(header[len(JIRA_SIGNATURE_PREFIX):])
    except ValueError:
        return False
    if len(provided) * 2 != _SHA256_HEX_LENGTH:
        return False
    # No early exit: the time taken must not tell which secret (if any) matched.
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(_hmac_sha256(secret, body), provided)
    return matched


@dataclass(frozen=True)
class ReplayWindow:
    """How far a Zendesk signature timestamp may lie from our clock.

    A captured request stays validly signed forever; the window bounds how long it can be
    replayed. A little future skew is allowed for clock differences between the two sides.
    """

    max_age: timedelta = timedelta(minutes=5)
    max_future: timedelta = timedelta(minutes=1)

    def admits(self, signed_at: datetime, now: datetime) -> bool:
        return now - self.max_age <= signed_at <= now + self.max_future


def zendesk_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Zendesk-Webhook-Signature` value for `body` sent at `timestamp`."""
    return base64.b64encode(_hmac_sha256(secret, timestamp.encode("utf-8") + body)).decode("ascii")


def parse_zendesk_timestamp(value: str) -> datetime | None:
    """Zendesk sends ISO 8601 in UTC, e.g. 2021-03-25T05:09:27Z; None when it is not that."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def verify_zendesk_signature(
    secrets: Iterable[str],
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now: datetime | None = None,
    window: ReplayWindow = ReplayWindow(),
) -> bool:
    """True when the signature is base64 HMAC-SHA256(secret, timestamp + body) for one of
    `secrets` and the timestamp lies inside the replay window around `now`."""
    if not signature or not timestamp:
        return False
    signed_at = parse_zendesk_timestamp(timestamp)
    if signed_at is None or not window.admits(signed_at, now or datetime.now(timezone.utc)):
        return False
    try:
        provided = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    message = timestamp.encode("utf-8") + body
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(_hmac_sha256(secret, message), provided)
    return matched
