"""Load figures for `connector serve` in SQLite and Redis modes, memory, and backlog drain.

1. Acknowledgement load: one receiver (`connector serve --no-worker`: waitress, 1 HTTP
   process × 8 threads, JSON logs at INFO as deployed) per queue mode and per HTTP stack
   (`--stacks`; `gunicorn` is the former gthread stack, for comparison); a separate
   load-generating process sends E signed Jira events, each for its own ticket with its
   own delivery id (nothing collapses), over C keep-alive connections. Prints accepted
   events/s and acknowledgement latency p50/p99.
2. Resident memory (VmRSS) of the receiver's processes and of a worker process.
3. Backlog drain: 10,000 tickets seeded in a sandbox Jira (in this process, no OpenAPI
   validation), 10,000 reconciles queued while no worker runs, then W `connector worker`
   processes start and the clock runs until every ticket carries its intake comment and
   transition. Workers reconcile for real over HTTP with the `jira` client.
Prints figures, asserts nothing. Needs redis-server for the Redis mode.
Run: .venv/bin/python bench/load.py [--events 3000] [--connections 8] [--backlog 10000] [--workers 2]
     [--stacks waitress,gunicorn]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.processes import (  # noqa: E402  (the same process helpers as the fault tests)
    JIRA_TOKEN, JIRA_USER, REDIS_SERVER, WEBHOOK_SECRET, RedisServer, connector_env, intake_config, jira_headers,
    receiver, wait_ready, wait_until, worker,
)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def generate(url: str, n: int, connections: int, out) -> None:
    """The load generator, in its own process so it does not share the receiver's CPU accounting."""
    from concurrent.futures import ThreadPoolExecutor

    events = []
    for i in range(n):
        body = (b'{"webhookEvent": "jira:issue_updated", "issue_event_type_name": "issue_generic", '
                b'"user": {"accountId": "acc-agent"}, "issue": {"id": "%d", "key": "SUP-%d"}}' % (200000 + i, i))
        events.append((body, jira_headers(body, f"bench-{i}")))
    sessions = [requests.Session() for _ in range(connections)]
    for session in sessions:  # open the connections before the clock starts
        session.get(url.replace("/webhooks/jira", "/healthz"), timeout=10)

    def send(i: int) -> tuple[float, int]:
        body, headers = events[i]
        started = time.perf_counter()
        status = sessions[i % connections].post(url, data=body, headers=headers, timeout=30).status_code
        return time.perf_counter() - started, status

    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        results = list(pool.map(send, range(n)))
    out.put((time.perf_counter() - started, results))


def acknowledgement_load(mode: str, queue_url: str | None, events: int, connections: int, tmp: Path,
                         stack: str = "waitress") -> None:
    data_dir = Path(tempfile.mkdtemp(prefix=f"data-{mode}-{stack}-", dir=tmp))  # a fresh queue each run
    env = connector_env(data_dir, intake_config(tmp / "rules.yaml"), queue_url=queue_url,
                        CONNECTOR_HTTP_SERVER=stack)
    process, url = receiver(f"receiver-{mode}-{stack}", env, tmp)
    try:
        wait_ready(url, process)
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        generator = context.Process(target=generate, args=(url + "/webhooks/jira", events, connections, out))
        generator.start()
        elapsed, results = out.get(timeout=900)
        generator.join()
        http_children = children(process.pid)
        rss = [rss_kib(process.pid)] + [rss_kib(pid) for pid in http_children]
    finally:
        process.stop()
    latencies = sorted(r[0] * 1000 for r in results)
    accepted = sum(1 for _, status in results if status == 202)
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    print(f"[{mode}, {stack}] receiver, {events} signed Jira events (distinct tickets) over {connections} connections")
    print(f"  accepted {accepted}/{events}: {accepted / elapsed:,.0f} events/s; acknowledgement latency "
          f"p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms")
    if stack == "gunicorn":
        print(f"  receiver RSS: arbiter {rss[0] / 1024:.0f} MiB, HTTP process "
              f"{sum(rss[1:]) / 1024:.0f} MiB (after the load)")
    else:
        print(f"  receiver RSS: {rss[0] / 1024:.0f} MiB (one process, after the load)")


def drain(queue_url: str | None, backlog: int, workers: int, threads: int, tmp: Path) -> None:
    from connector.queue import ReconcileQueue
    from connector.sandbox.jira import CONNECTOR, JiraSandbox
    from connector.sandbox.server import Clock
    from connector.settings import Settings
    from connector.sync.state import SyncState

    mode = "redis" if queue_url else "sqlite"
    jira = JiraSandbox(clock=Clock(frozen=False), validate=False, deliver_webhooks=False, email=JIRA_USER,
                       api_token=JIRA_TOKEN, webhook_secret=WEBHOOK_SECRET)
    jira.start()
    processes = []
    try:
        seeded = time.perf_counter()
        ids = []
        for i in range(backlog):
            key = jira.create_issue(f"VPN drops {i}", description="drops", components=["network"])
            ids.append(jira.store.get(key).id)
        jira.webhooks.clear()
        print(f"[{mode}] seeded {backlog} sandbox tickets in {time.perf_counter() - seeded:.0f} s")
        data_dir = tmp / f"drain-{mode}"
        queue = ReconcileQueue.from_settings(Settings(data_dir=data_dir, queue_url=queue_url))
        queue.huey.flush()  # the acknowledgement load left its events in the shared Redis
        state = SyncState(queue.huey)  # sweeps would compete with the drain for the sandbox
        state.mark_completed("jira", "full", jira.clock.now())
        state.mark_completed("jira", "recent", jira.clock.now())
        for ticket_id in ids:
            queue.enqueue_reconcile("jira", str(ticket_id), event_id=f"drain-{ticket_id}")
        print(f"[{mode}] backlog queued: {queue.pending_count()} reconciles")
        env = connector_env(data_dir, intake_config(tmp / "rules.yaml"), queue_url=queue_url, jira_url=jira.base_url,
                            CONNECTOR_LOG_LEVEL="WARNING")
        # The clock includes the workers' start (about 2 s): a restart after an outage is the case.
        started = time.perf_counter()
        processes = [worker(f"drain-worker-{mode}-{i}", env, tmp, threads) for i in range(workers)]
        transitions = lambda: sum(n for call, n in jira.calls.items()  # noqa: E731
                                  if call.method == "POST" and call.path.endswith("/transitions") and call.status == 204)
        peak_rss = {p.pid: 0 for p in processes}
        while transitions() < backlog:
            for p in processes:
                peak_rss[p.pid] = max(peak_rss[p.pid], rss_kib(p.pid))
            time.sleep(0.5)
            if time.perf_counter() - started > 1800:
                break
        elapsed = time.perf_counter() - started
        wait_until(lambda: queue.pending_count() == 0, timeout=30)
        done = transitions()
        comments = sum(1 for i in ids[:200] for c in jira.issue(str(i))["fields"]["comment"]["comments"]
                       if c["author"]["accountId"] == CONNECTOR)
        print(f"[{mode}] drained {done}/{backlog} reconciles (GET + comment/label PUT + transition) with {workers} "
              f"worker processes × {threads} threads in {elapsed:.0f} s: {done / elapsed:,.0f} tickets/s; "
              f"{jira.count():,} API calls; first 200 tickets carry {comments} connector comments")
        print(f"[{mode}] worker RSS peak: " + ", ".join(f"{kib / 1024:.0f} MiB" for kib in peak_rss.values()))
    finally:
        for p in processes:
            p.stop()
        jira.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--backlog", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--modes", default="sqlite,redis")
    parser.add_argument("--stacks", default="waitress", help="HTTP stacks, e.g. waitress,gunicorn (CONNECTOR_HTTP_SERVER)")
    parser.add_argument("--rounds", type=int, default=1, help="acknowledgement runs per stack, interleaved")
    args = parser.parse_args()
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer().start() if "redis" in modes and REDIS_SERVER else None
        if "redis" in modes and redis is None:
            print("redis-server is not installed: Redis mode skipped (apt-get install redis-server)")
            modes.remove("redis")
        try:
            for mode in modes:
                # Interleaved (a, b, a, b): on a shared, noisy machine a figure means something
                # only next to one measured the same way at about the same time.
                for round_ in range(args.rounds):
                    for stack in args.stacks.split(","):
                        if redis is not None and mode == "redis":  # the same delivery ids again: start empty
                            import redis as redis_client

                            redis_client.Redis.from_url(redis.url).flushdb()
                        acknowledgement_load(mode, redis.url if mode == "redis" else None, args.events,
                                             args.connections, tmp, stack)
            for mode in modes:
                if args.backlog:
                    drain(redis.url if mode == "redis" else None, args.backlog, args.workers, args.threads, tmp)
        finally:
            if redis is not None:
                redis.stop()


if __name__ == "__main__":
    main()
