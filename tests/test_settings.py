"""One settings object: every environment variable is read and validated in `connector.settings`,
and README's environment table is the settings model, row by row, both ways."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector import scrub
from connector.cli import main
from connector.settings import SECRET_VARIABLES, Settings, SettingsError, env_table, fields, variables

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ROW = re.compile(r"^\| `(?P<variable>[A-Z][A-Z0-9_]*)` \|")

# Modules that may touch os.environ, and why (the settings module's docstring says the same):
ENVIRONMENT_READERS = {
    "connector/settings.py": "the one place settings are read",
    "connector/scrub.py": "a redaction safety net over the secret variables, configures nothing",
    "connector/cli.py": "writes CONNECTOR_MODE=observe for --observe (children forked by `serve`), reads nothing",
    "connector/channels/config.py": "variables a rule file names itself (a chat channel's `url_env:`), not settings",
    "connector/stack.py": "the demo/test harness sets (and restores) its chat stand-in's `url_env:` variables",
}
SANDBOXES = "connector/sandbox/"  # test and demo stand-ins, not the product


def readme_table() -> list[str]:
    """The rows of README's environment table (the one whose header starts `| variable |`)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| variable | default |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_readme_lists_every_setting_and_nothing_else():
    documented = [m["variable"] for m in map(ROW.match, readme_table()) if m]
    assert len(documented) == len(set(documented)), "a variable is listed twice in README's table"
    in_code = set(variables())
    assert set(documented) - in_code == set(), "README lists variables the settings model does not read"
    assert in_code - set(documented) == set(), "settings the README table does not list"


def test_readme_table_is_the_settings_model_row_by_row():
    expected = env_table().splitlines()
    actual = readme_table()
    wrong = [f"  README: {a}\n  code:   {e}" for a, e in zip(actual, expected) if a != e]
    assert actual == expected, ("README's environment table differs from connector.settings.env_table() "
                                "(paste its output into README):\n" + "\n".join(wrong))


def test_only_the_settings_module_reads_the_environment():
    """No `os.environ` / `os.getenv` / `environ` import anywhere else in the product."""
    offenders = []
    for package in ("connector", "webhooks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in ENVIRONMENT_READERS or relative.startswith(SANDBOXES):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                    offenders.append(f"{relative}:{node.lineno}")
                elif isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                        a.name in ("environ", "getenv") for a in node.names):
                    offenders.append(f"{relative}:{node.lineno}")
    assert not offenders, "read the variable in connector/settings.py and pass the Settings in: " + ", ".join(offenders)


def test_the_scrubber_covers_exactly_the_secret_settings():
    secret = {info.alias for info in fields().values()
              if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret")}
    assert set(SECRET_VARIABLES) == secret == set(scrub._SECRET_ENVIRONMENT)


@pytest.mark.parametrize("variable, value, allowed", [
    ("CONNECTOR_PUMP_INTERVAL", "abc", "a positive number of seconds"),
    ("CONNECTOR_PUMP_INTERVAL", "0", "a positive number of seconds"),
    ("CONNECTOR_SYNC_RECENT_INTERVAL", "-5", "a positive number of seconds"),
    ("CONNECTOR_SYNC_FULL_INTERVAL", "inf", "a positive number of seconds"),
    ("CONNECTOR_CONFIG_POLL_INTERVAL", "5s", "a positive number of seconds"),
    ("CONNECTOR_LOG_LEVEL", "loud", "DEBUG, INFO, WARNING, ERROR"),
    ("CONNECTOR_HTTP_SERVER", "uwsgi", "waitress, gunicorn"),
    ("CONNECTOR_WORKER_WAIT", "wake", "wakeup, poll, huey"),
    ("CONNECTOR_MODE", "dry-run", "enforce, observe"),
])
def test_a_wrong_value_names_the_variable_the_value_and_what_is_allowed(variable, value, allowed):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({variable: value})
    assert f"{variable}={value!r} is not allowed; use {allowed}" in str(raised.value)


def test_every_wrong_variable_is_named_at_once_and_secrets_are_not_shown():
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"CONNECTOR_PUMP_INTERVAL": "abc", "CONNECTOR_LOG_LEVEL": "loud"})
    assert "CONNECTOR_PUMP_INTERVAL" in str(raised.value) and "CONNECTOR_LOG_LEVEL" in str(raised.value)
    assert "hunter2-secret" not in repr(Settings(jira_token="hunter2-secret", jira_webhook_secrets=("hunter2-secret",)))


def test_values_are_read_as_before():
    settings = Settings.from_env({
        "CONNECTOR_PUMP_INTERVAL": "2.5", "CONNECTOR_LOG_LEVEL": " debug ", "CONNECTOR_HTTP_SERVER": "Gunicorn",
        "JIRA_URL": "https://jira.example.com/", "ZENDESK_WEBHOOK_SECRET": "one, two,", "CONNECTOR_QUEUE_URL": "",
    })
    assert settings.pump_every.total_seconds() == 2.5
    assert (settings.log_level, settings.http_server) == ("DEBUG", "gunicorn")
    assert settings.jira_url == "https://jira.example.com"
    assert settings.zendesk_webhook_secrets == ("one", "two")
    assert settings.queue_url is None  # empty counts as unset
    defaults = Settings.from_env({})
    assert (defaults.pump_interval, defaults.sync_recent_interval, defaults.sync_full_interval,
            defaults.config_poll_interval) == (10, 300, 3600, 5)


def test_a_command_started_with_a_wrong_setting_stops_at_once_naming_it():
    result = CliRunner().invoke(main, ["worker"], env={"CONNECTOR_PUMP_INTERVAL": "abc"})
    assert result.exit_code == 2
    assert "CONNECTOR_PUMP_INTERVAL='abc' is not allowed; use a positive number of seconds" in result.output
