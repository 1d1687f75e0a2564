"""Redis mode across processes: dedupe, per-ticket lock, deadline timers and the sweep lease.

Every test runs a redis-server of its own and several OS processes (forked), each with its
own `ReconcileQueue` built from the same `CONNECTOR_QUEUE_URL`, as receivers and workers on
several machines would. What is checked is what only shared storage can guarantee: one
"queued" per delivery, no two reconciles of one ticket at once, each SLA timer fired once,
one sweep per platform at a time – and a dead holder's lock or lease taken over at once.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from datetime import datetime, timedelta, timezone

import pytest

from connector.queue.locks import Holder
from connector.queue.reconcile_queue import ReconcileQueue
from connector.queue.retry import RequeuePolicy
from connector.queue.worker import run_worker
from connector.settings import Settings
from connector.sync.pump import DeadlinePump
from connector.sync.state import SweepBusy, SyncState
from tests.processes import (
    RedisServer,
    intake_config,
    needs_redis,
    wait_until,
)

pytestmark = needs_redis

FORK = multiprocessing.get_context("fork")


@pytest.fixture(scope="module")
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(redis_server, tmp_path) -> Settings:
    import redis

    redis.Redis.from_url(redis_server.url).flushall()
    return Settings(config_path=intake_config(tmp_path / "rules.yaml"), data_dir=tmp_path / "data",
                    queue_url=redis_server.url)


def in_processes(target, count: int, *args) -> list[object]:
    """Run target(index, *args) in `count` forked processes at once; return their results."""
    results = FORK.Queue()
    start = FORK.Event()

    def main(index: int) -> None:
        start.wait(10)
        results.put((index, target(index, *args)))

    processes = [FORK.Process(target=main, args=(i,)) for i in range(count)]
    for process in processes:
        process.start()
    start.set()
    collected = dict(results.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    return [collected[i] for i in range(count)]


def test_deliveries_are_deduplicated_across_receiver_processes(settings):
    def receive(index: int, settings: Settings) -> list[str]:
        queue = ReconcileQueue.from_settings(settings)
        # Every process receives every delivery: a retry reaching another receiver.
        return [queue.enqueue_reconcile("jira", str(10000 + n), event_id=f"delivery-{n}") for n in range(100)]

    outcomes = [o for per_process in in_processes(receive, 3, settings) for o in per_process]

    assert outcomes.count("queued") == 100 and outcomes.count("duplicate") == 200
    assert ReconcileQueue.from_settings(settings).pending_count() == 100


def test_deadline_timers_fire_once_across_pump_processes(settings):
    queue = ReconcileQueue.from_settings(settings)
    now = datetime.now(timezone.utc)
    for n in range(300):
        queue.deadlines.record("jira", str(n), now - timedelta(seconds=n), None)

    def pump(index: int, settings: Settings) -> int:
        return DeadlinePump(ReconcileQueue.from_settings(settings), lambda: now).pump()

    fired = in_processes(pump, 3, settings)

    assert sum(fired) == 300
    assert sorted(int(task.args[1]) for task in queue.huey.pending()) == list(range(300))
    assert queue.deadlines.armed() == []


def test_one_reconcile_per_ticket_at_a_time_across_worker_processes(settings, tmp_path, monkeypatch):
    journal = tmp_path / "journal.txt"

    def reconcile(platform: str, ticket_id: str) -> str:
        started = time.time()
        time.sleep(0.03)
        with journal.open("a") as out:
            out.write(f"{ticket_id} {started} {time.time()} {os.getpid()}\n")
        return "noop"

    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(reconcile))
    queue = ReconcileQueue.from_settings(settings)
    # Ten tasks per ticket despite collapsing, as timers (each its own instant) produce.
    now = datetime.now(timezone.utc)
    for n in range(10):
        for ticket in ("A", "B", "C", "D"):
            queue.schedule_reconcile("jira", ticket, now - timedelta(seconds=n + 1))
    def work() -> None:
        # A short retry delay for a locked ticket keeps the test quick; the lock is the same.
        run_worker(settings, 2, sync=False,
                   queue=ReconcileQueue.from_settings(settings, locked_retry_delay=timedelta(seconds=0.1)))

    workers = [FORK.Process(target=work) for _ in range(3)]
    for process in workers:
        process.start()
    try:
        assert wait_until(lambda: journal.exists() and len(journal.read_text().splitlines()) == 40, timeout=60)
    finally:
        for process in workers:
            os.kill(process.pid, signal.SIGTERM)
        for process in workers:
            process.join(30)

    runs = [line.split() for line in journal.read_text().splitlines()]
    assert len({pid for *_, pid in runs}) >= 2  # the tickets really were shared out
    for ticket in "ABCD":
        spans = sorted((float(start), float(end)) for t, start, end, _ in runs if t == ticket)
        assert len(spans) == 10
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:])), f"{ticket} ran twice at once"


def _hold_lease(index: int, settings: Settings) -> None:
    SyncState(ReconcileQueue.from_settings(settings).huey).acquire("jira")
    time.sleep(60)


def test_one_sweep_at_a_time_and_a_killed_sweepers_lease_is_taken_over(settings):
    holder = FORK.Process(target=_hold_lease, args=(0, settings))
    holder.start()
    state = SyncState(ReconcileQueue.from_settings(settings).huey)
    try:
        assert wait_until(lambda: state._huey.get("sync:lease:jira", peek=True) is not None, timeout=10)
        with pytest.raises(SweepBusy):
            state.acquire("jira")
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)

    # Dead holder on this host: no need to wait 30 minutes for the lease to expire.
    lease = state.acquire("jira")
    with pytest.raises(SweepBusy):
        SyncState(ReconcileQueue.from_settings(settings).huey).acquire("jira")
    state.release(lease)


def test_lock_of_a_worker_on_another_machine_waits_for_its_heartbeat_to_stop(settings, monkeypatch):
    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(lambda platform, ticket_id: "noop"))
    queue = ReconcileQueue.from_settings(settings)
    elsewhere = Holder(owner="worker-on-host-b", scope="another-host/pid:[1]", pid=os.getpid(), beats=True)
    lock_key = f"{queue.huey.name}.lock.reconcile:jira:7"
    queue.huey.put(lock_key, (time.time(), elsewhere))

    queue.huey.put("worker:heartbeat:worker-on-host-b", time.time())
    assert queue.run_reconcile("jira", "7") == "deferred"  # alive: its pid means nothing here

    queue.huey.put("worker:heartbeat:worker-on-host-b", time.time() - 120)
    assert queue.run_reconcile("jira", "7") == "noop"  # silent for 2 minutes: dead
    assert queue.huey.get(lock_key, peek=True) is None


def test_takeover_is_compare_and_swap_so_racing_takers_do_not_both_win(settings):
    queue = ReconcileQueue.from_settings(settings)
    dead = Holder(owner="gone", scope=None, pid=1, beats=True)  # no heartbeat: dead everywhere
    lock_key = f"{queue.huey.name}.lock.reconcile:jira:9"
    queue.huey.put(lock_key, (time.time(), dead))

    def take(index: int, settings: Settings) -> bool:
        taken = ReconcileQueue.from_settings(settings)._locks.take(lock_key)
        time.sleep(1)  # stay alive: a winner that exited would rightly be taken over as dead
        return taken

    assert sorted(in_processes(take, 4, settings)) == [False, False, False, True]


# --- accepting an event: claim, flag and task in one Lua script (connector.queue.admission) --------------


def test_collapsing_stale_flags_and_operator_flags_work_as_on_sqlite(settings):
    queue = ReconcileQueue.from_settings(settings, pending_stale_after=timedelta(minutes=10))
    assert queue.enqueue_reconcile("jira", "1", event_id="d-1") == "queued"
    assert queue.enqueue_reconcile("jira", "1", event_id="d-1") == "duplicate"  # the same delivery
    assert queue.enqueue_reconcile("jira", "1", event_id="d-2") == "duplicate"  # collapsed into the waiting task

    queue.huey.put("pending:reconcile:jira:2", time.time() - 3600)  # its task was lost long ago
    assert queue.enqueue_reconcile("jira", "2", event_id="d-3") == "queued"
    queue.huey.put("pending:reconcile:jira:3", "held by an operator")  # no time: respected
    assert queue.enqueue_reconcile("jira", "3", event_id="d-4") == "duplicate"

    assert [task.args for task in queue.huey.pending()] == [("jira", "1"), ("jira", "2")]


def test_a_stale_flag_is_taken_over_by_exactly_one_of_racing_receivers(settings):
    ReconcileQueue.from_settings(settings).huey.put("pending:reconcile:jira:7", time.time() - 3600)

    def receive(index: int, settings: Settings) -> list[str]:
        queue = ReconcileQueue.from_settings(settings)
        return [queue.enqueue_reconcile("jira", "7", event_id=f"d-{index}-{n}") for n in range(20)]

    outcomes = [o for per_process in in_processes(receive, 4, settings) for o in per_process]

    assert outcomes.count("queued") == 1
    assert [task.args for task in ReconcileQueue.from_settings(settings).huey.pending()] == [("jira", "7")]


def test_a_retry_and_its_flag_are_stored_together_and_a_worker_runs_it(settings, monkeypatch):
    from connector.platforms.base import RateLimited
    from connector.queue.worker import WorkerThreads

    attempts = []

    def reconcile(platform: str, ticket_id: str) -> str:
        attempts.append(ticket_id)
        if len(attempts) == 1:
            raise RateLimited("429", retry_after=1, platform="jira")
        return "applied"

    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(reconcile))
    queue = ReconcileQueue.from_settings(settings, retry_policy=RequeuePolicy(first_delay=timedelta(seconds=1)))
    assert queue.enqueue_reconcile("jira", "5", event_id="d-5") == "queued"

    with WorkerThreads(queue, workers=1):
        assert wait_until(lambda: len(attempts) == 2, timeout=15)
        time.sleep(0.3)

    assert attempts == ["5", "5"]
    assert queue.huey.get("pending:reconcile:jira:5", peek=True) is None
    assert queue.pending_count() == 0


def test_an_accepted_event_is_one_script_call(settings, monkeypatch):
    queue = ReconcileQueue.from_settings(settings)
    queue.enqueue_reconcile("jira", "0", event_id="warm-up")  # loads the script
    client = queue.huey.storage.conn
    sent: list[str] = []
    execute = client.execute_command

    def counting(*args, **options):
        sent.append(str(args[0]).upper())
        return execute(*args, **options)

    monkeypatch.setattr(client, "execute_command", counting)

    def commands_for(ticket_id: str, event_id: str) -> list[str]:
        sent.clear()
        queue.enqueue_reconcile("jira", ticket_id, event_id=event_id)
        return list(sent)

    # A ticket without a waiting task: one round trip, everything inside the script.
    assert commands_for("1", "d-1") == ["EVALSHA"]
    # A ticket with a waiting task: the script answers with the flag, a second run collapses.
    assert commands_for("1", "d-2") == ["EVALSHA", "EVALSHA"]
    # A redelivery: one round trip, nothing written.
    assert commands_for("1", "d-2") == ["EVALSHA"]
