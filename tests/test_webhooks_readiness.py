"""What `/readyz`, `/metrics` and the start banner say about states an operator must not miss:
unsigned webhooks accepted (`--allow-unsigned`), and a Redis queue that would lose acknowledged
events on a restart. Redis tests use a real redis-server; the banner test a real `connector serve`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import requests

from connector.queue.reconcile_queue import ReconcileQueue
from connector.settings import Settings
from tests.processes import (
    ConnectorProcess,
    RedisServer,
    connector_env,
    free_port,
    intake_config,
    jira_headers,
    needs_redis,
    wait_ready,
)
from webhooks.app import create_app

JIRA_EVENT = json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"id": "10001", "key": "SUP-1"}}).encode()
ZENDESK_EVENT = json.dumps({"ticket_id": "7"}).encode()


def without_config(body: dict) -> dict:
    """The readiness body without the last reload's report (`config`: ok/failed, when)."""
    return {key: value for key, value in body.items() if key != "config"}


# --- --allow-unsigned ---------------------------------------------------------------------------


def test_unsigned_mode_is_a_readyz_warning_and_a_gauge_and_a_set_secret_wins(settings, queue, metric):
    settings = replace(settings, jira_webhook_secrets=())  # Zendesk keeps its secret
    client = create_app(settings, queue=queue, allow_unsigned={"jira", "zendesk"}).test_client()

    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["status"] == "ready"
    [warning] = ready.json["warnings"]
    assert warning["check"] == "webhook_signatures" and warning["platforms"] == ["jira"]
    assert "JIRA_WEBHOOK_SECRET" in warning["fix"]
    assert metric("connector_unsigned_webhooks_allowed", platform="jira") == 1
    assert metric("connector_unsigned_webhooks_allowed", platform="zendesk") == 0

    # The secret wins: Zendesk's unsigned delivery is refused although the flag names it.
    assert client.post("/webhooks/zendesk", data=ZENDESK_EVENT, content_type="application/json").status_code == 401
    assert client.post("/webhooks/jira", data=JIRA_EVENT, content_type="application/json").status_code == 202


def test_signed_receiver_shows_no_unsigned_warning(client, metric):
    assert without_config(client.get("/readyz").json) == {"status": "ready"}
    assert metric("connector_unsigned_webhooks_allowed", platform="jira") == 0
    assert metric("connector_unsigned_webhooks_allowed", platform="zendesk") == 0


def test_serve_banner_readyz_and_metrics_tell_the_truth_when_a_secret_is_set_anyway(tmp_path):
    """`connector serve --allow-unsigned jira --allow-unsigned zendesk` with JIRA_WEBHOOK_SECRET set:
    Jira stays signed (banner, /readyz, gauge and the endpoint agree), Zendesk is unsigned."""
    env = connector_env(tmp_path / "data", intake_config(tmp_path / "rules.yaml"))
    port = free_port()
    process = ConnectorProcess("serve", ["serve", "--no-worker", "--port", str(port), "--allow-unsigned", "jira",
                                         "--allow-unsigned", "zendesk"], env, tmp_path).start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        ready = requests.get(url + "/readyz", timeout=10).json()
        metrics = requests.get(url + "/metrics", timeout=10).text
        unsigned_jira = requests.post(url + "/webhooks/jira", data=JIRA_EVENT, timeout=10,
                                      headers={"Content-Type": "application/json"})
        signed_jira = requests.post(url + "/webhooks/jira", data=JIRA_EVENT, timeout=10,
                                    headers=jira_headers(JIRA_EVENT, "d-1"))
        unsigned_zendesk = requests.post(url + "/webhooks/zendesk", data=ZENDESK_EVENT, timeout=10,
                                         headers={"Content-Type": "application/json"})
    finally:
        process.stop()
    banner = process.log()
    assert "unsigned jira webhooks are accepted" not in banner
    assert "--allow-unsigned jira is ignored: JIRA_WEBHOOK_SECRET is set" in banner
    assert "WARNING: unsigned zendesk webhooks are accepted" in banner
    [warning] = ready["warnings"]
    assert warning["check"] == "webhook_signatures" and warning["platforms"] == ["zendesk"]
    assert 'connector_unsigned_webhooks_allowed{platform="jira"} 0.0' in metrics
    assert 'connector_unsigned_webhooks_allowed{platform="zendesk"} 1.0' in metrics
    assert (unsigned_jira.status_code, signed_jira.status_code, unsigned_zendesk.status_code) == (401, 202, 202)


# --- Redis persistence --------------------------------------------------------------------------


def redis_client(settings: Settings, queue_url: str):
    queue = ReconcileQueue.from_settings(replace(settings, queue_url=queue_url))
    return create_app(replace(settings, queue_url=queue_url), queue=queue).test_client()


@needs_redis
def test_readyz_warns_when_redis_does_not_persist(settings, redis_server):
    """The fixture's redis-server runs with `--appendonly no --save ""`, like many container images."""
    ready = redis_client(settings, redis_server.url).get("/readyz")

    assert ready.status_code == 200 and ready.json["queue_persistence"] == "not_persisting"
    [warning] = ready.json["warnings"]
    assert warning["check"] == "queue_persistence" and "appendonly no" in warning["error"]
    assert "appendonly yes" in warning["fix"] and "appendfsync everysec" in warning["fix"]


@needs_redis
def test_readyz_is_quiet_when_redis_persists_every_second_and_warns_when_fsync_is_left_to_the_os(settings,
                                                                                                 tmp_path: Path):
    import redis

    server = RedisServer(appendonly_dir=tmp_path).start()
    try:
        client = redis_client(settings, server.url)
        ready = client.get("/readyz")
        assert (ready.status_code, without_config(ready.json)) == (200, {"status": "ready", "queue_persistence": "persisting"})

        redis.Redis.from_url(server.url).config_set("appendfsync", "no")  # the OS flushes when it likes (~30 s)
        ready = client.get("/readyz")
    finally:
        server.stop()
    assert ready.json["queue_persistence"] == "not_persisting"
    [warning] = ready.json["warnings"]
    assert "appendfsync no" in warning["error"]


@needs_redis
def test_a_redis_that_refuses_config_is_unknown_not_an_error(settings, redis_server):
    """A managed Redis's ACL denies CONFIG to the application's user: readiness stays 200, no warning."""
    import redis

    admin = redis.Redis.from_url(redis_server.url)
    admin.execute_command("ACL", "SETUSER", "app", "on", ">app-password", "~*", "&*", "+@all", "-config")
    url = f"redis://app:app-password@127.0.0.1:{redis_server.port}/0"

    ready = redis_client(settings, url).get("/readyz")

    assert (ready.status_code, without_config(ready.json)) == (200, {"status": "ready", "queue_persistence": "unknown"})
