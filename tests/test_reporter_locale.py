"""The reporter's locale is read only when the closing summary's language depends on it.

`ClosingSummaryRule.wants_reporter_locale` is pure; `connector.locales.with_reporter_locale`
asks an adapter that has a `reporter_locale` method, and only when the predicate says so.
"""

from __future__ import annotations

from connector.config import load_config
from connector.locales import wants_reporter_locale, with_reporter_locale
from connector.model import AddComment, Status
from connector.rules.engine import evaluate
from connector.settings import DEFAULT_CONFIG
from tests.factories import INTAKE, at, ticket

CONFIG = load_config(DEFAULT_CONFIG)
NOW = at("2026-11-20 11:01")
DONE = {"root_cause": "Expired database password", "solution": "Rotated the password",
        "verification_result": "resolved", "preventive_measures": "Password expiry is monitored",
        "kb_link": "https://kb.example.com/1"}


def only(*rule_ids, config=CONFIG, **options):
    """The config with just these rules; the closing summary gets the standard calendar (no sla rule)."""
    rules = [r.model_copy(update={"calendar": "standard", **options}) if r.type == "closing-summary" else r
             for r in config.rules if r.id in rule_ids]
    return config.model_copy(update={"rules": rules})


SUMMARY = only("closing-summary")


def resolved(fields=None, *, status=Status.RESOLVED, labels=(), locale=None):
    t = ticket(status=status, fields={**INTAKE, **DONE, **(fields or {})}, group="L1", assignee="alice",
               history=[("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS),
                        ("2026-11-20 11:00", Status.IN_PROGRESS, status)], labels=labels)
    return t.model_copy(update={"reporter": "acc-lilei", "requester_locale": locale})


class Reader:
    """An adapter with a `reporter_locale` method that records what it was asked."""

    def __init__(self, answer):
        self.answer = answer
        self.asked: list[str] = []

    def reporter_locale(self, t):
        self.asked.append(t.key)
        return self.answer


def summary_body(t, config=SUMMARY):
    [comment] = [a for a in evaluate(t, NOW, config).actions
                 if isinstance(a, AddComment) and a.rule == "closing-summary"]
    return comment.body


# --- the predicate ------------------------------------------------------------------------------


def test_fires_when_a_summary_is_owed_and_the_locale_is_unknown():
    assert wants_reporter_locale(resolved(), NOW, SUMMARY)
    assert wants_reporter_locale(resolved(status=Status.CLOSED), NOW, SUMMARY)
    assert wants_reporter_locale(resolved(), NOW, CONFIG)  # the shipped config: tier calendars, en + zh-CN


def test_quiet_when_the_platform_gave_the_locale():
    assert not wants_reporter_locale(resolved(locale="zh-CN"), NOW, SUMMARY)


def test_quiet_for_an_open_ticket():
    open_ticket = ticket(status=Status.IN_PROGRESS, fields={**INTAKE, **DONE},
                         history=[("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS)])
    assert not wants_reporter_locale(open_ticket, NOW, SUMMARY)


def test_quiet_when_the_summary_for_this_attempt_was_sent():
    assert not wants_reporter_locale(resolved(labels={"spc-closing-summary-sent-1"}), NOW, SUMMARY)


def test_quiet_when_the_resolve_was_sent_back():
    config = only("closure", "closing-summary")
    assert not wants_reporter_locale(resolved(labels={"spc-closure-returned-1"}), NOW, config)
    assert not wants_reporter_locale(resolved(labels={"spc-closure-not-resolved-1"}), NOW, config)


def test_quiet_past_max_delay_hours():
    assert not wants_reporter_locale(resolved(), at("2026-11-21 11:01"), SUMMARY)


def test_quiet_without_a_calendar():
    # No sla rule measures the ticket and the rule names no calendar: no summary, so no read.
    rules = [r.model_copy(update={"calendar": None}) for r in SUMMARY.rules]
    assert not wants_reporter_locale(resolved(), NOW, SUMMARY.model_copy(update={"rules": rules}))


def test_quiet_for_a_single_language_config():
    one = SUMMARY.rules[0].comment.model_copy(update={"templates": {"en": "{{ solution }}"}})
    assert not wants_reporter_locale(resolved(), NOW, only("closing-summary", comment=one))


def test_quiet_when_the_rule_is_disabled_or_absent():
    assert not wants_reporter_locale(resolved(), NOW, only("closing-summary", enabled=False))
    assert not wants_reporter_locale(resolved(), NOW, only("closure"))


# --- the seam -----------------------------------------------------------------------------------


def test_the_read_locale_picks_the_template():
    reader = Reader("zh_CN")
    t = with_reporter_locale(reader, resolved(), SUMMARY, NOW)
    assert reader.asked == ["SUP-1"] and t.requester_locale == "zh_CN"
    assert "已解决" in summary_body(t)


def test_an_unknown_locale_leaves_the_default_language():
    reader = Reader(None)
    t = with_reporter_locale(reader, resolved(), SUMMARY, NOW)
    assert reader.asked == ["SUP-1"] and t.requester_locale is None
    assert "has been resolved" in summary_body(t)


def test_nothing_is_asked_when_the_outcome_does_not_depend_on_it():
    reader = Reader("zh_CN")
    for t in (resolved(locale="en-US"), resolved(labels={"spc-closing-summary-sent-1"}),
              ticket(status=Status.IN_PROGRESS)):
        assert with_reporter_locale(reader, t, SUMMARY, NOW) is t
    assert reader.asked == []


def test_an_adapter_without_the_method_is_left_alone():
    t = resolved(locale=None).model_copy(update={"platform": "zendesk"})
    assert with_reporter_locale(object(), t, SUMMARY, NOW) is t
