"""The marker trailer of connector comments, and how the Jira parser reads comments' visibility."""

from __future__ import annotations

import pytest

from connector.model import AuthorRole
from connector.platforms.comment_marker import carried_marker, with_marker
from connector.platforms.jira.issue import parse_jira_issue
from connector.platforms.mapping import default_jira_mapping


@pytest.mark.parametrize("marker", ["spc-intake-requested", "spc-sla-breach-first_response", "spc-closure-returned-2"])
def test_trailer_round_trips(marker):
    body = with_marker("Please add the exact error text.\n", marker)
    assert body == f"Please add the exact error text.\n\nref: {marker}"
    assert carried_marker(body) == marker


@pytest.mark.parametrize(("body", "marker"), [
    # Jira Cloud's wiki/ADF conversion may escape underscores and use CRLF.
    ("Hello\r\n\r\nref: spc-sla-breach-first\\_response", "spc-sla-breach-first_response"),
    ("Hello\n\nref:   spc-x  \n\n", "spc-x"),
    ("ref: spc-x", "spc-x"),
    ("Hello\n\nref: spc-x and more", None),  # not the whole line
    ("ref: spc-x\n\nHello", None),           # not the last line
    ("Hello [ref: spc-x]", None),
    ("", None),
    (None, None),
])
def test_only_a_last_line_of_its_own_is_a_marker(body, marker):
    assert carried_marker(body) == marker


def issue(comments):
    return {"id": "10001", "key": "SUP-1", "fields": {
        "created": "2026-11-20T09:00:00.000+0800", "status": {"name": "Waiting for support",
                                                             "statusCategory": {"key": "new"}},
        "reporter": {"name": "carl"}, "comment": {"comments": comments, "total": len(comments)}}}


def comment(cid, author, body="x", **extra):
    return {"id": cid, "author": author, "body": body, "created": "2026-11-20T10:00:00.000+0800", **extra}


def test_data_center_visibility_comes_from_the_property_and_connector_notes_never_count():
    internal = [{"key": "sd.public.comment", "value": {"internal": True}}]
    ticket = parse_jira_issue(issue([
        comment("1", {"name": "alice"}, properties=internal),             # agent's internal note, DC
        comment("2", {"name": "alice"}),                                  # DC, nothing said: public
        comment("3", {"name": "svc-connector"}, "Note\n\nref: spc-a"),    # connector, nothing said
        comment("4", {"name": "carl"}, "ref: spc-b"),                     # the reporter pasting a marker
        comment("5", {"accountId": "a1"}, jsdPublic=False),               # Cloud says it
    ]), default_jira_mapping(), connector_ids=frozenset({"svc-connector"}))
    by_id = {c.id: c for c in ticket.comments}
    assert [by_id[i].public for i in "12345"] == [False, True, False, True, False]
    assert by_id["3"].author_role == AuthorRole.CONNECTOR
    assert ticket.comment_markers == {"spc-a"}
    assert ticket.markers == {"spc-a"}
