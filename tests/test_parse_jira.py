"""Jira issue JSON -> Ticket: recorded REST responses, real webhook issues, the examples.

Each test starts from a real or recorded-shape issue and changes only what the case is
about, so a failure points at one mapping branch.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from connector.model import AuthorRole, Status
from connector.platforms.field_values import MalformedTicketError
from connector.platforms.jira.issue import parse_jira_issue
from connector.platforms.mapping import PlatformMapping, default_jira_mapping
from connector.platforms.ticket_json import load_ticket_json

ROOT = Path(__file__).resolve().parent.parent
RESPONSES = Path(__file__).resolve().parent / "responses"
WEBHOOKS = Path(__file__).resolve().parent / "fixtures" / "jira"
EXAMPLES = ROOT / "examples" / "jira"

CONNECTOR_ACCOUNT = "557058:f2c1e0d9-4b3a-4c5d-8e7f-9a0b1c2d3e4f"
AGENT = "712020:5b0e3d1c-8f6a-4c2e-b7d9-1a2b3c4d5e6f"
REPORTER = "qm:7f1c5a3e-2b9d-4e61-9a7c-0c5d8e4b2a17"
SHANGHAI = timezone(timedelta(hours=8))


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def recorded() -> dict:
    return _load(RESPONSES / "jira_issue_expanded.json")


@pytest.fixture
def mapping() -> PlatformMapping:
    return default_jira_mapping().model_copy(update={"connector_account": CONNECTOR_ACCOUNT})


def _with(mapping: PlatformMapping, **changes) -> PlatformMapping:
    return mapping.model_copy(update=changes)


# --- the recorded response ----------------------------------------------------------------


def test_recorded_response_parses_into_logical_ticket(recorded, mapping):
    ticket = parse_jira_issue(recorded, mapping)

    assert (ticket.platform, ticket.id, ticket.key) == ("jira", "10480", "SUP-140")
    assert ticket.url == "https://acme-support.atlassian.net/browse/SUP-140"
    assert ticket.summary == "Data export job fails every night since the upgrade"
    assert ticket.description.startswith("The nightly export to the data warehouse")
    assert (ticket.priority, ticket.raw_priority) == ("P1", "High")
    assert (ticket.status, ticket.raw_status) == (Status.WAITING_FOR_CUSTOMER, "Waiting for customer")
    # Stock JSM writes "waiting for information" as "Waiting for customer" too.
    assert ticket.status_equivalents == {Status.WAITING_FOR_CUSTOMER, Status.WAITING_FOR_INFORMATION}
    assert ticket.category == "integration"
    assert ticket.group == "L2 support"
    assert (ticket.reporter, ticket.assignee) == (REPORTER, AGENT)
    assert ticket.labels == {"connector-intake-requested"}
    assert ticket.created == datetime(2026, 11, 21, 8, 47, 19, 552000, tzinfo=SHANGHAI)
    assert ticket.updated == datetime(2026, 11, 21, 10, 5, 40, 771000, tzinfo=SHANGHAI)
    assert ticket.resolved is None
    assert ticket.fields == {
        "impact_scope": "Daily management reports for all regions are empty",
        "symptom": ticket.description,
        "occurred_at": "2026-11-19T02:00:00.000+0800",
    }


def test_recorded_history_is_sorted_and_starts_at_creation(recorded, mapping):
    # The recorded changelog is newest first and mixes priority and group items in.
    ticket = parse_jira_issue(recorded, mapping)

    assert [(c.raw_from, c.raw_to) for c in ticket.status_history] == [
        (None, "Waiting for support"),
        ("Waiting for support", "In Progress"),
        ("In Progress", "Waiting for customer"),
    ]
    assert [c.to_status for c in ticket.status_history] == [
        Status.NEW, Status.IN_PROGRESS, Status.WAITING_FOR_CUSTOMER,
    ]
    assert ticket.status_history[0].at == ticket.created
    assert ticket.status_history[1].from_status == Status.NEW
    assert all(change.at.tzinfo is not None for change in ticket.status_history)


def test_recorded_comments_have_roles_and_visibility(recorded, mapping):
    ticket = parse_jira_issue(recorded, mapping)

    assert [(c.id, c.author_role, c.public) for c in ticket.comments] == [
        ("20401", AuthorRole.AGENT, True),
        ("20402", AuthorRole.AGENT, False),  # jsdPublic false: an internal note
        ("20403", AuthorRole.CONNECTOR, True),
    ]
    assert ticket.comments[2].author == CONNECTOR_ACCOUNT
    assert ticket.comments[0].body == "Looking at the job logs now."


def test_base_url_wins_over_the_self_link(recorded, mapping):
    ticket = parse_jira_issue(recorded, mapping, base_url="https://support.example.com/jira/")
    assert ticket.url == "https://support.example.com/jira/browse/SUP-140"


def test_data_center_context_path_is_kept_in_the_browse_url(recorded, mapping):
    recorded["self"] = "https://tools.example.com/jira/rest/api/2/issue/10480"
    assert parse_jira_issue(recorded, mapping).url == "https://tools.example.com/jira/browse/SUP-140"


# --- the examples ---------------------------------------------------------------------------

INTAKE = {"environment", "impact_scope", "symptom", "repro_steps", "error_message", "occurred_at"}
EXAMPLE_EXPECTATIONS = {
    "p2-missing-intake-fields": dict(
        priority="P2", status=Status.NEW, category="network", history=1, roles=[],
        present=INTAKE - {"environment", "error_message"}, absent={"environment", "error_message"},
    ),
    "p0-outage-no-response": dict(
        priority="P0", status=Status.NEW, category="outage", history=1,
        roles=[(AuthorRole.REQUESTER, True)], present=INTAKE, absent={"root_cause", "solution"},
    ),
    "resolved-without-root-cause": dict(
        priority="P2", status=Status.RESOLVED, category="performance", history=3,
        roles=[(AuthorRole.AGENT, True), (AuthorRole.AGENT, False), (AuthorRole.AGENT, True)],
        present=INTAKE | {"solution", "verification_result"}, absent={"root_cause", "kb_link"},
    ),
    "p1-closed-needs-follow-up": dict(
        priority="P1", status=Status.CLOSED, category="login", history=4,
        roles=[(AuthorRole.AGENT, True), (AuthorRole.AGENT, True), (AuthorRole.REQUESTER, True)],
        present=INTAKE | {"root_cause", "solution", "verification_result", "kb_link"}, absent={"follow_up_due"},
    ),
    "reporter-says-not-resolved": dict(
        priority="P2", status=Status.RESOLVED, category="billing", history=3,
        roles=[(AuthorRole.AGENT, True), (AuthorRole.AGENT, True), (AuthorRole.REQUESTER, True)],
        present=INTAKE | {"root_cause", "solution", "verification_result", "kb_link"}, absent=set(),
    ),
    "paused-waiting-for-customer": dict(
        priority="P1", status=Status.IN_PROGRESS, category="mobile", history=4,
        roles=[(AuthorRole.AGENT, True), (AuthorRole.REQUESTER, True), (AuthorRole.AGENT, False)],
        present=INTAKE, absent={"root_cause"},
    ),
    "critical-change-without-review": dict(
        priority="P2", status=Status.RESOLVED, category="performance", history=3,
        roles=[(AuthorRole.AGENT, True), (AuthorRole.AGENT, False), (AuthorRole.AGENT, True)],
        present=INTAKE | {"root_cause", "solution", "verification_result", "change_type"}, absent={"reviewer"},
    ),    "resolved-closing-summary": dict(
        priority="P2", status=Status.RESOLVED, category="reporting", history=3,
        roles=[(AuthorRole.AGENT, True), (AuthorRole.AGENT, False), (AuthorRole.AGENT, True)],
        present=INTAKE | {"root_cause", "solution", "verification_result", "kb_link", "preventive_measures"},
        absent={"satisfaction"},
    ),
    # Escalated to L2 at 09:30: the changelog entry that added the marker labels dates the
    # hand-off (the connector's notes are left out: their bodies differ per platform).
    "escalated-no-l2-response": dict(
        priority="P0", status=Status.NEW, category="outage", history=1, group="L2 support",
        roles=[(AuthorRole.REQUESTER, True)],
        present=INTAKE | {"sla_first_response_due", "sla_resolution_due"}, absent={"root_cause"},
    ),
    "new-report-gets-problem-number": dict(
        priority="P2", status=Status.NEW, category="network", history=1, roles=[],
        present=INTAKE, absent={"problem_number", "root_cause"},
    ),
    # Per-customer service levels: a premium organization's customer in Berlin (the e-mail is
    # read only for its domain, connector.platforms.customer).
    "premium-customer-other-timezone": dict(
        priority="P1", status=Status.NEW, category="integration", history=1, roles=[],
        present=INTAKE, absent={"root_cause"},
    ),
}


def test_every_example_file_has_expectations():
    assert {path.stem for path in EXAMPLES.glob("*.json")} == set(EXAMPLE_EXPECTATIONS)


@pytest.mark.parametrize("name", sorted(EXAMPLE_EXPECTATIONS))
def test_example_parses_to_its_scenario(name):
    expected = EXAMPLE_EXPECTATIONS[name]
    ticket = load_ticket_json("jira", _load(EXAMPLES / f"{name}.json"), default_jira_mapping())

    assert ticket.priority == expected["priority"]
    assert ticket.status == expected["status"]
    assert ticket.category == expected["category"]
    assert ticket.group == expected.get("group", "L1 support")
    assert len(ticket.status_history) == expected["history"]
    assert ticket.status_history[-1].to_status == expected["status"]
    assert [(c.author_role, c.public) for c in ticket.comments] == expected["roles"]
    assert expected["present"] <= set(ticket.fields)
    assert not expected["absent"] & set(ticket.fields)
    assert ticket.created.tzinfo is not None


def test_examples_carry_the_scenario_specifics():
    mapping = default_jira_mapping()

    def parse(name):
        return load_ticket_json("jira", _load(EXAMPLES / f"{name}.json"), mapping)

    outage = parse("p0-outage-no-response")
    assert outage.created == datetime(2026, 11, 20, 9, 0, tzinfo=SHANGHAI)
    assert outage.created == datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)

    assert parse("reporter-says-not-resolved").fields["verification_result"] == "not resolved"
    closed = parse("p1-closed-needs-follow-up")
    assert closed.fields["verification_result"] == "resolved"
    assert closed.resolved == datetime(2026, 11, 18, 10, 5, 44, 127000, tzinfo=SHANGHAI)

    paused = parse("paused-waiting-for-customer")
    assert [c.to_status for c in paused.status_history] == [
        Status.NEW, Status.IN_PROGRESS, Status.WAITING_FOR_CUSTOMER, Status.IN_PROGRESS,
    ]


# --- real webhook payloads: the `issue` inside them ---------------------------------------

WEBHOOK_ISSUES = {
    # fixture: (key, status, priority, comment roles)
    "issue_created.json": ("BUG-15", Status.NEW, "P2", []),
    "created_v2.json": ("BUG-15", Status.NEW, "P2", []),
    "created_with_unicode_v2.json": ("BUG-15", Status.NEW, "P2", []),
    "issue_deleted.json": ("BUG-15", Status.NEW, "P2", [AuthorRole.REQUESTER]),
    "issue_updated__priority.json": ("TEST-1", Status.NEW, "P2", [AuthorRole.REQUESTER]),
    "issue_updated__status.json": ("TEST-1", Status.IN_PROGRESS, "P2", []),
    "change_status_v2.json": ("TEST-1", Status.IN_PROGRESS, "P2", []),
    "issue_created_with_custom_fields.json": ("KAN-3", Status.NEW, "P2", []),
}


@pytest.mark.parametrize("fixture", sorted(WEBHOOK_ISSUES))
def test_webhook_issue_parses(fixture):
    key, status, priority, roles = WEBHOOK_ISSUES[fixture]
    issue = _load(WEBHOOKS / fixture)["issue"]

    ticket = parse_jira_issue(issue, default_jira_mapping())

    assert (ticket.key, ticket.status, ticket.priority) == (key, status, priority)
    assert [c.author_role for c in ticket.comments] == roles
    assert ticket.created.tzinfo is not None
    # A webhook's issue has no changelog: its history is unknown, not "never changed".
    assert ticket.status_history == ()
    assert ticket.url.endswith(f"/browse/{key}")


def test_webhook_issue_on_a_server_with_port_keeps_host_and_port():
    issue = _load(WEBHOOKS / "issue_created.json")["issue"]
    assert parse_jira_issue(issue, default_jira_mapping()).url == "http://lfranchi.com:8080/browse/BUG-15"


@pytest.mark.parametrize("fixture", ["comment_created.json", "comment_updated.json"])
def test_partial_issue_of_a_comment_event_is_rejected_with_the_missing_field(fixture):
    # Comment events carry a cut-down issue; the worker must fetch the issue instead.
    issue = _load(WEBHOOKS / fixture)["issue"]
    with pytest.raises(MalformedTicketError, match=r"fields\.created is missing"):
        parse_jira_issue(issue, default_jira_mapping())


def test_anomalous_payload_is_not_an_issue():
    with pytest.raises(ValueError, match="'id' and 'key'"):
        parse_jira_issue(_load(WEBHOOKS / "example_anomalous_payload.json"), default_jira_mapping())


# --- statuses and priorities ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "expected"),
    [("new", Status.NEW), ("indeterminate", Status.IN_PROGRESS), ("done", Status.CLOSED)],
)
def test_unmapped_status_falls_back_on_its_category(recorded, mapping, category, expected):
    recorded["fields"]["status"]["name"] = "Awaiting vendor patch"
    recorded["fields"]["status"]["statusCategory"]["key"] = category

    ticket = parse_jira_issue(recorded, mapping)

    assert (ticket.status, ticket.raw_status) == (expected, "Awaiting vendor patch")
    assert ticket.status_equivalents == frozenset()


def test_unmapped_status_without_category_is_an_error_naming_it(recorded, mapping):
    recorded["fields"]["status"]["name"] = "Awaiting vendor patch"
    del recorded["fields"]["status"]["statusCategory"]
    with pytest.raises(MalformedTicketError, match="Awaiting vendor patch"):
        parse_jira_issue(recorded, mapping)


def test_status_and_priority_names_match_case_insensitively(recorded, mapping):
    recorded["fields"]["status"]["name"] = "WAITING FOR CUSTOMER"
    recorded["fields"]["status"]["statusCategory"]["key"] = "new"  # must not be consulted
    recorded["fields"]["priority"]["name"] = "highest"

    ticket = parse_jira_issue(recorded, mapping)

    assert ticket.status == Status.WAITING_FOR_CUSTOMER
    assert (ticket.priority, ticket.raw_priority) == ("P0", "highest")


def test_missing_priority_is_none(recorded, mapping):
    recorded["fields"]["priority"] = None
    ticket = parse_jira_issue(recorded, mapping)
    assert (ticket.priority, ticket.raw_priority) == (None, None)


def test_unmapped_statuses_in_history(recorded, mapping):
    # The current custom status is understood through its category; another custom
    # status seen only in the changelog counts as work in progress.
    recorded["fields"]["status"]["name"] = "Vendor"
    recorded["fields"]["status"]["statusCategory"]["key"] = "new"
    recorded["changelog"]["histories"] = [
        {"id": "1", "created": "2026-11-21T09:00:00.000+0800",
         "items": [{"field": "status", "fieldtype": "jira", "fieldId": "status",
                    "fromString": "Waiting for support", "toString": "QA review"}]},
        {"id": "2", "created": "2026-11-21T09:30:00.000+0800",
         "items": [{"field": "status", "fieldtype": "jira", "fieldId": "status",
                    "fromString": "QA review", "toString": "vendor"}]},
    ]

    history = parse_jira_issue(recorded, mapping).status_history

    assert [c.to_status for c in history] == [Status.NEW, Status.IN_PROGRESS, Status.NEW]
    assert history[2].from_status == Status.IN_PROGRESS


def test_creation_item_without_from_is_not_doubled(recorded, mapping):
    # A changelog that records the creation itself (no fromString) already starts there.
    recorded["changelog"]["histories"] = [
        {"id": "1", "created": "2026-11-21T08:47:19.552+0800",
         "items": [{"field": "Status", "fieldtype": "jira", "fieldId": "status",
                    "from": None, "fromString": None, "to": "10002", "toString": "Waiting for customer"}]},
    ]
    history = parse_jira_issue(recorded, mapping).status_history
    assert [(c.from_status, c.to_status) for c in history] == [(None, Status.WAITING_FOR_CUSTOMER)]


def test_custom_field_named_status_is_not_a_status_change(recorded, mapping):
    recorded["changelog"]["histories"].append(
        {"id": "9", "created": "2026-11-21T11:00:00.000+0800",
         "items": [{"field": "Status", "fieldtype": "custom", "fieldId": "customfield_10999",
                    "fromString": "Green", "toString": "Red"}]}
    )
    assert len(parse_jira_issue(recorded, mapping).status_history) == 3


def test_data_center_changelog_items_without_field_id(recorded, mapping):
    for history in recorded["changelog"]["histories"]:
        for item in history["items"]:
            item.pop("fieldId")
    history = parse_jira_issue(recorded, mapping).status_history
    assert [c.raw_to for c in history] == ["Waiting for support", "In Progress", "Waiting for customer"]


def test_empty_changelog_means_the_ticket_stayed_in_its_status_since_creation(recorded, mapping):
    recorded["changelog"]["histories"] = []
    ticket = parse_jira_issue(recorded, mapping)
    assert [(c.at, c.to_status) for c in ticket.status_history] == [(ticket.created, Status.WAITING_FOR_CUSTOMER)]


def test_resolved_time_comes_from_resolutiondate_or_else_the_history(recorded, mapping):
    recorded["fields"]["status"] = {"name": "Resolved", "statusCategory": {"key": "done"}}
    recorded["changelog"]["histories"].append(
        {"id": "50", "created": "2026-11-22T15:00:00.000+0800",
         "items": [{"field": "status", "fieldId": "status", "fromString": "Waiting for customer", "toString": "Resolved"}]}
    )
    without_date = parse_jira_issue(recorded, mapping)
    assert without_date.resolved == datetime(2026, 11, 22, 15, 0, tzinfo=SHANGHAI)

    recorded["fields"]["resolutiondate"] = "2026-11-22T15:00:01.000+0800"
    assert parse_jira_issue(recorded, mapping).resolved == datetime(2026, 11, 22, 15, 0, 1, tzinfo=SHANGHAI)


# --- field resolution and values --------------------------------------------------------------


def test_display_names_resolve_through_the_names_map(recorded, mapping):
    recorded["fields"]["customfield_10054"] = "Batch size default doubled in 2026.11"
    ticket = parse_jira_issue(recorded, mapping)
    assert ticket.fields["root_cause"] == "Batch size default doubled in 2026.11"


def test_display_names_resolve_through_the_field_catalogue(recorded, mapping):
    names = recorded.pop("names")
    recorded["fields"]["customfield_10054"] = "Batch size default doubled in 2026.11"

    without_names = parse_jira_issue(recorded, mapping)
    with_catalogue = parse_jira_issue(recorded, mapping, field_names=names)

    assert "root_cause" not in without_names.fields
    assert without_names.group is None  # "Support group" is a display name too
    assert with_catalogue.fields["root_cause"] == "Batch size default doubled in 2026.11"
    assert with_catalogue.group == "L2 support"


def test_display_names_match_case_insensitively(recorded, mapping):
    fields = dict(mapping.fields, impact_scope="IMPACT SCOPE")
    ticket = parse_jira_issue(recorded, _with(mapping, fields=fields))
    assert ticket.fields["impact_scope"] == "Daily management reports for all regions are empty"


def test_field_ids_are_used_directly(recorded, mapping):
    fields = dict(mapping.fields, impact_scope="customfield_10050")
    ticket = parse_jira_issue(recorded, _with(mapping, fields=fields))
    assert ticket.fields["impact_scope"] == "Daily management reports for all regions are empty"


def test_duplicate_display_names_take_the_field_that_holds_a_value(recorded, mapping):
    # An older, unused field of the same name, listed first.
    recorded["names"] = {"customfield_10099": "Root cause", **recorded["names"]}
    recorded["fields"]["customfield_10099"] = None
    recorded["fields"]["customfield_10054"] = "Batch size default doubled"
    ticket = parse_jira_issue(recorded, mapping)
    assert ticket.fields["root_cause"] == "Batch size default doubled"


def test_option_list_user_and_adf_values_are_reduced(recorded, mapping):
    f = recorded["fields"]
    recorded["names"].update({"customfield_10200": "Affected sites", "customfield_10201": "Escalation engineer"})
    f["customfield_10200"] = [{"value": "Shanghai", "id": "1"}, {"value": "Beijing", "id": "2"}]
    f["customfield_10201"] = {"accountId": AGENT, "displayName": "Zhang Min"}
    f["customfield_10056"] = {"self": "x", "value": "partly resolved", "id": "10121"}
    f["customfield_10051"] = {
        "type": "doc", "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "Run the export"}]},
            {"type": "orderedList", "content": [
                {"type": "listItem", "content": [{"type": "paragraph", "content": [
                    {"type": "text", "text": "wait for "}, {"type": "text", "text": "02:00", "marks": [{"type": "code"}]}]}]},
            ]},
        ],
    }
    fields = dict(mapping.fields, impact_scope="Affected sites", kb_link="Escalation engineer")

    ticket = parse_jira_issue(recorded, _with(mapping, fields=fields))

    assert ticket.fields["impact_scope"] == ["Shanghai", "Beijing"]
    assert ticket.fields["kb_link"] == "Zhang Min"
    assert ticket.fields["verification_result"] == "partly resolved"
    assert ticket.fields["repro_steps"] == "Run the export\nwait for 02:00"


@pytest.mark.parametrize(
    "empty",
    [None, "", "   ", [], [{"value": None}], {"type": "doc", "version": 1, "content": []}],
    ids=["null", "empty", "blank", "empty-list", "list-of-nothing", "empty-adf"],
)
def test_empty_values_are_absent(recorded, mapping, empty):
    recorded["fields"]["customfield_10050"] = empty
    assert "impact_scope" not in parse_jira_issue(recorded, mapping).fields


def test_v3_adf_description_and_comment_bodies_become_text(recorded, mapping):
    recorded["fields"]["description"] = {
        "type": "doc", "version": 1,
        "content": [
            {"type": "paragraph", "content": [
                {"type": "text", "text": "Export fails"}, {"type": "hardBreak"}, {"type": "text", "text": "every night"}]},
            {"type": "paragraph", "content": [
                {"type": "mention", "attrs": {"id": AGENT, "text": "@Zhang Min"}},
                {"type": "text", "text": " please look"}]},
        ],
    }
    recorded["fields"]["comment"]["comments"][0]["body"] = {
        "type": "doc", "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "See "},
                                                       {"type": "inlineCard", "attrs": {"url": "https://kb.example/1"}}]}],
    }

    ticket = parse_jira_issue(recorded, mapping)

    assert ticket.description == "Export fails\nevery night\n@Zhang Min please look"
    assert ticket.fields["symptom"] == ticket.description
    assert ticket.comments[0].body == "See https://kb.example/1"


def test_category_from_a_custom_select_field(recorded, mapping):
    recorded["names"]["customfield_10300"] = "Problem category"
    recorded["fields"]["customfield_10300"] = {"value": "Network", "id": "10400", "child": {"value": "VPN"}}
    ticket = parse_jira_issue(recorded, _with(mapping, category_field="Problem category"))
    assert ticket.category == "Network"


def test_no_components_means_no_category(recorded, mapping):
    recorded["fields"]["components"] = []
    assert parse_jira_issue(recorded, mapping).category is None


def test_group_values_translate_to_rule_group_names(recorded, mapping):
    ticket = parse_jira_issue(recorded, _with(mapping, groups={"l2": "L2 support"}))
    assert ticket.group == "l2"


# --- comment authors -----------------------------------------------------------------------


def _comment(author: dict, **extra) -> dict:
    return {"id": "1", "author": author, "body": "text", "created": "2026-11-21T11:00:00.000+0800", **extra}


@pytest.mark.parametrize(
    ("connector_account", "author", "role"),
    [
        (CONNECTOR_ACCOUNT, {"accountId": CONNECTOR_ACCOUNT}, AuthorRole.CONNECTOR),
        ("Connector@Acme-Support.example", {"accountId": "x", "emailAddress": "connector@acme-support.example"},
         AuthorRole.CONNECTOR),
        ("svc-connector", {"name": "svc-connector", "key": "JIRAUSER10500"}, AuthorRole.CONNECTOR),
        ("JIRAUSER10500", {"name": "svc-connector", "key": "JIRAUSER10500"}, AuthorRole.CONNECTOR),
        (None, {"accountId": REPORTER}, AuthorRole.REQUESTER),
        (CONNECTOR_ACCOUNT, {"accountId": AGENT, "emailAddress": "zhang.min@acme-support.example"}, AuthorRole.AGENT),
        (CONNECTOR_ACCOUNT, None, AuthorRole.AGENT),
    ],
    ids=["account-id", "email", "dc-name", "dc-key", "reporter", "agent", "no-author"],
)
def test_comment_author_roles(recorded, mapping, connector_account, author, role):
    recorded["fields"]["comment"]["comments"] = [_comment(author)]
    ticket = parse_jira_issue(recorded, _with(mapping, connector_account=connector_account))
    assert ticket.comments[0].author_role == role


def test_data_center_reporter_is_matched_by_username(recorded, mapping):
    recorded["fields"]["reporter"] = {"name": "liwei", "key": "JIRAUSER10100", "displayName": "Li Wei"}
    recorded["fields"]["comment"]["comments"] = [_comment({"name": "liwei", "key": "JIRAUSER10100"})]

    ticket = parse_jira_issue(recorded, mapping)

    assert ticket.reporter == "liwei"
    assert (ticket.comments[0].author, ticket.comments[0].author_role) == ("liwei", AuthorRole.REQUESTER)


def test_comment_visibility_follows_jsd_public(recorded, mapping):
    recorded["fields"]["comment"]["comments"] = [
        _comment({"accountId": AGENT}, id="1", jsdPublic=False),
        _comment({"accountId": AGENT}, id="2", jsdPublic=True),
        _comment({"accountId": AGENT}, id="3"),  # plain Jira: no jsdPublic, visible
    ]
    assert [c.public for c in parse_jira_issue(recorded, mapping).comments] == [False, True, True]


# --- times -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-21T08:47:19.552+0800", datetime(2026, 11, 21, 0, 47, 19, 552000, tzinfo=timezone.utc)),
        ("2026-11-21T00:47:19Z", datetime(2026, 11, 21, 0, 47, 19, tzinfo=timezone.utc)),
        ("2026-11-21T06:17:19+05:30", datetime(2026, 11, 21, 0, 47, 19, tzinfo=timezone.utc)),
    ],
)
def test_jira_and_iso_timestamps(recorded, mapping, raw, expected):
    recorded["fields"]["created"] = raw
    assert parse_jira_issue(recorded, mapping).created == expected


# --- malformed input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda issue: issue.pop("key"), "'id' and 'key'"),
        (lambda issue: issue.pop("fields"), r"fields must be a JSON object, found nothing"),
        (lambda issue: issue["fields"].pop("status"), r"status must be a JSON object"),
        (lambda issue: issue["fields"].update(created="2026-11-21T08:47:19"), "has no UTC offset"),
        (lambda issue: issue["fields"].update(created="yesterday"), "not an ISO 8601 timestamp"),
        (lambda issue: issue["fields"]["comment"]["comments"][0].pop("id"), "a comment has no 'id'"),
        (lambda issue: issue["fields"].update(comment=[]), "fields.comment must be an object"),
        (lambda issue: issue["changelog"].update(histories={}), r"changelog\.histories must be a list"),
    ],
    ids=["no-key", "no-fields", "no-status", "naive-time", "bad-time", "comment-id", "comment-shape", "histories"],
)
def test_malformed_issues_raise_value_error_saying_what_is_wrong(recorded, mapping, damage, message):
    damage(recorded)
    with pytest.raises(ValueError, match=message):
        parse_jira_issue(recorded, mapping)


def test_not_an_object():
    with pytest.raises(ValueError, match="must be a JSON object, found list"):
        parse_jira_issue([], default_jira_mapping())  # type: ignore[arg-type]


# --- the ticket JSON loader ----------------------------------------------------------------


def test_loader_accepts_a_bare_issue(recorded, mapping):
    assert load_ticket_json("jira", recorded, mapping) == parse_jira_issue(recorded, mapping)


def test_loader_accepts_an_issue_wrapped_with_the_field_catalogue(recorded, mapping):
    names = recorded.pop("names")
    catalogue = [{"id": fid, "key": fid, "name": name, "custom": fid.startswith("customfield_")}
                 for fid, name in names.items()]

    ticket = load_ticket_json("jira", {"issue": recorded, "fields_catalogue": catalogue}, mapping)

    assert ticket.group == "L2 support"
    assert ticket.fields["impact_scope"] == "Daily management reports for all regions are empty"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ticket": {"id": 1}}, r'this is not a Jira issue: "key" or "fields" is missing; expected the issue object'),
        ({"issue": [], "fields_catalogue": []}, "this is not a Jira issue"),
        ({"issue": {"id": "1", "key": "A-1", "fields": {}}, "fields_catalogue": [{"id": "x"}]},
         '"fields_catalogue" must be the list GET /rest/api/2/field returns'),
        ([], "must hold a JSON object, found list"),
    ],
    ids=["zendesk-shape", "issue-not-object", "catalogue-without-names", "list"],
)
def test_loader_rejects_other_shapes(data, message):
    with pytest.raises(ValueError, match=message):
        load_ticket_json("jira", data, default_jira_mapping())  # type: ignore[arg-type]


def test_loader_rejects_unknown_platforms(recorded):
    with pytest.raises(ValueError, match="unknown platform 'servicenow'; expected 'jira' or 'zendesk'"):
        load_ticket_json("servicenow", recorded, default_jira_mapping())


def test_parsing_does_not_modify_the_input(recorded, mapping):
    before = copy.deepcopy(recorded)
    parse_jira_issue(recorded, mapping)
    assert recorded == before
