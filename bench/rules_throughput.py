"""Rule-evaluation and parsing throughput on one core, standard process.

Prints figures; asserts nothing. Run:

    .venv/bin/python bench/rules_throughput.py [--n 3000] [--runs 5] [--baseline REF] [--no-parse]

Mixes (the same generated tickets every run, seed 7):

- steady: tickets that already follow the process – each generated ticket is evaluated,
  its plan projected onto it, until the plan is empty. This is what a sweep and most
  webhook events see, so it is the figure that matters most.
- changing: generated tickets whose plan is not empty (missing intake, warnings due,
  breaches, escalations, closures …), evaluated as they are.
- parse: platform JSON → `Ticket`, timed apart from evaluation. The inputs are captured
  from the sandboxes: tickets seeded on the sandbox Jira and Zendesk, reconciled once, then
  read by the real adapters; the bench records exactly what the adapter hands to
  `parse_jira_issue` / `parse_zendesk_ticket` and parses it again and again.

CPU is `time.process_time()`; each figure is the median of `--runs` runs. With
`--baseline REF` (a git commit, e.g. the merge base) the code of REF is unpacked into a
temporary directory (`git archive`, the repository is not touched) and the same
measurements run there, alternating with the working tree's run by run, so both figures
come from the same minutes of a shared machine. It also checks that both versions planned
exactly the same (a digest of every plan's JSON: actions, comment texts, clocks, deadlines).
`--no-parse` measures evaluation only (no sandboxes started).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent.parent
# A baseline run points BENCH_CODE_ROOT at the unpacked old code; this script stays the same.
sys.path.insert(0, os.environ.get("BENCH_CODE_ROOT") or str(HERE))

from connector.config import load_config  # noqa: E402
from connector.model import AuthorRole, Comment, StatusChange, Status, Ticket  # noqa: E402
from connector.rules.engine import evaluate  # noqa: E402
from connector.rules.projection import project  # noqa: E402

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
PARSE_SEED_TICKETS = 40  # per platform


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


def settle(ticket: Ticket, config, rounds: int = 8) -> Ticket | None:
    """The ticket as the connector leaves it: apply plans until the plan is empty."""
    for _ in range(rounds):
        plan = evaluate(ticket, NOW, config)
        if not plan.actions:
            return ticket
        ticket = project(ticket, plan.actions, NOW)
    return None


def mixes(n: int, config) -> dict[str, list[Ticket]]:
    generated = generate(n)
    changing = [t for t in generated if evaluate(t, NOW, config).actions]
    steady = [s for s in (settle(t, config) for t in generated) if s is not None]
    return {"steady": steady, "changing": changing}


def time_evaluations(tickets: list[Ticket], config) -> tuple[float, int]:
    """CPU seconds for one evaluation of each ticket, and the actions planned."""
    cpu0 = time.process_time()
    actions = 0
    for ticket in tickets:
        actions += len(evaluate(ticket, NOW, config).actions)
    return time.process_time() - cpu0, actions


# --- parse inputs captured from the sandboxes ------------------------------------------------


def first_module(*names: str):
    """The first of these modules that exists: the baseline (`--baseline REF`) may be a commit
    from before the adapters became packages (connector/platforms/jira.py, jira_issue.py)."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise ModuleNotFoundError(" / ".join(names))


def capture_parse_inputs(count: int) -> list[tuple[str, tuple, dict]]:
    """(platform, args, kwargs) the adapters hand to the parsers for `count` tickets per platform."""
    jira_adapter = first_module("connector.platforms.jira.read", "connector.platforms.jira")
    zendesk_adapter = first_module("connector.platforms.zendesk.read", "connector.platforms.zendesk")
    from connector.reconcile import reconcile
    from connector.sandbox.server import Clock
    from connector.stack import LocalStack

    captured: list[tuple[str, tuple, dict]] = []

    def recorder(platform, original):
        def parse(*args, **kwargs):
            captured.append((platform, args, kwargs))
            return original(*args, **kwargs)
        return parse

    rng = random.Random(11)
    from connector.sandbox import zendesk as zendesk_sandbox

    clock = Clock(NOW)
    with tempfile.TemporaryDirectory() as data_dir, \
            LocalStack(Path(data_dir), clock=clock, zendesk=True, workers=1) as stack:
        now = stack.clock.now()
        jira_keys, zendesk_ids = [], []
        for i in range(count):
            created = now - timedelta(hours=rng.randint(1, 200))
            steps = [(created + timedelta(minutes=20), "In Progress")] if rng.random() < .7 else []
            key = stack.jira.create_issue(
                f"VPN drops {i}", description="The VPN drops every hour", created=created,
                priority=rng.choice(["Highest", "High", "Medium", "Low"]), components=["network"],
                environment="Windows 11", history=steps,
                fields={"Impact scope": "office", "Steps to reproduce": "connect", "Error message": "E1",
                        "Occurred at": created - timedelta(hours=1)})
            for k in range(rng.randint(1, 5)):
                stack.jira.add_comment(key, f"update {k}", author=rng.choice(["acc-agent", "acc-customer"]),
                                       at=created + timedelta(minutes=30 + 10 * k))
            jira_keys.append(key)
            ticket_id = stack.zendesk.create_ticket(
                f"VPN drops {i}", "The VPN drops every hour", created=created,
                priority=rng.choice(["urgent", "high", "normal", "low"]),
                history=[(created + timedelta(minutes=20), "open")] if steps else [])
            for k in range(rng.randint(1, 5)):
                stack.zendesk.add_comment(ticket_id, f"update {k}", author=rng.choice([zendesk_sandbox.AGENT, zendesk_sandbox.CUSTOMER]),
                                          at=created + timedelta(minutes=30 + 10 * k))
            zendesk_ids.append(str(ticket_id))
        stack.settle()
        for key in jira_keys:
            reconcile(stack.runtime, "jira", key)
        for ticket_id in zendesk_ids:
            reconcile(stack.runtime, "zendesk", ticket_id)
        jira_adapter.parse_jira_issue = recorder("jira", jira_adapter.parse_jira_issue)
        zendesk_adapter.parse_zendesk_ticket = recorder("zendesk", zendesk_adapter.parse_zendesk_ticket)
        for key in jira_keys:
            stack.runtime.adapter("jira").fetch(key)
        for ticket_id in zendesk_ids:
            stack.runtime.adapter("zendesk").fetch(ticket_id)
    return captured


def time_parses(captured, rounds: int) -> dict[str, tuple[float, int, list[Ticket]]]:
    parse_jira_issue = first_module("connector.platforms.jira.issue", "connector.platforms.jira_issue").parse_jira_issue
    parse_zendesk_ticket = first_module("connector.platforms.zendesk.ticket",
                                        "connector.platforms.zendesk_ticket").parse_zendesk_ticket
    parsers = {"jira": parse_jira_issue, "zendesk": parse_zendesk_ticket}
    out = {}
    for platform, parser in parsers.items():
        inputs = [(args, kwargs) for p, args, kwargs in captured if p == platform]
        tickets = [parser(*args, **kwargs) for args, kwargs in inputs]
        cpu0 = time.process_time()
        for _ in range(rounds):
            for args, kwargs in inputs:
                parser(*args, **kwargs)
        out[platform] = (time.process_time() - cpu0, rounds * len(inputs), tickets)
    return out


# --- one measuring process ------------------------------------------------------------------


def worker(n: int, parse: bool = True) -> dict:
    from connector.settings import DEFAULT_CONFIG

    config = load_config(DEFAULT_CONFIG)
    sets = mixes(n, config)
    captured = capture_parse_inputs(PARSE_SEED_TICKETS) if parse else []
    for tickets in sets.values():  # warm caches (holiday tables, compiled templates)
        time_evaluations(tickets[:50], config)
    figures: dict = {"rules": len(config.rules)}
    # What the rules decided, to compare code versions: the same plans, clocks and deadlines.
    digest = hashlib.sha256()
    for tickets in sets.values():
        for ticket in tickets:
            digest.update(evaluate(ticket, NOW, config).model_dump_json().encode())
    figures["plans_digest"] = digest.hexdigest()
    for name, tickets in sets.items():
        cpu, actions = time_evaluations(tickets, config)
        figures[name] = {"tickets": len(tickets), "cpu": cpu, "actions": actions}
    if not parse:
        return figures
    rounds = max(1, n // (2 * PARSE_SEED_TICKETS))
    for platform, (cpu, count, parsed) in time_parses(captured, rounds).items():
        figures[f"parse_{platform}"] = {"tickets": count, "cpu": cpu}
        # The sandbox's own tickets after a reconcile: the real steady state, parsed then evaluated.
        figures[f"sandbox_{platform}"] = dict(zip(("cpu", "actions"), time_evaluations(parsed * rounds, config)),
                                              tickets=len(parsed) * rounds)
    return figures


def run_worker(n: int, code_root: Path | None, parse: bool) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if code_root:
        env["BENCH_CODE_ROOT"] = str(code_root)
    flags = [] if parse else ["--no-parse"]
    done = subprocess.run([sys.executable, __file__, "--worker", "--n", str(n), *flags], env=env, check=True,
                          capture_output=True, text=True, cwd=code_root or HERE)
    return json.loads(done.stdout.strip().splitlines()[-1])


def unpack(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(HERE), "archive", ref, "connector", "config", "webhooks"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into)
    return into


LABELS = [("steady", "steady state (already following the process)"),
          ("changing", "changing tickets (plan not empty)"),
          ("sandbox_jira", "sandbox Jira tickets after a reconcile, parsed"),
          ("sandbox_zendesk", "sandbox Zendesk tickets after a reconcile, parsed"),
          ("parse_jira", "parse Jira issue JSON → Ticket"),
          ("parse_zendesk", "parse Zendesk ticket + audits JSON → Ticket")]


def summarise(runs: list[dict]) -> dict[str, dict]:
    out = {}
    for key, _ in LABELS:
        if key not in runs[0]:
            continue
        per_ticket = [r[key]["cpu"] / r[key]["tickets"] for r in runs]
        out[key] = {"us": statistics.median(per_ticket) * 1e6, "tickets": runs[0][key]["tickets"],
                    "actions": runs[0][key].get("actions"), "spread": (min(per_ticket) * 1e6, max(per_ticket) * 1e6)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="generated tickets (default 3000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per code version; the median is reported")
    parser.add_argument("--baseline", metavar="REF", help="also measure the code of this git commit")
    parser.add_argument("--no-parse", action="store_true", help="evaluation only (no sandbox, no parsing)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.n, parse=not args.no_parse)))
        return
    current: list[dict] = []
    baseline: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        old_root = unpack(args.baseline, Path(tmp)) if args.baseline else None
        for _ in range(args.runs):
            current.append(run_worker(args.n, None, not args.no_parse))
            if old_root:
                baseline.append(run_worker(args.n, old_root, not args.no_parse))
    now, before = summarise(current), summarise(baseline) if baseline else None
    if baseline:
        same = {r["plans_digest"] for r in current} == {r["plans_digest"] for r in baseline}
        print(f"plans of both mixes identical to {args.baseline}'s: {'yes' if same else 'NO'}")
    print(f"rule evaluation, standard process ({current[0]['rules']} rules), one core, "
          f"median of {args.runs} runs (CPU time, time.process_time)")
    for key, label in LABELS:
        if key not in now:
            continue
        line = f"  {label}: {now[key]['tickets']} tickets"
        if now[key]["actions"] is not None:
            line += f", {now[key]['actions']} actions"
        print(line)
        fig = now[key]
        print(f"    this tree : {fig['us']:7.1f} µs/ticket = {1e6 / fig['us']:8,.0f}/s"
              f"  (runs {fig['spread'][0]:.1f}–{fig['spread'][1]:.1f} µs)")
        if before:
            old = before[key]
            print(f"    {args.baseline[:10]:10}: {old['us']:7.1f} µs/ticket = {1e6 / old['us']:8,.0f}/s"
                  f"  (runs {old['spread'][0]:.1f}–{old['spread'][1]:.1f} µs)  → {old['us'] / fig['us']:.2f}× faster")


if __name__ == "__main__":
    main()
