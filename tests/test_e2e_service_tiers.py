"""End to end through signed webhooks on both sandboxes, with the real `jira` and `zenpy`
clients: a ticket from the premium organization (Acme Europe, Berlin) gets the premium
tier's targets in the `europe` calendar – due fields, the SLA timer in the deadline index,
the breach notice and the escalation – while an ordinary customer's ticket keeps the
default tier in Shanghai hours. A hidden e-mail matches no `email_domains` tier.

Thursday 2026-11-19 16:30 Berlin = 23:30 Shanghai. Premium P1: first response 1h in Berlin
business hours (09–17) → due Friday 09:30 Berlin (warning at 75%: 09:15); the default P1:
2h from Friday 09:00 Shanghai → 11:00 Shanghai.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from connector.platforms.jira import JiraAdapter
from connector.reconcile import reconcile
from connector.sandbox import jira as jira_sandbox
from connector.sandbox import zendesk as zendesk_sandbox
from connector.sandbox.server import Clock
from connector.stack import LocalStack
from connector.sync.sweep import SweepKind
from connector.timefmt import parse_instant

BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")
THURSDAY = datetime(2026, 11, 19, 16, 30, tzinfo=BERLIN)
FIRST_RESPONSE_DUE = datetime(2026, 11, 20, 9, 30, tzinfo=BERLIN)
WARNING = datetime(2026, 11, 20, 9, 15, tzinfo=BERLIN)
ANNA = "qm:anna-acme-europe"
JIRA_INTAKE = {"Impact scope": "Berlin entity", "Steps to reproduce": "Export", "Error message": "RFC 679",
               "Occurred at": THURSDAY - timedelta(minutes=30)}
ZENDESK_INTAKE = {"Category": "performance", "Impact scope": "Berlin entity", "Steps to reproduce": "Export",
                  "Error message": "RFC 679", "Occurred at": "2026-11-19", "Environment": "ERP 4.2"}


@pytest.fixture
def stack(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(THURSDAY), zendesk=True) as running:
        running.jira.add_user(ANNA, "Anna Schmidt", "anna.schmidt@acme-europe.example", account_type="customer",
                              time_zone="Europe/Berlin")
        running.jira.add_user("qm:hidden", "Hidden Hans", "hans@acme-europe.example", account_type="customer",
                              email_hidden=True)
        yield running


def with_tier_when(config, when):
    rule = next(r for r in config.rules if r.id == "sla-premium")
    mine = rule.model_copy(update={"when": type(rule.when)(**when)})
    return config.model_copy(update={"rules": [mine if r is rule else r for r in config.rules]})


def jira_field(stack, key, name):
    definition = stack.jira.store.field_by_name_or_id(name)
    return stack.jira.issue(key)["fields"][definition.id]


def jira_ticket(stack, reporter, organizations=()):
    fields = {**JIRA_INTAKE, **({"Organizations": list(organizations)} if organizations else {})}
    key = stack.jira.create_issue("Invoice export fails", description="RFC error", priority="High",
                                  components=["integration"], environment="ERP 4.2", reporter=reporter,
                                  fields=fields)
    stack.settle()
    return key


def armed(stack, platform, ticket_id):
    return {t.ticket_id: t.due for t in stack.queue.deadlines.armed(platform)}.get(ticket_id)


# --- Jira -------------------------------------------------------------------------------------


def test_jira_premium_ticket_gets_berlin_due_times_timer_breach_and_escalation_once(stack):
    key = jira_ticket(stack, ANNA, ["Acme Europe"])
    issue_id = stack.jira.issue(key)["id"]
    assert parse_instant(jira_field(stack, key, "First response due")) == FIRST_RESPONSE_DUE
    assert armed(stack, "jira", issue_id) == WARNING  # the sync's timer: the tier's 75% warning

    stack.clock.set(datetime(2026, 11, 20, 9, 31, tzinfo=BERLIN))
    assert stack.pump() == 1
    stack.settle()
    fields = stack.jira.issue(key)["fields"]
    assert "spc-sla-premium-breach-first_response" in fields["labels"]
    assert "spc-sla-breach-first_response" not in fields["labels"]
    notices = [c["body"] for c in fields["comment"]["comments"] if c["author"]["accountId"] == jira_sandbox.CONNECTOR]
    assert sum("first response target of 1h was missed" in body for body in notices) == 1
    assert any("Escalated to L2: no first response within 1h" in body for body in notices)
    assert jira_field(stack, key, "Support group") == "L2"
    assert reconcile(stack.runtime, "jira", key).result.writes == []  # idempotent


def test_jira_ordinary_customer_keeps_the_default_tier(stack):
    key = jira_ticket(stack, jira_sandbox.CUSTOMER)
    assert parse_instant(jira_field(stack, key, "First response due")) == datetime(2026, 11, 20, 11, 0,
                                                                                  tzinfo=SHANGHAI)


def test_jira_email_domain_tier_fails_closed_on_a_hidden_email(stack):
    stack.runtime.config = with_tier_when(stack.runtime.config, {"email_domains": ["acme-europe.example"]})
    visible = jira_ticket(stack, ANNA)
    hidden = jira_ticket(stack, "qm:hidden")
    assert parse_instant(jira_field(stack, visible, "First response due")) == FIRST_RESPONSE_DUE
    assert parse_instant(jira_field(stack, hidden, "First response due")) == datetime(2026, 11, 20, 11, 0,
                                                                                     tzinfo=SHANGHAI)


def test_jira_sweep_searches_the_organizations_field_and_agrees_with_the_fetch(stack):
    key = jira_ticket(stack, ANNA, ["Acme Europe"])
    adapter = JiraAdapter.from_settings(stack.settings, stack.runtime.config.platforms.jira)
    organizations = stack.jira.store.field_by_name_or_id("Organizations").id
    assert organizations in adapter.rule_fields(["summary"])
    stack.queue.deadlines.clear()  # forget the settlement: the sweep must evaluate the search result
    report = stack.sweep(SweepKind.FULL, "jira")
    stack.settle()
    assert report.evaluated >= 1
    assert parse_instant(jira_field(stack, key, "First response due")) == FIRST_RESPONSE_DUE
    assert armed(stack, "jira", stack.jira.issue(key)["id"]) == WARNING


# --- Zendesk ----------------------------------------------------------------------------------


def zendesk_ticket(stack, requester):
    ticket_id = stack.zendesk.create_ticket("Invoice export fails", "RFC error on every export", priority="high",
                                            requester=requester, custom_fields=ZENDESK_INTAKE)
    stack.settle()
    return ticket_id


def zendesk_field(stack, ticket_id, title):
    field_id = stack.zendesk.field_id(title)
    return next(e["value"] for e in stack.zendesk.ticket(ticket_id)["custom_fields"] if e["id"] == field_id)


def test_zendesk_premium_organization_gets_the_tier_once_and_its_timer(stack):
    anna = stack.zendesk.add_user("Anna Schmidt", "anna.schmidt@acme-europe.example", organization="Acme Europe",
                                  time_zone="Europe/Berlin")
    ticket_id = zendesk_ticket(stack, anna)
    # The account's due fields are date fields: the day in the tier calendar's zone.
    assert zendesk_field(stack, ticket_id, "First response due") == "2026-11-20"
    assert armed(stack, "zendesk", str(ticket_id)) == WARNING
    stack.clock.set(datetime(2026, 11, 20, 9, 31, tzinfo=BERLIN))
    assert stack.pump() == 1
    stack.settle()
    ticket = stack.zendesk.ticket(ticket_id)
    assert "spc-sla-premium-breach-first_response" in ticket["tags"]
    assert "spc-sla-breach-first_response" not in ticket["tags"]
    bodies = [e["body"] for a in stack.zendesk.audits(ticket_id) for e in a["events"]
              if e["type"] == "Comment" and e["author_id"] == zendesk_sandbox.CONNECTOR]
    assert sum(b.count("first response target of 1h was missed") for b in bodies) == 1
    assert reconcile(stack.runtime, "zendesk", str(ticket_id)).result.writes == []


def test_zendesk_other_organization_keeps_the_default_tier(stack):
    ticket_id = zendesk_ticket(stack, zendesk_sandbox.CUSTOMER)  # Customer Example Ltd
    # 75% of 2h from Friday 09:00 Shanghai, not the premium 09:15 Berlin.
    assert armed(stack, "zendesk", str(ticket_id)) == datetime(2026, 11, 20, 10, 30, tzinfo=SHANGHAI)


def test_zendesk_side_loads_only_what_is_asked(stack):
    """Side-loading adds "a top-level array of associated data" for each resource in `include`
    and nothing otherwise (Zendesk, Side-loading related records)."""
    anna = stack.zendesk.add_user("Anna Schmidt", "anna.schmidt@acme-europe.example", organization="Acme Europe")
    ticket_id = zendesk_ticket(stack, anna)
    auth = (f"{stack.zendesk.email}/token", stack.zendesk.api_token)
    url = f"{stack.zendesk.base_url}/api/v2/tickets/{ticket_id}.json"
    plain = requests.get(url, auth=auth, timeout=5).json()
    assert set(plain) == {"ticket"}
    loaded = requests.get(url, params={"include": "users,organizations"}, auth=auth, timeout=5).json()
    assert [o["name"] for o in loaded["organizations"]] == ["Acme Europe"]
    assert anna in [u["id"] for u in loaded["users"]]
