"""API calls per reconciled ticket (reads and writes), for a no-op and for a typical change.

Runs the real adapters over HTTP against the sandboxes and counts what the sandbox served.
Prints figures; asserts nothing. Run: .venv/bin/python bench/api_calls.py
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector.config import load_config  # noqa: E402
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


def jira_figures() -> dict[str, tuple[float, float]]:
    config = load_config(DEFAULT_CONFIG)
    with JiraSandbox(clock=Clock(FRIDAY), timezone="Asia/Shanghai", deliver_webhooks=False, validate=False) as jira:
        runtime = Runtime(settings=Settings(jira_url=jira.base_url, jira_user=jira.email, jira_token=jira.api_token),
                          config=config, clock=jira.clock.now)
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
        jira.reset_calls()
        for key in keys[1:]:
            reconcile(runtime, "jira", key)
        figures["no-op (ticket already follows the process)"] = split(jira.calls)
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
        adapter._is_cloud()  # asked once per worker process
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
    with ZendeskSandbox(clock=Clock(FRIDAY), deliver_webhooks=False) as zendesk:
        settings = Settings(zendesk_url=zendesk.base_url, zendesk_email=zendesk.email, zendesk_token=zendesk.api_token)
        runtime = Runtime(settings=settings, config=config, clock=zendesk.clock.now)
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
        zendesk.reset_calls()
        for ticket_id in ids[1:]:
            reconcile(runtime, "zendesk", ticket_id)
        figures["no-op (ticket already follows the process)"] = split(zendesk.calls)
        for ticket_id in ids[1:]:
            zendesk.set_fields(int(ticket_id), {"Environment": "Windows 11", "Error message": "E1"},
                               author=ZENDESK_CUSTOMER)
        zendesk.reset_calls()
        for ticket_id in ids[1:]:
            reconcile(runtime, "zendesk", ticket_id)
        figures["typical change (intake complete: route, due fields, transition)"] = split(zendesk.calls)
    n = TICKETS - 1
    return {name: (reads / n, writes / n) for name, (reads, writes) in figures.items()}


def main() -> None:
    print(f"API calls per reconciled ticket ({TICKETS - 1} tickets each, standard process)")
    for platform, figures in (("jira", jira_figures()), ("zendesk", zendesk_figures())):
        for name, (reads, writes) in figures.items():
            print(f"  {platform:8} {name}: {reads:.2f} reads + {writes:.2f} writes")
    print("Jira site limits (stock JSM screens, capped embedded comments and changelog)")
    for name, (reads, writes) in jira_site_figures().items():
        print(f"  jira     {name}: {reads:.2f} reads + {writes:.2f} writes")


if __name__ == "__main__":
    main()
