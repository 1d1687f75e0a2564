"""Delivering the outbox: the queue task that posts a chat message, and the reconcile's hooks.

The reconcile never talks to a chat service. Around the adapter's write it only touches the
outbox (`before_write`: stage the plan's chat messages; `after_write`: release those whose
comment was written and enqueue one `deliver_chat` task each; `recover`: release what a
killed worker left staged, re-enqueue what a killed delivery left behind). The task then
claims the entry, builds the preset's request (signed with the connector's clock), posts it
with a short timeout and reads the answer (`connector.channels.presets`):

- delivered → `sent`;
- retry (connection error, timeout, 408/429/5xx, a vendor's rate-limit code) → back to
  `ready` and the task scheduled again after an exponential back-off, never sooner than the
  service's Retry-After or the vendor's documented throttle, at most `MAX_ATTEMPTS` times;
- failed (a 4xx, an errcode that will not change, the channel gone from the config or its
  variable unset) → `failed`, reported: `connector_chat_messages_total{outcome="failed"}` and
  a `chat.failed` warning naming the channel, preset and reason – never retried forever.

Logs name the channel, preset, ticket and marker; never the URL, the secret or the text.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any, Callable

import requests
from prometheus_client import Counter

from connector import scrub
from connector.channels.config import ChannelConfigError, secrets_of
from connector.channels.outbox import ChatOutbox, chat_outbox, entry_id
from connector.channels.presets import Message, build, interpret
from connector.metrics import REGISTRY
from connector.model import AddComment
from connector.queue.storage import create_huey

log = logging.getLogger("connector.channels")

CHAT_MESSAGES = Counter(
    "connector_chat_messages", "Team-chat messages by channel and outcome (sent, retry, failed, staged)",
    ["channel", "outcome"], registry=REGISTRY)

MAX_ATTEMPTS = 8
FIRST_DELAY = 5.0
MAX_DELAY = 900.0
TIMEOUT = (5.0, 10.0)  # connect, read


class ChatDelivery:
    """The `deliver_chat` task of one huey instance, and the outbox in its storage."""

    def __init__(self, huey, *, first_delay: float = FIRST_DELAY, max_attempts: int = MAX_ATTEMPTS):
        self.huey = huey
        # The worker's runtime (config and clock) the task reads, given by the worker that runs
        # the task (`connector.queue.worker`), as the reconcile task is given its reconciler.
        self.runtime: Callable[[], Any] | None = None
        self.first_delay = first_delay
        self.max_attempts = max_attempts
        self._outbox: ChatOutbox | None = None
        # The same registered name in every process: a serialized task refers to it.
        self._task = huey.task(name="deliver_chat")(self.run)

    @property
    def outbox(self) -> ChatOutbox:
        if self._outbox is None:
            self._outbox = chat_outbox(self.huey)
        return self._outbox

    def enqueue(self, eid: str, delay: float = 0.0) -> None:
        if delay > 0:
            self._task.schedule((eid,), delay=delay)
        else:
            self._task(eid)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        return max(min(self.first_delay * (2 ** attempt), MAX_DELAY), retry_after or 0.0)

    # -- the task ----------------------------------------------------------------------------

    def run(self, eid: str) -> str:
        if self.runtime is None:
            raise RuntimeError("deliver_chat runs in a worker: the worker sets ChatDelivery.runtime")
        entry = self.outbox.claim(eid, time.time())
        if entry is None:
            log.info("chat.not_claimed", extra={"entry": eid})
            return "not_claimed"
        runtime = self.runtime()
        fields = {"channel": entry.channel, "platform": entry.platform, "ticket_id": entry.ticket_id,
                  "marker": entry.marker, "attempt": entry.attempts}
        channel = runtime.config.channels.get(entry.channel)
        if channel is None:
            return self._failed(eid, fields, "the channel is no longer in the configuration")
        fields["preset"] = channel.preset
        try:
            secrets = secrets_of(entry.channel, channel)
        except ChannelConfigError as exc:
            return self._failed(eid, fields, str(exc))
        payload = entry.payload
        message = Message(text=payload["text"], title=channel.title, ticket=payload.get("ticket", {}))
        try:
            request = build(channel, secrets, message, runtime.clock().timestamp())
            response = requests.post(request.url, data=request.body, headers=request.headers, timeout=TIMEOUT,
                                     allow_redirects=False)
            answer = interpret(channel.preset, response.status_code, dict(response.headers), response.content)
        except requests.RequestException as exc:
            answer = None
            reason, retry_after = type(exc).__name__, None
        except Exception as exc:  # a template that fails at send time: the same every time
            return self._failed(eid, fields, f"{type(exc).__name__}: {scrub.scrub(str(exc))[:200]}")
        if answer is not None and answer.outcome == "delivered":
            self.outbox.finish(eid, "sent")
            CHAT_MESSAGES.labels(entry.channel, "sent").inc()
            log.info("chat.sent", extra=fields)
            return "sent"
        if answer is not None and answer.outcome == "failed":
            return self._failed(eid, fields, answer.reason)
        if answer is not None:
            reason, retry_after = answer.reason, answer.retry_after
        if entry.attempts + 1 >= self.max_attempts:
            return self._failed(eid, fields, f"gave up after {self.max_attempts} attempts: {reason}")
        wait = self.delay(entry.attempts, retry_after)
        self.outbox.finish(eid, "ready", scrub.scrub(reason), next_at=time.time() + wait)
        self.enqueue(eid, wait)
        CHAT_MESSAGES.labels(entry.channel, "retry").inc()
        log.warning("chat.retry", extra={**fields, "reason": scrub.scrub(reason), "delay_seconds": round(wait, 3)})
        return "retry"

    def _failed(self, eid: str, fields: dict, reason: str) -> str:
        reason = scrub.scrub(reason)
        self.outbox.finish(eid, "failed", reason)
        CHAT_MESSAGES.labels(fields["channel"], "failed").inc()
        log.warning("chat.failed", extra={**fields, "reason": reason})
        return "failed"


# --- the reconcile's hooks ------------------------------------------------------------------


def _chat_comments(actions) -> list[AddComment]:
    return [a for a in actions if isinstance(a, AddComment) and a.chat and a.marker]


def before_write(delivery: ChatDelivery, ticket, plan) -> None:
    """Stage the chat messages of the plan's one-time comments (nothing when already staged)."""
    for action in _chat_comments(plan.actions):
        for notice in action.chat:
            payload = {"text": notice.text, "rule": action.rule,
                       "ticket": {"key": ticket.key, "id": ticket.id, "url": ticket.url or "",
                                  "summary": ticket.summary, "priority": ticket.priority or "",
                                  "platform": ticket.platform}}
            if delivery.outbox.stage(ticket.platform, ticket.id, action.marker, notice.channel, payload):
                CHAT_MESSAGES.labels(notice.channel, "staged").inc()


def after_write(delivery: ChatDelivery, ticket, applied) -> int:
    """Release and enqueue the messages whose comment was written; how many were enqueued."""
    sent = 0
    for action in _chat_comments(applied):
        for notice in action.chat:
            sent += _release(delivery, ticket.platform, ticket.id, action.marker, notice.channel)
    return sent


def _release(delivery: ChatDelivery, platform: str, ticket_id: str, marker: str, channel: str) -> int:
    eid = entry_id(platform, ticket_id, marker, channel)
    if not delivery.outbox.release(eid, time.time()):
        return 0  # already released by another worker or an earlier reconcile
    delivery.enqueue(eid)
    log.info("chat.queued", extra={"channel": channel, "platform": platform, "ticket_id": ticket_id,
                                   "marker": marker})
    return 1


def recover(delivery: ChatDelivery, ticket, now: datetime | None = None) -> int:
    """Finish what a killed worker left: staged messages whose comment the ticket shows are
    released; ready/sending ones whose task is long overdue are enqueued again."""
    found = 0
    markers = ticket.markers
    for entry in delivery.outbox.outstanding(ticket.platform, ticket.id, time.time()):
        if entry.state == "staged":
            if entry.marker in markers:
                found += _release(delivery, entry.platform, entry.ticket_id, entry.marker, entry.channel)
        elif delivery.outbox.requeue(entry.id, time.time()):
            delivery.enqueue(entry.id)
            log.warning("chat.requeued", extra={"channel": entry.channel, "platform": entry.platform,
                                                "ticket_id": entry.ticket_id, "marker": entry.marker,
                                                "state": entry.state})
            found += 1
    return found


class LazyChatOutbox:
    """The outbox (and delivery task) of the queue that `settings` name, opened on first use:
    for a runtime built without the worker's queue at hand (the worker hands its own
    `queue.chat` to its runtime instead)."""

    def __init__(self, settings) -> None:
        self._settings = settings
        self._delivery: ChatDelivery | None = None
        self._lock = threading.Lock()

    def delivery(self) -> ChatDelivery:
        with self._lock:
            if self._delivery is None:
                self._delivery = ChatDelivery(create_huey(self._settings))
            return self._delivery
