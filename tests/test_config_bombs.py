"""Hostile or mistaken configs are rejected fast, with file:line, and never hang readiness.

- A 342-byte YAML "billion laughs" (nine levels of nine aliases: 9^9 list items once
  expanded) made `check-config` use 4 GB: anchors and aliases are refused before anything
  is expanded.
- A comment template with nested loops hung `check-config`; one doing `10.0 ** 400` gave a
  traceback: templates are bounded (steps, deadline, sizes), every exception is a config
  error naming the file and line.
- Rendering at run time is bounded the same way, also for a ticket far bigger than the sample.
- A hot reload of such a file: `/readyz` answers at once, reports the failure, and never
  runs a check itself – also while a check hangs (simulated).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from jinja2 import TemplateError

from connector import reload as reload_module
from connector import templates
from connector.cli import main
from connector.config import ConfigError, load_config
from tests.processes import connector_env, intake_config, receiver, wait_ready, wait_until
from webhooks.app import _EXTENSION, create_app

BILLION_LAUGHS = "version: 1\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9) if previous else ', '.join(['lol'] * 9)}]\n"
    for previous, name in zip([None, *"abcdefgh"], "abcdefghi")
)
NESTED_LOOPS = ("{% for i in range(100000) %}{% for j in range(100000) %}{% for k in range(100000) %}"
                "x{% endfor %}{% endfor %}{% endfor %}")
# Each stays within range()'s limit but together they run 125 million times.
NESTED_SMALL_LOOPS = "{% for i in range(500) %}{% for j in range(500) %}{% for k in range(500) %}{% endfor %}{% endfor %}{% endfor %}"


def rule_file(path: Path, template: str) -> Path:
    """An intake rule whose comment template is `template`, as a block scalar on line 8."""
    body = "\n".join("        " + line for line in template.splitlines())
    path.write_text("version: 1\nrules:\n  - id: intake\n    type: required-fields\n    fields: [environment]\n"
                    f"    comment:\n      template: |\n{body}\n", encoding="utf-8")
    return path


def rejected_fast(path: Path, seconds: float = 2.0) -> str:
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert time.monotonic() - started < seconds
    return str(raised.value)


def test_the_billion_laughs_file_is_the_one_of_the_issue():
    # Under 450 bytes; PyYAML's SafeLoader would expand `i` into 9^9 = 387 million items.
    assert len(BILLION_LAUGHS) < 450 and BILLION_LAUGHS.count("*") == 72


def test_check_config_refuses_the_billion_laughs_fast_naming_file_and_line(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS, encoding="utf-8")
    message = rejected_fast(path)
    assert f"{path}:2:" in message and "anchor &a" in message and "not allowed" in message

    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code != 0 and f"{path}:2" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("text, line, words", [
    ("version: 1\nrules:\n  - &intake {id: a, type: required-fields, fields: [environment]}\n", 3, "anchor &intake"),
    ("version: 1\nfields: {a: b}\nx: *nothing\n", 3, "alias *nothing"),
    ("version: 1\nrollout:\n  backlog_hours: " + "9" * 5000 + "\n", 3, "too long"),
])
def test_aliases_anchors_and_endless_numbers_are_config_errors(tmp_path, text, line, words):
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    message = rejected_fast(path)
    assert f"{path}:{line}:" in message and words in message


def test_a_huge_rule_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\n" + "# padding\n" * 200_000, encoding="utf-8")
    assert "at most 1024 KiB" in rejected_fast(path)


@pytest.mark.parametrize("template, words", [
    (NESTED_LOOPS, "range() gives at most"),
    (NESTED_SMALL_LOOPS, "loop iterations and calls"),
    ("{{ 10.0 ** 400 }}", "OverflowError"),
    ("{{ 10 ** 10 ** 10 ** 10 }}", "bits"),
    ("{{ 2 ** 100000000 }}", "bits"),
    ('{{ "x" * 10 ** 9 }}', "longer than"),
    ('{{ ("x" * 30000) | replace("x", "xxxx") }}', "longer than"),
    ('{% set parts = ["x" * 20000, "y" * 20000] %}{{ parts | join }}', "longer than"),
    ('{{ ["x" * 30000] * 100 }}', "longer than"),
    ('{{ "%999999999d" % 1 }}', "format width"),
    ('{{ "{:>999999999}".format(1) }}', "unsafe"),
    ('{% macro grow(s) %}{{ grow(s ~ s) }}{% endmacro %}{{ grow("ab") }}', "longer than"),
    ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}", "calls"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "render"),
    ("{{ 1 + 'a' }}", "TypeError"),
    ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ("{% set ns = namespace(s='x') %}{{ ns.s }}", "'namespace' is undefined"),
    ("{{ ticket.key", "template does not render"),
    ('{% for i in range(900) %}{{ "x" * 100 }}{% endfor %}', "comment would be longer than"),
    ('{% set s = "y" * 30000 %}{% set x %}{% for i in range(900) %}{{ s ~ i }}{% endfor %}{% endset %}', "prints more"),
    ("{% set x %}{% for i in range(900) %}" + "L" * 9000 + "{% endfor %}{% endset %}{{ x }}", "block or macro"),
    ("{{ (1).to_bytes(10 ** 9, 'big') }}", "too large an argument"),
    ("{{ 'x' | center(10 ** 9) }}", "too large an argument"),
])
def test_a_hostile_template_is_a_config_error_with_file_and_line_not_a_hang_or_traceback(tmp_path, template, words):
    path = rule_file(tmp_path / "rules.yaml", "Hello {{ ticket.key }}\n" + template)
    message = rejected_fast(path)
    assert f"{path}:7: rules[0].comment.template" in message and words in message, message
    assert "Traceback" not in message

    started = time.monotonic()
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert time.monotonic() - started < 3 and result.exit_code != 0
    assert f"{path}:7" in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_the_template_line_is_named():
    problem = templates.check("one\ntwo\n{{ 10.0 ** 400 }}\n", {})
    assert problem.startswith("template does not render (template line 3): OverflowError")


def test_every_exception_while_checking_is_a_problem_even_memory_error(monkeypatch):
    def exhausted(source):
        raise MemoryError()

    monkeypatch.setattr(templates, "_compiled", exhausted)
    assert "MemoryError" in templates.check("{{ x }}", {})


def test_ordinary_templates_still_render():
    context = {"ticket": templates.SAMPLE_TICKET, "missing": ["Environment", "Steps"],
               "cases": [{"key": "SUP-9", "score": 0.873, "solution": "Restart the VPN client " * 30}]}
    text = templates.render(
        "{{ ticket.key }}: please add {{ missing | join(', ') }}.\n"
        "{% for case in cases %}- {{ case.key }} ({{ (case.score * 100) | round | int }} %): "
        "{{ case.solution | truncate(40) or 'not recorded' }}{{ ', ' if not loop.last }}{% endfor %}\n"
        "{{ ticket.summary | upper }} {{ '%s-%03d' | format('P', 7) }} {{ ticket.key.lower() }}", context)
    assert text.startswith("SUP-1: please add Environment, Steps.\n- SUP-9 (87 %): Restart the VPN client")
    assert text.endswith("VPN DROPS EVERY HOUR P-007 sup-1")


def test_a_render_at_run_time_is_bounded_for_a_ticket_bigger_than_the_sample():
    # Passes the check on the sample ticket (a 20-character summary: 400 iterations) …
    source = "{% for a in ticket.summary %}{% for b in ticket.summary %}.{% endfor %}{% endfor %}"
    assert templates.check(source, {"ticket": templates.SAMPLE_TICKET}) is None
    # … and stops fast on a real ticket with a long summary (65,025 iterations).
    big = {**templates.SAMPLE_TICKET, "summary": "x" * 255}
    started = time.monotonic()
    with pytest.raises(TemplateError, match="loop iterations"):
        templates.render(source, {"ticket": big})
    assert time.monotonic() - started < 1.0
    with pytest.raises(TemplateError, match="longer than"):
        templates.render("{% for i in range(900) %}{{ ticket.summary }}{% endfor %}", {"ticket": big})


# --- hot reload and /readyz ------------------------------------------------------------------------


@pytest.mark.parametrize("hostile", ["laughs", "loops"])
def test_readyz_stays_fast_and_reports_a_hostile_hot_reload(settings, queue, config_file, monkeypatch, hostile):
    settings = dataclasses.replace(settings, config_poll_interval=0.05)
    intake_config(config_file)
    client = create_app(settings, queue=queue).test_client()
    watcher = client.application.extensions[_EXTENSION].config_watcher
    try:
        assert client.get("/readyz").json["config"]["reload"] == "ok"
        if hostile == "laughs":
            config_file.write_text(BILLION_LAUGHS, encoding="utf-8")
        else:
            rule_file(config_file, "Hello\n" + NESTED_SMALL_LOOPS)

        def reported() -> bool:
            started = time.monotonic()
            body = client.get("/readyz").json
            assert time.monotonic() - started < 0.5, "a /readyz answer took too long"
            return body["config"]["reload"] == "failed"

        assert wait_until(reported, timeout=10)
        response = client.get("/readyz")
        assert response.status_code == 200  # the last good config runs on
        assert f"{config_file}:" in response.json["config"]["error"] and response.json["config"]["at"]
        assert response.json["warnings"][0]["check"] == "config"
    finally:
        watcher.stop()


def test_readyz_never_checks_itself_and_answers_while_a_check_hangs(settings, queue, config_file, monkeypatch):
    intake_config(config_file)
    client = create_app(settings, queue=queue).test_client()
    watcher = client.application.extensions[_EXTENSION].config_watcher
    release, entered = threading.Event(), threading.Event()

    def hanging_load(path):
        entered.set()
        release.wait(30)
        raise ConfigError([])

    monkeypatch.setattr(reload_module, "load_config", hanging_load)
    monkeypatch.setattr(reload_module, "SLOW_CHECK", reload_module.timedelta(0))
    monkeypatch.setattr(watcher, "watch_in_background", lambda: None)  # no poll thread: only the check below
    intake_config(config_file, "Changed")
    checking = threading.Thread(target=watcher.check)
    checking.start()
    try:
        assert entered.wait(5)
        for _ in range(5):
            started = time.monotonic()
            body = client.get("/readyz").json
            assert time.monotonic() - started < 0.5
        assert body["status"] == "ready" and body["config"]["reload"] == "ok" and body["config"]["checking_since"]
    finally:
        release.set()
        checking.join(5)
    calls = []
    monkeypatch.setattr(reload_module, "load_config", lambda path: calls.append(path))
    client.get("/readyz")
    assert calls == []  # /readyz read the verdict and loaded nothing


def test_a_receiver_process_stays_ready_and_fast_through_a_hostile_hot_reload(tmp_path):
    config = intake_config(tmp_path / "rules.yaml")
    env = connector_env(tmp_path / "data", config, CONNECTOR_CONFIG_POLL_INTERVAL="0.2")
    process, url = receiver("receiver", env, tmp_path)
    try:
        wait_ready(url, process)
        assert requests.get(url + "/readyz", timeout=5).json()["config"]["reload"] == "ok"
        rule_file(config, "Hello\n" + NESTED_SMALL_LOOPS)

        def reported() -> bool:
            started = time.monotonic()
            body = requests.get(url + "/readyz", timeout=5).json()
            assert time.monotonic() - started < 1.0, "a /readyz answer took too long"
            return body["config"]["reload"] == "failed"

        assert wait_until(reported, timeout=15, interval=0.1), process.log()[-2000:]
        body = requests.get(url + "/readyz", timeout=5).json()
        assert f"{config}:7" in body["config"]["error"] and "loop iterations" in body["config"]["error"]
        assert requests.get(url + "/healthz", timeout=1).status_code == 200
        assert process.alive()
    finally:
        process.stop()


def test_a_deeply_nested_file_is_a_config_error(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nx: " + "[" * 20_000 + "]" * 20_000 + "\n", encoding="utf-8")
    message = rejected_fast(path, seconds=1.0)
    assert f"{path}:2:" in message and "nests more than 50 levels" in message
