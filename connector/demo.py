"""`connector demo`: the standard process, end to end, on a sandbox Jira, in under a minute.

Everything is real except Jira itself: the sandbox sends signed webhooks to the Flask
receiver, reconciles go through the durable SQLite queue and worker threads, and the worker
talks to the sandbox with the real `jira` client. Tickets are back-dated instead of waiting
for SLA deadlines. At the end the demo prints what the connector wrote on each ticket,
read back from the sandbox, and how many API calls it took.

`connector demo --observe` tells the same stories in observe mode: the sandboxes receive
no write at all, and the demo prints what the connector recorded instead (what
`connector observed` lists).
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
from connector.sandbox.zendesk import AGENT as ZENDESK_AGENT
from connector.sandbox.zendesk import CONNECTOR as ZENDESK_CONNECTOR
from connector.sandbox.zendesk import CUSTOMER as ZENDESK_CUSTOMER
from connector.sandbox.zendesk import GROUPS as ZENDESK_GROUPS
from connector.stack import LocalStack

TEAM_LEAD_GROUP = 360001111005
PREMIUM_ORGANIZATION = "Acme Europe"
PREMIUM_REPORTER = "qm:anna-acme-europe"
PREMIUM_STORY = ("P1 from the premium customer Acme Europe in Berlin → the premium tier's 1h first response "
                 "and due times in Berlin business hours")
DEMO_START = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
INTAKE = {"Impact scope": "Shanghai office, 40 users", "Steps to reproduce": "Connect VPN, open ERP, wait 5 minutes"}
# A data fix with its knowledge recorded but no reviewer: the review gate's story.
PREVENTION = "Certificate rotations now include the SP update in the change checklist"
# The story whose reporter rates the result once it is resolved (the P1 sign-on failure).
RATED_STORY = ("P1 resolved with root cause", "P1 solved with root cause")
CRITICAL_CHANGE = {"Root cause": "The rates import wrote last year's tax rate", "Solution": "Corrected the rates table",
                   "Verification result": "Resolved", "Knowledge base link": "https://kb.example.com/rates-import",
                   "Recurrence note": "First occurrence", "Change type": "Data fix"}


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
    stories.append(("P0 outage opened 13 h ago, nobody answered → breach notice, escalation to L2; "
                    "no L2 response within 1 h → team lead", key, None))

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
                              "Solution": "Uploaded the new certificate to the SP", "Verification result": "Resolved",
                              "Knowledge base link": "https://kb.example.com/sso-idp-certificate-rotation",
                              "Preventive measures": PREVENTION},
                        author=AGENT)
        # Resolved, not Closed: the stock workflow's Closed allows no edits (jira.issue.editable
        # = false), so the due field is written while the request is resolved.
        jira.set_status(key, "Resolved", author=AGENT)

    stories.append(("P1 resolved with root cause, solution and verification → closing summary to the reporter, "
                    "follow-up due in 3 business days", key, close_properly))

    key = jira.create_issue(
        "Invoice totals wrong after the rates import", description="Totals off by the tax rate.", priority="Medium",
        components=["billing"], created=now - timedelta(hours=4), environment="Web", assignee=AGENT,
        fields={**INTAKE, "Error message": "none", "Occurred at": now - timedelta(hours=5), **CRITICAL_CHANGE},
        history=[(now - timedelta(hours=3, minutes=50), "In Progress")])
    jira.add_comment(key, "Correcting the imported rates.", author=AGENT, at=now - timedelta(hours=3, minutes=50))
    stories.append(("Data fix resolved by its assignee with no reviewer → moved back for a second person's review",
                    key, lambda key=key: jira.set_status(key, "Resolved", author=AGENT)))

    # Per-customer service levels: Acme Europe (a Jira Service Management organization) bought
    # the premium tier, counted in Berlin business hours (calendar `europe`).
    jira.add_user(PREMIUM_REPORTER, "Anna Schmidt", "anna.schmidt@acme-europe.example", account_type="customer",
                  time_zone="Europe/Berlin")
    key = jira.create_issue(
        "Invoice export to SAP fails for the Berlin entity", description="RFC error on every export.",
        priority="High", components=["billing"], created=now - timedelta(minutes=5), environment="ERP 4.2",
        reporter=PREMIUM_REPORTER, fields={**INTAKE, "Error message": "RFC 679", "Occurred at": now - timedelta(hours=1),
                                           "Organizations": [PREMIUM_ORGANIZATION]})
    stories.append((PREMIUM_STORY, key, None))
    return stories


def _zendesk_scenarios(stack: LocalStack) -> list[tuple[str, str, Callable[[], None] | None]]:
    """The same stories on the sandbox Zendesk, told in Zendesk's own terms."""
    zendesk, now = stack.zendesk, stack.clock.now()
    intake = {"Impact scope": INTAKE["Impact scope"], "Steps to reproduce": INTAKE["Steps to reproduce"],
              "Occurred at": now.date().isoformat()}
    stories = []
    ticket_id = zendesk.create_ticket(
        "VPN to ERP drops every few minutes", "The VPN connection to the ERP drops.", priority="normal",
        created=now - timedelta(minutes=5), custom_fields={**intake, "Category": "network"})
    stories.append(("P2 reported without environment and error text → intake request; reporter completes it → routed",
                    ticket_id, lambda t=ticket_id: zendesk.set_fields(
                        t, {"Environment": "Windows 11, FortiClient 7.2", "Error message": "ERR_TUNNEL_TIMEOUT"},
                        author=ZENDESK_CUSTOMER)))
    ticket_id = zendesk.create_ticket(
        "Checkout service down for all stores", "POS checkout returns HTTP 502 everywhere.", priority="urgent",
        created=now - timedelta(hours=13), custom_fields={**intake, "Category": "outage", "Environment": "POS 4.2",
                                                          "Error message": "HTTP 502 Bad Gateway"})
    stories.append(("P0 outage opened 13 h ago, nobody answered → breach notice, escalation to L2; "
                    "no L2 response within 1 h → team lead", ticket_id, None))
    ticket_id = zendesk.create_ticket(
        "Reports page times out for large date ranges", "Timeout after 60 s.", priority="normal", group="L1",
        created=now - timedelta(hours=3), history=[(now - timedelta(hours=2, minutes=50), "open")],
        custom_fields={**intake, "Category": "performance", "Environment": "Chrome 131",
                       "Error message": "504 Gateway Timeout"})
    zendesk.add_comment(ticket_id, "We are looking into the report timeouts.", author=ZENDESK_AGENT,
                        at=now - timedelta(hours=2, minutes=50))
    stories.append(("Ticket solved without root cause → reopened with the missing items named", ticket_id,
                    lambda t=ticket_id: zendesk.set_status(t, "solved", author=ZENDESK_AGENT)))
    # This reporter's Zendesk profile is in Chinese (user `locale`): the closing summary is too.
    reporter = zendesk.add_user("Li Lei", "lilei@customer.example", locale="zh-CN")
    ticket_id = zendesk.create_ticket(
        "Single sign-on fails for the Beijing tenant", "SAML assertion rejected.", priority="high", group="L1",
        requester=reporter,
        created=now - timedelta(hours=5), history=[(now - timedelta(hours=4, minutes=40), "open")],
        custom_fields={**intake, "Category": "login", "Environment": "Okta, Chrome 131",
                       "Error message": "SAML: InvalidSignature"})
    zendesk.add_comment(ticket_id, "Certificate rotation found; fixing.", author=ZENDESK_AGENT,
                        at=now - timedelta(hours=4, minutes=40))

    def solve_properly(ticket_id: str = ticket_id) -> None:
        zendesk.set_fields(ticket_id, {"Root cause": "IdP signing certificate rotated without updating the SP",
                                       "Solution": "Uploaded the new certificate to the SP",
                                       "Verification result": "resolved",
                                       "Knowledge base link": "https://kb.example.com/sso-idp-certificate-rotation",
                                       "Preventive measures": PREVENTION},
                           author=ZENDESK_AGENT)
        zendesk.set_status(ticket_id, "solved", author=ZENDESK_AGENT)

    stories.append(("P1 solved with root cause, solution and verification → closing summary to the reporter "
                    "in Chinese (her locale), follow-up due in 3 business days", ticket_id, solve_properly))
    ticket_id = zendesk.create_ticket(
        "Invoice totals wrong after the rates import", "Totals off by the tax rate.", priority="normal", group="L1",
        assignee=ZENDESK_AGENT, created=now - timedelta(hours=4),
        history=[(now - timedelta(hours=3, minutes=50), "open")],
        custom_fields={**intake, "Category": "billing", "Environment": "Web", "Error message": "none",
                       **CRITICAL_CHANGE, "Verification result": "resolved", "Change type": "data_fix"})
    zendesk.add_comment(ticket_id, "Correcting the imported rates.", author=ZENDESK_AGENT,
                        at=now - timedelta(hours=3, minutes=50))
    stories.append(("Data fix solved by its assignee with no reviewer → reopened for a second person's review",
                    ticket_id, lambda t=ticket_id: zendesk.set_status(t, "solved", author=ZENDESK_AGENT)))

    anna = zendesk.add_user("Anna Schmidt", "anna.schmidt@acme-europe.example", organization=PREMIUM_ORGANIZATION,
                            time_zone="Europe/Berlin")
    ticket_id = zendesk.create_ticket(
        "Invoice export to SAP fails for the Berlin entity", "RFC error on every export.", priority="high",
        requester=anna, created=now - timedelta(minutes=5),
        custom_fields={**intake, "Category": "billing", "Environment": "ERP 4.2", "Error message": "RFC 679"})
    stories.append((PREMIUM_STORY, ticket_id, None))
    return stories


def _tier_lines(stack: LocalStack, platform: str, ticket_id: str) -> list[str]:
    """The premium story's targets and due times, in the tier calendar's zone (Europe/Berlin)."""
    from connector.rules.tiers import sla_rules

    rule = next(r for r in sla_rules(stack.runtime.config) if PREMIUM_ORGANIZATION in r.when.organizations)
    calendar = stack.runtime.config.calendar(rule.calendar)
    targets = rule.targets["P1"]
    lines = [f"      tier {rule.tier_name} (rule {rule.id}), calendar {rule.calendar} ({calendar.tz}): P1 first response "
             f"{targets.first_response.within}, resolution {targets.resolution.within}"]
    if platform == "jira":
        fields = stack.jira.issue(ticket_id)["fields"]
        for label in ("First response due", "Resolution due"):
            value = fields.get(stack.jira.store.field_by_name_or_id(label).id)
            if value:
                lines.append(f"      {label}: {datetime.fromisoformat(value).astimezone(calendar.tz):%a %Y-%m-%d %H:%M %Z}")
    # The deadline index names a Jira issue by its id or key, a Zendesk ticket by its id.
    refs = {str(ticket_id), str(stack.jira.issue(ticket_id)["id"])} if platform == "jira" else {str(ticket_id)}
    timer = next((t.due for t in stack.queue.deadlines.armed(platform) if t.ticket_id in refs), None)
    if timer:
        lines.append(f"      next SLA timer (75% warning): {timer.astimezone(calendar.tz):%a %Y-%m-%d %H:%M %Z}")
    return lines


def _zendesk_timeline(stack: LocalStack, ticket_id) -> list[str]:
    """What the connector wrote on one Zendesk ticket, read back from its audits."""
    fields = {f["id"]: f["title"] for f in stack.zendesk.store.field_catalogue()}
    group_names = {str(group_id): name for name, group_id in ZENDESK_GROUPS.items()}
    group_names[str(TEAM_LEAD_GROUP)] = "team-lead"
    lines = []
    for audit in stack.zendesk.audits(ticket_id):
        if audit["author_id"] != ZENDESK_CONNECTOR:
            continue
        created = datetime.fromisoformat(audit["created_at"].replace("Z", "+00:00"))
        when = f"{created.astimezone(DEMO_START.tzinfo):%Y-%m-%d %H:%M}"
        for event in audit["events"]:
            if event["type"] == "Comment":
                kind = "public comment" if event["public"] else "internal note"
                body = " ".join(event["body"].split())
                lines.append(f"      {when}  {kind}: {body[:150]}{'…' if len(body) > 150 else ''}")
            elif event["type"] == "Change":
                name = fields.get(event.get("field_name"), event.get("field_name"))
                if str(name).isdigit():
                    name = fields.get(int(name), name)
                before, after = event.get("previous_value"), event.get("value")
                if name == "group_id":
                    name, before, after = "group", group_names.get(str(before), before), group_names.get(str(after), after)
                lines.append(f"      {when}  set {name}: {before or '–'} → {after}")
    return lines


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


def _rate_and_read_back(stack: LocalStack, jira_stories, zendesk_stories) -> list[str]:
    """The reporters of the resolved P1 stories rate the result in the platform's own survey
    (a JSM request-feedback rating, Zendesk's CSAT "good"); the connector reads it back on
    the process's scale, as the review report counts it."""
    [jira_key] = [ref for title, ref, _ in jira_stories if title.startswith(RATED_STORY)]
    [zendesk_id] = [ref for title, ref, _ in zendesk_stories if title.startswith(RATED_STORY)]
    stack.jira.give_feedback(jira_key, 4, comment="Works again, thanks")
    stack.zendesk.rate(zendesk_id, "good", comment="很快，谢谢")
    stack.settle()
    jira_level = stack.runtime.adapter("jira").fetch(jira_key).satisfaction
    zendesk_level = stack.runtime.adapter("zendesk").fetch(str(zendesk_id)).satisfaction
    return [f"Satisfaction read back: Jira {jira_key} rated 4 of 5 (request feedback) → {jira_level}; "
            f"Zendesk #{zendesk_id} rated good (CSAT) → {zendesk_level}"]


def _as_it_stood(stack: LocalStack, jira_stories) -> list[str]:
    """`connector simulate --now` in the past: the resolved P1 issue's clocks as they stood an
    hour before it was resolved (running, the plan of that moment) next to today's (met) –
    the history after that instant is cut before the clocks are built."""
    from connector.simulation import evaluate_at
    from connector.timefmt import format_minutes

    [key] = [ref for title, ref, _ in jira_stories if title.startswith(RATED_STORY)]
    ticket = stack.runtime.adapter("jira").fetch(key)
    lines = [f"=== {key} as it stood an hour before it was resolved (`connector simulate --now`) and now"]
    for label, instant in (("14:00", DEMO_START - timedelta(hours=1)), ("now  ", stack.clock.now())):
        view, plan = evaluate_at(ticket, instant, stack.config)
        clocks = "; ".join(f"{metric} {clock.state} {format_minutes(clock.elapsed_minutes)} of "
                           f"{format_minutes(clock.target_minutes)}" for metric, clock in plan.sla.items())
        lines.append(f"   {label}  status {view.status.value}: {clocks}")
    return lines + [""]


def _tell(echo, stories, describe, timeline) -> None:
    for number, (title, ref, _) in enumerate(stories, 1):
        echo(f"{number}. {title}")
        echo(f"   {describe(ref)}")
        echo("\n".join(timeline(ref)) or "      (nothing written)")
        echo("")


def _calls(sandbox) -> tuple[int, int]:
    calls = sandbox.calls
    reads = sum(n for call, n in calls.items() if call.method == "GET")
    return reads, sum(n for call, n in calls.items() if call.method != "GET")


def _tell_observed(echo, stack: LocalStack, platform: str) -> None:
    from connector.observe.present import as_text

    echo(as_text(stack.queue.observations.latest(platform=platform, limit=None)))
    echo("")


def _route_to_team_chat(stack: LocalStack) -> None:
    """What an admin adds to the rule file: a DingTalk robot with "加签" (its URL and secret in
    CHAT_DINGTALK_URL / CHAT_DINGTALK_SECRET, which the stack sets for its chat stand-in) and
    the P0/P1 breach notices and escalations routed to it."""
    from connector.channels.config import ChannelConfig
    from connector.rules.notices import ChatRoute

    stack.config.channels["ops-chat"] = ChannelConfig(preset="dingtalk", url_env="CHAT_DINGTALK_URL",
                                                      secret_env="CHAT_DINGTALK_SECRET", format="markdown",
                                                      title="Support escalation")
    route = ChatRoute(to=["ops-chat"], priorities=["P0", "P1"])
    for rule in stack.config.rules:
        if rule.type == "sla" and rule.notify.breach:
            rule.notify.breach.channels = route
        if rule.type == "escalation":
            for level in rule.levels:
                if level.comment:
                    level.comment.channels = route


def _tell_chat(echo, stack: LocalStack) -> None:
    assert stack.chat is not None
    messages = stack.chat.received()
    echo(f"=== Team chat (DingTalk group 'ops-chat': {len(messages)} messages, each signed and verified)")
    for message in messages:
        echo(f"   [{message.at.astimezone(DEMO_START.tzinfo):%H:%M}] " + message.text.replace("\n", "\n            "))
    if not messages:
        echo("   (nothing sent)")
    echo("")


def run_demo(echo: Callable[[str], None] = print, data_dir: Path | None = None, *, observe: bool = False) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="connector-demo-") as tmp:
        # A fixed working Friday afternoon in Shanghai, ticking from there: the same story every run.
        clock = Clock(DEMO_START, frozen=False)
        mode = "observe" if observe else "enforce"
        stack = LocalStack(Path(data_dir or tmp), clock=clock, zendesk=True, mode=mode, chat=True)
        _route_to_team_chat(stack)
        # The problem-number rule ships switched off (a site needs the "Problem number" field
        # first); both sandboxes have that field, so the demo switches it on before starting.
        for rule in stack.config.rules:
            if rule.type == "problem-number":
                rule.enabled = True
        with stack:
            # The last escalation step's group, as an admin creates and maps it on Zendesk.
            stack.zendesk.add_group("team-lead", group_id=TEAM_LEAD_GROUP)
            stack.config.platforms.zendesk.groups["team-lead"] = str(TEAM_LEAD_GROUP)
            echo(f"sandbox Jira at {stack.jira.base_url}, sandbox Zendesk at {stack.zendesk.base_url}; "
                 f"connector receiver at {stack.receiver.base_url}")
            echo("rules: the embedded standard process (config/standard-support.yaml), the same file for both, "
                 "with problem numbers switched on and P0/P1 breach notices and escalations also sent to a "
                 "DingTalk group (signed robot, the chat stand-in)"
                 + ("; OBSERVE MODE: nothing is written, every planned action is recorded\n" if observe else "\n"))
            jira_stories, zendesk_stories = _scenarios(stack), _zendesk_scenarios(stack)
            stack.settle()
            for _, _, action in jira_stories + zendesk_stories:
                if action:
                    action()
            stack.settle()
            # An hour later nobody from L2 has answered the escalated P0 outage: the escalation
            # response clock (1 business hour) is breached and the team lead takes over.
            stack.clock.advance(timedelta(minutes=61))
            if stack.pump():
                stack.settle()
            ratings = _rate_and_read_back(stack, jira_stories, zendesk_stories)
            as_it_stood = [] if observe else _as_it_stood(stack, jira_stories)

            def describe_issue(key: str) -> str:
                fields = stack.jira.issue(key)["fields"]
                return (f"{key} {fields['summary']} — now {fields['status']['name']}, priority "
                        f"{fields['priority']['name']}, labels {', '.join(fields.get('labels') or []) or '–'}")

            def describe_ticket(ticket_id) -> str:
                ticket = stack.zendesk.ticket(ticket_id)
                return (f"#{ticket_id} {ticket['subject']} — now {ticket['status']}, priority {ticket['priority']}, "
                        f"tags {', '.join(t for t in ticket['tags'] if t.startswith('spc-')) or '–'}")

            echo("=== Jira")
            _tell(echo, jira_stories, describe_issue, lambda key: _timeline(stack, key)
                  + (_tier_lines(stack, "jira", key) if key == jira_stories[-1][1] and not observe else []))
            echo("=== Zendesk")
            _tell(echo, zendesk_stories, describe_ticket, lambda ticket_id: _zendesk_timeline(stack, ticket_id)
                  + (_tier_lines(stack, "zendesk", ticket_id) if ticket_id == zendesk_stories[-1][1] and not observe
                     else []))
            for line in ratings:
                echo(line)
            echo("")
            for line in as_it_stood:
                echo(line)
            _tell_chat(echo, stack)
            if observe:
                for platform in ("jira", "zendesk"):
                    echo(f"=== Observed on {platform} (`connector observed --platform {platform}`)")
                    _tell_observed(echo, stack, platform)
            for name, sandbox in (("Jira", stack.jira), ("Zendesk", stack.zendesk)):
                reads, writes = _calls(sandbox)
                echo(f"API calls to {name}: {reads} reads, {writes} writes for {len(jira_stories)} tickets")
            echo("(reads follow human changes; events caused by the connector's own writes are skipped)")
    echo(f"demo finished in {time.monotonic() - started:.1f} s")
    return 0
