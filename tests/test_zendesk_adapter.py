"""The Zendesk adapter over HTTP: the real zenpy client against `responses`, with Zendesk's answer bodies.

Every test counts requests, because the number of API calls (and of updates per ticket)
is what the adapter is for. Bodies under tests/responses/zendesk_* follow the shapes of
Zendesk's API reference (ticket show, audits with users sideload, ticket fields, update
answer with ticket and audit, search, incremental cursor export, error bodies).
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
import requests
import responses
from responses import matchers

from connector.metrics import REGISTRY
from connector.model import (
    AddComment,
    AddLabel,
    Assign,
    Plan,
    RemoveLabel,
    SetFields,
    SetPriority,
    Status,
    Transition,
)
from connector.platforms.base import (
    BadRequest,
    Conflict,
    HostError,
    NotFound,
    PlatformAdapter,
    RateLimited,
    RetryPolicy,
    StaleTicket,
    Unauthorized,
)
from connector.platforms.mapping import PlatformMapping, default_zendesk_mapping
from connector.platforms.zendesk import (
    IncrementalPage,
    ZendeskAdapter,
    already_equal,
    format_custom_field_value,
    zendesk_datetime,
)
from connector.platforms.zendesk.ticket import parse_zendesk_ticket
from connector.settings import Settings

RESPONSES = Path(__file__).parent / "responses"
BASE = "https://acme-support.zendesk.com"
API = f"{BASE}/api/v2"
TICKET_URL = f"{API}/tickets/4540.json"
AUDITS_URL = f"{API}/tickets/4540/audits.json"
FIELDS_URL = f"{API}/ticket_fields.json"
STAMP = "2026-11-22T03:20:05Z"  # updated_at of the recorded ticket
EVALUATED = datetime(2026, 11, 22, 3, 25, tzinfo=timezone.utc)
L1, L2 = "360001111001", "360001111002"


def body(name: str):
    return json.loads((RESPONSES / name).read_text(encoding="utf-8"))


def sample(metric: str, **labels) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def mapping() -> PlatformMapping:
    return default_zendesk_mapping().model_copy(update={"groups": {"L1": L1, "L2": L2}})


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def adapter(sleeps, clock) -> ZendeskAdapter:
    policy = RetryPolicy(sleep=sleeps.append, uniform=lambda low, high: low)
    return ZendeskAdapter(BASE, "agent@acme.example", "api-token", mapping(), policy=policy, clock=clock)


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture(autouse=True)
def _zenpy_never_sleeps(monkeypatch):
    """zenpy sleeps in its 429 loop and its proactive rate limiter: either would fail loudly here."""

    def forbidden(seconds):
        raise AssertionError(f"zenpy slept {seconds}s on its own: its waiting is not off")

    monkeypatch.setattr("zenpy.lib.api.sleep", forbidden)
    monkeypatch.setattr("time.sleep", forbidden)


def ticket(**changes):
    """The recorded ticket as fetch would return it, optionally with ticket attributes changed."""
    raw = {**body("zendesk_ticket_4540.json")["ticket"], **changes}
    audits = body("zendesk_ticket_4540_audits.json")
    return parse_zendesk_ticket(
        raw,
        mapping(),
        audits=audits["audits"],
        users=audits["users"],
        ticket_fields=body("zendesk_ticket_fields.json")["ticket_fields"],
        base_url=BASE,
    )


def plan(*actions) -> Plan:
    return Plan(platform="zendesk", ticket_id="4540", ticket_key="#4540", evaluated_at=EVALUATED, actions=list(actions))


def sent_json(call) -> dict:
    return json.loads(call.request.body)


def register_fetch(http, base: str = API) -> None:
    http.get(f"{base}/tickets/4540.json", json=body("zendesk_ticket_4540.json"))
    http.get(f"{base}/tickets/4540/audits.json", json=body("zendesk_ticket_4540_audits.json"))
    http.get(f"{base}/ticket_fields.json", json=body("zendesk_ticket_fields.json"))


# --- construction and auth ------------------------------------------------------------


def test_adapter_satisfies_the_protocol_and_constructs_without_requests(http, adapter):
    assert isinstance(adapter, PlatformAdapter)
    assert adapter.platform == "zendesk"
    assert len(http.calls) == 0


def test_api_token_is_sent_as_zendesk_basic_auth(http, adapter):
    register_fetch(http)
    adapter.fetch("4540")
    expected = base64.b64encode(b"agent@acme.example/token:api-token").decode()
    assert {call.request.headers["Authorization"] for call in http.calls} == {f"Basic {expected}"}


def test_from_settings_builds_from_the_environment_names(http):
    settings = Settings(zendesk_url=BASE, zendesk_email="agent@acme.example", zendesk_token="api-token")
    built = ZendeskAdapter.from_settings(settings, mapping())
    http.get(TICKET_URL, json=body("zendesk_ticket_4540.json"))
    http.get(AUDITS_URL, json=body("zendesk_ticket_4540_audits.json"))
    http.get(FIELDS_URL, json=body("zendesk_ticket_fields.json"))
    assert built.fetch("4540").url == f"{BASE}/agent/tickets/4540"


@pytest.mark.parametrize(
    "settings",
    [
        Settings(zendesk_email="agent@acme.example", zendesk_token="t"),
        Settings(zendesk_url=BASE, zendesk_token="t"),
        Settings(zendesk_url=BASE, zendesk_email="agent@acme.example"),
    ],
)
def test_from_settings_refuses_missing_settings(settings):
    with pytest.raises(ValueError, match="ZENDESK_URL, ZENDESK_EMAIL and ZENDESK_TOKEN"):
        ZendeskAdapter.from_settings(settings, mapping())


def test_constructor_refuses_a_url_without_scheme():
    with pytest.raises(ValueError, match="http"):
        ZendeskAdapter("acme.zendesk.com", "agent@acme.example", "t", mapping())


@pytest.mark.parametrize("base", ["http://127.0.0.1:8765", "http://localhost:8080/zendesk-proxy/"])
def test_any_base_url_is_used_verbatim(http, sleeps, base):
    local = ZendeskAdapter(base, "agent@acme.example", "t", mapping(), policy=RetryPolicy(sleep=sleeps.append))
    root = base.rstrip("/")
    register_fetch(http, f"{root}/api/v2")
    http.put(f"{root}/api/v2/tickets/4540.json", json=body("zendesk_ticket_4540_update_public_reply.json"))

    fetched = local.fetch("4540")
    local.apply(fetched, plan(AddComment(rule="r", reason="x", body="Hi", public=True, marker="connector-info-requested")))

    assert [call.request.url.split("?")[0] for call in http.calls] == [
        f"{root}/api/v2/tickets/4540.json",
        f"{root}/api/v2/tickets/4540/audits.json",
        f"{root}/api/v2/ticket_fields.json",
        f"{root}/api/v2/tickets/4540.json",
    ]
    assert fetched.url == f"{root}/agent/tickets/4540"


# --- fetch ----------------------------------------------------------------------------


def test_fetch_is_the_ticket_and_its_audits_plus_the_field_catalogue_once(http, adapter):
    http.get(TICKET_URL, json=body("zendesk_ticket_4540.json"))
    http.get(
        AUDITS_URL,
        json=body("zendesk_ticket_4540_audits.json"),
        match=[matchers.query_param_matcher({"include": "users", "page[size]": "100"})],
    )
    http.get(FIELDS_URL, json=body("zendesk_ticket_fields.json"))

    fetched = adapter.fetch("4540")
    assert len(http.calls) == 3
    assert fetched == ticket()
    assert fetched.status is Status.IN_PROGRESS and fetched.priority == "P1" and fetched.group == "L1"
    assert fetched.category == "network"
    assert [change.raw_to for change in fetched.status_history] == ["new", "open", "pending", "open"]
    # Comments come from the audits: the opening one is the description, not a response.
    assert [(c.id, c.public) for c in fetched.comments] == [
        ("4540000016", True), ("4540000018", False), ("4540000022", True), ("4540000024", True)
    ]

    adapter.fetch("#4540")
    assert len(http.calls) == 5  # the catalogue is not read again


def test_fetch_pages_audits_by_cursor_and_merges_the_users(http, adapter):
    page1, page2 = body("zendesk_ticket_4540_audits_page1.json"), body("zendesk_ticket_4540_audits_page2.json")
    http.get(TICKET_URL, json=body("zendesk_ticket_4540.json"))
    http.get(AUDITS_URL, json=page1, match=[matchers.query_param_matcher({"include": "users", "page[size]": "100"})])
    http.get(
        AUDITS_URL,
        json=page2,
        match=[matchers.query_param_matcher(
            {"include": "users", "page[size]": "100", "page[after]": page1["meta"]["after_cursor"]}
        )],
    )
    http.get(FIELDS_URL, json=body("zendesk_ticket_fields.json"))

    fetched = adapter.fetch("4540")
    assert len(http.calls) == 4
    # The change to pending (and back) is only on the second page.
    assert fetched == ticket()
    assert fetched.status_history[-2].raw_to == "pending"


def test_a_mapping_by_field_ids_needs_no_catalogue(http, sleeps):
    by_id = mapping().model_copy(update={"category_field": "360051234501", "fields": {"impact_scope": "360051234503"}})
    lean = ZendeskAdapter(BASE, "agent@acme.example", "t", by_id, policy=RetryPolicy(sleep=sleeps.append))
    http.get(TICKET_URL, json=body("zendesk_ticket_4540.json"))
    http.get(AUDITS_URL, json=body("zendesk_ticket_4540_audits.json"))
    fetched = lean.fetch("4540")
    assert len(http.calls) == 2
    assert fetched.fields == {"impact_scope": "Daily management reports for all regions are empty"}


def test_fetch_refuses_something_that_is_not_a_ticket_id(http, adapter):
    with pytest.raises(NotFound):
        adapter.fetch("../users/me")
    assert len(http.calls) == 0


# --- apply ----------------------------------------------------------------------------


def test_empty_plan_sends_nothing(http, adapter):
    result = adapter.apply(ticket(), plan())
    assert len(http.calls) == 0
    assert not result.changed and result.applied == []


def test_plan_the_ticket_already_shows_sends_nothing(http, adapter):
    http.get(FIELDS_URL, json=body("zendesk_ticket_fields.json"))
    actions = [
        AddLabel(rule="r", reason="x", label="network"),
        RemoveLabel(rule="r", reason="x", label="never-there"),
        SetPriority(rule="r", reason="x", priority="P1"),
        Transition(rule="r", reason="x", to=Status.IN_PROGRESS),
        Assign(rule="r", reason="x", group="L1", assignee="9011111111101"),
        # A date object and the ticket's "2026-11-19" are the same value.
        SetFields(rule="r", reason="x", fields={
            "occurred_at": date(2026, 11, 19),
            "impact_scope": "Daily management reports for all regions are empty",
        }),
        AddComment(rule="r", reason="x", body="Please add the log.", marker="connector-intake-requested"),
    ]
    result = adapter.apply(ticket(), plan(*actions))
    assert [call.request.url for call in http.calls] == [FIELDS_URL]  # the catalogue, no write
    # Assign skips twice (group and assignee), SetFields once per field.
    assert not result.changed and len(result.skipped) == len(actions) + 2 and result.warnings == []


def test_fields_status_group_tags_and_comments_travel_in_one_update(http, adapter):
    http.get(FIELDS_URL, json=body("zendesk_ticket_fields.json"))
    http.put(TICKET_URL, json=body("zendesk_ticket_4540_update.json"))
    escalation = AddComment(
        rule="escalate-l2", reason="x", body="Escalated to L2: no progress update for 4 business hours.",
        marker="connector-escalation-l2",
    )
    warning = AddComment(
        rule="sla-warning", reason="x", body="SLA warning: 80% of the first-response target has elapsed.",
        marker="connector-sla-fr-warning",
    )
    actions = [
        SetFields(rule="closure", reason="x", fields={
            "verification_result": "Partly resolved",
            "occurred_at": date(2026, 11, 18),
            "360051234502": datetime(2026, 11, 22, 11, 20, tzinfo=timezone(timedelta(hours=8))),
        }),
        SetPriority(rule="escalate-l2", reason="x", priority="P0"),
        Assign(rule="escalate-l2", reason="x", group="L2"),
        Transition(rule="escalate-l2", reason="x", to=Status.WAITING_FOR_THIRD_PARTY),
        AddLabel(rule="escalate-l2", reason="x", label="connector-escalated-l2"),
        RemoveLabel(rule="intake", reason="x", label="connector-intake-requested"),
        escalation,
        warning,
    ]
    result = adapter.apply(ticket(), plan(*actions))

    assert [call.request.method for call in http.calls] == ["GET", "PUT"]
    assert sent_json(http.calls[1]) == {
        "ticket": {
            "custom_fields": [
                {"id": 360051234509, "value": "partly_resolved"},
                {"id": 360051234506, "value": "2026-11-18"},
                {"id": 360051234502, "value": "2026-11-22T03:20:00Z"},
            ],
            "priority": "urgent",
            "group_id": int(L2),
            "status": "hold",
            # Update Ticket replaces the tag list: the whole list as read, plus additions, minus removals.
            "tags": ["network", "connector-escalated-l2", "connector-escalation-l2", "connector-sla-fr-warning"],
            "comment": {
                "body": "Escalated to L2: no progress update for 4 business hours.\n\n"
                "SLA warning: 80% of the first-response target has elapsed.",
                "public": False,
            },
            "safe_update": True,
            "updated_stamp": STAMP,
        }
    }
    assert result.writes == ["PUT /api/v2/tickets/4540.json"]
    assert result.applied == actions and result.skipped == [] and result.warnings == []


def test_a_public_reply_and_an_internal_note_are_two_updates_each_with_its_own_marker(http, adapter):
    http.put(TICKET_URL, json=body("zendesk_ticket_4540_update_public_reply.json"))
    http.put(TICKET_URL, json=body("zendesk_ticket_4540_update_internal_note.json"))
    reply = AddComment(rule="intake", reason="x", body="Could you attach the export job's log from last night?",
                       public=True, marker="connector-info-requested")
    note = AddComment(rule="intake", reason="x", body="Asked the customer for the export job log; waiting before escalating.",
                      public=False, marker="connector-info-note")
    wait = Transition(rule="intake", reason="x", to=Status.WAITING_FOR_INFORMATION)
    result = adapter.apply(ticket(), plan(reply, note, wait))

    assert len(http.calls) == 2
    # The reply comes first in the plan, so it goes first, with the status change.
    first, second = sent_json(http.calls[0])["ticket"], sent_json(http.calls[1])["ticket"]
    assert first == {
        "status": "pending",
        "tags": ["connector-intake-requested", "network", "connector-info-requested"],
        "comment": {"body": reply.body, "public": True},
        "safe_update": True,
        "updated_stamp": STAMP,
    }
    # The second update is stamped with the updated_at the first one returned.
    # Its tag list is the one the first update's answer shows, plus its own marker.
    assert second == {
        "tags": ["connector-info-requested", "connector-intake-requested", "network", "connector-info-note"],
        "comment": {"body": note.body, "public": False},
        "safe_update": True,
        "updated_stamp": "2026-11-22T03:30:00Z",
    }
    # In the order they were written.
    assert result.applied == [reply, wait, note] and len(result.writes) == 2
    assert result.warnings == []


def test_tag_changes_the_answer_does_not_show_are_a_warning(http, adapter):
    http.put(TICKET_URL, json=body("zendesk_ticket_4540_update_public_reply.json"))
    result = adapter.apply(ticket(), plan(AddLabel(rule="r", reason="x", label="connector-followup-due")))
    assert sent_json(http.calls[0])["ticket"]["tags"] == ["connector-intake-requested", "network",
                                                         "connector-followup-due"]
    assert result.warnings == ["Zendesk did not apply tag changes: missing ['connector-followup-due'], not removed []"]


def test_one_time_comment_is_skipped_when_its_marker_is_on_the_ticket_or_already_planned(http, adapter):
    http.put(TICKET_URL, json=body("zendesk_ticket_4540_update_public_reply.json"))
    posted = AddComment(rule="intake", reason="x", body="Please add the log.", marker="connector-intake-requested")
    once = AddComment(rule="intake", reason="x", body="Could you attach the export job's log from last night?",
                      public=True, marker="connector-info-requested")
    twice = AddComment(rule="other", reason="x", body="Same marker.", public=False, marker="connector-info-requested")
    result = adapter.apply(ticket(), plan(posted, once, twice))
    assert len(http.calls) == 1
    assert sent_json(http.calls[0])["ticket"]["comment"] == {"body": once.body, "public": True}
    assert [s.action for s in result.skipped] == [posted, twice]


def test_marker_of_a_planned_comment_is_never_removed_or_added_without_it(http, adapter):
    http.put(TICKET_URL, json=body("zendesk_ticket_4540_update_public_reply.json"))
    comment = AddComment(rule="r", reason="x", body="Hi", public=True, marker="connector-info-requested")
    result = adapter.apply(ticket(), plan(
        AddLabel(rule="r", reason="x", label="connector-info-requested"),
        comment,
        RemoveLabel(rule="r", reason="x", label="connector-info-requested"),
    ))
    assert sent_json(http.calls[0])["ticket"]["tags"] == ["connector-intake-requested", "network",
                                                         "connector-info-requested"]
    assert result.applied == [comment] and len(result.skipped) == 2


def test_assignee_by_email_needs_no_user_lookup(http, adapter):
    http.put(TICKET_URL, json=body("zendesk_ticket_4540_update_public_reply.json"))
    adapter.apply(ticket(), plan(Assign(rule="r", reason="x", assignee="li.na@acme-support.example")))
    assert len(http.calls) == 1
    assert sent_json(http.calls[0])["ticket"]["assignee_email"] == "li.na@acme-support.example"


def test_impossible_writes_are_warnings_and_the_rest_is_written(http, adapter, caplog):
    http.get(FIELDS_URL, json=body("zendesk_ticket_fields.json"))
    http.put(TICKET_URL, json=body("zendesk_ticket_4540_update_public_reply.json"))
    actions = [
        SetFields(rule="closure", reason="x", fields={"verification_result": "Works for me", "No such field": "x",
                                                      "root_cause": "Export worker heap too small"}),
        Assign(rule="routing", reason="x", group="L3"),
        Transition(rule="reopen", reason="x", to=Status.NEW),
    ]
    with caplog.at_level("WARNING", logger="connector.platforms.zendesk"):
        result = adapter.apply(ticket(), plan(*actions))

    # The active "Root cause" field wins over the deactivated one with the same title.
    assert sent_json(http.calls[1]) == {"ticket": {
        "custom_fields": [{"id": 360051234507, "value": "Export worker heap too small"}],
        "safe_update": True, "updated_stamp": STAMP,
    }}
    assert result.warnings == [
        "value for field 'Verification result' cannot be written: 'Works for me' is not one of its options",
        "Zendesk has no ticket field titled 'No such field'",
        "group 'L3' has no Zendesk group id in the mapping's groups",
        "Zendesk cannot move a ticket from 'open' back to 'new'",
    ]
    assert {r.getMessage() for r in caplog.records} >= {
        "zendesk.field_value_invalid", "zendesk.field_unresolved", "zendesk.group_unmapped",
        "zendesk.transition_unavailable",
    }


def test_a_closed_ticket_is_never_updated_its_comment_goes_to_a_follow_up_ticket(http, adapter):
    created = {"ticket": {**body("zendesk_ticket_4540.json")["ticket"], "id": 4600,
                          "tags": ["connector-fu", "connector-intake-requested", "network"]}}
    http.post(f"{API}/tickets.json", status=201, json=created)
    http.get(FIELDS_URL, json=body("zendesk_ticket_fields.json"))  # to copy the mapped fields
    closed = ticket(status="closed")
    reminder = AddComment(rule="r", reason="x", body="Follow-up due", public=False, marker="connector-fu")
    field = SetPriority(rule="r", reason="x", priority="P0")
    result = adapter.apply(closed, plan(reminder, field))

    assert [call.request.method for call in http.calls] == ["GET", "POST"]
    sent = sent_json(http.calls[1])["ticket"]
    assert sent["via_followup_source_id"] == 4540
    assert sent["comment"] == {"body": "Follow-up due", "public": False}
    assert sent["tags"] == ["connector-fu", "connector-intake-requested", "network"]  # the marker rides with it
    assert sent["requester_id"] == closed_requester() and sent["subject"] == closed.summary
    # The parent's values are copied; the plan's own field change cannot land on a closed ticket.
    assert "status" not in sent and sent["priority"] == closed.raw_priority != "urgent"
    assert {"id": 360051234501, "value": "network"} in sent["custom_fields"]
    assert result.writes == ["POST /api/v2/tickets.json"] and result.applied == [reminder]
    assert [s.action for s in result.skipped] == [field]
    assert result.refused == ["status closed: field cannot be written to a closed ticket"]


def closed_requester() -> int:
    return body("zendesk_ticket_4540.json")["ticket"]["requester_id"]


def test_fetch_of_a_closed_ticket_sees_the_markers_its_follow_ups_carry(http, adapter):
    raw = {**body("zendesk_ticket_4540.json")["ticket"], "status": "closed", "followup_ids": [4600]}
    http.get(TICKET_URL, json={"ticket": raw})
    http.get(AUDITS_URL, json=body("zendesk_ticket_4540_audits.json"))
    http.get(FIELDS_URL, json=body("zendesk_ticket_fields.json"))
    http.get(f"{API}/tickets/show_many.json", json={"tickets": [{"id": 4600, "tags": [
        "connector-fu", "connector-intake-requested", "network"]}]},
        match=[matchers.query_param_matcher({"ids": "4600"})])
    fetched = adapter.fetch("4540")
    assert "connector-fu" in fetched.labels
    # Replayed: the marker is seen, so nothing is written again.
    result = adapter.apply(fetched, plan(AddComment(rule="r", reason="x", body="Follow-up due", public=False,
                                                    marker="connector-fu")))
    assert not result.changed and not [c for c in http.calls if c.request.method != "GET"]


def test_per_ticket_update_limit_raises_before_writing(http, adapter, clock):
    http.put(TICKET_URL, json=body("zendesk_ticket_4540_update_public_reply.json"))
    tag = plan(AddLabel(rule="r", reason="x", label="connector-info-requested"))
    for _ in range(30):
        adapter.apply(ticket(), tag)
        clock.now += 10
    assert len(http.calls) == 30

    with pytest.raises(RateLimited) as raised:
        adapter.apply(ticket(), tag)
    assert len(http.calls) == 30  # nothing sent
    # The oldest of the 30 updates was 300 s ago: its slot frees in another 300 s.
    assert raised.value.retry_after == pytest.approx(300.0)

    clock.now += 300
    adapter.apply(ticket(), tag)
    assert len(http.calls) == 31


def test_a_plan_needing_two_updates_waits_for_two_slots(http, adapter, clock):
    http.put(TICKET_URL, json=body("zendesk_ticket_4540_update_public_reply.json"))
    tag = plan(AddLabel(rule="r", reason="x", label="connector-info-requested"))
    for _ in range(29):
        adapter.apply(ticket(), tag)
        clock.now += 1
    both = plan(
        AddComment(rule="r", reason="x", body="Reply", public=True, marker="connector-info-requested"),
        AddComment(rule="r", reason="x", body="Note", public=False, marker="connector-info-note"),
    )
    with pytest.raises(RateLimited) as raised:
        adapter.apply(ticket(), both)
    assert len(http.calls) == 29
    assert raised.value.retry_after == pytest.approx(600.0 - 29.0)


def test_other_tickets_have_their_own_update_budget(http, adapter):
    http.put(TICKET_URL, json=body("zendesk_ticket_4540_update_public_reply.json"))
    http.put(f"{API}/tickets/4541.json", json=body("zendesk_ticket_4540_update_public_reply.json"))
    tag = plan(AddLabel(rule="r", reason="x", label="connector-info-requested"))
    for _ in range(30):
        adapter.apply(ticket(), tag)
    other = ticket(id=4541)
    adapter.apply(other, tag.model_copy(update={"ticket_id": "4541", "ticket_key": "#4541"}))
    assert len(http.calls) == 31


# --- errors and retries over HTTP -------------------------------------------------------


def test_rate_limit_waits_at_least_retry_after_then_succeeds(http, adapter, sleeps):
    http.put(TICKET_URL, status=429, headers={"Retry-After": "3"}, body="Too Many Requests")
    http.put(TICKET_URL, json=body("zendesk_ticket_4540_update_public_reply.json"))
    comment = AddComment(rule="r", reason="x", body="Hi", public=True, marker="connector-info-requested")
    result = adapter.apply(ticket(), plan(comment))
    # A 429 is refused before processing, so even a comment-carrying update is resent.
    assert len(http.calls) == 2 and result.applied == [comment]
    assert len(sleeps) == 1 and sleeps[0] >= 3.0


def test_retry_after_as_an_http_date_is_honoured(http, adapter, sleeps):
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=20), usegmt=True)
    http.get(TICKET_URL, status=429, headers={"Retry-After": later}, body="Too Many Requests")
    register_fetch(http)
    adapter.fetch("4540")
    assert len(sleeps) == 1 and 15.0 <= sleeps[0] <= 20.0


def test_long_retry_after_raises_rate_limited_at_once(http, adapter, sleeps):
    http.get(TICKET_URL, status=429, headers={"Retry-After": "120"}, body="Too Many Requests")
    with pytest.raises(RateLimited) as raised:
        adapter.fetch("4540")
    assert raised.value.retry_after == 120.0
    assert len(http.calls) == 1 and sleeps == []


def test_zenpy_does_not_wait_so_a_429_costs_exactly_our_attempts(http, adapter, sleeps):
    http.get(TICKET_URL, status=429, headers={"Retry-After": "1"}, body="Too Many Requests")
    with pytest.raises(RateLimited):
        adapter.fetch("4540")
    # RetryPolicy's max_attempts; zenpy's own loop would have slept (the autouse fixture forbids it).
    assert len(http.calls) == 4
    assert sleeps == [1.0, 1.0, 1.0]


def test_stale_stamp_conflict_is_raised_for_a_fresh_reconcile(http, adapter, sleeps):
    http.put(TICKET_URL, status=409, json=body("zendesk_error_409_update_conflict.json"))
    with pytest.raises(Conflict) as raised:
        adapter.apply(ticket(), plan(SetPriority(rule="r", reason="x", priority="P0")))
    assert len(http.calls) == 1 and sleeps == []
    assert raised.value.message.startswith("UpdateConflict: Safe Update prevented the update")
    assert raised.value.__suppress_context__  # zenpy's message is the whole body


@pytest.mark.parametrize(
    ("status", "name", "kind", "message"),
    [
        (401, "zendesk_error_401.json", Unauthorized, "Couldn't authenticate you"),
        (404, "zendesk_error_404_record_not_found.json", NotFound, "RecordNotFound: Not found"),
    ],
)
def test_client_errors_are_translated_without_retry(http, adapter, sleeps, status, name, kind, message):
    http.get(TICKET_URL, status=status, json=body(name))
    with pytest.raises(kind) as raised:
        adapter.fetch("4540")
    assert (raised.value.status, raised.value.message) == (status, message)
    assert len(http.calls) == 1 and sleeps == []


def test_validation_error_carries_zendesks_reason(http, adapter, sleeps):
    http.put(TICKET_URL, status=422, json={"error": "RecordInvalid", "description": "Record validation errors",
                                           "details": {"priority": [{"description": "Priority: is invalid"}]}})
    with pytest.raises(BadRequest) as raised:
        adapter.apply(ticket(), plan(SetPriority(rule="r", reason="x", priority="P0")))
    assert raised.value.message == "RecordInvalid: Record validation errors (priority: Priority: is invalid)"
    assert len(http.calls) == 1 and sleeps == []


def test_ticket_closed_between_read_and_write_is_a_stale_ticket_for_a_re_plan(http, adapter, sleeps):
    # Zendesk's auto-close ran between our read and our write: nothing landed, re-read at once.
    http.put(TICKET_URL, status=422, json=body("zendesk_error_422_closed_ticket.json"))
    with pytest.raises(StaleTicket) as raised:
        adapter.apply(ticket(), plan(AddComment(rule="r", reason="x", body="Reminder", marker="connector-fu")))
    assert isinstance(raised.value, Conflict) and raised.value.status == 422
    assert len(http.calls) == 1 and sleeps == []


def test_service_unavailable_with_a_text_body_is_retried_then_host_error(http, adapter, sleeps):
    http.get(TICKET_URL, status=503, body="<html><body>Service Unavailable</body></html>")
    with pytest.raises(HostError) as raised:
        adapter.fetch("4540")
    assert raised.value.status == 503
    assert len(http.calls) == 4 and len(sleeps) == 3


def test_a_login_page_instead_of_json_is_not_retried(http, adapter, sleeps):
    http.get(TICKET_URL, status=200, body="<html>Sign in</html>", content_type="text/html")
    with pytest.raises(HostError) as raised:
        adapter.fetch("4540")
    assert not raised.value.retryable
    assert len(http.calls) == 1 and sleeps == []


def test_connection_error_on_a_read_is_retried_and_counted(http, adapter, sleeps):
    http.get(TICKET_URL, body=requests.ConnectionError("Connection aborted."))
    register_fetch(http)
    before = sample("connector_api_calls_total", platform="zendesk", method="GET", status="no_response")
    adapter.fetch("4540")
    assert len(http.calls) == 4 and sleeps == [0.5]
    assert sample("connector_api_calls_total", platform="zendesk", method="GET", status="no_response") == before + 1


def test_update_with_a_comment_is_not_resent_after_a_dropped_connection(http, adapter, sleeps):
    http.put(TICKET_URL, body=requests.ConnectionError("Connection aborted."))
    with pytest.raises(HostError):
        adapter.apply(ticket(), plan(AddComment(rule="r", reason="x", body="Hello", marker="greeted")))
    assert len(http.calls) == 1 and sleeps == []


def test_every_answer_is_counted(http, adapter):
    http.get(TICKET_URL, status=429, headers={"Retry-After": "1"}, body="Too Many Requests")
    register_fetch(http)
    http.put(TICKET_URL, json=body("zendesk_ticket_4540_update_public_reply.json"))
    labels = {"platform": "zendesk"}
    ok = sample("connector_api_calls_total", method="GET", status="200", **labels)
    limited = sample("connector_api_calls_total", method="GET", status="429", **labels)
    put = sample("connector_api_calls_total", method="PUT", status="200", **labels)

    fetched = adapter.fetch("4540")
    adapter.apply(fetched, plan(AddLabel(rule="r", reason="x", label="connector-info-requested")))

    assert sample("connector_api_calls_total", method="GET", status="200", **labels) == ok + 3
    assert sample("connector_api_calls_total", method="GET", status="429", **labels) == limited + 1
    assert sample("connector_api_calls_total", method="PUT", status="200", **labels) == put + 1


# --- search and incremental export ------------------------------------------------------


def test_search_pages_through_next_page_and_asks_for_tickets_only(http, adapter):
    page1 = body("zendesk_search_page1.json")
    http.get(
        f"{API}/search.json",
        json=page1,
        match=[matchers.query_param_matcher({"query": "type:ticket status:open", "per_page": "100"})],
    )
    http.get(
        f"{API}/search.json",
        json=body("zendesk_search_page2.json"),
        match=[matchers.query_param_matcher(
            {"query": "type:ticket status:open updated>2026-11-22T00:00:00Z", "page": "2", "per_page": "2"}
        )],
    )
    found = adapter.search("status:open", fields=["status", "updated_at"])
    assert len(http.calls) == 0  # lazy: nothing is read before it is consumed
    assert list(found) == [
        {"id": 4540, "status": "open", "updated_at": "2026-11-22T03:20:05Z"},
        {"id": 4541, "status": "new", "updated_at": "2026-11-22T04:02:11Z"},
        {"id": 4547, "status": "pending", "updated_at": "2026-11-22T05:40:00Z"},
    ]
    assert len(http.calls) == 2


def test_search_past_zendesks_result_cap_switches_to_the_export_cursor(http, adapter):
    http.get(f"{API}/search.json", json=body("zendesk_search_over_limit.json"))
    export1 = body("zendesk_search_export_page1.json")
    http.get(
        f"{API}/search/export.json",
        json=export1,
        match=[matchers.query_param_matcher({"query": "status:open", "filter[type]": "ticket", "page[size]": "100"})],
    )
    http.get(
        f"{API}/search/export.json",
        json=body("zendesk_search_export_page2.json"),
        match=[matchers.query_param_matcher({"query": "status:open", "filter[type]": "ticket", "page[size]": "100",
                                             "page[after]": export1["meta"]["after_cursor"]})],
    )
    assert [t["id"] for t in adapter.search("status:open")] == [4540, 4541, 4547]
    assert [c.request.url.split("?")[0] for c in http.calls] == [
        f"{API}/search.json", f"{API}/search/export.json", f"{API}/search/export.json"
    ]


def test_incremental_tickets_yield_pages_with_the_cursor_to_resume_from(http, adapter):
    page1 = body("zendesk_incremental_tickets_page1.json")
    http.get(
        f"{API}/incremental/tickets/cursor.json",
        json=page1,
        match=[matchers.query_param_matcher({"start_time": "1795305600", "per_page": "1000"})],
    )
    http.get(
        f"{API}/incremental/tickets/cursor.json",
        json=body("zendesk_incremental_tickets_page2.json"),
        match=[matchers.query_param_matcher({"cursor": page1["after_cursor"], "per_page": "1000"})],
    )
    pages = list(adapter.incremental_tickets(start_time=datetime(2026, 11, 22, tzinfo=timezone.utc)))
    assert [([t["id"] for t in p.tickets], p.cursor, p.end_of_stream) for p in pages] == [
        ([4540, 4541], "MTc5NTMxNzYwNS4wfHw0NTQxfA==", False),
        ([4547], "MTc5NTMyNjAwMC4wfHw0NTQ3fA==", True),
    ]
    assert isinstance(pages[0], IncrementalPage)


def test_incremental_tickets_resume_from_a_stored_cursor(http, adapter):
    http.get(
        f"{API}/incremental/tickets/cursor.json",
        json=body("zendesk_incremental_tickets_page2.json"),
        match=[matchers.query_param_matcher({"cursor": "MTc5NTMxNzYwNS4wfHw0NTQxfA==", "per_page": "1000"})],
    )
    tickets, cursor, end = next(adapter.incremental_tickets(cursor="MTc5NTMxNzYwNS4wfHw0NTQxfA=="))
    assert ([t["id"] for t in tickets], cursor, end) == ([4547], "MTc5NTMyNjAwMC4wfHw0NTQ3fA==", True)


def test_incremental_tickets_need_exactly_one_starting_point(adapter):
    with pytest.raises(ValueError, match="exactly one"):
        next(adapter.incremental_tickets())
    with pytest.raises(ValueError, match="exactly one"):
        next(adapter.incremental_tickets(start_time=0, cursor="abc"))


# --- value shaping ------------------------------------------------------------------------

CATEGORY = {"id": 1, "type": "tagger", "custom_field_options": [
    {"name": "Network", "value": "network"}, {"name": "Login", "value": "login"}]}


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (CATEGORY, "Network", "network"),
        (CATEGORY, "login", "login"),
        ({**CATEGORY, "type": "multiselect"}, ["Login", "network"], ["login", "network"]),
        ({"type": "date"}, datetime(2026, 11, 22, 23, 30, tzinfo=timezone.utc), "2026-11-22"),
        ({"type": "date"}, "2026-11-22", "2026-11-22"),
        ({"type": "text"}, datetime(2026, 11, 22, 11, 20, tzinfo=timezone(timedelta(hours=8))), "2026-11-22T03:20:00Z"),
        ({"type": "textarea"}, "Heap 2 GB", "Heap 2 GB"),
        ({"type": "checkbox"}, True, True),
        ({"type": "integer"}, "42", 42),
        ({"type": "decimal"}, "2.5", 2.5),
        ({"type": "tagger"}, None, None),
    ],
)
def test_values_are_shaped_by_the_field_type(field, value, expected):
    assert format_custom_field_value(field, value) == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (CATEGORY, "Printer"),
        ({"type": "checkbox"}, "yes"),
        ({"type": "integer"}, 2.5),
        ({"type": "integer"}, True),
        ({"type": "text"}, datetime(2026, 11, 22, 11, 20)),  # no offset: which zone?
    ],
)
def test_values_a_field_cannot_hold_are_refused(field, value):
    with pytest.raises(ValueError):
        format_custom_field_value(field, value)


@pytest.mark.parametrize(
    ("current", "written", "equal"),
    [
        ("2026-11-22T03:20:00Z", "2026-11-22T03:20:00+00:00", True),
        ("network", "network", True),
        (["b", "a"], ["a", "b"], True),
        (5, 5.0, True),
        (None, None, True),
        ("2026-11-19", "2026-11-18", False),
        (None, "x", False),
    ],
)
def test_already_equal_compares_meaning_not_spelling(current, written, equal):
    assert already_equal(current, written) is equal


def test_zendesk_datetime_is_utc_with_z():
    assert zendesk_datetime("2026-11-22T11:20:05+08:00") == "2026-11-22T03:20:05Z"
