"""Contract tests of `POST /webhooks/zendesk` with Zendesk event and trigger payloads."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from connector.queue.reconcile_queue import ReconcileQueue
from connector.settings import Settings
from webhooks.app import MAX_BODY_BYTES, create_app
from webhooks.signatures import ReplayWindow, verify_zendesk_signature, zendesk_signature

ZENDESK_FIXTURES = Path(__file__).parent / "fixtures" / "zendesk"


def waiting_tickets(queue: ReconcileQueue) -> list[tuple[str, str]]:
    return [tuple(task.args) for task in queue.huey.pending()]


def zendesk_timestamp(at: datetime | None = None) -> str:
    return (at or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


def deliver(client, settings: Settings, body: bytes, *, secret: str | None = None, timestamp: str | None = None, **headers):
    secret = secret or settings.zendesk_webhook_secrets[0]
    timestamp = timestamp or zendesk_timestamp()
    signed = {
        "X-Zendesk-Webhook-Signature": zendesk_signature(secret, timestamp, body),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
    }
    return client.post("/webhooks/zendesk", data=body, headers={**signed, **headers}, content_type="application/json")


def fixture_body(name: str) -> bytes:
    return (ZENDESK_FIXTURES / name).read_bytes()


def ticket_event(event_type: str, ticket_id: str = "5158", event_id: str = "evt-1") -> bytes:
    return json.dumps(
        {"type": event_type, "id": event_id, "subject": f"zen:ticket:{ticket_id}", "detail": {"id": ticket_id}}
    ).encode()


# --- one captured payload, one outcome ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "ticket_id"),
    [
        ("event_ticket_created.json", "5158"),
        ("event_ticket_comment_added.json", "5158"),
        ("event_ticket_status_changed.json", "5158"),
        ("event_ticket_priority_changed.json", "5158"),
        ("event_ticket_agent_assignment_changed.json", "5158"),
        ("trigger_ticket_create_update.json", "7"),
    ],
)
def test_ticket_payload_queues_one_reconcile_of_the_ticket(client, settings, queue, fixture, ticket_id):
    response = deliver(client, settings, fixture_body(fixture))

    assert (response.status_code, response.json) == (202, {"status": "queued"})
    assert waiting_tickets(queue) == [("zendesk", ticket_id)]


# --- event vocabulary -----------------------------------------------------------------------------


def test_ticket_id_is_taken_from_the_subject_when_detail_lacks_it(client, settings, queue):
    body = json.dumps({"type": "zen:event-type:ticket.tags_changed", "id": "e", "subject": "zen:ticket:42", "detail": {}}).encode()

    assert deliver(client, settings, body).status_code == 202
    assert waiting_tickets(queue) == [("zendesk", "42")]


@pytest.mark.parametrize("event_type", ["zen:event-type:ticket.soft_deleted", "zen:event-type:ticket.permanently_deleted"])
def test_deleted_ticket_is_answered_200_and_counted(client, settings, queue, metric, event_type):
    before = metric("connector_events_received_total", platform="zendesk", event=event_type)

    response = deliver(client, settings, ticket_event(event_type))

    assert (response.status_code, response.json) == (200, {"status": "ignored", "reason": "ticket_deleted"})
    assert waiting_tickets(queue) == []
    assert metric("connector_events_received_total", platform="zendesk", event=event_type) == before + 1


def test_non_ticket_zendesk_event_is_ignored(client, settings, queue):
    body = json.dumps({"type": "zen:event-type:user.created", "id": "u-1", "detail": {"id": "99"}}).encode()

    response = deliver(client, settings, body)

    assert (response.status_code, response.json) == (200, {"status": "ignored", "reason": "unhandled_event"})
    assert waiting_tickets(queue) == []


def test_unknown_payload_is_ignored(client, settings, queue, metric):
    before = metric("connector_events_ignored_total", platform="zendesk", reason="unknown_event")

    response = deliver(client, settings, b'{"hello": "world"}')

    assert (response.status_code, response.json) == (200, {"status": "ignored", "reason": "unknown_event"})
    assert waiting_tickets(queue) == []
    assert metric("connector_events_ignored_total", platform="zendesk", reason="unknown_event") == before + 1


@pytest.mark.parametrize("ticket_id", ["{{ticket.id}}", "", None, "7a"])
def test_trigger_body_without_a_usable_ticket_id_is_a_bad_request(client, settings, queue, ticket_id):
    response = deliver(client, settings, json.dumps({"ticket_id": ticket_id, "ticket_title": "Hello"}).encode())

    assert response.status_code == 400
    assert waiting_tickets(queue) == []


def test_ticket_event_without_any_ticket_id_is_a_bad_request(client, settings, queue):
    body = json.dumps({"type": "zen:event-type:ticket.created", "id": "e", "detail": {}}).encode()

    assert deliver(client, settings, body).status_code == 400
    assert waiting_tickets(queue) == []


# --- refusals ---------------------------------------------------------------------------------------


def test_no_secret_configured_answers_503_naming_the_variable(data_dir, config_file):
    client = create_app(Settings(config_path=config_file, data_dir=data_dir)).test_client()

    response = client.post("/webhooks/zendesk", data=fixture_body("event_ticket_created.json"))

    assert (response.status_code, response.json) == (503, {"error": "webhook secret not configured; set ZENDESK_WEBHOOK_SECRET"})


def test_wrong_signature_is_401_and_nothing_is_queued(client, settings, queue):
    response = deliver(client, settings, fixture_body("event_ticket_created.json"), secret="not-the-secret")

    assert (response.status_code, response.json) == (401, {"error": "invalid or missing webhook signature"})
    assert waiting_tickets(queue) == []


def test_missing_signature_headers_are_401(client, queue):
    response = client.post("/webhooks/zendesk", data=fixture_body("event_ticket_created.json"))

    assert response.status_code == 401
    assert waiting_tickets(queue) == []


def test_signature_must_cover_the_timestamp(client, settings, queue):
    body = fixture_body("event_ticket_created.json")
    signed_at = zendesk_timestamp()
    other = zendesk_timestamp(datetime.now(timezone.utc) - timedelta(seconds=30))
    headers = {
        "X-Zendesk-Webhook-Signature": zendesk_signature(settings.zendesk_webhook_secrets[0], signed_at, body),
        "X-Zendesk-Webhook-Signature-Timestamp": other,
    }

    assert client.post("/webhooks/zendesk", data=body, headers=headers).status_code == 401


def test_secret_being_rotated_out_is_still_accepted(client, settings, queue):
    response = deliver(client, settings, fixture_body("event_ticket_created.json"), secret=settings.zendesk_webhook_secrets[1])

    assert response.status_code == 202


@pytest.mark.parametrize("age", [timedelta(minutes=6), timedelta(minutes=-2)])
def test_timestamp_outside_the_replay_window_is_401(client, settings, queue, age):
    old = zendesk_timestamp(datetime.now(timezone.utc) - age)

    response = deliver(client, settings, fixture_body("event_ticket_created.json"), timestamp=old)

    assert response.status_code == 401
    assert waiting_tickets(queue) == []


def test_replay_window_is_configurable(settings, queue):
    client = create_app(settings, queue=queue, zendesk_replay_window=ReplayWindow(max_age=timedelta(hours=1))).test_client()
    half_an_hour_ago = zendesk_timestamp(datetime.now(timezone.utc) - timedelta(minutes=30))

    response = deliver(client, settings, fixture_body("event_ticket_created.json"), timestamp=half_an_hour_ago)

    assert response.status_code == 202


def test_replay_window_edges():
    secret, body, now = "s", b"{}", datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)

    def accepted(at: datetime) -> bool:
        timestamp = zendesk_timestamp(at)
        return verify_zendesk_signature([secret], body, zendesk_signature(secret, timestamp, body), timestamp, now=now)

    assert accepted(now - timedelta(minutes=5))
    assert not accepted(now - timedelta(minutes=5, seconds=1))
    assert accepted(now + timedelta(minutes=1))
    assert not accepted(now + timedelta(minutes=1, seconds=1))


def test_body_over_one_mebibyte_is_413(client, settings, queue):
    response = deliver(client, settings, b'{"ticket_id": "7", "pad": "' + b"x" * (2 * MAX_BODY_BYTES) + b'"}')

    assert response.status_code == 413
    assert waiting_tickets(queue) == []


def test_signed_body_that_is_not_json_is_a_bad_request(client, settings):
    response = deliver(client, settings, b"ticket_id=7")

    assert (response.status_code, response.json) == (400, {"error": "body is not JSON"})


# --- duplicates -------------------------------------------------------------------------------------


def test_same_event_delivered_three_times_queues_one_reconcile(client, settings, queue):
    body = fixture_body("event_ticket_status_changed.json")

    answers = [deliver(client, settings, body).json["status"] for _ in range(3)]

    assert answers == ["queued", "duplicate", "duplicate"]
    assert waiting_tickets(queue) == [("zendesk", "5158")]


def test_different_events_for_one_waiting_ticket_collapse(client, settings, queue):
    deliver(client, settings, fixture_body("event_ticket_created.json"))
    second = deliver(client, settings, fixture_body("event_ticket_comment_added.json"))

    assert (second.status_code, second.json) == (200, {"status": "duplicate"})
    assert waiting_tickets(queue) == [("zendesk", "5158")]


def test_same_ticket_number_on_jira_and_zendesk_are_different_tickets(client, settings, queue):
    from webhooks.signatures import jira_signature

    jira_body = json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"id": "5158"}}).encode()
    client.post("/webhooks/jira", data=jira_body, headers={"X-Hub-Signature": jira_signature(settings.jira_webhook_secrets[0], jira_body)})
    deliver(client, settings, fixture_body("event_ticket_created.json"))

    assert sorted(waiting_tickets(queue)) == [("jira", "5158"), ("zendesk", "5158")]


# --- events caused by the connector's own writes ------------------------------------------------


def actor_event(actor_id: str, ticket_id: str = "5158", event_id: str = "evt-own") -> bytes:
    return json.dumps({"type": "zen:event-type:ticket.tags_changed", "id": event_id, "subject": f"zen:ticket:{ticket_id}",
                       "detail": {"id": ticket_id, "actor_id": actor_id}, "event": {}}).encode()


@pytest.fixture
def zendesk():
    from connector.sandbox.zendesk import ZendeskSandbox

    with ZendeskSandbox(deliver_webhooks=False) as sandbox:
        yield sandbox


def connector_settings(settings, sandbox):
    from dataclasses import replace

    return replace(settings, zendesk_url=sandbox.base_url, zendesk_email=sandbox.email, zendesk_token=sandbox.api_token)


def identity_known(app) -> bool:
    from tests.processes import wait_until

    return wait_until(lambda: app.extensions["connector"].zendesk_identity.user_id() is not None, timeout=10)


def test_events_caused_by_the_connector_are_not_reconciled_again(settings, queue, zendesk):
    from connector.sandbox.zendesk import AGENT, CONNECTOR

    settings = connector_settings(settings, zendesk)
    app = create_app(settings, queue=queue)
    client = app.test_client()
    assert identity_known(app)

    own = deliver(client, settings, actor_event(str(CONNECTOR)))
    assert own.status_code == 200 and own.get_json()["status"] == "ignored"
    assert waiting_tickets(queue) == []
    human = deliver(client, settings, actor_event(str(AGENT), event_id="evt-human"))
    assert human.status_code == 202 and waiting_tickets(queue) == [("zendesk", "5158")]
    assert zendesk.count("GET", "/api/v2/users/me.json") == 1  # the identity is asked for once


def test_unknown_identity_never_costs_an_event(settings, queue, zendesk):
    from connector.sandbox.zendesk import CONNECTOR

    zendesk.inject(503, path_prefix="/api/v2/users/me", times=None)
    settings = connector_settings(settings, zendesk)
    client = create_app(settings, queue=queue).test_client()
    response = deliver(client, settings, actor_event(str(CONNECTOR)))
    assert response.status_code == 202 and waiting_tickets(queue) == [("zendesk", "5158")]

    # A failed lookup is not repeated per event (no storm against a struggling Zendesk).
    from tests.processes import wait_until

    assert wait_until(lambda: zendesk.count("GET", "/api/v2/users/me.json") >= 1, timeout=10)
    for n in range(5):
        deliver(client, settings, actor_event(str(CONNECTOR), ticket_id=str(200 + n), event_id=f"evt-{n}"))
    assert zendesk.count("GET", "/api/v2/users/me.json") == 1


def test_a_slow_identity_lookup_never_holds_a_webhook(settings, queue, zendesk):
    """Zendesk answers users/me after 2.5 s: every webhook meanwhile is answered at once (the
    connector's own change included, reconciled once more rather than waited for), and only
    afterwards are own changes recognised."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from connector.sandbox.zendesk import CONNECTOR

    zendesk.inject(None, delay=2.5, path_prefix="/api/v2/users/me", times=None)
    settings = connector_settings(settings, zendesk)
    app = create_app(settings, queue=queue)

    def timed_delivery(n: int) -> tuple[int, float]:
        started = time.monotonic()
        response = deliver(app.test_client(), settings, actor_event(str(CONNECTOR), ticket_id=str(100 + n),
                                                                    event_id=f"evt-{n}"))
        return response.status_code, time.monotonic() - started

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(timed_delivery, range(16)))
    assert [status for status, _ in answers] == [202] * 16
    assert max(seconds for _, seconds in answers) < 1.0
    assert len(waiting_tickets(queue)) == 16

    assert identity_known(app)
    late = deliver(app.test_client(), settings, actor_event(str(CONNECTOR), ticket_id="999", event_id="evt-late"))
    assert late.status_code == 200 and late.get_json() == {"status": "ignored", "reason": "own_change"}
    assert zendesk.count("GET", "/api/v2/users/me.json") == 1  # one lookup, however many events waited
