"""Crash atomicity of accepting a webhook: `kill -9` at any instant loses no ticket.

Accepting an event stores a delivery claim, the ticket's pending flag and the task. A
receiver killed between those writes used to leave a claim or a flag without a task, so
the platform's retry of the unanswered delivery was answered 200 "duplicate" with nothing
queued and the ticket waited for the sweep. Now the three are one write
(`connector.queue.admission`). Three layers of evidence:

1. a receiver process killed *between the statements* of one admission (a SQLite trigger
   calls a function that SIGKILLs its own process) leaves nothing, and the retry is queued;
2. a process admitting events in a loop, SIGKILLed at random instants (SQLite and Redis),
   never leaves a claim or a flag whose ticket has no task;
3. real `connector serve` receivers, their process group SIGKILLed mid-burst, five times
   per backend; every delivery that got no answer or a retryable status is sent again to a
   fresh receiver, as Jira and Zendesk retry it; then workers run and every ticket is
   reconciled exactly once – with no sweep.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from connector.queue.reconcile_queue import ReconcileQueue
from connector.sandbox.jira import JiraSandbox
from connector.sandbox.server import RETRYABLE_STATUSES
from connector.settings import Settings
from tests.processes import (
    Cluster,
    connector_changes,
    connector_env,
    intake_config,
    live_jira,
    needs_redis,
)

FORK = multiprocessing.get_context("fork")
TRIALS = 5
WAITING = "Waiting for customer"



@pytest.fixture(params=["sqlite", pytest.param("redis", marks=needs_redis)])
def queue_url(request) -> str | None:
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("redis_server").url


# --- what the storage holds ------------------------------------------------------------------------


def stored(queue: ReconcileQueue) -> tuple[set[str], set[str], list[str]]:
    """(tickets with a delivery claim, tickets with a pending flag, tickets of waiting tasks).

    Parts 1 and 2 use delivery ids `<ticket>/<n>`, so a claim names its ticket; part 3 uses
    the sandbox's delivery ids and reads only the tasks.
    """
    storage = queue.huey.storage
    if queue_is_redis(queue):
        prefix = f"connector.{storage.name}.delivery.jira:"
        claims = [key.decode()[len(prefix):] for key in storage.conn.scan_iter(match=prefix + "*")]
        flags = [key.decode() for key in storage.conn.hkeys(storage.result_key)]
    else:
        claims = [row[0][len("jira:"):] for row in storage.sql(
            "select delivery_key from connector_recent_delivery", results=True)]
        flags = [row[0] for row in storage.sql("select key from kv", results=True)]
    claimed = {claim.split("/")[0] for claim in claims}
    flagged = {flag.rsplit(":", 1)[1] for flag in flags if flag.startswith("pending:reconcile:jira:")}
    tasks = [task.args[1] for task in queue.huey.pending()]
    return claimed, flagged, tasks


def queue_is_redis(queue: ReconcileQueue) -> bool:
    return hasattr(queue.huey.storage, "result_key")


# --- 1. killed between the statements of one admission (SQLite) -----------------------------------

# SQLite fires these inside the admission's transaction, right after each statement.
KILL_POINTS = {
    "after the delivery claim": "after insert on main.connector_recent_delivery",
    "after the pending flag": "after insert on main.kv",
    "after the task, before COMMIT": "after insert on main.task",
}


def admit_and_die(settings: Settings, trigger: str) -> None:
    """In a child process: admit one event, SIGKILLed by SQLite itself at the trigger."""
    queue = ReconcileQueue.from_settings(settings)
    connection = queue.huey.storage.conn
    connection.create_function("die_now", 0, lambda: os.kill(os.getpid(), signal.SIGKILL))
    connection.execute(f"create temp trigger die_now {trigger} begin select die_now(); end")
    queue.enqueue_reconcile("jira", "10000", event_id="10000/1")
    os._exit(3)  # not reached: the trigger fires inside enqueue_reconcile


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sqlite_receiver_killed_between_statements_leaves_nothing_half_stored(settings, point):
    child = FORK.Process(target=admit_and_die, args=(settings, KILL_POINTS[point]))
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL

    queue = ReconcileQueue.from_settings(settings)

    assert stored(queue) == (set(), set(), [])
    # The platform's retry of the unanswered delivery is queued, not answered "duplicate".
    assert queue.enqueue_reconcile("jira", "10000", event_id="10000/1") == "queued"
    assert stored(queue) == ({"10000"}, {"10000"}, ["10000"])


def test_a_failing_redis_admission_writes_nothing(redis_server):
    import redis

    redis.Redis.from_url(redis_server.url).flushall()
    queue = ReconcileQueue.from_settings(Settings(queue_url=redis_server.url))
    storage = queue.huey.storage
    # A Lua script is not rolled back when a command in it fails; the script checks
    # everything that can fail before its first write. Make its last write fail:
    storage.conn.set(storage.queue_key, b"not a queue")

    from connector.queue.storage import QueueUnavailable

    with pytest.raises(QueueUnavailable):
        queue.enqueue_reconcile("jira", "10000", event_id="10000/1")
    storage.conn.delete(storage.queue_key)

    assert stored(queue) == (set(), set(), [])
    assert queue.enqueue_reconcile("jira", "10000", event_id="10000/1") == "queued"


# --- 2. a process admitting events, killed at random instants ----------------------------------------


def admit_forever(queue_url: str | None, data_dir: Path, started) -> None:
    queue = ReconcileQueue.from_settings(Settings(data_dir=data_dir, queue_url=queue_url))
    started.set()
    for n in range(1_000_000):
        # Two events per ticket, as Jira sends issue_updated + comment_created for one edit.
        for event in (1, 2):
            queue.enqueue_reconcile("jira", str(10000 + n), event_id=f"{10000 + n}/{event}")


def test_killed_at_random_instants_no_claim_or_flag_is_left_without_its_task(queue_url, tmp_path):
    rng = random.Random(12)
    for trial in range(TRIALS):
        data_dir = tmp_path / f"trial-{trial}"
        if queue_url:
            import redis

            redis.Redis.from_url(queue_url).flushall()
        started = FORK.Event()
        child = FORK.Process(target=admit_forever, args=(queue_url, data_dir, started))
        child.start()
        assert started.wait(30)
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)

        claimed, flagged, tasks = stored(ReconcileQueue.from_settings(Settings(data_dir=data_dir, queue_url=queue_url)))
        assert tasks, "the child was killed before it admitted anything; the trial shows nothing"
        assert len(tasks) == len(set(tasks))  # collapsing held: one task per ticket
        assert claimed == flagged == set(tasks), (
            f"trial {trial}: claims without a task {sorted(claimed - set(tasks))}, "
            f"flags without a task {sorted(flagged - set(tasks))}")


# --- 3. real receivers, process group SIGKILLed mid-burst ---------------------------------------------

TICKETS_PER_TRIAL = 40
CONNECTIONS = 12


@pytest.fixture
def jira():
    yield from live_jira()


def new_events(jira: JiraSandbox, trial: int) -> tuple[list[str], list]:
    """Tickets needing intake, each with several deliveries: issue_created, then a customer's
    comment (comment_created and issue_updated, as Jira sends for one comment)."""
    jira.webhooks.clear()
    keys = [jira.create_issue(f"VPN drops {trial}/{i}", description="drops", components=["network"])
            for i in range(TICKETS_PER_TRIAL)]
    for key in keys:
        jira.add_comment(key, "It dropped again at 10:15.")
    deliveries = list(jira.webhook_log)
    assert len(deliveries) >= 2 * TICKETS_PER_TRIAL
    random.Random(trial).shuffle(deliveries)
    return keys, deliveries


def burst_then_kill(url: str, deliveries: list, victim, rng: random.Random) -> tuple[dict[str, int | None], int]:
    """POST every delivery over a few connections; SIGKILL the receiver's process group once
    a random share has been answered. Returns each delivery's status (None: no answer; those
    not sent yet when the receiver died are not sent) and how many were cut off in flight."""
    answers: dict[str, int | None] = {}
    cut_off = []
    kill_after = rng.randint(len(deliveries) // 5, len(deliveries) // 2)
    killed = threading.Event()
    lock = threading.Lock()
    local = threading.local()

    def send(delivery) -> None:
        status = None
        if not killed.is_set():
            local.http = getattr(local, "http", None) or requests.Session()
            try:
                status = local.http.post(url + "/webhooks/jira", data=delivery.body, headers=delivery.headers,
                                         timeout=10).status_code
            except requests.RequestException:
                cut_off.append(delivery.identifier)
        with lock:
            answers[delivery.identifier] = status
            if status is not None and len([s for s in answers.values() if s]) >= kill_after and not killed.is_set():
                killed.set()
                os.killpg(victim.pid, signal.SIGKILL)

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        list(pool.map(send, deliveries))
    victim.process.wait(10)
    return answers, len(cut_off)


def redeliver(url: str, deliveries: list) -> list[int]:
    """What Jira does with a delivery that got no answer or a retryable status: send it again."""
    statuses = []
    with requests.Session() as http:
        for delivery in deliveries:
            for _ in range(20):
                status = http.post(url + "/webhooks/jira", data=delivery.body, headers=delivery.headers,
                                   timeout=10).status_code
                if status not in RETRYABLE_STATUSES:
                    break
                time.sleep(0.2)
            statuses.append(status)
    return statuses


def test_receiver_killed_mid_burst_five_times_then_retries_lose_no_ticket(queue_url, tmp_path, jira):
    if queue_url:
        import redis

        redis.Redis.from_url(queue_url).flushall()
    env = connector_env(tmp_path / "data", intake_config(tmp_path / "rules.yaml"), queue_url=queue_url,
                        jira_url=jira.base_url)
    cluster = Cluster(tmp_path, "jira", jira, env, queue_url)
    rng = random.Random(2026)
    all_keys: list[str] = []
    cut_off_total = 0
    try:
        url = cluster.add_receiver(start_new_session=True)  # its own process group, killed whole
        for trial in range(TRIALS):
            keys, deliveries = new_events(jira, trial)
            all_keys += keys
            victim = cluster.processes[-1]
            answers, cut_off = burst_then_kill(url, deliveries, victim, rng)
            cut_off_total += cut_off
            assert all(status in (None, 200, 202, *RETRYABLE_STATUSES) for status in answers.values()), answers
            # No 2xx for anything not stored: every ticket acknowledged before the kill (202
            # queued, or 200 collapsed into its waiting task) has its task; no worker runs yet.
            acknowledged = {ticket_of(d) for d in deliveries if answers[d.identifier] in (200, 202)}
            assert acknowledged, "the receiver was killed before it answered anything"
            assert acknowledged <= set(stored(cluster.queue)[2]), f"trial {trial}: 2xx given, nothing stored"
            retry = [d for d in deliveries if answers[d.identifier] is None or answers[d.identifier] in RETRYABLE_STATUSES]

            url = cluster.add_receiver(start_new_session=True)
            assert all(status in (200, 202) for status in redeliver(url, retry))

            # No worker runs yet: every ticket of the trial must now have its task waiting.
            tasks = stored(cluster.queue)[2]
            missing = sorted(set(keys_to_ids(jira, keys)) - set(tasks))
            assert not missing, f"trial {trial}: tickets without a queued task after the retries: {missing}"

        assert cut_off_total >= TRIALS, "the kills caught too few requests in flight; the test shows little"
        workers = [cluster.add_worker(), cluster.add_worker()]
        cluster.settled(quiet=1.5, timeout=120)

        outcomes = {key: connector_changes(jira, key) for key in all_keys}
        lost = sorted(key for key, outcome in outcomes.items() if outcome != (1, 1, WAITING))
        assert not lost, f"{len(lost)} of {len(all_keys)} tickets not reconciled exactly once: " \
                         f"{[(k, outcomes[k]) for k in lost[:10]]}\n{cluster.logs()}"
        # Recovered by the retries, not by the sweep.
        assert not any(event.get("event") == "sync.started" for w in workers for event in w.events())
    finally:
        cluster.stop()


def keys_to_ids(jira: JiraSandbox, keys: list[str]) -> list[str]:
    """The webhook names the issue by id; the queue holds what the webhook named."""
    return [jira.issue(key)["id"] for key in keys]


def ticket_of(delivery) -> str:
    return json.loads(delivery.body)["issue"]["id"]
