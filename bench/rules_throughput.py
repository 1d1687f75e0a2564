"""Rule-evaluation throughput: tickets per second on one core, standard process, varied tickets.

Prints figures; asserts nothing. Run: .venv/bin/python bench/rules_throughput.py [N]
"""

from __future__ import annotations

import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector.config import load_config  # noqa: E402
from connector.model import AuthorRole, Comment, StatusChange, Status, Ticket  # noqa: E402
from connector.rules.engine import evaluate  # noqa: E402
from connector.settings import DEFAULT_CONFIG  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=TZ)
FIELDS = ["occurred_at", "impact_scope", "symptom", "repro_steps", "error_message", "environment",
          "root_cause", "solution", "verification_result"]
FLOWS = [
    [Status.NEW],
    [Status.NEW, Status.WAITING_FOR_INFORMATION, Status.IN_PROGRESS],
    [Status.NEW, Status.IN_PROGRESS, Status.WAITING_FOR_CUSTOMER, Status.IN_PROGRESS],
    [Status.NEW, Status.IN_PROGRESS, Status.RESOLVED],
    [Status.NEW, Status.IN_PROGRESS, Status.RESOLVED, Status.IN_PROGRESS, Status.CLOSED],
]


def generate(n: int, seed: int = 7) -> list[Ticket]:
    rng = random.Random(seed)
    tickets = []
    for i in range(n):
        created = NOW - timedelta(minutes=rng.randint(5, 60 * 24 * 20))
        flow = rng.choice(FLOWS)
        steps = sorted(created + timedelta(minutes=rng.randint(1, int((NOW - created).total_seconds() // 60)))
                       for _ in flow[1:])
        history = tuple(StatusChange(at=at, from_status=a, to_status=b) for at, a, b in zip(steps, flow, flow[1:]))
        comments = tuple(Comment(id=f"{i}-{k}", author_role=rng.choice(list(AuthorRole)), public=rng.random() < .8,
                                 body="update", created=created + timedelta(minutes=rng.randint(1, 600)))
                         for k in range(rng.randint(0, 6)))
        tickets.append(Ticket(
            platform=rng.choice(["jira", "zendesk"]), id=str(i), key=f"SUP-{i}", summary="VPN drops",
            category=rng.choice(["network", "outage", "billing", "question", "login"]),
            priority=rng.choice(["P0", "P1", "P2", "P3"]), status=flow[-1], created=created,
            fields={f: "x" for f in FIELDS if rng.random() < .8},
            labels=frozenset(rng.sample(["spc-intake-requested", "spc-escalation-l2", "vip"], rng.randint(0, 2))),
            status_history=history, comments=comments, group=rng.choice([None, "L1", "L2"]),
        ))
    return tickets


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    config = load_config(DEFAULT_CONFIG)
    tickets = generate(n)
    for t in tickets[:50]:  # warm caches (holiday tables, compiled templates)
        evaluate(t, NOW, config)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    actions = sum(len(evaluate(t, NOW, config).actions) for t in tickets)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"rule evaluation: {n} generated tickets, standard process ({len(config.rules)} rules)")
    print(f"  {n / cpu:,.0f} tickets/s on one core (CPU time {cpu:.2f} s, wall {wall:.2f} s)")
    print(f"  {cpu / n * 1e6:,.0f} µs per ticket; {actions} actions planned in total")


if __name__ == "__main__":
    main()
