"""Observe mode and rule-level rollout end to end, on both sandboxes through the real clients.

- The whole demo scenario (webhooks, queue, workers, SLA timers, sweeps) in observe mode:
  the sandboxes receive zero write requests, and every action appears in the store, in
  `connector observed` and on `GET /observed`.
- One rule (`sla`) in `mode: observe` beside enforced rules: in one reconcile its actions
  are recorded and the others written; re-planning it costs no write and no new record.
- Switching that rule to enforce: a breach notice first observed more than
  `rollout.backlog_hours` ago is recorded as done without posting (its marker only); a
  fresh one is posted, once.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

import pytest
import requests
from click.testing import CliRunner

from connector.cli import main
from connector.config import load_config
from connector.demo import DEMO_START, _scenarios, _zendesk_scenarios
from connector.observe.records import fingerprint
from connector.queue.reconcile_queue import ReconcileQueue
from connector.reconcile import Runtime, reconcile
from connector.rules.engine import evaluate
from connector.sandbox.jira import CONNECTOR as JIRA_CONNECTOR
from connector.sandbox.jira import JiraSandbox
from connector.sandbox.server import Clock
from connector.sandbox.zendesk import CONNECTOR as ZENDESK_CONNECTOR
from connector.sandbox.zendesk import GROUPS, ZendeskSandbox
from connector.settings import DEFAULT_CONFIG, Settings
from connector.stack import LocalStack
from connector.sync.sweep import SweepKind

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
BREACH_MARKER = "spc-sla-breach-first_response"


def writes(sandbox) -> int:
    return sum(n for call, n in sandbox.calls.items() if call.method != "GET")


def write_calls(sandbox) -> list:
    return [call for call in sandbox.calls if call.method != "GET"]


# --- observe mode over the whole demo scenario --------------------------------------------------


def test_observe_mode_writes_nothing_over_the_demo_and_records_every_action(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="connector.observe")
    data_dir = tmp_path / "data"
    with LocalStack(data_dir, clock=Clock(DEMO_START, frozen=False), zendesk=True, mode="observe") as stack:
        stories = {"jira": _scenarios(stack), "zendesk": _zendesk_scenarios(stack)}
        stack.settle()
        for _, _, human in stories["jira"] + stories["zendesk"]:
            if human:
                human()
        stack.settle()
        # Timers and sweeps run too: a day later every SLA timer fires, then both sweeps pass.
        stack.clock.advance(timedelta(days=1))
        assert stack.pump() > 0
        stack.settle()
        reports = {(platform, kind): stack.sweep(kind, platform=platform)
                   for platform in ("jira", "zendesk") for kind in (SweepKind.FULL, SweepKind.RECENT)}
        stack.settle()
        # The sweep records from the search result; it queues no reconcile (and no re-read) for
        # plans that are only observed. The timers' reconciles just settled every ticket at its
        # stamp (observe mode writes nothing, so the stamp as read stays current), so the sweep
        # skips them all without evaluating.
        jira_full = reports[("jira", SweepKind.FULL)]
        assert jira_full.unchanged == len(stories["jira"]) == 6 and jira_full.queued == 0

        assert write_calls(stack.jira) == [] and write_calls(stack.zendesk) == []
        assert stack.jira.count(method="GET") > 0 and stack.zendesk.count(method="GET") > 0

        store = stack.queue.observations
        stored = {row.fingerprint: row for row in store.latest(limit=None)}
        # Every action the log says was recorded is in the store …
        logged = {r.fingerprint for r in caplog.records if r.getMessage() == "observe.recorded"}
        assert logged and logged == set(stored)
        # … and every action the rules want now, on every ticket, is among them.
        runtime = stack.runtime
        for platform, told in stories.items():
            for _, ref, _ in told:
                ticket = runtime.adapter(platform).fetch(str(ref))
                plan = evaluate(ticket, stack.clock.now(), runtime.config, observe_all=True)
                assert plan.actions, (platform, ref)
                for action in plan.actions:
                    assert fingerprint(platform, ticket.id, action) in stored, (platform, ref, action)

        # Each story's key action, on both platforms.
        for platform in ("jira", "zendesk"):
            rows = [r for r in stored.values() if r.platform == platform]
            comments = " ".join(r.details.get("body", "") for r in rows if r.action == "comment")
            assert "please add:" in comments and "SLA breached" in comments and "Escalated to L2" in comments
            assert "was moved back to In Progress" in comments
            assert "needs a second person's review" in comments  # the review gate's story
            assert "has been resolved. Here is a summary" in comments or "已解决，处理总结如下" in comments
            assert any(r.action == "assign" and r.details["group"] == "network-team" for r in rows)
            assert any(r.action == "set-fields" and "follow_up_due" in r.details["fields"] for r in rows)
            # Re-planned one-time actions are kept once, with a count.
            assert any(r.times > 1 and r.first_seen < r.last_seen for r in rows)

        page = requests.get(f"{stack.receiver.base_url}/observed?limit=1000", timeout=10)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert page.text.count("<tr>") == len(stored) + 1  # header row + one per record
        assert "SLA breached" in page.text and "observe</strong> mode" in page.text

    result = CliRunner().invoke(main, ["observed", "--format", "json"],
                                env={"CONNECTOR_DATA_DIR": str(data_dir), "CONNECTOR_QUEUE_URL": ""})
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert {row["fingerprint"] for row in listed} == set(stored)
    assert {row["platform"] for row in listed} == {"jira", "zendesk"}


def test_demo_command_in_observe_mode_reports_zero_writes():
    result = CliRunner().invoke(main, ["demo", "--observe"])
    assert result.exit_code == 0, result.output
    assert re.search(r"API calls to Jira: \d+ reads, 0 writes", result.output)
    assert re.search(r"API calls to Zendesk: \d+ reads, 0 writes", result.output)
    assert "(nothing written)" in result.output and "=== Observed on zendesk" in result.output
    assert "SLA breached" in result.output.split("=== Observed on jira")[1]


# --- one rule observed beside enforced rules ---------------------------------------------------


def config_with_sla(tmp_path: Path, mode: str, platform: str):
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    shipped = "  - id: sla\n    type: sla\n    mode: enforce"
    assert shipped in text
    text = text.replace(shipped, f"  - id: sla\n    type: sla\n    mode: {mode}", 1)
    path = tmp_path / f"rules-sla-{mode}.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert next(r for r in config.rules if r.id == "sla").mode == mode
    if platform == "zendesk":
        config.platforms.zendesk.groups = {name: str(group_id) for name, group_id in GROUPS.items()}
    return config


@dataclass
class Site:
    """One sandbox behind the same small interface, so each test runs on both platforms."""

    platform: str
    sandbox: object
    settings: Settings
    new_p1_without_response: Callable[[], str]
    connector_bodies: Callable[[str], list[str]]
    markers: Callable[[str], set[str]]
    sla_due_written: Callable[[str], bool]


def jira_site(jira: JiraSandbox, data_dir: Path) -> Site:
    def new() -> str:
        # 11:00 on a Friday, no agent answer: the 2-business-hour first response breached at 14:00.
        return jira.create_issue("SSO fails for the Beijing tenant", description="SAML rejected", priority="High",
                                 components=["login"], environment="Okta", created=FRIDAY - timedelta(hours=4),
                                 fields={"Impact scope": "Beijing", "Steps to reproduce": "log in",
                                         "Error message": "InvalidSignature", "Occurred at": FRIDAY - timedelta(hours=5)})

    def bodies(key: str) -> list[str]:
        return [c["body"] for c in jira.issue(key)["fields"]["comment"]["comments"]
                if c["author"]["accountId"] == JIRA_CONNECTOR]

    return Site("jira", jira, Settings(jira_url=jira.base_url, jira_user=jira.email, jira_token=jira.api_token,
                                       data_dir=data_dir),
                new, bodies, lambda key: set(jira.issue(key)["fields"]["labels"]),
                lambda key: jira.issue(key)["fields"].get("customfield_10060") is not None)


def zendesk_site(zendesk: ZendeskSandbox, data_dir: Path) -> Site:
    def new() -> str:
        return str(zendesk.create_ticket(
            "SSO fails for the Beijing tenant", "SAML rejected", priority="high", created=FRIDAY - timedelta(hours=4),
            custom_fields={"Category": "login", "Impact scope": "Beijing", "Steps to reproduce": "log in",
                           "Error message": "InvalidSignature", "Occurred at": "2026-11-20", "Environment": "Okta"}))

    def bodies(ticket_id: str) -> list[str]:
        return [e["body"] for audit in zendesk.audits(int(ticket_id)) for e in audit["events"]
                if e["type"] == "Comment" and e["author_id"] == ZENDESK_CONNECTOR]

    def due_written(ticket_id: str) -> bool:
        field = zendesk.field_id("First response due")
        return any(f["id"] == field and f["value"] for f in zendesk.ticket(int(ticket_id))["custom_fields"])

    return Site("zendesk", zendesk, Settings(zendesk_url=zendesk.base_url, zendesk_email=zendesk.email,
                                             zendesk_token=zendesk.api_token, data_dir=data_dir),
                new, bodies, lambda ticket_id: set(zendesk.ticket(int(ticket_id))["tags"]), due_written)


@pytest.fixture(params=["jira", "zendesk"])
def site(request, tmp_path):
    if request.param == "jira":
        with JiraSandbox(clock=Clock(FRIDAY), timezone="Asia/Shanghai", deliver_webhooks=False) as jira:
            yield jira_site(jira, tmp_path / "data")
    else:
        with ZendeskSandbox(clock=Clock(FRIDAY), deliver_webhooks=False) as zendesk:
            yield zendesk_site(zendesk, tmp_path / "data")


def runtime_for(site: Site, config) -> Runtime:
    return Runtime(settings=site.settings, config=config, clock=site.sandbox.clock.now,
                   observations=ReconcileQueue.from_settings(site.settings).observations)


def test_observed_rule_is_recorded_while_the_enforced_rules_write_in_the_same_reconcile(site, tmp_path):
    runtime = runtime_for(site, config_with_sla(tmp_path, "observe", site.platform))
    ref = site.new_p1_without_response()

    outcome = reconcile(runtime, site.platform, ref)

    assert outcome.outcome == "applied"
    bodies = " ".join(site.connector_bodies(ref))
    assert bodies.count("no first response within 2h") == 1          # escalation: enforced, written
    assert "SLA breached" not in bodies and BREACH_MARKER not in site.markers(ref)  # sla: observed only
    assert not site.sla_due_written(ref)
    assert "spc-escalation-l2-first-response" in site.markers(ref)
    rows = runtime.observations.latest(limit=None)
    assert rows and {r.rule for r in rows} == {"sla"}
    [breach] = [r for r in rows if r.marker == BREACH_MARKER]
    assert "SLA breached" in breach.details["body"] and breach.times == 1
    assert any(r.action == "set-fields" for r in rows)

    # The next reconcile re-plans the observed actions: no write, no new record, a count.
    before = writes(site.sandbox)
    site.sandbox.clock.advance(timedelta(minutes=10))
    assert reconcile(runtime, site.platform, ref).outcome == "observed"
    assert writes(site.sandbox) == before
    again = {r.fingerprint: r for r in runtime.observations.latest(limit=None)}
    assert set(again) == {r.fingerprint for r in rows}
    assert again[breach.fingerprint].times == 2 and again[breach.fingerprint].first_seen == breach.first_seen


def test_enforcing_a_rule_after_the_backlog_window_writes_the_stale_notice_as_its_marker_only(site, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="connector.observe")
    ref = site.new_p1_without_response()
    reconcile(runtime_for(site, config_with_sla(tmp_path, "observe", site.platform)), site.platform, ref)

    # A day and an hour later (a weekend: no business time passes) the rule is enforced.
    site.sandbox.clock.advance(timedelta(hours=25))
    enforced = runtime_for(site, config_with_sla(tmp_path, "enforce", site.platform))
    assert enforced.config.rollout.backlog_hours == 24
    reconcile(enforced, site.platform, ref)

    assert BREACH_MARKER in site.markers(ref)
    assert not any("first response target of 2h was missed" in b for b in site.connector_bodies(ref))
    assert site.sla_due_written(ref)  # state actions are applied as usual
    [event] = [r for r in caplog.records if r.getMessage() == "rollout.backlog_marked"]
    assert event.marker == BREACH_MARKER and event.outcome == "recorded as done without posting"

    before = writes(site.sandbox)
    reconcile(enforced, site.platform, ref)
    assert writes(site.sandbox) == before  # the marker ends it: nothing is planned again


def test_enforcing_a_rule_within_the_backlog_window_posts_the_notice_once(site, tmp_path):
    ref = site.new_p1_without_response()
    reconcile(runtime_for(site, config_with_sla(tmp_path, "observe", site.platform)), site.platform, ref)

    site.sandbox.clock.advance(timedelta(hours=1))
    enforced = runtime_for(site, config_with_sla(tmp_path, "enforce", site.platform))
    reconcile(enforced, site.platform, ref)
    reconcile(enforced, site.platform, ref)

    bodies = " ".join(site.connector_bodies(ref))
    assert bodies.count("first response target of 2h was missed") == 1
    assert BREACH_MARKER in site.markers(ref)


def test_the_backlog_rule_reads_the_redis_queue_store_too(tmp_path):
    """CONNECTOR_QUEUE_URL=redis://…: observed records and their first_seen live in Redis."""
    from tests.processes import RedisServer, skip_without_redis

    skip_without_redis()
    server = RedisServer().start()
    try:
        with JiraSandbox(clock=Clock(FRIDAY), timezone="Asia/Shanghai", deliver_webhooks=False) as jira:
            site = jira_site(jira, tmp_path / "data")
            site.settings = replace(site.settings, queue_url=server.url)
            key = site.new_p1_without_response()
            observing = runtime_for(site, config_with_sla(tmp_path, "observe", "jira"))
            reconcile(observing, "jira", key)
            [breach] = [r for r in observing.observations.latest(limit=None) if r.marker == BREACH_MARKER]
            assert type(observing.observations).__name__ == "RedisObservedStore"

            jira.clock.advance(timedelta(hours=25))
            enforced = runtime_for(site, config_with_sla(tmp_path, "enforce", "jira"))
            assert enforced.observations.first_seen(breach.fingerprint) == breach.first_seen
            reconcile(enforced, "jira", key)
            assert BREACH_MARKER in site.markers(key)
            assert not any("first response target of 2h was missed" in b for b in site.connector_bodies(key))
    finally:
        server.stop()
