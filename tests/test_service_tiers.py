"""Per-customer service levels: `when.organizations` / `when.email_domains`, tier selection,
the tier's calendar in clocks, due fields, escalation and the review; parsing the customer.

The shipped config has `sla-premium` (tier "premium", organizations [Acme Europe], calendar
`europe` = Europe/Berlin, Mon–Fri 09–17, DE holidays) before the default `sla` (Shanghai).
2026-11-19 is a Thursday; 16:30 Berlin = 23:30 Shanghai.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from connector.config import ConfigError, load_config
from connector.model import AddComment, Assign, SetFields, Status
from connector.platforms.customer import email_domain, jira_organizations, zendesk_organizations
from connector.platforms.mapping import PlatformMappings
from connector.platforms.ticket_json import load_ticket_json
from connector.review import render
from connector.review.metrics import Period, build_report
from connector.review.present import tier_compliance_rows
from connector.rules.base import Match
from connector.rules.engine import evaluate
from connector.rules.projection import project
from connector.rules.tiers import applicable_sla, default_sla
from connector.settings import DEFAULT_CONFIG
from tests.factories import SHANGHAI, agent_reply, at, ticket

ROOT = Path(__file__).resolve().parent.parent
CONFIG = load_config(DEFAULT_CONFIG)
BERLIN = ZoneInfo("Europe/Berlin")


def only(*rule_ids):
    return CONFIG.model_copy(update={"rules": [r for r in CONFIG.rules if r.id in rule_ids]})


def customer(t, organizations=("Acme Europe",), domain="acme-europe.example"):
    return t.model_copy(update={"organizations": organizations, "requester_email_domain": domain})


def premium_p1(**kwargs):
    """A P1 raised Thursday 16:30 Berlin by Acme Europe, nobody answered yet."""
    return customer(ticket(priority="P1", created="2026-11-19 23:30", **kwargs))


def settle(t, now, config=CONFIG):
    plan = evaluate(t, now, config)
    after = project(t, plan.actions, now)
    assert evaluate(after, now, config).actions == [], "not idempotent"
    return plan, after


# --- Match -----------------------------------------------------------------------------------


@pytest.mark.parametrize("organizations, fires", [
    (("Acme Europe",), True),
    (("ACME EUROPE",), True),                 # names compare case-insensitively
    (("Other Ltd", "acme europe"), True),     # any one of the ticket's organizations
    (("Acme",), False),
    ((), False),                              # known: no organization
    (None, False),                            # unknown (site without the field): fail closed
])
def test_organizations_match(organizations, fires):
    when = Match(organizations=["Acme Europe"])
    assert when.matches(customer(ticket(), organizations=organizations)) is fires


@pytest.mark.parametrize("domain, fires", [
    ("example.com", True),
    ("EXAMPLE.com", True),
    ("eu.example.com", True),                 # subdomains belong to the domain's owner
    ("a.b.example.com", True),
    ("notexample.com", False),                # a suffix is not a subdomain
    ("example.com.evil.test", False),
    ("example.org", False),
    (None, False),                            # hidden e-mail: fail closed
])
def test_email_domains_match_the_domain_and_its_subdomains(domain, fires):
    when = Match(email_domains=["Example.COM"])
    assert when.matches(customer(ticket(), organizations=None, domain=domain)) is fires


def test_conditions_combine_with_and_and_lists_with_or():
    when = Match(organizations=["Acme Europe"], email_domains=["acme-europe.example", "acme.example"], priorities=["P1"])
    assert when.matches(premium_p1())
    assert not when.matches(customer(ticket(priority="P2")))
    assert not when.matches(premium_p1().model_copy(update={"requester_email_domain": "gmail.com"}))


@pytest.mark.parametrize("bad", ["user@example.com", "*.example.com", "example", "exa mple.com", ""])
def test_email_domains_must_be_domains(bad):
    with pytest.raises(ValidationError, match="email_domains"):
        Match(email_domains=[bad])


def test_email_domains_accept_a_leading_at_and_fold_case():
    assert Match(email_domains=["@Acme.Example."]).email_domains == ["acme.example"]


def test_email_domain_keeps_only_the_domain():
    assert email_domain("Anna.Schmidt@EU.Acme.example") == "eu.acme.example"
    for bad in (None, "", "anna", "a@b@c.example", "@acme.example", "anna@localhost", 42):
        assert email_domain(bad) is None


# --- tier selection ------------------------------------------------------------------------


def test_the_first_matching_sla_rule_applies_and_the_default_takes_the_rest():
    assert applicable_sla(CONFIG, premium_p1()).id == "sla-premium"
    assert applicable_sla(CONFIG, ticket(priority="P1")).id == "sla"
    # Organization unknown (None) or e-mail hidden: the default, never the premium tier.
    assert applicable_sla(CONFIG, customer(ticket(), organizations=None, domain=None)).id == "sla"
    assert default_sla(CONFIG).id == "sla"


def test_a_disabled_tier_is_skipped():
    rules = [r.model_copy(update={"enabled": False}) if r.id == "sla-premium" else r for r in CONFIG.rules]
    config = CONFIG.model_copy(update={"rules": rules})
    assert applicable_sla(config, premium_p1()).id == "sla"


def test_premium_clocks_and_due_fields_use_the_tier_calendar():
    now = at("2026-11-20 15:00")  # Friday 08:00 Berlin: before Berlin opens
    plan, after = settle(premium_p1(), now)
    assert plan.sla_tier == "premium"
    first, resolution = plan.sla["first_response"], plan.sla["resolution"]
    assert (first.calendar, first.target_minutes, first.state) == ("europe", 60, "running")
    # 16:30–17:00 Thursday, then Friday from 09:00 Berlin: due 09:30, not in Shanghai hours.
    assert first.due == datetime(2026, 11, 20, 9, 30, tzinfo=BERLIN)
    assert resolution.due == datetime(2026, 11, 20, 16, 30, tzinfo=BERLIN)
    due = next(a for a in plan.actions if isinstance(a, SetFields))
    assert due.rule == "sla-premium"
    assert due.fields == {"sla_first_response_due": "2026-11-20T09:30:00+01:00",
                          "sla_resolution_due": "2026-11-20T16:30:00+01:00"}
    assert plan.next_deadline == datetime(2026, 11, 20, 9, 15, tzinfo=BERLIN)  # the 75% warning


def test_the_same_ticket_without_the_organization_gets_the_default_tier():
    plan = evaluate(ticket(priority="P1", created="2026-11-19 23:30"), at("2026-11-20 10:00"), CONFIG)
    assert plan.sla_tier == "sla"
    assert plan.sla["first_response"].calendar == "standard"
    assert plan.sla["first_response"].due == at("2026-11-20 11:00")  # 2h from Friday 09:00 Shanghai
    assert all(a.rule != "sla-premium" for a in plan.actions)


def test_a_breach_posts_the_tier_notice_once_and_not_the_default_one():
    now = at("2026-11-20 16:40")  # Friday 09:40 Berlin: premium first response (09:30) missed
    plan, after = settle(premium_p1(), now, only("sla-premium", "sla"))
    notices = [a for a in plan.actions if isinstance(a, AddComment)]
    assert [a.marker for a in notices] == ["spc-sla-premium-breach-first_response"]
    assert "CET" in notices[0].body  # the tier calendar's zone
    # The default tier (2h in Shanghai hours, due 11:00) has no say for this customer.
    assert all(a.rule == "sla-premium" for a in plan.actions)


def test_german_holidays_pause_the_premium_clock():
    # Thursday 2026-12-24 16:30 Berlin; Friday the 25th is a DE holiday, then the weekend: Monday the 28th.
    t = customer(ticket(priority="P1", created="2026-12-24 23:30"))
    plan = evaluate(t, at("2026-12-25 18:00"), CONFIG)
    assert plan.sla["first_response"].due == datetime(2026, 12, 28, 9, 30, tzinfo=BERLIN)


def test_an_answered_premium_ticket_meets_its_target():
    t = premium_p1(comments=[agent_reply("2026-11-20 16:20")])  # 09:20 Berlin
    plan = evaluate(t, at("2026-11-20 17:00"), CONFIG)
    assert plan.sla["first_response"].state == "met"


# --- escalation reads the tier -------------------------------------------------------------


def test_escalation_fires_on_the_tier_clock_and_times_the_response_in_its_calendar():
    config = only("sla-premium", "sla", "escalation")
    # Friday 12:00 Shanghai = 05:00 Berlin: the default tier would have breached at 11:00 Shanghai.
    assert not [a for a in evaluate(premium_p1(), at("2026-11-20 12:00"), config).actions if isinstance(a, Assign)]
    assert [a for a in evaluate(ticket(priority="P1", created="2026-11-19 23:30"), at("2026-11-20 12:00"),
                                config).actions if isinstance(a, Assign)]
    now = at("2026-11-20 16:31")  # 09:31 Berlin: premium first response breached at 09:30
    plan, after = settle(premium_p1(), now, config)
    escalated = next(a for a in plan.actions if isinstance(a, AddComment) and a.rule == "escalation")
    assert escalated.marker == "spc-escalation-l2-first-response"
    assert [a.group for a in plan.actions if isinstance(a, Assign)] == ["L2"]
    # The hand-off is recorded on the ticket (marker time): the response clock runs in Berlin time.
    recorded = after.model_copy(update={"marker_times": {"spc-escalation-l2-first-response": now}})
    clock = evaluate(recorded, at("2026-11-20 16:45"), config).sla["escalation_response"]
    assert clock.calendar == "europe"
    assert clock.due == datetime(2026, 11, 20, 10, 31, tzinfo=BERLIN)


# --- check-config ----------------------------------------------------------------------------


def _config_with(tmp_path, rules: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(f"""version: 1
calendars:
  standard: {{timezone: Asia/Shanghai, working_hours: {{mon: ["09:00-18:00"]}}, holidays: {{country: CN}}}}
rules:
{rules}
""", encoding="utf-8")
    return path


def test_an_unconditional_sla_rule_before_a_tier_makes_the_tier_unreachable(tmp_path):
    path = _config_with(tmp_path, """  - {id: sla, type: sla, calendar: standard, targets: {P1: {first_response: 2h}}}
  - id: sla-premium
    type: sla
    when: {organizations: [Acme Europe]}
    calendar: standard
    targets: {P1: {first_response: 1h}}
""")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    text = str(error.value)
    assert "rules[1].when" in text and "unreachable" in text and "'sla'" in text and "rules.yaml:8" in text


def test_two_tiers_with_the_same_condition_or_name_are_refused(tmp_path):
    path = _config_with(tmp_path, """  - {id: a, type: sla, tier: gold, when: {email_domains: [acme.example]}, calendar: standard, targets: {P1: {first_response: 1h}}}
  - {id: b, type: sla, tier: gold, when: {email_domains: [acme.example]}, calendar: standard, targets: {P1: {first_response: 2h}}}
""")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    text = str(error.value)
    assert "rules[1].when" in text and "same `when`" in text
    assert "rules[0].tier" in text and "tier 'gold'" in text


def test_tiers_in_the_right_order_pass(tmp_path):
    path = _config_with(tmp_path, """  - {id: gold, type: sla, when: {organizations: [Acme]}, calendar: standard, targets: {P1: {first_response: 1h}}}
  - {id: sla, type: sla, calendar: standard, targets: {P1: {first_response: 2h}}}
""")
    assert [r.id for r in load_config(path).rules] == ["gold", "sla"]


# --- parsing the customer ------------------------------------------------------------------


def test_jira_organizations_value_shapes():
    assert jira_organizations([{"id": "7", "name": "Acme Europe", "_links": {}}, {"id": "8", "name": "Acme"}]) == (
        "Acme Europe", "Acme")
    assert jira_organizations([]) == ()
    assert jira_organizations(None) == ()
    assert jira_organizations([8]) is None  # not a value we can name: unknown, not "none"
    assert jira_organizations("Acme") is None


def test_zendesk_organization_from_the_side_load():
    side = [{"id": 360020031299, "name": "Acme Europe"}]
    assert zendesk_organizations({"organization_id": 360020031299}, side) == ("Acme Europe",)
    assert zendesk_organizations({"organization_id": None}, side) == ()
    assert zendesk_organizations({"organization_id": 1}, side) is None  # not side-loaded: unknown
    assert zendesk_organizations({"organization_id": 360020031299}, None) is None


def _example(platform):
    return json.loads((ROOT / "examples" / platform / "premium-customer-other-timezone.json").read_text("utf-8"))


@pytest.mark.parametrize("platform", ["jira", "zendesk"])
def test_the_examples_parse_the_customer_and_get_the_premium_tier(platform):
    mapping = getattr(PlatformMappings(), platform)
    parsed = load_ticket_json(platform, _example(platform), mapping)
    assert parsed.organizations == ("Acme Europe",)
    assert parsed.requester_email_domain == "acme-europe.example"
    assert "anna.schmidt" not in parsed.model_dump_json()  # the address itself is never kept
    plan = evaluate(parsed, datetime(2026, 11, 20, 7, 0, tzinfo=timezone.utc), CONFIG)
    assert plan.sla_tier == "premium"
    assert plan.sla["first_response"].due == datetime(2026, 11, 20, 9, 30, tzinfo=BERLIN)


def test_a_hidden_jira_email_and_a_missing_side_load_fail_closed():
    mapping = PlatformMappings()
    issue = _example("jira")
    issue["fields"]["reporter"]["emailAddress"] = None  # Cloud privacy setting
    del issue["fields"]["customfield_10002"]             # a site without JSM organizations
    parsed = load_ticket_json("jira", issue, mapping.jira)
    assert parsed.requester_email_domain is None and parsed.organizations is None
    assert evaluate(parsed, at("2026-11-20 15:00"), CONFIG).sla_tier == "sla"
    zendesk = _example("zendesk")
    del zendesk["organizations"], zendesk["users"]
    parsed = load_ticket_json("zendesk", zendesk, mapping.zendesk)
    assert parsed.organizations is None and parsed.requester_email_domain is None
    assert evaluate(parsed, at("2026-11-20 15:00"), CONFIG).sla_tier == "sla"


# --- the review groups compliance by tier ---------------------------------------------------


def test_the_report_groups_sla_compliance_by_tier():
    week = Period.from_dates(date(2026, 11, 16), date(2026, 11, 23), SHANGHAI)
    answered_late = premium_p1(comments=[agent_reply("2026-11-20 17:00")])             # 10:00 Berlin: 1h target missed
    answered_in_time = premium_p1(comments=[agent_reply("2026-11-20 16:10")]).model_copy(
        update={"id": "2", "key": "SUP-2"})
    default = ticket(priority="P1", created="2026-11-19 23:30", comments=[agent_reply("2026-11-20 10:00")]).model_copy(
        update={"id": "3", "key": "SUP-3"})
    report = build_report([answered_late.model_copy(update={"id": "1", "key": "SUP-1"}), answered_in_time, default],
                          CONFIG, week, platform="jira", generated_at=datetime(2026, 12, 1, tzinfo=timezone.utc))
    assert report.tiers == ("premium", "sla")
    assert report.calendar == "standard"  # the report's period is counted in the default tier's calendar
    first = {r.group: r.current for r in tier_compliance_rows(report) if r.metric == "first_response"}
    assert (first["premium"].met, first["premium"].breached) == (1, 1)
    assert (first["sla"].met, first["sla"].breached) == (1, 0)
    markdown = render(report, "md")
    assert "### SLA compliance by tier" in markdown
    assert "| premium | first response | 1 | 1 |" in markdown
    csv_rows = [line for line in render(report, "csv").splitlines() if line.startswith("sla_compliance_by_tier,premium,")]
    assert any(",first_response_breached,1," in line for line in csv_rows)
    assert 'id="sla-tier-table"' in render(report, "html")


def test_statuses_of_a_waiting_premium_ticket_pause_its_clock():
    t = premium_p1(status=Status.WAITING_FOR_CUSTOMER, history=[("2026-11-19 23:40", Status.NEW, Status.WAITING_FOR_CUSTOMER)])
    plan = evaluate(t, at("2026-11-20 18:00"), CONFIG)
    assert plan.sla_tier == "premium" and plan.sla["first_response"].state == "paused"
