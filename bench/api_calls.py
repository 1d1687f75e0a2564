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


if __name__ == "__main__":
    main()
