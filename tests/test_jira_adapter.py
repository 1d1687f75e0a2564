"""The Jira adapter over HTTP: the real `jira` library against `responses`, with Jira's answer bodies.

Every test counts requests, because the number of API calls is what the adapter is for.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
import responses
from responses import matchers
from urllib3.exceptions import MaxRetryError, NewConnectionError

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
    HostError,
    NotFound,
    PlatformAdapter,
    RateLimited,
    RetryPolicy,
    Unauthorized,
)
from connector.platforms.jira import JiraAdapter, already_equal, format_field_value
from connector.platforms.jira.issue import parse_jira_issue
from connector.platforms.mapping import default_jira_mapping
from connector.settings import Settings

RESPONSES = Path(__file__).parent / "responses"
CLOUD = "https://acme.atlassian.net"
DC = "https://jira.acme.example"
API = f"{CLOUD}/rest/api/2"
ISSUE_URL = f"{API}/issue/SUP-42"
EVALUATED = datetime(2026, 4, 20, 10, 0, tzinfo=timezone.utc)


def body(name: str):
    return json.loads((RESPONSES / name).read_text(encoding="utf-8"))


def sample(metric: str, **labels) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def adapter(sleeps) -> JiraAdapter:
    policy = RetryPolicy(sleep=sleeps.append, uniform=lambda low, high: low)
    # As build_adapter() does: the connector account is the configured user.
    return JiraAdapter(CLOUD, "agent@acme.example", "api-token", connector_mapping(), policy=policy)


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture(autouse=True)
def _library_never_sleeps(monkeypatch):
    """If the jira library's own retry loop ever ran, it would call time.sleep: fail loudly."""

    def forbidden(seconds):
        raise AssertionError(f"jira library slept {seconds}s: its retries are not off")

    monkeypatch.setattr("jira.resilientsession.time.sleep", forbidden)


def connector_mapping():
    return default_jira_mapping().model_copy(update={"connector_account": "agent@acme.example"})


def ticket():
    return parse_jira_issue(body("jira_issue_sup42_cloud.json"), connector_mapping(), base_url=CLOUD)


def plan(*actions) -> Plan:
    return Plan(platform="jira", ticket_id="10042", ticket_key="SUP-42", evaluated_at=EVALUATED, actions=list(actions))


def sent_json(call) -> dict:
    return json.loads(call.request.body)


# --- construction and auth ------------------------------------------------------------


def test_adapter_satisfies_the_protocol_and_constructs_without_requests(http, adapter):
    assert isinstance(adapter, PlatformAdapter)
    assert adapter.platform == "jira"
    assert len(http.calls) == 0


def test_cloud_uses_basic_auth(http, adapter):
    http.get(ISSUE_URL, json=body("jira_issue_sup42_cloud.json"))
    adapter.fetch("SUP-42")
    expected = base64.b64encode(b"agent@acme.example:api-token").decode()
    assert http.calls[0].request.headers["Authorization"] == f"Basic {expected}"


def test_data_center_personal_access_token_is_sent_as_bearer(http):
    settings = Settings(jira_url=DC, jira_user=None, jira_token="pat-secret")
    dc = JiraAdapter.from_settings(settings, default_jira_mapping())
    issue = body("jira_issue_sup42_cloud.json")
    http.get(f"{DC}/rest/api/2/issue/SUP-42", json=issue)
    http.get(f"{DC}/rest/api/2/myself", json={"name": "svc-connector", "key": "JIRAUSER10100"})
    dc.fetch("SUP-42")
    assert http.calls[0].request.headers["Authorization"] == "Bearer pat-secret"
    # No connector account is configured with a token, and the issue has comments: who the
    # connector is (its comments are no agent responses) is asked once per process.
    assert [c.request.url.split("/rest/api/2/")[1] for c in http.calls] == [
        "issue/SUP-42?expand=changelog%2Cnames%2Ctransitions.fields%2Ceditmeta", "myself"]
    dc.fetch("SUP-42")
    assert len(http.calls) == 3


def test_from_settings_refuses_missing_credentials():
    with pytest.raises(ValueError, match="JIRA_URL and JIRA_TOKEN"):
        JiraAdapter.from_settings(Settings(jira_url=CLOUD), default_jira_mapping())


# --- fetch ----------------------------------------------------------------------------


def test_fetch_is_one_request_with_changelog_names_transitions_and_editmeta(http, adapter):
    http.get(
        ISSUE_URL,
        json=body("jira_issue_sup42_cloud.json"),
        match=[matchers.query_param_matcher({"expand": "changelog,names,transitions.fields,editmeta"})],
    )
    fetched = adapter.fetch("SUP-42")

    assert len(http.calls) == 1
    assert fetched == ticket()
    assert fetched.status is Status.NEW and fetched.group == "L1" and fetched.priority == "P1"
    assert [change.raw_to for change in fetched.status_history] == ["Open", "Waiting for support"]


def test_fetch_refuses_something_that_is_not_an_issue_key(http, adapter):
    with pytest.raises(NotFound):
        adapter.fetch("../../admin")
    assert len(http.calls) == 0


def test_fetch_pages_the_rest_of_a_capped_changelog_on_cloud(http, sleeps):
    cloud = JiraAdapter(CLOUD, "agent@acme.example", "t", connector_mapping(), deployment="Cloud")
    http.get(ISSUE_URL, json=body("jira_issue_sup42_cloud_long_changelog.json"))
    http.get(
        f"{ISSUE_URL}/changelog",
        json=body("jira_changelog_sup42_page0.json"),
        match=[matchers.query_param_matcher({"startAt": "0", "maxResults": "100"})],
    )
    fetched = cloud.fetch("SUP-42")

    assert len(http.calls) == 2
    # The oldest change (New -> Open) is only on the changelog page, not in the issue.
    assert [change.raw_to for change in fetched.status_history] == ["New", "Open", "Waiting for support"]


def test_fetch_on_data_center_does_not_page_the_changelog(http, caplog):
    dc = JiraAdapter(DC, None, "pat", connector_mapping(), deployment="Server")
    http.get(f"{DC}/rest/api/2/issue/SUP-42", json=body("jira_issue_sup42_cloud_long_changelog.json"))
    with caplog.at_level(logging.WARNING, logger="connector.platforms.jira"):
        dc.fetch("SUP-42")
    assert len(http.calls) == 1
    record = next(r for r in caplog.records if r.getMessage() == "jira.changelog_truncated")
    assert (record.ticket, record.total, record.returned) == ("SUP-42", 3, 2)


# --- apply ----------------------------------------------------------------------------


def test_empty_plan_sends_nothing(http, adapter):
    result = adapter.apply(ticket(), plan())
    assert len(http.calls) == 0
    assert not result.changed and result.applied == []


def test_plan_the_ticket_already_shows_sends_nothing(http, adapter):
    actions = [
        AddLabel(rule="r", reason="x", label="vpn"),
        RemoveLabel(rule="r", reason="x", label="never-there"),
        SetPriority(rule="r", reason="x", priority="P1"),
        SetFields(
            rule="r",
            reason="x",
            fields={"impact_scope": "All 40 people in the Hamburg office",
                    # Same instant as the ticket's 2026-04-20T08:00:00.000+0200, spelled differently.
                    "occurred_at": datetime(2026, 4, 20, 6, 0, tzinfo=timezone.utc)},
        ),
        Assign(rule="r", reason="x", group="L1"),
        AddComment(rule="r", reason="x", body="We are on it.", marker="vpn"),
        Transition(rule="r", reason="x", to=Status.NEW),
    ]
    result = adapter.apply(ticket(), plan(*actions))

    assert len(http.calls) == 0
    assert result.writes == [] and result.applied == []
    assert len(result.skipped) == 8  # SetFields is skipped once per field


def posted_comment(request):
    sent = json.loads(request.body)
    internal = any(p == {"key": "sd.public.comment", "value": {"internal": True}} for p in sent.get("properties", []))
    return 201, {}, json.dumps({"id": "10100", "body": sent["body"], "jsdPublic": not internal})


def test_comments_are_posted_first_then_one_edit_with_fields_and_labels(http, adapter):
    http.get(f"{API}/field", json=body("jira_fields_cloud.json"))
    http.add_callback(responses.POST, f"{ISSUE_URL}/comment", callback=posted_comment)
    http.put(ISSUE_URL, status=204)
    actions = [
        SetFields(
            rule="sla",
            reason="deadlines",
            fields={
                "sla_first_response_due": datetime(2026, 4, 20, 11, 12, 30, tzinfo=timezone(timedelta(hours=2))),
                "follow_up_due": date(2026, 4, 23),
                "impact_scope": "Hamburg and Munich offices",
                "customfield_10063": ["Network", "Security"],
                "customfield_10059": "4",
            },
        ),
        SetPriority(rule="priority", reason="core business down", priority="P0"),
        Assign(rule="routing", reason="network", group="L2"),
        AddLabel(rule="sla", reason="breach", label="sla-first-response-breached"),
        RemoveLabel(rule="intake", reason="complete", label="vpn"),
        AddComment(rule="intake", reason="missing", body="Please add the steps to reproduce.", public=True,
                   marker="intake-requested"),
        AddComment(rule="sla", reason="breach", body="First response target missed.", public=False),
    ]
    result = adapter.apply(ticket(), plan(*actions))

    # Field catalogue, the two comments (documented comment endpoint), then the one edit.
    assert [(c.request.method, c.request.url.split("/rest/api/2/")[1]) for c in http.calls] == [
        ("GET", "field"), ("POST", "issue/SUP-42/comment"), ("POST", "issue/SUP-42/comment"),
        ("PUT", "issue/SUP-42")]
    # The one-time comment carries its marker; the internal note carries JSM's property.
    assert sent_json(http.calls[1]) == {"body": "Please add the steps to reproduce.\n\nref: intake-requested"}
    assert sent_json(http.calls[2]) == {
        "body": "First response target missed.",
        "properties": [{"key": "sd.public.comment", "value": {"internal": True}}]}
    assert sent_json(http.calls[3]) == {
        "fields": {
            "customfield_10060": "2026-04-20T11:12:30.000+0200",
            "customfield_10062": "2026-04-23",
            "customfield_10051": "Hamburg and Munich offices",
            "customfield_10063": [{"value": "Network"}, {"value": "Security"}],
            "customfield_10059": 4.0,
            "priority": {"name": "Highest"},
            "customfield_10050": {"value": "L2"},
        },
        "update": {
            "labels": [
                {"add": "sla-first-response-breached"},
                {"remove": "vpn"},
                {"add": "intake-requested"},
            ],
        },
    }
    # Public comments notify the customer: the edit must not switch notifications off.
    assert "notifyUsers" not in http.calls[3].request.url
    assert result.writes == ["POST /rest/api/2/issue/SUP-42/comment"] * 2 + ["PUT /rest/api/2/issue/SUP-42"]
    assert result.applied == actions
    assert result.warnings == [] and result.refused == []


def test_internal_note_that_lands_public_is_deleted_and_reported(http, adapter, caplog):
    http.post(f"{ISSUE_URL}/comment", status=201, json={"id": "10100", "body": "x", "jsdPublic": True})
    http.delete(f"{ISSUE_URL}/comment/10100", status=204)
    http.put(ISSUE_URL, status=204)
    before = sample("connector_writes_refused_total", platform="jira", what="comment")
    note = AddComment(rule="sla", reason="breach", body="First response target missed.", marker="sla-breach")
    with caplog.at_level(logging.WARNING, logger="connector.platforms.jira"):
        result = adapter.apply(ticket(), plan(note))

    assert [c.request.method for c in http.calls] == ["POST", "DELETE", "PUT"]
    # The marker label records that the note was handled, so no later reconcile posts it again.
    assert sent_json(http.calls[2]) == {"update": {"labels": [{"add": "sla-breach"}]}}
    assert note not in result.applied
    [refused] = result.refused
    assert "internal note could not be written as internal" in refused and "deleted again" in refused
    assert sample("connector_writes_refused_total", platform="jira", what="comment") == before + 1
    record = next(r for r in caplog.records if r.getMessage() == "jira.write_refused")
    assert (record.what, record.marker, record.rule) == ("comment", "sla-breach", "sla")


def test_field_catalogue_is_read_once_per_adapter(http, adapter):
    http.get(f"{API}/field", json=body("jira_fields_cloud.json"))
    http.put(ISSUE_URL, status=204)
    for value in ("one", "two"):
        adapter.apply(ticket(), plan(SetFields(rule="r", reason="x", fields={"root_cause": value})))
    assert [c.request.method for c in http.calls] == ["GET", "PUT", "PUT"]


def test_one_time_comment_is_skipped_when_a_connector_comment_carries_its_marker(http, adapter):
    issue = body("jira_issue_sup42_cloud.json")
    mine = {"accountId": "5b10-connector", "emailAddress": "agent@acme.example", "displayName": "Connector"}
    customer = issue["fields"]["reporter"]
    issue["fields"]["comment"]["comments"] += [
        {"id": "10200", "author": mine, "body": "Please add the error text.\n\nref: intake-requested",
         "created": "2026-04-20T10:00:00.000+0200", "jsdPublic": True},
        # The same line pasted by the customer is no marker.
        {"id": "10201", "author": customer, "body": "ref: sla-breach", "created": "2026-04-20T10:05:00.000+0200",
         "jsdPublic": True},
    ]
    parsed = parse_jira_issue(issue, connector_mapping(), base_url=CLOUD)
    assert parsed.comment_markers == {"intake-requested"}
    assert parsed.markers == {"vpn", "intake-requested"}
    http.add_callback(responses.POST, f"{ISSUE_URL}/comment", callback=posted_comment)
    http.put(ISSUE_URL, status=204)

    result = adapter.apply(parsed, plan(
        AddComment(rule="intake", reason="x", body="Please add the error text.", public=True,
                   marker="intake-requested"),
        AddComment(rule="sla", reason="x", body="Breached.", marker="sla-breach"),
    ))
    assert [c.request.method for c in http.calls] == ["POST", "PUT"]
    assert sent_json(http.calls[0])["body"].endswith("ref: sla-breach")
    # The marker only the comment showed (a crash before its label) gets its label now.
    assert sent_json(http.calls[1]) == {"update": {"labels": [{"add": "sla-breach"}, {"add": "intake-requested"}]}}
    assert result.skipped[0].reason == "already posted (marker 'intake-requested' present)"


def test_one_time_comment_is_skipped_when_its_marker_is_on_the_ticket(http, adapter):
    http.put(ISSUE_URL, status=204)
    result = adapter.apply(
        ticket(),
        plan(
            AddComment(rule="r", reason="x", body="Already said.", marker="vpn"),
            AddLabel(rule="r", reason="x", label="connector-seen"),
        ),
    )
    assert sent_json(http.calls[0]) == {"update": {"labels": [{"add": "connector-seen"}]}}
    assert result.skipped[0].reason == "already posted (marker 'vpn' present)"


def test_assignee_shape_follows_the_deployment(http, sleeps):
    http.get(f"{DC}/rest/api/2/serverInfo", json=body("jira_server_info_dc.json"))
    http.put(f"{DC}/rest/api/2/issue/SUP-42", status=204)
    dc = JiraAdapter(DC, None, "pat", default_jira_mapping())
    for _ in range(2):
        dc.apply(ticket(), plan(Assign(rule="r", reason="x", assignee="jsmith")))
    assert [c.request.method for c in http.calls] == ["GET", "PUT", "PUT"]  # serverInfo read once
    assert sent_json(http.calls[1]) == {"fields": {"assignee": {"name": "jsmith"}}}

    cloud = JiraAdapter(CLOUD, "agent@acme.example", "t", default_jira_mapping(), deployment="Cloud")
    http.put(ISSUE_URL, status=204)
    cloud.apply(ticket(), plan(Assign(rule="r", reason="x", assignee="5b10ac8d82e05b22cc7d4ef5")))
    assert sent_json(http.calls[-1]) == {"fields": {"assignee": {"accountId": "5b10ac8d82e05b22cc7d4ef5"}}}


def test_unknown_field_is_a_warning_and_the_rest_is_written(http, adapter, caplog):
    http.get(f"{API}/field", json=body("jira_fields_cloud.json"))
    http.put(ISSUE_URL, status=204)
    with caplog.at_level(logging.WARNING, logger="connector.platforms.jira"):
        result = adapter.apply(
            ticket(),
            plan(SetFields(rule="r", reason="x", fields={"Customer tier": "gold", "root_cause": "Expired certificate"})),
        )
    assert sent_json(http.calls[1]) == {"fields": {"customfield_10055": "Expired certificate"}}
    assert result.warnings == ["Jira has no field with id or name 'Customer tier'"]
    assert any(r.getMessage() == "jira.field_unresolved" and r.field == "Customer tier" for r in caplog.records)


def test_transition_is_picked_by_target_status_from_the_fetched_transitions(http, adapter):
    http.get(ISSUE_URL, json=body("jira_issue_sup42_cloud.json"))
    http.put(ISSUE_URL, status=204)
    http.post(f"{ISSUE_URL}/transitions", status=204)
    fetched = adapter.fetch("SUP-42")
    move = Transition(rule="r", reason="x", to=Status.WAITING_FOR_THIRD_PARTY)
    result = adapter.apply(fetched, plan(AddLabel(rule="r", reason="x", label="vendor-case"), move))

    assert [(c.request.method, c.request.url.split("?")[0]) for c in http.calls] == [
        ("GET", ISSUE_URL),
        ("PUT", ISSUE_URL),
        ("POST", f"{ISSUE_URL}/transitions"),
    ]
    # "Pending" is what the stock mapping writes for waiting on a third party: transition 31.
    assert sent_json(http.calls[2]) == {"transition": {"id": "31"}}
    assert result.writes == ["PUT /rest/api/2/issue/SUP-42", "POST /rest/api/2/issue/SUP-42/transitions"]
    assert result.applied[-1] == move


def test_transition_for_a_ticket_not_fetched_here_reads_the_transitions(http, adapter):
    http.get(f"{ISSUE_URL}/transitions", json=body("jira_transitions_sup42.json"))
    http.post(f"{ISSUE_URL}/transitions", status=204)
    adapter.apply(ticket(), plan(Transition(rule="r", reason="x", to=Status.IN_PROGRESS)))
    assert [c.request.method for c in http.calls] == ["GET", "POST"]
    assert sent_json(http.calls[1]) == {"transition": {"id": "11"}}


def test_unavailable_transition_is_a_counted_warning_and_other_writes_happen(http, adapter, caplog):
    http.get(ISSUE_URL, json=body("jira_issue_sup42_cloud.json"))
    http.put(ISSUE_URL, status=204)
    fetched = adapter.fetch("SUP-42")
    before = sample("connector_transitions_unavailable_total", platform="jira", to_status="closed")
    with caplog.at_level(logging.WARNING, logger="connector.platforms.jira"):
        result = adapter.apply(
            fetched,
            plan(AddLabel(rule="r", reason="x", label="stale"), Transition(rule="close", reason="x", to=Status.CLOSED)),
        )

    assert [c.request.method for c in http.calls] == ["GET", "PUT"]
    assert result.writes == ["PUT /rest/api/2/issue/SUP-42"]
    assert result.warnings == ["the workflow offers no transition from 'Waiting for support' to 'Closed'"]
    assert sample("connector_transitions_unavailable_total", platform="jira", to_status="closed") == before + 1
    record = next(r for r in caplog.records if r.getMessage() == "jira.transition_unavailable")
    assert record.to_status == "Closed"
    assert record.available == ["In Progress", "Pending", "Resolved", "Waiting for customer"]


def test_rejected_transition_is_a_warning_and_is_not_resent(http, adapter):
    http.get(ISSUE_URL, json=body("jira_issue_sup42_cloud.json"))
    http.post(f"{ISSUE_URL}/transitions", status=400, json=body("jira_error_400_transition.json"))
    fetched = adapter.fetch("SUP-42")
    result = adapter.apply(fetched, plan(Transition(rule="r", reason="x", to=Status.RESOLVED)))
    assert [c.request.method for c in http.calls] == ["GET", "POST"]
    assert result.writes == []
    assert result.warnings == [
        "Jira refused the transition to 'Resolved': You do not have permission to transition this issue."
    ]


# --- errors and retries over HTTP -------------------------------------------------------


def test_rate_limit_waits_at_least_retry_after_then_succeeds(http, adapter, sleeps):
    http.get(ISSUE_URL, status=429, headers={"Retry-After": "3"}, body="Rate limit exceeded.")
    http.get(ISSUE_URL, json=body("jira_issue_sup42_cloud.json"))
    assert adapter.fetch("SUP-42").key == "SUP-42"
    assert len(http.calls) == 2
    assert len(sleeps) == 1 and sleeps[0] >= 3.0


def test_long_retry_after_raises_rate_limited_at_once(http, adapter, sleeps):
    http.get(ISSUE_URL, status=429, headers={"Retry-After": "120"}, body="Rate limit exceeded.")
    with pytest.raises(RateLimited) as raised:
        adapter.fetch("SUP-42")
    assert raised.value.retry_after == 120.0
    assert len(http.calls) == 1 and sleeps == []


def test_library_retries_are_off_so_a_429_costs_exactly_our_attempts(http, adapter, sleeps):
    http.get(ISSUE_URL, status=429, body="Rate limit exceeded.")  # no Retry-After: our back-off decides
    with pytest.raises(RateLimited):
        adapter.fetch("SUP-42")
    assert len(http.calls) == 4  # RetryPolicy's default max_attempts, not 4 x the library's 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_service_unavailable_is_retried_then_host_error(http, adapter, sleeps):
    http.get(ISSUE_URL, status=503, body="<html><body>Service Unavailable</body></html>")
    with pytest.raises(HostError) as raised:
        adapter.fetch("SUP-42")
    assert raised.value.status == 503
    assert len(http.calls) == 4 and len(sleeps) == 3


def test_field_jira_refuses_is_reported_and_the_rest_resent_once(http, adapter, sleeps):
    """A ticket without editmeta (not fetched here) or a screen changed since the read."""
    http.get(f"{API}/field", json=body("jira_fields_cloud.json"))
    http.put(ISSUE_URL, status=400, json=body("jira_error_400_field_not_on_screen.json"))
    http.put(ISSUE_URL, status=204)
    occurred = SetFields(rule="intake", reason="x", fields={"occurred_at": "2026-04-19T08:00:00+02:00"})
    scope = SetFields(rule="intake", reason="x", fields={"impact_scope": "Hamburg"})
    result = adapter.apply(ticket(), plan(occurred, scope))

    assert [c.request.method for c in http.calls] == ["GET", "PUT", "PUT"] and sleeps == []
    assert sent_json(http.calls[2]) == {"fields": {"customfield_10051": "Hamburg"}}
    [refused] = result.refused
    assert "customfield_10054" in refused and "not on the appropriate screen" in refused
    assert result.applied == [scope]


def test_bad_request_carries_jiras_reason_and_is_not_retried(http, adapter, sleeps):
    http.post(f"{ISSUE_URL}/transitions", status=400, json=body("jira_error_400_field_not_on_screen.json"))
    with pytest.raises(BadRequest) as raised:
        adapter.client.transition_issue("SUP-42", {"transition": {"id": "5"}})
    assert raised.value.message == (
        "Field 'customfield_10054' cannot be set. It is not on the appropriate screen, or unknown."
    )
    assert raised.value.field_errors == {"customfield_10054": raised.value.message}
    assert len(http.calls) == 1 and sleeps == []
    # The library's error text (request headers, bodies) must not ride along in the traceback.
    assert raised.value.__suppress_context__


@pytest.mark.parametrize(
    ("status", "payload", "kind"),
    [
        (401, "Client must be authenticated to access this resource.", Unauthorized),
        (403, "", Unauthorized),
        (404, json.dumps(body("jira_error_404_issue.json")), NotFound),
    ],
)
def test_client_errors_are_translated_without_retry(http, adapter, sleeps, status, payload, kind):
    http.get(ISSUE_URL, status=status, body=payload)
    with pytest.raises(kind) as raised:
        adapter.fetch("SUP-42")
    assert raised.value.status == status
    assert len(http.calls) == 1 and sleeps == []
    if kind is NotFound:
        assert raised.value.message == "Issue does not exist or you do not have permission to see it."


def test_connection_error_on_a_read_is_retried(http, adapter, sleeps):
    http.get(ISSUE_URL, body=requests.ConnectionError("Connection aborted."))
    http.get(ISSUE_URL, json=body("jira_issue_sup42_cloud.json"))
    before = sample("connector_api_calls_total", platform="jira", method="GET", status="no_response")
    adapter.fetch("SUP-42")
    assert len(http.calls) == 2 and sleeps == [0.5]
    assert sample("connector_api_calls_total", platform="jira", method="GET", status="no_response") == before + 1


def test_comment_is_not_resent_after_a_dropped_connection(http, adapter, sleeps):
    http.post(f"{ISSUE_URL}/comment", body=requests.ConnectionError("Connection aborted."))
    with pytest.raises(HostError):
        adapter.apply(ticket(), plan(AddComment(rule="r", reason="x", body="Hello", marker="greeted")))
    assert len(http.calls) == 1 and sleeps == []


def test_comment_is_resent_when_the_connection_was_refused(http, adapter, sleeps):
    refused = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    http.post(f"{ISSUE_URL}/comment", body=requests.ConnectionError(MaxRetryError(None, ISSUE_URL, refused)))
    http.add_callback(responses.POST, f"{ISSUE_URL}/comment", callback=posted_comment)
    http.put(ISSUE_URL, status=204)
    result = adapter.apply(ticket(), plan(AddComment(rule="r", reason="x", body="Hello", marker="greeted")))
    assert [c.request.method for c in http.calls] == ["POST", "POST", "PUT"] and result.changed


def test_edit_is_resent_after_a_dropped_connection(http, adapter, sleeps):
    """Without a comment inside, the edit only sets fields and labels: resending is safe."""
    http.put(ISSUE_URL, body=requests.ConnectionError("Connection aborted."))
    http.put(ISSUE_URL, status=204)
    result = adapter.apply(ticket(), plan(AddLabel(rule="r", reason="x", label="greeted")))
    assert len(http.calls) == 2 and result.changed


def test_every_answer_is_counted(http, adapter):
    http.get(ISSUE_URL, status=503, body="busy")
    http.get(ISSUE_URL, json=body("jira_issue_sup42_cloud.json"))
    ok = sample("connector_api_calls_total", platform="jira", method="GET", status="200")
    busy = sample("connector_api_calls_total", platform="jira", method="GET", status="503")
    adapter.fetch("SUP-42")
    assert sample("connector_api_calls_total", platform="jira", method="GET", status="200") == ok + 1
    assert sample("connector_api_calls_total", platform="jira", method="GET", status="503") == busy + 1


# --- search ---------------------------------------------------------------------------


def test_cloud_search_pages_through_next_page_token(http, adapter):
    http.get(f"{API}/serverInfo", json=body("jira_server_info_cloud.json"))
    http.get(f"{API}/field", json=body("jira_fields_cloud.json"))
    page1 = body("jira_search_jql_page1.json")
    http.get(
        f"{API}/search/jql",
        json=page1,
        match=[matchers.query_param_matcher({"jql": "project = SUP", "maxResults": "2"}, strict_match=False)],
    )
    http.get(
        f"{API}/search/jql",
        json=body("jira_search_jql_page2.json"),
        match=[matchers.query_param_matcher({"nextPageToken": page1["nextPageToken"]}, strict_match=False)],
    )
    issues = adapter.search("project = SUP", fields=["status", "updated"], page_size=2)
    assert len(http.calls) == 0  # lazy until iterated

    assert [issue["key"] for issue in issues] == ["SUP-42", "SUP-43", "SUP-44"]
    search_calls = [c for c in http.calls if "/search/jql" in c.request.url]
    assert len(search_calls) == 2
    assert "nextPageToken" not in search_calls[0].request.url
    assert "fields=status" in search_calls[0].request.url and "fields=updated" in search_calls[0].request.url
    assert len(http.calls) == 4  # serverInfo and the field catalogue, once each


def test_data_center_search_pages_with_start_at(http):
    dc = JiraAdapter(DC, None, "pat", default_jira_mapping(), deployment="Server")
    http.get(f"{DC}/rest/api/2/field", json=body("jira_fields_cloud.json"))
    http.get(f"{DC}/rest/api/2/search", json=body("jira_search_dc_page1.json"),
             match=[matchers.query_param_matcher({"startAt": "0"}, strict_match=False)])
    http.get(f"{DC}/rest/api/2/search", json=body("jira_search_dc_page2.json"),
             match=[matchers.query_param_matcher({"startAt": "2"}, strict_match=False)])
    keys = [issue["key"] for issue in dc.search("project = HELP", fields=["updated"], page_size=2)]
    assert keys == ["HELP-1", "HELP-2", "HELP-3"]
    assert len(http.calls) == 3


# --- value formatting -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "value", "cloud", "expected"),
    [
        ({"type": "string"}, 42, True, "42"),
        ({"type": "number"}, "2.5", True, 2.5),
        ({"type": "date"}, "2026-04-23", True, "2026-04-23"),
        ({"type": "date"}, datetime(2026, 4, 23, 23, 30, tzinfo=timezone(timedelta(hours=9))), True, "2026-04-23"),
        ({"type": "datetime"}, "2026-04-20T08:00:00.123456+00:00", True, "2026-04-20T08:00:00.123+0000"),
        ({"type": "option"}, "L2", True, {"value": "L2"}),
        ({"type": "array", "items": "option"}, "L2", True, [{"value": "L2"}]),
        ({"type": "array", "items": "string"}, ["a", "b"], True, ["a", "b"]),
        ({"type": "user"}, "5b10ac8d", True, {"accountId": "5b10ac8d"}),
        ({"type": "user"}, "jsmith", False, {"name": "jsmith"}),
        ({"type": "group"}, "support-l2", True, {"name": "support-l2"}),
        ({"type": "option-with-child"}, {"value": "EU", "child": {"value": "DE"}}, True,
         {"value": "EU", "child": {"value": "DE"}}),
        ({"type": "option"}, None, True, None),
    ],
)
def test_values_are_shaped_by_the_field_schema(schema, value, cloud, expected):
    assert format_field_value(schema, value, cloud=cloud) == expected


@pytest.mark.parametrize(
    ("schema", "value"),
    [({"type": "datetime"}, "2026-04-20T08:00:00"), ({"type": "number"}, True), ({"type": "date"}, "next week")],
)
def test_values_a_field_cannot_hold_are_refused(schema, value):
    with pytest.raises(ValueError):
        format_field_value(schema, value, cloud=True)


@pytest.mark.parametrize(
    ("current", "desired", "equal"),
    [
        ("2026-04-20T08:00:00.000+0200", datetime(2026, 4, 20, 6, tzinfo=timezone.utc), True),
        ("2026-04-23", date(2026, 4, 23), True),
        (["Security", "Network"], ["Network", "Security"], True),
        ("L1", {"value": "L1"}, True),
        (4, "4", False),
        (4, 4.0, True),
        (None, "", True),
        ("L1", "L2", False),
    ],
)
def test_already_equal_compares_meaning_not_spelling(current, desired, equal):
    assert already_equal(current, desired) is equal
