"""The review gate's second record: a Jira Service Management approval by someone other than
the assignee lets a critical change stand; a declined, pending or self-approved one does not;
`approvals: false` ignores them; approvals are asked for only when the outcome depends on them."""

from __future__ import annotations

import pytest

from connector.approvals import wants_approvals, with_approvals
from connector.config import load_config
from connector.model import AddComment, Approval, ApproverDecision, Status, Transition
from connector.rules.engine import evaluate
from connector.rules.projection import project
from connector.settings import DEFAULT_CONFIG
from tests.factories import INTAKE, at, ticket

CONFIG = load_config(DEFAULT_CONFIG)
ZH_CONFIG = load_config(DEFAULT_CONFIG.parent / "standard-support.zh-CN.yaml")
NOW = at("2026-11-20 11:01")
DONE = {"root_cause": "bad row", "solution": "fixed the row", "verification_result": "resolved"}


def only(*rule_ids, config=CONFIG, **options):
    rules = [r.model_copy(update=options) if options and r.type == "review-gate" else r
             for r in config.rules if r.id in rule_ids]
    return config.model_copy(update={"rules": rules})


GATE = only("review-gate")


def approval(final="approved", n="1", **decisions):
    return Approval(id=n, name="Change review", final_decision=final,
                    approvers=tuple(ApproverDecision(approver=who, decision=d) for who, d in decisions.items()))


def resolved(fields=None, approvals=None, platform="jira", status=Status.RESOLVED, assignee="alice"):
    t = ticket(status=status, fields={**INTAKE, **DONE, "change_type": "Data fix", **(fields or {})},
               history=[("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS),
                        ("2026-11-20 11:00", Status.IN_PROGRESS, status)],
               group="L1", assignee=assignee, platform=platform)
    return t.model_copy(update={"approvals": approvals})


def returned(t, config=GATE):
    """The note and the move back, or None when the resolve stands; checks idempotence."""
    plan = evaluate(t, NOW, config)
    after = project(t, plan.actions, NOW)
    assert evaluate(after, NOW, config).actions == [], "not idempotent"
    notes = [a for a in plan.actions if isinstance(a, AddComment)]
    if not notes:
        assert plan.actions == []
        return None
    assert [a.to for a in plan.actions if isinstance(a, Transition)] == [Status.IN_PROGRESS]
    return notes[0]


def test_an_approval_by_a_second_person_lets_the_resolve_stand():
    assert returned(resolved(approvals=(approval(bob="approved"),))) is None
    # One of several approvers other than the assignee is enough; the assignee's own "yes" is not needed.
    assert returned(resolved(approvals=(approval(alice="approved", carol="approved"),))) is None
    # Identities compare like the reviewer field: case-insensitively.
    assert returned(resolved(approvals=(approval(BOB="approved"),), assignee="Alice")) is None
    # Closed counts like resolved.
    assert returned(resolved(approvals=(approval(bob="approved"),), status=Status.CLOSED)) is None


def test_a_declined_approval_does_not_count():
    note = returned(resolved(approvals=(approval("declined", bob="declined"),)))
    assert note is not None and "Reviewer (or an approval by someone other than the assignee)" in note.body
    # A "yes" inside an approval whose final decision is not "approved" does not count either.
    assert returned(resolved(approvals=(approval("declined", bob="approved", carol="declined"),))) is not None
    assert returned(resolved(approvals=(approval("pending", bob="approved", carol="pending"),))) is not None


def test_an_approval_by_the_assignee_only_does_not_count():
    note = returned(resolved(approvals=(approval(alice="approved", bob="pending"),)))
    assert note is not None and "cannot review their own change" in note.body
    # ... nor does a second approver who did not say yes.
    assert returned(resolved(approvals=(approval(ALICE="approved", bob="declined"),))) is not None


def test_any_approved_approval_of_several_is_enough():
    approvals = (approval("declined", "1", bob="declined"), approval("approved", "2", carol="approved"))
    assert returned(resolved(approvals=approvals)) is None


def test_approvals_false_ignores_them_and_names_only_the_reviewer():
    config = only("review-gate", approvals=False)
    note = returned(resolved(approvals=(approval(bob="approved"),)), config)
    assert note is not None and "approval" not in note.body and "Reviewer" in note.body
    assert not wants_approvals(resolved(), config)


def test_approvals_not_read_count_as_none_fail_closed():
    note = returned(resolved(approvals=None))
    assert note is not None and "or an approval by someone other than the assignee" in note.body


def test_zendesk_has_no_approvals_nothing_changes():
    t = resolved(platform="zendesk", approvals=(approval(bob="approved"),))
    note = returned(t)
    assert note is not None and "approval" not in note.body
    assert not wants_approvals(resolved(platform="zendesk"), CONFIG)


def test_the_reviewer_field_still_settles_it_alone():
    assert returned(resolved({"reviewer": "bob"})) is None
    assert returned(resolved({"reviewer": "alice"}, approvals=(approval(bob="approved"),))) is None


def test_zh_config_names_the_approval_in_chinese():
    note = returned(resolved(approvals=()), only("review-gate", config=ZH_CONFIG))
    assert "或由处理人以外的人批准的审批" in note.body


@pytest.mark.parametrize("case, wanted", [
    ("critical change resolved without reviewer", True),
    ("reviewer recorded", False),
    ("open ticket", False),
    ("ordinary change", False),
    ("approvals already read", False),
    ("attempt already answered", False),
])
def test_approvals_are_wanted_only_when_the_outcome_depends_on_them(case, wanted):
    t = {
        "critical change resolved without reviewer": resolved(),
        "reviewer recorded": resolved({"reviewer": "bob"}),
        "open ticket": resolved(status=Status.IN_PROGRESS),
        "ordinary change": resolved({"change_type": "Standard"}),
        "approvals already read": resolved(approvals=()),
        "attempt already answered": resolved().model_copy(update={"labels": frozenset({"spc-review-gate-returned-1"})}),
    }[case]
    assert wants_approvals(t, CONFIG) is wanted


class CountingAdapter:
    def __init__(self, found):
        self.found, self.asked = found, 0

    def approvals(self, ticket):
        self.asked += 1
        return self.found


def test_with_approvals_reads_only_when_wanted_and_only_from_adapters_that_have_them():
    adapter = CountingAdapter((approval(bob="approved"),))
    assert with_approvals(adapter, resolved(), CONFIG).approvals == adapter.found and adapter.asked == 1
    untouched = resolved({"reviewer": "bob"})
    assert with_approvals(adapter, untouched, CONFIG) is untouched and adapter.asked == 1

    class Zendeskish:
        pass

    t = resolved()
    assert with_approvals(Zendeskish(), t, CONFIG) is t
