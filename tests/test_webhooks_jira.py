"""Contract tests of `POST /webhooks/jira` with captured Jira payloads, plus the health endpoints.

One test per fixture file: the status code Jira gets and what ends up in the (real, SQLite)
queue. Then the refusals in the order the endpoint checks them.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from connector.queue.reconcile_queue import ReconcileQueue
from connector.settings import Settings
from webhooks.app import MAX_BODY_BYTES, create_app
from webhooks.signatures import jira_signature

JIRA_FIXTURES = Path(__file__).parent / "fixtures" / "jira"


def waiting_tickets(queue: ReconcileQueue) -> list[tuple[str, str]]:
    return [tuple(task.args) for task in queue.huey.pending()]


def deliver(client, settings: Settings, body: bytes, *, secret: str | None = None, delivery_id: str | None = None, **headers):
    secret = secret or settings.jira_webhook_secrets[0]
    headers = {"X-Hub-Signature": jira_signature(secret, body), **headers}
    if delivery_id:
        headers["X-Atlassian-Webhook-Identifier"] = delivery_id
    return client.post("/webhooks/jira", data=body, headers=headers, content_type="application/json")


def fixture_body(name: str) -> bytes:
    return (JIRA_FIXTURES / name).read_bytes()


def event(webhook_event: str, issue_id: str = "10000", key: str = "SUP-1") -> bytes:
    return json.dumps({"webhookEvent": webhook_event, "issue": {"id": issue_id, "key": key}}).encode()


# --- one captured payload, one outcome ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "issue_id"),
    [
        ("issue_created.json", "10400"),
        ("issue_created_with_custom_fields.json", "10033"),
        ("created_v2.json", "10400"),
        ("created_with_unicode_v2.json", "10400"),
        ("issue_updated__status.json", "10000"),
        ("issue_updated__priority.json", "10000"),
        ("change_status_v2.json", "10000"),
        ("comment_created.json", "10000"),
        ("comment_updated.json", "10000"),
    ],
)
def test_ticket_event_queues_one_reconcile_of_the_issue(client, settings, queue, fixture, issue_id):
    response = deliver(client, settings, fixture_body(fixture))

    assert response.status_code == 202
    assert response.json == {"status": "queued"}
    assert waiting_tickets(queue) == [("jira", issue_id)]


def test_issue_deleted_is_answered_200_and_counted_without_queueing(client, settings, queue, metric):
    before = metric("connector_events_ignored_total", platform="jira", reason="ticket_deleted")

    response = deliver(client, settings, fixture_body("issue_deleted.json"))

    assert response.status_code == 200
    assert response.json == {"status": "ignored", "reason": "ticket_deleted"}
    assert waiting_tickets(queue) == []
    assert metric("connector_events_ignored_total", platform="jira", reason="ticket_deleted") == before + 1


def test_anomalous_payload_without_event_type_is_ignored(client, settings, queue, metric):
    before = metric("connector_events_ignored_total", platform="jira", reason="no_event_type")

    response = deliver(client, settings, fixture_body("example_anomalous_payload.json"))

    assert response.status_code == 200
    assert response.json["status"] == "ignored"
    assert waiting_tickets(queue) == []
    assert metric("connector_events_ignored_total", platform="jira", reason="no_event_type") == before + 1


# --- event vocabulary ---------------------------------------------------------------------------


def test_unknown_event_type_is_ignored_with_a_reason(client, settings, queue, metric):
    before = metric("connector_events_ignored_total", platform="jira", reason="unknown_event")

    response = deliver(client, settings, event("jira:something_new"))

    assert (response.status_code, response.json) == (200, {"status": "ignored", "reason": "unknown_event"})
    assert waiting_tickets(queue) == []
    assert metric("connector_events_ignored_total", platform="jira", reason="unknown_event") == before + 1


def test_known_but_unhandled_event_is_ignored(client, settings, queue):
    response = deliver(client, settings, event("worklog_created"))

    assert (response.status_code, response.json) == (200, {"status": "ignored", "reason": "unhandled_event"})
    assert waiting_tickets(queue) == []


def test_issue_key_is_used_when_the_event_has_no_issue_id(client, settings, queue):
    body = json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"key": "SUP-7"}}).encode()

    assert deliver(client, settings, body).status_code == 202
    assert waiting_tickets(queue) == [("jira", "SUP-7")]


@pytest.mark.parametrize("issue", [None, {}, {"id": "", "key": "  "}, {"id": True}])
def test_handled_event_without_an_issue_id_is_a_bad_request(client, settings, queue, issue):
    body = json.dumps({"webhookEvent": "comment_created", **({"issue": issue} if issue is not None else {})}).encode()

    response = deliver(client, settings, body)

    assert response.status_code == 400
    assert waiting_tickets(queue) == []


# --- Data Center comment events: the issue is named only by comment.self ------------------------


def test_data_center_comment_created_queues_the_issue_named_by_comment_self(client, settings, queue):
    # Captured from Jira 8.13 (Commit451/skyhook#152): no `issue`, no `user`, only the comment.
    payload = json.loads(fixture_body("comment_created__data_center.json"))
    assert "issue" not in payload

    response = deliver(client, settings, fixture_body("comment_created__data_center.json"))

    assert response.status_code == 202
    assert waiting_tickets(queue) == [("jira", "17334")]


def comment_event(self_url, event_type="comment_created"):
    return json.dumps({"webhookEvent": event_type, "comment": {"id": "10100", "self": self_url}}).encode()


@pytest.mark.parametrize("self_url", [
    "https://jira.example.org/rest/api/2/issue/10023/comment/10100",
    "https://jira.example.org/jira/rest/api/2/issue/10023/comment/10100",  # under a context path
    "http://jira.example.org:8080/rest/api/latest/issue/10023/comment/10100",
])
def test_comment_self_links_give_the_issue_id(client, settings, queue, self_url):
    assert deliver(client, settings, comment_event(self_url, "comment_updated")).status_code == 202
    assert waiting_tickets(queue) == [("jira", "10023")]


@pytest.mark.parametrize("self_url", [
    None, 42, "", "not a url", "ftp://jira.example.org/rest/api/2/issue/10023/comment/10100",
    "https://jira.example.org/rest/api/2/issue/SUP-1/comment/10100",  # a key is not what Jira writes there
    "https://jira.example.org/rest/api/2/issue/10023/comment/10100?issue=1",
    "https://jira.example.org/rest/api/2/issue/10023/comment/10100#x",
    "https://jira.example.org/rest/api/2/issue/10023/comment",
    "https://jira.example.org/rest/api/2/issue/10023/../10024/comment/10100",
    "https://jira.example.org/rest/api/2/issue/1%2F2/comment/10100",
    "https://jira.example.org:99999/rest/api/2/issue/10023/comment/10100",
    "https://jira.example.org/rest/api/2/issue/" + "9" * 40 + "/comment/10100",
    "https://jira.example.org/rest/api/2/issue/10023/comment/10100" + "/x" * 2000,
])
def test_comment_event_with_a_garbage_self_link_is_a_bad_request(client, settings, queue, self_url):
    response = deliver(client, settings, comment_event(self_url))

    assert response.status_code == 400
    assert waiting_tickets(queue) == []


def test_comment_self_link_of_another_site_is_refused_when_jira_url_is_set(data_dir, config_file, metric):
    settings = Settings(config_path=config_file, data_dir=data_dir, jira_url="https://jira.example.org/jira",
                        jira_webhook_secrets=("s",))
    queue = ReconcileQueue.from_settings(settings)
    client = create_app(settings, queue=queue).test_client()
    before = metric("connector_events_rejected_total", platform="jira", reason="foreign_site")

    for url in ("https://evil.example.net/jira/rest/api/2/issue/10023/comment/10100",
                "http://jira.example.org/jira/rest/api/2/issue/10023/comment/10100",  # another scheme
                "https://jira.example.org:8443/jira/rest/api/2/issue/10023/comment/10100",
                "https://jira.example.org/rest/api/2/issue/10023/comment/10100"):  # outside the context path
        assert deliver(client, settings, comment_event(url)).status_code == 400
    assert waiting_tickets(queue) == []
    assert metric("connector_events_rejected_total", platform="jira", reason="foreign_site") == before + 4

    same_site = "https://JIRA.example.org:443/jira/rest/api/2/issue/10023/comment/10100"
    assert deliver(client, settings, comment_event(same_site)).status_code == 202
    assert waiting_tickets(queue) == [("jira", "10023")]


def test_data_center_sandbox_comment_webhook_reaches_the_queue_by_comment_self(data_dir, config_file):
    from connector.sandbox.jira import AGENT, JiraSandbox

    with JiraSandbox(deployment="Server", deliver_webhooks=False, webhook_secret="dc-secret") as jira:
        key = jira.create_issue("VPN drops")
        jira.add_comment(key, "Looking into it", author=AGENT)
        [delivery] = [d for d in jira.webhook_log if d.event == "comment_created"]
        issue_id = jira.issue(key)["id"]
        settings = Settings(config_path=config_file, data_dir=data_dir, jira_url=jira.base_url,
                            jira_webhook_secrets=("dc-secret",))
    payload = json.loads(delivery.body)
    assert "issue" not in payload and "user" not in payload
    assert payload["comment"]["self"].endswith(f"/rest/api/2/issue/{issue_id}/comment/{payload['comment']['id']}")
    queue = ReconcileQueue.from_settings(settings)
    client = create_app(settings, queue=queue).test_client()

    response = client.post("/webhooks/jira", data=delivery.body, headers=delivery.headers,
                           content_type="application/json")

    assert response.status_code == 202
    assert waiting_tickets(queue) == [("jira", issue_id)]


# --- refusals, in the order they are checked ----------------------------------------------------


def test_no_secret_configured_answers_503_naming_the_variable(data_dir, config_file):
    settings = Settings(config_path=config_file, data_dir=data_dir)
    client = create_app(settings).test_client()

    response = client.post("/webhooks/jira", data=fixture_body("issue_created.json"))

    assert response.status_code == 503
    assert response.json == {"error": "webhook secret not configured; set JIRA_WEBHOOK_SECRET"}


def test_allow_unsigned_accepts_events_when_no_secret_is_configured(data_dir, config_file):
    settings = Settings(config_path=config_file, data_dir=data_dir)
    queue = ReconcileQueue.from_settings(settings)
    client = create_app(settings, queue=queue, allow_unsigned={"jira"}).test_client()

    response = client.post("/webhooks/jira", data=fixture_body("issue_created.json"))

    assert response.status_code == 202
    assert waiting_tickets(queue) == [("jira", "10400")]


def test_allow_unsigned_does_not_weaken_a_configured_secret(settings, queue):
    client = create_app(settings, queue=queue, allow_unsigned={"jira"}).test_client()

    response = client.post("/webhooks/jira", data=fixture_body("issue_created.json"))

    assert response.status_code == 401
    assert waiting_tickets(queue) == []


def test_allow_unsigned_rejects_unknown_platform_names(settings, queue):
    with pytest.raises(ValueError, match="servicenow"):
        create_app(settings, queue=queue, allow_unsigned={"servicenow"})


def test_empty_body_is_a_bad_request(client, settings):
    response = deliver(client, settings, b"")

    assert response.status_code == 400


def test_body_over_one_mebibyte_is_refused_before_reading(client, settings, queue, metric):
    before = metric("connector_events_rejected_total", platform="jira", reason="body_too_large")
    body = b'{"webhookEvent": "jira:issue_created", "issue": {"id": "1"}, "pad": "' + b"x" * (2 * MAX_BODY_BYTES) + b'"}'

    response = deliver(client, settings, body)

    assert response.status_code == 413
    assert waiting_tickets(queue) == []
    assert metric("connector_events_rejected_total", platform="jira", reason="body_too_large") == before + 1


def test_chunked_body_over_the_limit_is_refused_by_the_bytes_read(app, settings, queue):
    body = b"x" * (2 * MAX_BODY_BYTES)
    response = post_chunked(app, body, settings.jira_webhook_secrets[0])

    assert response.status_code == 413
    assert waiting_tickets(queue) == []


@pytest.mark.parametrize("chunked", [False, True])
def test_body_of_exactly_the_limit_passes_the_size_check(app, settings, chunked):
    body = b" " * (MAX_BODY_BYTES - 2) + b"{}"

    if chunked:
        response = post_chunked(app, body, settings.jira_webhook_secrets[0])
    else:
        response = deliver(app.test_client(), settings, body)

    assert response.status_code == 200  # a JSON object without webhookEvent: ignored, not 413


def post_chunked(app, body: bytes, secret: str):
    """A chunked request declares no Content-Length; the server marks its input as terminated."""
    return app.test_client().post(
        "/webhooks/jira",
        input_stream=io.BytesIO(body),
        headers={"X-Hub-Signature": jira_signature(secret, body), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_wrong_signature_is_401_and_nothing_is_queued(client, settings, queue):
    response = deliver(client, settings, fixture_body("issue_created.json"), secret="not-the-secret")

    assert response.status_code == 401
    assert response.json == {"error": "invalid or missing webhook signature"}
    assert waiting_tickets(queue) == []


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha1=0123456789abcdef0123456789abcdef01234567",
        "sha256=not-hex",
        "sha256=abcd",
    ],
)
def test_missing_or_malformed_signature_gets_the_same_401(client, queue, header):
    headers = {} if header is None else {"X-Hub-Signature": header}

    response = client.post("/webhooks/jira", data=fixture_body("issue_created.json"), headers=headers)

    assert response.status_code == 401
    assert response.json == {"error": "invalid or missing webhook signature"}
    assert waiting_tickets(queue) == []


def test_signature_over_a_different_body_is_refused(client, settings, queue):
    signed = fixture_body("issue_created.json")
    tampered = signed.replace(b'"10400"', b'"99999"')
    headers = {"X-Hub-Signature": jira_signature(settings.jira_webhook_secrets[0], signed)}

    response = client.post("/webhooks/jira", data=tampered, headers=headers)

    assert response.status_code == 401
    assert waiting_tickets(queue) == []


def test_secret_being_rotated_out_is_still_accepted(client, settings, queue):
    response = deliver(client, settings, fixture_body("comment_created.json"), secret=settings.jira_webhook_secrets[1])

    assert response.status_code == 202
    assert waiting_tickets(queue) == [("jira", "10000")]


def test_signature_is_checked_before_json(client):
    response = client.post("/webhooks/jira", data=b"not json", headers={"X-Hub-Signature": "sha256=" + "0" * 64})

    assert response.status_code == 401


def test_signed_body_that_is_not_json_is_a_bad_request(client, settings, queue):
    response = deliver(client, settings, b"webhookEvent=jira:issue_created")

    assert (response.status_code, response.json) == (400, {"error": "body is not JSON"})
    assert waiting_tickets(queue) == []


def test_json_that_is_not_an_object_is_a_bad_request(client, settings):
    assert deliver(client, settings, b'["jira:issue_created"]').status_code == 400


# --- duplicates ----------------------------------------------------------------------------------


def test_redelivery_with_the_same_identifier_queues_one_reconcile(client, settings, queue):
    body = fixture_body("issue_updated__status.json")

    answers = [deliver(client, settings, body, delivery_id="a5f3c2e1-0001").status_code for _ in range(3)]

    assert answers == [202, 200, 200]
    assert waiting_tickets(queue) == [("jira", "10000")]


def test_duplicate_is_answered_200_never_409(client, settings):
    body = fixture_body("issue_created.json")
    deliver(client, settings, body, delivery_id="d-1")

    response = deliver(client, settings, body, delivery_id="d-1")

    assert (response.status_code, response.json) == (200, {"status": "duplicate"})


def test_two_events_for_one_issue_waiting_in_the_queue_collapse(client, settings, queue):
    first = deliver(client, settings, fixture_body("issue_updated__priority.json"), delivery_id="e-1")
    second = deliver(client, settings, fixture_body("comment_created.json"), delivery_id="e-2")

    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json == {"status": "duplicate"}
    assert waiting_tickets(queue) == [("jira", "10000")]


def test_events_for_different_issues_queue_one_reconcile_each(client, settings, queue):
    deliver(client, settings, event("jira:issue_updated", issue_id="1"))
    deliver(client, settings, event("jira:issue_updated", issue_id="2"))

    assert sorted(waiting_tickets(queue)) == [("jira", "1"), ("jira", "2")]


def test_receiver_never_reconciles_inline(client, settings, queue, monkeypatch):
    def reconcile_must_not_run(platform, ticket_id):
        raise AssertionError("the receiver called the reconciler")

    monkeypatch.setattr(ReconcileQueue, "reconcile", staticmethod(reconcile_must_not_run))

    assert deliver(client, settings, fixture_body("issue_created.json")).status_code == 202


# --- queue failures --------------------------------------------------------------------------------


def make_queue_file_unopenable(queue: ReconcileQueue, data_dir: Path) -> None:
    """A real storage failure: the SQLite file is replaced by a directory SQLite cannot open."""
    queue.huey.storage.close()
    for path in data_dir.glob("queue.db*"):
        path.unlink()
    (data_dir / "queue.db").mkdir()


def test_queue_that_cannot_store_the_event_answers_503(client, settings, queue, data_dir, metric):
    before = metric("connector_events_rejected_total", platform="jira", reason="queue_unavailable")
    make_queue_file_unopenable(queue, data_dir)

    response = deliver(client, settings, fixture_body("issue_created.json"), delivery_id="lost-1")

    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert metric("connector_events_rejected_total", platform="jira", reason="queue_unavailable") == before + 1


def test_delivery_refused_with_503_is_accepted_when_jira_retries_it(client, settings, queue, monkeypatch):
    body = fixture_body("issue_created.json")

    def storage_full(**admission):
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as patch:
        patch.setattr(queue.admission, "admit", storage_full)
        assert deliver(client, settings, body, delivery_id="retry-me").status_code == 503
    assert waiting_tickets(queue) == []

    retried = deliver(client, settings, body, delivery_id="retry-me")

    assert retried.status_code == 202
    assert waiting_tickets(queue) == [("jira", "10400")]


# --- health endpoints ------------------------------------------------------------------------------


def test_healthz_answers_while_the_process_lives(client, queue, data_dir):
    make_queue_file_unopenable(queue, data_dir)

    assert client.get("/healthz").status_code == 200


def test_readyz_passes_when_queue_is_writable_and_config_loads(client):
    response = client.get("/readyz")

    assert (response.status_code, response.json["status"]) == (200, "ready")
    assert response.json["config"]["reload"] == "ok" and "warnings" not in response.json


def test_readyz_names_an_unwritable_queue_and_the_fix(client, queue, data_dir):
    make_queue_file_unopenable(queue, data_dir)

    response = client.get("/readyz")

    assert response.status_code == 503
    [failure] = response.json["failed"]
    assert failure["check"] == "queue"
    assert str(data_dir) in failure["fix"] and "CONNECTOR_DATA_DIR" in failure["fix"]


def test_readyz_names_a_config_that_does_not_load(settings, queue, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nrules: 3\n", encoding="utf-8")
    client = create_app(Settings(**{**settings.__dict__, "config_path": broken}), queue=queue).test_client()

    response = client.get("/readyz")

    assert response.status_code == 503
    [failure] = response.json["failed"]
    assert failure["check"] == "config"
    assert "broken.yaml:2" in failure["error"]
    assert "connector check-config" in failure["fix"]


def test_metrics_expose_the_counters_and_the_queue_depth(client, settings):
    deliver(client, settings, fixture_body("issue_created.json"))
    deliver(client, settings, event("worklog_created"))
    deliver(client, settings, fixture_body("issue_created.json"), secret="wrong")

    response = client.get("/metrics")

    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert 'connector_events_received_total{event="jira:issue_created",platform="jira"}' in text
    assert 'connector_events_ignored_total{platform="jira",reason="unhandled_event"}' in text
    assert 'connector_events_rejected_total{platform="jira",reason="bad_signature"}' in text
    assert "connector_queue_depth 1.0" in text
