"""Team chat end to end through webhooks: sandbox Jira / Zendesk → signed webhook → receiver →
queue → worker (two threads) → reconcile → outbox → `deliver_chat` task → the chat stand-in,
which verifies DingTalk / Feishu signatures and the generic HMAC like the vendors.

A P0 whose first response is breached gives exactly one message per channel – also when the
webhooks are replayed, when a timer fires again, and when two reconciles of the ticket race;
a P2 ticket (not routed) gives none; observe mode records the notification and sends nothing.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from connector.reconcile import reconcile
from connector.sandbox.server import Clock
from connector.stack import LocalStack
from tests.chat_support import ALL_CHANNELS, chat_config_file

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
JIRA_INTAKE = {"Impact scope": "all stores", "Steps to reproduce": "Pay", "Error message": "HTTP 502",
               "Occurred at": FRIDAY - timedelta(hours=1)}
ZENDESK_INTAKE = {"Category": "outage", "Impact scope": "all stores", "Steps to reproduce": "Pay",
                  "Error message": "HTTP 502", "Occurred at": "2026-11-20", "Environment": "POS 4.2"}
PRESETS = ("dingtalk", "wecom", "feishu", "slack", "teams", "generic")


def per_preset(chat) -> dict[str, int]:
    return {p: len(chat.received(p)) for p in PRESETS}


def replay_webhooks(sandbox) -> None:
    """Send every webhook again, byte for byte (what a platform's retry does)."""
    for delivery in list(sandbox.webhook_log):
        if delivery.url:
            requests.post(delivery.url, data=delivery.body, headers=delivery.headers, timeout=5)


def race(stack, platform: str, ticket_id: str, sandbox, write_path: str) -> None:
    """Two reconciles of one ticket at once, outside the queue's per-ticket lock; the
    platform holds each write back a moment, so both read the ticket before either writes
    and both plan (and post) the notice – the outbox must still send one message."""
    sandbox.inject(None, delay=0.6, times=2, method="POST" if platform == "jira" else "PUT", path_prefix=write_path)
    threads = [threading.Thread(target=reconcile, args=(stack.runtime, platform, ticket_id)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.fixture
def jira_stack(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY), config_path=chat_config_file(tmp_path), chat=True,
                    workers=2) as stack:
        yield stack


def jira_issue(stack, priority="Highest", summary="Checkout down", age=timedelta(hours=1)):
    return stack.jira.create_issue(summary, description="502", priority=priority, components=["outage"],
                                   environment="POS 4.2", created=FRIDAY - age, fields=JIRA_INTAKE)


def test_jira_p0_breach_gives_one_message_per_channel(jira_stack):
    stack = jira_stack
    key = jira_issue(stack)
    stack.settle()
    assert per_preset(stack.chat) == {p: 1 for p in PRESETS}
    text = stack.chat.received("dingtalk")[0].text
    assert key in text and "SLA breached" in text and "first response" in text
    assert stack.chat.received("dingtalk")[0].body["msgtype"] == "markdown"
    assert stack.chat.received("generic")[0].body["ticket"] == key
    # Replayed webhooks and a second run of the pump: nothing more.
    replay_webhooks(stack.jira)
    stack.settle()
    stack.pump()
    stack.settle()
    assert per_preset(stack.chat) == {p: 1 for p in PRESETS}
    assert all(e.state == "sent" for e in stack.queue.chat.outbox.entries())
    assert stack.chat.failed_runs == []


def test_jira_two_workers_racing_at_the_breach_send_one_message(jira_stack):
    stack = jira_stack
    key = jira_issue(stack, age=timedelta(minutes=20))
    stack.settle()
    assert sum(per_preset(stack.chat).values()) == 0  # 20 of 30 minutes: no breach yet
    stack.clock.advance(timedelta(minutes=15))
    race(stack, "jira", key, stack.jira, "/rest/api/2/issue/")
    stack.settle()
    notices = [c for c in stack.jira.issue(key)["fields"]["comment"]["comments"] if "SLA breached" in c["body"]]
    assert len(notices) == 2  # both workers wrote the notice (the race the outbox must absorb)
    assert per_preset(stack.chat) == {p: 1 for p in PRESETS}


def test_jira_p2_gives_no_chat_message(jira_stack):
    stack = jira_stack
    key = jira_issue(stack, priority="Medium", summary="Report export slow")
    stack.clock.advance(timedelta(hours=8))  # P2's 4 business hours of first response are over
    stack.settle()
    reconcile(stack.runtime, "jira", key)
    stack.settle()
    assert any("SLA breached" in c["body"] for c in stack.jira.issue(key)["fields"]["comment"]["comments"])
    assert per_preset(stack.chat) == {p: 0 for p in PRESETS}
    assert stack.queue.chat.outbox.entries() == []


def test_jira_chat_outage_is_retried_and_the_comment_is_not_held_up(jira_stack):
    stack = jira_stack
    stack.queue.chat.first_delay = 0.05
    stack.chat.faults.inject(500, times=2, path_prefix="/dingtalk")
    stack.chat.faults.inject(429, retry_after=1, times=1, path_prefix="/slack")
    key = jira_issue(stack)
    stack.settle()
    assert any("SLA breached" in c["body"] for c in stack.jira.issue(key)["fields"]["comment"]["comments"])
    assert per_preset(stack.chat) == {p: 1 for p in PRESETS}
    attempts = {e.channel: e.attempts for e in stack.queue.chat.outbox.entries()}
    assert attempts["ops-dingtalk"] == 3 and attempts["ops-slack"] == 2 and attempts["ops-wecom"] == 1


def test_observe_mode_records_the_notification_and_sends_nothing(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY), config_path=chat_config_file(tmp_path), chat=True,
                    mode="observe") as stack:
        key = jira_issue(stack)
        stack.settle()
        assert stack.chat.requests == 0 and per_preset(stack.chat) == {p: 0 for p in PRESETS}
        assert stack.queue.chat.outbox.entries() == []
        observed = [o for o in stack.queue.observations.latest() if o.ticket_key == key and o.rule == "sla"
                    and o.action == "comment"]
        assert observed
        chat = observed[0].details["chat"]
        assert sorted(n["channel"] for n in chat) == sorted(ALL_CHANNELS)
        assert key in chat[0]["text"]


# --- Zendesk ----------------------------------------------------------------------------------


@pytest.fixture
def zendesk_stack(tmp_path):
    channels = {name: ALL_CHANNELS[name] for name in ("ops-dingtalk", "ops-feishu", "ops-slack")}
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY), zendesk=True, chat=True, workers=2,
                    config_path=chat_config_file(tmp_path, channels)) as stack:
        yield stack


def zendesk_ticket(stack, priority="urgent", subject="Checkout down", age=timedelta(hours=1)):
    return stack.zendesk.create_ticket(subject, "502 on every checkout", priority=priority,
                                       custom_fields=ZENDESK_INTAKE, created=FRIDAY - age)


def test_zendesk_p0_breach_gives_one_message_per_channel(zendesk_stack):
    stack = zendesk_stack
    ticket_id = zendesk_ticket(stack)
    stack.settle()
    counts = per_preset(stack.chat)
    assert (counts["dingtalk"], counts["feishu"], counts["slack"]) == (1, 1, 1)
    assert str(ticket_id) in stack.chat.received("slack")[0].text
    replay_webhooks(stack.zendesk)
    stack.settle()
    assert per_preset(stack.chat) == counts


def test_zendesk_two_workers_racing_at_the_breach_send_one_message(zendesk_stack):
    stack = zendesk_stack
    ticket_id = zendesk_ticket(stack, age=timedelta(minutes=20))
    stack.settle()
    assert sum(per_preset(stack.chat).values()) == 0
    stack.clock.advance(timedelta(minutes=15))
    race(stack, "zendesk", str(ticket_id), stack.zendesk, "/api/v2/tickets/")
    stack.settle()
    counts = per_preset(stack.chat)
    assert (counts["dingtalk"], counts["feishu"], counts["slack"]) == (1, 1, 1)


def test_zendesk_p2_gives_no_chat_message(zendesk_stack):
    stack = zendesk_stack
    ticket_id = zendesk_ticket(stack, priority="normal", subject="Report export slow")
    stack.clock.advance(timedelta(hours=8))
    reconcile(stack.runtime, "zendesk", str(ticket_id))
    stack.settle()
    assert sum(per_preset(stack.chat).values()) == 0


def test_jira_worker_killed_between_comment_and_release_still_sends_once(jira_stack, monkeypatch):
    """The comment and its marker are written, the release never happens (the worker died):
    the next reconcile sees the marker on the ticket and releases the staged message."""
    from connector.channels import delivery as chat_hooks

    stack = jira_stack

    def killed(*args):
        raise RuntimeError("worker killed after the write")

    monkeypatch.setattr(chat_hooks, "after_write", killed)
    monkeypatch.setattr(chat_hooks, "recover", lambda *args: 0)  # nor does anything else run first
    key = jira_issue(stack)
    stack.settle()
    assert any("SLA breached" in c["body"] for c in stack.jira.issue(key)["fields"]["comment"]["comments"])
    assert sum(per_preset(stack.chat).values()) == 0
    assert {e.state for e in stack.queue.chat.outbox.entries()} == {"staged"}
    monkeypatch.undo()
    reconcile(stack.runtime, "jira", key)
    stack.settle()
    reconcile(stack.runtime, "jira", key)
    stack.settle()
    assert per_preset(stack.chat) == {p: 1 for p in PRESETS}


def test_a_slow_chat_service_never_holds_up_the_reconcile(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY), config_path=chat_config_file(tmp_path), chat=True,
                    workers=0) as stack:
        stack.chat.faults.inject(None, delay=3.0, times=None, path_prefix="/dingtalk")
        key = jira_issue(stack)
        started = time.monotonic()
        outcome = reconcile(stack.runtime, "jira", key)
        assert time.monotonic() - started < 2.0 and outcome.outcome == "applied"
        assert any("SLA breached" in c["body"] for c in stack.jira.issue(key)["fields"]["comment"]["comments"])
        assert stack.chat.requests == 0  # queued for the delivery task, not sent by the reconcile
        assert {e.state for e in stack.queue.chat.outbox.entries()} == {"ready"}


def test_the_demo_prints_what_the_team_chat_received():
    from connector.demo import run_demo

    lines: list[str] = []
    assert run_demo(echo=lines.append) == 0
    text = "\n".join(lines)
    chat = text.split("=== Team chat", 1)[1].split("\n\n", 1)[0]
    assert "each signed and verified" in chat and "SLA breached on SUP-2 (P0)" in chat
    assert "L2 did not respond within 1h" in chat
    assert "Reports page" not in chat  # a P2 story: no chat message
