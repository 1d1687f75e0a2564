"""`connector sync --once` against a sandbox Jira, configured only through the environment."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.queue.reconcile_queue import ReconcileQueue
from connector.reconcile import set_runtime
from connector.sandbox.jira import JiraSandbox
from connector.sandbox.server import Clock
from connector.settings import Settings

INTAKE = {"Impact scope": "office", "Steps to reproduce": "connect", "Error message": "E1"}


@pytest.fixture
def jira():
    with JiraSandbox(clock=Clock(datetime.now(timezone.utc)), timezone="Asia/Shanghai",
                     deliver_webhooks=False) as sandbox:
        yield sandbox


@pytest.fixture
def env(jira, tmp_path, monkeypatch):
    values = {"JIRA_URL": jira.base_url, "JIRA_USER": jira.email, "JIRA_TOKEN": jira.api_token,
              "CONNECTOR_DATA_DIR": str(tmp_path / "data")}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("ZENDESK_URL", "CONNECTOR_QUEUE_URL", "CONNECTOR_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    set_runtime(None)
    yield values
    set_runtime(None)


def test_full_sweep_once_queues_what_needs_a_write_and_prints_a_summary(jira, env):
    now = jira.clock.now()
    needs_intake = jira.create_issue("VPN drops", description="drops", components=["network"],
                                     created=now - timedelta(minutes=5), fields={**INTAKE, "Occurred at": now})
    result = CliRunner().invoke(main, ["sync", "--once", "--full"])
    assert result.exit_code == 0, result.output
    assert "jira full sweep: 1 tickets, 1 evaluated without a fetch" in result.output
    assert "1 queued for a reconcile" in result.output
    queue = ReconcileQueue.from_settings(Settings.from_env())
    assert queue.pending_count() == 1
    assert jira.issue(needs_intake)["fields"]["comment"]["comments"] == []  # the sweep itself never writes


def test_sync_without_once_explains_where_periodic_sweeps_run(env):
    result = CliRunner().invoke(main, ["sync"])
    assert result.exit_code == 2 and "connector worker" in result.output


def test_unreachable_platform_is_reported_not_a_traceback(env, monkeypatch):
    monkeypatch.setenv("JIRA_TOKEN", "wrong-token")
    result = CliRunner().invoke(main, ["sync", "--once"])
    assert result.exit_code == 1
    assert "sweep stopped" in result.output and "JIRA_* settings" in result.output
