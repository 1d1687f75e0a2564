"""`connector demo`: the standard process, end to end, on a sandbox Jira, in under a minute.

Everything is real except Jira itself: the sandbox sends signed webhooks to the Flask
receiver, reconciles go through the durable SQLite queue and worker threads, and the worker
talks to the sandbox with the real `jira` client. Tickets are back-dated instead of waiting
for SLA deadlines. At the end the demo prints what the connector wrote on each ticket,
read back from the sandbox, and how many API calls it took.
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo
from pathlib import Path
from typing import Callable

from connector.sandbox.jira import AGENT, CONNECTOR, CUSTOMER
from connector.sandbox.server import Clock
from connector.stack import LocalStack

DEMO_START = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
INTAKE = {"Impact scope": "Shanghai office, 40 users", "Steps to reproduce": "Connect VPN, open ERP, wait 5 minutes"}


def _scenarios(stack: LocalStack) -> list[tuple[str, str, Callable[[], None] | None]]:
    """(title, issue key, follow-up human action) for each story of the standard process."""
    jira, now = stack.jira, stack.clock.now()
    stories = []

    key = jira.create_issue(
        "VPN to ERP drops every few minutes", description="The VPN connection to the ERP drops.",
        priority="Medium", components=["network"], created=now - timedelta(minutes=5),
        fields={**INTAKE, "Occurred at": now - timedelta(hours=1)})
    stories.append(("P2 reported without environment and error text → intake request; reporter completes it → routed",
                    key, lambda key=key: jira.set_fields(key, {"environment": "Windows 11, FortiClient 7.2",
                                                       "Error message": "ERR_TUNNEL_TIMEOUT (code 10060)"},
                                                 author=CUSTOMER)))

    key = jira.create_issue(
        "Checkout service down for all stores", description="POS checkout returns HTTP 502 everywhere.",
        priority="Highest", components=["outage"], created=now - timedelta(hours=13),
        environment="POS 4.2, all stores", fields={**INTAKE, "Error message": "HTTP 502 Bad Gateway",
                                                   "Occurred at": now - timedelta(hours=13, minutes=10)})
    stories.append(("P0 outage opened 13 h ago, nobody answered → breach notice, escalation to L2", key, None))

    key = jira.create_issue(
        "Reports page times out for large date ranges", description="Timeout after 60 s.", priority="Medium",
        components=["performance"], created=now - timedelta(hours=3), environment="Chrome 131",
        fields={**INTAKE, "Error message": "504 Gateway Timeout", "Occurred at": now - timedelta(hours=4)},
        history=[(now - timedelta(hours=2, minutes=50), "In Progress")])
    jira.add_comment(key, "We are looking into the report timeouts.", author=AGENT, at=now - timedelta(hours=2, minutes=50))
    stories.append(("Ticket resolved without root cause → moved back with the missing items named", key,
                    lambda key=key: jira.set_status(key, "Resolved", author=AGENT)))

    key = jira.create_issue(
        "Single sign-on fails for the Beijing tenant", description="SAML assertion rejected.", priority="High",
        components=["login"], created=now - timedelta(hours=5), environment="Okta, Chrome 131",
        fields={**INTAKE, "Error message": "SAML: InvalidSignature", "Occurred at": now - timedelta(hours=5)},
        history=[(now - timedelta(hours=4, minutes=40), "In Progress")])
    jira.add_comment(key, "Certificate rotation found; fixing.", author=AGENT, at=now - timedelta(hours=4, minutes=40))

    def close_properly(key: str = key) -> None:
        jira.set_fields(key, {"Root cause": "IdP signing certificate rotated without updating the SP",
                              "Solution": "Uploaded the new certificate to the SP", "Verification result": "Resolved"},
                        author=AGENT)
        jira.set_status(key, "Resolved", author=AGENT)
        jira.set_status(key, "Closed", author=AGENT)

    stories.append(("P1 closed with root cause, solution and verification → follow-up due in 3 business days",
                    key, close_properly))
    return stories


def _timeline(stack: LocalStack, key: str) -> list[str]:
    """What the connector wrote on one issue, read back from the sandbox."""
    issue = stack.jira.issue(key)
    names = issue.get("names", {})
    events = []
    for history in issue.get("changelog", {}).get("histories", []):
        if (history.get("author") or {}).get("accountId") != CONNECTOR:
            continue
        for item in history.get("items", []):
            field = names.get(item.get("fieldId") or "", item.get("field"))
            events.append((history["created"], f"set {field}: {item.get('fromString') or '–'} → {item.get('toString')}"))
    for comment in issue["fields"].get("comment", {}).get("comments", []):
        if (comment.get("author") or {}).get("accountId") != CONNECTOR:
            continue
        kind = "public comment" if comment.get("jsdPublic", True) else "internal note"
        body = " ".join(comment["body"].split())
        events.append((comment["created"], f"{kind}: {body[:150]}{'…' if len(body) > 150 else ''}"))
    return [f"      {created[:16].replace('T', ' ')}  {text}" for created, text in sorted(events)]


def run_demo(echo: Callable[[str], None] = print, data_dir: Path | None = None) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="connector-demo-") as tmp:
        # A fixed working Friday afternoon in Shanghai, ticking from there: the same story every run.
        clock = Clock(DEMO_START, frozen=False)
        with LocalStack(Path(data_dir or tmp), clock=clock) as stack:
            echo(f"sandbox Jira at {stack.jira.base_url}; connector receiver at {stack.receiver.base_url}/webhooks/jira")
            echo("rules: the embedded standard process (config/standard-support.yaml)\n")
            stories = _scenarios(stack)
            stack.settle()
            for _, _, action in stories:
                if action:
                    action()
            stack.settle()
            for number, (title, key, _) in enumerate(stories, 1):
                issue = stack.jira.issue(key)
                fields = issue["fields"]
                echo(f"{number}. {title}")
                echo(f"   {key} {fields['summary']} — now {fields['status']['name']}, priority "
                     f"{fields['priority']['name']}, labels {', '.join(fields.get('labels') or []) or '–'}")
                echo("\n".join(_timeline(stack, key)) or "      (nothing written)")
                echo("")
            calls = stack.jira.calls
            reads = sum(n for call, n in calls.items() if call.method == "GET")
            writes = sum(n for call, n in calls.items() if call.method != "GET")
            echo(f"API calls to Jira: {reads} reads, {writes} writes for {len(stories)} tickets "
                 f"(one read per human change; events caused by the connector's own writes are skipped)")
    echo(f"demo finished in {time.monotonic() - started:.1f} s")
    return 0
