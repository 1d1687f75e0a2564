"""Group commit of webhook admissions (`connector.queue.admission.GroupCommit`), SQLite queue.

Concurrent events share one transaction and one fsync. What must hold whatever the timing
(no test here measures time):
- a request is answered only after the transaction holding its own write committed;
- a write that fails answers 503 for exactly its request, the rest of its group is stored;
- a COMMIT that fails answers 503 for every request of the group, stores nothing of it, and
  leaves the connection usable for the next event;
- a process killed mid-group answered nobody of that group and stored nothing of it.

The groups are made deterministic with a SQLite function called by a trigger inside the
first writer's transaction: it holds that transaction open until the test has queued the
others behind it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import os
import signal
import sqlite3
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from connector.queue.reconcile_queue import ReconcileQueue
from connector.queue.storage import QueueUnavailable
from tests.processes import wait_until
from webhooks.app import create_app

FORK = multiprocessing.get_context("fork")


class Gate:
    """Called by SQLite for every pending flag written; holds the writer of ticket `first`."""

    def __init__(self, first: str = "first") -> None:
        self.first = first
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, key: str) -> int:
        if key.endswith(":" + self.first):
            self.entered.set()
            if not self.release.wait(30):
                raise RuntimeError("the test never released the gate")
        return 0


def install(queue: ReconcileQueue, gate: Gate, refused: str = "refused") -> list[str]:
    """Gate, a refusing trigger for ticket `refused`, and a list that records every COMMIT run."""
    conn = queue.huey.storage.conn
    conn.create_function("gate", 1, gate)
    conn.execute("create temp trigger gate after insert on main.kv begin select gate(new.key); end")
    conn.execute(f"create temp trigger refuse before insert on main.kv when new.key like '%:{refused}' "
                 "begin select raise(abort, 'database or disk is full'); end")
    commits: list[str] = []
    conn.set_trace_callback(lambda sql: commits.append(sql) if sql.strip().upper().startswith("COMMIT") else None)
    return commits


def stored_tasks(queue: ReconcileQueue) -> set[str]:
    """Tickets with a waiting task, read through a connection of its own (what is committed)."""
    with sqlite3.connect(queue.huey.storage.filename) as conn:
        count = conn.execute("select count(*) from task").fetchone()[0]
    tickets = {task.args[1] for task in queue.huey.pending()} if count else set()
    assert len(tickets) == count
    return tickets


def lead_then_queue(pool: ThreadPoolExecutor, queue: ReconcileQueue, gate: Gate, submit, others: list[str]
                    ) -> tuple[Future, dict[str, Future]]:
    """Start the writer of `first` (held inside its transaction), then the others behind it."""
    first = pool.submit(submit, gate.first)
    assert gate.entered.wait(30)
    futures = {ticket: pool.submit(submit, ticket) for ticket in others}
    assert wait_until(lambda: queue.admission._group.waiting == len(others), timeout=30)
    return first, futures


def test_each_event_is_answered_only_after_its_own_commit_and_concurrent_ones_share_one(queue):
    gate = Gate()
    commits = install(queue, gate)
    others = [str(n) for n in range(2, 8)]
    with ThreadPoolExecutor(8) as pool:
        first, futures = lead_then_queue(pool, queue, gate, lambda t: queue.enqueue_reconcile("jira", t, event_id=t),
                                         others)
        # Nobody is answered while the first transaction is open, and nothing is committed.
        assert not first.done() and not any(f.done() for f in futures.values())
        assert stored_tasks(queue) == set()
        gate.release.set()
        assert first.result(30) == "queued"
        assert {t: f.result(30) for t, f in futures.items()} == dict.fromkeys(others, "queued")

    assert len(commits) == 2  # the first writer's transaction, then one for the six behind it
    assert stored_tasks(queue) == {"first", *others}


def test_a_failing_write_answers_503_for_its_request_only(settings, queue):
    gate = Gate(first="1000")
    commits = install(queue, gate, refused="666")
    app = create_app(settings, queue=queue)
    secret = settings.jira_webhook_secrets[0].encode()

    def deliver(ticket: str) -> int:
        body = json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"id": ticket}}).encode()
        signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        return app.test_client().post("/webhooks/jira", data=body, headers={
            "Content-Type": "application/json", "X-Hub-Signature": signature,
            "X-Atlassian-Webhook-Identifier": f"delivery-{ticket}"}).status_code

    others = ["11", "12", "666", "13"]
    with ThreadPoolExecutor(8) as pool:
        first, futures = lead_then_queue(pool, queue, gate, deliver, others)
        gate.release.set()
        assert first.result(30) == 202
        statuses = {t: f.result(30) for t, f in futures.items()}

    assert statuses == {"11": 202, "12": 202, "666": 503, "13": 202}
    assert stored_tasks(queue) == {"1000", "11", "12", "13"}
    assert len(commits) == 2  # the four shared one transaction; the refused write was rolled back alone


def test_a_failed_commit_answers_every_request_of_its_group_and_stores_none(queue):
    gate = Gate()
    commits = install(queue, gate)
    conn = queue.huey.storage.conn
    # A deferred foreign key that the write of ticket `doomed` violates: SQLite refuses the
    # group's COMMIT (https://www.sqlite.org/foreignkeys.html#fk_deferred).
    conn.execute("pragma foreign_keys = on")
    conn.execute("create table doom_parent (id integer primary key)")
    conn.execute("create table doom (parent integer references doom_parent (id) deferrable initially deferred)")
    conn.execute("create temp trigger doom after insert on main.kv when new.key like '%:doomed' "
                 "begin insert into doom (parent) values (42); end")
    others = ["21", "doomed", "22"]
    with ThreadPoolExecutor(8) as pool:
        first, futures = lead_then_queue(pool, queue, gate, lambda t: queue.enqueue_reconcile("jira", t, event_id=t),
                                         others)
        gate.release.set()
        assert first.result(30) == "queued"
        for future in futures.values():
            with pytest.raises(QueueUnavailable):
                future.result(30)

    assert stored_tasks(queue) == {"first"}
    assert len(commits) == 2  # the first group's COMMIT, and the one refused
    # The connection was not left inside the failed transaction: the retries are stored.
    assert queue.enqueue_reconcile("jira", "21", event_id="21") == "queued"
    assert queue.enqueue_reconcile("jira", "22", event_id="22") == "queued"
    assert stored_tasks(queue) == {"first", "21", "22"}


def admit_group_and_die(settings, answers_path) -> None:
    """In a child: a group behind the held first writer; the write of ticket `die` SIGKILLs the process."""
    queue = ReconcileQueue.from_settings(settings)
    gate = Gate()
    install(queue, gate)
    conn = queue.huey.storage.conn

    def die_now() -> None:
        # Once the first group's answer is out (its COMMIT returned), so the kill is mid-group 2.
        wait_until(lambda: os.path.exists(answers_path) and os.path.getsize(answers_path) > 0, timeout=10)
        os.kill(os.getpid(), signal.SIGKILL)

    conn.create_function("die_now", 0, die_now)
    conn.execute("create temp trigger die_now after insert on main.task "
                 "when (select count(*) from main.kv where key like '%:die') > 0 begin select die_now(); end")

    def submit(ticket: str) -> None:
        result = queue.enqueue_reconcile("jira", ticket, event_id=ticket)
        # One unbuffered write per answer: whatever was answered is in the file when the kill comes.
        fd = os.open(answers_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{ticket} {result}\n".encode())
        os.close(fd)

    with ThreadPoolExecutor(8) as pool:
        _, futures = lead_then_queue(pool, queue, gate, submit, ["31", "32", "die", "33"])
        gate.release.set()
        for future in futures.values():
            future.result(30)
    os._exit(3)  # not reached: the die trigger fires inside the second group


def test_a_process_killed_mid_group_answered_none_of_it_and_stored_none_of_it(settings, tmp_path):
    answers = tmp_path / "answers"
    child = FORK.Process(target=admit_group_and_die, args=(settings, str(answers)))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL

    assert answers.read_text().splitlines() == ["first queued"]
    queue = ReconcileQueue.from_settings(settings)
    assert stored_tasks(queue) == {"first"}
    # The platform's retries of the unanswered deliveries are queued, not "duplicate".
    assert [queue.enqueue_reconcile("jira", t, event_id=t) for t in ("31", "32", "33")] == ["queued"] * 3
