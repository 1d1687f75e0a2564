"""Satisfaction on the process's scale: the mapping, parsing real-shaped payloads, and the review report.

Shapes: Zendesk's ticket `satisfaction_rating` is the rating object of the Satisfaction
Ratings API ({"id", "score": "good"|"bad"|"offered"|"unoffered", "comment", ...},
https://developer.zendesk.com/api-reference/ticketing/ticket-management/satisfaction_ratings/);
Jira Service Management's request feedback is {"type": "csat", "rating": 1..5, "comment":
{"body"}} (GET /rest/servicedeskapi/request/{issueIdOrKey}/feedback,
https://developer.atlassian.com/cloud/jira/service-desk/rest/api-group-request/).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from connector.config import load_config
from connector.model import Status
from connector.platforms.mapping import default_jira_mapping, default_zendesk_mapping
from connector.platforms.ticket_json import load_ticket_json
from connector.review import render
from connector.review.metrics import Period, build_report
from connector.satisfaction import satisfaction_level
from connector.settings import DEFAULT_CONFIG
from tests.factories import SHANGHAI, agent_reply, ticket

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(("value", "level"), [
    (5, "satisfied"), (4, "satisfied"), (4.0, "satisfied"), ("4", "satisfied"), (3, "basically satisfied"),
    (2, "needs improvement"), (1, "needs improvement"), (0, None), (6, None), (True, None),
    ({"type": "csat", "rating": 3, "comment": {"body": "ok"}}, "basically satisfied"),
    ({"score": "good", "comment": "fast"}, "satisfied"), ({"score": "bad"}, "needs improvement"),
    ({"score": "offered"}, None), ({"score": "unoffered"}, None), ("good", "satisfied"),
    ("Basically satisfied", "basically satisfied"), ("basically_satisfied", "basically satisfied"),
    ("needs-improvement", "needs improvement"), ("满意", "satisfied"), ("基本满意", "basically satisfied"),
    ("需改进", "needs improvement"), ("", None), (None, None), ("great", None), ({}, None),
])
def test_levels(value, level):
    assert satisfaction_level(value) == level


def _example(platform: str) -> dict:
    return json.loads((EXAMPLES / platform / "resolved-closing-summary.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("rating", "level"), [
    ({"url": "https://acme-support.zendesk.com/api/v2/satisfaction_ratings/35436.json", "id": 35436,
      "assignee_id": 9011111111101, "group_id": 360001111001, "requester_id": 9012345678901, "ticket_id": 4542,
      "score": "good", "comment": "Fixed quickly", "created_at": "2026-11-20T07:00:00Z",
      "updated_at": "2026-11-20T07:00:00Z"}, "satisfied"),
    ({"score": "bad", "comment": "Took too long", "reason": "The issue took too long to resolve"}, "needs improvement"),
    ({"score": "offered"}, None),
    ({"score": "unoffered"}, None),
    (None, None),  # a plan without CSAT
])
def test_zendesk_csat_is_read_from_the_ticket(rating, level):
    raw = _example("zendesk")
    raw["ticket"]["satisfaction_rating"] = rating
    assert load_ticket_json("zendesk", raw, default_zendesk_mapping()).satisfaction == level


def test_zendesk_satisfaction_field_wins_over_csat():
    mapping = default_zendesk_mapping()
    mapping.fields["satisfaction"] = "Satisfaction level"
    raw = _example("zendesk")
    raw["ticket_fields"].append({**raw["ticket_fields"][-1], "id": 360051234519, "type": "tagger",
                                 "title": "Satisfaction level", "raw_title": "Satisfaction level"})
    raw["ticket"]["custom_fields"].append({"id": 360051234519, "value": "basically_satisfied"})
    raw["ticket"]["satisfaction_rating"] = {"score": "bad"}
    assert load_ticket_json("zendesk", raw, mapping).satisfaction == "basically satisfied"


@pytest.mark.parametrize(("value", "level"), [
    ({"rating": 5}, "satisfied"), ({"type": "csat", "rating": 3, "comment": {"body": "ok"}}, "basically satisfied"),
    (2, "needs improvement"), (4.0, "satisfied"),
    ({"self": "https://x/rest/api/2/customFieldOption/1", "value": "Needs improvement", "id": "1"}, "needs improvement"),
    (None, None),
])
def test_jira_satisfaction_field_feedback_or_option(value, level):
    raw = _example("jira")
    raw["fields"]["customfield_10058"] = value
    ticket_ = load_ticket_json("jira", raw, default_jira_mapping())
    assert ticket_.satisfaction == level


def test_requester_locale_from_the_sideloaded_users():
    raw = _example("zendesk")
    for user in raw["users"]:
        if user["id"] == raw["ticket"]["requester_id"]:
            user["locale"] = "zh-CN"
    assert load_ticket_json("zendesk", raw, default_zendesk_mapping()).requester_locale == "zh-CN"
    raw["users"] = [u for u in raw["users"] if u["id"] != raw["ticket"]["requester_id"]]
    assert load_ticket_json("zendesk", raw, default_zendesk_mapping()).requester_locale is None


def test_jira_locale_only_where_the_user_object_carries_it():
    raw = _example("jira")
    assert load_ticket_json("jira", raw, default_jira_mapping()).requester_locale is None  # UserDetails: none
    raw["fields"]["reporter"]["locale"] = "zh_CN"
    assert load_ticket_json("jira", raw, default_jira_mapping()).requester_locale == "zh_CN"


# --- the review report ---------------------------------------------------------------------------

WEEK = Period.from_dates(date(2026, 11, 16), date(2026, 11, 23), SHANGHAI)
N, R = Status.NEW, Status.RESOLVED


def rated(n, priority, level, created="2026-11-17 09:00"):
    t = ticket(priority=priority, created=created, comments=[agent_reply("2026-11-17 09:30")],
               history=[("2026-11-17 11:00", N, R)] if created.startswith("2026-11-17") else
               [("2026-11-10 11:00", N, R)])
    return t.model_copy(update={"id": str(n), "key": f"SUP-{n}", "satisfaction": level})


@pytest.fixture(scope="module")
def report():
    tickets = [rated(1, "P1", "satisfied"), rated(2, "P1", "needs improvement"), rated(3, "P1", "satisfied"),
               rated(4, "P2", "basically satisfied"), rated(5, "P2", None), rated(6, "P3", "satisfied"),
               rated(7, "P1", "needs improvement", created="2026-11-10 09:00")]  # last week
    return build_report(tickets, load_config(DEFAULT_CONFIG), WEEK, platform="jira",
                        generated_at=datetime(2026, 12, 1, tzinfo=timezone.utc))


def test_counts_and_shares_per_priority_and_overall(report):
    cur, prev = report.current, report.previous
    assert cur.satisfaction_levels["all"] == {"satisfied": 3, "basically satisfied": 1, "needs improvement": 1}
    assert cur.satisfaction_levels["P1"] == {"satisfied": 2, "basically satisfied": 0, "needs improvement": 1}
    assert "P0" not in cur.satisfaction_levels
    assert cur.level_share("all", "satisfied") == pytest.approx(60.0)
    assert cur.level_share("P1", "needs improvement") == pytest.approx(100 / 3)
    assert cur.level_share("P2", "basically satisfied") == pytest.approx(100.0)  # the unrated P2 is left out
    assert prev.level_share("P1", "needs improvement") == pytest.approx(100.0)


def test_markdown_csv_and_html_show_the_same_rows(report):
    md = render(report, "md")
    assert "| P1 | 3 | 2 (66.7%) | 0 (0.0%) | 1 (33.3%) | 66.7% | 0.0% |" in md
    assert "| all | 5 | 3 (60.0%) | 1 (20.0%) | 1 (20.0%) | 60.0% | 0.0% |" in md
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    levels = {(r["group"], r["metric"]): (r["current"], r["previous"]) for r in rows
              if r["section"] == "satisfaction_levels"}
    assert levels[("P1", "satisfied_share")] == ("66.67", "0")
    assert levels[("all", "basically_satisfied")] == ("1", "")
    assert levels[("P2", "rated")] == ("1", "0")
    html = render(report, "html")
    assert 'id="satisfaction-levels-table"' in html and "2 (66.7%)" in html
