"""One rule file drives both platforms: twin Jira and Zendesk tickets get equivalent plans."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connector.config import load_config
from connector.platforms.ticket_json import load_ticket_json
from connector.rules.engine import evaluate
from connector.settings import DEFAULT_CONFIG

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONFIG = load_config(DEFAULT_CONFIG)
SCENARIOS = sorted(p.name for p in (EXAMPLES / "jira").glob("*.json"))
# The one intended difference: on Jira a JSM approval also records a review, and the review
# gate's note says so ("Reviewer (or an approval by someone other than the assignee)").
[REVIEW_GATE] = [rule for rule in CONFIG.rules if rule.type == "review-gate"]
JIRA_ONLY = f" ({REVIEW_GATE.approval_alternative})"


def plan_for(platform: str, name: str, now: datetime):
    data = json.loads((EXAMPLES / platform / name).read_text(encoding="utf-8"))
    ticket = load_ticket_json(platform, data, CONFIG.platforms.for_platform(platform))
    return ticket, evaluate(ticket, now, CONFIG)


def neutral(ticket, plan) -> list[tuple]:
    """The plan without platform spelling: ticket keys and field encodings removed."""
    out = []
    for action in plan.actions:
        detail = action.model_dump(mode="json")
        detail.pop("reason")
        if "body" in detail:
            detail["body"] = detail["body"].replace(ticket.key, "<KEY>")
            if ticket.platform == "jira" and action.rule == REVIEW_GATE.id:
                assert JIRA_ONLY in detail["body"]
                detail["body"] = detail["body"].replace(JIRA_ONLY, "")
        out.append(tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in detail.items())))
    return out


def test_every_scenario_has_a_twin():
    assert SCENARIOS == sorted(p.name for p in (EXAMPLES / "zendesk").glob("*.json"))
    assert len(SCENARIOS) >= 8  # each point of the process has its example on both platforms


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("now", ["2026-11-18T12:00:00", "2026-11-20T15:00:00", "2026-11-27T10:00:00"])
def test_same_config_same_plan_on_both_platforms(name, now):
    instant = datetime.fromisoformat(now).replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    jira_ticket, jira_plan = plan_for("jira", name, instant)
    zendesk_ticket, zendesk_plan = plan_for("zendesk", name, instant)
    assert neutral(jira_ticket, jira_plan) == neutral(zendesk_ticket, zendesk_plan)
    assert jira_plan.sla.keys() == zendesk_plan.sla.keys()
    # Jira stamps times in milliseconds, Zendesk in whole seconds: equal to the second.
    for metric, clock in jira_plan.sla.items():
        twin = zendesk_plan.sla[metric]
        assert clock.state == twin.state
        assert abs(clock.elapsed_minutes - twin.elapsed_minutes) < 1 / 60
        assert (clock.due is None) == (twin.due is None)
        assert clock.due is None or abs((clock.due - twin.due).total_seconds()) < 1
    assert (jira_plan.next_deadline is None) == (zendesk_plan.next_deadline is None)
    if jira_plan.next_deadline:
        assert abs((jira_plan.next_deadline - zendesk_plan.next_deadline).total_seconds()) < 1
