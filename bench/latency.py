"""Event-to-write latency after idle periods: webhook sent → first write seen by the sandbox.

Each configuration is a deployment of its own – a receiver (`connector serve --no-worker`)
and a worker process (`connector worker --workers 2`, periodic sweeps and the deadline pump
running as deployed) – against one sandbox Jira in this process, all started at once:

- sqlite/wakeup, redis/wakeup: this connector (`CONNECTOR_WORKER_WAIT` unset);
- sqlite/huey, redis/huey: the baseline, huey's stock consumer as `run_worker` ran it before
  (polling after 0.1 s, backing off ×1.15 to 10 s; Redis: huey's blocking pop);
- sqlite/poll: the alternative to the wake-up, a fixed 0.05 s poll (for its idle CPU).

For every idle period the bench waits that long after the previous reconcile's writes,
creates a fresh ticket (missing its `environment`, so the intake rule writes a comment),
sends its signed `jira:issue_updated` webhook to the configuration's receiver and polls the
sandbox's call log until the first non-GET request answered 2xx. The configurations take
turns within one idle period, so they never compete for the CPU while measured; each
sample records its configuration's actual idle time. The workers' CPU (utime + stime from
/proc) over the idle windows of 30 s and more gives the idle CPU per minute.

With `--consumer-cpu SECONDS` it measures only the idle CPU of the waiting itself instead:
for each configuration, a consumer with 2 worker threads (`WorkerThreads`, no sweeps, no
pump; its scheduler thread and heartbeat included) idles in this process for SECONDS while
`time.process_time()` counts.

Prints figures, asserts nothing. Needs redis-server for the Redis configurations.
Run: .venv/bin/python bench/latency.py [--idle 0:20,30:5,90:3,300:2] [--configs sqlite/wakeup,sqlite/huey,...]
Quick: .venv/bin/python bench/latency.py --idle 0:5,5:3
Idle CPU of the wait alone: .venv/bin/python bench/latency.py --consumer-cpu 60
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.processes import (  # noqa: E402  (the same process helpers as the fault tests)
    JIRA_TOKEN, JIRA_USER, REDIS_SERVER, WEBHOOK_SECRET, RedisServer, connector_env, intake_config, post_event,
    receiver, wait_ready, worker,
)

ALL_CONFIGS = ("sqlite/wakeup", "sqlite/huey", "sqlite/poll", "redis/wakeup", "redis/huey")
NEVER = str(10 * 365 * 86400)  # seconds: sweeps are not due during the bench (they would write too)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


@dataclass
class Config:
    name: str
    backend: str
    wait: str
    queue_url: str | None
    tmp: Path
    session: requests.Session = field(default_factory=requests.Session)
    processes: list = field(default_factory=list)
    url: str = ""
    last_write_done: float = 0.0
    samples: list[tuple[float, float, float, float]] = field(default_factory=list)  # (scheduled idle s, actual idle s, ack ms, write ms)
    idle_cpu: list[tuple[float, float]] = field(default_factory=list)  # (idle s, worker CPU s)

    def start(self, jira, rules: Path) -> None:
        from connector.queue.reconcile_queue import ReconcileQueue
        from connector.settings import Settings
        from connector.sync.state import SyncState

        data_dir = self.tmp / self.name.replace("/", "-")
        queue = ReconcileQueue.from_settings(Settings(data_dir=data_dir, queue_url=self.queue_url))
        queue.huey.flush()
        state = SyncState(queue.huey)
        for kind in ("full", "recent"):
            state.mark_completed("jira", kind, jira.clock.now())
        env = connector_env(data_dir, rules, queue_url=self.queue_url, jira_url=jira.base_url,
                            CONNECTOR_LOG_LEVEL="WARNING", CONNECTOR_SYNC_RECENT_INTERVAL=NEVER,
                            CONNECTOR_SYNC_FULL_INTERVAL=NEVER)
        if self.wait != "wakeup":
            env["CONNECTOR_WORKER_WAIT"] = self.wait
        process, self.url = receiver(f"receiver-{self.name.replace('/', '-')}", env, self.tmp)
        self.processes.append(process)
        wait_ready(self.url, process)
        self.processes.append(worker(f"worker-{self.name.replace('/', '-')}", env, self.tmp, 2))
        self.session.get(self.url + "/healthz", timeout=10)  # open the keep-alive connection

    @property
    def worker(self):
        return self.processes[1]

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def writes(jira) -> int:
    return sum(n for call, n in jira.calls.items() if call.method != "GET" and 200 <= call.status < 300)


def sample(config: Config, jira, n: int, scheduled_idle: float | None) -> None:
    key = jira.create_issue(f"VPN drops ({config.name} #{n})", description="drops", components=["network"])
    issue_id = jira.store.get(key).id
    body = (b'{"webhookEvent": "jira:issue_updated", "issue_event_type_name": "issue_generic", '
            b'"user": {"accountId": "acc-agent"}, "issue": {"id": "%s", "key": "%s"}}'
            % (str(issue_id).encode(), key.encode()))
    idle = time.monotonic() - config.last_write_done
    before = writes(jira)
    started = time.perf_counter()
    status = post_event(config.session, config.url, body, f"latency-{config.name}-{n}")
    acked = time.perf_counter()
    if status != 202:
        raise RuntimeError(f"{config.name}: the receiver answered {status}")
    while writes(jira) == before:
        if time.perf_counter() - started > 60:
            raise RuntimeError(f"{config.name}: no write within 60 s\n{config.worker.log()[-3000:]}")
        time.sleep(0.002)
    written = time.perf_counter()
    if scheduled_idle is not None:  # None: the warm-up
        config.samples.append((scheduled_idle, idle, (acked - started) * 1000, (written - started) * 1000))
    # The rest of the reconcile (a transition may follow the comment) before the idle clock starts.
    quiet_since, last = time.monotonic(), writes(jira)
    while time.monotonic() - quiet_since < 0.3:
        time.sleep(0.02)
        if writes(jira) != last:
            quiet_since, last = time.monotonic(), writes(jira)
    config.last_write_done = time.monotonic()


def run(configs: list[Config], schedule: list[tuple[float, int]], jira) -> None:
    n = 0
    for idle, count in schedule:
        for i in range(count):
            # Wait until every configuration has been idle for `idle` seconds.
            wake_at = max(c.last_write_done for c in configs) + idle
            cpu_before = {c.name: cpu_seconds(c.worker.pid) for c in configs}
            cpu_since = time.monotonic()
            time.sleep(max(0.0, wake_at - time.monotonic()))
            for config in configs:
                if idle >= 30:
                    config.idle_cpu.append((time.monotonic() - cpu_since,
                                            cpu_seconds(config.worker.pid) - cpu_before[config.name]))
                n += 1
                sample(config, jira, n, idle)
            print(f"  idle {idle:>4.0f} s, sample {i + 1}/{count}: " + ", ".join(
                f"{c.name} {c.samples[-1][3]:.0f} ms (ack {c.samples[-1][2]:.0f}, idle {c.samples[-1][1]:.0f} s)"
                for c in configs), flush=True)


def report(configs: list[Config], schedule: list[tuple[float, int]]) -> None:
    print()
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    print("webhook sent → first write seen by the sandbox (ms): p50 / p99 / max (n); "
          "acknowledgement p50 in brackets; idle = the configuration's actual idle time")
    for config in configs:
        print(f"[{config.name}]")
        for idle, _ in schedule:
            rows = [s for s in config.samples if s[0] == idle]
            if not rows:
                continue
            latency = [r[3] for r in rows]
            after_ack = [r[3] - r[2] for r in rows]
            print(f"  after {idle:>4.0f} s idle: {percentile(latency, 50):7.0f} / {percentile(latency, 99):7.0f} / "
                  f"{max(latency):7.0f} ms  (n={len(rows)}, actual idle {min(r[1] for r in rows):.0f}–"
                  f"{max(r[1] for r in rows):.0f} s) [ack p50 {percentile([r[2] for r in rows], 50):.0f} / max "
                  f"{max(r[2] for r in rows):.0f} ms; ack → write p50 {percentile(after_ack, 50):.0f} / max "
                  f"{max(after_ack):.0f} ms]")
        latency = [s[3] for s in config.samples]
        print(f"  all samples:     {percentile(latency, 50):7.0f} / {percentile(latency, 99):7.0f} / "
              f"{max(latency):7.0f} ms  (n={len(latency)})")
        if config.idle_cpu:
            seconds = sum(s for s, _ in config.idle_cpu)
            cpu = sum(c for _, c in config.idle_cpu)
            print(f"  worker process idle CPU: {cpu / seconds * 60 * 1000:.0f} ms per minute "
                  f"(over {seconds:.0f} s idle; heartbeat, deadline pump, scheduler and minute tick included)")


def consumer_idle_cpu(names: list[str], seconds: float, redis, tmp: Path) -> None:
    from connector.queue.reconcile_queue import ReconcileQueue
    from connector.queue.worker import POLL_INTERVAL, WorkerThreads
    from connector.settings import Settings
    from connector.queue.wakeup import FALLBACK_POLL_SECONDS

    print(f"idle CPU of a consumer with 2 worker threads, {seconds:.0f} s each (scheduler thread and heartbeat included)")
    for db, name in enumerate(names):
        backend, wait = name.split("/")
        queue_url = f"redis://127.0.0.1:{redis.port}/{db}" if backend == "redis" else None
        queue = ReconcileQueue.from_settings(Settings(data_dir=tmp / f"cpu-{db}", queue_url=queue_url))
        # As run_worker waits: poll every 0.05 s; huey's defaults; the wake-up with a 1 s
        # fallback poll (WorkerThreads' fallback is max(poll_interval, 0.5) s).
        interval = {"poll": POLL_INTERVAL, "wakeup": FALLBACK_POLL_SECONDS}.get(wait, 0.1)
        with WorkerThreads(queue, workers=2, poll_interval=interval, wait=wait):
            time.sleep(min(5.0, seconds))  # past the start, and huey's backoff well under way
            started, cpu = time.monotonic(), time.process_time()
            time.sleep(seconds)
            used = time.process_time() - cpu
            elapsed = time.monotonic() - started
        print(f"  [{name}] {used / elapsed * 60 * 1000:.0f} ms CPU per minute idle", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", default="0:20,30:5,90:3,300:2",
                        help="idle seconds:samples, comma-separated (default 0:20,30:5,90:3,300:2, ~18 min)")
    parser.add_argument("--configs", default=",".join(ALL_CONFIGS))
    parser.add_argument("--consumer-cpu", type=float, default=0.0, metavar="SECONDS",
                        help="measure the idle CPU of the consumer alone, SECONDS per configuration, and stop")
    args = parser.parse_args()
    schedule = [(float(part.split(":")[0]), int(part.split(":")[1]) if ":" in part else 3)
                for part in args.idle.split(",")]
    names = args.configs.split(",")
    from connector.sandbox.jira import JiraSandbox
    from connector.sandbox.server import Clock

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis = None
        if any(n.startswith("redis/") for n in names):
            if REDIS_SERVER is None:
                print("redis-server is not installed: Redis configurations skipped (apt-get install redis-server)")
                names = [n for n in names if not n.startswith("redis/")]
            else:
                redis = RedisServer().start()
        if args.consumer_cpu:
            try:
                consumer_idle_cpu(names, args.consumer_cpu, redis, tmp)
            finally:
                if redis is not None:
                    redis.stop()
            return
        jira = JiraSandbox(clock=Clock(frozen=False), validate=False, deliver_webhooks=False, email=JIRA_USER,
                           api_token=JIRA_TOKEN, webhook_secret=WEBHOOK_SECRET)
        jira.start()
        configs: list[Config] = []
        try:
            rules = intake_config(tmp / "rules.yaml")
            for db, name in enumerate(names):
                backend, wait = name.split("/")
                queue_url = f"redis://127.0.0.1:{redis.port}/{db}" if backend == "redis" else None
                config = Config(name, backend, wait, queue_url, tmp)
                config.start(jira, rules)
                configs.append(config)
            # A warm-up event per configuration (not counted): the worker has started, the
            # connections are open, the modules are imported.
            time.sleep(2)
            for n, config in enumerate(configs):
                before = jira.calls
                sample(config, jira, -1 - n, None)
                if n == 0:  # what one reconcile asks of the site (the reads come before the first write)
                    made = jira.calls - before
                    print("one reconcile's requests: " + ", ".join(
                        f"{call.method} {call.path} {call.status} ×{count}" for call, count in sorted(made.items())))
            total = sum(idle * count for idle, count in schedule)
            print(f"configurations: {', '.join(names)}; schedule {args.idle} (≥ {total / 60:.0f} min)", flush=True)
            run(configs, schedule, jira)
            report(configs, schedule)
        finally:
            for config in configs:
                config.stop()
            jira.stop()
            if redis is not None:
                redis.stop()


if __name__ == "__main__":
    main()
