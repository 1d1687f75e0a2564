"""End to end on Zendesk: the zenpy-based adapter over HTTP against the sandbox Zendesk, for
every step of the standard process, replays, rate limits and no-ops."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from connector.config import load_config
from connector.queue.reconcile_queue import ReconcileQueue
from connector.queue.worker import WorkerThreads
from connector.reconcile import Runtime, reconcile, set_runtime
from connector.sandbox.server import Clock, ThreadedServer
from connector.sandbox.zendesk import AGENT, CONNECTOR, CUSTOMER, GROUPS, ZendeskSandbox
from connector.settings import DEFAULT_CONFIG, Settings

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
INTAKE = {"Category": "network", "Impact scope": "Shanghai office", "Steps to reproduce": "Connect, wait",
          "Error message": "ERR_TIMEOUT", "Occurred at": "2026-11-20"}
SECRET = "zendesk-e2e-secret"


def sandbox_config():
    """The standard process, with the sandbox account's group ids (what an admin maps once)."""
    config = load_config(DEFAULT_CONFIG)
    config.platforms.zendesk.groups = {name: str(group_id) for name, group_id in GROUPS.items()}
    return config


@pytest.fixture
def zendesk():
    with ZendeskSandbox(clock=Clock(FRIDAY), deliver_webhooks=False) as sandbox:
        yield sandbox


@pytest.fixture
def runtime(zendesk):
    settings = Settings(zendesk_url=zendesk.base_url, zendesk_email=zendesk.email, zendesk_token=zendesk.api_token)
    return Runtime(settings=settings, config=sandbox_config(), clock=zendesk.clock.now)


def connector_comments(zendesk, ticket_id):
    return [e for audit in zendesk.audits(ticket_id) for e in audit["events"]
            if e["type"] == "Comment" and e["author_id"] == CONNECTOR]


def writes(zendesk):
    return sum(n for call, n in zendesk.calls.items() if call.method != "GET")


def new_ticket(zendesk, **overrides):
    args = {"custom_fields": {**INTAKE, "Environment": "Windows 11"}, "created": FRIDAY - timedelta(minutes=5)}
    args.update(overrides)
    return zendesk.create_ticket("VPN drops", "The VPN drops every few minutes", **args)


def test_intake_request_then_reporter_completes_and_ticket_is_routed(zendesk, runtime):
    ticket_id = new_ticket(zendesk, custom_fields={k: v for k, v in INTAKE.items() if k != "Error message"})
    assert reconcile(runtime, "zendesk", str(ticket_id)).outcome == "applied"
    [request] = connector_comments(zendesk, ticket_id)
    assert request["public"] is True and "Exact error message" in request["body"]
    assert "Environment (OS / browser / product version)" in request["body"]
    assert zendesk.ticket(ticket_id)["status"] == "pending"
    zendesk.set_fields(ticket_id, {"Environment": "Windows 11", "Error message": "E1"}, author=CUSTOMER)
    reconcile(runtime, "zendesk", str(ticket_id))
    ticket = zendesk.ticket(ticket_id)
    assert ticket["status"] == "open" and ticket["group_id"] == GROUPS["network-team"]
    assert {"spc-intake-requested", "spc-intake-complete"} <= set(ticket["tags"])
    assert len(connector_comments(zendesk, ticket_id)) == 1


def test_p0_without_response_gets_one_breach_notice_and_escalation(zendesk, runtime):
    ticket_id = new_ticket(zendesk, priority="urgent", custom_fields={**INTAKE, "Category": "outage",
                                                                     "Environment": "POS 4.2"},
                           created=FRIDAY - timedelta(hours=1))
    reconcile(runtime, "zendesk", str(ticket_id))
    reconcile(runtime, "zendesk", str(ticket_id))
    bodies = [c["body"] for c in connector_comments(zendesk, ticket_id)]
    # Zendesk takes one comment per update: same-visibility notices travel joined in one.
    assert sum(b.count("SLA breached") for b in bodies) == 1
    assert sum(b.count("no first response within 30m") for b in bodies) == 1
    assert all(c["public"] is False for c in connector_comments(zendesk, ticket_id))
    ticket = zendesk.ticket(ticket_id)
    assert ticket["group_id"] == GROUPS["L2"]
    assert {"spc-sla-breach-first_response", "spc-escalation-l2-first-response"} <= set(ticket["tags"])


def test_solved_without_root_cause_is_reopened_with_the_missing_items(zendesk, runtime):
    ticket_id = new_ticket(zendesk, created=FRIDAY - timedelta(hours=2), group="L1",
                           history=[(FRIDAY - timedelta(hours=1), "open")])
    reconcile(runtime, "zendesk", str(ticket_id))
    zendesk.set_status(ticket_id, "solved", author=AGENT)
    assert reconcile(runtime, "zendesk", str(ticket_id)).outcome == "applied"
    assert zendesk.ticket(ticket_id)["status"] == "open"
    [notice] = [c for c in connector_comments(zendesk, ticket_id) if "moved back" in c["body"]]
    assert "Root cause" in notice["body"] and notice["public"] is False


def test_closed_p1_gets_follow_up_due(zendesk, runtime):
    ticket_id = new_ticket(zendesk, priority="high", group="L1", created=FRIDAY - timedelta(hours=2),
                           custom_fields={**INTAKE, "Environment": "Okta", "Root cause": "cert", "Solution": "renewed",
                                          "Verification result": "resolved",
                                          "Knowledge base link": "https://kb.example.com/sso-cert"},
                           history=[(FRIDAY - timedelta(hours=1), "open")])
    zendesk.add_comment(ticket_id, "Fixing it", author=AGENT, at=FRIDAY - timedelta(minutes=50))
    zendesk.set_status(ticket_id, "solved", author=AGENT)
    reconcile(runtime, "zendesk", str(ticket_id))
    ticket = zendesk.ticket(ticket_id)
    assert ticket["status"] == "solved"
    follow_up = zendesk.field_id("Follow-up due")
    assert {f["id"]: f["value"] for f in ticket["custom_fields"]}[follow_up] == "2026-11-25"


def test_reconcile_with_nothing_to_change_sends_no_write(zendesk, runtime):
    ticket_id = new_ticket(zendesk, group="L1")
    reconcile(runtime, "zendesk", str(ticket_id))
    zendesk.reset_calls()
    assert reconcile(runtime, "zendesk", str(ticket_id)).outcome == "noop"
    assert writes(zendesk) == 0
    assert zendesk.count(method="GET") == 2  # the ticket and its audits


def test_injected_429_is_waited_out_for_at_least_retry_after(zendesk, runtime):
    ticket_id = new_ticket(zendesk, group="L1")
    reconcile(runtime, "zendesk", str(ticket_id))
    zendesk.inject(429, retry_after=1, times=1, path_prefix="/api/v2/tickets/")
    started = time.monotonic()
    assert reconcile(runtime, "zendesk", str(ticket_id)).outcome == "noop"
    assert time.monotonic() - started >= 1.0
    assert zendesk.count(status=429) == 1


def test_replayed_and_reordered_webhooks_give_one_comment_per_action(tmp_path):
    """The full path: signed event webhooks → receiver → SQLite queue → worker → zenpy."""
    from webhooks.app import create_app

    with ZendeskSandbox(clock=Clock(FRIDAY), deliver_webhooks=False, webhook_secret=SECRET) as zendesk:
        settings = Settings(data_dir=tmp_path / "data", zendesk_url=zendesk.base_url, zendesk_email=zendesk.email,
                            zendesk_token=zendesk.api_token, zendesk_webhook_secrets=(SECRET,))
        queue = ReconcileQueue.from_settings(settings)
        receiver = ThreadedServer(create_app(settings, queue=queue))
        url = f"{receiver.start()}/webhooks/zendesk"
        set_runtime(Runtime(settings=settings, config=sandbox_config(), clock=zendesk.clock.now))
        try:
            ticket_id = new_ticket(zendesk, custom_fields={k: v for k, v in INTAKE.items() if k != "Error message"})
            zendesk.add_comment(ticket_id, "Any news?", author=CUSTOMER)
            deliveries = zendesk.webhook_log * 3
            random.Random(7).shuffle(deliveries)
            answers = [requests.post(url, data=d.body, headers=d.headers, timeout=5).status_code for d in deliveries]
            assert set(answers) <= {200, 202} and 202 in answers
            with WorkerThreads(queue, workers=2, poll_interval=0.02):
                deadline = time.monotonic() + 20
                while (queue.pending_count() or not connector_comments(zendesk, ticket_id)) and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(0.5)
        finally:
            receiver.stop()
            set_runtime(None)
        comments = connector_comments(zendesk, ticket_id)
        assert len(comments) == 1 and "please add" in comments[0]["body"]
        assert "spc-intake-requested" in zendesk.ticket(ticket_id)["tags"]
