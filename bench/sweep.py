"""Sweep cost at size, and breach-notice latency, against the sandbox Jira.

Prints figures; asserts nothing. Run:

    .venv/bin/python bench/sweep.py                      # 10,000 open tickets, then the latency run
    .venv/bin/python bench/sweep.py --tickets 100000     # a big site (a few minutes)

- The sandbox runs in a child process (forked), so the connector's CPU and memory are the
  parent's own (`resource.getrusage(RUSAGE_SELF)`: CPU, peak RSS) and the sandbox's CPU is
  printed apart, from the child's. The connector talks to it over HTTP through the real
  `jira` client, with the real SQLite queue file and deadline index.
- Tickets are seeded in the state the rules leave them in (one ticket per history shape is
  reconciled until nothing is left to write, and the others of its shape get its fields,
  labels and status), with realistic histories: most have
  one status change and one agent comment, `--medium` percent have 11–21 status changes,
  `--long` percent 61 (beyond the search's 40-entry changelog cap: the adapter completes
  those with one bulk changelog request per page).
- Full sweep, cold: nothing in the deadline index (a new install, a lost backend): every
  ticket is parsed and evaluated, and its timer written – once per page of 100.
- Full sweep, steady: the hourly sweep of a quiet site. Every ticket is settled at the stamp
  its listing shows (`connector.queue.deadlines`) and skipped without parsing or evaluating.
- Full sweep after a hot reload (the config fingerprint changed): every ticket evaluated.
- Recent-updates sweep after 1 % of the tickets changed (a customer comment each).
- Breach-notice latency (default size only): 200 P0 tickets whose 30-minute first-response
  deadlines are staggered over 10 minutes, in-process (`LocalStack`); the clock moves in
  pump-interval steps (10 s) and each notice's timestamp is compared with its deadline.

The sandbox's search re-runs its JQL over every issue for each page (O(n) a page), which at
100,000 tickets would be the sandbox's cost, not the connector's; the child memoizes each
query's result while nothing changes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector.config import load_config  # noqa: E402
from connector.queue.reconcile_queue import ReconcileQueue  # noqa: E402
from connector.reconcile import Runtime, reconcile  # noqa: E402
from connector.sandbox.jira import AGENT, CONNECTOR, CUSTOMER, JiraSandbox  # noqa: E402
from connector.sandbox.server import Clock  # noqa: E402
from connector.settings import DEFAULT_CONFIG, Settings  # noqa: E402
from connector.sync.sweep import Sweeper  # noqa: E402

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
PUMP_INTERVAL = timedelta(seconds=10)
LATENCY_TICKETS = 200
INTAKE = {"Impact scope": "office", "Steps to reproduce": "connect", "Error message": "E1",
          "Occurred at": FRIDAY - timedelta(hours=2)}


# --- the sandbox process -------------------------------------------------------------------


def _history(created: datetime, final: str, changes: int) -> list[tuple[datetime, str]]:
    """`changes` status changes after `created`, alternating, ending in `final`."""
    other = "Waiting for customer" if final != "Waiting for customer" else "In Progress"
    step = timedelta(minutes=50) / max(changes, 1)
    statuses = [final if (changes - n) % 2 == 1 else other for n in range(changes)]
    return [(created + timedelta(minutes=5) + step * n, status) for n, status in enumerate(statuses)]


def seed(jira: JiraSandbox, count: int, medium: float, long: float) -> dict[str, int]:
    """`count` tickets already following the process.

    One ticket per history shape is reconciled until nothing is left to write (its waiting
    periods pause SLA clocks, so its due fields are its own); the others of that shape are
    created with its fields, labels and status – the state the rules leave them in.
    """
    config = load_config(DEFAULT_CONFIG)
    runtime = Runtime(settings=Settings(jira_url=jira.base_url, jira_user=jira.email, jira_token=jira.api_token),
                      config=config, clock=jira.clock.now)
    created = FRIDAY - timedelta(hours=1)
    names = {field.id: field.name for field in jira.store.fields.values()}
    shapes: dict[int, tuple[dict, list[str], str]] = {}
    final = "In Progress"

    def create(i: int, changes: int, fields: dict, labels: list[str]) -> str:
        key = jira.create_issue(f"Question about exports {i}", description="how?", priority="Lowest",
                                components=["network"], environment="Web", created=created, fields=fields,
                                labels=labels, history=_history(created, final, changes))
        jira.add_comment(key, "Looking into it", author=AGENT, at=created + timedelta(minutes=5))
        return key

    def shape(i: int, changes: int) -> None:
        if changes in shapes:
            fields, labels, _ = shapes[changes]
            create(i, changes, fields, labels)
            return
        key = create(i, changes, INTAKE, [])
        while reconcile(runtime, "jira", key).result.writes:
            pass
        done = jira.store.get(key)
        mapped = {names[fid]: value for fid, value in done.values.items()
                  if fid.startswith("customfield_") and value not in (None, [], "")}
        shapes[changes] = (mapped, sorted(done.values.get("labels") or ()), key)

    rng = random.Random(13)
    mix = {"short": 0, "medium": 0, "long": 0}
    for i in range(count):
        draw = rng.random()
        if draw < long:
            kind, changes = "long", 61
        elif draw < long + medium:
            kind, changes = "medium", rng.randrange(10, 21) | 1  # odd: ends in `final`
        else:
            kind, changes = "short", 1
        mix[kind] += 1
        shape(i, changes)
    return mix


def sandbox_main(conn, count: int, medium: float, long: float) -> None:
    with JiraSandbox(clock=Clock(FRIDAY), timezone="Asia/Shanghai", deliver_webhooks=False,
                     validate=False) as jira:
        started = time.monotonic()
        mix = seed(jira, count, medium, long)
        seconds = time.monotonic() - started
        memo: dict[str, list] = {}
        query = jira._query

        def memoized(jql: str) -> list:
            if jql not in memo:
                memo[jql] = query(jql)
            return memo[jql]

        jira._query = memoized  # see the module docstring: the sandbox's cost, not the connector's
        jira.reset_calls()
        conn.send((jira.base_url, jira.email, jira.api_token, seconds, mix))
        while True:
            command, *args = conn.recv()
            if command == "calls":
                calls = jira.calls
                jira.reset_calls()
                cpu = resource.getrusage(resource.RUSAGE_SELF)
                conn.send((sum(n for c, n in calls.items() if c.method == "GET"),
                           sum(n for c, n in calls.items() if c.method != "GET"),
                           sum(n for c, n in calls.items() if c.path.endswith("/changelog/bulkfetch")),
                           cpu.ru_utime + cpu.ru_stime))
            elif command == "comment":
                fraction, at = args
                memo.clear()
                jira.clock.set(at)
                keys = sorted(jira.store.issues)
                for issue_id in keys[:: int(1 / fraction)]:
                    jira.add_comment(jira.store.issues[issue_id].key, "Any news?", author=CUSTOMER, at=at)
                conn.send(True)
            else:
                conn.send(True)
                return


# --- the connector (this process) ----------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def sweeps(count: int, medium: float, long: float) -> None:
    fork = multiprocessing.get_context("fork")
    here, there = fork.Pipe()
    child = fork.Process(target=sandbox_main, args=(there, count, medium, long), daemon=True)
    child.start()
    base_url, email, token, seeded, mix = here.recv()
    print(f"seeded {count} open tickets in {seeded:.0f} s (sandbox process): {mix['short']} with one status "
          f"change, {mix['medium']} with 11-21, {mix['long']} with 61 (beyond the search's 40-entry changelog cap)")
    rss_before = peak_rss_mb()

    def sandbox_figures() -> tuple[int, int, int, float]:
        here.send(("calls",))
        return here.recv()

    _, _, _, sandbox_cpu = sandbox_figures()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(jira_url=base_url, jira_user=email, jira_token=token, data_dir=Path(tmp) / "data")
        queue = ReconcileQueue.from_settings(settings)
        clock = Clock(FRIDAY + timedelta(minutes=1))
        runtime = Runtime(settings=settings, config=load_config(DEFAULT_CONFIG), clock=clock.now,
                          schedule=queue.deadlines.record)
        if hasattr(runtime, "lookup"):  # absent before settled tickets: this script also measures the baseline
            runtime.lookup = queue.deadlines.entry
        sweeper = Sweeper(runtime, queue)

        def run(name: str, kind: str = "full") -> None:
            nonlocal sandbox_cpu
            cpu0 = cpu_seconds()
            report = sweeper.run("jira", kind)
            cpu = cpu_seconds() - cpu0
            reads, writes, bulk, sandbox_now = sandbox_figures()
            print(f"{name:34} {report.tickets:>7} tickets: {reads} reads + {writes} writes ({bulk} bulk changelog "
                  f"POSTs), wall {report.wall_seconds:.1f} s, connector CPU {cpu:.2f} s "
                  f"({cpu / max(report.tickets, 1) * 1e6:.0f} µs/ticket), sandbox CPU {sandbox_now - sandbox_cpu:.1f} s; "
                  f"evaluated {report.evaluated}, skipped as settled {report.unchanged}, completed {report.completed}, "
                  f"queued {report.queued}, timers armed {report.timers_armed}")
            sandbox_cpu = sandbox_now

        run("full sweep, cold (empty index)")
        clock.advance(timedelta(minutes=1))
        run("full sweep, steady (hourly)")
        reloaded = load_config(DEFAULT_CONFIG)
        reloaded.rollout.backlog_hours += 1
        runtime.replace_config(reloaded)
        run("full sweep after a hot reload")
        sweeper.run("jira", "recent")  # sets the watermark
        clock.advance(timedelta(minutes=5))
        here.send(("comment", 0.01, clock.now()))
        here.recv()
        clock.advance(timedelta(minutes=5))
        sandbox_figures()
        run("recent sweep, 1 % changed", "recent")
        print(f"connector peak RSS {peak_rss_mb():.0f} MB (before the sweeps {rss_before:.0f} MB; "
              f"the sandbox's tickets live in the other process)")
    here.send(("stop",))
    here.recv()
    child.join(10)


def latency() -> None:
    from connector.stack import LocalStack  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp, \
            LocalStack(Path(tmp) / "data", clock=Clock(FRIDAY), validate=False, workers=4) as stack:
        stack.jira.webhooks.enabled = False
        stack.jira.add_user("team-lead", "Tess Lead", "lead@example.com")
        start = stack.clock.now()
        keys = {}
        for i in range(LATENCY_TICKETS):
            created = start + timedelta(seconds=3 * i)  # deadlines spread over 10 minutes
            key = stack.jira.create_issue(f"Checkout down {i}", description="502", priority="Highest",
                                          components=["outage"], environment="POS", created=created, fields=INTAKE)
            keys[key] = created + timedelta(minutes=30)
        stack.clock.set(start + timedelta(seconds=3 * LATENCY_TICKETS))
        stack.sweep("full")  # picks the new tickets up (their webhooks are off): intake, routing, timers
        stack.settle(timeout=300)
        wall = []
        last_due = max(keys.values())
        while stack.clock.now() < last_due + timedelta(minutes=1):
            stack.clock.advance(PUMP_INTERVAL)
            started = time.monotonic()
            if stack.pump():
                stack.settle(timeout=300)
                wall.append(time.monotonic() - started)
        late = []
        for key, due in keys.items():
            comments = stack.jira.issue(key)["fields"]["comment"]["comments"]
            [notice] = [c for c in comments if c["author"]["accountId"] == CONNECTOR and "SLA breached" in c["body"]]
            late.append((datetime.strptime(notice["created"], "%Y-%m-%dT%H:%M:%S.%f%z") - due).total_seconds())
    print(f"breach notices for {len(late)} P0 tickets, pump every {PUMP_INTERVAL.seconds} s (simulated clock): "
          f"deadline -> notice median {statistics.median(late):.0f} s, max {max(late):.0f} s; "
          f"wall time pump -> notices written median {statistics.median(wall):.2f} s, max {max(wall):.2f} s")
    print("for comparison: Zendesk's own automations run once an hour (up to 60 min late)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--medium", type=float, default=8.0, help="percent of tickets with 11-21 status changes")
    parser.add_argument("--long", type=float, default=2.0, help="percent with 61 (beyond the changelog cap)")
    parser.add_argument("--latency", action=argparse.BooleanOptionalAction, default=None,
                        help="also run the breach-notice latency (default: only at 10,000 tickets or fewer)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {multiprocessing.cpu_count()} cores, Python {platform.python_version()}")
    sweeps(args.tickets, args.medium / 100, args.long / 100)
    if args.latency or (args.latency is None and args.tickets <= 10_000):
        latency()


if __name__ == "__main__":
    main()
