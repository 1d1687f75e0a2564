"""What a sender controls cannot grow the receiver's state: ticket and delivery ids are
validated before they are queued or logged, and metric label values come from a closed set."""

from __future__ import annotations

import json
import logging
import random
import string
from datetime import datetime, timezone

import pytest

from connector.metrics import OTHER, REGISTRY
from connector.queue.reconcile_queue import ReconcileQueue
from webhooks.signatures import jira_signature, zendesk_signature

HUGE_KEY = "SUP-" + "9" * 900_000  # a 900 KB "issue key": queued and logged whole before


def waiting_tickets(queue: ReconcileQueue) -> list[tuple[str, str]]:
    return [tuple(task.args) for task in queue.huey.pending()]


def post_jira(client, settings, payload: dict, **headers):
    body = json.dumps(payload).encode()
    signed = {"X-Hub-Signature": jira_signature(settings.jira_webhook_secrets[0], body), **headers}
    return client.post("/webhooks/jira", data=body, headers=signed, content_type="application/json")


def post_zendesk(client, settings, payload: dict, **headers):
    body = json.dumps(payload).encode()
    timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    signed = {
        "X-Zendesk-Webhook-Signature": zendesk_signature(settings.zendesk_webhook_secrets[0], timestamp, body),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
        **headers,
    }
    return client.post("/webhooks/zendesk", data=body, headers=signed, content_type="application/json")


def longest_log_line(caplog) -> int:
    return max((len(repr(record.__dict__)) for record in caplog.records), default=0)


# --- ticket ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "issue",
    [
        {"key": HUGE_KEY},
        {"id": "1" * 65},
        {"id": "10000; DROP"},
        {"id": "ten"},
        {"id": -5},
        {"id": ["10000"]},
        {"key": "sup-1"},  # project keys are upper case
        {"key": "SUP-1\nforged log line"},
        {"key": "SUP-"},
        {"id": "", "key": "1SUP-3"},
    ],
)
def test_a_malformed_jira_issue_id_is_refused_before_it_is_queued_or_logged(client, settings, queue, caplog, metric,
                                                                            issue):
    caplog.set_level(logging.DEBUG)
    response = post_jira(client, settings, {"webhookEvent": "jira:issue_updated", "issue": issue},
                         **{"X-Atlassian-Webhook-Identifier": "d-1"})

    assert response.status_code == 400
    assert "Jira issue id" in response.json["error"] and len(response.data) < 200
    assert waiting_tickets(queue) == []
    assert metric("connector_events_rejected_total", platform="jira", reason="bad_ticket_id") >= 1
    assert longest_log_line(caplog) < 2_000
    assert not any("queued" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(("issue", "queued"), [
    ({"id": "10000", "key": "SUP-1"}, "10000"),
    ({"id": 10001}, "10001"),
    ({"key": "MY_PROJ2-77"}, "MY_PROJ2-77"),
    ({"id": "", "key": "R2D2-5"}, "R2D2-5"),
])
def test_jira_issue_ids_and_keys_of_real_shapes_are_queued(client, settings, queue, issue, queued):
    response = post_jira(client, settings, {"webhookEvent": "jira:issue_updated", "issue": issue})

    assert response.status_code == 202
    assert waiting_tickets(queue) == [("jira", queued)]


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "zen:event-type:ticket.status_changed", "id": "e1", "detail": {"id": "5" * 900_000}},
        {"type": "zen:event-type:ticket.status_changed", "id": "e1", "detail": {"id": "12345678901234567890"}},
        {"type": "zen:event-type:ticket.status_changed", "id": "e1", "detail": {}, "subject": "zen:ticket:" + "7" * 70},
        {"type": "zen:event-type:ticket.status_changed", "id": "e1", "detail": {"id": "0"}},
        {"type": "zen:event-type:ticket.status_changed", "id": "e1", "detail": {"id": {"nested": 1}}},
        {"ticket_id": "{{ticket.id}}"},
        {"ticket_id": "7 OR 1=1"},
        {"ticket_id": "SUP-1"},
    ],
)
def test_a_malformed_zendesk_ticket_id_is_refused_before_it_is_queued_or_logged(client, settings, queue, caplog,
                                                                               payload):
    caplog.set_level(logging.DEBUG)
    response = post_zendesk(client, settings, payload)

    assert response.status_code == 400
    assert response.json["error"].startswith("ticket id is not a Zendesk ticket id")
    assert waiting_tickets(queue) == []
    assert longest_log_line(caplog) < 2_000


def test_an_oversized_delivery_id_is_refused_and_nothing_is_queued(client, settings, queue, caplog):
    caplog.set_level(logging.DEBUG)
    payload = {"type": "zen:event-type:ticket.status_changed", "id": "e" * 100_000, "detail": {"id": "5158"}}

    response = post_zendesk(client, settings, payload)

    assert (response.status_code, response.json["error"][:11]) == (400, "delivery id")
    assert waiting_tickets(queue) == []
    assert longest_log_line(caplog) < 2_000


def test_a_zendesk_id_of_19_digits_is_a_ticket_id(client, settings, queue):
    response = post_zendesk(client, settings, {"ticket_id": "9223372036854775807"})

    assert response.status_code == 202
    assert waiting_tickets(queue) == [("zendesk", "9223372036854775807")]


# --- metric labels ------------------------------------------------------------------------------


def label_values(metric_name: str, label: str) -> set[str]:
    return {sample.labels[label] for family in REGISTRY.collect() if family.name == metric_name
            for sample in family.samples if label in sample.labels}


def random_word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase + "_") for _ in range(rng.randint(3, 30)))


def test_a_thousand_random_event_types_leave_the_label_set_bounded(client, settings, queue):
    rng = random.Random(12)
    for n in range(1_000):
        platform = ("jira", "zendesk")[n % 2]
        if platform == "zendesk":
            post_zendesk(client, settings, {"type": f"zen:event-type:ticket.{random_word(rng)}", "id": f"e-{n}",
                                            "detail": {"id": str(n + 1)}})
        else:
            post_jira(client, settings, {"webhookEvent": random_word(rng), "issue": {"id": str(n + 1)}})

    from connector.metrics import IGNORE_REASONS, JIRA_EVENT_LABELS, REJECT_REASONS, ZENDESK_EVENT_LABELS

    events = label_values("connector_events_received", "event")
    assert events <= JIRA_EVENT_LABELS | ZENDESK_EVENT_LABELS | {OTHER}
    assert OTHER in events  # the 500 random Zendesk ticket event types: counted, as `other`
    assert label_values("connector_events_ignored", "reason") <= IGNORE_REASONS | {OTHER}
    assert label_values("connector_events_rejected", "reason") <= REJECT_REASONS | {OTHER}
    assert len(waiting_tickets(queue)) == 500  # every random Zendesk ticket event was still handled


def test_every_event_and_reason_the_receiver_uses_has_its_own_label():
    """The closed sets in connector.metrics must not drift from the blueprints' vocabularies."""
    from connector.metrics import IGNORE_REASONS, JIRA_EVENT_LABELS, ZENDESK_EVENT_LABELS, event_label
    from webhooks.jira import EVENT_HANDLERS, IGNORED_EVENTS
    from webhooks.zendesk import DELETED_EVENT_HANDLERS, TRIGGER_EVENT

    assert set(EVENT_HANDLERS) | IGNORED_EVENTS <= JIRA_EVENT_LABELS
    assert set(DELETED_EVENT_HANDLERS) | {TRIGGER_EVENT} <= ZENDESK_EVENT_LABELS
    assert event_label("zendesk", "zen:event-type:ticket.status_changed") == "zen:event-type:ticket.status_changed"
    assert event_label("zendesk", "zen:event-type:ticket.evil_" + "x" * 50) == OTHER
    assert event_label("jira", "zen:event-type:ticket.status_changed") == OTHER  # other platform's vocabulary
    assert "duplicate" in IGNORE_REASONS
