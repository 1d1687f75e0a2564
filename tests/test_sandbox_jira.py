"""End-to-end tests of the Jira sandbox, driven through the real `jira` client over HTTP.

The sandbox is only worth having if the real client library accepts it as Jira and if it
refuses what Jira refuses; so these tests talk to it the way the connector's adapter will,
and every response is also checked against Atlassian's OpenAPI document
(`validate_responses=True`, asserted empty after each test).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from jira import JIRA, JIRAError

from connector.sandbox import jira_jql
from connector.sandbox.jira import AGENT, CUSTOMER, JiraSandbox
from connector.sandbox.server import Call, Clock, ThreadedServer

START = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)  # 09:00 in Asia/Shanghai
ISSUE = "/rest/api/2/issue/{issueIdOrKey}"


@pytest.fixture
def sandbox() -> Iterator[JiraSandbox]:
    with JiraSandbox(clock=Clock(START), timezone="Asia/Shanghai", validate_responses=True) as sb:
        yield sb
        assert sb.spec_violations == []


@pytest.fixture
def client(sandbox: JiraSandbox) -> Iterator[JIRA]:
    jira = JIRA(server=sandbox.base_url, basic_auth=(sandbox.email, sandbox.api_token),
                get_server_info=True, max_retries=0)
    yield jira
    jira.close()


def new_issue(client: JIRA, summary: str = "Login fails with 500", **fields: Any):
    return client.create_issue(fields={"project": {"key": "SUP"}, "issuetype": {"name": "Service Request"},
                                       "summary": summary, **fields})


def test_create_and_fetch_in_jira_shapes(sandbox: JiraSandbox, client: JIRA) -> None:
    assert client.deploymentType == "Cloud"
    issue = new_issue(client, description="Since 08:50 nobody can log in.", priority={"name": "High"},
                      customfield_10053="2026-11-20T08:50:00.000+0800")

    fetched = client.issue(issue.key, expand="changelog,names")
    fields = fetched.raw["fields"]
    assert fetched.key == "SUP-1"
    assert fields["created"] == fields["updated"] == "2026-11-20T09:00:00.000+0800"
    assert fields["status"]["name"] == "Waiting for support"
    assert fields["status"]["statusCategory"]["key"] == "new"
    assert fields["priority"] == {"self": f"{sandbox.base_url}/rest/api/2/priority/2",
                                  "iconUrl": f"{sandbox.base_url}/images/icons/priorities/high.svg",
                                  "name": "High", "id": "2"}
    assert fields["reporter"]["accountId"] == "acc-connector"
    assert fields["customfield_10053"] == "2026-11-20T08:50:00.000+0800"
    assert fields["resolution"] is None and fields["resolutiondate"] is None
    assert fields["comment"] == {"comments": [], "self": f"{sandbox.base_url}/rest/api/2/issue/10000/comment",
                                 "maxResults": 0, "total": 0, "startAt": 0}
    assert fetched.raw["names"]["customfield_10054"] == "Root cause"
    assert fetched.raw["changelog"] == {"startAt": 0, "maxResults": 0, "total": 0, "histories": []}

    names = {f["name"]: f["id"] for f in client.fields()}
    for name in ("Impact scope", "Steps to reproduce", "Error message", "Occurred at", "Root cause", "Solution",
                 "Verification result", "Knowledge base link", "Satisfaction", "Support group",
                 "First response due", "Resolution due", "Follow-up due"):
        assert names[name].startswith("customfield_10")
    assert client.myself()["emailAddress"] == sandbox.email


def test_one_edit_adds_labels_and_comment_and_records_changelog(sandbox: JiraSandbox, client: JIRA) -> None:
    issue = new_issue(client, labels=["vip"])
    sandbox.clock.advance(timedelta(minutes=7))

    issue.update(
        fields={"customfield_10059": "L2"},
        update={"labels": [{"add": "spc-intake-requested"}, {"remove": "vip"}],
                "comment": [{"add": {"body": "Please add the exact error text.",
                                     "properties": [{"key": "sd.public.comment", "value": {"internal": True}}]}}]},
        notify=False,
    )

    fetched = client.issue(issue.key, expand="changelog")
    assert fetched.fields.labels == ["spc-intake-requested"]
    [comment] = fetched.fields.comment.comments
    assert comment.body == "Please add the exact error text."
    # `properties` inside an edit's update.comment is undocumented: the sandbox fails closed
    # and makes the comment public, so a connector relying on it is caught.
    assert comment.raw["jsdPublic"] is True
    assert fetched.raw["fields"]["updated"] == "2026-11-20T09:07:00.000+0800"
    [history] = fetched.raw["changelog"]["histories"]  # comments are not changelog entries in Jira
    assert history["created"] == "2026-11-20T09:07:00.000+0800"
    assert history["items"] == [
        {"field": "Support group", "fieldtype": "custom", "fieldId": "customfield_10059",
         "from": None, "fromString": None, "to": None, "toString": "L2"},
        {"field": "labels", "fieldtype": "jira", "fieldId": "labels",
         "from": None, "fromString": "vip", "to": None, "toString": "spc-intake-requested"},
    ]

    # Writing what the ticket already shows leaves no trace, as in Jira.
    issue.update(fields={"customfield_10059": "L2"}, update={"labels": [{"add": "spc-intake-requested"}]})
    assert len(client.issue(issue.key, expand="changelog").raw["changelog"]["histories"]) == 1


def test_public_comment_via_comment_endpoint(client: JIRA) -> None:
    issue = new_issue(client)
    comment = client.add_comment(issue.key, "We are looking into it.")
    assert comment.raw["jsdPublic"] is True
    assert comment.raw["created"] == "2026-11-20T09:00:00.000+0800"
    internal = client.add_comment(issue.key, "Note for L2", is_internal=True)
    assert internal.raw["jsdPublic"] is False
    assert [c.id for c in client.issue(issue.key).fields.comment.comments] == [comment.id, internal.id]


def test_edit_errors_have_jira_bodies(client: JIRA) -> None:
    issue = new_issue(client)
    with pytest.raises(JIRAError) as unknown:
        issue.update(fields={"customfield_99999": "x"})
    assert unknown.value.status_code == 400
    assert unknown.value.response.json() == {"errorMessages": [], "errors": {
        "customfield_99999": "Field 'customfield_99999' cannot be set. It is not on the appropriate screen, or unknown."}}

    with pytest.raises(JIRAError) as status_edit:
        issue.update(fields={"status": {"name": "Resolved"}})
    assert "status" in status_edit.value.response.json()["errors"]

    with pytest.raises(JIRAError) as bad_option:
        issue.update(fields={"customfield_10056": {"value": "Maybe"}})
    assert bad_option.value.response.json()["errors"] == {"customfield_10056": "Option value 'Maybe' is not valid"}


def test_field_off_the_edit_screen_is_refused_and_left_out_of_editmeta(sandbox: JiraSandbox, client: JIRA) -> None:
    issue = new_issue(client)
    meta = client.editmeta(issue.key)["fields"]
    assert {"labels", "customfield_10059", "priority", "assignee"} <= set(meta)
    assert not {"status", "resolution", "created", "comment"} & set(meta)
    assert meta["labels"]["operations"] == ["add", "set", "remove"]

    sandbox.take_off_edit_screen("Support group")
    assert "customfield_10059" not in client.editmeta(issue.key)["fields"]
    with pytest.raises(JIRAError) as refused:
        issue.update(fields={"customfield_10059": "L2", "customfield_10055": "x"}, notify=False)
    assert refused.value.status_code == 400
    assert refused.value.response.json() == {"errorMessages": [], "errors": {
        "customfield_10059": "Field 'customfield_10059' cannot be set. It is not on the appropriate screen, or unknown."}}
    # The whole edit is refused: the field that was on the screen did not change either.
    assert client.issue(issue.key).raw["fields"]["customfield_10055"] is None

    fetched = client.issue(issue.key, expand="editmeta").raw
    assert set(fetched["editmeta"]["fields"]) == set(client.editmeta(issue.key)["fields"])


def test_closed_status_refuses_edits_but_takes_comments(sandbox: JiraSandbox, client: JIRA) -> None:
    issue = new_issue(client)
    sandbox.set_status(issue.key, "Resolved")
    assert client.editmeta(issue.key)["fields"]  # Resolved is editable in the stock workflow
    sandbox.set_status(issue.key, "Closed")

    assert client.editmeta(issue.key) == {"fields": {}}
    assert client.issue(issue.key, expand="editmeta").raw["editmeta"] == {"fields": {}}
    with pytest.raises(JIRAError) as refused:
        issue.update(update={"labels": [{"add": "spc-x"}]}, notify=False)
    assert refused.value.status_code == 400
    assert refused.value.response.json() == {
        "errorMessages": ["You can not edit the issue as it is in a non-editable workflow state."], "errors": {}}

    note = client.add_comment(issue.key, "Follow-up is due.", is_internal=True)
    assert note.raw["jsdPublic"] is False
    assert [c.id for c in client.comments(issue.key)] == [note.id]


def test_comment_can_be_deleted(client: JIRA) -> None:
    issue = new_issue(client)
    comment = client.add_comment(issue.key, "Posted by mistake.")
    comment.delete()
    assert client.comments(issue.key) == []


def test_data_center_comments_have_no_jsd_public_but_expand_properties() -> None:
    with JiraSandbox(deployment="Server", clock=Clock(START), timezone="Asia/Shanghai",
                     validate_responses=True) as dc:
        key = dc.create_issue("VPN drops")
        client = JIRA(server=dc.base_url, token_auth=dc.pat, max_retries=0, get_server_info=False)
        note = client.add_comment(key, "Internal", is_internal=True)
        assert "jsdPublic" not in note.raw
        raw = client._get_json(f"issue/{key}/comment", params={"expand": "properties"})
        assert raw["comments"][0]["properties"] == [{"key": "sd.public.comment", "value": {"internal": True}}]
        assert "jsdPublic" not in dc.issue(key)["fields"]["comment"]["comments"][0]
        assert dc.spec_violations == []


def test_transitions_follow_the_workflow(sandbox: JiraSandbox, client: JIRA) -> None:
    issue = new_issue(client)
    available = {t["name"]: t for t in client.transitions(issue.key)}
    assert set(available) == {"Respond to customer", "Start progress", "Pending", "Resolve this issue"}
    assert available["Resolve this issue"]["to"]["statusCategory"]["key"] == "done"

    with pytest.raises(JIRAError) as invalid:
        client.transition_issue(issue.key, "61")  # "Close" is only available from Resolved
    assert invalid.value.status_code == 400
    assert invalid.value.response.json() == {
        "errorMessages": ["Transition id '61' is not valid for this issue."], "errors": {}}

    sandbox.clock.advance(timedelta(hours=2))
    sandbox.require_transition_field("Resolved", "Root cause", required=False)  # an admin adds it to the screen
    client.transition_issue(issue.key, available["Resolve this issue"]["id"],
                            fields={"resolution": {"name": "Done"}, "customfield_10054": "Expired certificate"})
    resolved = client.issue(issue.key, expand="changelog")
    assert resolved.fields.status.name == "Resolved"
    assert resolved.fields.resolution.name == "Done"
    assert resolved.raw["fields"]["resolutiondate"] == "2026-11-20T11:00:00.000+0800"
    [history] = resolved.raw["changelog"]["histories"]
    assert [(i["field"], i["fromString"], i["toString"]) for i in history["items"]] == [
        ("status", "Waiting for support", "Resolved"), ("resolution", None, "Done"),
        ("Root cause", None, "Expired certificate")]

    client.transition_issue(issue.key, "Reopen")  # by name: the client looks the id up
    reopened = client.issue(issue.key)
    assert reopened.fields.status.name == "In Progress"
    assert reopened.fields.resolution is None and reopened.raw["fields"]["resolutiondate"] is None


def test_resolve_without_its_required_resolution_is_refused_like_jsm(sandbox: JiraSandbox, client: JIRA) -> None:
    # mozilla/jira-bugzilla-integration#1055: `errors.resolution: "Field Resolution is required."`
    issue = new_issue(client)
    with pytest.raises(JIRAError) as missing:
        client.transition_issue(issue.key, "51")
    assert missing.value.status_code == 400
    assert missing.value.response.json() == {"errorMessages": [], "errors": {"resolution": "Field Resolution is required."}}
    with pytest.raises(JIRAError) as invalid:
        client.transition_issue(issue.key, "51", fields={"resolution": {"name": "Fixed"}})
    assert invalid.value.response.json()["errors"] == {"resolution": "The resolution selected is invalid."}
    with pytest.raises(JIRAError) as off_screen:
        client.transition_issue(issue.key, "51", fields={"resolution": {"name": "Done"}, "customfield_10054": "x"})
    assert off_screen.value.response.json()["errors"] == {
        "customfield_10054": "Field 'customfield_10054' cannot be set. It is not on the appropriate screen, or unknown."}
    with pytest.raises(JIRAError):
        client.transition_issue(issue.key, "21", fields={"resolution": {"name": "Done"}})  # no screen at all
    assert client.issue(issue.key).fields.status.name == "Waiting for support"
    assert sandbox.store.get(issue.key).histories == []

    client.transition_issue(issue.key, "51", fields={"resolution": {"name": "Won't Do"}})
    assert client.issue(issue.key).fields.resolution.name == "Won't Do"


def test_transition_into_done_without_a_resolution_on_its_screen_leaves_the_issue_unresolved() -> None:
    from connector.sandbox.jira_store import DEFAULT_TRANSITIONS, TransitionDef

    workflow = (*DEFAULT_TRANSITIONS, TransitionDef("81", "Close directly", "Closed", ("Waiting for support",)))
    with JiraSandbox(clock=Clock(START), transitions=workflow) as sb:
        client = JIRA(server=sb.base_url, basic_auth=(sb.email, sb.api_token), max_retries=0)
        issue = new_issue(client)
        client.transition_issue(issue.key, "81")  # nothing defaults a resolution for it
        closed = client.issue(issue.key)
        assert closed.fields.status.name == "Closed" and closed.fields.resolution is None
        client.close()


def test_transition_fields_are_listed_with_expand(sandbox: JiraSandbox, client: JIRA) -> None:
    issue = new_issue(client)
    sandbox.require_transition_field("Resolved", "Root cause")
    plain = {t["id"]: t for t in client.transitions(issue.key)}
    assert "fields" not in plain["51"] and plain["51"]["hasScreen"] is True and plain["21"]["hasScreen"] is False
    expanded = {t["id"]: t for t in client.transitions(issue.key, expand="transitions.fields")}
    resolve = expanded["51"]["fields"]
    assert set(resolve) == {"resolution", "customfield_10054"}
    assert resolve["resolution"]["required"] is True and resolve["resolution"]["schema"]["type"] == "resolution"
    assert resolve["resolution"]["name"] == "Resolution"
    assert [v["name"] for v in resolve["resolution"]["allowedValues"]] == ["Done", "Won't Do", "Duplicate",
                                                                          "Cannot Reproduce"]
    assert resolve["customfield_10054"] == {"required": True, "schema": {
        "type": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textarea", "customId": 10054},
        "name": "Root cause", "key": "customfield_10054", "operations": ["set"], "hasDefaultValue": False}
    assert expanded["21"]["fields"] == {}
    # The same on the one issue read, with the nested expand.
    fetched = client.issue(issue.key, expand="changelog,names,transitions.fields").raw
    assert {t["id"]: t["fields"] for t in fetched["transitions"]}["51"] == resolve
    with pytest.raises(JIRAError) as missing:
        client.transition_issue(issue.key, "51", fields={"resolution": {"name": "Done"}})
    assert missing.value.response.json()["errors"] == {"customfield_10054": "Field Root cause is required."}


def long_issue(sandbox: JiraSandbox, comments: int = 150, changes: int = 120) -> str:
    """An issue with more comments and changelog entries than one read embeds."""
    key = sandbox.create_issue("Long story", created=START - timedelta(days=30))
    for n in range(changes):
        sandbox.set_fields(key, {"Impact scope": f"round {n}"}, at=START - timedelta(days=29, minutes=-n))
    for n in range(comments):
        sandbox.add_comment(key, f"comment {n}", author=AGENT if n % 2 else None,
                            at=START - timedelta(days=20, minutes=-n))
    return key


def test_issue_read_embeds_only_the_newest_100_comments_and_changelog_entries(sandbox: JiraSandbox,
                                                                              client: JIRA) -> None:
    key = long_issue(sandbox)
    raw = client.issue(key, expand="changelog").raw
    page = raw["fields"]["comment"]
    assert (page["total"], page["startAt"], len(page["comments"])) == (150, 50, 100)
    assert [c["body"] for c in page["comments"]][0] == "comment 50"  # the oldest were dropped
    changelog = raw["changelog"]
    assert (changelog["total"], changelog["startAt"], len(changelog["histories"])) == (120, 20, 100)
    assert changelog["histories"][-1]["items"][0]["toString"] == "round 119"


def test_comments_and_changelog_are_paged(sandbox: JiraSandbox, client: JIRA) -> None:
    key = long_issue(sandbox)
    first = client._get_json(f"issue/{key}/comment", params={"startAt": 0, "maxResults": 500})
    assert (first["total"], first["maxResults"], len(first["comments"])) == (150, 100, 100)  # Cloud caps at 100
    assert first["comments"][0]["body"] == "comment 0"
    rest = client._get_json(f"issue/{key}/comment", params={"startAt": 100, "maxResults": 100})
    assert [c["body"] for c in rest["comments"]] == [f"comment {n}" for n in range(100, 150)]
    newest = client._get_json(f"issue/{key}/comment", params={"maxResults": 1, "orderBy": "-created"})
    assert newest["comments"][0]["body"] == "comment 149"
    older = client._get_json(f"issue/{key}/changelog", params={"startAt": 0, "maxResults": 100})
    assert (older["total"], older["isLast"], len(older["values"])) == (120, False, 100)
    tail = client._get_json(f"issue/{key}/changelog", params={"startAt": 100})
    assert tail["isLast"] is True and [h["items"][0]["toString"] for h in tail["values"]][-1] == "round 119"


def test_enhanced_search_embeds_at_most_40_changelog_entries(sandbox: JiraSandbox, client: JIRA) -> None:
    key = long_issue(sandbox)
    client._fields_cache_value = {}
    page = client.enhanced_search_issues(f"key = {key}", fields=["comment", "updated"], expand="changelog",
                                         json_result=True)
    [issue] = page["issues"]
    assert (issue["changelog"]["total"], len(issue["changelog"]["histories"])) == (120, 40)  # JRACLOUD-96459
    assert issue["changelog"]["histories"][0]["items"][0]["toString"] == "round 80"
    assert (issue["fields"]["comment"]["total"], len(issue["fields"]["comment"]["comments"])) == (150, 100)


def test_bulk_changelog_pages_several_issues_oldest_first(sandbox: JiraSandbox, client: JIRA) -> None:
    first, second = long_issue(sandbox, comments=0, changes=30), long_issue(sandbox, comments=0, changes=20)
    url = f"{sandbox.base_url}/rest/api/3/changelog/bulkfetch"
    histories: dict[str, list] = {}
    token, requests_sent = None, 0
    while True:
        body = {"issueIdsOrKeys": [first, second], "maxResults": 20, **({"nextPageToken": token} if token else {})}
        page = client._session.post(url, data=json.dumps(body)).json()
        requests_sent += 1
        for entry in page["issueChangeLogs"]:
            histories.setdefault(entry["issueId"], []).extend(entry["changeHistories"])
        token = page.get("nextPageToken")
        if not token:
            break
    assert requests_sent == 3
    ids = {sandbox.issue(first)["id"]: 30, sandbox.issue(second)["id"]: 20}
    assert {k: len(v) for k, v in histories.items()} == ids
    with pytest.raises(JIRAError) as empty:
        client._session.post(url, data=json.dumps({"issueIdsOrKeys": []}))
    assert empty.value.status_code == 400


def test_data_center_embeds_everything_in_an_issue_read_but_caps_search() -> None:
    with JiraSandbox(deployment="Server", clock=Clock(START), validate_responses=True) as sb:
        key = long_issue(sb)
        dc = JIRA(server=sb.base_url, token_auth=sb.pat, get_server_info=True, max_retries=0)
        raw = dc.issue(key, expand="changelog").raw
        assert (len(raw["fields"]["comment"]["comments"]), len(raw["changelog"]["histories"])) == (150, 120)
        assert len(dc._get_json(f"issue/{key}/comment")["comments"]) == 150
        found = dc.search_issues(f"key = {key}", fields="comment", expand="changelog", json_result=True)
        [issue] = found["issues"]
        assert (issue["changelog"]["total"], len(issue["changelog"]["histories"])) == (120, 40)
        with pytest.raises(JIRAError) as missing:
            dc._get_json(f"issue/{key}/changelog")
        assert missing.value.status_code == 404
        dc.close()
        assert sb.spec_violations == []


def test_enhanced_search_on_cloud(sandbox: JiraSandbox, client: JIRA) -> None:
    old = sandbox.create_issue("Old printer question", created=START - timedelta(days=3), labels=["printer"])
    sandbox.create_issue("Closed long ago", created=START - timedelta(days=9),
                         history=[(START - timedelta(days=8), "Resolved"), (START - timedelta(days=7), "Closed")])
    recent = sandbox.create_issue("Checkout down", description="payment gateway timeout",
                                  created=START - timedelta(minutes=3), priority="Highest")

    def keys(jql: str, **kwargs: Any) -> list[str]:
        return [i.key for i in client.enhanced_search_issues(jql, **kwargs)]

    assert keys("updated >= -5m") == [recent]
    assert keys('updated >= "2026-11-17 08:59" ORDER BY updated ASC') == [old, recent]
    assert keys("project = SUP AND statusCategory != Done ORDER BY updated DESC") == [recent, old]
    assert keys("resolution = Unresolved AND labels = printer") == [old]
    assert keys('text ~ "gateway"') == [recent]
    assert keys(f"key = {recent}") == [recent]

    first = client.enhanced_search_issues("project = SUP ORDER BY created ASC", maxResults=2, json_result=True)
    assert [i["id"] for i in first["issues"]] == ["10001", "10000"] and first["isLast"] is False
    assert "fields" in first["issues"][0]  # the client asks for *all
    rest = client.enhanced_search_issues("project = SUP ORDER BY created ASC", maxResults=2, json_result=True,
                                         nextPageToken=first["nextPageToken"])
    assert [i["key"] for i in rest["issues"]] == [recent] and rest["isLast"] is True
    assert "nextPageToken" not in rest

    with pytest.raises(JIRAError) as unsupported:
        client.enhanced_search_issues("project = SUP OR labels = x")
    assert unsupported.value.status_code == 400
    assert unsupported.value.response.json()["errorMessages"][0].startswith("Error in the JQL Query:")
    with pytest.raises(JIRAError) as unknown_key:
        client.enhanced_search_issues("key = SUP-404")
    assert unknown_key.value.status_code == 400


def test_v3_search_returns_ids_by_default_and_adf_bodies(sandbox: JiraSandbox) -> None:
    sandbox.create_issue("Export broken", description="line one\nline two")
    auth = (sandbox.email, sandbox.api_token)
    bare = requests.post(f"{sandbox.base_url}/rest/api/3/search/jql", json={"jql": "project = SUP"}, auth=auth,
                         timeout=5)
    assert bare.status_code == 200
    assert set(bare.json()["issues"][0]) == {"expand", "id", "self", "key"}
    rich = requests.get(f"{sandbox.base_url}/rest/api/3/search/jql", auth=auth, timeout=5,
                        params={"jql": "project = SUP", "fields": "description"})
    description = rich.json()["issues"][0]["fields"]["description"]
    assert description["type"] == "doc"
    assert [p["content"][0]["text"] for p in description["content"]] == ["line one", "line two"]


def test_data_center_search_and_pat() -> None:
    with JiraSandbox(deployment="Server", clock=Clock(START), validate_responses=True) as sb:
        for n in range(3):
            sb.create_issue(f"Ticket {n}", created=START + timedelta(minutes=n))
        jira = JIRA(server=sb.base_url, token_auth=sb.pat, get_server_info=True, max_retries=0)
        try:
            assert jira.deploymentType == "Server"
            page = jira.search_issues("project = SUP ORDER BY created DESC", startAt=1, maxResults=1)
            assert [i.key for i in page] == ["SUP-2"]
            assert page.total == 3 and page.startAt == 1
            assert [i.key for i in jira.search_issues("project = SUP", maxResults=False)] == ["SUP-3", "SUP-2", "SUP-1"]
            # Data Center addresses users by username.
            assert jira.issue("SUP-1").fields.reporter.name == "carl"
        finally:
            jira.close()
        assert sb.count(path="/rest/api/2/search", status=200) == 2
        assert sb.spec_violations == []


def test_cloud_rejects_the_removed_search_api(sandbox: JiraSandbox) -> None:
    gone = requests.get(f"{sandbox.base_url}/rest/api/2/search", params={"jql": "project = SUP"},
                        auth=(sandbox.email, sandbox.api_token), timeout=5)
    assert gone.status_code == 410
    assert "/rest/api/3/search/jql" in gone.json()["errorMessages"][0]


def test_missing_issue_is_404(client: JIRA) -> None:
    with pytest.raises(JIRAError) as missing:
        client.issue("SUP-999")
    assert missing.value.status_code == 404
    assert missing.value.response.json() == {
        "errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}


@pytest.mark.parametrize("credentials", [{"basic_auth": ("connector@example.com", "wrong")},
                                         {"token_auth": "wrong-pat"}])
def test_wrong_credentials_are_401(sandbox: JiraSandbox, credentials: dict[str, Any]) -> None:
    with pytest.raises(JIRAError) as denied:
        JIRA(server=sandbox.base_url, get_server_info=True, max_retries=0, **credentials)
    assert denied.value.status_code == 401
    assert denied.value.response.json()["errorMessages"] == [
        "You are not authenticated. Authentication required to perform this operation."]


def test_anonymous_may_read_server_info_only(sandbox: JiraSandbox) -> None:
    assert requests.get(f"{sandbox.base_url}/rest/api/2/serverInfo", timeout=5).json()["deploymentType"] == "Cloud"
    assert requests.get(f"{sandbox.base_url}/rest/api/2/myself", timeout=5).status_code == 401


def test_injected_429_carries_retry_after_and_is_counted(sandbox: JiraSandbox, client: JIRA) -> None:
    key = sandbox.create_issue("Slow API")
    sandbox.reset_calls()
    sandbox.inject(status=429, retry_after=2, times=1, path_prefix="/rest/api/2/issue/")

    with pytest.raises(JIRAError) as limited:
        client.issue(key)
    assert limited.value.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "2"
    assert client.issue(key).key == key  # the fault was used up
    client.fields()  # outside the prefix: never faulted
    assert sandbox.calls == {Call("GET", ISSUE, 429): 1, Call("GET", ISSUE, 200): 1,
                             Call("GET", "/rest/api/2/field", 200): 1}


def test_injected_503_and_slow_responses(sandbox: JiraSandbox, client: JIRA) -> None:
    key = sandbox.create_issue("Flaky")
    sandbox.inject(status=503, times=2, method="PUT")
    for _ in range(2):
        with pytest.raises(JIRAError) as unavailable:
            client.issue(key).update(fields={"summary": "Flaky!"})
        assert unavailable.value.status_code == 503
    sandbox.inject(status=None, delay=0.3, times=1)
    began = time.monotonic()
    assert client.issue(key).fields.summary == "Flaky"  # failed writes changed nothing
    assert time.monotonic() - began >= 0.3


def test_spec_validation_rejects_malformed_requests(sandbox: JiraSandbox) -> None:
    key = sandbox.create_issue("Validate me")
    auth = (sandbox.email, sandbox.api_token)
    url = f"{sandbox.base_url}/rest/api/2/issue/{key}"
    bad_operation = requests.put(url, json={"update": {"labels": [{"append": "x"}]}}, auth=auth, timeout=5)
    assert bad_operation.status_code == 400
    [message] = bad_operation.json()["errorMessages"]
    assert "does not match the Jira REST API" in message and "append" in message
    assert requests.put(url, json={"fields": ["summary"]}, auth=auth, timeout=5).status_code == 400
    bad_query = requests.get(f"{sandbox.base_url}/rest/api/2/search/jql", auth=auth, timeout=5,
                             params={"jql": "project = SUP", "maxResults": "many"})
    assert bad_query.status_code == 400
    assert sandbox.issue(key)["fields"]["labels"] == []


def test_validation_off_leaves_only_the_sandboxs_own_checks() -> None:
    with JiraSandbox(clock=Clock(START), validate=False) as sb:
        key = sb.create_issue("Benchmark mode")
        refused = requests.put(f"{sb.base_url}/rest/api/2/issue/{key}", auth=(sb.email, sb.api_token), timeout=5,
                               json={"update": {"labels": [{"append": "x"}]}})
        assert refused.status_code == 400
        assert refused.json() == {"errorMessages": [], "errors": {
            "labels": "Field 'labels' does not support the operation 'append'."}}


class Receiver:
    """A tiny webhook receiver: records raw bodies and headers, fails on request."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.fail_first = fail_first
        self.server = ThreadedServer(self.app)

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        self.received.append((body, headers))
        status = "500 Internal Server Error" if len(self.received) <= self.fail_first else "200 OK"
        start_response(status, [("Content-Type", "text/plain")])
        return [b""]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.server.start()
    yield r
    r.server.stop()


def test_webhooks_are_signed_and_shaped_like_jira(sandbox: JiraSandbox, client: JIRA, receiver: Receiver) -> None:
    sandbox.set_webhook(f"{receiver.server.base_url}/webhooks/jira", secret="s3cret")
    issue = new_issue(client)
    client.add_comment(issue.key, "Working on it")
    sandbox.clock.advance(timedelta(minutes=1))
    sandbox.set_status(issue.key, "In Progress", author=AGENT)
    assert sandbox.flush_webhooks(timeout=10)

    events = []
    for body, headers in receiver.received:
        expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["X-Hub-Signature"] == f"sha256={expected}"
        events.append(json.loads(body))
    identifiers = {h["X-Atlassian-Webhook-Identifier"] for _, h in receiver.received}
    assert len(identifiers) == len(receiver.received) == 4
    assert [e["webhookEvent"] for e in events] == [
        "jira:issue_created", "jira:issue_updated", "comment_created", "jira:issue_updated"]
    created, commented, comment, moved = events
    assert created["issue"]["key"] == issue.key and created["user"]["accountId"] == "acc-connector"
    assert commented["issue_event_type_name"] == "issue_commented"
    assert comment["comment"]["body"] == "Working on it" and comment["comment"]["jsdPublic"] is True
    assert moved["timestamp"] == int((START + timedelta(minutes=1)).timestamp() * 1000)
    assert moved["user"]["accountId"] == AGENT
    assert moved["changelog"]["items"][0]["toString"] == "In Progress"
    assert moved["issue"]["fields"]["status"]["name"] == "In Progress"


def test_data_center_comment_webhook_names_the_issue_only_by_comment_self() -> None:
    # Commit451/skyhook#152 (Jira 8.13), DefectDojo/django-DefectDojo#3217.
    with JiraSandbox(deployment="Server", clock=Clock(START), deliver_webhooks=False) as sb:
        key = sb.create_issue("Quiet")
        comment_id = sb.add_comment(key, "Any update?")
        issue_id = sb.issue(key)["id"]
        [comment] = [json.loads(d.body) for d in sb.webhook_log if d.event == "comment_created"]
        [updated] = [json.loads(d.body) for d in sb.webhook_log if d.event == "jira:issue_updated"]
        base_url = sb.base_url
    assert set(comment) == {"timestamp", "webhookEvent", "comment"}
    assert comment["comment"]["self"] == f"{base_url}/rest/api/2/issue/{issue_id}/comment/{comment_id}"
    assert comment["comment"]["author"]["name"] == "carl"
    # The issue_updated event of the same comment still carries the issue.
    assert updated["issue"]["key"] == key and updated["issue_event_type_name"] == "issue_commented"


def test_failed_webhook_is_retried_with_the_same_identifier(sandbox: JiraSandbox) -> None:
    flaky = Receiver(fail_first=1)
    flaky.server.start()
    try:
        sandbox.webhooks.backoff = (0.05,)
        sandbox.set_webhook(flaky.server.base_url, secret="s")
        sandbox.create_issue("Retry me")
        assert sandbox.flush_webhooks(timeout=10)
        [delivery] = sandbox.webhook_log
        assert delivery.delivered and delivery.attempts == 2 and delivery.status == 200
        assert [h["X-Atlassian-Webhook-Identifier"] for _, h in flaky.received] == [delivery.identifier] * 2
    finally:
        flaky.server.stop()


def test_webhook_delivery_can_be_turned_off_and_still_captured() -> None:
    with JiraSandbox(clock=Clock(START), webhook_url="http://127.0.0.1:9/never", deliver_webhooks=False) as sb:
        key = sb.create_issue("Quiet")
        sb.add_comment(key, "Any update?")
        assert [d.event for d in sb.webhook_log] == ["jira:issue_created", "jira:issue_updated", "comment_created"]
        assert all(d.url is None and not d.delivered for d in sb.webhook_log)
        assert sb.webhooks.delivered == []


def test_seeded_backdated_ticket_and_human_actors(sandbox: JiraSandbox, client: JIRA) -> None:
    opened = START - timedelta(days=2)
    key = sandbox.create_issue(
        "VPN drops every hour", created=opened, priority="High", components=["Network"],
        fields={"Impact scope": "All remote staff", "Occurred at": opened - timedelta(hours=1),
                "Verification result": "Partly resolved"},
        history=[(opened + timedelta(minutes=20), "In Progress"),
                 (opened + timedelta(hours=1), "Waiting for customer", AGENT)],
    )
    sandbox.add_comment(key, "Here are the logs.", at=opened + timedelta(hours=3))
    sandbox.add_comment(key, "Escalating to network team", author=AGENT, public=False,
                        at=opened + timedelta(hours=4))
    sandbox.set_fields(key, {"Steps to reproduce": "Connect, wait 60 min"}, at=opened + timedelta(hours=5))

    issue = client.issue(key, expand="changelog")
    fields = issue.raw["fields"]
    assert fields["created"] == "2026-11-18T09:00:00.000+0800"
    assert fields["updated"] == "2026-11-18T14:00:00.000+0800"
    assert fields["customfield_10050"] == "All remote staff"
    assert fields["customfield_10053"] == "2026-11-18T08:00:00.000+0800"
    assert fields["customfield_10056"]["value"] == "Partly resolved"
    assert fields["components"][0]["name"] == "Network"
    assert [(c.author.accountId, c.raw["jsdPublic"]) for c in issue.fields.comment.comments] == [
        (CUSTOMER, True), (AGENT, False)]
    assert [(h["created"], h["items"][0]["toString"]) for h in issue.raw["changelog"]["histories"]] == [
        ("2026-11-18T09:20:00.000+0800", "In Progress"),
        ("2026-11-18T10:00:00.000+0800", "Waiting for customer"),
        ("2026-11-18T14:00:00.000+0800", "Connect, wait 60 min"),
    ]
    assert [i.key for i in client.enhanced_search_issues('updated < "2026-11-19 00:00"')] == [key]


@pytest.mark.parametrize("jql", [
    "project = SUP OR key = SUP-1", "updated >= startOfDay()", "(project = SUP)", "priority was High",
    "assignee = currentUser()", "sprint = 5", "updated >= yesterday", "project = SUP ORDER BY rank",
])
def test_unsupported_jql_is_refused(jql: str) -> None:
    with pytest.raises(jira_jql.JqlError, match="Error in the JQL Query"):
        jira_jql.parse(jql, now=START, tz=UTC)


def test_labels_not_equal_skips_unlabelled_issues_like_jira(sandbox: JiraSandbox) -> None:
    labelled = sandbox.create_issue("a", labels=["x"])
    other = sandbox.create_issue("b", labels=["y"])
    sandbox.create_issue("c")
    facts = [sandbox.store.facts(i) for i in sandbox.store.issues.values()]

    def keys(jql: str) -> list[str]:
        return [f.key for f in jira_jql.search(jira_jql.parse(jql, now=START, tz=UTC), facts)]

    assert keys("labels != x") == [other]
    assert keys("labels = x") == [labelled]
    assert keys("labels is EMPTY") == ["SUP-3"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_runs_standalone() -> None:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "connector.sandbox.jira", "--port", str(port),
                                "--no-validate"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                info = requests.get(f"http://127.0.0.1:{port}/rest/api/2/serverInfo", timeout=1).json()
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        assert info["baseUrl"] == f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.communicate(timeout=10)
