"""Build docs/example-report.html and docs/example-report.md from demo-like tickets.

The bundled example must be what `connector report` really prints, not a mock-up: so the
tickets are seeded (back-dated) in the sandbox Jira, read back through the real Jira adapter
over HTTP, measured and rendered by the same code as the command. The data are generated
from a fixed seed, so re-running the script gives the same files (commit them together
with any change to the report's layout):

    .venv/bin/python docs/make_example_report.py

Two weeks of a support desk in Shanghai (2026-11-09 .. 11-22) and the two weeks before:
English and Chinese summaries, a few problems that keep coming back, waits for customers,
reopens, ratings, SLA breaches and a backlog of open tickets.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from connector.config import load_config
from connector.reconcile import build_adapter
from connector.review.command import make_report, review_period
from connector.sandbox.jira import CUSTOMER, JiraSandbox
from connector.sandbox.server import Clock
from connector.settings import DEFAULT_CONFIG, Settings

DOCS = Path(__file__).resolve().parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
FIRST_DAY, END_DAY = date(2026, 11, 9), date(2026, 11, 23)
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI)  # the Wednesday after: the review meeting
SEED = 20261123

PRIORITY_NAMES = {"P0": "Highest", "P1": "High", "P2": "Medium", "P3": "Low"}
AGENTS = ["acc-agent", "acc-bob", "acc-li"]
GROUPS = {"network": "network-team", "outage": "L2", "billing": "billing"}


@dataclass(frozen=True)
class Problem:
    category: str
    priority: str
    summaries: tuple[str, ...]  # variants of how reporters describe it
    weight: int  # how often it is reported


PROBLEMS = (
    Problem("network", "P2", ("VPN drops every few minutes", "VPN drops every few minutes at the Beijing office",
                              "VPN connection drops every few minutes"), 6),
    Problem("network", "P1", ("Wi-Fi unreachable on the 3rd floor",), 2),
    Problem("login", "P1", ("SSO login fails with SAML error", "SSO login fails for new employees"), 3),
    Problem("login", "P3", ("Password reset email arrives late",), 2),
    Problem("billing", "P2", ("发票无法下载", "发票无法下载，提示错误", "发票金额与订单不一致"), 4),
    Problem("performance", "P2", ("Monthly report page times out", "报表页面加载很慢"), 3),
    Problem("outage", "P0", ("Checkout service down for all stores", "支付服务中断"), 1),
    Problem("mobile", "P3", ("How do I export invoices from the mobile app?", "Dark mode request for the mobile app",
                             "手机App推送通知收不到"), 3),
)

# Problems reported once: most of a desk's work is not a repeat.
ONE_OFFS = (
    ("network", "P2", "Printer in meeting room B is offline"), ("login", "P2", "Outlook asks for the password again"),
    ("performance", "P1", "数据库备份任务失败"), ("billing", "P3", "Where is the contract renewal form?"),
    ("mobile", "P2", "Android app crashes on start after update 5.2"), ("network", "P1", "Shared drive access denied"),
    ("performance", "P2", "CSV import rejects dates in DD/MM format"), ("login", "P3", "Two-factor code not accepted"),
    ("billing", "P2", "License key expired before the renewal date"), ("network", "P3", "邮件发送到外部域失败"),
    ("performance", "P2", "Webhook to the ERP returns 401"), ("mobile", "P3", "iPad layout cuts off the order table"),
    ("billing", "P1", "Duplicate charge on the November invoice"), ("login", "P2", "账号被锁定后无法解锁"),
    ("network", "P2", "Video calls stutter in the Shenzhen office"), ("performance", "P3", "Search ignores Chinese names"),
    ("mobile", "P2", "Barcode scanner not recognised by the app"), ("billing", "P3", "Change the invoice title"),
    ("network", "P2", "DNS resolution slow for the intranet"), ("login", "P1", "New hires cannot reach the HR portal"),
    ("performance", "P2", "Dashboard widgets show yesterday's data"), ("mobile", "P3", "App language stays English"),
    ("network", "P1", "Branch office firewall blocks the POS updates"), ("billing", "P2", "税号校验失败"),
    ("performance", "P2", "Nightly sync job runs past 8 am"), ("login", "P3", "Profile photo upload fails"),
    ("network", "P3", "Guest Wi-Fi portal page does not load"), ("mobile", "P2", "Offline mode loses unsent orders"),
    ("billing", "P2", "Credit note missing for the returned order"), ("performance", "P1", "Order export hangs at 99%"),
)
ONE_OFF_SHARE = 0.25

# Minutes (business time) to the first reply and to the fix, by priority: (typical, spread).
REPLY = {"P0": (15, 15), "P1": (70, 80), "P2": (150, 160), "P3": (300, 330)}
FIX = {"P0": (240, 200), "P1": (300, 240), "P2": (700, 800), "P3": (1200, 1100)}


def _business_instant(calendar, start: datetime, minutes: float) -> datetime:
    return calendar.add_business_minutes(start, max(1.0, minutes))


def seed(jira: JiraSandbox, calendar, rng: random.Random) -> int:
    """Tickets from four weeks before the period's end, plus a small old backlog; returns how many."""
    for account, name in (("acc-bob", "Bob Engineer"), ("acc-li", "Li Wei")):
        jira.add_user(account, name, f"{account[4:]}@example.com")
    weights = [p.weight for p in PROBLEMS]
    one_offs = list(ONE_OFFS)
    rng.shuffle(one_offs)
    start = datetime.combine(FIRST_DAY - timedelta(days=14), datetime.min.time(), SHANGHAI)
    end = datetime.combine(END_DAY, datetime.min.time(), SHANGHAI)
    created_count = 0
    moment = calendar.add_business_minutes(start, 30)
    while moment < end:
        if one_offs and rng.random() < ONE_OFF_SHARE:
            category, priority, summary = one_offs.pop()
            problem = Problem(category, priority, (summary,), 1)
        else:
            problem = rng.choices(PROBLEMS, weights)[0]
        # The earlier two weeks were busier and slower: the trend has something to show.
        earlier = moment < datetime.combine(FIRST_DAY, datetime.min.time(), SHANGHAI)
        slow = 1.3 if earlier else 1.0
        _ticket(jira, calendar, rng, problem, moment, slow)
        created_count += 1
        moment = _business_instant(calendar, moment, rng.uniform(40, 150) * (0.8 if earlier else 1.0))
    # The old backlog: feature requests nobody has picked up.
    for days, summary in ((47, "Feature request: export tickets to Excel"), (33, "功能建议：支持批量导出")):
        created = NOW - timedelta(days=days)
        jira.create_issue(summary, description=summary, priority="Low", components=["mobile"], created=created,
                          fields={"Support group": "L1"})
        created_count += 1
    return created_count


def _ticket(jira: JiraSandbox, calendar, rng: random.Random, problem: Problem, created: datetime, slow: float) -> None:
    summary = rng.choice(problem.summaries)
    fields = {"Support group": GROUPS.get(problem.category, "L1")}
    agent = rng.choice(AGENTS)
    key = jira.create_issue(summary, description=summary, priority=PRIORITY_NAMES[problem.priority],
                            components=[problem.category], created=created, assignee=agent, fields=fields)
    typical, spread = REPLY[problem.priority]
    replied = _business_instant(calendar, created, rng.uniform(typical - spread / 2, typical + spread) * slow)
    if replied > NOW:
        return
    jira.add_comment(key, "Thanks, we are looking into it.", author=agent, at=replied)
    jira.set_status(key, "In Progress", author=agent, at=replied)
    moment = replied
    if rng.random() < 0.25:  # we need more information from the reporter
        asked = _business_instant(calendar, moment, rng.uniform(10, 60))
        answered = _business_instant(calendar, asked, rng.uniform(60, 600))
        if answered > NOW:
            jira.set_status(key, "Waiting for customer", author=agent, at=asked)
            return
        jira.set_status(key, "Waiting for customer", author=agent, at=asked)
        jira.add_comment(key, "Here are the logs.", author=CUSTOMER, at=answered)
        jira.set_status(key, "In Progress", author=agent, at=answered)
        moment = answered
    typical, spread = FIX[problem.priority]
    fixed = _business_instant(calendar, moment, rng.uniform(typical / 3, typical + spread) * slow)
    if fixed > NOW:
        return
    jira.set_fields(key, {"Root cause": "identified", "Solution": "applied", "Verification result": "Resolved"},
                    author=agent, at=fixed)
    jira.set_status(key, "Resolved", author=agent, at=fixed)
    if rng.random() < 0.12:  # "still broken"
        reopened = _business_instant(calendar, fixed, rng.uniform(60, 480))
        if reopened > NOW:
            return
        jira.add_comment(key, "It happened again.", author=CUSTOMER, at=reopened)
        jira.set_status(key, "In Progress", author=agent, at=reopened)
        fixed = _business_instant(calendar, reopened, rng.uniform(60, 600))
        if fixed > NOW:
            return
        jira.set_status(key, "Resolved", author=agent, at=fixed)
    if rng.random() < 0.6:
        jira.set_fields(key, {"Satisfaction": rng.choices([5, 4, 3, 2, 1], [5, 4, 2, 1, 1])[0]}, author=CUSTOMER,
                        at=fixed + timedelta(minutes=30))


def main() -> int:
    config = load_config(DEFAULT_CONFIG)
    calendar = config.calendar("standard")
    with JiraSandbox(clock=Clock(NOW), timezone="Asia/Shanghai", deliver_webhooks=False) as jira:
        count = seed(jira, calendar, random.Random(SEED))
        settings = Settings(jira_url=jira.base_url, jira_user=jira.email, jira_token=jira.api_token)
        period = review_period(config, FIRST_DAY, END_DAY)
        for output_format, name in (("html", "example-report.html"), ("md", "example-report.md")):
            text, read = make_report(build_adapter("jira", settings, config), config, "jira", period, output_format,
                                     now=NOW)
            # The sandbox listens on a random local port; the example links to a stable, fictitious site.
            text = text.replace(jira.base_url, "https://acme.atlassian.net")
            (DOCS / name).write_text(text, encoding="utf-8")
            print(f"{name}: {read} of {count} seeded tickets read", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
