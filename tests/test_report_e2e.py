"""The review's figures against a small hand-computed data set, on both platforms, end to end:
tickets seeded (back-dated) in the sandboxes, read through the real adapters over HTTP
(search, then fetch), measured and rendered; and `connector report` from the command line.

The standard calendar: Asia/Shanghai, Mon–Fri 09:00–12:00 and 13:00–18:00 (no holiday in
November 2026). Period = Mon 2026-11-09 .. Sun 11-15 (to = Mon 11-16, exclusive); previous
period = 11-02 .. 11-08. 2026-11-09 is a Monday. Every minute count below is business time.

Current period (8 tickets):
  C1 P2 network "VPN drops every few minutes"  Mon 09:00, reply 10:00, resolved 15:00
     FR 60; resolution 09-12 (180) + 13-15 (120) = 300. Rated 5.
  C2 P2 network "VPN drops after login"        Tue 11:00, reply 13:30, resolved Wed 11:00
     FR 11-12 (60) + 13-13:30 (30) = 90; resolution 60 + 300 (Tue) + 120 (Wed) = 480. Rated 4.
  C3 P1 login "SSO login fails for all users"  Wed 17:00, reply Thu 11:00, resolved Thu 16:00,
     reopened by the customer Fri 10:00, resolved again Fri 14:00
     FR 60 + 120 = 180 > 2h target: breached; resolution 60 + 180 + 180 = 420, + 10-12 (120)
     + 13-14 (60) = 600 > 1 business day (480): breached. Reopened. Rated 2.
  C4 P0 outage "Checkout down for all stores"  Thu 09:00, reply 09:20, resolved 11:00
     FR 20 (target 30m: met); resolution 120 business minutes, 120 calendar minutes (24h: met).
  C5 P2 billing "发票无法下载"                    Tue 09:00, reply 09:10, resolved 10:00: FR 10, res 60.
  C6 P2 billing "发票无法下载，提示错误"            Wed 09:00, reply 09:05, resolved 09:35: FR 5, res 35.
  C7 P2 network "VPN drops every few minutes in Beijing office"  Fri 09:00, reply 09:30 and
     waiting for customer until the customer answers at 14:00; resolved after the period
     (Tue 11-17): FR 30 (met); at period end open, resolution clock 30 + 240 = 270 (open).
  C8 P3 mobile "Mobile app crashes when exporting invoices"  Fri 16:00, never answered: open.

  First response, 7 measured: 5 10 20 30 60 90 180 -> median 30; p90 at rank 6*0.9 = 5.4:
     90 + 0.4 * (180 - 90) = 126.
  Resolution, 6 resolved by period end: 35 60 120 300 480 600 -> median (120 + 300) / 2 = 210;
     p90 at rank 5*0.9 = 4.5: 480 + 0.5 * 120 = 540.
  P2 first response 5 10 30 60 90 -> median 30, p90 rank 3.6: 60 + 0.6 * 30 = 78.
  P2 resolution 35 60 300 480 -> median 180, p90 rank 2.7: 300 + 0.7 * 180 = 426.
  SLA first response: P0 1 met, P1 1 breached, P2 5 met, P3 1 open -> 6 / 7 = 85.7 %.
  SLA resolution: P0 1 met, P1 1 breached, P2 4 met + 1 open, P3 1 open -> 5 / 6 = 83.3 %.
  Reopen: 1 (C3) of 6 resolved at least once = 16.7 %.
  Repeat problems (Jaccard >= 0.5, same category):
     C1 ~ C7: {vpn drops every few minutes} / + {beijing office} = 5/7; C2 ~ C1 only 2/6.
     C5 ~ C6: bigrams 发票 票无 无法 法下 下载 / + 提示 示错 错误 = 5/8.
     -> 2 clusters, 4 tickets.
  Satisfaction (Jira only: the sandbox Zendesk has no survey): 5, 4, 2 rated -> 2/3 positive.

Previous period (3 tickets):
  P1 P2 network "VPN drops every few minutes"  Mon 11-02 10:00, reply 11:00, resolved Tue 10:00:
     FR 60, resolution 120 + 300 + 60 = 480 (met). Rated 3.
  P2 P1 login "Password reset email missing"   Wed 11-04 09:00, reply 12:30 (FR 180: breached),
     resolved 17:00 (180 + 240 = 420: met).
  P3 P3 mobile "API rate limit question"      Fri 11-06 17:00, answered and resolved Mon 11-09:
     open at the previous period's end.
  FR 60 180 -> median 120, p90 60 + 0.9 * 120 = 168; resolution 420 480 -> median 450, p90 474.
  SLA first response 1 met, 1 breached -> 50 %; resolution 2 met -> 100 %.

Others: B1 "Feature request: dark mode" created 2026-10-20 10:00, never answered (a leftover
of both periods; age at 11-16 00:00 = 26 d 14 h = 26.58 d); O1 created and resolved on
2026-10-12 (in no figure); X1 created 2026-11-17 (after the period: in no figure).
Leftovers at the end: B1, C7 (2 d 15 h = 2.625 d), C8 (2 d 8 h = 2.33 d); previously B1, P3.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import load_config
from connector.reconcile import build_adapter
from connector.review.collect import collect_tickets, search_queries
from connector.review.metrics import Period, build_report
from connector.sandbox.jira import AGENT as JIRA_AGENT, CUSTOMER as JIRA_CUSTOMER, JiraSandbox
from connector.sandbox.server import Clock
from connector.sandbox.zendesk import AGENT as ZD_AGENT, CUSTOMER as ZD_CUSTOMER, GROUPS, ZendeskSandbox
from connector.settings import DEFAULT_CONFIG, Settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=SHANGHAI)
PERIOD = Period.from_dates(date(2026, 11, 9), date(2026, 11, 16), SHANGHAI)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@dataclass
class Spec:
    name: str
    summary: str
    priority: str
    category: str
    created: str
    # (when, what): reply = public agent comment, customer = requester comment (reopens),
    # or a logical status: in_progress, waiting_for_customer, resolved.
    events: list[tuple[str, str]] = field(default_factory=list)
    satisfaction: int | None = None
    group: str | None = None


DATA = [
    Spec("C1", "VPN drops every few minutes", "P2", "network", "2026-11-09 09:00",
         [("2026-11-09 10:00", "reply"), ("2026-11-09 10:00", "in_progress"), ("2026-11-09 15:00", "resolved")], 5),
    Spec("C2", "VPN drops after login", "P2", "network", "2026-11-10 11:00",
         [("2026-11-10 13:30", "reply"), ("2026-11-10 13:30", "in_progress"), ("2026-11-11 11:00", "resolved")], 4),
    Spec("C3", "SSO login fails for all users", "P1", "login", "2026-11-11 17:00",
         [("2026-11-12 11:00", "reply"), ("2026-11-12 11:00", "in_progress"), ("2026-11-12 16:00", "resolved"),
          ("2026-11-13 10:00", "customer"), ("2026-11-13 10:00", "in_progress"), ("2026-11-13 14:00", "resolved")], 2),
    Spec("C4", "Checkout down for all stores", "P0", "outage", "2026-11-12 09:00",
         [("2026-11-12 09:20", "reply"), ("2026-11-12 09:20", "in_progress"), ("2026-11-12 11:00", "resolved")]),
    Spec("C5", "发票无法下载", "P2", "billing", "2026-11-10 09:00",
         [("2026-11-10 09:10", "reply"), ("2026-11-10 09:10", "in_progress"), ("2026-11-10 10:00", "resolved")]),
    Spec("C6", "发票无法下载，提示错误", "P2", "billing", "2026-11-11 09:00",
         [("2026-11-11 09:05", "reply"), ("2026-11-11 09:05", "in_progress"), ("2026-11-11 09:35", "resolved")]),
    Spec("C7", "VPN drops every few minutes in Beijing office", "P2", "network", "2026-11-13 09:00",
         [("2026-11-13 09:30", "reply"), ("2026-11-13 09:30", "waiting_for_customer"),
          ("2026-11-13 14:00", "customer"), ("2026-11-13 14:00", "in_progress"), ("2026-11-17 10:00", "resolved")],
         group="L2"),
    Spec("C8", "Mobile app crashes when exporting invoices", "P3", "mobile", "2026-11-13 16:00", group="L1"),
    Spec("P1", "VPN drops every few minutes", "P2", "network", "2026-11-02 10:00",
         [("2026-11-02 11:00", "reply"), ("2026-11-02 11:00", "in_progress"), ("2026-11-03 10:00", "resolved")], 3),
    Spec("P2", "Password reset email missing", "P1", "login", "2026-11-04 09:00",
         [("2026-11-04 12:30", "reply"), ("2026-11-04 12:30", "in_progress"), ("2026-11-04 17:00", "resolved")]),
    Spec("P3", "API rate limit question", "P3", "mobile", "2026-11-06 17:00",
         [("2026-11-09 09:30", "reply"), ("2026-11-09 09:30", "in_progress"), ("2026-11-09 10:00", "resolved")]),
    Spec("B1", "Feature request: dark mode", "P3", "mobile", "2026-10-20 10:00", group="L1"),
    Spec("O1", "Old printer question", "P3", "mobile", "2026-10-12 10:00",
         [("2026-10-12 10:30", "reply"), ("2026-10-12 10:30", "in_progress"), ("2026-10-12 11:00", "resolved")]),
    Spec("X1", "Printer offline", "P3", "mobile", "2026-11-17 09:00"),
]

JIRA_PRIORITY = {"P0": "Highest", "P1": "High", "P2": "Medium", "P3": "Low"}
JIRA_STATUS = {"in_progress": "In Progress", "waiting_for_customer": "Waiting for customer", "resolved": "Resolved"}
ZD_PRIORITY = {"P0": "urgent", "P1": "high", "P2": "normal", "P3": "low"}
ZD_STATUS = {"in_progress": "open", "waiting_for_customer": "pending", "resolved": "solved"}


def seed_jira(jira: JiraSandbox) -> dict[str, str]:
    keys = {}
    for spec in DATA:
        fields = {}
        if spec.satisfaction is not None:
            fields["Satisfaction"] = spec.satisfaction
        if spec.group:
            fields["Support group"] = spec.group
        key = jira.create_issue(spec.summary, description=spec.summary, priority=JIRA_PRIORITY[spec.priority],
                                components=[spec.category], created=at(spec.created), fields=fields)
        for when, what in spec.events:
            if what == "reply":
                jira.add_comment(key, "We are on it.", author=JIRA_AGENT, at=at(when))
            elif what == "customer":
                jira.add_comment(key, "Still broken.", author=JIRA_CUSTOMER, at=at(when))
            else:
                jira.set_status(key, JIRA_STATUS[what], author=JIRA_AGENT, at=at(when))
        keys[spec.name] = key
    return keys


def seed_zendesk(zendesk: ZendeskSandbox) -> dict[str, str]:
    keys = {}
    for spec in DATA:
        ticket_id = zendesk.create_ticket(spec.summary, spec.summary, priority=ZD_PRIORITY[spec.priority],
                                          custom_fields={"Category": spec.category}, group=spec.group,
                                          created=at(spec.created))
        for when, what in spec.events:
            if what == "reply":
                zendesk.add_comment(ticket_id, "We are on it.", author=ZD_AGENT, at=at(when))
            elif what == "customer":
                # As in Zendesk, the requester's reply reopens a solved or pending ticket.
                zendesk.add_comment(ticket_id, "Still broken.", author=ZD_CUSTOMER, at=at(when))
            elif zendesk.ticket(ticket_id)["status"] != ZD_STATUS[what]:
                zendesk.set_status(ticket_id, ZD_STATUS[what], author=ZD_AGENT, at=at(when))
        keys[spec.name] = f"#{ticket_id}"
    return keys


def standard_config():
    config = load_config(DEFAULT_CONFIG)
    config.platforms.zendesk.groups = {name: str(group_id) for name, group_id in GROUPS.items()}
    return config


@pytest.fixture(params=["jira", "zendesk"])
def platform_data(request):
    """(platform, settings, keys by spec name) with the data set seeded in that platform's sandbox."""
    clock = Clock(NOW)
    if request.param == "jira":
        with JiraSandbox(clock=clock, timezone="Asia/Shanghai", deliver_webhooks=False) as jira:
            keys = seed_jira(jira)
            yield "jira", Settings(jira_url=jira.base_url, jira_user=jira.email, jira_token=jira.api_token), keys
    else:
        with ZendeskSandbox(clock=clock, deliver_webhooks=False) as zendesk:
            keys = seed_zendesk(zendesk)
            yield "zendesk", Settings(zendesk_url=zendesk.base_url, zendesk_email=zendesk.email,
                                      zendesk_token=zendesk.api_token), keys


def test_figures_match_the_hand_computed_data_set(platform_data):
    platform, settings, keys = platform_data
    config = standard_config()
    collected = collect_tickets(build_adapter(platform, settings, config), platform, PERIOD)
    read = {t.key for t in collected.tickets}
    # The searches reach every ticket a figure needs; O1 (done long ago) is not needed.
    assert {keys[n] for n in ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "P1", "P2", "P3", "B1")} <= read
    report = build_report(collected.tickets, config, PERIOD, platform=platform, generated_at=NOW)
    cur, prev = report.current, report.previous
    name = {key: n for n, key in keys.items()}

    assert cur.tickets == 8 and prev.tickets == 3 and cur.resolved == 6
    assert cur.by_category == {"network": 3, "billing": 2, "login": 1, "outage": 1, "mobile": 1}
    assert cur.by_priority == {"P0": 1, "P1": 1, "P2": 5, "P3": 1}

    fr, res = cur.first_response, cur.resolution
    assert (fr["all"].count, fr["all"].median, fr["all"].p90) == (7, 30, pytest.approx(126))
    assert (res["all"].count, res["all"].median, res["all"].p90) == (6, 210, pytest.approx(540))
    assert (fr["P2"].median, fr["P2"].p90) == (30, pytest.approx(78))
    assert (res["P2"].median, res["P2"].p90) == (180, pytest.approx(426))
    assert (fr["P1"].median, res["P1"].median, res["P0"].median) == (180, 600, 120)
    assert fr["P3"].count == 0 and res["P3"].count == 0

    def cell(priority, metric):
        c = cur.compliance[(priority, metric)]
        return c.met, c.breached, c.open

    assert cell("P0", "first_response") == (1, 0, 0) and cell("P0", "resolution") == (1, 0, 0)
    assert cell("P1", "first_response") == (0, 1, 0) and cell("P1", "resolution") == (0, 1, 0)
    assert cell("P2", "first_response") == (5, 0, 0) and cell("P2", "resolution") == (4, 0, 1)
    assert cell("P3", "first_response") == (0, 0, 1) and cell("P3", "resolution") == (0, 0, 1)
    assert cur.compliance[("all", "first_response")].percent == pytest.approx(600 / 7)
    assert cur.compliance[("all", "resolution")].percent == pytest.approx(500 / 6)

    assert (cur.reopened, cur.ever_resolved) == (1, 6)
    assert [[name[k] for k in c.keys] for c in cur.repeats] == [["C1", "C7"], ["C5", "C6"]]
    assert [c.category for c in cur.repeats] == ["network", "billing"]

    assert [(name[t.key], round(t.age_days, 3)) for t in cur.leftovers] == [
        ("B1", 26.583), ("C7", 2.625), ("C8", 2.333)]
    owners = {name[t.key]: t.owner for t in cur.leftovers}
    assert owners["C8"].startswith("L1") and owners["C7"].startswith("L2")
    assert [name[t.key] for t in prev.leftovers] == ["B1", "P3"]

    h = {x.name: x for x in report.headlines}
    assert (h["tickets"].current, h["tickets"].previous, h["tickets"].delta) == (8, 3, 5)
    assert (h["first_response_median"].current, h["first_response_median"].previous) == (30, 120)
    assert (h["first_response_p90"].current, h["first_response_p90"].previous) == (pytest.approx(126), pytest.approx(168))
    assert (h["resolution_median"].current, h["resolution_median"].previous) == (210, 450)
    assert h["resolution_p90"].previous == pytest.approx(474) and h["resolution_p90"].verdict == "worse"
    assert (h["sla_first_response"].previous, h["sla_resolution"].previous) == (50, 100)
    assert h["sla_first_response"].verdict == "better" and h["sla_resolution"].verdict == "worse"
    assert (h["reopen_rate"].current, h["reopen_rate"].previous) == (pytest.approx(100 / 6), 0)
    assert (h["repeat_tickets"].current, h["repeat_tickets"].previous) == (4, 0)
    assert (h["leftovers"].current, h["leftovers"].previous, h["leftovers"].delta) == (3, 2, 1)
    if platform == "jira":
        assert cur.satisfaction == {"5": 1, "4": 1, "2": 1, "not rated": 5}
        assert h["satisfaction_positive"].current == pytest.approx(200 / 3)
        assert h["satisfaction_positive"].previous == 0  # P1 rated 3
    else:
        assert cur.satisfaction == {"not rated": 8} and h["satisfaction_positive"].current is None


def test_search_queries_widen_the_window_by_a_day_and_cover_old_open_tickets():
    jira_open, jira_done = search_queries("jira", PERIOD)
    # 2026-11-16 00:00 Shanghai = 11-15 16:00 UTC, plus a day; previous start 11-02 = 11-01 16:00 UTC, minus a day.
    assert jira_open == 'created < "2026-11-16 16:00" AND statusCategory != Done ORDER BY key ASC'
    assert 'updated >= "2026-10-31 16:00"' in jira_done and "statusCategory = Done" in jira_done
    zd_open, zd_done = search_queries("zendesk", PERIOD)
    assert zd_open == "type:ticket created<2026-11-16T16:00:00Z status<solved"
    assert zd_done == "type:ticket created<2026-11-16T16:00:00Z status>=solved updated>2026-10-31T16:00:00Z"
    with pytest.raises(ValueError):
        search_queries("servicenow", PERIOD)


def _environment(platform: str, settings: Settings) -> dict[str, str]:
    if platform == "jira":
        return {"JIRA_URL": settings.jira_url, "JIRA_USER": settings.jira_user, "JIRA_TOKEN": settings.jira_token}
    return {"ZENDESK_URL": settings.zendesk_url, "ZENDESK_EMAIL": settings.zendesk_email,
            "ZENDESK_TOKEN": settings.zendesk_token}


def test_cli_writes_the_report_from_the_platform(platform_data, tmp_path):
    platform, settings, keys = platform_data
    out = tmp_path / "review.csv"
    result = CliRunner().invoke(main, ["report", "--platform", platform, "--from", "2026-11-09", "--to", "2026-11-16",
                                       "--out", str(out), "--config", str(DEFAULT_CONFIG)],
                                env=_environment(platform, settings))
    assert result.exit_code == 0, result.output
    assert "csv report of" in result.stderr and str(out) in result.stderr
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # a BOM, so Excel reads the Chinese summaries
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    headline = {r["metric"]: (r["current"], r["previous"]) for r in rows if r["section"] == "headline"}
    assert headline["tickets"] == ("8", "3")
    assert headline["resolution_median"] == ("210", "450")
    leftovers = {r["group"] for r in rows if r["section"] == "leftovers"}
    assert leftovers == {keys["B1"], keys["C7"], keys["C8"]}
    summaries = {r["current"] for r in rows if r["section"] == "repeat_problems" and r["metric"] == "summary"}
    assert "发票无法下载" in summaries


def test_cli_markdown_to_stdout_with_progress_on_stderr():
    with JiraSandbox(clock=Clock(NOW), timezone="Asia/Shanghai", deliver_webhooks=False) as jira:
        seed_jira(jira)
        settings = Settings(jira_url=jira.base_url, jira_user=jira.email, jira_token=jira.api_token)
        result = CliRunner().invoke(main, ["report", "--platform", "jira", "--from", "2026-11-09",
                                           "--to", "2026-11-16"], env=_environment("jira", settings))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Support review: Jira, 2026-11-09 – 2026-11-15")
    assert "Reading jira tickets" in result.stderr and "Reading" not in result.stdout


@pytest.mark.parametrize("platform, variables", [
    ("jira", "JIRA_URL, JIRA_TOKEN"), ("zendesk", "ZENDESK_URL, ZENDESK_EMAIL, ZENDESK_TOKEN")])
def test_cli_names_the_missing_credentials(platform, variables):
    empty = {name: "" for name in ("JIRA_URL", "JIRA_USER", "JIRA_TOKEN", "ZENDESK_URL", "ZENDESK_EMAIL",
                                   "ZENDESK_TOKEN")}
    result = CliRunner().invoke(main, ["report", "--platform", platform, "--from", "2026-11-09", "--to", "2026-11-16"],
                                env=empty)
    assert result.exit_code == 1
    assert f"cannot read {platform}: set {variables} in the environment" in result.output


def test_cli_refuses_a_period_that_ends_before_it_starts():
    env = {"JIRA_URL": "http://127.0.0.1:9", "JIRA_TOKEN": "t"}
    result = CliRunner().invoke(main, ["report", "--platform", "jira", "--from", "2026-11-16", "--to", "2026-11-09"],
                                env=env)
    assert result.exit_code == 1 and "must be after --from" in result.output
