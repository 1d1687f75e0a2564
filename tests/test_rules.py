"""Every rule type: it fires when it should, stays quiet when it should, and is idempotent."""

from __future__ import annotations

import pytest

from connector.config import load_config
from connector.model import AddComment, AddLabel, Assign, SetFields, SetPriority, Status, Transition
from connector.rules.engine import evaluate
from connector.rules.projection import project
from connector.settings import DEFAULT_CONFIG
from tests.factories import INTAKE, agent_reply, at, requester_reply, ticket

CONFIG = load_config(DEFAULT_CONFIG)


def only(*rule_ids):
    return CONFIG.model_copy(update={"rules": [r for r in CONFIG.rules if r.id in rule_ids]})


def settle(t, now, config):
    """Evaluate, apply the plan, evaluate again: the second plan must be empty."""
    plan = evaluate(t, now, config)
    after = project(t, plan.actions, now)
    again = evaluate(after, now, config)
    assert again.actions == [], f"not idempotent: {again.actions}"
    return plan, after


def kinds(plan):
    return [type(a).__name__ for a in plan.actions]


# --- required-fields -------------------------------------------------------------------

def test_intake_requests_exactly_what_is_missing_and_waits():
    t = ticket(fields={k: v for k, v in INTAKE.items() if k not in ("environment", "error_message")})
    plan, after = settle(t, at("2026-11-20 09:05"), only("intake"))
    comment = next(a for a in plan.actions if isinstance(a, AddComment))
    assert comment.public and comment.marker == "spc-intake-requested"
    assert "Environment (OS / browser / product version)" in comment.body
    assert "Exact error message" in comment.body
    assert "Steps to reproduce" not in comment.body
    assert Transition(rule="intake", reason=comment.reason, to=Status.WAITING_FOR_INFORMATION) in plan.actions
    assert after.status == Status.WAITING_FOR_INFORMATION
    assert all(a.rule == "intake" and a.reason for a in plan.actions)


def test_intake_quiet_when_complete():
    assert evaluate(ticket(), at("2026-11-20 09:05"), only("intake")).actions == []


def test_intake_moves_on_when_reporter_supplies_everything():
    t = ticket(status=Status.WAITING_FOR_INFORMATION, labels={"spc-intake-requested"})
    plan, after = settle(t, at("2026-11-20 10:00"), only("intake"))
    assert [a.to for a in plan.actions if isinstance(a, Transition)] == [Status.IN_PROGRESS]
    assert "spc-intake-complete" in after.labels


def test_intake_does_not_fight_an_agent_after_completion():
    t = ticket(status=Status.WAITING_FOR_INFORMATION, fields={}, labels={"spc-intake-requested", "spc-intake-complete"})
    assert evaluate(t, at("2026-11-20 10:00"), only("intake")).actions == []


def test_intake_waiting_is_recognised_through_a_shared_platform_status():
    # Zendesk writes both "waiting for information" and "waiting for customer" as pending.
    t = ticket(status=Status.WAITING_FOR_CUSTOMER, labels={"spc-intake-requested"}, platform="zendesk")
    t = t.model_copy(update={"status_equivalents": frozenset({Status.WAITING_FOR_CUSTOMER, Status.WAITING_FOR_INFORMATION})})
    plan = evaluate(t, at("2026-11-20 10:00"), only("intake"))
    assert [a.to for a in plan.actions if isinstance(a, Transition)] == [Status.IN_PROGRESS]


def test_intake_fields_per_category_and_priority():
    question = ticket(category="question", fields={"symptom": "how do I export?"})
    assert evaluate(question, at("2026-11-20 09:05"), only("intake")).actions == []
    no_priority = ticket(priority=None)
    plan = evaluate(no_priority, at("2026-11-20 09:05"), only("intake"))
    assert "Priority" in next(a for a in plan.actions if isinstance(a, AddComment)).body


# --- routing ---------------------------------------------------------------------------

@pytest.mark.parametrize("category,summary,group", [
    ("network", "VPN drops", "network-team"),
    ("outage", "Checkout down", "L2"),
    ("account", "发票 金额错误", "billing"),
    ("account", "cannot log in", "L1"),
])
def test_routing_by_category_keyword_and_default(category, summary, group):
    plan, after = settle(ticket(category=category, summary=summary), at("2026-11-20 09:05"), only("routing"))
    assert [a.group for a in plan.actions if isinstance(a, Assign)] == [group]
    assert after.group == group


def test_routing_leaves_assigned_and_waiting_tickets_alone():
    assert evaluate(ticket(group="L1"), at("2026-11-20 09:05"), only("routing")).actions == []
    waiting = ticket(status=Status.WAITING_FOR_INFORMATION)
    assert evaluate(waiting, at("2026-11-20 09:05"), only("routing")).actions == []


def test_completed_intake_is_routed_in_the_same_plan():
    t = ticket(status=Status.WAITING_FOR_INFORMATION, labels={"spc-intake-requested"})
    plan, _ = settle(t, at("2026-11-20 10:00"), only("intake", "routing"))
    assert kinds(plan) == ["Transition", "AddLabel", "Assign"]


# --- sla -------------------------------------------------------------------------------

def test_sla_warns_then_breaches_once_and_writes_due_times():
    t = ticket(priority="P0", group="L2")
    plan, after = settle(t, at("2026-11-20 09:24"), only("sla"))
    assert plan.actions[0] == SetFields(rule="sla", reason="SLA due times changed", fields={
        "sla_first_response_due": "2026-11-20T09:30:00+08:00", "sla_resolution_due": "2026-11-21T09:00:00+08:00"})
    assert [a.marker for a in plan.actions if isinstance(a, AddComment)] == ["spc-sla-warning-first_response-75"]
    assert plan.next_deadline == at("2026-11-20 09:30")
    later, _ = settle(after, at("2026-11-20 09:31"), only("sla"))
    breach = [a for a in later.actions if isinstance(a, AddComment)]
    assert [a.marker for a in breach] == ["spc-sla-breach-first_response"]
    assert not breach[0].public and "30m" in breach[0].body


def test_sla_quiet_before_thresholds_and_once_responded():
    t = ticket(priority="P0", fields=INTAKE, labels=set())
    plan = evaluate(t, at("2026-11-20 09:10"), only("sla"))
    assert not [a for a in plan.actions if isinstance(a, AddComment)]
    answered = ticket(priority="P0", comments=[agent_reply("2026-11-20 09:12")])
    plan = evaluate(answered, at("2026-11-20 10:00"), only("sla"))
    assert plan.sla["first_response"].state == "met"
    assert not [a for a in plan.actions if isinstance(a, AddComment) and "first_response" in (a.marker or "")]


def test_sla_no_notices_while_paused():
    t = ticket(priority="P0", status=Status.WAITING_FOR_CUSTOMER,
               history=[("2026-11-20 09:05", Status.NEW, Status.WAITING_FOR_CUSTOMER)])
    plan = evaluate(t, at("2026-11-20 12:00"), only("sla"))
    assert plan.sla["first_response"].state == "paused"
    assert not [a for a in plan.actions if isinstance(a, AddComment)]


def test_progress_update_breach_is_once_per_cycle():
    t = ticket(priority="P1", status=Status.IN_PROGRESS, group="L1",
               history=[("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS)],
               comments=[agent_reply("2026-11-20 09:10")])
    plan, after = settle(t, at("2026-11-20 14:20"), only("sla"))
    assert "spc-sla-breach-periodic_update-c1" in [a.marker for a in plan.actions if isinstance(a, AddComment)]
    updated = after.model_copy(update={"comments": after.comments + (agent_reply("2026-11-20 14:30", n=2),)})
    plan2, _ = settle(updated, at("2026-11-20 17:40"), only("sla"))
    assert plan2.sla["periodic_update"].cycle == 2
    assert "spc-sla-warning-periodic_update-75-c2" in [a.marker for a in plan2.actions if isinstance(a, AddComment)]


# --- escalation ------------------------------------------------------------------------

def test_escalation_to_l2_at_half_the_resolution_target():
    t = ticket(priority="P1", status=Status.IN_PROGRESS, group="L1", comments=[agent_reply("2026-11-20 09:10")],
               history=[("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS)])
    before = evaluate(t, at("2026-11-20 12:00"), only("sla", "escalation"))
    assert not [a for a in before.actions if isinstance(a, Assign)]
    # The progress-update warning (75% of 4h from 09:10) comes first.
    assert before.next_deadline == at("2026-11-20 13:10")
    # 50% of the P1 target (1bd = 8h) is reached at 14:00, after the lunch break.
    assert not [a for a in evaluate(t, at("2026-11-20 13:59"), only("sla", "escalation")).actions if isinstance(a, Assign)]
    plan, after = settle(t, at("2026-11-20 14:00"), only("sla", "escalation"))
    assert [a.group for a in plan.actions if isinstance(a, Assign)] == ["L2"]
    assert "spc-escalation-l2" in after.labels


def test_escalation_team_lead_on_breach_and_agent_handback_is_respected():
    t = ticket(priority="P1", status=Status.IN_PROGRESS, group="L1", comments=[agent_reply("2026-11-20 09:10")],
               history=[("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS)])
    plan, after = settle(t, at("2026-11-23 10:00"), only("sla", "escalation"))
    assigns = [a for a in plan.actions if isinstance(a, Assign)]
    assert [(a.group, a.assignee) for a in assigns] == [("L2", None), ("team-lead", None)]
    handed_back = after.model_copy(update={"group": "L1", "assignee": "alice"})
    assert not [a for a in evaluate(handed_back, at("2026-11-23 10:05"), only("sla", "escalation")).actions
                if isinstance(a, Assign)]


def test_escalation_can_raise_priority():
    config = load_config(DEFAULT_CONFIG)
    escalation = next(r for r in config.rules if r.id == "escalation")
    escalation.levels[0].raise_priority = True
    config = config.model_copy(update={"rules": [r for r in config.rules if r.id in ("sla", "escalation")]})
    t = ticket(priority="P2", status=Status.IN_PROGRESS, group="L1", comments=[agent_reply("2026-11-20 09:10")])
    # Friday 8h + Monday 4h (09-12, 13-14) of a 24h (3bd) target: 50% used at Monday 14:00.
    assert not [a for a in evaluate(t, at("2026-11-23 13:55"), config).actions if isinstance(a, SetPriority)]
    plan = evaluate(t, at("2026-11-23 14:05"), config)
    assert [a.priority for a in plan.actions if isinstance(a, SetPriority)] == ["P1"]


# --- closure ---------------------------------------------------------------------------

def resolved(fields, attempts=1, status=Status.RESOLVED):
    history = [("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS)]
    for n in range(attempts):
        history.append((f"2026-11-20 1{n + 1}:00", Status.IN_PROGRESS, status))
        if n + 1 < attempts:
            history.append((f"2026-11-20 1{n + 1}:05", status, Status.IN_PROGRESS))
    return ticket(status=status, fields=fields, history=history, group="L1")


def test_closure_sends_back_a_ticket_resolved_without_root_cause():
    t = resolved({**INTAKE, "solution": "restart", "verification_result": "resolved"})
    plan, after = settle(t, at("2026-11-20 11:01"), only("closure"))
    comment = next(a for a in plan.actions if isinstance(a, AddComment))
    assert comment.marker == "spc-closure-returned-1" and "Root cause" in comment.body and "Solution" not in comment.body
    assert after.status == Status.IN_PROGRESS


def test_closure_answers_every_new_attempt_once():
    t = resolved({**INTAKE}, attempts=2, status=Status.CLOSED)
    t = t.model_copy(update={"labels": frozenset({"spc-closure-returned-1"})})
    plan = evaluate(t, at("2026-11-20 12:30"), only("closure"))
    assert [a.marker for a in plan.actions if isinstance(a, AddComment)] == ["spc-closure-returned-2"]


def test_closure_quiet_when_criteria_met():
    t = resolved({**INTAKE, "root_cause": "cert expired", "solution": "renewed", "verification_result": "resolved"})
    assert evaluate(t, at("2026-11-20 11:01"), only("closure")).actions == []


def test_reporter_not_resolved_goes_back_to_work():
    t = resolved({**INTAKE, "root_cause": "x", "solution": "y", "verification_result": "Not resolved"})
    plan, after = settle(t, at("2026-11-20 11:01"), only("closure"))
    comment = next(a for a in plan.actions if isinstance(a, AddComment))
    assert comment.public and comment.marker == "spc-closure-not-resolved-1"
    assert after.status == Status.IN_PROGRESS and after.fields["verification_result"] is None


# --- follow-up -------------------------------------------------------------------------

def closed_p1(**extra):
    fields = {**INTAKE, "root_cause": "x", "solution": "y", "verification_result": "resolved"}
    return ticket(priority="P1", status=Status.CLOSED, fields=fields, group="L1",
                  history=[("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS),
                           ("2026-11-20 16:00", Status.IN_PROGRESS, Status.CLOSED)], **extra)


def test_follow_up_due_three_business_days_after_closing():
    plan, after = settle(closed_p1(), at("2026-11-20 16:05"), only("follow-up"))
    # Friday 16:00 + 24 business hours (3 x 8h) = Wednesday 16:00.
    assert plan.actions == [SetFields(rule="follow-up", reason="follow-up due after closing",
                                      fields={"follow_up_due": "2026-11-25T16:00:00+08:00"})]
    assert plan.next_deadline == at("2026-11-25 16:00")
    reminder, _ = settle(after, at("2026-11-25 16:01"), only("follow-up"))
    assert [a.marker for a in reminder.actions] == ["spc-follow-up-reminded"]


def test_follow_up_done_when_agent_writes_after_closing():
    t = closed_p1(comments=[agent_reply("2026-11-24 10:00")])
    plan, _ = settle(t, at("2026-11-24 10:05"), only("follow-up"))
    assert AddLabel(rule="follow-up", reason="an agent wrote to the reporter after closing",
                    label="spc-follow-up-done") in plan.actions


def test_follow_up_not_for_p2_or_open_tickets():
    p2 = closed_p1().model_copy(update={"priority": "P2"})
    assert evaluate(p2, at("2026-11-26 10:00"), only("follow-up")).actions == []
    open_p1 = ticket(priority="P1", status=Status.IN_PROGRESS)
    assert evaluate(open_p1, at("2026-11-26 10:00"), only("follow-up")).actions == []


# --- whole process ---------------------------------------------------------------------

@pytest.mark.parametrize("minutes", [0, 20, 45, 300, 3000, 9000])
def test_whole_config_is_idempotent_over_a_tickets_life(minutes):
    from datetime import timedelta

    t = ticket(priority="P1", fields={"symptom": "x"}, comments=[requester_reply("2026-11-20 09:01")])
    settle(t, at("2026-11-20 09:00") + timedelta(minutes=minutes), CONFIG)


def test_evaluate_refuses_a_naive_instant():
    from datetime import datetime

    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(ticket(), datetime(2026, 11, 20, 9), CONFIG)


# --- auto-close ------------------------------------------------------------------------

def resolved_p2(fields=None, **extra):
    fields = fields or {**INTAKE, "root_cause": "x", "solution": "y", "verification_result": "resolved"}
    return ticket(status=Status.RESOLVED, fields=fields, group="L1",
                  history=[("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS),
                           ("2026-11-20 16:00", Status.IN_PROGRESS, Status.RESOLVED)], **extra)


def test_auto_close_after_three_business_days_without_reply():
    quiet = evaluate(resolved_p2(), at("2026-11-25 15:59"), only("auto-close"))
    assert quiet.actions == [] and quiet.next_deadline == at("2026-11-25 16:00")
    plan, after = settle(resolved_p2(), at("2026-11-25 16:00"), only("auto-close"))
    comment = next(a for a in plan.actions if isinstance(a, AddComment))
    assert comment.public and comment.marker == "spc-auto-close-1" and "2026-11-20 16:00" in comment.body
    assert after.status == Status.CLOSED


def test_auto_close_transition_lost_after_the_comment_is_planned_again():
    # The comment and its marker landed, the close did not (refused, or the worker died).
    t = resolved_p2(labels={"spc-auto-close-1"})
    plan, after = settle(t, at("2026-11-25 16:00"), only("auto-close"))
    assert [(type(a).__name__, a.to) for a in plan.actions] == [("Transition", Status.CLOSED)]
    assert after.status == Status.CLOSED


def test_auto_close_waits_when_the_reporter_answered():
    replied = resolved_p2(comments=[requester_reply("2026-11-23 10:00")])
    assert evaluate(replied, at("2026-11-30 10:00"), only("auto-close")).actions == []


def test_auto_close_leaves_tickets_failing_closure_to_the_closure_rule():
    incomplete = resolved_p2(fields=INTAKE)
    plan = evaluate(incomplete, at("2026-11-26 10:00"), only("closure", "auto-close"))
    assert [a.to for a in plan.actions if isinstance(a, Transition)] == [Status.IN_PROGRESS]


def test_intake_transition_lost_after_the_request_is_planned_again():
    # The comment and its marker landed, the transition did not (worker killed in between).
    t = ticket(fields={k: v for k, v in INTAKE.items() if k != "environment"}, labels={"spc-intake-requested"})
    plan, after = settle(t, at("2026-11-20 09:10"), only("intake"))
    assert [type(a).__name__ for a in plan.actions] == ["Transition"]
    assert after.status == Status.WAITING_FOR_INFORMATION
