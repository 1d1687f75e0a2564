"""`connector simulate` on the bundled example tickets: the plan, reasons, clocks, JSON shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOW = "2026-11-20T15:00:00+08:00"


def simulate(platform: str, name: str, *extra: str):
    result = CliRunner().invoke(main, ["simulate", "--platform", platform, "--ticket-json",
                                       str(EXAMPLES / platform / name), "--now", NOW, *extra])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("platform", ["jira", "zendesk"])
def test_json_shape_names_the_rule_of_every_action(platform):
    out = json.loads(simulate(platform, "p2-missing-intake-fields.json", "--format", "json"))
    assert set(out) == {"ticket", "evaluated_at", "actions", "sla", "next_deadline"}
    assert out["ticket"]["priority"] == "P2" and out["ticket"]["status"] == "new"
    assert all(action["rule"] and action["reason"] and action["type"] for action in out["actions"])
    intake = [a for a in out["actions"] if a["rule"] == "intake"]
    assert [a["type"] for a in intake] == ["comment", "transition"]
    assert intake[0]["public"] is True and intake[0]["marker"] == "spc-intake-requested"
    assert "Exact error message" in intake[0]["body"] and "Environment" in intake[0]["body"]
    assert set(out["sla"]) == {"first_response", "resolution"}


@pytest.mark.parametrize("platform", ["jira", "zendesk"])
@pytest.mark.parametrize("name,rule,expected", [
    ("p0-outage-no-response.json", "sla", "spc-sla-breach-first_response"),
    ("resolved-without-root-cause.json", "closure", "spc-closure-returned-1"),
    ("reporter-says-not-resolved.json", "closure", "spc-closure-not-resolved-1"),
    ("critical-change-without-review.json", "review-gate", "spc-review-gate-returned-1"),
    ("resolved-closing-summary.json", "closing-summary", "spc-closing-summary-sent-1"),
])
def test_examples_exercise_each_rule(platform, name, rule, expected):
    out = json.loads(simulate(platform, name, "--format", "json"))
    assert expected in [a.get("marker") for a in out["actions"] if a["rule"] == rule]


def test_follow_up_example_sets_the_due_field():
    out = json.loads(simulate("jira", "p1-closed-needs-follow-up.json", "--format", "json"))
    [action] = [a for a in out["actions"] if a["rule"] == "follow-up"]
    assert action["type"] == "set-fields" and "follow_up_due" in action["fields"]
    assert out["next_deadline"] is not None


def test_paused_example_counts_no_time_while_waiting():
    out = json.loads(simulate("jira", "paused-waiting-for-customer.json", "--format", "json"))
    assert out["sla"]["first_response"]["state"] == "met"


def test_text_output_lists_reasons_and_clocks():
    out = simulate("jira", "p2-missing-intake-fields.json")
    assert "[intake] public comment [marker spc-intake-requested]" in out
    assert "because intake incomplete: missing error_message, environment" in out
    assert "first_response: breached" in out and "resolution: paused" in out and "next deadline:" in out


def test_bad_inputs_are_explained(tmp_path):
    runner = CliRunner()
    broken = tmp_path / "t.json"
    broken.write_text("{not json", encoding="utf-8")
    result = runner.invoke(main, ["simulate", "--platform", "jira", "--ticket-json", str(broken), "--now", NOW])
    assert result.exit_code != 0 and "not valid JSON" in result.output
    result = runner.invoke(main, ["simulate", "--platform", "jira", "--ticket-json",
                                  str(EXAMPLES / "jira" / "p2-missing-intake-fields.json"), "--now", "2026-11-20 15:00"])
    assert result.exit_code != 0 and "no UTC offset" in result.output


def test_examples_command_runs_every_bundled_ticket():
    result = CliRunner().invoke(main, ["examples"])
    assert result.exit_code == 0
    assert result.output.count("=== jira:") == 8 and result.output.count("=== zendesk:") == 8
    assert "[closing-summary] public comment [marker spc-closing-summary-sent-1]" in result.output
