"""The deadline index and pump on the real SQLite queue file, without a platform behind them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from connector.queue.deadlines import DueTimer
from connector.queue.reconcile_queue import ReconcileQueue
from connector.sync.pump import DeadlinePump

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
    seen = {ticket_id: entry.seen for ticket_id, entry in index.entries("zendesk", ["1", "2"]).items()}
    assert seen == {"1": NOW + timedelta(minutes=1)}


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

        monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(reconcile))
        queue.deadlines.record("jira", "5", NOW, None)
        DeadlinePump(queue, lambda: NOW).pump()
        task = queue.huey.dequeue()
        queue.huey.execute(task)
    finally:
        set_runtime(None)
    assert recorded == ["5"]
    assert queue.deadlines.armed() == [DueTimer("jira", "5", NOW + timedelta(hours=1))]


def test_settlement_holds_until_the_next_deadline_under_the_same_config(index):
    index.record("jira", "1", NOW + timedelta(hours=1), NOW, "cfg-a")
    entry = index.entry("jira", "1")
    assert entry.next == NOW + timedelta(hours=1) and entry.config == "cfg-a"
    assert entry.settled(NOW, NOW + timedelta(minutes=59), "cfg-a")
    assert not entry.settled(NOW, NOW + timedelta(hours=1), "cfg-a")  # the deadline is reached
    assert not entry.settled(NOW + timedelta(seconds=1), NOW, "cfg-a")  # the ticket changed
    assert not entry.settled(NOW, NOW, "cfg-b")  # another config
    # The pump claiming the timer keeps what the settlement knows: past `next` it is not settled.
    index.claim_due(NOW + timedelta(hours=1))
    entry = index.entry("jira", "1")
    assert entry.due is None and entry.next == NOW + timedelta(hours=1)
    assert not entry.settled(NOW, NOW + timedelta(hours=1), "cfg-a")


def test_a_record_without_stamp_or_config_unsettles(index):
    index.record("jira", "1", None, NOW, "cfg-a")
    assert index.entry("jira", "1").settled(NOW, NOW, "cfg-a")  # no deadline: settled until it changes
    index.record("jira", "1", None, NOW, None)  # a write whose new stamp is unknown
    assert not index.entry("jira", "1").settled(NOW, NOW, "cfg-a")
    index.record("jira", "1", None, NOW, "cfg-a")
    index.record("jira", "1", None, None, "cfg-a")  # not found: no stamp
    assert not index.entry("jira", "1").settled(NOW, NOW, "cfg-a")


def test_record_many_and_entries_for_a_page(index):
    rows = [("jira", str(n), NOW + timedelta(minutes=n), NOW, "cfg") for n in range(1, 701)]
    index.record_many(rows)
    entries = index.entries("jira", [str(n) for n in range(1, 702)])  # past SQLite's 500-per-query chunk
    assert len(entries) == 700 and "701" not in entries
    assert entries["650"].due == NOW + timedelta(minutes=650) and entries["650"].settled(NOW, NOW, "cfg")
    assert index.entries("zendesk", ["1"]) == {}


def test_old_files_gain_the_settlement_columns(settings):
    from connector.queue.deadlines import SqliteDeadlineIndex

    queue = ReconcileQueue.from_settings(settings)
    storage = queue.huey.storage
    storage.sql("create table connector_deadline (queue text not null, platform text not null, "
                "ticket_id text not null, due real, fired real, seen text, primary key (queue, platform, ticket_id))",
                commit=True)
    storage.sql("insert into connector_deadline (queue, platform, ticket_id, due, seen) values (?, 'jira', '1', null, ?)",
                (storage.name, NOW.isoformat()), commit=True)
    index = SqliteDeadlineIndex(storage)
    entry = index.entry("jira", "1")
    assert entry.seen == NOW and entry.config is None  # known, not settled
    index.record("jira", "1", None, NOW, "cfg")
    assert index.entry("jira", "1").settled(NOW, NOW, "cfg")


def test_redis_index_keeps_the_settlement_and_writes_a_page_in_one_pipeline(redis_server, tmp_path):
    from connector.settings import Settings

    queue = ReconcileQueue.from_settings(Settings(data_dir=tmp_path / "data", queue_url=redis_server.url))
    index = queue.deadlines
    index.clear()
    index.record_many([("zendesk", "1", NOW + timedelta(hours=1), NOW, "cfg"),
                       ("zendesk", "2", None, NOW, None)])
    entries = index.entries("zendesk", ["1", "2", "3"])
    assert set(entries) == {"1", "2"}
    assert entries["1"].settled(NOW, NOW, "cfg") and not entries["2"].settled(NOW, NOW, "cfg")
    assert index.claim_due(NOW + timedelta(hours=1)) == [DueTimer("zendesk", "1", NOW + timedelta(hours=1))]
    entry = index.entry("zendesk", "1")
    assert entry.due is None and entry.next == NOW + timedelta(hours=1)
    assert not entry.settled(NOW, NOW + timedelta(hours=1), "cfg")
    index.record("zendesk", "1", None, None)  # not found: unsettled
    assert not index.entry("zendesk", "1").settled(NOW, NOW, "cfg")
