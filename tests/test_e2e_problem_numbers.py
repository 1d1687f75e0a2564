"""Problem numbers end to end: the real `jira` / `zenpy` clients through the adapters and
`reconcile`, over HTTP against the strict sandboxes, with the claim in the real queue file.

Each ticket gets its number exactly once, nothing is written again on the next reconcile, a
write that failed after the claim gets the SAME number on the next reconcile (the sequence
does not move), and a field the site will not take is reported, naming it, without a loop.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.config import load_config
from connector.metrics import REGISTRY
from connector.platforms.base import HostError
from connector.queue.reconcile_queue import ReconcileQueue
from connector.reconcile import Runtime, reconcile
from connector.sandbox.jira import JiraSandbox
from connector.sandbox.server import Clock
from connector.sandbox.zendesk import GROUPS, ZendeskSandbox
from connector.settings import Settings
from connector.stack import LocalStack
from tests.test_problem_numbers import enabled_config_file

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
JIRA_INTAKE = {"Impact scope": "Shanghai office", "Steps to reproduce": "Connect, wait",
               "Error message": "ERR_TIMEOUT", "Occurred at": FRIDAY - timedelta(hours=1)}
ZENDESK_INTAKE = {"Category": "network", "Impact scope": "Shanghai office", "Steps to reproduce": "Connect, wait",
                  "Error message": "ERR_TIMEOUT", "Occurred at": "2026-11-20", "Environment": "Windows 11"}


def refused(platform: str, what: str) -> float:
    return REGISTRY.get_sample_value("connector_writes_refused_total", {"platform": platform, "what": what}) or 0.0


# --- Jira ---------------------------------------------------------------------------------


@pytest.fixture
def jira():
    with JiraSandbox(clock=Clock(FRIDAY), timezone="Asia/Shanghai", deliver_webhooks=False,
                     validate_responses=True) as sandbox:
        yield sandbox
        assert sandbox.spec_violations == []


@pytest.fixture
def jira_runtime(jira, tmp_path):
    settings = Settings(jira_url=jira.base_url, jira_user=jira.email, jira_token=jira.api_token,
                        data_dir=tmp_path / "data")
    return Runtime(settings=settings, config=load_config(enabled_config_file(tmp_path)), clock=jira.clock.now,
                   numbers=ReconcileQueue.from_settings(settings).problem_numbers)


def jira_number(jira, key):
    field = jira.store.field_by_name_or_id("Problem number").id
    return jira.issue(key)["fields"][field]


def new_issue(jira, summary="VPN drops"):
    return jira.create_issue(summary, description="drops", components=["network"], environment="Win 11",
                             created=FRIDAY - timedelta(minutes=5), fields=JIRA_INTAKE)


def test_jira_issue_gets_its_number_once(jira, jira_runtime):
    first, second = new_issue(jira), new_issue(jira, "Printer jam")
    assert reconcile(jira_runtime, "jira", first).outcome == "applied"
    reconcile(jira_runtime, "jira", second)
    assert jira_number(jira, first) == "TS20261120001"
    assert jira_number(jira, second) == "TS20261120002"
    # Idempotent: the next reconcile writes nothing (and claims nothing new).
    jira.reset_calls()
    again = reconcile(jira_runtime, "jira", first)
    assert again.result is None or again.result.writes == []
    assert jira.count(method="PUT") == 0
    assert jira_number(jira, first) == "TS20261120001"
    assert jira_runtime.numbers.claim("jira", "x", "problem-number", "TS20261120", FRIDAY.date(), 3) == "TS20261120003"


def test_jira_write_failed_after_the_claim_gets_the_same_number(jira, jira_runtime):
    key = new_issue(jira)
    jira.inject(503, times=None, method="PUT", path_prefix="/rest/api/2/issue/")
    with pytest.raises(HostError):
        reconcile(jira_runtime, "jira", key)
    assert jira_number(jira, key) is None
    jira.clear_faults()
    reconcile(jira_runtime, "jira", key)
    assert jira_number(jira, key) == "TS20261120001"  # the number claimed before the failure
    other = new_issue(jira, "Printer jam")
    reconcile(jira_runtime, "jira", other)
    assert jira_number(jira, other) == "TS20261120002"  # the sequence moved once per ticket


def test_jira_field_off_the_edit_screen_is_reported_and_not_retried(jira, jira_runtime):
    jira.take_off_edit_screen("Problem number")
    key = new_issue(jira)
    before = refused("jira", "field")
    outcome = reconcile(jira_runtime, "jira", key)
    field = jira.store.field_by_name_or_id("Problem number").id
    assert any(field in r and "'Problem number'" in r for r in outcome.result.refused)
    assert refused("jira", "field") == before + 1
    assert jira_number(jira, key) is None
    jira.reset_calls()
    again = reconcile(jira_runtime, "jira", key)
    assert jira.count(method="PUT") == 0 and any(field in r for r in again.result.refused)
    # The admin puts the field on the screen: the ticket gets the number it was given first.
    jira.put_on_edit_screen("Problem number")
    reconcile(jira_runtime, "jira", key)
    assert jira_number(jira, key) == "TS20261120001"


def test_jira_through_webhooks_and_workers(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY), config_path=enabled_config_file(tmp_path)) as stack:
        keys = [new_issue(stack.jira, f"Ticket {n}") for n in range(4)]
        stack.settle()
        numbers = [jira_number(stack.jira, key) for key in keys]
        assert sorted(numbers) == [f"TS20261120{n:03d}" for n in range(1, 5)]
        # An agent's later edit (an event, a reconcile) never changes a number.
        stack.jira.add_comment(keys[0], "Looking into it")
        stack.settle()
        assert [jira_number(stack.jira, key) for key in keys] == numbers


# --- Zendesk ------------------------------------------------------------------------------


@pytest.fixture
def zendesk():
    with ZendeskSandbox(clock=Clock(FRIDAY), deliver_webhooks=False) as sandbox:
        yield sandbox


@pytest.fixture
def zendesk_runtime(zendesk, tmp_path):
    settings = Settings(zendesk_url=zendesk.base_url, zendesk_email=zendesk.email, zendesk_token=zendesk.api_token,
                        data_dir=tmp_path / "data")
    config = load_config(enabled_config_file(tmp_path))
    config.platforms.zendesk.groups = {name: str(group_id) for name, group_id in GROUPS.items()}
    return Runtime(settings=settings, config=config, clock=zendesk.clock.now,
                   numbers=ReconcileQueue.from_settings(settings).problem_numbers)


def zendesk_number(zendesk, ticket_id):
    field = zendesk.field_id("Problem number")
    return next(f["value"] for f in zendesk.ticket(ticket_id)["custom_fields"] if f["id"] == field)


def new_ticket(zendesk, subject="VPN drops"):
    return zendesk.create_ticket(subject, "The VPN drops every few minutes", custom_fields=ZENDESK_INTAKE,
                                 created=FRIDAY - timedelta(minutes=5))


def test_zendesk_ticket_gets_its_number_once(zendesk, zendesk_runtime):
    first, second = new_ticket(zendesk), new_ticket(zendesk, "Printer jam")
    assert reconcile(zendesk_runtime, "zendesk", str(first)).outcome == "applied"
    reconcile(zendesk_runtime, "zendesk", str(second))
    assert zendesk_number(zendesk, first) == "TS20261120001"
    assert zendesk_number(zendesk, second) == "TS20261120002"
    zendesk.reset_calls()
    reconcile(zendesk_runtime, "zendesk", str(first))
    assert zendesk.count(method="PUT") == 0
    assert zendesk_number(zendesk, first) == "TS20261120001"


def test_zendesk_write_failed_after_the_claim_gets_the_same_number(zendesk, zendesk_runtime):
    ticket_id = new_ticket(zendesk)
    zendesk.inject(503, times=None, method="PUT", path_prefix="/api/v2/tickets/")
    with pytest.raises(HostError):
        reconcile(zendesk_runtime, "zendesk", str(ticket_id))
    assert zendesk_number(zendesk, ticket_id) is None
    zendesk.clear_faults()
    reconcile(zendesk_runtime, "zendesk", str(ticket_id))
    assert zendesk_number(zendesk, ticket_id) == "TS20261120001"
    other = new_ticket(zendesk, "Printer jam")
    reconcile(zendesk_runtime, "zendesk", str(other))
    assert zendesk_number(zendesk, other) == "TS20261120002"


def test_zendesk_through_webhooks_and_workers(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY), config_path=enabled_config_file(tmp_path),
                    zendesk=True) as stack:
        ids = [new_ticket(stack.zendesk, f"Ticket {n}") for n in range(3)]
        stack.settle()
        numbers = [zendesk_number(stack.zendesk, ticket_id) for ticket_id in ids]
        assert sorted(numbers) == [f"TS20261120{n:03d}" for n in range(1, 4)]
        stack.zendesk.add_comment(ids[0], "Looking into it")
        stack.settle()
        assert [zendesk_number(stack.zendesk, ticket_id) for ticket_id in ids] == numbers


def test_observe_mode_records_the_next_number_and_claims_none(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY), config_path=enabled_config_file(tmp_path),
                    mode="observe") as stack:
        key = new_issue(stack.jira)
        stack.settle()
        assert jira_number(stack.jira, key) is None
        assert stack.jira.count(method="PUT") == 0
        [seen] = [o for o in stack.queue.observations.latest() if o.rule == "problem-number"]
        assert seen.details["fields"] == {"problem_number": "(next problem number)"}
        issue_id = stack.jira.issue(key)["id"]
        assert stack.queue.problem_numbers.recorded("jira", issue_id, "problem-number") is None
