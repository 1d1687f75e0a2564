"""The review-gate rule: a critical change is not resolved without a second person's review."""

from __future__ import annotations

import pytest

from connector.config import load_config
from connector.model import AddComment, Status, Transition
from connector.rules.engine import evaluate
from connector.rules.projection import project
from connector.rules.review_gate import normalized
from connector.settings import DEFAULT_CONFIG
from tests.factories import INTAKE, at, ticket

CONFIG = load_config(DEFAULT_CONFIG)
ZH_CONFIG = load_config(DEFAULT_CONFIG.parent / "standard-support.zh-CN.yaml")
NOW = at("2026-11-20 11:01")
DONE = {"root_cause": "bad row", "solution": "fixed the row", "verification_result": "resolved"}


def only(*rule_ids, config=CONFIG):
    return config.model_copy(update={"rules": [r for r in config.rules if r.id in rule_ids]})


def resolved(fields, attempts=1, status=Status.RESOLVED, assignee="alice"):
    history = [("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS)]
    for n in range(attempts):
        history.append((f"2026-11-20 1{n + 1}:00", Status.IN_PROGRESS, status))
        if n + 1 < attempts:
            history.append((f"2026-11-20 1{n + 1}:05", status, Status.IN_PROGRESS))
    return ticket(status=status, fields={**INTAKE, **DONE, **fields}, history=history, group="L1", assignee=assignee)


def settle(t, config):
    plan = evaluate(t, NOW, config)
    after = project(t, plan.actions, NOW)
    assert evaluate(after, NOW, config).actions == [], "not idempotent"
    return plan, after


@pytest.mark.parametrize("change_type", ["Data fix", "data_fix", "Configuration", "upgrade", "Architecture"])
def test_critical_change_without_reviewer_goes_back_with_a_note(change_type):
    t = resolved({"change_type": change_type})
    plan, after = settle(t, only("review-gate"))
    [comment] = [a for a in plan.actions if isinstance(a, AddComment)]
    assert comment.marker == "spc-review-gate-returned-1" and not comment.public
    assert "Reviewer" in comment.body and "own change" not in comment.body
    assert f"({normalized(change_type)})" in comment.body  # the configured spelling
    assert [a.to for a in plan.actions if isinstance(a, Transition)] == [Status.IN_PROGRESS]
    assert after.status == Status.IN_PROGRESS


def test_the_assignee_cannot_review_their_own_change():
    t = resolved({"change_type": "Data fix", "reviewer": "ALICE"}, assignee="alice")
    plan, after = settle(t, only("review-gate"))
    [comment] = [a for a in plan.actions if isinstance(a, AddComment)]
    assert "cannot review their own change" in comment.body and after.status == Status.IN_PROGRESS


def test_quiet_with_a_second_person_or_for_other_changes():
    gate = only("review-gate")
    assert evaluate(resolved({"change_type": "Upgrade", "reviewer": "bob"}), NOW, gate).actions == []
    assert evaluate(resolved({"change_type": "Standard"}), NOW, gate).actions == []
    assert evaluate(resolved({}), NOW, gate).actions == []
    # Not resolved yet: nothing to gate (the review is recorded while working).
    in_work = ticket(status=Status.IN_PROGRESS, fields={**INTAKE, "change_type": "Data fix"}, assignee="alice")
    assert evaluate(in_work, NOW, gate).actions == []


def test_every_new_attempt_is_answered_once():
    t = resolved({"change_type": "Configuration"}, attempts=2, status=Status.CLOSED)
    t = t.model_copy(update={"labels": frozenset({"spc-review-gate-returned-1"})})
    plan = evaluate(t, NOW, only("review-gate"))
    assert [a.marker for a in plan.actions if isinstance(a, AddComment)] == ["spc-review-gate-returned-2"]
    replay = t.model_copy(update={"labels": t.labels | {"spc-review-gate-returned-2"}})
    assert evaluate(replay, NOW, only("review-gate")).actions == []


def test_zh_config_recognises_chinese_values_and_speaks_chinese():
    t = resolved({"change_type": "数据修复"})
    plan, _ = settle(t, only("review-gate", config=ZH_CONFIG))
    [comment] = [a for a in plan.actions if isinstance(a, AddComment)]
    assert "复核人" in comment.body and "关键变更" in comment.body


def test_after_closure_sent_it_back_the_next_attempt_meets_the_gate():
    # Rules run in order on the projected ticket: closure moves it back first, so one note
    # per attempt; the next attempt with the knowledge recorded meets the review gate.
    gate = only("closure", "review-gate")
    plan, after = settle(resolved({"change_type": "Data fix", "root_cause": None}), gate)
    assert [a.marker for a in plan.actions if isinstance(a, AddComment)] == ["spc-closure-returned-1"]
    second = resolved({"change_type": "Data fix"}, attempts=2).model_copy(update={"labels": after.labels})
    plan, after = settle(second, gate)
    assert [a.marker for a in plan.actions if isinstance(a, AddComment)] == ["spc-review-gate-returned-2"]
    assert after.status == Status.IN_PROGRESS


def test_unmapped_fields_are_a_config_problem(tmp_path):
    from connector.config import ConfigError
    text = DEFAULT_CONFIG.read_text().replace("reviewer_field: reviewer", "reviewer_field: second_pair_of_eyes")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "second_pair_of_eyes" in str(err.value) and "not mapped" in str(err.value)
