"""Config hot reload: a valid edit takes over the next reconcile, a broken one is rejected.

Unit tests of `ConfigWatcher`, `/readyz` of a receiver whose file was broken after start,
and real `connector worker` / `connector serve --no-worker` processes reloading on SIGHUP
and on a file change, reconciling tickets of the sandbox Jira (in this process) in between
so the config in force is read off the comment it wrote.
"""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import pytest
import requests

from connector.queue.reconcile_queue import ReconcileQueue
from connector.reload import ConfigWatcher
from connector.sandbox.jira import CONNECTOR, JiraSandbox
from connector.settings import Settings
from tests.processes import (
    connector_env, intake_config, live_jira, receiver, wait_ready, wait_until, worker,
)
from webhooks.app import create_app

BROKEN = "version: 1\nrules:\n  - id: intake\n    type: required-fields\n    fields: [environment]\n    comment: 3\n"


def break_config(path: Path) -> None:
    path.write_text(BROKEN, encoding="utf-8")


# --- the watcher ---------------------------------------------------------------------------------


def test_valid_edit_replaces_the_config_and_a_broken_one_keeps_the_last_good(tmp_path, caplog):
    path = intake_config(tmp_path / "rules.yaml", "Intake A")
    accepted = []
    watcher = ConfigWatcher(path, on_change=accepted.append)
    assert watcher.check() == "reloaded" and watcher.problem() is None
    assert watcher.check() == "unchanged"

    intake_config(path, "Intake Bee")
    assert watcher.check() == "reloaded"
    assert "Intake Bee" in accepted[-1].rules[0].comment.template

    break_config(path)
    assert watcher.check() == "rejected"
    assert len(accepted) == 2 and watcher.config is accepted[-1]  # the last good one runs on
    problem = watcher.problem()
    assert problem["blocking"] == "no" and f"{path}:6" in problem["error"] and "check-config" in problem["fix"]
    [record] = [r for r in caplog.records if r.getMessage() == "config.reload_rejected"]
    assert any(f"{path}:6" in p for p in record.problems)
    assert watcher.check() == "unchanged"  # rejected once per edit, not on every poll

    intake_config(path, "Intake C")
    assert watcher.check() == "reloaded" and watcher.problem() is None


def test_a_config_that_never_loaded_blocks_readiness(tmp_path):
    path = tmp_path / "rules.yaml"
    break_config(path)
    watcher = ConfigWatcher(path)
    assert watcher.check() == "rejected"
    assert watcher.problem()["blocking"] == "yes"


def test_readyz_reports_a_rejected_reload_but_stays_ready(settings, queue, config_file, monkeypatch):
    # /readyz only reads the verdict; the watcher's poll thread (started by the first
    # /readyz of the process) checks the files.
    settings = dataclasses.replace(settings, config_poll_interval=0.05)
    client = create_app(settings, queue=queue).test_client()
    ready = client.get("/readyz").json
    assert ready["status"] == "ready" and "warnings" not in ready and ready["config"]["reload"] == "ok"

    break_config(config_file)
    assert wait_until(lambda: "warnings" in client.get("/readyz").json, timeout=10)
    response = client.get("/readyz")

    assert response.status_code == 200
    [warning] = response.json["warnings"]
    assert warning["check"] == "config" and f"{config_file}:6" in warning["error"]
    assert warning["running"].startswith("the last good config")
    assert response.json["config"]["reload"] == "failed" and f"{config_file}:6" in response.json["config"]["error"]

    intake_config(config_file)
    assert wait_until(lambda: "warnings" not in client.get("/readyz").json, timeout=10)
    assert client.get("/readyz").json["config"]["reload"] == "ok"
    receiver_watcher(client).stop()


def receiver_watcher(client) -> ConfigWatcher:
    from webhooks.app import _EXTENSION

    return client.application.extensions[_EXTENSION].config_watcher


# --- real processes ----------------------------------------------------------------------------


@pytest.fixture
def jira():
    yield from live_jira()


def intake_comment(jira: JiraSandbox, queue: ReconcileQueue, n: int) -> str:
    """Seed a ticket, queue its reconcile and return the comment the worker wrote."""
    key = jira.create_issue(f"VPN drops {n}", description="drops", components=["network"])
    queue.enqueue_reconcile("jira", jira.issue(key)["id"])

    def written() -> list[str]:
        return [c["body"] for c in jira.issue(key)["fields"]["comment"]["comments"] if c["author"]["accountId"] == CONNECTOR]

    assert wait_until(lambda: written(), timeout=30), f"{key} was not reconciled"
    [body] = written()
    return body


def test_worker_reloads_on_sighup_and_rejects_a_broken_config(tmp_path, jira):
    config = intake_config(tmp_path / "rules.yaml", "Intake A")
    env = connector_env(tmp_path / "data", config, jira_url=jira.base_url, CONNECTOR_CONFIG_POLL_INTERVAL="3600")
    queue = ReconcileQueue.from_settings(Settings(data_dir=tmp_path / "data"))
    process = worker("worker", env, tmp_path, threads=1)
    try:
        assert intake_comment(jira, queue, 1).startswith("Intake A")

        intake_config(config, "Intake B")
        assert intake_comment(jira, queue, 2).startswith("Intake A")  # no signal, no poll yet: unchanged
        process.signal(signal.SIGHUP)
        assert wait_until(lambda: any(e["event"] == "config.reloaded" for e in process.events()), timeout=10)
        assert intake_comment(jira, queue, 3).startswith("Intake B")

        break_config(config)
        process.signal(signal.SIGHUP)
        assert wait_until(lambda: any(e["event"] == "config.reload_rejected" for e in process.events()), timeout=10)
        [rejected] = [e for e in process.events() if e["event"] == "config.reload_rejected"]
        assert any(f"{config}:6" in p for p in rejected["problems"])
        assert intake_comment(jira, queue, 4).startswith("Intake B")  # the last good config runs on
        assert process.alive()
    finally:
        assert process.stop() == 0


def test_worker_picks_up_a_changed_file_by_itself(tmp_path, jira):
    config = intake_config(tmp_path / "rules.yaml", "Intake A")
    env = connector_env(tmp_path / "data", config, jira_url=jira.base_url, CONNECTOR_CONFIG_POLL_INTERVAL="0.2")
    queue = ReconcileQueue.from_settings(Settings(data_dir=tmp_path / "data"))
    process = worker("worker", env, tmp_path, threads=1)
    try:
        assert intake_comment(jira, queue, 1).startswith("Intake A")
        intake_config(config, "Intake B")
        assert wait_until(lambda: any(e["event"] == "config.reloaded" for e in process.events()), timeout=10)
        assert intake_comment(jira, queue, 2).startswith("Intake B")
    finally:
        process.stop()


def test_receiver_keeps_the_verdict_across_a_sighup_restart(tmp_path):
    config = intake_config(tmp_path / "rules.yaml")
    process, url = receiver("receiver", connector_env(tmp_path / "data", config), tmp_path)
    try:
        wait_ready(url, process)
        break_config(config)
        process.signal(signal.SIGHUP)  # gunicorn replaces its HTTP worker

        def warned() -> bool:
            response = requests.get(url + "/readyz", timeout=5)
            return response.status_code == 200 and bool(response.json().get("warnings"))

        assert wait_until(warned, timeout=15), process.log()[-2000:]
        assert f"{config}:6" in requests.get(url + "/readyz", timeout=5).json()["warnings"][0]["error"]
    finally:
        process.stop()
