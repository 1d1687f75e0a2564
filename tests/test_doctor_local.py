"""`connector doctor`'s host checks: the queue's storage and the calendars' holiday data."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest
from click.testing import CliRunner

from connector.calendar import CalendarConfig
from connector.cli import main
from connector.config import SupportConfig
from connector.doctor.checks import DoctorError, Status, render_json, render_text
from connector.doctor.local import check_calendars, check_queue
from connector.doctor.runner import run_doctor
from connector.settings import Settings
from tests.processes import REDIS_SERVER, RedisServer, free_port, needs_redis

NOV_2026 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def calendar_config(**calendar) -> SupportConfig:
    base = {"timezone": "Asia/Shanghai", "working_hours": {"mon": ["09:00-18:00"]}}
    return SupportConfig(calendars={"standard": CalendarConfig(**{**base, **calendar})})


# --- queue ------------------------------------------------------------------------------------


def test_a_writable_data_dir_is_ok(tmp_path):
    check = check_queue(Settings(data_dir=tmp_path / "data"))
    assert check.status is Status.OK and "queue.db" in check.found
    assert not (tmp_path / "data").exists()  # the doctor creates nothing


def test_a_data_dir_that_cannot_be_a_directory_fails(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    check = check_queue(Settings(data_dir=blocker / "data"))
    assert check.id == "queue.sqlite" and check.status is Status.FAIL
    assert "is not a directory" in check.found and "CONNECTOR_DATA_DIR" in check.fix


def test_an_unwritable_data_dir_fails(tmp_path, monkeypatch):
    # The tests may run as root, for whom chmod does not stop writes; make the write itself fail.
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    check = check_queue(Settings(data_dir=tmp_path))
    assert check.status is Status.FAIL and "Permission denied" in check.found and "writable" in check.fix




@needs_redis
def test_redis_without_appendonly_warns_with_the_fix():
    server = RedisServer().start()  # started with --appendonly no
    try:
        check = check_queue(Settings(queue_url=server.url))
    finally:
        server.stop()
    assert check.id == "queue.redis" and check.status is Status.WARN
    assert "appendonly is 'no'" in check.found and "appendonly yes" in check.fix


@needs_redis
def test_redis_with_appendonly_is_ok(tmp_path):
    import subprocess

    from tests.processes import wait_until

    port = free_port()
    process = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "yes", "--dir", str(tmp_path), "--daemonize", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        server = RedisServer(port)
        assert wait_until(server.ping, timeout=10)
        check = check_queue(Settings(queue_url=server.url))
    finally:
        process.terminate()
        process.wait(10)
    assert check.status is Status.OK and "append-only" in check.found


def test_an_unreachable_redis_fails_without_showing_the_password():
    check = check_queue(Settings(queue_url=f"redis://:hunter2@127.0.0.1:{free_port()}/0"))
    assert check.status is Status.FAIL and "does not answer" in check.found
    assert "hunter2" not in check.found + check.fix


# --- calendars ----------------------------------------------------------------------------------


def test_holidays_known_for_both_years_are_ok():
    [check] = check_calendars(calendar_config(holidays={"country": "DE"}), NOV_2026)
    assert check.id == "calendar.standard.holidays" and check.status is Status.OK


def test_next_years_schedule_not_yet_published_warns():
    # China publishes each year's holidays and make-up workdays late in the year before; the
    # installed package must list them (special_public_holidays) to count business time right.
    import holidays

    announced = max(holidays.country_holidays("CN").special_public_holidays)
    now = datetime(announced, 11, 26, tzinfo=timezone.utc)
    [check] = check_calendars(calendar_config(holidays={"country": "CN"}), now)
    assert check.status is Status.WARN and str(announced + 1) in check.found and "pip install -U holidays" in check.fix


def test_this_years_schedule_missing_fails():
    import holidays

    announced = max(holidays.country_holidays("CN").special_public_holidays)
    now = datetime(announced + 1, 1, 5, tzinfo=timezone.utc)
    checks = check_calendars(calendar_config(holidays={"country": "CN"}), now)
    assert [c.status for c in checks] == [Status.FAIL, Status.WARN]
    assert "extra_holidays" in checks[0].fix


def test_an_admins_own_days_cover_a_year():
    import holidays

    announced = max(holidays.country_holidays("CN").special_public_holidays)
    config = calendar_config(holidays={"country": "CN"}, extra_holidays=[date(announced + 1, 10, 1)])
    [check] = check_calendars(config, datetime(announced, 12, 1, tzinfo=timezone.utc))
    assert check.status is Status.OK


def test_a_year_beyond_the_packages_range_fails():
    checks = check_calendars(calendar_config(holidays={"country": "DE"}), datetime(2300, 1, 1, tzinfo=timezone.utc))
    assert {c.status for c in checks} == {Status.FAIL} and "pip install -U holidays" in checks[0].fix


# --- runner ------------------------------------------------------------------------------------


def test_no_platform_configured_fails(tmp_path):
    report = run_doctor(Settings(data_dir=tmp_path), calendar_config(holidays={"country": "DE"}), [])
    assert [c.id for c in report.checks if c.status is Status.FAIL] == ["platform.configured"]
    assert report.exit_code == 1
    body = json.loads(render_json(report))
    assert body["ok"] is False and body["counts"]["FAIL"] == 1
    assert render_text(report).splitlines()[-1].startswith("doctor FAILED")


def test_a_configured_platform_is_checked_and_an_unknown_one_is_a_usage_error(tmp_path):
    # Zendesk found in the environment without its credentials: its own check says what to set.
    settings = Settings(data_dir=tmp_path, zendesk_url="https://acme.zendesk.com")
    report = run_doctor(settings, calendar_config(holidays={"country": "DE"}), [])
    check = {c.id: c for c in report.checks}["zendesk.credentials"]
    assert check.status is Status.FAIL and "ZENDESK_TOKEN" in check.fix
    with pytest.raises(DoctorError, match="no checks for platform 'servicenow'"):
        run_doctor(settings, calendar_config(), ["servicenow"])


def test_the_command_without_a_platform_exits_1_after_the_host_checks(tmp_path):
    config = tmp_path / "rules.yaml"
    config.write_text("calendars:\n  standard:\n    timezone: UTC\n    working_hours: {mon: ['09:00-17:00']}\n"
                      "    holidays: {country: DE}\n", encoding="utf-8")
    env = {"CONNECTOR_CONFIG": str(config), "CONNECTOR_DATA_DIR": str(tmp_path / "data"), "JIRA_URL": None,
           "ZENDESK_URL": None, "CONNECTOR_QUEUE_URL": None}
    result = CliRunner().invoke(main, ["doctor", "--format", "json"], env=env)
    # No platform configured is the one FAIL; the host checks pass.
    body = json.loads(result.output)
    assert result.exit_code == 1
    assert {c["id"]: c["status"] for c in body["checks"]} == {
        "platform.configured": "FAIL", "queue.sqlite": "OK", "calendar.standard.holidays": "OK"}
