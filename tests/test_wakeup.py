"""How an idle worker learns of a new task: a FIFO wake-up on SQLite, a blocking pop on Redis.

No timing assertions (CI is noisy): each test makes the old way impossible within its bound
– the fallback poll or huey's poll delay is set to 60 s – and checks that the task still
runs well before it, or checks the mechanism itself (the wake-up bytes delivered, the
storage's blocking flag, the FIFO files). The bench for the figures is bench/latency.py.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import stat
import threading
import time
from pathlib import Path

import pytest

from connector.queue.reconcile_queue import ReconcileQueue
from connector.queue.storage import REDIS_READ_TIMEOUT
from connector.queue.wakeup import (
    FIFO_SUFFIX,
    WakeupListener,
    WakeupSqliteStorage,
    notify_workers,
    wake_workers,
    wakeup_dir,
)
from connector.queue.worker import WorkerThreads, _create_consumer, run_worker
from connector.settings import Settings, SettingsError
from tests.processes import intake_config, needs_redis, wait_until

LONG_POLL = 60.0  # seconds: the fallback poll in these tests; nothing below may rely on it
BOUND = 10.0  # generous: the old consumer's max_delay; a wake-up is milliseconds


class Recorder:
    def __init__(self):
        self.tickets: list[str] = []
        self.ran = threading.Event()

    def __call__(self, platform: str, ticket_id: str) -> str:
        self.tickets.append(ticket_id)
        self.ran.set()
        return "noop"


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(recorder))
    return recorder


def fifos(queue: ReconcileQueue) -> list[Path]:
    directory = queue.huey.storage.wakeup_dir
    return sorted(p for p in directory.iterdir() if p.name.endswith(FIFO_SUFFIX)) if directory.exists() else []


# --- SQLite: the wake-up ---------------------------------------------------------------------------


def test_sqlite_queue_stores_tasks_through_the_waking_storage(queue):
    assert isinstance(queue.huey.storage, WakeupSqliteStorage)
    assert queue.huey.storage.wakeup_dir == wakeup_dir(queue.huey.storage.filename)
    assert queue.huey.storage.blocking is False  # no listener: a producer never waits


def test_idle_sqlite_worker_is_woken_by_the_enqueue_not_by_a_poll(queue, recorder):
    # poll_interval=60: with huey's polling (or the fallback poll) the task would wait a minute.
    with WorkerThreads(queue, workers=2, poll_interval=LONG_POLL) as workers:
        listener = workers.wakeup
        assert listener is not None and queue.huey.storage.blocking
        [fifo] = fifos(queue)
        assert stat.S_ISFIFO(fifo.stat().st_mode)
        time.sleep(0.5)  # both threads have looked at the empty queue and wait
        before = listener.wakeups

        started = time.monotonic()
        assert queue.enqueue_reconcile("jira", "10001", event_id="d-1") == "queued"
        assert recorder.ran.wait(BOUND)

        assert time.monotonic() - started < BOUND < LONG_POLL
        assert listener.wakeups > before  # the enqueue wrote into the worker's FIFO
        assert recorder.tickets == ["10001"]

        # And again after the threads went back to waiting.
        recorder.ran.clear()
        time.sleep(0.5)
        queue.enqueue_reconcile("jira", "10002")
        assert recorder.ran.wait(BOUND)
        assert recorder.tickets == ["10001", "10002"]


def test_stopping_releases_waiting_threads_and_removes_the_fifo(queue, recorder):
    workers = WorkerThreads(queue, workers=2, poll_interval=LONG_POLL).start()
    time.sleep(0.3)
    assert len(fifos(queue)) == 1

    started = time.monotonic()
    workers.stop()

    assert time.monotonic() - started < BOUND < LONG_POLL  # not a fallback poll's worth
    assert fifos(queue) == []
    assert queue.huey.storage.blocking is False
    assert not any(thread.is_alive() for _, thread in workers._consumer.worker_threads)
    assert notify_workers(queue.huey.storage.wakeup_dir) == 0


def test_a_dead_workers_fifo_is_removed_by_the_next_producer(queue):
    directory = queue.huey.storage.wakeup_dir
    directory.mkdir(parents=True, exist_ok=True)
    dead = directory / f"999999-deadbeef{FIFO_SUFFIX}"
    os.mkfifo(dead, 0o600)  # what a kill -9 leaves behind: a FIFO nobody reads
    live = WakeupListener(directory).start()
    try:
        assert wake_workers(queue.huey) == 1  # only the live one
        assert not dead.exists()
        assert wait_until(lambda: live.wakeups >= 1, timeout=BOUND)
    finally:
        live.stop()


def test_a_wakeup_that_comes_before_the_wait_is_not_lost(tmp_path):
    listener = WakeupListener(tmp_path / "w").start()
    try:
        seen = listener.generation
        notify_workers(listener.directory)  # between a thread's look at the queue and its wait
        assert listener.wait(seen, timeout=BOUND)
        assert not listener.wait(listener.generation, timeout=0.05)  # nothing new: times out
    finally:
        listener.stop()


def test_worker_process_listens_and_a_producer_in_another_process_wakes_it(settings, queue, tmp_path, monkeypatch):
    done = tmp_path / "reconciled.txt"

    def record(platform, ticket_id):
        with done.open("a") as out:
            out.write(f"{platform}:{ticket_id}\n")
        return "applied"

    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(record))
    monkeypatch.delenv("CONNECTOR_WORKER_WAIT", raising=False)
    process = multiprocessing.get_context("fork").Process(target=run_worker, args=(settings, 1),
                                                          kwargs={"sync": False})
    process.start()
    try:
        assert wait_until(lambda: len(fifos(queue)) == 1, timeout=30)
        [fifo] = fifos(queue)
        assert fifo.name.startswith(f"{process.pid}-")

        # The receiver's side: a queue of its own (as in another process) on the same file.
        producer = ReconcileQueue.from_settings(settings)
        producer.enqueue_reconcile("jira", "10003")
        assert wake_workers(producer.huey) == 1  # the worker's FIFO has a reader
        assert wait_until(lambda: done.exists() and "jira:10003" in done.read_text(), timeout=BOUND)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.join(30)

    assert process.exitcode == 0
    assert fifos(queue) == []  # removed on the way out


# --- the modes -------------------------------------------------------------------------------------


def test_wait_mode_comes_from_the_environment_and_rejects_typos():
    assert Settings.from_env({}).worker_wait == "wakeup"
    assert Settings.from_env({"CONNECTOR_WORKER_WAIT": "poll"}).worker_wait == "poll"
    with pytest.raises(SettingsError, match="CONNECTOR_WORKER_WAIT='wake'.*wakeup, poll, huey"):
        Settings.from_env({"CONNECTOR_WORKER_WAIT": "wake"})


def test_huey_mode_is_the_stock_consumer_the_bench_compares_with(queue):
    consumer = _create_consumer(queue, "huey", workers=1, periodic=False)
    assert consumer.wakeup is None
    assert (consumer.default_delay, consumer.backoff, consumer.max_delay) == (0.1, 1.15, 10.0)


def test_poll_mode_polls_at_a_fixed_interval_without_backoff(queue):
    consumer = _create_consumer(queue, "poll", workers=1, periodic=False)
    assert consumer.wakeup is None
    assert consumer.backoff == 1.0 and consumer.default_delay == consumer.max_delay == 0.05


def test_wakeup_mode_caps_the_poll_after_a_storage_error_at_a_second(queue):
    consumer = _create_consumer(queue, "wakeup", workers=1, periodic=False)
    assert isinstance(consumer.wakeup, WakeupListener)
    assert consumer.max_delay == 1.0  # huey's default would back off to 10 s after an outage


# --- Redis: the blocking pop ------------------------------------------------------------------------


@needs_redis
def test_redis_worker_waits_in_a_blocking_pop(redis_server, tmp_path, recorder):
    import redis

    redis.Redis.from_url(redis_server.url).flushall()
    settings = Settings(config_path=intake_config(tmp_path / "rules.yaml"), data_dir=tmp_path / "data",
                        queue_url=redis_server.url)
    queue = ReconcileQueue.from_settings(settings)
    storage = queue.huey.storage
    assert storage.blocking is True and storage.read_timeout == REDIS_READ_TIMEOUT

    # poll_interval=60: if the worker polled, the task would wait a minute.
    with WorkerThreads(queue, workers=2, poll_interval=LONG_POLL) as workers:
        assert workers.wakeup is None  # Redis needs no FIFO
        time.sleep(REDIS_READ_TIMEOUT + 0.5)  # idle through a whole blocking read
        started = time.monotonic()
        queue.enqueue_reconcile("jira", "20001", event_id="r-1")
        assert recorder.ran.wait(BOUND)
        assert time.monotonic() - started < BOUND < LONG_POLL
    assert recorder.tickets == ["20001"]


def test_without_named_pipes_the_worker_polls_and_says_so(queue, recorder, caplog):
    # A data dir where the FIFO cannot be made (here: a file in the way; in life a file
    # system without named pipes): the worker falls back to polling, bounded by max_delay.
    queue.huey.storage.wakeup_dir.write_text("in the way")
    with caplog.at_level("WARNING", logger="connector.queue"):
        with WorkerThreads(queue, workers=1, poll_interval=0.05) as workers:
            assert workers.wakeup is None and queue.huey.storage.blocking is False
            queue.enqueue_reconcile("jira", "10004")  # the producer's notify fails quietly
            assert recorder.ran.wait(BOUND)
    assert recorder.tickets == ["10004"]
    [record] = [r for r in caplog.records if r.getMessage() == "worker.wakeup_unavailable"]
    assert "named pipes" in record.hint
