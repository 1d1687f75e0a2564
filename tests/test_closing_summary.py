"""The closing-summary rule: one public summary per resolve attempt, in the reporter's language."""

from __future__ import annotations

import pytest

from connector.config import ConfigError, load_config
from connector.model import AddComment, Status, Transition
from connector.rules.closing_summary import LocalizedComment
from connector.rules.engine import evaluate
from connector.rules.projection import project
from connector.settings import DEFAULT_CONFIG
from tests.factories import INTAKE, at, ticket

CONFIG = load_config(DEFAULT_CONFIG)
ZH_CONFIG = load_config(DEFAULT_CONFIG.parent / "standard-support.zh-CN.yaml")
DONE = {"root_cause": "Expired database password", "solution": "Rotated the password",
        "verification_result": "resolved", "preventive_measures": "Password expiry is monitored",
        "kb_link": "https://kb.example.com/1"}


def only(*rule_ids, config=CONFIG):
    """The config with just these rules. Without its sla rules the closing summary has no tier
    to take the calendar from, so it is given the standard calendar explicitly."""
    rules = [r.model_copy(update={"calendar": "standard"}) if r.type == "closing-summary" else r
             for r in config.rules if r.id in rule_ids]
    return config.model_copy(update={"rules": rules})


def resolved(fields=None, *, created="2026-11-20 09:00", history=None, locale=None, status=Status.RESOLVED, labels=()):
    history = history or [("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS),
                          ("2026-11-20 11:00", Status.IN_PROGRESS, status)]
    t = ticket(status=status, created=created, fields={**INTAKE, **DONE, **(fields or {})}, history=history,
               group="L1", assignee="alice", labels=labels)
    return t.model_copy(update={"requester_locale": locale})


def summaries(plan):
    return [a for a in plan.actions if isinstance(a, AddComment) and a.rule == "closing-summary"]


def settle(t, now, config):
    plan = evaluate(t, now, config)
    after = project(t, plan.actions, now)
    assert evaluate(after, now, config).actions == [], "not idempotent"
    return plan, after


def test_fires_once_on_resolve_with_the_ticket_s_own_words():
    plan, after = settle(resolved(), at("2026-11-20 11:01"), only("closing-summary"))
    [comment] = summaries(plan)
    assert comment.public and comment.marker == "spc-closing-summary-sent-1"
    for words in ("Rotated the password", "Expired database password", "Password expiry is monitored",
                  "Handling time: 2h (business hours", "satisfied, basically satisfied or needs improvement"):
        assert words in comment.body
    assert "spc-closing-summary-sent-1" in after.labels


def test_root_cause_and_preventive_measures_are_optional():
    t = resolved({"root_cause": None, "preventive_measures": ""})
    [comment] = summaries(evaluate(t, at("2026-11-20 11:01"), only("closing-summary")))
    assert "Root cause" not in comment.body and "Preventive measures" not in comment.body
    assert "Rotated the password" in comment.body


def test_quiet_while_open_and_when_already_sent_for_this_attempt():
    rule = only("closing-summary")
    open_ticket = ticket(status=Status.IN_PROGRESS, fields={**INTAKE, **DONE},
                         history=[("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS)])
    assert evaluate(open_ticket, at("2026-11-20 11:01"), rule).actions == []
    sent = resolved(labels={"spc-closing-summary-sent-1"})
    assert evaluate(sent, at("2026-11-20 11:01"), rule).actions == []


def test_a_second_resolve_attempt_gets_a_fresh_summary():
    history = [("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS),
               ("2026-11-20 10:00", Status.IN_PROGRESS, Status.RESOLVED),
               ("2026-11-20 10:30", Status.RESOLVED, Status.IN_PROGRESS),
               ("2026-11-20 11:00", Status.IN_PROGRESS, Status.RESOLVED)]
    t = resolved(history=history, labels={"spc-closing-summary-sent-1"})
    [comment] = summaries(evaluate(t, at("2026-11-20 11:01"), only("closing-summary")))
    assert comment.marker == "spc-closing-summary-sent-2"
    # 9:00–10:00 and 10:30–11:00 worked; the half hour resolved in between is not handling time.
    assert "Handling time: 1h 30m" in comment.body
    # resolved -> closed is the same attempt: nothing more.
    closed = t.model_copy(update={"labels": t.labels | {"spc-closing-summary-sent-2"}, "status": Status.CLOSED,
                                  "status_history": t.status_history + (
                                      t.status_history[-1].model_copy(update={"at": at("2026-11-20 11:30"),
                                                                              "from_status": Status.RESOLVED,
                                                                              "to_status": Status.CLOSED}),)})
    assert evaluate(closed, at("2026-11-20 11:31"), only("closing-summary")).actions == []


def test_no_summary_for_a_ticket_the_closure_rule_sends_back_in_the_same_plan():
    t = resolved({"root_cause": None})
    plan = evaluate(t, at("2026-11-20 11:01"), only("closure", "closing-summary"))
    assert [a.to for a in plan.actions if isinstance(a, Transition)] == [Status.IN_PROGRESS]
    assert summaries(plan) == []


def test_no_summary_for_a_critical_change_the_review_gate_sends_back():
    t = resolved({"change_type": "Data fix"})
    plan = evaluate(t, at("2026-11-20 11:01"), only("review-gate", "closing-summary"))
    assert [a.rule for a in plan.actions] == ["review-gate", "review-gate"]
    # With the reviewer recorded the resolve holds and the summary goes out.
    plan = evaluate(resolved({"change_type": "Data fix", "reviewer": "bob"}), at("2026-11-20 11:01"),
                    only("review-gate", "closing-summary"))
    assert len(summaries(plan)) == 1


def test_a_full_standard_plan_settles_with_one_summary():
    plan, _ = settle(resolved(), at("2026-11-20 11:01"), CONFIG)
    assert len(summaries(plan)) == 1


def test_old_resolutions_get_no_summary():
    assert evaluate(resolved(), at("2026-11-21 11:01"), only("closing-summary")).actions == []


@pytest.mark.parametrize(("locale", "language_words"), [
    ("zh-CN", "已解决"), ("zh_CN", "已解决"), ("ZH-cn", "已解决"), ("zh", "已解决"), ("zh-TW", "已解决"),
    ("en-US", "has been resolved"), ("en-GB", "has been resolved"), ("fr", "has been resolved"),
    (None, "has been resolved"),
])
def test_the_reporter_s_language_picks_the_template(locale, language_words):
    [comment] = summaries(evaluate(resolved(locale=locale), at("2026-11-20 11:01"), only("closing-summary")))
    assert language_words in comment.body


def test_the_zh_config_defaults_to_chinese():
    rule = only("closing-summary", config=ZH_CONFIG)
    [comment] = summaries(evaluate(resolved(), at("2026-11-20 11:01"), rule))
    assert "预防措施：Password expiry is monitored" in comment.body and "满意、基本满意或需改进" in comment.body
    [comment] = summaries(evaluate(resolved(locale="en-US"), at("2026-11-20 11:01"), rule))
    assert "has been resolved" in comment.body


def test_language_matching():
    spec = LocalizedComment(templates={"en": "a", "zh-CN": "b", "pt-BR": "c"}, default="en")
    assert [spec.language_for(x) for x in ("pt_br", "pt-PT", "zh-Hans", "de", "", None)] == \
        ["pt-BR", "pt-BR", "zh-CN", "en", "en", "en"]
    with pytest.raises(ValueError, match="default 'fr' has no template"):
        LocalizedComment(templates={"en": "a"}, default="fr")


def test_handling_time_is_business_time_over_a_weekend_without_waiting():
    history = [("2026-11-20 17:00", Status.NEW, Status.IN_PROGRESS),
               ("2026-11-20 17:30", Status.IN_PROGRESS, Status.WAITING_FOR_CUSTOMER),   # Friday
               ("2026-11-23 09:30", Status.WAITING_FOR_CUSTOMER, Status.IN_PROGRESS),   # Monday
               ("2026-11-23 10:00", Status.IN_PROGRESS, Status.RESOLVED)]
    t = resolved(created="2026-11-20 17:00", history=history)
    [comment] = summaries(evaluate(t, at("2026-11-23 10:01"), only("closing-summary")))
    assert "Handling time: 1h (business hours" in comment.body  # 17:00–17:30 + 09:30–10:00
    # `pause_statuses: []` counts the waiting too: Friday 17–18 and Monday 9–10.
    rules = [r.model_copy(update={"pause_statuses": []}) if r.id == "closing-summary" else r for r in CONFIG.rules]
    counting = only("closing-summary", config=CONFIG.model_copy(update={"rules": rules}))
    [comment] = summaries(evaluate(t, at("2026-11-23 10:01"), counting))
    assert "Handling time: 2h (business hours" in comment.body


def test_handling_time_skips_a_public_holiday():
    # New Year's Day 2027 (a Friday) is a holiday in CN, then a weekend: 1h on 31 Dec, 1h on 4 Jan.
    history = [("2026-12-31 17:00", Status.NEW, Status.IN_PROGRESS),
               ("2027-01-04 10:00", Status.IN_PROGRESS, Status.RESOLVED)]
    t = resolved(created="2026-12-31 17:00", history=history)
    [comment] = summaries(evaluate(t, at("2027-01-04 10:05"), only("closing-summary")))
    assert "Handling time: 2h (business hours" in comment.body


CHECK = """
version: 1
calendars:
  standard: {{timezone: Asia/Shanghai, working_hours: {{mon: ["09:00-18:00"]}}}}
rules:
  - id: closing-summary
    type: closing-summary
    calendar: {calendar}
    preventive_measures_field: {field}
    comment: {{default: en, templates: {{en: "{{{{ solution }}}}"}}}}
  - id: closure
    type: closure
    fields: [solution]
    comment: {{template: "x"}}
"""


def test_config_problems_are_named(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(CHECK.format(calendar="nope", field="prevention"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "calendar 'nope' is not defined" in text
    assert "field 'prevention' is not mapped" in text
    assert "must come after the rules that may send a resolved ticket back (closure)" in text


def test_no_summary_when_a_send_back_was_recorded_but_the_move_failed():
    # The closure rule answered this attempt (its marker is on the ticket) but the workflow
    # offered no transition back, so the ticket is still resolved: the resolve does not stand.
    t = resolved({"root_cause": None}, labels={"spc-closure-returned-1"})
    assert evaluate(t, at("2026-11-20 11:01"), only("closure", "closing-summary")).actions == []
    t = resolved({"change_type": "Data fix"}, labels={"spc-review-gate-returned-1"})
    assert evaluate(t, at("2026-11-20 11:01"), only("review-gate", "closing-summary")).actions == []
    # A send-back of an earlier attempt does not silence this one.
    history = [("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS),
               ("2026-11-20 10:00", Status.IN_PROGRESS, Status.RESOLVED),
               ("2026-11-20 10:05", Status.RESOLVED, Status.IN_PROGRESS),
               ("2026-11-20 11:00", Status.IN_PROGRESS, Status.RESOLVED)]
    t = resolved(history=history, labels={"spc-closure-returned-1"})
    [comment] = summaries(evaluate(t, at("2026-11-20 11:01"), only("closure", "closing-summary")))
    assert comment.marker == "spc-closing-summary-sent-2"


def test_handling_time_is_counted_in_the_calendar_of_the_ticket_s_sla_tier():
    """No `calendar:` on the rule (as shipped): the tier that measured the ticket decides. The
    same 09:00–11:00 Shanghai wall-clock span is 2 business hours for a standard customer and
    none for the premium customer in Berlin (02:00–04:00 there, before working hours)."""
    rules = [r for r in CONFIG.rules if r.type in ("sla", "closing-summary")]
    assert next(r for r in rules if r.type == "closing-summary").calendar is None
    config = CONFIG.model_copy(update={"rules": rules})
    standard = resolved()
    premium = standard.model_copy(update={"organizations": ("Acme Europe",)})
    [plain] = summaries(evaluate(standard, at("2026-11-20 11:01"), config))
    [berlin] = summaries(evaluate(premium, at("2026-11-20 11:01"), config))
    assert "Handling time: 2h (business hours" in plain.body
    assert "Handling time: 0m (business hours" in berlin.body


def test_no_summary_without_a_calendar_to_count_in():
    config = CONFIG.model_copy(update={"rules": [r for r in CONFIG.rules if r.type == "closing-summary"]})
    assert summaries(evaluate(resolved(), at("2026-11-20 11:01"), config)) == []
