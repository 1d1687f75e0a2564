"""Reconcile one ticket: fetch fresh state → evaluate the rules → write what is missing.

An event is a hint, not the truth: whatever arrived, the worker re-reads the ticket and
computes the desired state from scratch, so late, duplicated, reordered or lost webhooks
all end in the same place, and running twice changes nothing the second time. After each
reconcile the ticket's next deadline (an SLA warning, a breach, a follow-up) is scheduled
as a timer, so a ticket nobody touches is still acted on at the right minute.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from connector.config import SupportConfig, load_config
from connector.metrics import RECONCILES
from connector.model import Plan
from connector.platforms.base import ApplyResult, NotFound, PlatformAdapter
from connector.rules.engine import evaluate
from connector.settings import Settings

log = logging.getLogger("connector.reconcile")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Runtime:
    """What a worker process needs: settings, the validated config, one adapter per platform."""

    settings: Settings
    config: SupportConfig
    clock: Callable[[], datetime] = utc_now
    adapters: dict[str, PlatformAdapter] = field(default_factory=dict)
    # Called with (platform, ticket_id, at) to arm a timer; None in dry contexts.
    schedule: Callable[[str, str, datetime], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def adapter(self, platform: str) -> PlatformAdapter:
        with self._lock:
            if platform not in self.adapters:
                self.adapters[platform] = build_adapter(platform, self.settings, self.config)
            return self.adapters[platform]


def build_adapter(platform: str, settings: Settings, config: SupportConfig) -> PlatformAdapter:
    mapping = config.platforms.for_platform(platform).model_copy()
    if platform == "jira":
        from connector.platforms.jira import JiraAdapter

        if mapping.connector_account is None and settings.jira_user:
            mapping.connector_account = settings.jira_user
        return JiraAdapter.from_settings(settings, mapping)
    if platform == "zendesk":
        from connector.platforms.zendesk import ZendeskAdapter  # the Zendesk issue adds it

        if mapping.connector_account is None and settings.zendesk_email:
            mapping.connector_account = settings.zendesk_email
        return ZendeskAdapter.from_settings(settings, mapping)
    raise ValueError(f"unknown platform {platform!r}; expected 'jira' or 'zendesk'")


@dataclass
class Outcome:
    platform: str
    ticket_id: str
    outcome: str  # applied | noop | not_found
    plan: Plan | None = None
    result: ApplyResult | None = None


def reconcile(runtime: Runtime, platform: str, ticket_id: str) -> Outcome:
    adapter = runtime.adapter(platform)
    try:
        ticket = adapter.fetch(ticket_id)
    except NotFound:
        # Deleted, or moved out of the connector's reach: nothing to do, nothing to retry.
        RECONCILES.labels(platform, "not_found").inc()
        log.info("reconcile.not_found", extra={"platform": platform, "ticket_id": ticket_id})
        return Outcome(platform, ticket_id, "not_found")
    plan = evaluate(ticket, runtime.clock(), runtime.config)
    result = adapter.apply(ticket, plan) if plan.actions else ApplyResult()
    outcome = "applied" if result.changed else "noop"
    RECONCILES.labels(platform, outcome).inc()
    log.info("reconcile.done", extra={
        "platform": platform, "ticket_id": ticket_id, "ticket_key": ticket.key, "outcome": outcome,
        "actions": [f"{a.rule}:{a.type}" for a in plan.actions], "writes": len(result.writes),
        "warnings": result.warnings, "next_deadline": plan.next_deadline.isoformat() if plan.next_deadline else None,
    })
    if plan.next_deadline and runtime.schedule:
        runtime.schedule(platform, ticket.id, plan.next_deadline)
    return Outcome(platform, ticket_id, outcome, plan, result)


def queue_timers(settings: Settings) -> Callable[[str, str, datetime], None]:
    """Arm SLA timers in the durable queue; a failure is logged, the sweep catches up later."""
    queue = None

    def schedule(platform: str, ticket_id: str, at: datetime) -> None:
        nonlocal queue
        from connector.queue import QueueUnavailable, ReconcileQueue

        try:
            if queue is None:
                queue = ReconcileQueue.from_settings(settings)
            queue.schedule_reconcile(platform, ticket_id, at)
        except QueueUnavailable:
            log.warning("reconcile.timer_not_armed", extra={"platform": platform, "ticket_id": ticket_id,
                                                             "due": at.isoformat()})

    return schedule


_RUNTIME: Runtime | None = None
_RUNTIME_LOCK = threading.Lock()


def get_runtime() -> Runtime:
    """The worker process's runtime, built once from the environment."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            settings = Settings.from_env()
            _RUNTIME = Runtime(settings=settings, config=load_config(settings.config_path),
                               schedule=queue_timers(settings))
        return _RUNTIME


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (the demo, tests) or forget it so the next call rebuilds from the environment."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        _RUNTIME = runtime


def reconcile_ticket(platform: str, ticket_id: str) -> str:
    """The queue task's entry point; raises RateLimited/HostError/Timeout for the queue to retry."""
    return reconcile(get_runtime(), platform, ticket_id).outcome
