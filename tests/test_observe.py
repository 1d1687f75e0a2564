"""Observe mode's pieces: the setting, the rule key, the store (SQLite and Redis), the engine's
projection, `connector observed` in every format, and the escaped `/observed` page."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import ConfigError, json_schema, load_config
from connector.model import AddComment, SetFields, Transition
from connector.observe.present import parse_since
from connector.observe.records import fingerprint, observation
from connector.observe.rollout import split
from connector.observe.store import RedisObservedStore, SqliteObservedStore
from connector.queue.reconcile_queue import ReconcileQueue
from connector.rules.engine import evaluate
from connector.settings import DEFAULT_CONFIG, Settings, SettingsError
from tests.factories import ticket as factory_ticket
from tests.processes import RedisServer, skip_without_redis

NOW = datetime(2026, 11, 20, 7, 0, tzinfo=timezone.utc)
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def make_ticket(*, id: str = "10001", key: str = "SUP-1", **fields):
    return factory_ticket(**fields).model_copy(update={"id": id, "key": key})


# --- the setting and the rule key --------------------------------------------------------------


def test_connector_mode_defaults_to_enforce_and_reads_observe():
    assert Settings.from_env({}).mode == "enforce"
    assert Settings.from_env({"CONNECTOR_MODE": "observe"}).observing
    assert Settings.from_env({"CONNECTOR_MODE": " Observe "}).observing


def test_a_wrong_connector_mode_names_the_variable_and_the_allowed_values():
    with pytest.raises(SettingsError, match=r"CONNECTOR_MODE='dry-run'.*enforce, observe"):
        Settings.from_env({"CONNECTOR_MODE": "dry-run"})
    result = CliRunner().invoke(main, ["observed"], env={"CONNECTOR_MODE": "dry-run"})
    assert result.exit_code == 2 and "CONNECTOR_MODE='dry-run'" in result.output and "enforce, observe" in result.output


def test_observe_flag_reaches_the_worker_processes_through_the_environment(monkeypatch):
    from connector import cli

    monkeypatch.delenv("CONNECTOR_MODE", raising=False)
    monkeypatch.setattr("os.environ", dict(__import__("os").environ))
    assert cli._observe(True).observing
    assert Settings.from_env().observing  # what get_runtime() in a forked worker reads


def rules_file(tmp_path: Path, rule_extra: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nrules:\n  - id: routing\n    type: routing\n    default: {group: L1}\n"
                    f"{rule_extra}", encoding="utf-8")
    return path


def test_rule_mode_defaults_to_enforce_and_accepts_observe(tmp_path):
    assert all(rule.mode == "enforce" for rule in load_config(DEFAULT_CONFIG).rules)
    assert load_config(rules_file(tmp_path, "    mode: observe\n")).rules[0].mode == "observe"


def test_a_wrong_rule_mode_is_reported_with_its_key_path_and_line(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(rules_file(tmp_path, "    mode: dry-run\n"))
    [problem] = caught.value.problems
    assert problem.path == "rules[0].mode (rule 'routing')" and problem.line == 6
    assert "'dry-run'" in problem.message and "'enforce'" in problem.message and "'observe'" in problem.message
    result = CliRunner().invoke(main, ["check-config", str(tmp_path / "rules.yaml")])
    assert result.exit_code == 2 and "rules[0].mode (rule 'routing')" in result.output


def test_rollout_backlog_hours_is_validated(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nrollout:\n  backlog_hours: -1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rollout.backlog_hours"):
        load_config(path)
    path.write_text("version: 1\nrollout:\n  backlog_hours: 72\n", encoding="utf-8")
    assert load_config(path).rollout.backlog_hours == 72


def test_schema_offers_rule_mode_and_rollout():
    text = json.dumps(json_schema())
    assert '"enum": ["enforce", "observe"]' in text and "backlog_hours" in text


# --- the split and the engine ------------------------------------------------------------------


def mixed_config(tmp_path: Path):
    """Intake observed, routing enforced: routing must decide on the ticket as it really is."""
    path = tmp_path / "mixed.yaml"
    path.write_text(
        "version: 1\nrules:\n"
        "  - id: intake\n    type: required-fields\n    mode: observe\n    fields: [environment]\n"
        "    comment: {public: true, template: 'please add {{ missing | join(\", \") }}'}\n"
        "  - id: routing\n    type: routing\n    default: {group: L1}\n", encoding="utf-8")
    return load_config(path)


def test_an_observed_rule_is_not_projected_for_the_enforced_rules_after_it(tmp_path):
    config = mixed_config(tmp_path)
    ticket = make_ticket(fields={}, created="2026-11-20 14:55")
    plan = evaluate(ticket, NOW, config)
    parts = split(plan, config, observe_all=False)
    assert {a.rule for a in parts.observed} == {"intake"}
    # Routing does not wait for an intake request that will not be written.
    assert {a.rule for a in parts.enforced.actions} == {"routing"}
    # Everything observed: the record is exactly the plan enforce mode would apply (routing
    # waits for the intake request there).
    everything = split(evaluate(ticket, NOW, config, observe_all=True), config, observe_all=True)
    enforcing = config.model_copy(deep=True)
    enforcing.rules[0].mode = "enforce"
    assert everything.enforced.actions == []
    assert everything.observed == evaluate(ticket, NOW, enforcing).actions
    assert {a.rule for a in everything.observed} == {"intake"}


def test_fingerprint_ignores_wording_and_time_but_not_identity():
    ticket = make_ticket()
    one = AddComment(rule="sla", reason="breached 5h ago", body="breached, 5h elapsed", marker="spc-sla-breach-x")
    later = AddComment(rule="sla", reason="breached 6h ago", body="breached, 6h elapsed", marker="spc-sla-breach-x")
    other = AddComment(rule="sla", reason="", body="", marker="spc-sla-breach-y")
    assert fingerprint("jira", ticket.id, one) == fingerprint("jira", ticket.id, later)
    assert fingerprint("jira", ticket.id, one) != fingerprint("jira", ticket.id, other)
    assert fingerprint("jira", ticket.id, one) != fingerprint("zendesk", ticket.id, one)
    due = SetFields(rule="sla", reason="", fields={"sla_resolution_due": "2026-11-20T10:00"})
    moved = SetFields(rule="sla", reason="", fields={"sla_resolution_due": "2026-11-21T10:00"})
    assert fingerprint("jira", "1", due) == fingerprint("jira", "1", moved)
    assert fingerprint("jira", "1", Transition(rule="c", reason="", to="in_progress")) != \
        fingerprint("jira", "1", Transition(rule="c", reason="", to="resolved"))


# --- the store -----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
def store_factory(request, tmp_path):
    """Build stores of either backend with chosen bounds."""
    if request.param == "sqlite":
        queue = ReconcileQueue.from_settings(Settings(data_dir=tmp_path / "data"))
        yield lambda **bounds: SqliteObservedStore(queue.huey.storage, **bounds)
        return
    skip_without_redis()
    server = RedisServer().start()
    try:
        queue = ReconcileQueue.from_settings(Settings(data_dir=tmp_path / "data", queue_url=server.url))
        yield lambda **bounds: RedisObservedStore(queue.huey.storage, **bounds)
    finally:
        server.stop()


def breach(ticket, n: int = 0) -> AddComment:
    return AddComment(rule="sla", reason=f"breached {n}", body=f"SLA breached ({n}h elapsed)",
                      marker="spc-sla-breach-first_response")


def test_store_keeps_one_record_per_action_with_first_and_last_seen_and_a_count(store_factory):
    store = store_factory()
    ticket = make_ticket()
    first = store.record(observation(ticket, breach(ticket, 1), NOW))
    again = store.record(observation(ticket, breach(ticket, 2), NOW + timedelta(hours=1)))
    assert first.new and not again.new
    assert (again.times, again.first_seen, again.last_seen) == (2, NOW, NOW + timedelta(hours=1))
    [row] = store.latest(limit=None)
    assert row.times == 2 and row.first_seen == NOW and row.details["body"] == "SLA breached (2h elapsed)"
    assert store.first_seen(row.fingerprint) == NOW
    assert store.first_seen("nope") is None


def test_store_lists_newest_first_and_filters_by_time_and_platform(store_factory):
    store = store_factory()
    jira, zendesk = make_ticket(platform="jira", id="1", key="SUP-1"), make_ticket(platform="zendesk", id="7", key="#7")
    store.record(observation(jira, breach(jira), NOW))
    store.record(observation(zendesk, breach(zendesk), NOW + timedelta(hours=2)))
    assert [r.platform for r in store.latest()] == ["zendesk", "jira"]
    assert [r.platform for r in store.latest(since=NOW + timedelta(hours=1))] == ["zendesk"]
    assert [r.ticket_key for r in store.latest(platform="jira")] == ["SUP-1"]
    assert len(store.latest(limit=1)) == 1


def test_store_is_bounded_by_count_and_age(store_factory):
    store = store_factory(max_records=3, max_age=timedelta(days=30))
    for n in range(5):
        ticket = make_ticket(id=str(n), key=f"SUP-{n}")
        store.record(observation(ticket, breach(ticket), NOW + timedelta(minutes=n)))
    assert [r.ticket_key for r in store.latest(limit=None)] == ["SUP-4", "SUP-3", "SUP-2"]
    late = make_ticket(id="99", key="SUP-99")
    store.record(observation(late, breach(late), NOW + timedelta(days=31)))
    assert [r.ticket_key for r in store.latest(limit=None)] == ["SUP-99"]


# --- connector observed ------------------------------------------------------------------------------


@pytest.fixture
def recorded(tmp_path):
    """A data dir whose store holds a Jira and a Zendesk record, one with hostile ticket text."""
    data_dir = tmp_path / "data"
    store = ReconcileQueue.from_settings(Settings(data_dir=data_dir)).observations
    now = datetime.now(timezone.utc)
    jira = make_ticket(platform="jira", id="10001", key="SUP-1")
    store.record(observation(jira, AddComment(rule="intake", reason=f"=HYPERLINK(\"{HOSTILE}\")", public=True,
                                              body=f"please add {HOSTILE}", marker="spc-intake-requested"),
                             now - timedelta(hours=30)))
    zendesk = make_ticket(platform="zendesk", id="7", key="#7")
    store.record(observation(zendesk, Transition(rule="closure", reason="resolved without root cause",
                                                 to="in_progress"), now - timedelta(hours=1)))
    return data_dir


def observed_cli(data_dir: Path, *args: str):
    return CliRunner().invoke(main, ["observed", *args], env={"CONNECTOR_DATA_DIR": str(data_dir),
                                                              "CONNECTOR_QUEUE_URL": "", "CONNECTOR_MODE": ""})


def test_observed_text_lists_newest_first_with_rule_action_and_reason(recorded):
    result = observed_cli(recorded)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "zendesk #7  [closure] move to in_progress" in lines[0]
    assert "why: resolved without root cause" in lines[1]
    assert "jira SUP-1  [intake] public comment: please add" in lines[2]
    assert "2 observed action(s); nothing of this was written" in lines[-1]


def test_observed_json_since_and_platform(recorded):
    rows = json.loads(observed_cli(recorded, "--format", "json").output)
    assert [(r["platform"], r["rule"], r["action"]) for r in rows] == [
        ("zendesk", "closure", "transition"), ("jira", "intake", "comment")]
    assert rows[1]["marker"] == "spc-intake-requested" and rows[1]["details"]["public"] is True
    assert [r["platform"] for r in json.loads(observed_cli(recorded, "--format", "json", "--since", "24h").output)] \
        == ["zendesk"]
    assert [r["platform"] for r in json.loads(observed_cli(recorded, "--format", "json", "--platform", "jira").output)] \
        == ["jira"]
    assert json.loads(observed_cli(recorded, "--format", "json", "--since", "2099-01-01T00:00:00Z").output) == []


def test_observed_csv_has_a_header_and_defuses_formulas(recorded):
    result = observed_cli(recorded, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["platform"] for r in rows] == ["zendesk", "jira"]
    assert rows[1]["reason"].startswith("'=HYPERLINK")  # a spreadsheet shows it as text, never runs it
    assert json.loads(rows[1]["details"])["marker"] == "spc-intake-requested"


def test_observed_rejects_an_unreadable_since(recorded):
    result = observed_cli(recorded, "--since", "yesterday")
    assert result.exit_code == 2 and "24h" in result.output


def test_parse_since_reads_durations_and_instants():
    assert parse_since("24h", NOW) == NOW - timedelta(hours=24)
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("2026-11-19T09:00:00+08:00", NOW) == datetime(2026, 11, 19, 1, 0, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="UTC offset"):
        parse_since("2026-11-19T09:00:00", NOW)


# --- GET /observed -----------------------------------------------------------------------------------


def test_observed_page_escapes_hostile_ticket_text_and_forbids_scripts(recorded):
    from webhooks.app import create_app

    settings = Settings(data_dir=recorded, config_path=DEFAULT_CONFIG)
    client = create_app(settings).test_client()
    page = client.get("/observed")
    assert page.status_code == 200 and page.content_type.startswith("text/html")
    body = page.get_data(as_text=True)
    assert "<script>" not in body and "<img" not in body
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body
    assert "please add" in body and "SUP-1" in body and "#7" in body
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    only_zendesk = client.get("/observed?platform=zendesk&since=24h").get_data(as_text=True)
    assert "#7" in only_zendesk and "SUP-1" not in only_zendesk
    bad = client.get("/observed?since=%3Cb%3E").get_data(as_text=True)
    assert "<b>" not in bad and "&lt;b&gt;" in bad  # the error message quotes the input, escaped
    assert client.post("/observed").status_code == 405  # read-only


def test_simulate_marks_the_actions_of_observed_rules(tmp_path):
    text = DEFAULT_CONFIG.read_text(encoding="utf-8").replace(
        "  - id: sla\n    type: sla\n    mode: enforce", "  - id: sla\n    type: sla\n    mode: observe", 1)
    rules = tmp_path / "rules.yaml"
    rules.write_text(text, encoding="utf-8")
    example = Path(__file__).resolve().parent.parent / "examples" / "jira" / "p0-outage-no-response.json"
    args = ["simulate", "--platform", "jira", "--ticket-json", str(example), "--now", "2026-11-20T15:00:00+08:00",
            "--config", str(rules)]
    out = json.loads(CliRunner().invoke(main, [*args, "--format", "json"]).output)
    modes = {(a["rule"], a["mode"]) for a in out["actions"]}
    assert ("sla", "observe") in modes and ("escalation", "enforce") in modes
    assert not any(a["mode"] == "observe" for a in out["actions"] if a["rule"] != "sla")
    text_out = CliRunner().invoke(main, args).output
    assert "[sla] internal note [marker spc-sla-breach-first_response]" in text_out
    assert "(observed: recorded, not written)" in text_out


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_observe_flag_runs_the_processes_in_observe_mode(command, monkeypatch, tmp_path):
    import os

    import connector.serve

    seen = {}

    def fake(settings, *args, **kwargs):
        seen["settings"], seen["env"] = settings, os.environ.get("CONNECTOR_MODE")
        return 0

    monkeypatch.setattr(connector.serve, command, fake)
    monkeypatch.setattr("os.environ", dict(os.environ))
    env = {"CONNECTOR_DATA_DIR": str(tmp_path / "data"), "CONNECTOR_QUEUE_URL": "", "CONNECTOR_MODE": "",
           "JIRA_WEBHOOK_SECRET": "s"}
    result = CliRunner().invoke(main, [command, "--observe"], env=env)
    assert result.exit_code == 0, result.output
    assert seen["settings"].observing and seen["env"] == "observe"
    assert "OBSERVE MODE" in result.output and "rate limits" in result.output
