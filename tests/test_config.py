"""A bad config never starts silently: file, line, key path and what is allowed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import ConfigError, load_config
from connector.settings import DEFAULT_CONFIG

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p) for p in info.value.problems]


CALENDAR = """
calendars:
  standard:
    timezone: Asia/Shanghai
    working_hours: {mon: ["09:00-18:00"], tue: ["09:00-18:00"]}
"""


def test_shipped_mappings_are_the_stock_defaults():
    from connector.platforms.mapping import PlatformMappings

    assert load_config(ROOT / "config" / "platform-mappings.yaml").platforms == PlatformMappings()


def test_shipped_configs_validate():
    for path in sorted((ROOT / "config").glob("standard-support*.yaml")):
        config = load_config(path)
        assert {r.type for r in config.rules} == {"required-fields", "similar-cases", "routing", "sla", "escalation",
                                                  "closure", "auto-close", "follow-up", "problem-number",
                                                  "review-gate", "closing-summary"}


def test_unknown_rule_type_lists_the_valid_ones(tmp_path):
    path = write(tmp_path, CALENDAR + """
rules:
  - id: intake
    type: required-field
    fields: [environment]
""")
    [message] = problems(path)
    assert message.startswith(f"{path}:9: rules[0].type (rule 'intake'): unknown rule type 'required-field'")
    assert ("auto-close, closing-summary, closure, escalation, follow-up, problem-number, required-fields, "
            "review-gate, routing, "
            "similar-cases, sla") in message


def test_bad_duration_names_line_and_key_path(tmp_path):
    path = write(tmp_path, CALENDAR + """
rules:
  - id: sla
    type: sla
    calendar: standard
    targets:
      P0:
        first_response: 30 minutes
""")
    [message] = problems(path)
    assert message.startswith(f"{path}:13: rules[0].targets.P0.first_response (rule 'sla'):")
    assert "30m" in message


def test_unknown_key_and_bad_status(tmp_path):
    path = write(tmp_path, CALENDAR + """
rules:
  - id: routing
    type: routing
    statuses: [new, open]
    default: {group: L1}
    defualt_group: L1
""")
    messages = problems(path)
    assert any(m.startswith(f"{path}:10: rules[0].statuses[1] (rule 'routing'): got 'open'; allowed:") and "'in_progress'" in m
               for m in messages)
    assert any(m.startswith(f"{path}:12: rules[0].defualt_group (rule 'routing'): unknown key") for m in messages)


def test_undefined_calendar_and_bad_template(tmp_path):
    path = write(tmp_path, CALENDAR + """
rules:
  - id: follow-up
    type: follow-up
    calendar: office
    reminder:
      template: "Follow up {{ ticket.key }"
""")
    template, calendar = problems(path)
    assert template.startswith(f"{path}:12: rules[0].reminder.template (rule 'follow-up'): template does not render")
    assert calendar == f"{path}:10: rules[0].calendar (rule 'follow-up'): calendar 'office' is not defined; defined calendars: standard"


def test_template_with_unknown_variable(tmp_path):
    path = write(tmp_path, CALENDAR + """
rules:
  - id: follow-up
    type: follow-up
    calendar: standard
    reminder:
      template: "Follow up {{ ticket.nmae }}"
""")
    [message] = problems(path)
    assert "rules[0].reminder.template (rule 'follow-up'): template does not render" in message and "nmae" in message


def test_bad_calendar_and_yaml_syntax(tmp_path):
    path = write(tmp_path, """
calendars:
  standard:
    timezone: Mars/Olympus
    working_hours: {mon: ["09:00-18:00"]}
""")
    [message] = problems(path)
    assert message.startswith(f"{path}:4: calendars.standard.timezone:")
    broken = write(tmp_path, "rules:\n  - id: a\n    type: [sla\n", name="broken.yaml")
    [message] = problems(broken)
    assert message.startswith(f"{broken}:") and "not valid YAML" in message


def test_directory_merges_files_and_reports_the_right_file(tmp_path):
    write(tmp_path, CALENDAR, name="10-calendars.yaml")
    bad = write(tmp_path, """
rules:
  - id: routing
    type: routing
    default: {}
""", name="20-rules.yaml")
    [message] = problems(tmp_path)
    assert message.startswith(f"{bad}:5: rules[0].default (rule 'routing'):")
    assert "give a `group`, an `assignee` or both" in message


def test_duplicate_rule_ids(tmp_path):
    path = write(tmp_path, CALENDAR + """
rules:
  - {id: r, type: routing, default: {group: L1}}
  - {id: r, type: routing, default: {group: L2}}
""")
    [message] = problems(path)
    assert "rule id 'r' is used twice" in message


def test_platform_override_keeps_the_other_defaults(tmp_path):
    path = write(tmp_path, CALENDAR + """
platforms:
  jira:
    fields: {root_cause: customfield_10200}
    groups: {L2: "Level 2"}
""")
    config = load_config(path)
    assert config.platforms.jira.fields["root_cause"] == "customfield_10200"
    assert config.platforms.jira.fields["solution"] == "Solution"
    assert config.platforms.jira.write_statuses


def test_check_config_command(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["check-config", str(DEFAULT_CONFIG)])
    assert ok.exit_code == 0 and "OK: 12 rules" in ok.output
    bad = write(tmp_path, "rules:\n  - {id: x, type: nope}\n")
    failed = runner.invoke(main, ["check-config", str(bad)])
    assert failed.exit_code == 2
    assert f"{bad}:2: rules[0].type (rule 'x'): unknown rule type 'nope'" in failed.output
    missing = runner.invoke(main, ["check-config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "file not found" in missing.output


def test_schema_command_prints_json_schema_with_every_rule_type():
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    text = json.dumps(schema)
    for rule_type in ("required-fields", "sla", "escalation", "closure", "routing", "follow-up", "auto-close",
                      "similar-cases"):
        assert f'"{rule_type}"' in text
    assert schema["title"] == "Support-process connector rules"


def test_transition_fields_override_one_status_and_keep_the_stock_others(tmp_path):
    path = write(tmp_path, CALENDAR + """
platforms:
  jira:
    transition_fields:
      resolved: {resolution: Fixed, Root cause: "See the comments"}
""")
    jira = load_config(path).platforms.jira
    assert jira.transition_fields["resolved"] == {"resolution": "Fixed", "Root cause": "See the comments"}
    assert jira.transition_fields["closed"] == {"resolution": "Done"}  # stock default kept


def test_transition_fields_with_an_unknown_status_names_the_key_path(tmp_path):
    path = write(tmp_path, CALENDAR + """
platforms:
  jira:
    transition_fields:
      resolvd: {resolution: Done}
""")
    [message] = problems(path)
    assert "platforms.jira.transition_fields.resolvd" in message
    assert "resolved" in message  # the allowed values are listed


def test_transition_fields_without_a_value_names_the_field(tmp_path):
    path = write(tmp_path, CALENDAR + """
platforms:
  jira:
    transition_fields:
      closed: {resolution: null}
""")
    [message] = problems(path)
    assert "transition_fields.closed.resolution" in message and "give a value" in message


def test_check_config_accepts_transition_fields(tmp_path):
    path = write(tmp_path, CALENDAR + """
platforms:
  jira:
    transition_fields:
      resolved: {resolution: Done, customfield_10054: "n/a"}
""")
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
