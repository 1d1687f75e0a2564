"""The deadline index and pump on the real SQLite queue file, without a platform behind them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import connector.queue
from connector.queue import ReconcileQueue
from connector.sync.deadlines import DeadlinePump, DueTimer

NOW = datetime(2026, 11, 20, 7, 0, tzinfo=timezone.utc)


@pytest.fixture
def index(queue):
    return queue.deadlines


def test_record_replaces_the_tickets_one_timer_and_none_disarms_it(index):
    index.record("jira", "1", NOW + timedelta(hours=1), NOW)
    index.record("jira", "1", NOW + timedelta(minutes=5), None)
    assert index.armed() == [DueTimer("jira", "1", NOW + timedelta(minutes=5))]
    assert index.entry("jira", "1").seen == NOW  # a None stamp keeps the known one
    index.record("jira", "1", None, NOW + timedelta(minutes=1))
    assert index.armed() == []
    assert index.entry("jira", "1").seen == NOW + timedelta(minutes=1)


def test_claim_returns_due_timers_once_across_processes(settings, index):
    other = ReconcileQueue.from_settings(settings).deadlines  # another process's view of the file
    index.record("jira", "1", NOW - timedelta(seconds=5), None)
    index.record("zendesk", "7", NOW, None)
    index.record("jira", "2", NOW + timedelta(seconds=1), None)
    assert index.claim_due(NOW) == [DueTimer("jira", "1", NOW - timedelta(seconds=5)),
                                    DueTimer("zendesk", "7", NOW)]
    assert other.claim_due(NOW) == []
    assert other.claim_due(NOW + timedelta(seconds=1)) == [DueTimer("jira", "2", NOW + timedelta(seconds=1))]


def test_rearm_does_not_override_a_newer_timer(index):
    index.record("jira", "1", NOW, None)
    [timer] = index.claim_due(NOW)
    index.record("jira", "1", NOW + timedelta(hours=2), None)  # a reconcile ran meanwhile
    index.rearm(timer)
    assert index.armed() == [DueTimer("jira", "1", NOW + timedelta(hours=2))]


def test_seen_stamps_by_platform(index):
    index.record("jira", "1", None, NOW)
    index.record("zendesk", "1", None, NOW + timedelta(minutes=1))
    assert index.seen_stamps("zendesk", ["1", "2"]) == {"1": NOW + timedelta(minutes=1)}


def test_pump_queues_each_due_ticket_through_collapsing(queue, index):
    index.record("jira", "1", NOW - timedelta(minutes=1), None)
    index.record("jira", "2", NOW + timedelta(minutes=1), None)
    queue.enqueue_reconcile("jira", "1")  # a webhook already queued this ticket
    pump = DeadlinePump(queue, lambda: NOW)
    assert pump.pump() == 1
    assert queue.pending_count() == 1  # collapsed into the waiting reconcile
    assert pump.pump() == 0
    assert index.armed() == [DueTimer("jira", "2", NOW + timedelta(minutes=1))]


def test_pump_puts_timers_back_when_the_queue_cannot_store(queue, index, monkeypatch):
    index.record("jira", "1", NOW, None)

    def storage_broken(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(queue.admission, "admit", storage_broken)
        assert DeadlinePump(queue, lambda: NOW).pump() == 0
    assert index.armed() == [DueTimer("jira", "1", NOW)]
    assert DeadlinePump(queue, lambda: NOW).pump() == 1


def test_timer_fired_reconcile_records_the_next_deadline(queue, settings, monkeypatch):
    """The worker's task body → reconcile → the index, with the reconcile stubbed at the
    queue's documented seam (no platform here)."""
    from connector.config import load_config
    from connector.reconcile import Runtime, set_runtime

    recorded = []
    runtime = Runtime(settings=settings, config=load_config(settings.config_path), clock=lambda: NOW,
                      schedule=queue.deadlines.record)
    set_runtime(runtime)
    try:
        def reconcile(platform, ticket_id):
            recorded.append(ticket_id)
            runtime.schedule(platform, ticket_id, NOW + timedelta(hours=1), NOW)
            return "noop"

        monkeypatch.setattr(connector.queue, "reconcile_ticket", reconcile)
        queue.deadlines.record("jira", "5", NOW, None)
        DeadlinePump(queue, lambda: NOW).pump()
        task = queue.huey.dequeue()
        queue.huey.execute(task)
    finally:
        set_runtime(None)
    assert recorded == ["5"]
    assert queue.deadlines.armed() == [DueTimer("jira", "5", NOW + timedelta(hours=1))]
