"""The pieces both adapters share (connector/platforms/{labels,writes,memory,formats,transport}).

The adapter tests (test_jira_adapter, test_zendesk_adapter, the e2e tests) prove them
through each platform's wire format; these pin down the shared rules themselves, so a
change to one of them shows here once rather than as two platform failures.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from connector.model import AddComment, AddLabel, Assign, Plan, RemoveLabel, SetFields, SetPriority, Status, Ticket, Transition
from connector.platforms import writes
from connector.platforms.base import ApplyResult, NotFound, RetryPolicy
from connector.platforms.formats import aware_datetime, iso_date
from connector.platforms.labels import LabelChanges
from connector.platforms.mapping import default_zendesk_mapping
from connector.platforms.memory import BoundedMemory
from connector.platforms.transport import call_platform

AT = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


def ticket(**overrides) -> Ticket:
    values = {"platform": "zendesk", "id": "4540", "key": "#4540", "status": Status.IN_PROGRESS,
              "raw_status": "open", "created": AT - timedelta(days=1)}
    return Ticket(**{**values, **overrides})


def plan(*actions) -> Plan:
    return Plan(platform="zendesk", ticket_id="4540", ticket_key="#4540", evaluated_at=AT, actions=list(actions))


def reasons(result: ApplyResult) -> list[str]:
    return [skipped.reason for skipped in result.skipped]


# --- labels ------------------------------------------------------------------------------


def test_label_changes_send_only_the_net_effect():
    result = ApplyResult()
    changes = LabelChanges(frozenset({"vip", "old"}), noun="tag")
    add_new, add_present = AddLabel(rule="r", reason="", label="new"), AddLabel(rule="r", reason="", label="vip")
    remove_old, remove_absent = RemoveLabel(rule="r", reason="", label="old"), RemoveLabel(rule="r", reason="", label="x")
    for action in (add_new, add_present, remove_old, remove_absent):
        (changes.add if isinstance(action, AddLabel) else changes.remove)(action, action.label, result)

    assert changes.changes() == [("new", True), ("old", False)]
    assert changes.carried(result) == [add_new, remove_old]
    assert reasons(result) == ["tag 'vip' already present", "tag 'x' not present"]


def test_a_label_added_and_removed_by_the_same_plan_sends_nothing():
    result = ApplyResult()
    changes = LabelChanges(frozenset(), noun="label")
    add, remove = AddLabel(rule="r", reason="", label="flag"), RemoveLabel(rule="r", reason="", label="flag")
    changes.add(add, "flag", result)
    changes.remove(remove, "flag", result)

    assert changes.changes() == []
    assert changes.carried(result) == []
    assert reasons(result) == ["label 'flag' undone by a later action of the plan"] * 2  # both actions


def test_a_marker_that_records_a_comment_of_the_plan_cannot_be_removed_or_added_by_it():
    result = ApplyResult()
    changes = LabelChanges(frozenset(), noun="tag", pinned=frozenset({"sc-asked"}))
    changes.add(AddLabel(rule="r", reason="", label="sc-asked"), "sc-asked", result)
    changes.remove(RemoveLabel(rule="r", reason="", label="sc-asked"), "sc-asked", result)

    assert changes.changes() == []
    assert reasons(result) == ["tag 'sc-asked' is added with the comment it records",
                               "tag 'sc-asked' records a comment of this plan"]


def test_pinning_a_posted_comments_marker_adds_its_label():
    changes = LabelChanges(frozenset(), noun="label")
    changes.pin("sc-asked")
    assert changes.changes() == [("sc-asked", True)]


# --- the plan walk -------------------------------------------------------------------------


def test_walk_plan_skips_what_is_done_and_keeps_the_last_transition():
    result = ApplyResult()
    first, last = (Transition(rule="a", reason="", to=Status.RESOLVED), Transition(rule="b", reason="", to=Status.CLOSED))
    same_priority, new_fields = SetPriority(rule="p", reason="", priority="P2"), SetFields(rule="f", reason="", fields={"x": 1})
    comment = AddComment(rule="c", reason="", body="hi")
    seen: list = []

    carried, transition = writes.walk_plan(
        ticket(priority="P2"), plan(first, same_priority, new_fields, comment, last), result,
        LabelChanges(frozenset(), noun="tag"),
        fields=lambda action: seen.append(action) or True,
        priority=lambda action: pytest.fail("the priority is already set"),
        assign=lambda action: pytest.fail("no assignment in the plan"),
        comment=seen.append,
    )

    assert transition is last and carried == [new_fields] and seen == [new_fields, comment]
    assert reasons(result) == ["priority is already P2", "superseded by a later transition in the plan"]


def test_a_group_the_ticket_is_in_by_another_name_is_not_written_again():
    result = ApplyResult()
    action = Assign(rule="route", reason="", group="billing", assignee="42")
    written = writes.plan_assignment(
        ticket(group="Billing team"), action, result,
        group=lambda name: pytest.fail("the ticket is in that group already"),
        assignee=lambda user: user == "42",
        group_aliases=["Billing team"],
    )
    assert written and reasons(result) == ["group is already 'billing'"]


def test_an_assignment_naming_nobody_is_skipped():
    result = ApplyResult()
    assert not writes.plan_assignment(ticket(), Assign(rule="route", reason=""), result,
                                      group=lambda name: True, assignee=lambda user: True)
    assert reasons(result) == ["names neither a group nor an assignee"]


def test_field_changes_compare_the_value_the_platform_stores_when_asked():
    mapping = default_zendesk_mapping()
    logical = next(iter(mapping.fields))
    action = SetFields(rule="f", reason="", fields={logical: "Network"})
    shaped = lambda ref, value: (ref, value.casefold())  # noqa: E731 – a dropdown's name becomes its tag

    kept = writes.field_changes(ticket(fields={logical: "network"}), action, mapping, ApplyResult(), shaped,
                                compare_shaped=False)
    skipped = ApplyResult()
    none = writes.field_changes(ticket(fields={logical: "network"}), action, mapping, skipped, shaped,
                                compare_shaped=True)

    assert kept == [(mapping.fields[logical], "network")] and none == []
    assert reasons(skipped) == [f"field {logical!r} already holds that value"]


def test_a_refusal_is_a_warning_a_refusal_and_a_skip():
    result = ApplyResult()
    action = Transition(rule="close", reason="", to=Status.CLOSED)
    writes.record_refusal(result, "zendesk", "status", "Zendesk refused status 'solved'", action)
    assert result.refused == result.warnings == ["Zendesk refused status 'solved'"] and len(result.skipped) == 1


# --- memory, formats, the request wrapper ---------------------------------------------------


def test_bounded_memory_forgets_the_least_recently_stored():
    memory: BoundedMemory[str, int] = BoundedMemory(size=2)
    memory.put("a", 1)
    memory.put("b", 2)
    memory.put("a", 3)  # refreshed
    memory.put("c", 4)
    assert "b" not in memory and memory.get("a") == 3 and memory.pop("c") == 4 and memory.pop("c") is None


def test_a_time_without_utc_offset_is_refused_and_dates_keep_their_own_zone():
    with pytest.raises(ValueError, match="UTC offset would be read in the server's zone"):
        aware_datetime("2026-11-23T09:00:00", zone="the server's zone")
    late_evening = datetime(2026, 11, 23, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert iso_date(late_evening) == "2026-11-23" and iso_date(date(2026, 1, 2)) == "2026-01-02"


def test_the_request_wrapper_translates_library_errors_and_lets_bugs_through():
    policy = RetryPolicy(sleep=lambda seconds: pytest.fail("nothing here is retried"))

    def library_error():
        raise KeyError("library detail with a token")

    with pytest.raises(NotFound) as raised:
        call_platform(policy, "jira", "issue.get", library_error,
                      lambda exc: NotFound("gone", platform="jira"), idempotent=True)
    assert raised.value.__suppress_context__  # the library's text does not ride along

    with pytest.raises(KeyError):
        call_platform(policy, "jira", "issue.get", library_error, lambda exc: None, idempotent=True)
