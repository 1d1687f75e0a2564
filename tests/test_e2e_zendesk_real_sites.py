"""What a real Zendesk does that a naive stand-in does not (issue 10, points 7, 9, 10), end to end:
the zenpy-based adapter over HTTP against the strict sandbox Zendesk.

- Update Ticket replaces the tag list (additional_tags/remove_tags are ignored there), so the
  adapter sends the whole list inside the safe update: a human's tag added meanwhile is a 409
  and survives the re-read, and a marker lands with its comment or not at all.
- Zendesk closes solved tickets by itself; a write racing that close is a 422 that becomes
  StaleTicket (re-read, re-plan), and a closed ticket's comment goes to a follow-up ticket.
- A status move refused with 422 (a field required to solve) does not take the comment and
  its marker down with it, is reported by name, and is not sent again on an unchanged ticket.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.config import load_config
from connector.metrics import REGISTRY
from connector.model import AddComment, AddLabel, Plan, Status, Transition
from connector.platforms.base import Conflict, RetryPolicy, StaleTicket
from connector.platforms.mapping import default_zendesk_mapping
from connector.platforms.zendesk import ZendeskAdapter
from connector.reconcile import Runtime, reconcile
from connector.rules.engine import evaluate
from connector.sandbox.server import Clock
from connector.sandbox.zendesk import AGENT, CONNECTOR, GROUPS, ZendeskSandbox
from connector.settings import DEFAULT_CONFIG, Settings

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
INTAKE = {"Category": "network", "Impact scope": "Shanghai office", "Steps to reproduce": "Connect, wait",
          "Error message": "ERR_TIMEOUT", "Occurred at": "2026-11-20", "Environment": "Windows 11"}


def sandbox_config():
    config = load_config(DEFAULT_CONFIG)
    config.platforms.zendesk.groups = {name: str(group_id) for name, group_id in GROUPS.items()}
    return config


@pytest.fixture
def zendesk():
    with ZendeskSandbox(clock=Clock(FRIDAY), deliver_webhooks=False) as sandbox:
        yield sandbox


def make_adapter(zendesk: ZendeskSandbox) -> ZendeskAdapter:
    mapping = default_zendesk_mapping().model_copy(update={
        "groups": {name: str(group_id) for name, group_id in GROUPS.items()}, "connector_account": zendesk.email})
    return ZendeskAdapter(zendesk.base_url, zendesk.email, zendesk.api_token, mapping,
                          policy=RetryPolicy(sleep=lambda seconds: None))


@pytest.fixture
def adapter(zendesk):
    return make_adapter(zendesk)


def runtime_for(zendesk: ZendeskSandbox) -> Runtime:
    settings = Settings(zendesk_url=zendesk.base_url, zendesk_email=zendesk.email, zendesk_token=zendesk.api_token)
    return Runtime(settings=settings, config=sandbox_config(), clock=zendesk.clock.now)


def plan(ticket_id, *actions) -> Plan:
    return Plan(platform="zendesk", ticket_id=str(ticket_id), ticket_key=f"#{ticket_id}", evaluated_at=FRIDAY,
                actions=list(actions))


def connector_comments(zendesk, ticket_id):
    return [e for audit in zendesk.audits(ticket_id) for e in audit["events"]
            if e["type"] == "Comment" and e["author_id"] == CONNECTOR]


def writes(zendesk):
    return sum(n for call, n in zendesk.calls.items() if call.method != "GET")


def refused_metric(what: str) -> float:
    return REGISTRY.get_sample_value("connector_writes_refused_total", {"platform": "zendesk", "what": what}) or 0.0


def new_ticket(zendesk, **overrides):
    args = {"custom_fields": dict(INTAKE), "created": FRIDAY - timedelta(hours=2), "tags": ["vip"]}
    args.update(overrides)
    return zendesk.create_ticket("VPN drops", "The VPN drops every few minutes", **args)


# --- point 7: tags on a single-ticket update -------------------------------------------------------


def test_marker_lands_with_its_comment_and_existing_tags_stay(zendesk, adapter):
    ticket_id = new_ticket(zendesk)
    note = AddComment(rule="r", reason="x", body="Checked the VPN gateway logs.", marker="spc-gateway-checked")
    result = adapter.apply(adapter.fetch(str(ticket_id)), plan(ticket_id, note,
                                                               AddLabel(rule="r", reason="x", label="spc-seen")))
    assert result.writes == [f"PUT /api/v2/tickets/{ticket_id}.json"] and result.warnings == []
    tags = set(zendesk.ticket(ticket_id)["tags"])
    assert {"vip", "network", "spc-gateway-checked", "spc-seen"} <= tags
    # Replayed: the marker is on the ticket, so nothing is sent and the comment is not repeated.
    zendesk.reset_calls()
    again = adapter.apply(adapter.fetch(str(ticket_id)), plan(ticket_id, note))
    assert not again.changed and writes(zendesk) == 0
    assert len(connector_comments(zendesk, ticket_id)) == 1


def test_a_tag_a_human_adds_between_our_read_and_write_is_a_409_then_kept(zendesk, adapter):
    ticket_id = new_ticket(zendesk)
    read = adapter.fetch(str(ticket_id))
    zendesk.clock.advance(timedelta(minutes=1))
    zendesk.set_fields(ticket_id, {"additional_tags": ["human-escalation"]}, author=AGENT)
    note = AddComment(rule="r", reason="x", body="Asked for the client log.", marker="spc-log-requested")

    with pytest.raises(Conflict) as conflict:
        adapter.apply(read, plan(ticket_id, note))
    assert conflict.value.status == 409
    assert "spc-log-requested" not in zendesk.ticket(ticket_id)["tags"] and not connector_comments(zendesk, ticket_id)

    # The re-read and re-plan (what reconcile does on Conflict): both tags, one comment.
    adapter.apply(adapter.fetch(str(ticket_id)), plan(ticket_id, note))
    assert {"human-escalation", "spc-log-requested", "vip"} <= set(zendesk.ticket(ticket_id)["tags"])
    adapter.apply(adapter.fetch(str(ticket_id)), plan(ticket_id, note))
    assert len(connector_comments(zendesk, ticket_id)) == 1


def test_one_time_comments_never_repeat_over_reconciles(zendesk):
    runtime = runtime_for(zendesk)
    ticket_id = new_ticket(zendesk, custom_fields={k: v for k, v in INTAKE.items() if k != "Error message"},
                           created=FRIDAY - timedelta(minutes=5))
    for _ in range(3):
        reconcile(runtime, "zendesk", str(ticket_id))
    assert len(connector_comments(zendesk, ticket_id)) == 1
    assert "spc-intake-requested" in zendesk.ticket(ticket_id)["tags"] and "vip" in zendesk.ticket(ticket_id)["tags"]


# --- point 9: closed tickets -----------------------------------------------------------------------


def solved_p1(zendesk, solved_at):
    ticket_id = zendesk.create_ticket(
        "SSO login fails", "Users cannot sign in", priority="high", group="L1", assignee=AGENT,
        created=solved_at - timedelta(hours=2), tags=["vip"],
        custom_fields={**INTAKE, "Category": "login", "Root cause": "cert", "Solution": "renewed",
                       "Verification result": "resolved", "Knowledge base link": "https://kb.example.com/sso"},
        history=[(solved_at - timedelta(hours=1), "open")])
    zendesk.add_comment(ticket_id, "Renewed the certificate", author=AGENT, at=solved_at - timedelta(minutes=30))
    zendesk.set_status(ticket_id, "solved", author=AGENT, at=solved_at)
    return ticket_id


def follow_up_reminders(zendesk, follow_up_id):
    return [c for c in connector_comments(zendesk, follow_up_id) if "Follow-up" in c["body"] or "follow" in c["body"]]


def test_follow_up_due_after_auto_close_goes_to_a_follow_up_ticket_once(zendesk):
    runtime = runtime_for(zendesk)
    ticket_id = solved_p1(zendesk, FRIDAY)
    reconcile(runtime, "zendesk", str(ticket_id))  # records the due date while solved
    # Friday + 3 business days is Wednesday; Zendesk closed the ticket on Tuesday (4 days).
    zendesk.clock.advance(timedelta(days=5, hours=20))
    assert zendesk.ticket(ticket_id)["status"] == "closed"

    outcome = reconcile(runtime, "zendesk", str(ticket_id))
    assert outcome.outcome == "applied"
    [follow_up_id] = zendesk.ticket(ticket_id)["followup_ids"]
    follow_up = zendesk.ticket(follow_up_id)
    assert follow_up["via"]["source"]["from"]["ticket_id"] == ticket_id
    assert follow_up["assignee_id"] == AGENT and follow_up["group_id"] is not None
    # The same case to the rules: category and intake fields came along (no new intake request).
    values = {f["id"]: f["value"] for f in follow_up["custom_fields"]}
    assert values[zendesk.field_id("Category")] == "login" and values[zendesk.field_id("Environment")] == "Windows 11"
    [reminder] = connector_comments(zendesk, follow_up_id)
    assert reminder["public"] is False and "due" in reminder["body"]
    assert "spc-follow-up-reminded" in follow_up["tags"] and "vip" in follow_up["tags"]

    # Reconciled in its own right (its creation fires webhooks), it asks the customer nothing.
    reconcile(runtime, "zendesk", str(follow_up_id))
    assert not [c for c in connector_comments(zendesk, follow_up_id) if c["public"]]

    # Replays see the marker through the closed ticket's follow-ups: no second follow-up.
    for _ in range(2):
        assert reconcile(runtime, "zendesk", str(ticket_id)).outcome == "noop"
    assert zendesk.ticket(ticket_id)["followup_ids"] == [follow_up_id]


CLOSED_422 = {"error": "RecordInvalid", "description": "Record validation errors",
              "details": {"status": [{"description": "Status: closed prevents ticket update"}]}}


@pytest.mark.parametrize("zendesk_answers", ["409 (the close moved updated_at)", "422 closed"])
def test_ticket_closed_between_read_and_write_is_re_planned_and_the_reminder_not_lost(zendesk_answers):
    # A longer auto-close, so the ticket is still solved when the reminder falls due and closes
    # between our read and our write. Which answer Zendesk gives first is not documented: the
    # safe update's 409 (the close moved updated_at) or the 422 "closed prevents ticket update";
    # both are a re-read and re-plan.
    with ZendeskSandbox(clock=Clock(FRIDAY), deliver_webhooks=False,
                        auto_close_after=timedelta(days=5, hours=21)) as zendesk:
        runtime = runtime_for(zendesk)
        adapter = runtime.adapter("zendesk")
        ticket_id = solved_p1(zendesk, FRIDAY)
        reconcile(runtime, "zendesk", str(ticket_id))
        posted = connector_comments(zendesk, ticket_id)  # the closing summary of the solve
        zendesk.clock.advance(timedelta(days=5, hours=20))
        read = adapter.fetch(str(ticket_id))
        assert read.raw_status == "solved"
        stale_plan = evaluate(read, zendesk.clock.now(), runtime.config)
        assert any(isinstance(a, AddComment) for a in stale_plan.actions)
        zendesk.clock.advance(timedelta(hours=2))  # the automation closes it now

        expected = Conflict
        if zendesk_answers == "422 closed":
            zendesk.inject(422, body=CLOSED_422, times=1, method="PUT")
            expected = StaleTicket
        with pytest.raises(expected):
            adapter.apply(read, stale_plan)
        assert connector_comments(zendesk, ticket_id) == posted  # the refused write left no comment
        # What reconcile does on StaleTicket: re-read and re-plan; the reminder goes to a follow-up.
        assert reconcile(runtime, "zendesk", str(ticket_id)).outcome == "applied"
        [follow_up_id] = zendesk.ticket(ticket_id)["followup_ids"]
        assert len(connector_comments(zendesk, follow_up_id)) == 1
        assert reconcile(runtime, "zendesk", str(ticket_id)).outcome == "noop"


# --- point 10: a status change refused with 422 ----------------------------------------------------


def test_status_refused_for_a_required_field_keeps_the_comment_and_marker_and_never_loops(zendesk, adapter):
    zendesk.set_field_required("Root cause")
    ticket_id = new_ticket(zendesk, status="open", assignee=AGENT)
    note = AddComment(rule="auto", reason="x", body="Resolving: the customer confirmed the fix.", public=False,
                      marker="spc-resolve-noted")
    resolve = Transition(rule="auto", reason="x", to=Status.RESOLVED)
    before = refused_metric("status")

    result = adapter.apply(adapter.fetch(str(ticket_id)), plan(ticket_id, note, resolve))

    ticket = zendesk.ticket(ticket_id)
    assert ticket["status"] == "open" and "spc-resolve-noted" in ticket["tags"]
    assert len(connector_comments(zendesk, ticket_id)) == 1
    assert result.applied == [note] and [s.action for s in result.skipped] == [resolve]
    assert result.refused == ["Zendesk refused status 'solved': Root cause: is required when solving a ticket"]
    assert result.warnings == result.refused and refused_metric("status") == before + 1
    assert zendesk.count(method="PUT", status=422) == 1 and zendesk.count(method="PUT", status=200) == 1

    # The next reconcile of the unchanged ticket sends nothing that would fail the same way.
    zendesk.reset_calls()
    again = adapter.apply(adapter.fetch(str(ticket_id)), plan(ticket_id, note, resolve))
    assert writes(zendesk) == 0 and again.refused == result.refused
    # Once someone fills the field, the move goes through.
    zendesk.clock.advance(timedelta(minutes=5))
    zendesk.set_fields(ticket_id, {"Root cause": "Gateway certificate expired"}, author=AGENT)
    adapter.apply(adapter.fetch(str(ticket_id)), plan(ticket_id, note, resolve))
    assert zendesk.ticket(ticket_id)["status"] == "solved"
    assert len(connector_comments(zendesk, ticket_id)) == 1
