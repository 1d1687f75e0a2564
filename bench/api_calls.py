"""API calls per reconciled ticket (reads and writes), for a no-op and for a typical change.

Runs the real adapters over HTTP against the sandboxes and counts what the sandbox served.
Prints figures; asserts nothing. Run: .venv/bin/python bench/api_calls.py

No-ops are shown both ways: the first reconcile of an unchanged ticket (nothing recorded for
it in the deadline index, or our own write just changed it: the whole ticket is read and
evaluated) and a repeated one (a redelivered webhook after that: the ticket is settled at the
stamp it shows, and on Zendesk the audits are not read). A write never settles a ticket: on
Zendesk its stamp is shared by a comment made in the same second. The last section counts, over the demo and
a fault scenario (every ticket's event delivered again while humans edit), how many
reconciles stopped after the ticket read (`connector_reconciles_total{outcome="unchanged"}`).
"""

from __future__ import annotations

import random
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector.config import load_config  # noqa: E402
from connector.metrics import RECONCILES  # noqa: E402
from connector.queue.reconcile_queue import ReconcileQueue  # noqa: E402
from connector.reconcile import Runtime, reconcile  # noqa: E402
from connector.sandbox.jira import CUSTOMER, JiraSandbox  # noqa: E402
from connector.sandbox.server import Clock  # noqa: E402
from connector.sandbox.zendesk import CUSTOMER as ZENDESK_CUSTOMER  # noqa: E402
from connector.sandbox.zendesk import GROUPS as ZENDESK_GROUPS  # noqa: E402
from connector.sandbox.zendesk import ZendeskSandbox  # noqa: E402
from connector.settings import DEFAULT_CONFIG, Settings  # noqa: E402

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
TICKETS = 50


def split(calls) -> tuple[int, int]:
    reads = sum(n for call, n in calls.items() if call.method == "GET")
    return reads, sum(n for call, n in calls.items() if call.method != "GET")


def indexed(runtime: Runtime, data_dir: Path) -> Runtime:
    """`runtime` with a deadline index of its own (what a worker has), empty at first."""
    index = ReconcileQueue.from_settings(Settings(data_dir=data_dir)).deadlines
    runtime.schedule, runtime.lookup = index.record, index.entry
    return runtime


def jira_figures() -> dict[str, tuple[float, float]]:
    config = load_config(DEFAULT_CONFIG)
    with JiraSandbox(clock=Clock(FRIDAY), timezone="Asia/Shanghai", deliver_webhooks=False, validate=False) as jira, \
            tempfile.TemporaryDirectory() as tmp:
        runtime = indexed(Runtime(settings=Settings(jira_url=jira.base_url, jira_user=jira.email,
                                                    jira_token=jira.api_token),
                                  config=config, clock=jira.clock.now), Path(tmp))
        keys = [jira.create_issue(f"VPN drops {i}", description="drops", components=["network"],
                                  created=FRIDAY - timedelta(minutes=5),
                                  fields={"Impact scope": "office", "Steps to reproduce": "connect",
                                          "Occurred at": FRIDAY - timedelta(hours=1)}) for i in range(TICKETS)]
        reconcile(runtime, "jira", keys[0])  # warm the field catalogue (read once per worker process)
        figures = {}
        jira.reset_calls()
        for key in keys[1:]:
            reconcile(runtime, "jira", key)  # intake request: comment + marker + transition
        figures["typical change (intake request: comment, marker label, transition)"] = split(jira.calls)
        jira.clock.advance(timedelta(seconds=1))  # a read a stamp tick after the change can settle it
        jira.reset_calls()
        for key in keys[1:]:
            reconcile(runtime, "jira", key)
        figures["no-op, first reconcile of an unchanged ticket (read, evaluated)"] = split(jira.calls)
        jira.reset_calls()
        for key in keys[1:]:
            reconcile(runtime, "jira", key)
        figures["no-op, repeated (settled: read, evaluation skipped)"] = split(jira.calls)
        jira.clock.advance(timedelta(seconds=1))
        for key in keys[1:]:
            jira.set_fields(key, {"environment": "Windows 11", "Error message": "E1"}, author=CUSTOMER)
        jira.reset_calls()
        for key in keys[1:]:
            reconcile(runtime, "jira", key)  # intake complete: transition, marker, routing, SLA due fields
        figures["typical change (intake complete: route, due fields, transition)"] = split(jira.calls)
    n = TICKETS - 1
    return {name: (reads / n, writes / n) for name, (reads, writes) in figures.items()}


def jira_site_figures() -> dict[str, tuple[float, float]]:
    """What a real site's limits cost: a transition screen's required fields, long tickets."""
    from connector.sandbox.jira import AGENT  # noqa: PLC0415
    from connector.stack import LocalStack  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    complete = {"Impact scope": "office", "Steps to reproduce": "connect", "Error message": "E1",
                "Occurred at": FRIDAY - timedelta(days=6), "Root cause": "cert", "Solution": "renewed",
                "Verification result": "Resolved", "Knowledge base link": "https://kb.example.com/printer",
                "Recurrence note": "same cause as before"}
    figures: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as data, LocalStack(Path(data), clock=Clock(FRIDAY), validate=False) as stack:
        jira = stack.jira
        jira.webhooks.enabled = False
        runtime = stack.runtime
        resolved = [jira.create_issue(f"Printer {i}", description="jams", components=["hardware"], environment="HP",
                                      created=FRIDAY - timedelta(days=6), fields=complete,
                                      history=[(FRIDAY - timedelta(days=5, hours=23), "In Progress"),
                                               (FRIDAY - timedelta(days=5), "Resolved")]) for i in range(TICKETS)]
        reconcile(runtime, "jira", resolved[0])  # warm the field catalogue
        jira.reset_calls()
        for key in resolved[1:]:
            reconcile(runtime, "jira", key)  # auto-close: comment + marker, Close transition
        reads, writes = split(jira.calls)
        figures["auto-close on stock JSM (comment, marker, transition; screen read with the issue)"] = (
            reads / (TICKETS - 1), writes / (TICKETS - 1))

        long_keys = []
        for i in range(5):
            key = jira.create_issue(f"Long {i}", description="d", components=["network"], environment="Linux",
                                    created=FRIDAY - timedelta(days=3), fields=complete,
                                    history=[(FRIDAY - timedelta(days=3) + timedelta(minutes=m), "In Progress"
                                              if m % 2 else "Waiting for customer") for m in range(1, 121)])
            for n in range(150):
                jira.add_comment(key, f"update {n}", author=AGENT, at=FRIDAY - timedelta(days=2) + timedelta(minutes=n))
            long_keys.append(key)
        adapter = runtime.adapter("jira")
        adapter.is_cloud()  # asked once per worker process
        jira.reset_calls()
        for key in long_keys:
            adapter.fetch(key)
        reads, writes = split(jira.calls)
        figures["read of a long ticket (150 comments, 120 changelog entries)"] = (reads / 5, writes / 5)

        short = [jira.create_issue(f"Quiet {i}", description="d", components=["network"], environment="Linux",
                                   priority="Low", created=FRIDAY - timedelta(hours=3), fields=complete,
                                   history=[(FRIDAY - timedelta(hours=2), "In Progress")]) for i in range(95)]
        for key in short:
            jira.add_comment(key, "On it", author=AGENT, at=FRIDAY - timedelta(hours=2))
        for key in [*short, *long_keys]:  # the steady state the rules leave tickets in
            while reconcile(runtime, "jira", key).result.writes:
                pass
        jira.clock.advance(timedelta(minutes=1))
        for key in long_keys:  # changed since their last reconcile: the sweep must evaluate them
            jira.add_comment(key, "Any news?", at=jira.clock.now())
        jira.reset_calls()
        report = stack.sweeper().run("jira", "full")
        reads, writes = split(jira.calls)
        bulk = sum(n for call, n in jira.calls.items() if call.path.endswith("/changelog/bulkfetch"))
        figures[f"full sweep of {report.tickets} tickets, {report.completed} cut short and changed "
                f"(per sweep; writes = {bulk} bulk changelog POST, a read)"] = (reads, writes)
    return figures


def zendesk_figures() -> dict[str, tuple[float, float]]:
    config = load_config(DEFAULT_CONFIG)
    config.platforms.zendesk.groups = {name: str(group_id) for name, group_id in ZENDESK_GROUPS.items()}
    with ZendeskSandbox(clock=Clock(FRIDAY), deliver_webhooks=False) as zendesk, \
            tempfile.TemporaryDirectory() as tmp:
        settings = Settings(zendesk_url=zendesk.base_url, zendesk_email=zendesk.email, zendesk_token=zendesk.api_token)
        runtime = indexed(Runtime(settings=settings, config=config, clock=zendesk.clock.now), Path(tmp) / "a")
        ids = [str(zendesk.create_ticket(f"VPN drops {i}", "drops", created=FRIDAY - timedelta(minutes=5),
                                         custom_fields={"Category": "network", "Impact scope": "office",
                                                        "Steps to reproduce": "connect", "Occurred at": "2026-11-20"}))
               for i in range(TICKETS)]
        reconcile(runtime, "zendesk", ids[0])  # warm the ticket-field catalogue (read once per worker process)
        figures = {}
        zendesk.reset_calls()
        for ticket_id in ids[1:]:
            reconcile(runtime, "zendesk", ticket_id)
        figures["typical change (intake request: comment, marker label, transition)"] = split(zendesk.calls)
        zendesk.clock.advance(timedelta(seconds=1))  # the webhook arrives after the write's second
        zendesk.reset_calls()
        for ticket_id in ids[1:]:
            reconcile(runtime, "zendesk", ticket_id)
        figures["no-op, the event our own write caused (a whole read, which settles it)"] = split(zendesk.calls)
        zendesk.reset_calls()
        for ticket_id in ids[1:]:
            reconcile(runtime, "zendesk", ticket_id)
        figures["no-op, repeated (a redelivery)"] = split(zendesk.calls)
        # Another worker's view with nothing recorded (a new install, a lost index).
        fresh = indexed(Runtime(settings=settings, config=config, clock=zendesk.clock.now), Path(tmp) / "b")
        reconcile(fresh, "zendesk", ids[0])
        zendesk.clock.advance(timedelta(seconds=1))  # a read a stamp tick after the last change can settle
        zendesk.reset_calls()
        for ticket_id in ids[1:]:
            reconcile(fresh, "zendesk", ticket_id)
        figures["no-op, first reconcile of an unchanged ticket (ticket + audits, evaluated)"] = split(zendesk.calls)
        zendesk.reset_calls()
        for ticket_id in ids[1:]:
            reconcile(fresh, "zendesk", ticket_id)
        figures["no-op, repeated after that (settled)"] = split(zendesk.calls)
        zendesk.clock.advance(timedelta(seconds=1))
        for ticket_id in ids[1:]:
            zendesk.set_fields(int(ticket_id), {"Environment": "Windows 11", "Error message": "E1"},
                               author=ZENDESK_CUSTOMER)
        zendesk.reset_calls()
        for ticket_id in ids[1:]:
            reconcile(runtime, "zendesk", ticket_id)
        figures["typical change (intake complete: route, due fields, transition)"] = split(zendesk.calls)
    n = TICKETS - 1
    return {name: (reads / n, writes / n) for name, (reads, writes) in figures.items()}


def reconcile_counts(platform: str) -> dict[str, float]:
    return {sample.labels["outcome"]: sample.value for metric in RECONCILES.collect() for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels.get("platform") == platform}


def counted(run) -> dict[str, dict[str, int]]:
    """Reconciles by platform and outcome while `run()` runs (from the process's metrics)."""
    before = {p: reconcile_counts(p) for p in ("jira", "zendesk")}
    run()
    return {p: {o: int(n - before[p].get(o, 0)) for o, n in reconcile_counts(p).items() if n - before[p].get(o, 0)}
            for p in ("jira", "zendesk")}


def demo() -> None:
    from connector.demo import run_demo  # noqa: PLC0415

    run_demo(echo=lambda *_: None)


def redeliveries_with_humans() -> None:
    """Zendesk tickets through the whole pipeline (webhooks, receiver, queue, workers), real
    time; then every ticket's event arrives again (a retried delivery the receiver could not
    recognise) while agents edit a third of them at the same time."""
    from connector.sandbox.zendesk import AGENT as ZENDESK_AGENT  # noqa: PLC0415
    from connector.stack import LocalStack  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp, \
            LocalStack(Path(tmp), clock=Clock(FRIDAY, frozen=False), zendesk=True, validate=False) as stack:
        zendesk = stack.zendesk
        ids = [zendesk.create_ticket(f"VPN drops {i}", "drops", created=FRIDAY - timedelta(minutes=5),
                                     custom_fields={"Category": "network", "Impact scope": "office",
                                                    "Steps to reproduce": "connect", "Occurred at": "2026-11-20"})
               for i in range(TICKETS)]
        stack.settle(timeout=120)
        time.sleep(1.1)  # Zendesk stamps are whole seconds
        rng = random.Random(4)
        edited = rng.sample(ids, len(ids) // 3)

        def agents() -> None:
            for ticket_id in edited:
                zendesk.set_fields(ticket_id, {"additional_tags": [f"agent-{ticket_id}"]}, author=ZENDESK_AGENT)

        humans = threading.Thread(target=agents)
        humans.start()
        for ticket_id in rng.sample(ids, len(ids)):
            stack.queue.enqueue_reconcile("zendesk", str(ticket_id))
        humans.join()
        stack.settle(timeout=120)


def main() -> None:
    print(f"API calls per reconciled ticket ({TICKETS - 1} tickets each, standard process)")
    for platform, figures in (("jira", jira_figures()), ("zendesk", zendesk_figures())):
        for name, (reads, writes) in figures.items():
            print(f"  {platform:8} {name}: {reads:.2f} reads + {writes:.2f} writes")
    print("Jira site limits (stock JSM screens, capped embedded comments and changelog)")
    for name, (reads, writes) in jira_site_figures().items():
        print(f"  jira     {name}: {reads:.2f} reads + {writes:.2f} writes")
    print("Reconciles that stopped after the ticket read (settled: same stamp, same config, before the next "
          "deadline) / all reconciles")
    for scenario, run in (("demo (connector demo, real time)", demo),
                          (f"{TICKETS} Zendesk tickets, every event again, agents editing a third", 
                           redeliveries_with_humans)):
        for platform, outcomes in counted(run).items():
            total = sum(outcomes.values())
            if total:
                print(f"  {platform:8} {scenario}: {outcomes.get('unchanged', 0)} / {total} "
                      f"({', '.join(f'{o} {n}' for o, n in sorted(outcomes.items()))})")


if __name__ == "__main__":
    main()
