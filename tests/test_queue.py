"""The reconcile queue on a real SQLite huey: collapsing, dedupe, locks, timers, retries, processes.

The reconciler itself is replaced (it needs a platform); everything between the webhook and
the reconciler call is the real code, including huey's consumer threads where ordering matters.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from connector.platforms.base import HostError, RateLimited, Timeout
from connector.queue.reconcile_queue import ReconcileQueue
from connector.queue.storage import QueueConfigError, QueueUnavailable, create_huey
from connector.queue.worker import WorkerThreads, run_worker
from connector.serve import serve
from connector.settings import Settings
from webhooks.signatures import jira_signature

WAIT = 10.0  # seconds; generous upper bound for anything a consumer thread must do


def waiting_tickets(queue: ReconcileQueue) -> list[tuple[str, str]]:
    return [tuple(task.args) for task in queue.huey.pending()]


def tasks_for_later(queue: ReconcileQueue) -> list:
    """Tasks with an eta: huey keeps them in the queue until a consumer moves them to its schedule."""
    return [task for task in queue.huey.pending() + queue.huey.scheduled() if task.eta is not None]


def wait_until(condition, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class RecordingReconciler:
    """Stands in for connector.reconcile: records calls, can hold a ticket mid-reconcile."""

    def __init__(self, outcome: str = "noop"):
        self.calls: list[tuple[str, str, float]] = []
        self.outcome = outcome
        self.hold: dict[str, threading.Event] = {}
        self.entered: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def __call__(self, platform: str, ticket_id: str) -> str:
        with self._lock:
            self.calls.append((platform, ticket_id, time.time()))
        if ticket_id in self.hold:
            self.entered.setdefault(ticket_id, threading.Event()).set()
            assert self.hold[ticket_id].wait(WAIT)
        return self.outcome

    def holding(self, ticket_id: str) -> threading.Event:
        self.entered[ticket_id] = threading.Event()
        self.hold[ticket_id] = threading.Event()
        return self.hold[ticket_id]

    def tickets(self) -> list[str]:
        return [ticket_id for _, ticket_id, _ in self.calls]


@pytest.fixture
def reconciler(monkeypatch) -> RecordingReconciler:
    recording = RecordingReconciler()
    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(recording))
    return recording


def raising(error: Exception):
    def reconcile(platform: str, ticket_id: str) -> str:
        raise error

    return reconcile


def utc_naive(at: datetime) -> datetime:
    """huey keeps etas as naive UTC."""
    return at.astimezone(timezone.utc).replace(tzinfo=None)


# --- building the queue -------------------------------------------------------------------------


def test_default_queue_is_a_sqlite_file_in_a_created_data_dir(tmp_path):
    data_dir = tmp_path / "not" / "there" / "yet"

    huey = create_huey(Settings(data_dir=data_dir))

    assert huey.storage.filename == str(data_dir / "queue.db")
    assert (data_dir / "queue.db").is_file()


def test_redis_url_without_the_redis_package_says_how_to_fix_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis -> ImportError

    with pytest.raises(QueueConfigError, match=r"pip install redis"):
        create_huey(Settings(queue_url="redis://localhost:6379/0"))


def test_unsupported_queue_url_is_refused_without_echoing_credentials():
    with pytest.raises(QueueConfigError, match="'postgres'") as refused:
        create_huey(Settings(queue_url="postgres://support:s3cret-pw@db/queue"))

    assert "s3cret-pw" not in str(refused.value)


# --- producer side ---------------------------------------------------------------------------


def test_second_request_for_a_waiting_ticket_is_a_duplicate(queue):
    assert queue.enqueue_reconcile("jira", "10000") == "queued"
    assert queue.enqueue_reconcile("jira", "10000") == "duplicate"
    assert queue.enqueue_reconcile("jira", "10001") == "queued"

    assert waiting_tickets(queue) == [("jira", "10000"), ("jira", "10001")]
    assert queue.pending_count() == 2


def test_delivery_ids_are_shared_between_processes_using_one_queue_file(settings, queue, reconciler):
    other_process = ReconcileQueue.from_settings(settings)  # its own SQLite connection
    assert queue.enqueue_reconcile("jira", "1", event_id="delivery-1") == "queued"
    queue.run_reconcile("jira", "1", holds_pending_flag=True)  # the ticket is no longer waiting

    assert other_process.enqueue_reconcile("jira", "1", event_id="delivery-1") == "duplicate"
    assert other_process.enqueue_reconcile("jira", "1", event_id="delivery-2") == "queued"


def test_delivery_ids_are_forgotten_after_their_ttl(settings, reconciler):
    queue = ReconcileQueue.from_settings(settings, delivery_ttl=timedelta(milliseconds=100))
    queue.enqueue_reconcile("zendesk", "7", event_id="evt")
    queue.run_reconcile("zendesk", "7", holds_pending_flag=True)
    assert queue.enqueue_reconcile("zendesk", "7", event_id="evt") == "duplicate"

    time.sleep(0.2)

    assert queue.enqueue_reconcile("zendesk", "7", event_id="evt") == "queued"


def test_a_stale_pending_flag_does_not_silence_a_ticket(settings):
    # A flag whose task was lost (crash, failed write) must expire, or the ticket's events
    # would be answered "duplicate" forever.
    queue = ReconcileQueue.from_settings(settings, pending_stale_after=timedelta(0))
    queue.enqueue_reconcile("jira", "1")
    time.sleep(0.01)

    assert queue.enqueue_reconcile("jira", "1") == "queued"


def test_storage_failure_raises_queue_unavailable_and_keeps_nothing(queue, settings):
    # A real SQLite failure at the last statement (the task's insert), after the delivery
    # claim and the pending flag were written in the same transaction.
    other = ReconcileQueue.from_settings(settings).huey.storage  # another connection to the file
    other.sql("create trigger task_insert_fails before insert on task "
              "begin select raise(abort, 'disk I/O error'); end", commit=True)
    with pytest.raises(QueueUnavailable):
        queue.enqueue_reconcile("jira", "1", event_id="d-1")
    other.sql("drop trigger task_insert_fails", commit=True)

    # Neither the delivery id nor the pending flag survived the failed attempt.
    assert queue.huey.get("pending:reconcile:jira:1", peek=True) is None
    assert queue.enqueue_reconcile("jira", "1", event_id="d-1") == "queued"
    assert waiting_tickets(queue) == [("jira", "1")]


def test_an_accepted_event_is_one_write_transaction(queue):
    # Claim, flag and task in one transaction: one fsync per event instead of three, and
    # no state in between for a crash to leave behind (tests/test_crash_atomicity.py).
    statements: list[str] = []
    queue.huey.storage.conn.set_trace_callback(statements.append)
    try:
        assert queue.enqueue_reconcile("jira", "1", event_id="d-1") == "queued"
        assert queue.enqueue_reconcile("jira", "1", event_id="d-2") == "duplicate"
        assert queue.enqueue_reconcile("jira", "1", event_id="d-2") == "duplicate"
    finally:
        queue.huey.storage.conn.set_trace_callback(None)

    assert [s.split()[0].lower() for s in statements if s.split()[0].lower() in ("begin", "commit")] == \
        ["begin", "commit"] * 3


def _enqueue_twenty(index: int, settings: Settings, results) -> None:
    queue = ReconcileQueue.from_settings(settings)
    results.put([queue.enqueue_reconcile("jira", "7", event_id=f"d-{index}-{n}") for n in range(20)])


def test_a_stale_flag_is_taken_over_by_exactly_one_of_racing_receivers(settings):
    ReconcileQueue.from_settings(settings).huey.put("pending:reconcile:jira:7", time.time() - 3600)
    fork = multiprocessing.get_context("fork")
    results = fork.Queue()
    processes = [fork.Process(target=_enqueue_twenty, args=(i, settings, results)) for i in range(4)]
    for process in processes:
        process.start()
    outcomes = [o for _ in processes for o in results.get(timeout=60)]
    for process in processes:
        process.join(30)

    assert outcomes.count("queued") == 1
    assert waiting_tickets(ReconcileQueue.from_settings(settings)) == [("jira", "7")]


def test_check_writable_passes_and_fails_for_real(queue, data_dir):
    queue.check_writable()

    queue.huey.storage.close()
    for path in data_dir.glob("queue.db*"):
        path.unlink()
    (data_dir / "queue.db").mkdir()

    with pytest.raises(QueueUnavailable, match="OperationalError"):
        queue.check_writable()


# --- the task body: flag, lock, outcome ---------------------------------------------------------


def test_reconcile_clears_the_pending_flag_before_fetching(queue, monkeypatch):
    answers_during_reconcile = []

    def reconcile(platform, ticket_id):
        # Events arriving while the ticket is being read: exactly one more reconcile.
        answers_during_reconcile.append(queue.enqueue_reconcile(platform, ticket_id))
        answers_during_reconcile.append(queue.enqueue_reconcile(platform, ticket_id))
        return "applied"

    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(reconcile))
    queue.enqueue_reconcile("jira", "1")
    [task] = queue.huey.pending()

    assert queue.run_reconcile(*task.args, **task.kwargs) == "applied"
    assert answers_during_reconcile == ["queued", "duplicate"]


def test_outcomes_are_counted(queue, reconciler, metric):
    reconciler.outcome = "applied"
    before = metric("connector_reconciles_total", platform="jira", outcome="applied")

    queue.run_reconcile("jira", "1")

    assert metric("connector_reconciles_total", platform="jira", outcome="applied") == before + 1


def test_a_locked_ticket_is_deferred_not_failed_and_other_tickets_run(queue, reconciler):
    release = reconciler.holding("A")
    first = threading.Thread(target=queue.run_reconcile, args=("jira", "A"))
    first.start()
    assert reconciler.entered["A"].wait(WAIT)
    queue.enqueue_reconcile("jira", "A")
    [waiting] = queue.huey.pending()
    queue.huey.dequeue()

    try:
        before = datetime.now(timezone.utc)
        assert queue.run_reconcile(*waiting.args, **waiting.kwargs) == "deferred"
        assert queue.run_reconcile("jira", "B") == "noop"
        assert queue.huey.is_locked("reconcile:jira:A")
    finally:
        release.set()
        first.join(WAIT)

    assert reconciler.tickets() == ["A", "B"]
    [deferred] = tasks_for_later(queue)
    assert deferred.args == ("jira", "A")
    assert deferred.eta >= utc_naive(before + timedelta(seconds=2))
    # The deferred task still stands for the ticket: new events collapse into it.
    assert queue.enqueue_reconcile("jira", "A") == "duplicate"
    assert not queue.huey.is_locked("reconcile:jira:A")


def test_a_lock_taken_outside_the_queue_is_respected(queue, reconciler):
    with queue.huey.lock_task("reconcile:jira:1"):
        assert queue.run_reconcile("jira", "1") == "deferred"
    assert reconciler.calls == []


def test_a_stale_lock_from_a_dead_worker_is_taken_over(settings, reconciler):
    queue = ReconcileQueue.from_settings(settings, lock_stale_after=timedelta(minutes=15))
    queue.huey.put(f"{queue.huey.name}.lock.reconcile:jira:1", time.time() - 3600)

    assert queue.run_reconcile("jira", "1") == "noop"
    assert not queue.huey.is_locked("reconcile:jira:1")


# --- retries --------------------------------------------------------------------------------------


def test_rate_limited_reconcile_is_rescheduled_no_sooner_than_retry_after(queue, monkeypatch, metric):
    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(raising(RateLimited("429", retry_after=120, platform="jira"))))
    before_count = metric("connector_reconciles_total", platform="jira", outcome="retry")
    before = datetime.now(timezone.utc)

    assert queue.run_reconcile("jira", "1") == "retry"

    [retry] = tasks_for_later(queue)
    assert retry.args == ("jira", "1")
    assert retry.kwargs["attempt"] == 1
    assert retry.eta >= utc_naive(before + timedelta(seconds=120))
    assert metric("connector_reconciles_total", platform="jira", outcome="retry") == before_count + 1
    # The scheduled retry stands for the ticket, so events meanwhile do not add a second task.
    assert queue.enqueue_reconcile("jira", "1") == "duplicate"


@pytest.mark.parametrize("error", [HostError("502", status=502), Timeout("read timeout")])
def test_host_errors_and_timeouts_back_off_exponentially(queue, monkeypatch, error):
    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(raising(error)))
    before = datetime.now(timezone.utc)

    assert queue.run_reconcile("zendesk", "9", attempt=2) == "retry"

    [retry] = tasks_for_later(queue)
    assert retry.kwargs["attempt"] == 3
    expected = queue.retry_policy.first_delay * 4
    assert utc_naive(before + expected) <= retry.eta <= utc_naive(datetime.now(timezone.utc) + expected)


def test_retries_are_bounded_and_giving_up_is_logged(queue, monkeypatch, caplog, metric):
    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(raising(RateLimited("429", retry_after=1))))
    before = metric("connector_reconciles_total", platform="jira", outcome="error")
    last = queue.retry_policy.max_attempts - 1

    with caplog.at_level(logging.ERROR, logger="connector.queue"):
        assert queue.run_reconcile("jira", "1", attempt=last) == "gave_up"

    assert tasks_for_later(queue) == []
    [record] = [r for r in caplog.records if r.getMessage() == "reconcile.gave_up"]
    assert (record.platform, record.ticket_id, record.error) == ("jira", "1", "RateLimited")
    assert metric("connector_reconciles_total", platform="jira", outcome="error") == before + 1


def test_a_non_transient_error_is_not_retried(queue, monkeypatch, caplog):
    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(raising(KeyError("bug"))))

    with caplog.at_level(logging.ERROR, logger="connector.queue"):
        assert queue.run_reconcile("jira", "1") == "error"

    assert tasks_for_later(queue) == []
    assert any(r.getMessage() == "reconcile.failed" for r in caplog.records)
    assert not queue.huey.is_locked("reconcile:jira:1")


# --- with real consumer threads ---------------------------------------------------------------------


def test_a_burst_waiting_in_the_queue_costs_one_reconcile(queue, reconciler):
    answers = [queue.enqueue_reconcile("jira", "10000", event_id=f"d-{n}") for n in range(10)]

    with WorkerThreads(queue, workers=2):
        assert wait_until(lambda: reconciler.calls)
        time.sleep(0.3)  # room for a wrongly queued second task to run

    assert answers == ["queued"] + ["duplicate"] * 9
    assert reconciler.tickets() == ["10000"]


def test_events_during_a_reconcile_queue_exactly_one_more(queue, reconciler):
    release = reconciler.holding("10000")
    with WorkerThreads(queue, workers=2):
        queue.enqueue_reconcile("jira", "10000")
        assert reconciler.entered["10000"].wait(WAIT)

        answers = [queue.enqueue_reconcile("jira", "10000") for _ in range(5)]
        del reconciler.hold["10000"]  # the follow-up reconcile runs through
        release.set()

        assert wait_until(lambda: len(reconciler.calls) == 2)
        time.sleep(0.3)

    assert answers == ["queued"] + ["duplicate"] * 4
    assert reconciler.tickets() == ["10000", "10000"]


def test_two_workers_never_reconcile_one_ticket_at_once(queue, monkeypatch):
    running, overlaps, calls = set(), [], []
    guard = threading.Lock()

    def reconcile(platform, ticket_id):
        with guard:
            if ticket_id in running:
                overlaps.append(ticket_id)
            running.add(ticket_id)
            calls.append(ticket_id)
        time.sleep(0.2)
        with guard:
            running.discard(ticket_id)
        return "noop"

    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(reconcile))
    # Two tasks for one ticket despite collapsing: a timer already due and an event.
    queue.schedule_reconcile("jira", "1", datetime.now(timezone.utc) - timedelta(seconds=1))
    queue.enqueue_reconcile("jira", "1")

    with WorkerThreads(queue, workers=2, poll_interval=0.01):
        assert wait_until(lambda: len(calls) == 2)

    assert overlaps == []


def test_timer_runs_the_reconcile_at_its_time_once(queue, reconciler):
    at = datetime.now(timezone.utc) + timedelta(seconds=1)

    assert queue.schedule_reconcile("jira", "1", at) == "scheduled"
    assert queue.schedule_reconcile("jira", "1", at.astimezone(timezone(timedelta(hours=8)))) == "duplicate"
    assert [task.args for task in tasks_for_later(queue)] == [("jira", "1")]
    # A timer does not stand for events: an event still queues its own reconcile.
    assert queue.enqueue_reconcile("jira", "2") == "queued"

    with WorkerThreads(queue, workers=1):
        assert wait_until(lambda: "1" in reconciler.tickets())

    [(_, _, ran_at)] = [call for call in reconciler.calls if call[1] == "1"]
    assert ran_at >= at.timestamp()
    # Once fired, the same instant may be scheduled again.
    assert queue.schedule_reconcile("jira", "1", at) == "scheduled"


def test_timer_needs_an_aware_datetime(queue):
    with pytest.raises(ValueError, match="aware"):
        queue.schedule_reconcile("jira", "1", datetime(2026, 11, 20, 10, 0))


# --- processes ---------------------------------------------------------------------------------------


def record_to(path: Path):
    def reconcile(platform, ticket_id):
        with path.open("a") as out:
            out.write(f"{platform}:{ticket_id}\n")
        return "applied"

    return reconcile


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_worker_process_drains_the_queue_and_stops_cleanly_on_sigterm(settings, queue, tmp_path, monkeypatch):
    done = tmp_path / "reconciled.txt"
    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(record_to(done)))
    queue.enqueue_reconcile("zendesk", "7")
    process = multiprocessing.get_context("fork").Process(target=run_worker, args=(settings, 1))
    process.start()
    try:
        assert wait_until(lambda: done.exists() and done.read_text() == "zendesk:7\n")
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.join(WAIT)

    assert process.exitcode == 0
    assert queue.pending_count() == 0


def test_serve_receives_a_webhook_and_its_worker_reconciles_it(settings, tmp_path, monkeypatch):
    done = tmp_path / "reconciled.txt"
    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(record_to(done)))
    port = free_port()
    process = multiprocessing.get_context("fork").Process(target=serve, args=(settings, "127.0.0.1", port, True, 1))
    process.start()
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _get_status(base + "/healthz") == 200)
        body = json.dumps({"webhookEvent": "jira:issue_created", "issue": {"id": "10400"}}).encode()
        request = urllib.request.Request(
            base + "/webhooks/jira",
            data=body,
            headers={"X-Hub-Signature": jira_signature(settings.jira_webhook_secrets[0], body), "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            assert response.status == 202
        assert wait_until(lambda: done.exists() and done.read_text() == "jira:10400\n")
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.join(3 * WAIT)

    assert process.exitcode == 0


def _get_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status
    except OSError:
        return None
