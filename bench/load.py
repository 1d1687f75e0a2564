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
4. `--open` (only this): the acknowledgement against a baseline, SQLite queue. First the
   generator's own ceiling against a no-op server (a canned answer from asyncio). Then,
   interleaved for --rounds (connector, baseline, connector, baseline …), a fresh receiver
   each: open loop at each of --rates (events/s offered on a fixed schedule, latency counted
   from each event's *scheduled* send time, 64 connections, so a server that falls behind
   shows as latency instead of slowing the offer down – no coordinated omission), then
   closed loop (--events over --connections) with the receiver's CPU per event. The baseline
   (bench/baseline_receiver.py) is Flask on the same waitress server and thread count, the
   HMAC check and one SQLite WAL insert. Medians over the rounds are printed last.
Prints figures, asserts nothing. Needs redis-server for the Redis mode.
Run: .venv/bin/python bench/load.py [--events 3000] [--connections 8] [--backlog 10000] [--workers 2]
     [--stacks waitress,gunicorn]
     .venv/bin/python bench/load.py --open [--rates 200,500,800] [--seconds 6] [--rounds 3] [--events 3000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.processes import (  # noqa: E402  (the same process helpers as the fault tests)
    JIRA_TOKEN, JIRA_USER, REDIS_SERVER, WEBHOOK_SECRET, RedisServer, connector_env, free_port, intake_config,
    jira_headers, receiver, wait_ready, wait_until, worker,
)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children (/proc/<pid>/stat), in seconds."""
    total = 0.0
    for each in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


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


def signed_requests(host: str, port: int, n: int, prefix: str) -> list[bytes]:
    """n complete HTTP/1.1 requests: signed Jira events, each for its own ticket with its own delivery id."""
    out = []
    for i in range(n):
        body = (b'{"webhookEvent": "jira:issue_updated", "issue_event_type_name": "issue_generic", '
                b'"user": {"accountId": "acc-agent"}, "issue": {"id": "%d", "key": "SUP-%d"}}' % (200000 + i, i))
        headers = jira_headers(body, f"{prefix}-{i}")
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        out.append(f"POST /webhooks/jira HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return out


def drive(host: str, port: int, n: int, connections: int, rate: float | None, prefix: str, out) -> None:
    """The load generator (its own process, asyncio over raw keep-alive sockets, so it is cheap).

    rate=None: closed loop, each connection sends its next event as soon as it has the answer.
    rate=R: open loop, event i is due at t0 + i/R whatever the answers so far; its latency is
    counted from that scheduled time, so time spent waiting for a free connection (the server
    is behind) is in the figure instead of silently slowing the offered rate down
    (coordinated omission). Also reports how late the generator itself sent (send lag).
    """
    import asyncio
    import gc

    payloads = signed_requests(host, port, n, prefix)
    gc.disable()  # a collection pause here would show as the server's latency

    async def read_status(reader: asyncio.StreamReader) -> int:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await reader.readexactly(length)
        return int(head[9:12])

    async def main() -> tuple[float, list, list]:
        loop = asyncio.get_running_loop()
        conns = [await asyncio.open_connection(host, port) for _ in range(connections)]
        results: list = [None] * n
        lags: list = []
        if rate is None:
            counter = iter(range(n))

            async def sender(reader, writer) -> None:
                for i in counter:
                    started = loop.time()
                    writer.write(payloads[i])
                    status = await read_status(reader)
                    results[i] = (loop.time() - started, status)

            started = loop.time()
            await asyncio.gather(*(sender(r, w) for r, w in conns))
            return loop.time() - started, results, lags
        idle: asyncio.Queue = asyncio.Queue()
        for conn in conns:
            idle.put_nowait(conn)

        async def one(i: int, due: float) -> None:
            reader, writer = await idle.get()
            lags.append(loop.time() - due)
            writer.write(payloads[i])
            status = await read_status(reader)
            results[i] = (loop.time() - due, status)
            idle.put_nowait((reader, writer))

        t0 = loop.time() + 0.1
        tasks = []
        for i in range(n):
            due = t0 + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        return loop.time() - t0, results, lags

    elapsed, results, lags = asyncio.run(main())
    out.put((elapsed, results, lags))


def run_generator(url: str, n: int, connections: int, rate: float | None, prefix: str) -> dict:
    """Run `drive` in a spawned process; figures in ms."""
    parts = urlsplit(url)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    generator = context.Process(target=drive, args=(parts.hostname, parts.port, n, connections, rate, prefix, out))
    generator.start()
    elapsed, results, lags = out.get(timeout=900)
    generator.join()
    latencies = sorted(r[0] * 1000 for r in results)
    ok = sum(1 for _, status in results if status in (200, 202))
    lags.sort()
    return {"n": n, "ok": ok, "per_s": ok / elapsed, "p50": statistics.median(latencies),
            "p99": percentile(latencies, 0.99), "max": latencies[-1],
            "lag_p99": percentile([x * 1000 for x in lags], 0.99) if lags else 0.0}


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * q + 0.5) - 1))]


def acknowledgement_load(mode: str, queue_url: str | None, events: int, connections: int, tmp: Path,
                         stack: str = "waitress") -> None:
    data_dir = Path(tempfile.mkdtemp(prefix=f"data-{mode}-{stack}-", dir=tmp))  # a fresh queue each run
    env = connector_env(data_dir, intake_config(tmp / "rules.yaml"), queue_url=queue_url,
                        CONNECTOR_HTTP_SERVER=stack)
    process, url = receiver(f"receiver-{mode}-{stack}", env, tmp)
    try:
        wait_ready(url, process)
        figures = run_generator(url, events, connections, None, f"bench-{mode}-{stack}")
        http_children = children(process.pid)
        rss = [rss_kib(process.pid)] + [rss_kib(pid) for pid in http_children]
    finally:
        process.stop()
    accepted = figures["ok"]
    print(f"[{mode}, {stack}] receiver, {events} signed Jira events (distinct tickets) over {connections} connections")
    print(f"  accepted {accepted}/{events}: {figures['per_s']:,.0f} events/s; acknowledgement latency "
          f"p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms, max {figures['max']:.1f} ms")
    if stack == "gunicorn":
        print(f"  receiver RSS: arbiter {rss[0] / 1024:.0f} MiB, HTTP process "
              f"{sum(rss[1:]) / 1024:.0f} MiB (after the load)")
    else:
        print(f"  receiver RSS: {rss[0] / 1024:.0f} MiB (one process, after the load)")


def noop_ceiling(tmp: Path, events: int, connections: int, rates: list[int]) -> None:
    """The generator against a server that does nothing (a canned answer from asyncio): its own ceiling."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "bench" / "baseline_receiver.py"), "--noop", "--port", str(port)])
    try:
        wait_until(lambda: _connectable(port), timeout=10)
        closed = run_generator(f"http://127.0.0.1:{port}", events, connections, None, "noop")
        print(f"[generator] closed loop against a no-op server, {connections} connections: "
              f"{closed['per_s']:,.0f} events/s (its ceiling); p99 {closed['p99']:.1f} ms")
        for rate in rates:
            figures = run_generator(f"http://127.0.0.1:{port}", int(rate * 3), OPEN_CONNECTIONS, rate, "noop")
            print(f"[generator] open loop {rate}/s against the no-op server: p50 {figures['p50']:.1f} ms, "
                  f"p99 {figures['p99']:.1f} ms; generator's own send lag p99 {figures['lag_p99']:.1f} ms")
    finally:
        server.terminate()
        server.wait()


def _connectable(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


OPEN_CONNECTIONS = 64  # enough that the generator never waits for a connection unless the server is behind


def start_target(target: str, tmp: Path, tag: str):
    """A fresh receiver: the connector (`connector serve --no-worker`, SQLite queue) or the baseline."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"{target}-{tag}-", dir=tmp))
    if target == "connector":
        env = connector_env(data_dir, intake_config(tmp / "rules.yaml"))
        process, url = receiver(f"ack-{tag}", env, tmp)
        wait_ready(url, process)
        return process.stop, url, process.pid
    port = free_port()
    log = open(tmp / f"baseline-{tag}.log", "wb")
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "baseline_receiver.py"), "--port", str(port),
                                "--db", str(data_dir / "events.db")], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        process.terminate()
        process.wait(timeout=30)
        log.close()

    if not wait_until(lambda: _connectable(port), timeout=30):
        stop()
        raise RuntimeError((tmp / f"baseline-{tag}.log").read_text()[-2000:])
    return stop, url, process.pid


def compare(tmp: Path, rates: list[int], seconds: float, closed_events: int, connections: int, rounds: int) -> None:
    """Connector against the baseline, interleaved (c, b, c, b …): open loop at each rate, then closed loop.

    Each (target, round) gets a fresh receiver; medians over rounds are printed at the end.
    """
    figures: dict = {}
    for round_ in range(rounds):
        for target in ("connector", "baseline"):
            stop, url, pid = start_target(target, tmp, f"r{round_}")
            try:
                run_generator(url, 300, connections, None, f"warm-{round_}")  # imports, first connections, WAL
                for rate in rates:
                    f = run_generator(url, int(rate * seconds), OPEN_CONNECTIONS, rate, f"open{rate}-{round_}")
                    figures.setdefault((target, rate), []).append(f)
                    print(f"  round {round_} {target:9} open {rate:4}/s: ok {f['ok']}/{f['n']}, p50 {f['p50']:6.1f} ms, "
                          f"p99 {f['p99']:6.1f} ms, max {f['max']:7.1f} ms (send lag p99 {f['lag_p99']:.1f} ms)")
                cpu = cpu_seconds(pid)
                f = run_generator(url, closed_events, connections, None, f"closed-{round_}")
                f["cpu_ms"] = (cpu_seconds(pid) - cpu) * 1000 / closed_events
                figures.setdefault((target, "closed"), []).append(f)
                print(f"  round {round_} {target:9} closed loop ({connections} connections): {f['per_s']:,.0f} events/s, "
                      f"p50 {f['p50']:.1f} ms, p99 {f['p99']:.1f} ms; server CPU {f['cpu_ms']:.2f} ms per event")
            finally:
                stop()
    med = lambda key, field: statistics.median(f[field] for f in figures[key])  # noqa: E731
    print(f"\nMedians of {rounds} interleaved rounds (connector: waitress 1 process × 8 threads, SQLite queue, "
          f"JSON logs at INFO; baseline: Flask on the same server, HMAC + one SQLite WAL insert)")
    for rate in rates:
        c, b = med(("connector", rate), "p99"), med(("baseline", rate), "p99")
        print(f"  open loop {rate:4}/s: connector p50 {med(('connector', rate), 'p50'):.1f} ms p99 {c:.1f} ms | "
              f"baseline p50 {med(('baseline', rate), 'p50'):.1f} ms p99 {b:.1f} ms | ratio {c / b:.1f}×")
    print(f"  closed loop ({connections} connections): connector {med(('connector', 'closed'), 'per_s'):,.0f} events/s, "
          f"{med(('connector', 'closed'), 'cpu_ms'):.2f} ms server CPU per event | "
          f"baseline {med(('baseline', 'closed'), 'per_s'):,.0f} events/s, {med(('baseline', 'closed'), 'cpu_ms'):.2f} ms")


def drain(queue_url: str | None, backlog: int, workers: int, threads: int, tmp: Path) -> None:
    from connector.queue.reconcile_queue import ReconcileQueue
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
    parser.add_argument("--open", action="store_true",
                        help="only the acknowledgement comparison: open loop at --rates and closed loop, "
                             "connector vs the baseline receiver, interleaved --rounds times, plus the generator's ceiling")
    parser.add_argument("--rates", default="200,500,800", help="offered rates (events/s) of the open-loop mode")
    parser.add_argument("--seconds", type=float, default=6, help="duration of each open-loop run")
    args = parser.parse_args()
    if args.open:
        rates = [int(r) for r in args.rates.split(",")]
        with tempfile.TemporaryDirectory() as tmp_name:
            intake_config(Path(tmp_name) / "rules.yaml")
            noop_ceiling(Path(tmp_name), args.events, args.connections, rates)
            compare(Path(tmp_name), rates, args.seconds, args.events, args.connections, args.rounds)
        return
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
