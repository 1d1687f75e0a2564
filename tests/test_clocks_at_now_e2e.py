"""`simulate --now` in the past over what the real clients read from the sandboxes: the
status history, comments and priority changes the platform records (Jira changelog,
Zendesk audits) rewind the ticket to the instant, through our adapters."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from connector.config import load_config
from connector.model import Status
from connector.sandbox.jira import AGENT
from connector.sandbox.zendesk import AGENT as ZENDESK_AGENT
from connector.sandbox.server import Clock
from connector.settings import DEFAULT_CONFIG
from connector.simulation import evaluate_at
from connector.stack import LocalStack

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
CONFIG = load_config(DEFAULT_CONFIG)
INTAKE = {"Impact scope": "Shanghai office", "Steps to reproduce": "Connect, wait", "Error message": "ERR_TIMEOUT",
          "Occurred at": FRIDAY - timedelta(hours=4)}


def test_jira_ticket_read_by_the_adapter_is_seen_as_it_stood(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY)) as stack:
        key = stack.jira.create_issue("SSO fails", description="SAML", priority="Medium", components=["login"],
                                      environment="Okta", created=FRIDAY - timedelta(hours=3), fields=INTAKE)
        stack.jira.set_status(key, "In Progress", author=AGENT, at=FRIDAY - timedelta(hours=2, minutes=50))
        stack.jira.add_comment(key, "Looking into it", author=AGENT, at=FRIDAY - timedelta(hours=2, minutes=50))
        stack.jira.set_fields(key, {"priority": "High"}, author=AGENT, at=FRIDAY - timedelta(hours=2, minutes=45))
        stack.jira.set_status(key, "Resolved", author=AGENT, at=FRIDAY - timedelta(hours=1))
        stack.jira.set_status(key, "Closed", author=AGENT, at=FRIDAY - timedelta(minutes=30))
        ticket = stack.runtime.adapter("jira").fetch(key)
    assert ticket.status == Status.CLOSED and ticket.priority == "P1"

    view, plan = evaluate_at(ticket, FRIDAY - timedelta(hours=2, minutes=30), CONFIG)
    assert view.status == Status.IN_PROGRESS and view.priority == "P1" and view.resolved is None
    assert plan.sla["resolution"].state == "running" and plan.sla["resolution"].target_minutes == 8 * 60
    assert "periodic_update" in plan.sla

    view, plan = evaluate_at(ticket, FRIDAY - timedelta(hours=2, minutes=55), CONFIG)
    assert view.status == Status.NEW and view.priority == "P2" and not view.comments
    assert plan.sla["resolution"].target_minutes == 3 * 8 * 60 and "periodic_update" not in plan.sla
    assert plan.sla["first_response"].state == "running"

    view, plan = evaluate_at(ticket, FRIDAY, CONFIG)
    assert view is ticket or view.status == Status.CLOSED
    assert plan.sla["resolution"].state == "met" and "periodic_update" not in plan.sla


def test_zendesk_ticket_read_by_the_adapter_is_seen_as_it_stood(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY), zendesk=True) as stack:
        zendesk = stack.zendesk
        ticket_id = zendesk.create_ticket(
            "SSO fails", "SAML login fails", priority="normal", created=FRIDAY - timedelta(hours=3),
            custom_fields={"Category": "login", "Impact scope": "Shanghai office", "Steps to reproduce": "Log in",
                           "Error message": "SAML 500", "Occurred at": "2026-11-20", "Environment": "Okta"})
        zendesk.set_status(ticket_id, "open", author=ZENDESK_AGENT, at=FRIDAY - timedelta(hours=2, minutes=50))
        zendesk.add_comment(ticket_id, "Looking into it", author=ZENDESK_AGENT, at=FRIDAY - timedelta(hours=2, minutes=50))
        zendesk.set_fields(ticket_id, {"priority": "high"}, author=ZENDESK_AGENT, at=FRIDAY - timedelta(hours=2, minutes=45))
        zendesk.set_status(ticket_id, "solved", author=ZENDESK_AGENT, at=FRIDAY - timedelta(hours=1))
        ticket = stack.runtime.adapter("zendesk").fetch(str(ticket_id))
    assert ticket.status == Status.RESOLVED and ticket.priority == "P1"

    view, plan = evaluate_at(ticket, FRIDAY - timedelta(hours=2, minutes=30), CONFIG)
    assert view.status == Status.IN_PROGRESS and view.priority == "P1" and view.resolved is None
    assert plan.sla["resolution"].state == "running" and plan.sla["resolution"].target_minutes == 8 * 60
    assert "periodic_update" in plan.sla

    view, plan = evaluate_at(ticket, FRIDAY - timedelta(hours=2, minutes=55), CONFIG)
    assert view.status == Status.NEW and view.priority == "P2"
    assert not [c for c in view.comments if c.author_role == "agent"]
    assert plan.sla["resolution"].target_minutes == 3 * 8 * 60 and "periodic_update" not in plan.sla
    assert plan.sla["first_response"].state == "running"

    view, plan = evaluate_at(ticket, FRIDAY, CONFIG)
    assert plan.sla["resolution"].state == "met" and "periodic_update" not in plan.sla
