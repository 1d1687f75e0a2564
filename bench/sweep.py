"""Sweep cost and breach-notice latency, for 10,000 open tickets in the sandbox Jira.

Prints figures; asserts nothing. Run: .venv/bin/python bench/sweep.py [TICKETS]

- Full sweep: every open ticket, read with `expand=changelog` and evaluated in-process.
  The tickets are seeded in the state the rules leave them in (a template ticket is
  reconciled once and cloned), so the sweep measures the steady state: re-arming timers.
- Recent-updates sweep after 1 % of the tickets changed (a human comment each).
- Breach-notice latency: 200 P0 tickets whose 30-minute first-response deadlines are
  staggered over 10 minutes; the clock moves in pump-interval steps (10 s, as the worker's
  pump thread does) and each notice's timestamp is compared with its deadline. The clock
  stands still while workers run, so the wall time from a pump to its notices being
  written is printed separately.

Seeding goes through the sandbox's Python API (no HTTP); the sweep and the reconciles go
through the real `jira` client over HTTP, and the sandbox counts every request.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector.reconcile import reconcile  # noqa: E402
from connector.sandbox.jira import AGENT, CONNECTOR, CUSTOMER  # noqa: E402
from connector.sandbox.server import Clock  # noqa: E402
from connector.stack import LocalStack  # noqa: E402

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
PUMP_INTERVAL = timedelta(seconds=10)
LATENCY_TICKETS = 200
INTAKE = {"Impact scope": "office", "Steps to reproduce": "connect", "Error message": "E1",
          "Occurred at": FRIDAY - timedelta(hours=2)}


def calls(stack) -> tuple[int, int]:
    snapshot = stack.jira.calls
    reads = sum(n for call, n in snapshot.items() if call.method == "GET")
    return reads, sum(n for call, n in snapshot.items() if call.method != "GET")


def seed_steady_tickets(stack: LocalStack, count: int) -> list[str]:
    """`count` P3 tickets already following the process: reconcile one, clone its state."""
    created = FRIDAY - timedelta(hours=1)
    template = stack.jira.create_issue("Question about exports", description="how?", priority="Lowest",
                                       components=["network"], environment="Web", created=created, fields=INTAKE,
                                       history=[(created + timedelta(minutes=5), "In Progress")])
    stack.jira.add_comment(template, "Looking into it", author=AGENT, at=created + timedelta(minutes=5))
    reconcile(stack.runtime, "jira", template)
    done = stack.jira.store.get(template)
    names = {field.id: field.name for field in stack.jira.store.fields.values()}
    mapped = {names[fid]: value for fid, value in done.values.items()
              if fid.startswith("customfield_") and value not in (None, [], "")}
    keys = [template]
    for i in range(count - 1):
        key = stack.jira.create_issue(f"Question about exports {i}", description="how?", priority="Lowest",
                                      components=["network"], environment="Web", created=created,
                                      fields=mapped, labels=sorted(done.values.get("labels") or ()),
                                      history=[(created + timedelta(minutes=5), done.values["status"])])
        stack.jira.add_comment(key, "Looking into it", author=AGENT, at=created + timedelta(minutes=5))
        keys.append(key)
    return keys


def timed_sweep(stack: LocalStack, kind: str):
    stack.jira.reset_calls()
    report = stack.sweep(kind)
    return report, calls(stack)


def latency(stack: LocalStack) -> tuple[list[float], list[float]]:
    start = stack.clock.now()
    keys = {}
    for i in range(LATENCY_TICKETS):
        created = start + timedelta(seconds=3 * i)  # deadlines spread over 10 minutes
        key = stack.jira.create_issue(f"Checkout down {i}", description="502", priority="Highest",
                                      components=["outage"], environment="POS", created=created, fields=INTAKE)
        keys[key] = created + timedelta(minutes=30)
    stack.clock.set(start + timedelta(seconds=3 * LATENCY_TICKETS))
    stack.sweep("recent")  # picks the new tickets up (their webhooks are off): intake, routing, timers
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
    return late, wall


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp, \
            LocalStack(Path(tmp) / "data", clock=Clock(FRIDAY), validate=False, workers=4) as stack:
        stack.jira.webhooks.enabled = False
        stack.jira.add_user("team-lead", "Tess Lead", "lead@example.com")
        seeding = time.monotonic()
        keys = seed_steady_tickets(stack, count)
        print(f"seeded {len(keys)} open tickets in {time.monotonic() - seeding:.1f} s")

        full, (reads, writes) = timed_sweep(stack, "full")
        print(f"full sweep:   {full.tickets} tickets, {reads} reads, {writes} writes, "
              f"wall {full.wall_seconds:.1f} s, CPU {full.cpu_seconds:.1f} s, "
              f"{full.queued} queued for a write, {full.timers_armed} timers armed")
        stack.sweep("recent")  # sets the watermark
        stack.clock.advance(timedelta(minutes=5))
        for key in keys[:: 100]:  # 1 %
            stack.jira.add_comment(key, "Any news?", author=CUSTOMER)
        stack.clock.advance(timedelta(minutes=5))
        recent, (reads, writes) = timed_sweep(stack, "recent")
        print(f"recent sweep: {recent.tickets} changed tickets, {reads} reads, {writes} writes, "
              f"wall {recent.wall_seconds:.2f} s, CPU {recent.cpu_seconds:.2f} s, {recent.queued} queued for a write")
        stack.settle(timeout=300)

        late, wall = latency(stack)
        print(f"breach notices for {len(late)} P0 tickets, pump every {PUMP_INTERVAL.seconds} s (simulated clock): "
              f"deadline -> notice median {statistics.median(late):.0f} s, max {max(late):.0f} s; "
              f"wall time pump -> notices written median {statistics.median(wall):.2f} s, max {max(wall):.2f} s")
        print("for comparison: Zendesk's own automations run once an hour (up to 60 min late)")


if __name__ == "__main__":
    main()
