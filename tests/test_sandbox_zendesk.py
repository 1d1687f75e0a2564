"""End-to-end tests of the Zendesk sandbox, driven through the real `zenpy` client over HTTP.

The sandbox stands in for Zendesk in the demo and in the connector's end-to-end tests, so it
is only worth having if zenpy accepts its answers as Zendesk's (objects, generators that
follow its pagination, exceptions for its errors) and if it refuses what Zendesk refuses.
Where zenpy hides the wire (headers, error bodies, page links) the same authenticated
zenpy session reads the raw response. The last tests feed what the sandbox serves to the
connector's own Zendesk parser and webhook signature check, the two consumers that matter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from zenpy import Zenpy
from zenpy.lib.api import BaseApi
from zenpy.lib.api_objects import Comment, CustomField, Ticket
from zenpy.lib.exception import APIException, RecordNotFoundException

from connector.model import AuthorRole, Status
from connector.platforms.mapping import default_zendesk_mapping
from connector.platforms.zendesk.ticket import parse_zendesk_ticket
from connector.sandbox.server import Clock, ThreadedServer
from connector.sandbox.zendesk import AGENT, COLLEAGUE, CONNECTOR, CUSTOMER, GROUPS, L2_AGENT, ZendeskSandbox
from webhooks.signatures import verify_zendesk_signature

START = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)  # 09:00 in Asia/Shanghai
TICKET = "/api/v2/tickets/{ticket_id}.json"
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "zendesk")


def zenpy_client(base_url: str, email: str, token: str, **kwargs: Any) -> Zenpy:
    """A zenpy client for any base URL, e.g. http://127.0.0.1:PORT.

    zenpy builds URLs as {protocol}://{subdomain}.{domain}/api/v2 with protocol "https" on
    every API object, so the host is split at its first dot and the scheme set on each API
    object. The cache is off: zenpy would otherwise answer repeated reads from memory.
    """
    parts = urlsplit(base_url)
    subdomain, _, domain = parts.netloc.partition(".")
    client = Zenpy(subdomain=subdomain, domain=domain, email=email, token=token, disable_cache=True, **kwargs)
    seen: set[int] = set()

    def set_scheme(owner: object) -> None:
        for value in vars(owner).values():
            if isinstance(value, BaseApi) and id(value) not in seen:
                seen.add(id(value))
                value.protocol = parts.scheme
                set_scheme(value)

    set_scheme(client)
    return client


@pytest.fixture
def sandbox() -> Iterator[ZendeskSandbox]:
    with ZendeskSandbox(clock=Clock(START)) as sb:
        yield sb


@pytest.fixture
def client(sandbox: ZendeskSandbox) -> Zenpy:
    return zenpy_client(sandbox.base_url, sandbox.email, sandbox.api_token)


def raw(client: Zenpy, sandbox: ZendeskSandbox, method: str, path: str, **kwargs: Any) -> requests.Response:
    """The same authenticated session zenpy uses, for what zenpy does not expose."""
    return client.tickets.session.request(method, f"{sandbox.base_url}{path}", timeout=10, **kwargs)


def test_zenpy_creates_and_reads_tickets_in_zendesk_shapes(sandbox: ZendeskSandbox, client: Zenpy) -> None:
    category, occurred = sandbox.field_id("Category"), sandbox.field_id("Occurred at")
    created = client.tickets.create(Ticket(
        subject="VPN drops every 10 minutes", comment=Comment(body="Since 08:50 the VPN drops."),
        requester_id=CUSTOMER, priority="high", type="incident", group_id=GROUPS["L1"], tags=["vpn"],
        custom_fields=[CustomField(id=category, value="network"), CustomField(id=occurred, value="2026-11-20")],
    ))
    assert created.ticket.id == 1 and created.ticket.status == "new"
    assert [(e["type"], e.get("field_name")) for e in created.audit.events] == [
        ("Comment", None), ("Create", "subject"), ("Create", "status"), ("Create", "priority"), ("Create", "type"),
        ("Create", "requester_id"), ("Create", "group_id"), ("Create", "tags"),
        ("Create", str(category)), ("Create", str(occurred))]

    ticket = client.tickets(id=1)
    assert (ticket.subject, ticket.description, ticket.priority) == (
        "VPN drops every 10 minutes", "Since 08:50 the VPN drops.", "high")
    assert ticket.created_at == ticket.updated_at == "2026-11-20T01:00:00Z"
    # A dropdown's value is also a tag on the ticket.
    assert ticket.tags == ["network", "vpn"]

    shown = raw(client, sandbox, "GET", "/api/v2/tickets/1.json", params={"include": "users,groups"})
    assert shown.status_code == 200 and shown.headers["Content-Type"].startswith("application/json")
    body = shown.json()
    assert body["ticket"]["url"] == f"{sandbox.base_url}/api/v2/tickets/1.json"
    assert {"id": category, "value": "network"} in body["ticket"]["custom_fields"]
    assert body["ticket"]["fields"] == body["ticket"]["custom_fields"]
    assert {u["id"]: u["role"] for u in body["users"]} == {CUSTOMER: "end-user", CONNECTOR: "admin"}
    assert [g["name"] for g in body["groups"]] == ["L1"]
    me = client.users.me()
    assert (me.id, me.email, me.role) == (CONNECTOR, sandbox.email, "admin")


def test_one_update_with_comment_tags_and_fields_records_one_audit(sandbox: ZendeskSandbox, client: Zenpy) -> None:
    ticket_id = sandbox.create_ticket("Export fails", "Nightly export fails.", priority="normal",
                                      custom_fields={"Category": "Network"}, created=START)
    root_cause, verification = sandbox.field_id("Root cause"), sandbox.field_id("Verification result")
    sandbox.clock.advance(timedelta(minutes=5))
    ticket = client.tickets(id=ticket_id)
    ticket.status = "pending"
    ticket.priority = "high"
    ticket.comment = Comment(body="To continue we need the exact error message.", public=True)
    # Update Ticket replaces the tag list: the whole list is sent.
    ticket.tags = [*ticket.tags, "connector-intake-requested"]
    ticket.custom_fields = [CustomField(id=root_cause, value="Heap too small"),
                            CustomField(id=verification, value="not_resolved"),
                            CustomField(id=sandbox.field_id("Category"), value="outage")]
    result = client.tickets.update(ticket)

    events = result.audit.events
    assert result.audit.author_id == CONNECTOR and result.audit.created_at == "2026-11-20T01:05:00Z"
    assert events[0]["type"] == "Comment" and events[0]["public"] is True and events[0]["author_id"] == CONNECTOR
    assert events[0]["plain_body"] == "To continue we need the exact error message."
    assert events[0]["attachments"] == [] and events[0]["audit_id"] == result.audit.id
    changes = {e["field_name"]: (e["previous_value"], e["value"]) for e in events[1:]}
    assert changes == {
        "status": ("new", "pending"),
        "priority": ("normal", "high"),
        # The new dropdown option swaps its tag for the old one's.
        "tags": (["network"], ["connector-intake-requested", "not_resolved", "outage"]),
        str(root_cause): (None, "Heap too small"),
        str(verification): (None, "not_resolved"),
        str(sandbox.field_id("Category")): ("network", "outage"),
    }
    after = client.tickets(id=ticket_id)
    assert after.updated_at == "2026-11-20T01:05:00Z" and after.status == "pending"
    assert len(list(client.tickets.comments(ticket=ticket_id))) == 2


def test_update_that_changes_nothing_leaves_no_audit(sandbox: ZendeskSandbox, client: Zenpy) -> None:
    ticket_id = sandbox.create_ticket("Quiet", "Nothing to do", status="open", created=START)
    sandbox.clock.advance(timedelta(hours=1))
    response = raw(client, sandbox, "PUT", f"/api/v2/tickets/{ticket_id}.json",
                   json={"ticket": {"status": "open", "additional_tags": []}})
    assert response.status_code == 200 and response.json()["audit"]["events"] == []
    assert len(sandbox.audits(ticket_id)) == 1
    assert sandbox.ticket(ticket_id)["updated_at"] == "2026-11-20T01:00:00Z"


def test_audits_and_comments_paginate_like_zendesk(sandbox: ZendeskSandbox, client: Zenpy) -> None:
    ticket_id = sandbox.create_ticket("Chatty", "First words", created=START)
    for minute in range(1, 6):
        sandbox.add_comment(ticket_id, f"reply {minute}", author=AGENT if minute % 2 else CUSTOMER,
                            at=START + timedelta(minutes=minute))
    every = [a.id for a in client.tickets.audits(ticket=ticket_id)]
    assert len(every) == 6

    seen, pages = [], 0
    url: str | None = f"{sandbox.base_url}/api/v2/tickets/{ticket_id}/audits.json?page[size]=4&include=users"
    while url:
        page = client.tickets.session.get(url, timeout=10).json()
        pages += 1
        seen += [a["id"] for a in page["audits"]]
        assert {u["id"] for u in page["users"]} == {CUSTOMER, AGENT}
        url = page["links"]["next"] if page["meta"]["has_more"] else None
    assert (seen, pages) == (every, 2)

    comments = raw(client, sandbox, "GET", f"/api/v2/tickets/{ticket_id}/comments.json",
                   params={"per_page": 4, "page": 2}).json()
    assert [c["body"] for c in comments["comments"]] == ["reply 4", "reply 5"]
    assert comments["count"] == 6 and comments["next_page"] is None and "page=1" in comments["previous_page"]
    assert comments["comments"][0]["created_at"] == "2026-11-20T01:04:00Z"

    refused = raw(client, sandbox, "GET", f"/api/v2/tickets/{ticket_id}/audits.json",
                  params={"page[after]": "not-a-cursor"})
    assert refused.status_code == 400 and refused.json()["error"] == "InvalidPaginationParameter"


def test_ticket_fields_hold_what_the_mapping_names(client: Zenpy) -> None:
    fields = list(client.ticket_fields())
    by_title = {f.title: f for f in fields}
    mapping = default_zendesk_mapping()
    for title in [mapping.category_field, *mapping.fields.values()]:
        if title not in ("description", "satisfaction_rating"):
            assert title in by_title, title
    assert {by_title[t].type for t in ("Environment", "Root cause", "Occurred at", "Category")} == {
        "text", "textarea", "date", "tagger"}
    assert [o.value for o in by_title["Verification result"].custom_field_options] == [
        "resolved", "partly_resolved", "not_resolved"]
    assert "network" in [o.value for o in by_title["Category"].custom_field_options]
    assert by_title["Status"].type == "status" and by_title["Group"].type == "group"


def test_search_filters_and_pages_like_zendesk(sandbox: ZendeskSandbox, client: Zenpy) -> None:
    for n in range(103):
        sandbox.create_ticket(f"Printer {n}", "It jams", created=START + timedelta(minutes=n), tags=["printer"])
    pending = sandbox.create_ticket("Billing question", "Invoice is wrong", status="pending",
                                    group="billing", created=START + timedelta(hours=3))
    on_hold = sandbox.create_ticket("Carrier outage", "Line down", status="hold", assignee=L2_AGENT,
                                    created=START + timedelta(hours=3))
    solved = sandbox.create_ticket("Solved one", "Fixed", status="solved", created=START + timedelta(hours=4))

    everything_open = list(client.search("status<solved", type="ticket"))
    assert len(everything_open) == 105 and solved not in {t.id for t in everything_open}

    def ids(query: str, **params: Any) -> list[int]:
        response = raw(client, sandbox, "GET", "/api/v2/search.json", params={"query": query, **params})
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["results"]]

    assert ids("type:ticket status:pending status:hold") == [pending, on_hold]
    assert ids("type:ticket updated>2026-11-20T04:00:00Z") == [solved]
    assert ids("type:ticket updated>=2026-11-20T04:00:00Z") == [pending, on_hold, solved]
    assert ids("updated>2026-11-19 -tags:printer") == [pending, on_hold, solved]
    assert ids("updated>2026-11-20") == []  # a date means the whole day
    assert ids("group:billing") == [pending] and ids(f"assignee:{L2_AGENT}") == [on_hold]
    assert ids('"carrier outage" status>=open') == [on_hold]
    assert ids("tags:printer status<=new", per_page=2, page=51) == [101, 102]
    assert ids("printer order_by:created sort:desc", per_page=1) == [103]

    first = raw(client, sandbox, "GET", "/api/v2/search.json",
                params={"query": "type:ticket tags:printer", "per_page": 50}).json()
    assert first["count"] == 103 and first["previous_page"] is None
    second = client.tickets.session.get(first["next_page"], timeout=10).json()
    assert [r["id"] for r in second["results"]][:1] == [51] and second["results"][0]["result_type"] == "ticket"

    # Past 1,000 results only the export endpoint goes on, in cursor pages.
    beyond = raw(client, sandbox, "GET", "/api/v2/search.json",
                 params={"query": "tags:printer", "per_page": 100, "page": 11})
    assert beyond.status_code == 422 and beyond.json()["error"] == "invalid"
    exported: list[int] = []
    url: str | None = f"{sandbox.base_url}/api/v2/search/export.json?query=tags:printer&filter[type]=ticket"
    url += "&page[size]=40"
    while url:
        chunk = client.tickets.session.get(url, timeout=10).json()
        exported += [r["id"] for r in chunk["results"]]
        url = chunk["links"]["next"] if chunk["meta"]["has_more"] else None
    assert exported == list(range(1, 104))

    with pytest.raises(APIException) as refused:
        list(client.search("brand:acme", type="ticket"))
    assert refused.value.response.status_code == 400
    assert refused.value.response.json()["error"]["title"] == "Invalid search"


def test_incremental_cursor_export_resumes_after_the_last_change(sandbox: ZendeskSandbox, client: Zenpy) -> None:
    first = sandbox.create_ticket("One", "1", created=START)
    second = sandbox.create_ticket("Two", "2", created=START + timedelta(minutes=1))
    third = sandbox.create_ticket("Three", "3", created=START + timedelta(minutes=2))
    sandbox.set_status(first, "open", at=START + timedelta(minutes=3))
    sandbox.clock.set(START + timedelta(hours=1))

    assert [t.id for t in client.tickets.incremental(start_time=int(START.timestamp()))] == [second, third, first]

    page = raw(client, sandbox, "GET", "/api/v2/incremental/tickets/cursor.json",
               params={"start_time": int(START.timestamp()), "per_page": 2}).json()
    assert [t["id"] for t in page["tickets"]] == [second, third] and page["end_of_stream"] is False
    rest = client.tickets.session.get(page["after_url"], timeout=10).json()
    assert [t["id"] for t in rest["tickets"]] == [first] and rest["end_of_stream"] is True
    assert rest["before_cursor"] is None

    # Polling later with the stored cursor yields only what changed since.
    sandbox.add_comment(second, "any news?", at=START + timedelta(hours=2))
    later = [t.id for t in client.tickets.incremental(cursor=rest["after_cursor"])]
    assert later == [second]

    future = raw(client, sandbox, "GET", "/api/v2/incremental/tickets/cursor.json",
                 params={"start_time": int((START + timedelta(days=2)).timestamp())})
    assert future.status_code == 400


def test_unknown_ticket_is_404_and_wrong_token_is_401(sandbox: ZendeskSandbox, client: Zenpy) -> None:
    with pytest.raises(RecordNotFoundException) as missing:
        client.tickets(id=4040)
    assert missing.value.response.status_code == 404
    assert missing.value.response.json() == {"error": "RecordNotFound", "description": "Not found"}

    intruder = zenpy_client(sandbox.base_url, sandbox.email, "wrong-token")
    with pytest.raises(APIException) as denied:
        intruder.users.me()
    assert denied.value.response.status_code == 401
    assert denied.value.response.json() == {"error": "Couldn't authenticate you"}
    # The token, not the password, is the only way in.
    as_password = requests.get(f"{sandbox.base_url}/api/v2/users/me.json", timeout=10,
                               auth=(sandbox.email, sandbox.api_token))
    assert as_password.status_code == 401


def test_safe_update_with_a_stale_stamp_is_a_conflict(sandbox: ZendeskSandbox, client: Zenpy) -> None:
    ticket_id = sandbox.create_ticket("Race", "Two writers", created=START)
    stale = client.tickets(id=ticket_id).updated_at
    sandbox.clock.advance(timedelta(minutes=2))
    sandbox.set_fields(ticket_id, {"priority": "urgent"}, author=AGENT)

    conflict = raw(client, sandbox, "PUT", f"/api/v2/tickets/{ticket_id}.json", json={"ticket": {
        "status": "solved", "safe_update": True, "updated_stamp": stale}})
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "UpdateConflict" and "outdated" in conflict.json()["description"]
    assert sandbox.ticket(ticket_id)["status"] == "new"

    fresh = client.tickets(id=ticket_id)
    fresh.status = "open"
    fresh.safe_update = True
    fresh.updated_stamp = fresh.updated_at
    assert client.tickets.update(fresh).ticket.status == "open"


@pytest.mark.parametrize(("update", "attribute"), [
    ({"custom_fields": [{"id": 999999, "value": "x"}]}, "base"),
    ({"custom_fields": [{"id": 360051234511, "value": "2026-11-20T10:00:00Z"}]}, "base"),  # a date field
    ({"custom_fields": [{"id": 360051234501, "value": "printers"}]}, "base"),  # not a Category option
    ({"status": "resolved"}, "status"),
    ({"priority": "P1"}, "priority"),
    ({"assignee_id": CUSTOMER}, "assignee"),
    ({"status": "open", "comment": {"body": "   "}}, "comment"),
])
def test_invalid_writes_are_422_and_change_nothing(sandbox: ZendeskSandbox, client: Zenpy,
                                                   update: dict[str, Any], attribute: str) -> None:
    ticket_id = sandbox.create_ticket("Validate me", "Body", created=START)
    before = sandbox.ticket(ticket_id)
    response = raw(client, sandbox, "PUT", f"/api/v2/tickets/{ticket_id}.json",
                   json={"ticket": {"tags": ["would-be-added"], **update}})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "RecordInvalid" and body["description"] == "Record validation errors"
    assert list(body["details"]) == [attribute]
    assert sandbox.ticket(ticket_id) == before and len(sandbox.audits(ticket_id)) == 1


def test_bad_custom_field_raises_through_zenpy_with_zendesk_details(sandbox: ZendeskSandbox, client: Zenpy) -> None:
    ticket_id = sandbox.create_ticket("Dated", "Body", created=START)
    ticket = client.tickets(id=ticket_id)
    ticket.custom_fields = [CustomField(id=sandbox.field_id("First response due"), value="2026-11-20T10:00:00Z")]
    with pytest.raises(APIException) as invalid:
        client.tickets.update(ticket)
    [detail] = invalid.value.response.json()["details"]["base"]
    assert detail["ticket_field_type"] == "FieldDate" and detail["ticket_field_id"] == sandbox.field_id(
        "First response due")


def test_closed_ticket_cannot_be_updated(sandbox: ZendeskSandbox, client: Zenpy) -> None:
    ticket_id = sandbox.create_ticket("Done", "Body", created=START,
                                      history=[(START + timedelta(hours=1), "solved"),
                                               (START + timedelta(days=4), "closed")])
    response = raw(client, sandbox, "PUT", f"/api/v2/tickets/{ticket_id}.json",
                   json={"ticket": {"comment": {"body": "Follow-up: all good?"}}})
    assert response.status_code == 422
    assert response.json()["details"]["status"][0]["description"] == "Status: closed prevents ticket update"


def test_injected_faults_and_zenpy_honouring_retry_after(sandbox: ZendeskSandbox, client: Zenpy) -> None:
    ticket_id = sandbox.create_ticket("Busy", "Body", created=START)
    sandbox.inject(status=429, retry_after=1, times=2, path_prefix="/api/v2/tickets/")
    limited = raw(client, sandbox, "GET", f"/api/v2/tickets/{ticket_id}.json")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert limited.json()["error"] == "APIRateLimitExceeded"

    began = time.monotonic()
    assert client.tickets(id=ticket_id).id == ticket_id  # zenpy sleeps Retry-After, then retries
    assert time.monotonic() - began >= 1.0
    assert sandbox.count("GET", TICKET, 429) == 2 and sandbox.count("GET", TICKET, 200) == 1

    sandbox.inject(status=503, times=1, method="PUT")
    with pytest.raises(APIException) as unavailable:
        client.tickets.update(Ticket(id=ticket_id, status="open"))
    assert unavailable.value.response.status_code == 503
    assert sandbox.ticket(ticket_id)["status"] == "new"

    sandbox.inject(status=None, delay=0.3, times=1)
    began = time.monotonic()
    assert client.users.me().id == CONNECTOR
    assert time.monotonic() - began >= 0.3
    assert sandbox._faults.pending == []


def test_more_than_30_updates_to_one_ticket_in_10_minutes_is_429(sandbox: ZendeskSandbox, client: Zenpy) -> None:
    busy = sandbox.create_ticket("Hot", "Body", created=START)
    other = sandbox.create_ticket("Calm", "Body", created=START)

    def tag(ticket_id: int, n: int) -> requests.Response:
        return raw(client, sandbox, "PUT", f"/api/v2/tickets/{ticket_id}.json",
                   json={"ticket": {"tags": [f"t{n}"]}})

    for n in range(30):
        assert tag(busy, n).status_code == 200
        if n == 9:
            sandbox.clock.advance(timedelta(minutes=4))
    refused = tag(busy, 30)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "360"
    assert "t30" not in sandbox.ticket(busy)["tags"]
    assert tag(other, 0).status_code == 200

    sandbox.clock.advance(timedelta(minutes=6))  # the first ten updates leave the window
    assert tag(busy, 31).status_code == 200
    assert sandbox.count("PUT", TICKET, 429) == 1 and sandbox.count("PUT", TICKET, 200) == 32


class Receiver:
    """A tiny webhook receiver that records raw bodies and headers."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.server = ThreadedServer(self.app)

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        self.received.append((body, headers))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.server.start()
    yield r
    r.server.stop()


def test_webhooks_are_signed_and_shaped_like_zendesk_event_webhooks(sandbox: ZendeskSandbox, client: Zenpy,
                                                                    receiver: Receiver) -> None:
    sandbox.set_webhook(f"{receiver.server.base_url}/webhooks/zendesk", secret="zd-s3cret")
    ticket_id = sandbox.create_ticket("Webhook me", "Body", priority="normal", created=START)
    sandbox.add_comment(ticket_id, "More detail", author=CUSTOMER, at=START + timedelta(minutes=1))
    sandbox.clock.set(START + timedelta(minutes=2))
    ticket = client.tickets(id=ticket_id)
    ticket.status = "open"
    ticket.priority = "urgent"
    ticket.tags = [*ticket.tags, "escalated"]
    client.tickets.update(ticket)
    assert sandbox.flush_webhooks(timeout=10)

    events = []
    for body, headers in receiver.received:
        timestamp = headers["X-Zendesk-Webhook-Signature-Timestamp"]
        expected = base64.b64encode(hmac.new(b"zd-s3cret", timestamp.encode() + body, hashlib.sha256).digest())
        assert headers["X-Zendesk-Webhook-Signature"] == expected.decode()
        assert verify_zendesk_signature(["zd-s3cret"], body, headers["X-Zendesk-Webhook-Signature"], timestamp)
        assert not verify_zendesk_signature(["other"], body, headers["X-Zendesk-Webhook-Signature"], timestamp)
        events.append(json.loads(body))
    assert [e["type"].removeprefix("zen:event-type:ticket.") for e in events] == [
        "created", "comment_added", "status_changed", "priority_changed", "tags_changed"]

    with open(os.path.join(FIXTURES, "event_ticket_status_changed.json"), encoding="utf-8") as handle:
        captured = json.load(handle)
    created, commented, moved, raised, tagged = events
    assert set(moved) == set(captured) and set(moved["detail"]) == set(captured["detail"])
    assert moved["subject"] == f"zen:ticket:{ticket_id}" and moved["detail"]["id"] == str(ticket_id)
    assert moved["event"] == {"current": "OPEN", "previous": "NEW"}
    assert moved["time"].startswith("2026-11-20T01:02:00.") and moved["detail"]["actor_id"] == str(CONNECTOR)
    assert created["event"] == {} and created["time"].startswith("2026-11-20T01:00:00.")
    assert commented["event"]["comment"]["body"] == "More detail"
    assert commented["event"]["comment"]["author"] == {"id": str(CUSTOMER), "is_staff": False,
                                                       "name": "Carl Customer"}
    assert raised["event"] == {"current": "URGENT", "previous": "NORMAL"}
    assert tagged["event"] == {"tags_added": ["escalated"], "tags_removed": []}
    assert len({e["id"] for e in events}) == 5


def test_webhooks_can_be_off_or_filtered_and_are_still_captured() -> None:
    with ZendeskSandbox(clock=Clock(START), webhook_url="http://127.0.0.1:9/never", deliver_webhooks=False,
                        webhook_events={"zen:event-type:ticket.comment_added"}) as sb:
        ticket_id = sb.create_ticket("Quiet", "Body")
        sb.add_comment(ticket_id, "Any update?")
        sb.set_status(ticket_id, "open")
        assert [d.event for d in sb.webhook_log] == ["zen:event-type:ticket.comment_added"]
        assert all(d.url is None and not d.delivered for d in sb.webhook_log)
        assert "X-Zendesk-Webhook-Signature" not in sb.webhook_log[0].headers  # no secret configured


def test_calls_are_counted_by_route_and_status(sandbox: ZendeskSandbox, client: Zenpy) -> None:
    ticket_id = sandbox.create_ticket("Count me", "Body", created=START)
    sandbox.reset_calls()
    client.tickets(id=ticket_id)
    client.tickets(id=ticket_id)
    list(client.tickets.audits(ticket=ticket_id))
    client.tickets.update(Ticket(id=ticket_id, status="open"))
    with pytest.raises(RecordNotFoundException):
        client.tickets(id=ticket_id + 1)
    assert sandbox.count("GET", TICKET, 200) == 2 and sandbox.count("GET", TICKET, 404) == 1
    assert sandbox.count("GET", "/api/v2/tickets/{ticket_id}/audits.json") == 1
    assert sandbox.count("PUT") == 1 and sandbox.count() == 5
    sandbox.reset_calls()
    assert sandbox.calls == {}


def test_back_dated_ticket_reads_back_through_the_connector_parser(sandbox: ZendeskSandbox, client: Zenpy) -> None:
    ticket_id = sandbox.create_ticket(
        "Data export fails", "The nightly export fails since the upgrade.", priority="high", group="L1",
        custom_fields={"Category": "Network", "Impact scope": "All regions", "Occurred at": START},
        created=START,
        history=[(START + timedelta(hours=1), "open", AGENT), (START + timedelta(hours=2), "pending", AGENT)],
    )
    sandbox.add_comment(ticket_id, "Looking at the job logs.", author=AGENT, public=False,
                        at=START + timedelta(hours=1, minutes=5))
    # The requester's answer reopens the pending ticket, as Zendesk does.
    sandbox.add_comment(ticket_id, "Windows Server 2022, OutOfMemoryError", author=COLLEAGUE,
                        at=START + timedelta(hours=3))
    sandbox.clock.set(START + timedelta(hours=4))
    ticket = client.tickets(id=ticket_id)
    ticket.comment = Comment(body="Thanks, escalating to L2.", public=True)
    ticket.group_id = GROUPS["L2"]
    client.tickets.update(ticket)

    shown = raw(client, sandbox, "GET", f"/api/v2/tickets/{ticket_id}.json", params={"include": "users"}).json()
    audits = raw(client, sandbox, "GET", f"/api/v2/tickets/{ticket_id}/audits.json",
                 params={"include": "users"}).json()
    fields = raw(client, sandbox, "GET", "/api/v2/ticket_fields.json").json()["ticket_fields"]
    mapping = default_zendesk_mapping()
    mapping.connector_account = sandbox.email
    mapping.groups = {"L1": str(GROUPS["L1"]), "L2": str(GROUPS["L2"])}
    parsed = parse_zendesk_ticket(shown["ticket"], mapping, audits=audits["audits"], users=audits["users"],
                                  ticket_fields=fields, base_url=sandbox.base_url)

    assert [(c.at - START, c.to_status) for c in parsed.status_history] == [
        (timedelta(0), Status.NEW), (timedelta(hours=1), Status.IN_PROGRESS),
        (timedelta(hours=2), Status.WAITING_FOR_CUSTOMER), (timedelta(hours=3), Status.IN_PROGRESS)]
    assert [(c.author_role, c.public, c.body) for c in parsed.comments] == [
        (AuthorRole.AGENT, False, "Looking at the job logs."),
        (AuthorRole.REQUESTER, True, "Windows Server 2022, OutOfMemoryError"),
        (AuthorRole.CONNECTOR, True, "Thanks, escalating to L2.")]
    assert (parsed.status, parsed.priority, parsed.category, parsed.group) == (
        Status.IN_PROGRESS, "P1", "network", "L2")
    assert parsed.fields["impact_scope"] == "All regions" and parsed.fields["occurred_at"] == "2026-11-20"
    assert parsed.created == START and parsed.updated == START + timedelta(hours=4)
    assert parsed.url == f"{sandbox.base_url}/agent/tickets/{ticket_id}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_runs_standalone() -> None:
    port = _free_port()
    env = {**os.environ, "ZENDESK_EMAIL": "bot@example.com", "ZENDESK_TOKEN": "standalone-token"}
    process = subprocess.Popen([sys.executable, "-m", "connector.sandbox.zendesk", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                me = requests.get(f"http://127.0.0.1:{port}/api/v2/users/me.json", timeout=1,
                                  auth=("bot@example.com/token", "standalone-token"))
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        assert me.status_code == 200 and me.json()["user"]["email"] == "bot@example.com"
        assert me.json()["user"]["url"] == f"http://127.0.0.1:{port}/api/v2/users/{CONNECTOR}.json"
    finally:
        process.terminate()
        process.communicate(timeout=10)


# --- what real sites do (issue 10): tags, closing, required fields, roles, search limits -----------


def test_single_ticket_update_replaces_tags_and_ignores_additional_and_remove_tags(sandbox: ZendeskSandbox,
                                                                                  client: Zenpy) -> None:
    # "If you use the Update Ticket endpoint to add one or more tags to a ticket, the new tags
    # replace any existing tags"; additional_tags/remove_tags belong to Update Many Tickets.
    ticket_id = sandbox.create_ticket("Tagged", "Body", tags=["vip", "printer"], created=START)
    ignored = raw(client, sandbox, "PUT", f"/api/v2/tickets/{ticket_id}.json",
                  json={"ticket": {"additional_tags": ["spc-marker"], "remove_tags": ["vip"]}})
    assert ignored.status_code == 200 and ignored.json()["ticket"]["tags"] == ["printer", "vip"]
    assert len(sandbox.audits(ticket_id)) == 1  # nothing changed, no audit

    replaced = raw(client, sandbox, "PUT", f"/api/v2/tickets/{ticket_id}.json",
                   json={"ticket": {"tags": ["spc-marker"]}})
    assert replaced.json()["ticket"]["tags"] == ["spc-marker"]


def test_solved_tickets_close_after_the_configured_delay_and_then_refuse_updates(client: Zenpy) -> None:
    with ZendeskSandbox(clock=Clock(START), auto_close_after=timedelta(hours=2)) as sandbox:
        agent_client = zenpy_client(sandbox.base_url, sandbox.email, sandbox.api_token)
        ticket_id = sandbox.create_ticket("Done", "Body", created=START, history=[(START, "solved")])
        sandbox.clock.advance(timedelta(hours=1, minutes=59))
        assert sandbox.ticket(ticket_id)["status"] == "solved"
        sandbox.clock.advance(timedelta(minutes=1))
        closed = sandbox.ticket(ticket_id)
        assert closed["status"] == "closed" and closed["updated_at"] == "2026-11-20T03:00:00Z"
        assert sandbox.audits(ticket_id)[-1]["author_id"] == -1  # the automation

        refused = raw(agent_client, sandbox, "PUT", f"/api/v2/tickets/{ticket_id}.json",
                      json={"ticket": {"comment": {"body": "Any news?", "public": False}, "tags": ["x"]}})
        assert refused.status_code == 422
        assert refused.json() == {"error": "RecordInvalid", "description": "Record validation errors", "details": {
            "status": [{"description": "Status: closed prevents ticket update", "error": "InvalidValue"}]}}

        # Its continuation: a follow-up ticket, which inherits the tags unless given its own.
        made = raw(agent_client, sandbox, "POST", "/api/v2/tickets.json", json={"ticket": {
            "via_followup_source_id": ticket_id, "comment": {"body": "Revisit due", "public": False}}})
        assert made.status_code == 201
        follow_up = made.json()["ticket"]
        assert follow_up["via"]["source"]["rel"] == "follow_up"
        assert follow_up["via"]["source"]["from"]["ticket_id"] == ticket_id
        assert sandbox.ticket(ticket_id)["followup_ids"] == [follow_up["id"]]
        assert follow_up["tags"] == closed["tags"]


def test_the_default_auto_close_is_four_days(sandbox: ZendeskSandbox) -> None:
    ticket_id = sandbox.create_ticket("Done", "Body", created=START, history=[(START, "solved")])
    sandbox.clock.advance(timedelta(days=3, hours=23))
    assert sandbox.ticket(ticket_id)["status"] == "solved"
    sandbox.clock.advance(timedelta(hours=1))
    assert sandbox.ticket(ticket_id)["status"] == "closed"


def test_fields_required_to_solve_refuse_the_solve_with_zendesks_body(sandbox: ZendeskSandbox, client: Zenpy) -> None:
    sandbox.set_field_required("Root cause")
    ticket_id = sandbox.create_ticket("Needs cause", "Body", status="open", created=START)
    catalogue = {f.title: f for f in client.ticket_fields()}
    assert catalogue["Root cause"].required is True and catalogue["Solution"].required is False

    refused = raw(client, sandbox, "PUT", f"/api/v2/tickets/{ticket_id}.json", json={"ticket": {
        "status": "solved", "comment": {"body": "Fixed", "public": True}, "tags": ["spc-done"]}})
    assert refused.status_code == 422
    assert refused.json()["details"] == {"base": [{
        "description": "Root cause: is required when solving a ticket", "error": None,
        "ticket_field_id": sandbox.field_id("Root cause"), "ticket_field_type": "FieldTextarea"}]}
    assert sandbox.ticket(ticket_id)["status"] == "open" and len(sandbox.audits(ticket_id)) == 1

    root_cause = sandbox.field_id("Root cause")
    solved = raw(client, sandbox, "PUT", f"/api/v2/tickets/{ticket_id}.json", json={"ticket": {
        "status": "solved", "custom_fields": [{"id": root_cause, "value": "cert expired"}]}})
    assert solved.status_code == 200 and solved.json()["ticket"]["status"] == "solved"


def test_incremental_export_is_for_admins_only_and_10_requests_a_minute() -> None:
    now = [0.0]
    with ZendeskSandbox(clock=Clock(START), connector_role="agent") as agent_account:
        agent = zenpy_client(agent_account.base_url, agent_account.email, agent_account.api_token)
        refused = raw(agent, agent_account, "GET", "/api/v2/incremental/tickets/cursor.json",
                      params={"start_time": int(START.timestamp()) - 60})
        assert refused.status_code == 403 and refused.json()["error"]["title"] == "Forbidden"
        assert client_can_search(agent, agent_account)

    with ZendeskSandbox(clock=Clock(START), rate_clock=lambda: now[0]) as admin_account:
        admin = zenpy_client(admin_account.base_url, admin_account.email, admin_account.api_token)
        params = {"start_time": int(START.timestamp()) - 60}
        for _ in range(10):
            assert raw(admin, admin_account, "GET", "/api/v2/incremental/tickets/cursor.json",
                       params=params).status_code == 200
            now[0] += 1
        limited = raw(admin, admin_account, "GET", "/api/v2/incremental/tickets/cursor.json", params=params)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "50"
        now[0] = 60.5
        assert raw(admin, admin_account, "GET", "/api/v2/incremental/tickets/cursor.json",
                   params=params).status_code == 200


def client_can_search(client: Zenpy, sandbox: ZendeskSandbox) -> bool:
    return raw(client, sandbox, "GET", "/api/v2/search.json", params={"query": "type:ticket"}).status_code == 200


def test_search_export_takes_the_type_as_a_filter_only_and_100_requests_a_minute() -> None:
    now = [0.0]
    with ZendeskSandbox(clock=Clock(START), rate_clock=lambda: now[0]) as sandbox:
        client = zenpy_client(sandbox.base_url, sandbox.email, sandbox.api_token)
        older = sandbox.create_ticket("Older", "b", created=START - timedelta(days=1), status="open")
        newer = sandbox.create_ticket("Newer", "b", created=START, status="open")

        def export(query: str, **params: Any) -> requests.Response:
            return raw(client, sandbox, "GET", "/api/v2/search/export.json",
                       params={"query": query, "filter[type]": "ticket", **params})

        typed = export("type:ticket status:open")
        assert typed.status_code == 400 and "filter[type]" in typed.json()["error"]["message"]
        assert export("-type:user status:open").status_code == 400
        assert raw(client, sandbox, "GET", "/api/v2/search/export.json",
                   params={"query": "status:open"}).status_code == 400
        # Ordered only by created_at, whatever the query asks.
        assert [r["id"] for r in export("status:open order_by:updated_at sort:desc").json()["results"]] == [
            older, newer]
        for _ in range(96):
            assert export("status:open").status_code == 200
        assert export("status:open").status_code == 429
