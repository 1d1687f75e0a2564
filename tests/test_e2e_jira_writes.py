"""Writes a real Jira site refuses, end to end: the real `jira` client through the adapter
and `reconcile`, over HTTP, against the strict sandbox.

Edit screens and non-editable statuses (issue 10, point 1) and internal notes with
self-recording one-time comments (point 3). Each test shows: what can land lands exactly
once, what cannot is reported naming the field or status, and the next reconcile sends
nothing that would fail the same way.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.config import load_config
from connector.metrics import REGISTRY
from connector.model import AuthorRole, Plan, SetFields
from connector.platforms.base import HostError
from connector.reconcile import Runtime, reconcile
from connector.sandbox.jira import CONNECTOR, JiraSandbox
from connector.sandbox.server import Clock
from connector.settings import DEFAULT_CONFIG, Settings

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
INTAKE = {"Impact scope": "Shanghai office", "Steps to reproduce": "Connect, wait", "Error message": "ERR_TIMEOUT",
          "Occurred at": FRIDAY - timedelta(hours=1)}


def refused(what: str) -> float:
    return REGISTRY.get_sample_value("connector_writes_refused_total", {"platform": "jira", "what": what}) or 0.0


@pytest.fixture
def jira():
    with JiraSandbox(clock=Clock(FRIDAY), timezone="Asia/Shanghai", deliver_webhooks=False,
                     validate_responses=True) as sandbox:
        yield sandbox
        assert sandbox.spec_violations == []


def runtime_for(jira: JiraSandbox, **settings) -> Runtime:
    credentials = settings or {"jira_user": jira.email, "jira_token": jira.api_token}
    return Runtime(settings=Settings(jira_url=jira.base_url, **credentials), config=load_config(DEFAULT_CONFIG),
                   clock=jira.clock.now)


@pytest.fixture
def runtime(jira):
    return runtime_for(jira)


def connector_comments(jira: JiraSandbox, key: str) -> list[dict]:
    return [c for c in jira.issue(key)["fields"]["comment"]["comments"] if c["author"].get("accountId") == CONNECTOR
            or c["author"].get("name") == "connector"]


def rejected(jira: JiraSandbox) -> int:
    return sum(n for call, n in jira.calls.items() if call.status >= 400)



# --- point 1: edit screens and non-editable statuses --------------------------------------


def test_field_off_the_edit_screen_is_not_sent_but_reported_and_the_rest_lands(jira, runtime, caplog):
    caplog.set_level(logging.WARNING, logger="connector.platforms.jira")
    jira.take_off_edit_screen("Support group")  # the group field routing writes
    key = jira.create_issue("VPN drops", description="drops", components=["network"], environment="Win 11",
                            created=FRIDAY - timedelta(minutes=5), fields=INTAKE)
    before = refused("field")
    outcome = reconcile(runtime, "jira", key)

    assert rejected(jira) == 0  # editmeta kept the field out: no 400 at all
    fields = jira.issue(key)["fields"]
    assert fields["customfield_10059"] is None
    # The rest of the plan landed: the marker label and the SLA due fields.
    assert fields["labels"] == ["spc-similar-cases-none"] and fields["customfield_10060"] and fields["customfield_10061"]
    [reason] = [r for r in outcome.result.refused if "customfield_10059" in r]
    assert "'Support group'" in reason and "edit screen" in reason
    assert refused("field") == before + 1
    record = next(r for r in caplog.records if r.getMessage() == "jira.write_refused")
    assert (record.what, record.field, record.ticket) == ("field", "customfield_10059", key)

    # No loop: the next reconcile sends no write at all (the field is still off the screen).
    jira.reset_calls()
    again = reconcile(runtime, "jira", key)
    assert again.result.writes == [] and jira.count(method="PUT") == 0 and rejected(jira) == 0
    assert any("customfield_10059" in r for r in again.result.refused)


def test_screen_changed_after_the_read_drops_the_named_field_and_resends_once(jira, runtime):
    key = jira.create_issue("VPN drops", created=FRIDAY - timedelta(minutes=5))
    adapter = runtime.adapter("jira")
    ticket = adapter.fetch(key)
    jira.take_off_edit_screen("Root cause")
    jira.reset_calls()
    cause = SetFields(rule="r", reason="x", fields={"root_cause": "cert expired"})
    solution = SetFields(rule="r", reason="x", fields={"solution": "renewed"})
    plan = Plan(platform="jira", ticket_id=ticket.id, ticket_key=key, evaluated_at=FRIDAY, actions=[cause, solution])
    result = adapter.apply(ticket, plan)

    assert jira.count(method="PUT", status=400) == 1 and jira.count(method="PUT", status=204) == 1
    assert jira.count(method="PUT") == 2
    assert jira.issue(key)["fields"]["customfield_10055"] == "renewed"
    assert result.applied == [solution]
    [reason] = result.refused
    assert "customfield_10054" in reason and "not on the appropriate screen" in reason


def test_closed_issue_takes_the_follow_up_reminder_as_a_comment_exactly_once(jira, runtime):
    key = jira.create_issue("SSO fails", description="SAML", priority="High", components=["login"],
                            environment="Okta", created=FRIDAY - timedelta(hours=2),
                            fields={**INTAKE, "Root cause": "cert", "Solution": "new cert",
                                    "Verification result": "Resolved",
                                    "Knowledge base link": "https://kb.example.com/sso-cert"},
                            history=[(FRIDAY - timedelta(hours=1), "In Progress"),
                                     (FRIDAY - timedelta(minutes=30), "Resolved"),
                                     (FRIDAY - timedelta(minutes=20), "Closed")])
    jira.clock.advance(timedelta(days=6))  # past the 3-business-day revisit
    before_field, before_labels = refused("field"), refused("labels")
    outcome = reconcile(runtime, "jira", key)

    [reminder] = connector_comments(jira, key)
    assert "Follow-up" in reminder["body"] and reminder["jsdPublic"] is False
    assert reminder["body"].endswith("ref: spc-follow-up-reminded")
    # Closed allows no edits (jira.issue.editable=false): the due field is reported, not sent.
    assert rejected(jira) == 0 and jira.count(method="PUT") == 0
    assert any("status 'Closed' allows no edits" in r and "Follow-up due" in r for r in outcome.result.refused)
    assert refused("field") == before_field + 1
    # The closure rule's knowledge-check marker label cannot land either, and says so; the
    # reminder's own marker label is not reported: the comment carries that marker.
    assert refused("labels") == before_labels + 1
    assert [r for r in outcome.result.refused if "labels not written" in r] == [
        f"{key}: labels not written – status 'Closed' allows no edits (workflow property "
        "jira.issue.editable=false, or the connector's account lacks Edit Issues)"]
    assert "spc-follow-up-reminded" not in jira.issue(key)["fields"]["labels"]

    jira.reset_calls()
    again = reconcile(runtime, "jira", key)
    assert len(connector_comments(jira, key)) == 1  # the marker the comment carries is enough
    assert again.result.writes == [] and jira.count(method="POST") == 0 and jira.count(method="PUT") == 0


# --- point 3: internal notes ------------------------------------------------------------------


def test_internal_notes_are_internal_and_a_properties_edit_would_have_been_public(jira, runtime):
    key = jira.create_issue("Checkout down", description="502", priority="Highest", components=["outage"],
                            environment="POS 4.2", created=FRIDAY - timedelta(hours=1), fields=INTAKE)
    reconcile(runtime, "jira", key)
    notes = [c for c in connector_comments(jira, key) if "SLA" in c["body"] or "first response" in c["body"]]
    assert notes and all(c["jsdPublic"] is False for c in notes)
    assert jira.count(method="POST", path="/rest/api/2/issue/{issueIdOrKey}/comment") == len(
        connector_comments(jira, key))


def test_internal_note_on_a_project_without_service_management_is_deleted_and_not_retried(runtime):
    with JiraSandbox(clock=Clock(FRIDAY), timezone="Asia/Shanghai", deliver_webhooks=False,
                     service_management=False) as plain:
        run = runtime_for(plain)
        key = plain.create_issue("Checkout down", description="502", priority="Highest", components=["outage"],
                                 environment="POS 4.2", created=FRIDAY - timedelta(hours=1), fields=INTAKE)
        before = refused("comment")
        outcome = reconcile(run, "jira", key)

        # Every comment left on the ticket is public by intent; no internal note stayed visible.
        assert all("SLA" not in c["body"] for c in connector_comments(plain, key))
        assert plain.count(method="DELETE") >= 1
        assert refused("comment") >= before + 1
        assert any("internal note could not be written as internal" in r for r in outcome.result.refused)

        plain.reset_calls()
        reconcile(run, "jira", key)
        assert plain.count(method="POST", path="/rest/api/2/issue/{issueIdOrKey}/comment") == 0
        assert plain.count(method="DELETE") == 0


def test_data_center_internal_notes_do_not_count_as_agent_responses(tmp_path):
    with JiraSandbox(deployment="Server", clock=Clock(FRIDAY), timezone="Asia/Shanghai",
                     deliver_webhooks=False) as dc:
        run = runtime_for(dc, jira_token=dc.pat)  # a personal access token: no user name configured
        key = dc.create_issue("Checkout down", description="502", priority="Highest", components=["outage"],
                              environment="POS 4.2", created=FRIDAY - timedelta(hours=1), fields=INTAKE)
        reconcile(run, "jira", key)
        notes = connector_comments(dc, key)
        assert notes and all("jsdPublic" not in c for c in notes)

        ticket = run.adapter("jira").fetch(key)
        mine = [c for c in ticket.comments if c.author == "connector"]
        assert mine and all(c.author_role == AuthorRole.CONNECTOR and not c.public for c in mine)
        dc.reset_calls()
        again = reconcile(run, "jira", key)
        assert again.plan.sla["first_response"].state == "breached"  # no note stopped the clock
        assert again.result is None or again.result.writes == []
        assert len(connector_comments(dc, key)) == len(notes)
        assert dc.count(path="/rest/api/2/myself") == 0  # asked once per process, not per reconcile


# --- point 3: exactly once without comment and label in one request ---------------------------


def test_process_dies_between_comment_and_edit_next_reconcile_posts_no_second_comment(jira, runtime):
    key = jira.create_issue("VPN drops", description="drops", components=["network"],
                            created=FRIDAY - timedelta(minutes=5), fields=INTAKE)
    # Every edit fails: the intake request is posted, then the edit (marker label) never lands.
    jira.inject(503, times=None, method="PUT", path_prefix=f"/rest/api/2/issue/{key}")
    with pytest.raises(HostError):
        reconcile(runtime, "jira", key)
    [request] = connector_comments(jira, key)
    assert request["body"].endswith("ref: spc-intake-requested")
    assert "spc-intake-requested" not in jira.issue(key)["fields"]["labels"]

    jira.clear_faults()
    jira.reset_calls()
    outcome = reconcile(runtime, "jira", key)
    assert len(connector_comments(jira, key)) == 1
    assert jira.count(method="POST", path="/rest/api/2/issue/{issueIdOrKey}/comment") == 0
    # The edit that goes out anyway carries the marker label the crash lost.
    assert "spc-intake-requested" in jira.issue(key)["fields"]["labels"]
    assert outcome.result.writes


def test_a_customer_pasting_a_marker_line_suppresses_nothing(jira, runtime):
    key = jira.create_issue("VPN drops", description="drops", components=["network"],
                            created=FRIDAY - timedelta(minutes=5), fields=INTAKE)
    jira.add_comment(key, "Same here.\n\nref: spc-intake-requested")  # the reporter
    reconcile(runtime, "jira", key)
    assert [c["body"].endswith("ref: spc-intake-requested") for c in connector_comments(jira, key)] == [True]
