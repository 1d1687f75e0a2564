"""Zendesk ticket + audits + comments + users -> Ticket: recorded responses and the examples.

Each test starts from the recorded show/audits/comments response and changes only what
the case is about, so a failure points at one mapping branch.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from connector.model import AuthorRole, Status, Ticket
from connector.platforms.field_values import MalformedTicketError
from connector.platforms.mapping import PlatformMapping, default_jira_mapping, default_zendesk_mapping
from connector.platforms.ticket_json import load_ticket_json
from connector.platforms.zendesk.ticket import parse_zendesk_ticket

ROOT = Path(__file__).resolve().parent.parent
RESPONSES = Path(__file__).resolve().parent / "responses"
EXAMPLES = ROOT / "examples" / "zendesk"

REQUESTER = 9012345678901
AGENT = 9011111111101
CONNECTOR = 9019999999901
CONNECTOR_EMAIL = "connector@acme-support.example"
CC_END_USER = 9012345678955
L1_GROUP = 360001111001
CATEGORY_FIELD = 360051234501
VERIFICATION_FIELD = 360051234509


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def recorded() -> dict:
    return _load(RESPONSES / "zendesk_ticket_with_audits.json")


@pytest.fixture
def mapping() -> PlatformMapping:
    return default_zendesk_mapping().model_copy(
        update={"connector_account": CONNECTOR_EMAIL, "groups": {"L1 support": str(L1_GROUP)}}
    )


def _with(mapping: PlatformMapping, **changes) -> PlatformMapping:
    return mapping.model_copy(update=changes)


def _parse(data: dict, mapping: PlatformMapping, **overrides) -> Ticket:
    parts = {name: data.get(name) for name in ("audits", "comments", "users", "ticket_fields")}
    parts.update(overrides)
    return parse_zendesk_ticket(data["ticket"], mapping, **parts)


def _custom(data: dict, field_id: int, value) -> None:
    for entry in data["ticket"]["custom_fields"]:
        if entry["id"] == field_id:
            entry["value"] = value
            return
    data["ticket"]["custom_fields"].append({"id": field_id, "value": value})


# --- the recorded response ----------------------------------------------------------------


def test_recorded_response_parses_into_logical_ticket(recorded, mapping):
    ticket = _parse(recorded, mapping)

    assert (ticket.platform, ticket.id, ticket.key) == ("zendesk", "4540", "#4540")
    assert ticket.url == "https://acme-support.zendesk.com/agent/tickets/4540"
    assert ticket.summary == "Data export job fails every night since the upgrade"
    assert ticket.description.startswith("The nightly export to the data warehouse")
    assert (ticket.priority, ticket.raw_priority) == ("P1", "high")
    assert (ticket.status, ticket.raw_status) == (Status.IN_PROGRESS, "open")
    assert ticket.status_equivalents == {Status.IN_PROGRESS}
    assert ticket.category == "network"
    assert ticket.group == "L1 support"
    assert (ticket.reporter, ticket.assignee) == (str(REQUESTER), str(AGENT))
    assert ticket.labels == {"network", "connector-intake-requested"}
    assert ticket.created == datetime(2026, 11, 21, 0, 47, 19, tzinfo=timezone.utc)
    assert ticket.updated == datetime(2026, 11, 22, 3, 20, 5, tzinfo=timezone.utc)
    assert ticket.resolved is None
    assert ticket.fields == {
        "impact_scope": "Daily management reports for all regions are empty",
        "symptom": ticket.description,
        "occurred_at": "2026-11-19",
        "satisfaction": "good",
    }


def test_recorded_status_history_comes_from_audits(recorded, mapping):
    history = _parse(recorded, mapping).status_history

    assert [(c.raw_from, c.raw_to) for c in history] == [
        (None, "new"), ("new", "open"), ("open", "pending"), ("pending", "open"),
    ]
    assert [c.to_status for c in history] == [
        Status.NEW, Status.IN_PROGRESS, Status.WAITING_FOR_CUSTOMER, Status.IN_PROGRESS,
    ]
    assert history[0].at == datetime(2026, 11, 21, 0, 47, 19, tzinfo=timezone.utc)
    assert history[2].at == datetime(2026, 11, 21, 2, 5, 40, tzinfo=timezone.utc)


def test_recorded_comments_are_deduplicated_and_have_roles(recorded, mapping):
    # Every comment is in both the audits and the comments list; the opening comment
    # (the description) is not a response and is left out.
    ticket = _parse(recorded, mapping)

    assert [(c.author, c.author_role, c.public) for c in ticket.comments] == [
        (str(AGENT), AuthorRole.AGENT, True),
        (str(AGENT), AuthorRole.AGENT, False),
        (str(CONNECTOR), AuthorRole.CONNECTOR, True),
        (str(CC_END_USER), AuthorRole.REQUESTER, True),  # an end-user on CC, not the requester
    ]
    assert len({c.id for c in ticket.comments}) == 4
    assert ticket.comments[0].body == "Looking at the job logs now."


def test_audits_alone_give_the_same_comments(recorded, mapping):
    both = _parse(recorded, mapping)
    audits_only = _parse(recorded, mapping, comments=None)
    assert audits_only.comments == both.comments


def test_comments_alone_leave_history_unknown_and_still_skip_the_opening_comment(recorded, mapping):
    ticket = _parse(recorded, mapping, audits=None)

    assert ticket.status_history == ()
    assert [c.author for c in ticket.comments] == [str(AGENT), str(AGENT), str(CONNECTOR), str(CC_END_USER)]


def test_comment_timestamps_prefer_the_comments_endpoint(recorded, mapping):
    later = "2026-11-21T01:58:09Z"
    recorded["comments"][1]["created_at"] = later
    ticket = _parse(recorded, mapping)
    assert ticket.comments[0].created == datetime(2026, 11, 21, 1, 58, 9, tzinfo=timezone.utc)


def test_base_url_wins_over_the_api_url(recorded, mapping):
    ticket = _parse(recorded, mapping, base_url="http://127.0.0.1:8765/")
    assert ticket.url == "http://127.0.0.1:8765/agent/tickets/4540"


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
    # Escalated to L2 at 09:30: the audit that added the marker tags dates the hand-off.
    "escalated-no-l2-response": dict(
        priority="P0", status=Status.NEW, category="outage", history=1, group="360001111002",
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
    ticket = load_ticket_json("zendesk", _load(EXAMPLES / f"{name}.json"), default_zendesk_mapping())

    assert ticket.priority == expected["priority"]
    assert ticket.status == expected["status"]
    assert ticket.category == expected["category"]
    # The stock mapping names no groups, so the group is the Zendesk group id.
    assert ticket.group == expected.get("group", str(L1_GROUP))
    assert len(ticket.status_history) == expected["history"]
    assert ticket.status_history[-1].to_status == expected["status"]
    assert [(c.author_role, c.public) for c in ticket.comments] == expected["roles"]
    assert expected["present"] <= set(ticket.fields)
    assert not expected["absent"] & set(ticket.fields)
    assert "satisfaction" not in ticket.fields  # no survey was offered in any of them


@pytest.mark.parametrize("name", sorted(EXAMPLE_EXPECTATIONS))
def test_example_matches_its_jira_twin(name):
    # The same scenario must look the same to the rules on both platforms.
    zendesk = load_ticket_json("zendesk", _load(EXAMPLES / f"{name}.json"), default_zendesk_mapping())
    jira = load_ticket_json("jira", _load(ROOT / "examples" / "jira" / f"{name}.json"), default_jira_mapping())

    assert (zendesk.priority, zendesk.status, zendesk.category) == (jira.priority, jira.status, jira.category)
    assert zendesk.created == jira.created.replace(microsecond=0)  # Zendesk keeps whole seconds
    assert [c.to_status for c in zendesk.status_history] == [c.to_status for c in jira.status_history]
    assert [(c.author_role, c.public, c.body) for c in zendesk.comments] == [
        (c.author_role, c.public, c.body) for c in jira.comments
    ]
    assert set(zendesk.fields) == set(jira.fields)


def test_examples_carry_the_scenario_specifics():
    mapping = default_zendesk_mapping()

    def parse(name):
        return load_ticket_json("zendesk", _load(EXAMPLES / f"{name}.json"), mapping)

    assert parse("p0-outage-no-response").created == datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)
    # Dropdown values stay the tag value, as Zendesk triggers and views see them.
    assert parse("reporter-says-not-resolved").fields["verification_result"] == "not_resolved"
    closed = parse("p1-closed-needs-follow-up")
    assert closed.fields["verification_result"] == "resolved"
    assert closed.resolved == datetime(2026, 11, 18, 2, 5, 44, tzinfo=timezone.utc)
    assert parse("paused-waiting-for-customer").status_history[2].raw_to == "pending"


# --- statuses and priorities ----------------------------------------------------------------


def test_null_priority_is_none(recorded, mapping):
    recorded["ticket"]["priority"] = None
    ticket = _parse(recorded, mapping)
    assert (ticket.priority, ticket.raw_priority) == (None, None)


def test_pending_is_also_waiting_for_information(recorded, mapping):
    recorded["ticket"]["status"] = "pending"
    ticket = _parse(recorded, mapping)
    assert ticket.status == Status.WAITING_FOR_CUSTOMER
    assert ticket.is_in(Status.WAITING_FOR_INFORMATION)


def test_status_names_match_case_insensitively(recorded, mapping):
    recorded["ticket"]["status"] = "Hold"
    recorded["ticket"]["priority"] = "URGENT"
    ticket = _parse(recorded, mapping)
    assert (ticket.status, ticket.priority) == (Status.WAITING_FOR_THIRD_PARTY, "P0")


def test_solved_time_is_when_the_audits_say_it_was_solved(recorded, mapping):
    recorded["ticket"]["status"] = "solved"
    recorded["audits"].append({
        "id": 1, "ticket_id": 4540, "created_at": "2026-11-23T06:00:00Z", "author_id": AGENT,
        "events": [{"id": 2, "type": "Change", "field_name": "status", "value": "solved", "previous_value": "open"}],
    })
    ticket = _parse(recorded, mapping)
    assert ticket.status == Status.RESOLVED
    assert ticket.resolved == datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc)


def test_history_without_the_create_audit_starts_at_creation(recorded, mapping):
    # A later page of audits: the first status event is a Change.
    audits = recorded["audits"][2:]
    history = _parse(recorded, mapping, audits=audits).status_history
    assert history[0].at == datetime(2026, 11, 21, 0, 47, 19, tzinfo=timezone.utc)
    assert [c.raw_to for c in history] == ["open", "pending", "open"]


def test_audits_with_no_status_event_mean_the_status_never_changed(recorded, mapping):
    audits = [{"id": 5, "created_at": "2026-11-21T01:00:00Z", "author_id": AGENT,
               "events": [{"id": 6, "type": "Change", "field_name": "tags", "value": ["x"], "previous_value": []}]}]
    history = _parse(recorded, mapping, audits=audits).status_history
    assert [(c.at, c.to_status) for c in history] == [
        (datetime(2026, 11, 21, 0, 47, 19, tzinfo=timezone.utc), Status.IN_PROGRESS)
    ]


# --- fields -------------------------------------------------------------------------------------


def test_custom_fields_by_title_case_insensitively_and_by_id(recorded, mapping):
    _custom(recorded, 360051234507, "Batch size default doubled")
    fields = dict(mapping.fields, root_cause="ROOT CAUSE", solution="360051234507")
    ticket = _parse(recorded, _with(mapping, fields=fields))
    assert ticket.fields["root_cause"] == ticket.fields["solution"] == "Batch size default doubled"


def test_titles_do_not_resolve_without_the_field_catalogue(recorded, mapping):
    ticket = _parse(recorded, mapping, ticket_fields=None)
    assert "impact_scope" not in ticket.fields
    assert ticket.category is None
    # Native attributes and numeric ids need no catalogue.
    assert ticket.fields["symptom"] == ticket.description
    assert ticket.group == "L1 support"


def test_tagger_value_stays_the_tag(recorded, mapping):
    _custom(recorded, VERIFICATION_FIELD, "partly_resolved")
    assert _parse(recorded, mapping).fields["verification_result"] == "partly_resolved"


def test_multiselect_and_checkbox_values(recorded, mapping):
    recorded["ticket_fields"].append({"id": 900, "type": "multiselect", "title": "Affected sites"})
    recorded["ticket_fields"].append({"id": 901, "type": "checkbox", "title": "Data loss"})
    _custom(recorded, 900, ["site_shanghai", "site_beijing"])
    _custom(recorded, 901, False)
    fields = dict(mapping.fields, impact_scope="Affected sites", kb_link="Data loss")

    ticket = _parse(recorded, _with(mapping, fields=fields))

    assert ticket.fields["impact_scope"] == ["site_shanghai", "site_beijing"]
    assert ticket.fields["kb_link"] is False  # an unticked box is an answer, not a blank


def test_native_attributes_and_system_fields_by_title(recorded, mapping):
    fields = dict(mapping.fields, environment="type", solution="Subject", repro_steps="Group")
    ticket = _parse(recorded, _with(mapping, fields=fields))
    assert ticket.fields["environment"] == "incident"
    assert ticket.fields["solution"] == ticket.summary
    assert ticket.fields["repro_steps"] == L1_GROUP


def test_duplicate_titles_take_the_field_that_holds_a_value(recorded, mapping):
    recorded["ticket_fields"].insert(0, {"id": 902, "type": "text", "title": "Impact scope", "active": False})
    _custom(recorded, 902, None)
    assert _parse(recorded, mapping).fields["impact_scope"] == "Daily management reports for all regions are empty"


@pytest.mark.parametrize(
    ("rating", "expected"),
    [
        ({"score": "good", "comment": "Quick"}, "good"),
        ({"score": "bad", "comment": "Slow"}, "bad"),
        ({"score": "offered"}, "offered"),
        ({"score": "unoffered"}, None),
        (None, None),
    ],
)
def test_satisfaction_is_the_score(recorded, mapping, rating, expected):
    recorded["ticket"]["satisfaction_rating"] = rating
    assert _parse(recorded, mapping).fields.get("satisfaction") == expected


def test_group_id_without_a_named_group_is_the_id(recorded, mapping):
    assert _parse(recorded, _with(mapping, groups={})).group == str(L1_GROUP)
    recorded["ticket"]["group_id"] = None
    assert _parse(recorded, mapping).group is None


def test_custom_fields_may_come_as_fields(recorded, mapping):
    recorded["ticket"]["fields"] = recorded["ticket"].pop("custom_fields")
    assert _parse(recorded, mapping).category == "network"


# --- comment authors --------------------------------------------------------------------------


def _only_comment(data: dict, author_id: int) -> None:
    data["comments"] = [{"id": 77, "type": "Comment", "author_id": author_id, "body": "hello", "public": True,
                         "created_at": "2026-11-21T05:00:00Z"}]


@pytest.mark.parametrize(
    ("connector_account", "author_id", "role"),
    [
        (str(CONNECTOR), CONNECTOR, AuthorRole.CONNECTOR),
        ("Connector@ACME-support.example", CONNECTOR, AuthorRole.CONNECTOR),
        (CONNECTOR_EMAIL, REQUESTER, AuthorRole.REQUESTER),
        (CONNECTOR_EMAIL, CC_END_USER, AuthorRole.REQUESTER),
        (CONNECTOR_EMAIL, AGENT, AuthorRole.AGENT),
        (None, CONNECTOR, AuthorRole.AGENT),  # no connector account configured: it is an agent
        (CONNECTOR_EMAIL, 123, AuthorRole.AGENT),  # not sideloaded: not known as an end-user
    ],
    ids=["connector-id", "connector-email", "requester", "end-user-cc", "agent", "unconfigured", "unknown-user"],
)
def test_comment_author_roles(recorded, mapping, connector_account, author_id, role):
    _only_comment(recorded, author_id)
    ticket = _parse(recorded, _with(mapping, connector_account=connector_account), audits=None)
    assert [(c.id, c.author_role) for c in ticket.comments] == [("77", role)]


def test_private_comment_is_internal(recorded, mapping):
    _only_comment(recorded, AGENT)
    recorded["comments"][0]["public"] = False
    assert _parse(recorded, mapping, audits=None).comments[0].public is False


# --- malformed input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d["ticket"].pop("id"), "needs an 'id'"),
        (lambda d: d["ticket"].update(status="archived"), "status 'archived' is not in the mapping"),
        (lambda d: d["ticket"].pop("created_at"), r"created_at is missing"),
        (lambda d: d["ticket"].update(created_at="2026-11-21 00:47"), "has no UTC offset"),
        (lambda d: d["audits"][0].pop("created_at"), r"audit \d+ created_at is missing"),
        (lambda d: d["audits"][1].update(events="Change"), r"events must be a list of JSON objects"),
        (lambda d: d["comments"][2].pop("id"), "a comment has no 'id'"),
    ],
    ids=["no-id", "unknown-status", "no-created", "naive-created", "audit-time", "events", "comment-id"],
)
def test_malformed_tickets_raise_value_error_saying_what_is_wrong(recorded, mapping, damage, message):
    damage(recorded)
    with pytest.raises(MalformedTicketError, match=message):
        _parse(recorded, mapping)


def test_audits_must_be_a_list(recorded, mapping):
    with pytest.raises(ValueError, match=r"audits must be a list of JSON objects"):
        _parse(recorded, mapping, audits={"audits": recorded["audits"]})


# --- the ticket JSON loader ----------------------------------------------------------------


def test_loader_reads_the_show_response_with_sideloads_and_audits(recorded, mapping):
    assert load_ticket_json("zendesk", recorded, mapping) == _parse(recorded, mapping)


def test_loader_needs_only_the_ticket(recorded, mapping):
    ticket = load_ticket_json("zendesk", {"ticket": recorded["ticket"]}, mapping)
    assert (ticket.status_history, ticket.comments) == ((), ())
    assert ticket.group == "L1 support"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"id": 1, "status": "open"}, r'"ticket" is missing \(this looks like a bare ticket object; wrap it as'),
        ({"tickets": []}, r'"ticket" is missing; expected \{"ticket": <the ticket of GET /api/v2/tickets/\{id\}.json>'),
        ({"ticket": {"id": 1}, "audits": {"audits": []}}, '"audits" must be a list of objects'),
        ({"ticket": {"id": 1}, "users": [1, 2]}, '"users" must be a list of objects'),
    ],
    ids=["bare-ticket", "list-response", "audits-envelope", "users-not-objects"],
)
def test_loader_rejects_other_shapes(data, message):
    with pytest.raises(ValueError, match=message):
        load_ticket_json("zendesk", data, default_zendesk_mapping())


def test_parsing_does_not_modify_the_input(recorded, mapping):
    before = copy.deepcopy(recorded)
    load_ticket_json("zendesk", recorded, mapping)
    assert recorded == before
