"""The review's arithmetic on platform-neutral tickets: pure functions, no sandbox, no clock.

Times are Shanghai wall-clock in the standard calendar (Mon–Fri 09–12, 13–18); 2026-11-20
is a Friday. Minute counts in the comments are business minutes.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from connector.config import SupportConfig, load_config
from connector.model import Status
from connector.review.metrics import (
    Headline,
    Period,
    build_report,
    count_reopens,
    percentile,
    satisfaction_label,
    satisfaction_positive,
    ticket_as_of,
)
from connector.review.similarity import Similar, clusters, jaccard, terms
from connector.settings import DEFAULT_CONFIG
from tests.factories import SHANGHAI, agent_reply, at, ticket

CONFIG = load_config(DEFAULT_CONFIG)
WEEK = Period.from_dates(date(2026, 11, 16), date(2026, 11, 23), SHANGHAI)  # Mon 16 .. Sun 22
LATER = datetime(2026, 12, 1, tzinfo=timezone.utc)

R = Status.RESOLVED
C = Status.CLOSED
IP = Status.IN_PROGRESS
N = Status.NEW
W = Status.WAITING_FOR_CUSTOMER


def numbered(n: int, **kwargs):
    return ticket(**kwargs).model_copy(update={"id": str(n), "key": f"SUP-{n}"})


def report(*tickets, period=WEEK, generated_at=LATER, config=CONFIG):
    return build_report(list(tickets), config, period, platform="jira", generated_at=generated_at)


# --- statistics and periods ------------------------------------------------------------------


def test_percentile_interpolates_between_closest_ranks():
    assert percentile([4, 1, 3, 2], 0.5) == 2.5
    assert percentile([1, 2, 3, 4], 0.9) == pytest.approx(3.7)  # rank 2.7: 3 + 0.7 * (4 - 3)
    assert percentile([7], 0.9) == 7
    assert percentile([], 0.5) is None


def test_period_is_whole_days_in_the_calendar_zone_and_knows_its_predecessor():
    assert WEEK.start == datetime(2026, 11, 16, tzinfo=SHANGHAI)
    assert WEEK.previous() == Period.from_dates(date(2026, 11, 9), date(2026, 11, 16), SHANGHAI)
    assert WEEK.contains(at("2026-11-22 23:59")) and not WEEK.contains(at("2026-11-23 00:00"))
    with pytest.raises(ValueError, match="end after"):
        Period.from_dates(date(2026, 11, 16), date(2026, 11, 16), SHANGHAI)
    with pytest.raises(ValueError, match="timezone-aware"):
        Period(datetime(2026, 11, 16), datetime(2026, 11, 17))


# --- one ticket -------------------------------------------------------------------------------


def test_ticket_as_of_forgets_what_happened_later():
    t = ticket(created="2026-11-20 09:00", comments=[agent_reply("2026-11-20 10:00"), agent_reply("2026-11-23 10:00", n=2)],
               history=[("2026-11-20 10:00", N, IP), ("2026-11-23 11:00", IP, R)], status=R)
    view = ticket_as_of(t, at("2026-11-23 00:00"))
    assert view.status == IP and len(view.comments) == 1 and len(view.status_history) == 1
    assert ticket_as_of(t, at("2026-11-20 09:00")) is None  # not created yet at that instant


def test_reopens_count_every_return_from_resolved_or_closed():
    t = ticket(history=[("2026-11-20 10:00", N, IP), ("2026-11-20 11:00", IP, R), ("2026-11-20 12:00", R, IP),
                        ("2026-11-20 13:00", IP, R), ("2026-11-20 14:00", R, C), ("2026-11-20 15:00", C, IP)])
    assert count_reopens(t) == 2
    assert count_reopens(ticket(history=[("2026-11-20 11:00", N, R), ("2026-11-20 12:00", R, C)])) == 0


@pytest.mark.parametrize("value, label, positive", [
    (5, "5", True), (4.0, "4", True), (3, "3", False), (4.5, "4.5", True), ("2", "2", False),
    ("Good", "good", True), ("bad", "bad", False), ("offered", "offered", None),
    (None, "not rated", None), ("  ", "not rated", None), (True, "not rated", None),
])
def test_satisfaction_buckets(value, label, positive):
    assert satisfaction_label(value) == label
    assert satisfaction_positive(label) is positive


# --- similarity -------------------------------------------------------------------------------


def test_terms_use_words_for_latin_text_and_bigrams_for_chinese():
    assert terms("The VPN drops after login!") == {"vpn", "drops", "login"}
    assert terms("发票无法下载") == {"发票", "票无", "无法", "法下", "下载"}
    # Particles split a run instead of forming bigrams; a lone character is kept.
    assert terms("网络的问题") == {"网络", "问题"}
    assert terms("VPN 断了") == {"vpn", "断"}
    assert terms("手机App推送") == {"手机", "app", "推送"}  # scripts split without spaces


def test_similar_summaries_cluster_only_within_a_category():
    items = [
        Similar("A", "network", "VPN drops every few minutes"),
        Similar("B", "billing", "VPN drops every few minutes"),  # same words, other category
        Similar("C", "network", "VPN drops every few minutes in Beijing"),  # 5/6
        Similar("D", "network", "Printer offline"),
        Similar("E", "billing", "发票无法下载"),
        Similar("F", "billing", "发票无法下载，提示错误"),  # 5/8
    ]
    found = clusters(items)
    assert [(c.category, c.keys) for c in found] == [("network", ("A", "C")), ("billing", ("E", "F"))]
    assert found[0].summary == "VPN drops every few minutes"
    assert set(found[0].common_terms) == {"vpn", "drops", "every", "few", "minutes"}
    assert clusters(items, threshold=0.9) == []
    assert jaccard(frozenset(), frozenset()) == 0.0
    with pytest.raises(ValueError):
        clusters(items, threshold=0)


def test_similarity_chains_transitively():
    items = [Similar("A", None, "alpha beta gamma"), Similar("B", None, "beta gamma delta"),
             Similar("C", None, "gamma delta epsilon")]  # A~B 2/4, B~C 2/4, A~C 1/5
    assert [c.keys for c in clusters(items)] == [("A", "B", "C")]


# --- figures ------------------------------------------------------------------------------------


def test_waiting_for_the_customer_is_not_counted_in_response_or_resolution_time():
    # Created Mon 09:00, waiting for customer 09:30-15:00, answered 15:30, resolved 17:00:
    # first response 30 + 30 = 60; resolution 30 + 120 = 150.
    t = ticket(created="2026-11-16 09:00", comments=[agent_reply("2026-11-16 15:30")],
               history=[("2026-11-16 09:30", N, W), ("2026-11-16 15:00", W, IP), ("2026-11-16 17:00", IP, R)])
    cur = report(t).current
    assert cur.first_response["all"].median == 60
    assert cur.resolution["all"].median == 150


def test_p0_times_are_business_time_but_compliance_uses_the_calendar_target():
    # P0 created Fri 17:00, answered 17:10, resolved Mon 10:00: business resolution 60 + 60 = 120 minutes,
    # but 65 hours of calendar time against a 24h calendar target: breached.
    t = ticket(priority="P0", created="2026-11-20 17:00", comments=[agent_reply("2026-11-20 17:10")],
               history=[("2026-11-20 17:10", N, IP), ("2026-11-23 10:00", IP, R)])
    period = Period.from_dates(date(2026, 11, 16), date(2026, 11, 30), SHANGHAI)
    cur = report(t, period=period).current
    assert cur.resolution["P0"].median == 120
    assert cur.compliance[("P0", "resolution")].breached == 1
    assert cur.compliance[("P0", "first_response")].met == 1


def test_a_ticket_resolved_after_the_period_is_a_leftover_of_it():
    t = numbered(1, created="2026-11-20 09:00", comments=[agent_reply("2026-11-20 09:30")],
                 history=[("2026-11-20 09:30", N, IP), ("2026-11-24 10:00", IP, R)], group="L1", assignee="alice")
    cur = report(t).current
    assert cur.resolved == 0 and cur.resolution["all"].count == 0
    [left] = cur.leftovers
    assert (left.key, left.owner, left.status) == ("SUP-1", "L1 / alice", IP)
    assert left.age_days == pytest.approx(2.625)  # Fri 09:00 -> Mon 00:00
    assert cur.compliance[("P2", "resolution")].open == 1


def test_an_overdue_leftover_names_the_breached_metric():
    t = numbered(1, priority="P1", created="2026-11-16 09:00")  # never answered, 1 business week later
    [left] = report(t).current.leftovers
    assert left.breached == ("first_response", "resolution") and left.owner == "unassigned"


def test_a_report_generated_mid_period_measures_up_to_now():
    t = ticket(created="2026-11-16 09:00", comments=[agent_reply("2026-11-16 11:00")])
    mid = at("2026-11-16 10:00")
    cur = report(t, generated_at=mid).current
    assert cur.as_of == mid
    assert cur.first_response["all"].count == 0  # the reply is in the future at 10:00
    assert cur.compliance[("P2", "first_response")].open == 1


def test_previous_period_feeds_the_trend():
    this = numbered(1, created="2026-11-17 09:00", comments=[agent_reply("2026-11-17 09:30")],
                    history=[("2026-11-17 10:00", N, R)])
    before = numbered(2, created="2026-11-10 09:00", comments=[agent_reply("2026-11-10 11:00")],
                      history=[("2026-11-10 12:00", N, R)])
    r = report(this, before)
    fr = r.headline("first_response_median")
    assert (fr.current, fr.previous, fr.delta, fr.verdict) == (30, 120, -90, "better")
    assert r.headline("tickets").verdict is None  # more tickets is neither good nor bad news
    assert r.previous.tickets == 1 and r.current.tickets == 1


def test_headline_verdict_follows_the_better_direction():
    assert Headline("x", "x", "percent", 90, 80, better="higher").verdict == "better"
    assert Headline("x", "x", "percent", 70, 80, better="higher").verdict == "worse"
    assert Headline("x", "x", "count", 3, 3, better="lower").verdict == "same"
    assert Headline("x", "x", "count", 3, None, better="lower").verdict is None


def test_tickets_without_priority_or_category_are_counted_under_none():
    t = ticket(priority=None, category=None, created="2026-11-16 09:00")
    cur = report(t).current
    assert cur.by_priority == {"(none)": 1} and cur.by_category == {"(none)": 1}
    assert cur.compliance == {}  # no priority, no target


def test_a_config_without_an_sla_rule_is_refused():
    with pytest.raises(ValueError, match="needs an enabled `sla` rule"):
        report(ticket(), config=SupportConfig())
