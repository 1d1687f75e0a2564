"""The escalation response clock: after a level hands a ticket to a group, that group must
comment (public or internal) within the level's `response` target, or the next level fires."""

from __future__ import annotations

import pytest

from connector.config import load_config
from connector.model import AddComment, Assign, AuthorRole, Comment, Status
from connector.rules.engine import evaluate
from connector.settings import DEFAULT_CONFIG
from tests.factories import agent_reply, at, ticket

CONFIG = load_config(DEFAULT_CONFIG)
RULES = CONFIG.model_copy(update={"rules": [r for r in CONFIG.rules if r.id in ("sla", "escalation")]})
L2_MARKER = "spc-escalation-l2"
NO_RESPONSE = "spc-escalation-l2-no-response"


def escalated(*, comments=(), assignee=None, group="L2", when="2026-11-20 14:00"):
    """A P1 ticket escalated to L2 at 14:00 (50% of its 1bd resolution target), as a platform reads it."""
    t = ticket(priority="P1", status=Status.IN_PROGRESS, group=group, assignee=assignee,
               comments=[agent_reply("2026-11-20 09:10"), *comments], labels=[L2_MARKER],
               history=[("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS)])
    return t.model_copy(update={"marker_times": {L2_MARKER: at(when)}})


def comment_by(author, when, public=False):
    return Comment(id=f"{author}-{when}", author=author, author_role=AuthorRole.AGENT, public=public,
                   body="on it", created=at(when))


def test_clock_runs_from_the_handoff_and_breaches_after_an_hour_of_business_time():
    t = escalated()
    running = evaluate(t, at("2026-11-20 14:30"), RULES)
    clock = running.sla["escalation_response"]
    assert clock.state == "running" and clock.started == at("2026-11-20 14:00")
    assert clock.due == at("2026-11-20 15:00") and clock.target_minutes == 60
    assert not [a for a in running.actions if isinstance(a, Assign)]
    assert running.next_deadline <= at("2026-11-20 15:00")
    plan = evaluate(t, at("2026-11-20 15:01"), RULES)
    assert plan.sla["escalation_response"].state == "breached"
    assert [a.group for a in plan.actions if isinstance(a, Assign)] == ["team-lead"]
    notices = [a for a in plan.actions if isinstance(a, AddComment) and a.marker == NO_RESPONSE]
    assert len(notices) == 1 and "L2 did not respond within 1h" in notices[0].body


def test_internal_comment_by_the_l2_assignee_stops_the_clock():
    t = escalated(assignee="bob", comments=[comment_by("bob", "2026-11-20 14:40", public=False)])
    plan = evaluate(t, at("2026-11-20 16:00"), RULES)
    clock = plan.sla["escalation_response"]
    assert clock.state == "met" and clock.stopped_at == at("2026-11-20 14:40")
    assert not [a for a in plan.actions if isinstance(a, Assign)]


def test_configured_member_counts_and_others_do_not():
    escalation = next(r for r in RULES.rules if r.id == "escalation")
    mine = escalation.model_copy(update={"members": {"L2": ["carol"]}})
    rules = RULES.model_copy(update={"rules": [mine if r is escalation else r for r in RULES.rules]})
    by_member = escalated(comments=[comment_by("carol", "2026-11-20 14:20", public=True)])
    assert evaluate(by_member, at("2026-11-20 16:00"), rules).sla["escalation_response"].state == "met"
    # An L1 agent's comment, or one made before the hand-off, is no response from L2.
    by_other = escalated(comments=[comment_by("dave", "2026-11-20 14:20"), comment_by("carol", "2026-11-20 13:50")])
    assert evaluate(by_other, at("2026-11-20 16:00"), rules).sla["escalation_response"].state == "breached"


def test_assignee_counts_only_while_the_ticket_is_in_the_group():
    t = escalated(group="L1", assignee="bob", comments=[comment_by("bob", "2026-11-20 14:40")])
    assert evaluate(t, at("2026-11-20 16:00"), RULES).sla["escalation_response"].state == "breached"


def test_no_clock_without_a_dated_handoff():
    undated = escalated().model_copy(update={"marker_times": {}})
    assert "escalation_response" not in evaluate(undated, at("2026-11-20 16:00"), RULES).sla


def test_breach_fires_once():
    t = escalated()
    fired = t.model_copy(update={"labels": t.labels | {NO_RESPONSE}, "group": "team-lead",
                                 "marker_times": {**t.marker_times, NO_RESPONSE: at("2026-11-20 15:01")}})
    plan = evaluate(fired, at("2026-11-20 15:30"), RULES)
    assert not [a for a in plan.actions if isinstance(a, (Assign,)) or getattr(a, "marker", None) == NO_RESPONSE]


def test_level_fired_in_this_evaluation_dates_the_handoff_on_projection():
    from connector.rules.projection import project
    t = ticket(priority="P1", status=Status.IN_PROGRESS, group="L1", comments=[agent_reply("2026-11-20 09:10")],
               history=[("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS)])
    plan = evaluate(t, at("2026-11-20 14:00"), RULES)
    after = project(t, plan.actions, at("2026-11-20 14:00"))
    assert after.marker_times[L2_MARKER] == at("2026-11-20 14:00")
    later = evaluate(after, at("2026-11-20 14:30"), RULES)
    assert later.sla["escalation_response"].state == "running"
    assert not [a for a in later.actions if a.rule == "escalation"]


def test_response_target_needs_group_and_comment():
    from connector.rules.escalation import EscalationRule
    rule = EscalationRule.model_validate({"id": "e", "type": "escalation", "levels": [
        {"id": "x", "when": {"metric": "resolution", "percent": 50}, "response": "1h"}]})
    config = CONFIG.model_copy(update={"rules": [*CONFIG.rules, rule]})
    problems = [p for p in rule.check(config) if p[0] and p[0][-1] == "response"]
    assert any("assign_group" in p[1] for p in problems) and any("comment" in p[1] for p in problems)


# --- the review report scores it like the other metrics ---------------------------------------

def test_report_scores_escalation_response_compliance():
    from datetime import date, datetime, timezone

    from connector.review.metrics import Period, build_report
    from connector.review.present import compliance_rows
    from tests.factories import SHANGHAI

    week = Period.from_dates(date(2026, 11, 16), date(2026, 11, 23), SHANGHAI)
    answered = escalated(assignee="bob", comments=[comment_by("bob", "2026-11-20 14:40")])
    ignored = escalated().model_copy(update={"id": "2", "key": "SUP-2"})
    not_escalated = ticket(priority="P1").model_copy(update={"id": "3", "key": "SUP-3"})
    report = build_report([answered, ignored, not_escalated], CONFIG, week, platform="jira",
                          generated_at=datetime(2026, 12, 1, tzinfo=timezone.utc))
    cell = report.current.compliance[("all", "escalation_response")]
    assert (cell.met, cell.breached) == (1, 1)
    assert any(row.metric == "escalation_response" for row in compliance_rows(report))
    leftover = {left.key: left.breached for left in report.current.leftovers}
    assert "escalation_response" in leftover["SUP-2"] and "escalation_response" not in leftover["SUP-1"]
    # As of 14:30 on the day, the hand-off's clock was still running (history cut at `now`).
    early = build_report([ignored], CONFIG, week, platform="jira", generated_at=at("2026-11-20 14:30"))
    assert ("all", "escalation_response") not in early.current.compliance or \
        early.current.compliance[("all", "escalation_response")].breached == 0


# --- `simulate` JSON from the platforms' own REST payloads -------------------------------------

def _simulate(platform: str, payload: dict, config_dir, now: str) -> dict:
    import json

    from click.testing import CliRunner

    from connector.cli import main
    path = config_dir / f"{platform}-ticket.json"
    path.write_text(json.dumps(payload))
    result = CliRunner().invoke(main, ["simulate", "--platform", platform, "--ticket-json", str(path),
                                       "--config", str(config_dir), "--now", now, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _config_dir(tmp_path, jira_account: str, zendesk_l2: str):
    import shutil

    import yaml

    from connector.settings import DEFAULT_CONFIG
    source = DEFAULT_CONFIG if DEFAULT_CONFIG.is_dir() else DEFAULT_CONFIG.parent
    target = tmp_path / "config"
    target.mkdir()
    shutil.copy(source / "standard-support.yaml", target / "standard-support.yaml")
    mappings = yaml.safe_load((source / "platform-mappings.yaml").read_text())
    platforms = mappings["platforms"]
    platforms["jira"]["connector_account"] = jira_account
    platforms["zendesk"]["groups"] = {"L2": zendesk_l2}
    (target / "platform-mappings.yaml").write_text(yaml.safe_dump(mappings))
    return target


def test_simulate_json_shows_the_clock_from_the_jira_marker_comment(tmp_path):
    import copy
    import json
    from pathlib import Path
    raw = json.loads((Path(__file__).resolve().parent.parent / "examples/jira/p0-outage-no-response.json").read_text())
    issue = copy.deepcopy(raw)
    bot = {"accountId": "connector-bot", "displayName": "Support connector", "accountType": "app"}
    issue["fields"]["comment"]["comments"].append({
        "id": "29999", "author": bot, "updateAuthor": bot, "jsdPublic": False,
        "body": "Escalated to L2: no first response within 30m.\n\nref: spc-escalation-l2-first-response",
        "created": "2026-11-20T09:31:00.000+0800", "updated": "2026-11-20T09:31:00.000+0800"})
    issue["fields"]["comment"]["total"] = len(issue["fields"]["comment"]["comments"])
    config = _config_dir(tmp_path, "connector-bot", "360001111002")
    running = _simulate("jira", issue, config, "2026-11-20T10:00:00+08:00")
    clock = running["sla"]["escalation_response"]
    assert clock["state"] == "running" and clock["started"].startswith("2026-11-20T09:31")
    breached = _simulate("jira", issue, config, "2026-11-20T10:45:00+08:00")
    assert breached["sla"]["escalation_response"]["state"] == "breached"
    assert "spc-escalation-l2-no-response" in [a.get("marker") for a in breached["actions"]]
    # Before the marker comment existed there was no hand-off to time.
    before = _simulate("jira", issue, config, "2026-11-20T09:20:00+08:00")
    assert "escalation_response" not in before["sla"]


def test_simulate_json_dates_the_zendesk_handoff_by_the_tag_audit(tmp_path):
    import copy
    import json
    from pathlib import Path
    raw = json.loads((Path(__file__).resolve().parent.parent / "examples/zendesk/p0-outage-no-response.json").read_text())
    payload = copy.deepcopy(raw)
    ticket_ = payload["ticket"]
    ticket_["tags"] = sorted({*ticket_.get("tags", []), "spc-escalation-l2-first-response"})
    ticket_["group_id"] = 360001111002
    payload["audits"].append({
        "id": 4527999001, "ticket_id": ticket_["id"], "created_at": "2026-11-20T01:31:00Z", "author_id": 1,
        "metadata": {"system": {}, "custom": {}},
        "events": [
            {"id": 4527999002, "type": "Comment", "author_id": 1, "body": "Escalated to L2.", "public": False,
             "audit_id": 4527999001},
            {"id": 4527999003, "type": "Change", "field_name": "tags", "value": ticket_["tags"],
             "previous_value": raw["ticket"].get("tags", [])},
            {"id": 4527999004, "type": "Change", "field_name": "group_id", "value": "360001111002",
             "previous_value": "360001111001"},
        ]})
    config = _config_dir(tmp_path, "connector-bot", "360001111002")
    out = _simulate("zendesk", payload, config, "2026-11-20T10:00:00+08:00")
    clock = out["sla"]["escalation_response"]
    assert clock["state"] == "running" and clock["started"].startswith("2026-11-20T01:31")
    assert _simulate("zendesk", payload, config, "2026-11-20T10:45:00+08:00")["sla"]["escalation_response"]["state"] == "breached"
    assert "escalation_response" not in _simulate("zendesk", payload, config, "2026-11-20T09:20:00+08:00")["sla"]


def test_the_plan_that_hands_off_wakes_up_when_the_response_is_due():
    # An update at 13:50 keeps the other clocks' deadlines later than the response's 15:00.
    t = ticket(priority="P1", status=Status.IN_PROGRESS, group="L1", comments=[agent_reply("2026-11-20 13:50")],
               history=[("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS)])
    plan = evaluate(t, at("2026-11-20 14:00"), RULES)
    assert [a.group for a in plan.actions if isinstance(a, Assign)] == ["L2"]
    assert plan.next_deadline == at("2026-11-20 15:00")
    unhanded = RULES.model_copy(update={"rules": [r.model_copy(update={"levels": [
        lvl.model_copy(update={"response": None}) for lvl in r.levels]}) if r.id == "escalation" else r
        for r in RULES.rules]})
    assert evaluate(t, at("2026-11-20 14:00"), unhanded).next_deadline > at("2026-11-20 15:00")


def test_ticket_as_of_forgets_a_marker_recorded_later():
    from connector.history import ticket_as_of
    t = escalated(when="2026-11-20 14:00")
    before = ticket_as_of(t, at("2026-11-20 13:00"))
    assert L2_MARKER not in before.marker_times and L2_MARKER not in before.labels
    assert ticket_as_of(t, at("2026-11-20 14:00")).marker_times == t.marker_times


def test_zendesk_tag_times_come_from_the_audit_that_added_the_tag():
    from connector.platforms.zendesk.ticket import _tag_times
    audits = [
        {"id": 1, "created_at": "2026-11-20T01:00:00Z", "events": [
            {"type": "Create", "field_name": "tags", "value": ["outage"]}]},
        {"id": 2, "created_at": "2026-11-20T06:00:00Z", "events": [
            {"type": "Change", "field_name": "tags", "value": "outage spc-escalation-l2", "previous_value": "outage"}]},
        {"id": 3, "created_at": "2026-11-20T07:00:00Z", "events": [
            {"type": "Change", "field_name": "tags", "value": ["outage", "spc-escalation-l2", "x"],
             "previous_value": ["outage", "spc-escalation-l2"]}]},
    ]
    times = _tag_times(audits, where="test")
    assert times["spc-escalation-l2"].isoformat() == "2026-11-20T06:00:00+00:00"
    assert times["outage"].isoformat() == "2026-11-20T01:00:00+00:00" and "x" in times


def test_team_lead_taking_over_keeps_the_breached_clock_for_the_report():
    t = escalated()
    after = t.model_copy(update={"labels": t.labels | {NO_RESPONSE}, "group": "team-lead",
                                 "marker_times": {**t.marker_times, NO_RESPONSE: at("2026-11-20 15:01")}})
    clock = evaluate(after, at("2026-11-20 17:00"), RULES).sla["escalation_response"]
    assert clock.state == "breached" and clock.started == at("2026-11-20 14:00")


def test_jira_label_times_come_from_the_changelog_entry_that_added_the_label():
    """The Jira twin of the Zendesk tag audits: author-independent, so a saved issue dates the
    connector's hand-off even where its account is not known (simulate, the bundled example)."""
    from connector.platforms.jira.issue import _label_times
    item = {"field": "labels", "fieldtype": "jira", "fieldId": "labels", "from": None, "to": None}
    issue = {"key": "SUP-1", "changelog": {"histories": [
        {"id": "1", "created": "2026-11-20T09:00:00.000+0800", "items": [{**item, "fromString": "", "toString": "outage"}]},
        {"id": "2", "created": "2026-11-20T14:00:00.000+0800", "items": [
            {**item, "fromString": "outage", "toString": "outage spc-escalation-l2"},
            # A custom field someone named "labels" is not the system field.
            {"field": "labels", "fieldtype": "custom", "fieldId": "customfield_10099", "toString": "spc-fake"}]},
        {"id": "3", "created": "2026-11-20T15:00:00.000+0800", "items": [
            {**item, "fromString": "outage spc-escalation-l2", "toString": "outage"}]},
    ]}}
    times = _label_times(issue, where="test")
    assert times["spc-escalation-l2"].isoformat() == "2026-11-20T14:00:00+08:00"
    assert times["outage"].isoformat() == "2026-11-20T09:00:00+08:00" and "spc-fake" not in times
    assert _label_times({"key": "SUP-1"}, where="test") == {}  # a webhook's issue: no changelog


@pytest.mark.parametrize("platform", ["jira", "zendesk"])
def test_the_bundled_example_breaches_the_response_clock_without_knowing_the_connector(platform):
    """`connector simulate` on the bundled example with the shipped config (no connector
    account): the hand-off is dated by the marker label / tag and the team lead takes over."""
    import json
    from pathlib import Path
    from click.testing import CliRunner
    from connector.cli import main
    path = Path(__file__).resolve().parent.parent / "examples" / platform / "escalated-no-l2-response.json"
    result = CliRunner().invoke(main, ["simulate", "--platform", platform, "--ticket-json", str(path),
                                       "--now", "2026-11-20T10:00:00+08:00", "--format", "json"])
    running = json.loads(result.output)
    assert running["sla"]["escalation_response"]["state"] == "running"
    result = CliRunner().invoke(main, ["simulate", "--platform", platform, "--ticket-json", str(path),
                                       "--now", "2026-11-20T15:00:00+08:00", "--format", "json"])
    out = json.loads(result.output)
    assert out["sla"]["escalation_response"]["state"] == "breached"
    assert [a["group"] for a in out["actions"] if a["type"] == "assign"] == ["team-lead"]
