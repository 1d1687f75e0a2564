"""Reconcile one ticket: fetch fresh state → evaluate the rules → write what is missing.

An event is a hint, not the truth: whatever arrived, the worker re-reads the ticket and
computes the desired state from scratch, so late, duplicated, reordered or lost webhooks
all end in the same place, and running twice changes nothing the second time. After each
reconcile the ticket's next deadline (an SLA warning, a breach, a follow-up) replaces the
ticket's row in the deadline index (`connector.queue.deadlines`), whose pump queues a
reconcile at that instant, so a ticket nobody touches is still acted on at the right minute.

`reconcile_fetched` is the same work for a ticket already read, e.g. parsed from a sweep's
search result: the sweep evaluates it with `write=False` and, when the plan has something
to write, queues a normal reconcile instead, because a write must be based on a fresh read
taken under the ticket's lock, never on a search snapshot that may be minutes old.

A write the platform refuses because the ticket changed under it – 409 from Zendesk's safe
update (`updated_stamp` older than the ticket), Jira's 409, or `StaleTicket` (Zendesk closed
the solved ticket between our read and our write) – is answered at once: the ticket is read
again and the plan made again from that state, after a short jittered pause (so two workers
that collided do not collide again), at most `REPLAN_ATTEMPTS` times. Waiting for the next
event or sweep instead would leave the agent's ticket without its comment for minutes. Past
the bound the Conflict goes to the queue, which retries later with its own back-off.

Settled tickets: the rules are a pure function of ticket, instant and config, and a plan
changes with time only at its next deadline. So each reconcile that leaves nothing to write
records, with the deadline, the ticket's `updated` stamp and the config's fingerprint (never
after a write: see `_settlement`). A later reconcile that finds the same stamp, the same
config and `now` before that deadline stops right there: no evaluation, and on Zendesk no
audits read (`fetch_if_changed`), so a redelivered webhook of a settled ticket costs one
read on both platforms (`connector.queue.deadlines`).

Observe mode (`CONNECTOR_MODE=observe`) and rules in `mode: observe`: the plan is split
(`connector.observe.rollout`); observed actions are recorded in the queue's storage and the
log instead of written, the enforced rest is applied as usual – in observe mode that rest is
empty, so no write request leaves at all. A stale observed one-time comment of a rule now
enforced is written as its marker only (the rollout's backlog rule). The sweep's read-only
pass records observed actions from the search result itself and queues a reconcile only for
enforced writes: in observe mode nothing is ever written, so queueing would re-read the same
tickets on every sweep for nothing.

Problem numbers: the `problem-number` rule plans the placeholder "(next problem number)";
only here, right before the enforced plan is written, is a number claimed in the queue's
storage (`connector.problem_numbers.assign`) – once per ticket, reused after a failed write.

Team chat: with `channels:` configured, the chat messages riding on the plan's one-time
comments are staged in the queue's outbox before the write and released (one delivery task
each) after it (`connector.channels.delivery`); the chat service is never called here.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from connector.approvals import with_approvals
from connector.channels import delivery as chat_hooks
from connector.config import SupportConfig, load_config
from connector.knowledge.enrich import enrich
from connector.locales import with_reporter_locale
from connector.metrics import RECONCILES, REPLANS
from connector.model import Plan, Ticket
from connector.observe import rollout
from connector.observe.store import LazyObservedStore, ObservedStore
from connector.platforms.base import ApplyResult, Conflict, NotFound, PlatformAdapter, Unchanged
from connector.problem_numbers import LazyProblemNumbers, ProblemNumberStore, assign
from connector.queue.deadlines import DeadlineEntry, DeadlineIndex, Record, deadline_index
from connector.queue.storage import create_huey
from connector.rules.engine import evaluate
from connector.settings import Settings

log = logging.getLogger("connector.reconcile")

# Re-reads after a refused write (409 / StaleTicket) within one reconcile, and the pause
# before each: the n-th re-plan waits between REPLAN_PAUSE * n / 2 and REPLAN_PAUSE * n seconds.
REPLAN_ATTEMPTS = 3
REPLAN_PAUSE = 0.4

# The resolution of each platform's `updated` stamp: Jira's carries milliseconds
# ("2026-11-20T15:00:00.000+0800", REST `updated`), Zendesk's whole seconds ("updated_at":
# "2011-05-05T10:38:52Z", Tickets API JSON format). Two changes within one tick can share a
# stamp, so a read taken less than one tick after the stamp cannot settle the ticket: a
# change later in that tick would not move the stamp (git's "racy clean" problem).
STAMP_TICK = {"jira": timedelta(milliseconds=1), "zendesk": timedelta(seconds=1)}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Runtime:
    """What a worker process needs: settings, the validated config, one adapter per platform."""

    settings: Settings
    config: SupportConfig
    clock: Callable[[], datetime] = utc_now
    adapters: dict[str, PlatformAdapter] = field(default_factory=dict)
    # Called after every reconcile with (platform, ticket_id, next deadline or None, the
    # ticket's `updated` stamp, the config fingerprint when the ticket is settled at that
    # stamp, else None) to replace the ticket's timer; None in dry contexts.
    schedule: Callable[[str, str, datetime | None, datetime | None, str | None], None] | None = None
    # The ticket's row of the deadline index (`DeadlineIndex.entry`), consulted before the
    # read to stop early for a settled ticket; None: always read and evaluate.
    lookup: Callable[[str, str], DeadlineEntry | None] | None = None
    # Observed actions and their history (observe mode, `mode: observe` rules, the rollout's
    # backlog rule). None: no history is consulted (dry contexts), and the queue's store
    # named by `settings` is opened only if an action must be recorded.
    observations: ObservedStore | None = None
    # Problem-number claims (`connector.problem_numbers`). None: the queue's store named by
    # `settings` is opened on the first claim.
    numbers: ProblemNumberStore | None = None
    # Team-chat delivery (`connector.channels.delivery.ChatDelivery`, the queue's outbox and
    # task). None: the queue named by `settings` is opened when a config has `channels:`.
    chat: Any = None
    # Injectable so tests neither wait nor depend on chance (see REPLAN_PAUSE).
    sleep: Callable[[float], None] = time.sleep
    uniform: Callable[[float, float], float] = random.uniform
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _fingerprint: tuple[int, bool, str] | None = field(default=None, repr=False)

    def config_fingerprint(self) -> str:
        """What a settled ticket was evaluated under: the config's content and the mode. A hot
        reload (or a switch to or from observe mode) changes it, so every ticket is
        evaluated again rather than skipped on a plan made under the old rules."""
        config, observing = self.config, self.settings.observing
        cached = self._fingerprint
        if cached is not None and cached[0] == id(config) and cached[1] == observing:
            return cached[2]
        digest = hashlib.sha256(config.model_dump_json(warnings=False).encode())
        digest.update(b"observe" if observing else b"enforce")
        fingerprint = digest.hexdigest()[:20]
        self._fingerprint = (id(config), observing, fingerprint)
        return fingerprint

    def replace_config(self, config: SupportConfig) -> None:
        """Use `config` from the next reconcile on (hot reload, `connector.reload`).

        The adapters are dropped too: they were built from the old config's platform
        mapping (field ids, groups, statuses), and the next reconcile rebuilds them.
        """
        with self._lock:
            self.config = config
            self.adapters = {}
            self._fingerprint = None

    def observed_store(self) -> ObservedStore:
        with self._lock:
            if self.observations is None:
                self.observations = LazyObservedStore(self.settings)
            return self.observations

    def problem_numbers(self) -> ProblemNumberStore:
        with self._lock:
            if self.numbers is None:
                self.numbers = LazyProblemNumbers(self.settings)
            return self.numbers

    def chat_delivery(self):
        with self._lock:
            if self.chat is None:
                self.chat = chat_hooks.LazyChatOutbox(self.settings).delivery()
            return self.chat

    def adapter(self, platform: str) -> PlatformAdapter:
        with self._lock:
            if platform not in self.adapters:
                self.adapters[platform] = build_adapter(platform, self.settings, self.config)
            return self.adapters[platform]


def build_adapter(platform: str, settings: Settings, config: SupportConfig) -> PlatformAdapter:
    """The platform's adapter. Imported here, when a platform is used, so that a process
    configured for one platform never loads the other's client library (`jira`, `zenpy`);
    no import cycle is involved (tests/test_structure.py sees these imports too)."""
    mapping = config.platforms.for_platform(platform).model_copy()
    if platform == "jira":
        from connector.platforms.jira import JiraAdapter

        if mapping.connector_account is None and settings.jira_user:
            mapping.connector_account = settings.jira_user
        return JiraAdapter.from_settings(settings, mapping)
    if platform == "zendesk":
        from connector.platforms.zendesk import ZendeskAdapter

        if mapping.connector_account is None and settings.zendesk_email:
            mapping.connector_account = settings.zendesk_email
        return ZendeskAdapter.from_settings(settings, mapping)
    raise ValueError(f"unknown platform {platform!r}; expected 'jira' or 'zendesk'")


@dataclass
class Outcome:
    platform: str
    ticket_id: str
    outcome: str  # applied | noop | observed | not_found | needs_write (write=False and the plan has actions)
    plan: Plan | None = None
    result: ApplyResult | None = None
    # A noop decided from the ticket's stamp alone (settled, see the module docstring): no
    # evaluation, and on Zendesk no audits read; `plan` is None.
    unchanged: bool = False


def reconcile(runtime: Runtime, platform: str, ticket_id: str) -> Outcome:
    """Fetch, evaluate and apply; re-read and re-plan at once when the write met a newer ticket."""
    replans = 0
    while True:
        adapter = runtime.adapter(platform)
        # Only an adapter whose read has a second part worth saving (Zendesk's audits) is
        # asked to stop early; the others are checked after their one read.
        reader = getattr(adapter, "fetch_if_changed", None)
        settled = _settled_test(runtime, platform, ticket_id) if reader is not None else None
        read_at = runtime.clock()
        try:
            ticket = reader(ticket_id, settled) if settled is not None else adapter.fetch(ticket_id)
        except NotFound:
            # Deleted, or moved out of the connector's reach: nothing to do, nothing to retry.
            RECONCILES.labels(platform, "not_found").inc()
            log.info("reconcile.not_found", extra={"platform": platform, "ticket_id": ticket_id})
            if runtime.schedule:
                _record_deadline(runtime, platform, ticket_id, None, None)
            return Outcome(platform, ticket_id, "not_found")
        if reader is None:
            # Checked after the one read, by id (the index is by id; an event may name a key).
            settled = _settled_test(runtime, platform, ticket.id)
        else:
            settled = None  # `fetch_if_changed` already decided after its ticket read
        if isinstance(ticket, Unchanged) or (settled is not None and settled(ticket.updated)):
            # Same stamp, same config, next deadline not reached: the plan is the empty one
            # made last time, and the timer armed then still stands.
            RECONCILES.labels(platform, "unchanged").inc()
            log.info("reconcile.unchanged", extra={"platform": platform, "ticket_id": ticket_id})
            return Outcome(platform, ticket_id, "noop", unchanged=True)
        try:
            return reconcile_fetched(runtime, ticket, read_at=read_at)
        except Conflict as exc:
            fields = {"platform": platform, "ticket_id": ticket_id, "ticket_key": ticket.key,
                      "error": type(exc).__name__, "status": exc.status, "replans": replans}
            if replans >= REPLAN_ATTEMPTS:
                REPLANS.labels(platform, "gave_up").inc()
                log.warning("reconcile.replan_gave_up", extra=fields)
                raise  # the queue retries it later with its own back-off
            replans += 1
            REPLANS.labels(platform, "retried").inc()
            pause = runtime.uniform(REPLAN_PAUSE * replans / 2, REPLAN_PAUSE * replans)
            log.info("reconcile.replan", extra={**fields, "pause_seconds": round(pause, 3)})
            runtime.sleep(pause)


def _settled_test(runtime: Runtime, platform: str,
                  ticket_id: str) -> Callable[[datetime | None], bool] | None:
    """A test of the ticket's `updated` stamp – True: settled, nothing to do – or None when
    the index has no settlement for the ticket (or cannot be read: then the ticket is
    evaluated)."""
    if runtime.lookup is None:
        return None
    try:
        entry = runtime.lookup(platform, ticket_id)
    except Exception as exc:
        log.warning("reconcile.index_unreadable", extra={"platform": platform, "ticket_id": ticket_id,
                                                         "error": type(exc).__name__})
        return None
    if entry is None or entry.config is None:
        return None
    now, fingerprint = runtime.clock(), runtime.config_fingerprint()
    return lambda updated: entry.settled(updated, now, fingerprint)


def reconcile_fetched(runtime: Runtime, ticket: Ticket, *, write: bool = True,
                      records: list[Record] | None = None, read_at: datetime | None = None) -> Outcome:
    """Evaluate a ticket already read and, with `write`, apply the plan and re-arm its timer.

    With `write=False` a plan that has actions is not applied and the timer is left alone
    (outcome "needs_write"): the caller queues a reconcile, which re-reads the ticket.
    With `records` the timer's row is appended there instead of recorded at once (the sweep
    writes a whole page's rows in one transaction). `read_at` is when the read of `ticket`
    was started (a lower bound of the instant its state was taken; None: unknown, the ticket
    is not settled on that read).
    """
    platform = ticket.platform
    observe_all = runtime.settings.observing
    now = runtime.clock()
    if write:
        # Similar past cases are looked up only when a rule will use them (a new ticket, a
        # resolve attempt under the KB gate); the sweep's read-only pass never searches.
        ticket = enrich(runtime.adapter(platform), ticket, runtime.config)
        # Jira Service Management approvals: read only when the review gate's outcome depends on them.
        ticket = with_approvals(runtime.adapter(platform), ticket, runtime.config)
        # The reporter's language (Jira's issue does not carry it): read only when a closing summary is owed.
        ticket = with_reporter_locale(runtime.adapter(platform), ticket, runtime.config, now)
    plan = evaluate(ticket, now, runtime.config, observe_all=observe_all)
    parts = rollout.split(plan, runtime.config, observe_all=observe_all)
    enforced = parts.enforced
    if enforced.actions and not write:
        log.info("reconcile.needs_write", extra={
            "platform": platform, "ticket_id": ticket.id, "ticket_key": ticket.key,
            "actions": [f"{a.rule}:{a.type}" for a in enforced.actions],
        })
        return Outcome(platform, ticket.id, "needs_write", plan)
    if parts.observed:
        rollout.record(runtime.observed_store(), ticket, parts.observed, now)
    if enforced.actions and runtime.observations is not None:
        enforced = rollout.settle_backlog(runtime.observations, ticket, enforced, now,
                                          runtime.config.rollout.backlog_hours)
    claim_warnings: list[str] = []
    if enforced.actions:
        # The one impure part of a plan: "(next problem number)" becomes a number claimed
        # in the queue's storage, right before the write (observed plans keep the placeholder).
        enforced, claim_warnings = assign(runtime.problem_numbers(), ticket, enforced, runtime.config, now)
    chat = runtime.chat_delivery() if runtime.config.channels else None
    if chat is not None:
        _chat_hook(chat_hooks.recover, chat, ticket)
        if enforced.actions:
            # Before the write (a storage failure fails the reconcile before anything is written).
            chat_hooks.before_write(chat, ticket, enforced)
    result = runtime.adapter(platform).apply(ticket, enforced) if enforced.actions else ApplyResult()
    if chat is not None and result.applied:
        _chat_hook(chat_hooks.after_write, chat, ticket, result.applied)
    if claim_warnings:
        result.warnings.extend(claim_warnings)
    outcome = "applied" if result.changed else ("observed" if parts.observed else "noop")
    RECONCILES.labels(platform, outcome).inc()
    log.info("reconcile.done", extra={
        "platform": platform, "ticket_id": ticket.id, "ticket_key": ticket.key, "outcome": outcome,
        "actions": [f"{a.rule}:{a.type}" for a in enforced.actions],
        "observed": [f"{a.rule}:{a.type}" for a in parts.observed], "writes": len(result.writes),
        "warnings": result.warnings, "next_deadline": plan.next_deadline.isoformat() if plan.next_deadline else None,
    })
    if runtime.schedule:
        due, seen, settled = _settlement(runtime, ticket, plan, enforced, result, read_at)
        if records is not None:
            records.append((platform, ticket.id, due, seen, settled))
        else:
            _record_deadline(runtime, platform, ticket.id, due, seen, settled)
    return Outcome(platform, ticket.id, outcome, plan, result)


def _chat_hook(hook, *args) -> None:
    """Release / recover chat messages; a failure is logged, not raised: the comment is written,
    and the next reconcile of the ticket finds the staged message again (`recover`)."""
    try:
        hook(*args)
    except Exception as exc:
        log.warning("reconcile.chat_outbox_failed", extra={"hook": hook.__name__, "error": type(exc).__name__})


def _settlement(runtime: Runtime, ticket: Ticket, plan: Plan, enforced: Plan, result: ApplyResult,
                read_at: datetime | None) -> tuple[datetime | None, datetime | None, str | None]:
    """(due, stamp, config fingerprint or None) to record after a reconcile.

    Settled (fingerprint given) at the stamp as read when nothing had to be written and the
    read began at least one stamp tick after the stamp (`STAMP_TICK`): everything that
    happened within that stamp's tick – comments included – was in what was read.

    After a write the ticket is never settled. The platform's answer carries a stamp in the
    tick of our own write, and on Zendesk (whole-second stamps) a comment by someone else in
    that same second shares it without changing any field: settling there could skip that
    comment until the ticket's next change or deadline. So the next read after a write is a
    whole one (on Zendesk: ticket and audits), and it settles the ticket when it finds
    nothing to do – one read more for the event our own write causes, never a missed reply.
    """
    fingerprint = runtime.config_fingerprint()
    tick = STAMP_TICK.get(ticket.platform, timedelta(seconds=1))
    closed = (ticket.updated is not None and read_at is not None and read_at - ticket.updated >= tick)
    if not enforced.actions:
        return plan.next_deadline, ticket.updated, fingerprint if closed else None
    if not result.writes:
        clean = closed and not result.refused and not result.warnings
        return plan.next_deadline, ticket.updated, fingerprint if clean else None
    return plan.next_deadline, ticket.updated, None


def _record_deadline(runtime: Runtime, platform: str, ticket_id: str, due: datetime | None,
                     seen: datetime | None, settled: str | None = None) -> None:
    """Replace the ticket's timer. A failure is logged, not raised: the writes are done, and
    the next full sweep re-arms every timer from the tickets themselves."""
    assert runtime.schedule is not None
    try:
        runtime.schedule(platform, ticket_id, due, seen, settled)
    except Exception as exc:
        log.warning("reconcile.timer_not_armed", extra={
            "platform": platform, "ticket_id": ticket_id, "due": due.isoformat() if due else None,
            "error": type(exc).__name__,
        })


class DeadlineTimers:
    """The queue backend's deadline index, opened on first use: `record` is the runtime's
    `schedule`, `entry` its `lookup`."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._index: DeadlineIndex | None = None
        self._lock = threading.Lock()

    def _open(self) -> DeadlineIndex:
        with self._lock:
            if self._index is None:
                self._index = deadline_index(create_huey(self._settings))
            return self._index

    def record(self, platform: str, ticket_id: str, due: datetime | None, seen: datetime | None,
               config: str | None = None) -> None:
        self._open().record(platform, ticket_id, due, seen, config)

    def entry(self, platform: str, ticket_id: str) -> DeadlineEntry | None:
        return self._open().entry(platform, ticket_id)


def deadline_timers(settings: Settings) -> Callable[[str, str, datetime | None, datetime | None, str | None], None]:
    """Record each reconcile's next deadline in the queue backend's deadline index."""
    return DeadlineTimers(settings).record


def build_runtime(settings: Settings, config: SupportConfig) -> Runtime:
    """A worker's runtime: its timers, observations and problem numbers in the queue's backend."""
    timers = DeadlineTimers(settings)
    return Runtime(settings=settings, config=config, schedule=timers.record, lookup=timers.entry,
                   observations=LazyObservedStore(settings), numbers=LazyProblemNumbers(settings))


# The process-wide runtime, for the one place where huey calls the task without one passed in
# (`reconcile_ticket`, bound by `connector.queue.worker.WorkerThreads` when no reconciler is
# given): the demo and tests install theirs with `set_runtime`. The worker process builds
# its own runtime and passes it (`connector.queue.worker.run_worker`).
_RUNTIME: Runtime | None = None
_RUNTIME_LOCK = threading.Lock()


def get_runtime() -> Runtime:
    """The process-wide runtime, built once from the environment unless one was installed."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            settings = Settings.from_env()
            _RUNTIME = build_runtime(settings, load_config(settings.config_path))
        return _RUNTIME


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (the demo, tests) or forget it so the next call rebuilds from the environment."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        _RUNTIME = runtime


def reconcile_ticket(platform: str, ticket_id: str) -> str:
    """The queue task's body with the process-wide runtime; raises RateLimited/HostError/Timeout
    for the queue to requeue."""
    return reconcile(get_runtime(), platform, ticket_id).outcome
