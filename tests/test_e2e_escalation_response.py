"""End to end: the escalation response clock on both sandboxes, through the real `jira` and
`zenpy` clients. A P0 without a first response is handed to L2 (a dated marker comment on
Jira, a tag added by a dated audit on Zendesk); if nobody from L2 comments within 1h, the
team lead gets it with one notice; an internal comment by an L2 member within the hour stops
the clock and nothing more happens."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.config import load_config
from connector.reconcile import Runtime, reconcile
from connector.sandbox import jira as jira_sandbox
from connector.sandbox import zendesk as zendesk_sandbox
from connector.sandbox.server import Clock
from connector.sandbox.zendesk import GROUPS, ZendeskSandbox
from connector.settings import DEFAULT_CONFIG, Settings
from connector.stack import LocalStack

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
JIRA_INTAKE = {"Impact scope": "all stores", "Steps to reproduce": "Pay", "Error message": "HTTP 502",
               "Occurred at": FRIDAY - timedelta(hours=1)}
ZENDESK_INTAKE = {"Category": "outage", "Impact scope": "all stores", "Steps to reproduce": "Pay",
                  "Error message": "HTTP 502", "Occurred at": "2026-11-20", "Environment": "POS 4.2"}
TEAM_LEAD = 360001111009
NO_RESPONSE = "spc-escalation-l2-no-response"


def with_members(config, members):
    rule = next(r for r in config.rules if r.id == "escalation")
    mine = rule.model_copy(update={"members": members})
    return config.model_copy(update={"rules": [mine if r is rule else r for r in config.rules]})


# --- Jira -------------------------------------------------------------------------------------

@pytest.fixture
def stack(tmp_path):
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY)) as running:
        running.runtime.config = with_members(running.runtime.config, {"L2": [jira_sandbox.AGENT]})
        yield running


def jira_notices(stack, key):
    return [c for c in stack.jira.issue(key)["fields"]["comment"]["comments"]
            if c["author"]["accountId"] == jira_sandbox.CONNECTOR]


def jira_p0(stack):
    key = stack.jira.create_issue("Checkout down", description="502", priority="Highest", components=["outage"],
                                  environment="POS 4.2", created=FRIDAY - timedelta(hours=1), fields=JIRA_INTAKE)
    stack.settle()
    assert stack.jira.issue(key)["fields"]["customfield_10059"] == "L2"  # Support group
    return key


def test_jira_no_l2_response_within_an_hour_goes_to_the_team_lead_once(stack):
    key = jira_p0(stack)
    stack.clock.advance(timedelta(minutes=30))
    assert reconcile(stack.runtime, "jira", key).result.writes == []  # running, 30 of 60 minutes
    stack.clock.advance(timedelta(minutes=31))
    reconcile(stack.runtime, "jira", key)
    fields = stack.jira.issue(key)["fields"]
    assert fields["customfield_10059"] == "team-lead"
    notices = [c for c in jira_notices(stack, key) if "L2 did not respond within 1h" in c["body"]]
    assert len(notices) == 1 and notices[0]["jsdPublic"] is False
    assert NO_RESPONSE in fields["labels"]
    # Nothing loops: the next reconcile writes nothing.
    assert reconcile(stack.runtime, "jira", key).result.writes == []


def test_jira_internal_comment_by_an_l2_member_stops_the_clock(stack):
    key = jira_p0(stack)
    stack.clock.advance(timedelta(minutes=20))
    stack.jira.add_comment(key, "Looking at the gateway logs", author=jira_sandbox.AGENT, public=False)
    stack.settle()
    stack.clock.advance(timedelta(hours=2))
    reconcile(stack.runtime, "jira", key)
    fields = stack.jira.issue(key)["fields"]
    assert fields["customfield_10059"] == "L2" and NO_RESPONSE not in fields["labels"]
    assert not [c for c in jira_notices(stack, key) if "L2 did not respond" in c["body"]]


# --- Zendesk ----------------------------------------------------------------------------------

@pytest.fixture
def zendesk():
    with ZendeskSandbox(clock=Clock(FRIDAY), deliver_webhooks=False) as sandbox:
        sandbox.add_group("team-lead", group_id=TEAM_LEAD)  # the last escalation step's group
        yield sandbox


@pytest.fixture
def runtime(zendesk):
    config = load_config(DEFAULT_CONFIG)
    config.platforms.zendesk.groups = {**{name: str(group_id) for name, group_id in GROUPS.items()},
                                       "team-lead": str(TEAM_LEAD)}
    config = with_members(config, {"L2": [str(zendesk_sandbox.AGENT)]})
    settings = Settings(zendesk_url=zendesk.base_url, zendesk_email=zendesk.email, zendesk_token=zendesk.api_token)
    return Runtime(settings=settings, config=config, clock=zendesk.clock.now)


def zendesk_notices(zendesk, ticket_id):
    return [e for audit in zendesk.audits(ticket_id) for e in audit["events"]
            if e["type"] == "Comment" and e["author_id"] == zendesk_sandbox.CONNECTOR]


def zendesk_p0(zendesk, runtime):
    ticket_id = zendesk.create_ticket("Checkout down", "502 on every checkout", priority="urgent",
                                      custom_fields=ZENDESK_INTAKE, created=FRIDAY - timedelta(hours=1))
    reconcile(runtime, "zendesk", str(ticket_id))
    reconcile(runtime, "zendesk", str(ticket_id))
    assert zendesk.ticket(ticket_id)["group_id"] == GROUPS["L2"]
    return ticket_id


def test_zendesk_no_l2_response_within_an_hour_goes_to_the_team_lead_once(zendesk, runtime):
    ticket_id = zendesk_p0(zendesk, runtime)
    zendesk.clock.advance(timedelta(minutes=30))
    assert reconcile(runtime, "zendesk", str(ticket_id)).result.writes == []
    zendesk.clock.advance(timedelta(minutes=31))
    reconcile(runtime, "zendesk", str(ticket_id))
    ticket = zendesk.ticket(ticket_id)
    assert ticket["group_id"] == TEAM_LEAD and NO_RESPONSE in ticket["tags"]
    bodies = [c["body"] for c in zendesk_notices(zendesk, ticket_id)]
    assert sum(b.count("L2 did not respond within 1h") for b in bodies) == 1
    assert reconcile(runtime, "zendesk", str(ticket_id)).result.writes == []


def test_zendesk_internal_note_by_an_l2_member_stops_the_clock(zendesk, runtime):
    ticket_id = zendesk_p0(zendesk, runtime)
    zendesk.clock.advance(timedelta(minutes=20))
    zendesk.add_comment(ticket_id, "Looking at the gateway logs", author=zendesk_sandbox.AGENT, public=False)
    zendesk.clock.advance(timedelta(hours=2))
    reconcile(runtime, "zendesk", str(ticket_id))
    ticket = zendesk.ticket(ticket_id)
    assert ticket["group_id"] == GROUPS["L2"] and NO_RESPONSE not in ticket["tags"]
    assert not [c for c in zendesk_notices(zendesk, ticket_id) if "L2 did not respond" in c["body"]]
