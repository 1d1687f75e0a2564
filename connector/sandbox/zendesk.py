"""Sandbox Zendesk: a stateful, in-memory Zendesk Support API v2 for the demo and end-to-end tests.

The connector's Zendesk adapter must be tested through the real `zenpy` client over real
HTTP, against something that answers like Zendesk: the same ticket, audit and comment
shapes, the same 401/404/409/422/429 bodies, cursor and offset pagination, the search
language the sweep uses, the incremental export, the per-ticket update limit, and signed
event webhooks. Mocking zenpy's methods would only test our assumptions about Zendesk.
This sandbox is that something, plus the controls real Zendesk lacks: a settable clock for
back-dated tickets and SLA breaches, fault injection, per-endpoint call counts and
captured webhooks (the machinery is shared with the Jira sandbox, `server.py`).

Typical use::

    with ZendeskSandbox(webhook_url="http://127.0.0.1:8000/webhooks/zendesk", webhook_secret="s") as zd:
        ticket_id = zd.create_ticket("VPN drops", "Every 10 minutes since 08:50",
                                     priority="high", created=datetime(2026, 11, 20, 1, tzinfo=UTC))
        zd.add_comment(ticket_id, "Windows 11, client 5.2", author=CUSTOMER)
        zd.clock.advance(timedelta(hours=5))
        zd.inject(status=429, retry_after=2, times=1, path_prefix="/api/v2/tickets")

The connector's adapter (`connector/platforms/zendesk.py`) builds its URLs from ZENDESK_URL,
so it only needs ``ZENDESK_URL=<sandbox.base_url>``. Plain zenpy builds every URL as
``{protocol}://{subdomain}.{domain}/api/v2`` with protocol https; it reaches
``http://127.0.0.1:PORT`` with ``Zenpy(subdomain="127", domain="0.0.1:PORT", email=...,
token=..., disable_cache=True)`` plus ``protocol = "http"`` on each of its API objects (see
`tests/test_sandbox_zendesk.py::zenpy_client`); without disable_cache it answers repeated
reads of a ticket from memory.

Standalone: ``python -m connector.sandbox.zendesk --port 8082`` (credentials from ZENDESK_EMAIL
and ZENDESK_TOKEN, webhook secret from ZENDESK_WEBHOOK_SECRET, as the connector reads them).

HTTP writes are made by the authenticated (connector) user; the Python methods
`create_ticket`, `add_comment`, `set_status` and `set_fields` act as human agents or
requesters and fire the same webhooks.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from connector.sandbox import zendesk_search
from connector.sandbox.zendesk_admin import (
    CONDITIONAL_TICKET_EVENTS,
    TRIGGER_BODY,
    AccountConfig,
    BusinessRule,
    CustomStatus,
    Webhook,
    auto_close_automation,
)
from connector.sandbox.server import (
    CallLog,
    Clock,
    FaultInjector,
    SandboxControls,
    ThreadedServer,
    WebhookDispatcher,
)
from connector.sandbox.zendesk_store import (
    ACCOUNT_BRAND_ID,
    CUSTOM_STATUS_IDS,
    TICKET_FORM_ID,
    Change,
    FieldChange,
    SandboxGroup,
    SandboxOrganization,
    SandboxUser,
    StoredTicket,
    TicketField,
    ZendeskApiError,
    ZendeskStore,
    iso,
    record_not_found,
)

__all__ = [
    "ZendeskSandbox", "ZendeskApiError", "TicketField", "Clock",
    "CONNECTOR", "AGENT", "L2_AGENT", "LEAD", "CUSTOMER", "COLLEAGUE", "GROUPS", "ALL_WEBHOOK_EVENTS",
]

log = logging.getLogger(__name__)

# User ids of the seeded account (the same ids as tests/responses/zendesk_ticket_with_audits.json).
CONNECTOR = 9019999999901  # the API user the connector authenticates as
AGENT = 9011111111101  # L1 agent
L2_AGENT = 9011111111102
LEAD = 9011111111103  # team lead, the last escalation step
CUSTOMER = 9012345678901  # the usual requester
COLLEAGUE = 9012345678955  # another end-user of the customer's organisation, replies as a CC
GROUPS: dict[str, int] = {"L1": 360001111001, "L2": 360001111002, "network-team": 360001111003,
                          "billing": 360001111004}

EVENT_PREFIX = "zen:event-type:"
ALL_WEBHOOK_EVENTS = frozenset(EVENT_PREFIX + "ticket." + name for name in (
    "created", "status_changed", "priority_changed", "tags_changed", "comment_added",
    "agent_assignment_changed", "group_assignment_changed", "subject_changed", "type_changed",
    "requester_changed", "custom_field_changed",
))
NOT_AUTHENTICATED = {"error": "Couldn't authenticate you"}
FORBIDDEN = {"error": {"title": "Forbidden", "message": "You do not have access to this page. Please contact the "
                                                        "account owner of this help desk for further help."}}
_TYPE_IN_QUERY = re.compile(r"(?<![\w-])-?type:", re.IGNORECASE)
SEARCH_RESULT_LIMIT = 1000
_TICKET_UPDATE_PATH = "/api/v2/tickets/{ticket_id}.json"

Handler = Callable[[Request, dict[str, str]], tuple[int, Any]]


def _route(template: str) -> re.Pattern[str]:
    # Zendesk ids are numeric, which also keeps tickets/show_many.json apart from tickets/{id}.json.
    # Webhook ids are ULIDs ("01GK8E6BKWMJZD2T8Y5AXJQMG5", Zendesk Webhooks API).
    def group(m: re.Match[str]) -> str:
        return f"(?P<{m.group(1)}>[0-9A-Z]+)" if m.group(1) == "webhook_id" else f"(?P<{m.group(1)}>[0-9]+)"

    return re.compile("^" + re.sub(r"\{(\w+)\}", group, template.replace(".", r"\.")) + "$")


class ZendeskSandbox(SandboxControls):
    """One Zendesk Support account with agents, requesters, groups and custom fields, served over HTTP."""

    def __init__(
        self,
        *,
        email: str = "connector@example.com",
        api_token: str = "sandbox-api-token",
        account_id: int = 22129848,
        clock: Clock | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_events: Iterable[str] = ALL_WEBHOOK_EVENTS,
        deliver_webhooks: bool = True,
        signature_time: Callable[[], datetime] | None = None,
        custom_fields: Sequence[TicketField] | None = None,
        ticket_update_limit: int | None = 30,
        ticket_update_window: timedelta = timedelta(minutes=10),
        connector_role: str = "admin",
        auto_close_after: timedelta | None = timedelta(days=4),
        incremental_rate_limit: int | None = 10,
        search_export_rate_limit: int | None = 100,
        rate_clock: Callable[[], float] = time.monotonic,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`connector_role` is the API user's role (admin, agent): incremental exports answer
        403 to agents. `auto_close_after` is the "Close ticket 4 days after status is set to
        solved" automation (None: never). The per-minute endpoint limits count on
        `rate_clock` (real seconds by default, not the sandbox clock, which is often frozen)."""
        self.email = email
        self.api_token = api_token
        self.account_id = account_id
        self.clock = clock or Clock()
        self.ticket_update_limit = ticket_update_limit
        self.ticket_update_window = ticket_update_window
        self._lock = threading.RLock()
        self.store = ZendeskStore(custom_fields=custom_fields, base_url=f"http://{host}:{port or 0}")
        # Roles, memberships, statuses, webhooks, triggers, automations (zendesk_admin.py).
        self.account = AccountConfig(CUSTOM_STATUS_IDS)
        self.store.member_of = lambda user_id, group_id: any(
            m.user_id == user_id and m.group_id == group_id for m in self.account.memberships.values())
        for name, group_id in GROUPS.items():
            self.store.add_group(SandboxGroup(group_id, name, f"The {name} support group"))
        for user in (
            SandboxUser(CONNECTOR, "Support Process Connector", email, connector_role, GROUPS["L1"]),
            SandboxUser(AGENT, "Alice Agent", "alice@example.com", "agent", GROUPS["L1"]),
            SandboxUser(L2_AGENT, "Bob Engineer", "bob@example.com", "agent", GROUPS["L2"]),
            SandboxUser(LEAD, "Lena Lead", "lena@example.com", "admin", GROUPS["L2"]),
            SandboxUser(CUSTOMER, "Carl Customer", "carl@customer.example", "end-user"),
            SandboxUser(COLLEAGUE, "Cora Colleague", "cora@customer.example", "end-user"),
        ):
            self._add_user(user)
        self._faults = FaultInjector()
        self._calls = CallLog()
        self._updates: dict[tuple[int, int], deque[datetime]] = {}
        self.auto_close_after = auto_close_after
        # "You can make up to 10 requests per minute to these endpoints" (Incremental Exports
        # API reference); Export Search Results "is rate-limited to 100 requests per minute per
        # account" (Search API reference, Export Search Results).
        self._incremental_limit = _MinuteLimit(incremental_rate_limit, rate_clock)
        self._export_limit = _MinuteLimit(search_export_rate_limit, rate_clock)
        self.webhook_secret = webhook_secret
        self.webhook_events = frozenset(webhook_events)
        # Receivers check the signature timestamp against their own clock (a replay window),
        # while the sandbox clock is usually back-dated; so sign with real time by default.
        self._signature_time = signature_time or (lambda: datetime.now(UTC))
        self.webhook_id = "01HZSANDBOX" + hashlib.sha256(str(account_id).encode()).hexdigest()[:15].upper()
        # The webhook deliveries go through, as GET /api/v2/webhooks lists it.
        self.webhook_name = "Support process connector"
        self.webhook_status = "active"
        if auto_close_after is not None:
            self.account.automations.append(auto_close_automation(int(auto_close_after.total_seconds() // 3600)))
        self.webhooks = WebhookDispatcher(self._sign, url=webhook_url, enabled=deliver_webhooks,
                                          identifier_header="X-Zendesk-Webhook-Invocation-Id")
        self._server = ThreadedServer(self.wsgi_app, host=host, port=port)
        self._routes: list[tuple[str, str, re.Pattern[str], Handler]] = []
        for method, template, handler in (
            ("GET", "/api/v2/tickets/{ticket_id}.json", self._show_ticket),
            ("PUT", "/api/v2/tickets/{ticket_id}.json", self._update_ticket),
            ("POST", "/api/v2/tickets.json", self._create_ticket),
            ("GET", "/api/v2/tickets/show_many.json", self._show_many),
            ("GET", "/api/v2/tickets/{ticket_id}/audits.json", self._list_audits),
            ("GET", "/api/v2/tickets/{ticket_id}/comments.json", self._list_comments),
            ("POST", "/api/v2/tickets/{ticket_id}/satisfaction_rating", self._rate_ticket),
            ("GET", "/api/v2/ticket_fields.json", self._ticket_fields),
            ("GET", "/api/v2/users/me.json", self._me),
            ("GET", "/api/v2/users/{user_id}.json", self._show_user),
            ("GET", "/api/v2/groups.json", self._list_groups),
            ("GET", "/api/v2/search.json", self._search),
            ("GET", "/api/v2/search/export.json", self._search_export),
            ("GET", "/api/v2/incremental/tickets/cursor.json", self._incremental_tickets),
            ("GET", "/api/v2/users/search.json", self._search_users),
            ("GET", "/api/v2/custom_roles.json", self._list_custom_roles),
            ("GET", "/api/v2/group_memberships.json", self._list_group_memberships),
            ("GET", "/api/v2/custom_statuses.json", self._list_custom_statuses),
            ("GET", "/api/v2/triggers.json", self._list_triggers),
            ("GET", "/api/v2/automations.json", self._list_automations),
            ("GET", "/api/v2/webhooks", self._list_webhooks),
            ("GET", "/api/v2/webhooks/{webhook_id}/signing_secret", self._webhook_signing_secret),
        ):
            self._routes.append((method, template, _route(template), handler))

    # ------------------------------------------------------------------ seeding / human actors

    def add_user(self, name: str, email: str, *, role: str = "end-user", user_id: int | None = None,
                 default_group: str | int | None = None, time_zone: str = "UTC",
                 organization: str | None = None, locale: str = "en-US") -> int:
        """Add an agent, admin or end-user (of `organization`, by name); returns the user id."""
        with self._lock:
            uid = user_id or max(self.store.users) + 1
            group = self._group_id(default_group) if default_group is not None else None
            org = self.add_organization(organization) if organization is not None else None
            return self._add_user(SandboxUser(uid, name, email, role, group, time_zone, organization_id=org,
                                              locale=locale)).id

    def add_organization(self, name: str, *, domain_names: Sequence[str] = ()) -> int:
        """A customer organization; returns its id (the existing one for a known name)."""
        with self._lock:
            for org in self.store.organizations.values():
                if org.name.casefold() == name.casefold():
                    return org.id
            oid = max(self.store.organizations) + 1
            self.store.organizations[oid] = SandboxOrganization(oid, name, tuple(domain_names))
            return oid

    def rate(self, ticket_id: int, score: str, *, comment: str | None = None, author: int | str | None = None,
             at: datetime | None = None) -> None:
        """The requester rates the solved ticket good or bad (legacy CSAT), as
        POST /api/v2/tickets/{ticket_id}/satisfaction_rating does; see `ZendeskStore.rate`."""
        with self._lock:
            self._tick(at)
            ticket = self.store.get(ticket_id)
            actor = self.user_id(author) if author is not None else ticket.requester_id
            self._emit(self.store.rate(ticket, score, comment, actor_id=actor, at=at or self.clock.now()))

    def _add_user(self, user: SandboxUser) -> SandboxUser:
        self.store.add_user(user)
        if user.is_staff and user.default_group_id is not None:
            self.account.add_membership(user.id, user.default_group_id, default=True)
        return user

    def add_group(self, name: str, *, group_id: int | None = None) -> int:
        with self._lock:
            gid = group_id or max(self.store.groups) + 1
            return self.store.add_group(SandboxGroup(gid, name, f"The {name} support group")).id

    def user_id(self, ref: int | str) -> int:
        """A user's id from its id, e-mail or name."""
        user = self.store.find_user(ref)
        if user is None:
            raise KeyError(f"unknown user {ref!r}; add it with add_user()")
        return user.id

    def field_id(self, title: str) -> int:
        """A custom ticket field's id from its title, e.g. field_id("Root cause")."""
        return self.store.field_by_ref(title).id

    def create_ticket(
        self,
        subject: str,
        description: str,
        *,
        requester: int | str = CUSTOMER,
        priority: str | None = "normal",
        status: str | None = None,
        ticket_type: str | None = "incident",
        group: int | str | None = None,
        assignee: int | str | None = None,
        custom_fields: Mapping[int | str, Any] | None = None,
        tags: Sequence[str] = (),
        created: datetime | None = None,
        history: Sequence[tuple[datetime, str] | tuple[datetime, str, int | str]] = (),
    ) -> int:
        """Seed a ticket as if `requester` raised it at `created`; returns its id. Fires webhooks.

        `custom_fields` maps field titles or ids to plain values (str, date, datetime, an
        option's name or tag). `history` is [(at, status[, author])...] applied in order after
        creation (author defaults to the L1 agent); `status` alone creates the ticket in it.
        """
        at = created or self.clock.now()
        with self._lock:
            self._tick(at)
            requester_id = self.user_id(requester)
            data: dict[str, Any] = {
                "subject": subject, "comment": {"body": description, "public": True},
                "requester_id": requester_id, "submitter_id": requester_id, "priority": priority,
                "type": ticket_type, "tags": list(tags),
                "custom_fields": self._custom_entries(custom_fields or {}),
            }
            if status is not None and not history:
                data["status"] = status
            if group is not None:
                data["group_id"] = self._group_id(group)
            if assignee is not None:
                data["assignee_id"] = self.user_id(assignee)
            changes = [self.store.create(data, actor_id=requester_id, at=at, channel="web")]
            ticket = changes[0].ticket
            for step in history:
                if self.auto_close_after is not None:  # what the automation did before this step
                    changes.extend(self.store.auto_close(min(step[0], self.clock.now()), self.auto_close_after))
                author = self.user_id(step[2]) if len(step) > 2 else AGENT  # type: ignore[misc]
                changes.append(self.store.update(ticket, {"status": step[1]}, actor_id=author, at=step[0],
                                                 channel="web"))
            if status is not None and ticket.status != status.casefold():
                raise ValueError(f"history ends in {ticket.status!r}, not status={status!r}")
            for change in changes:
                self._emit(change)
            return ticket.id

    def add_comment(self, ticket_id: int, body: str, *, author: int | str | None = None, public: bool = True,
                    at: datetime | None = None) -> int:
        """A human comment (default: the requester); returns the comment id. Fires webhooks.

        As in Zendesk, an end-user's comment reopens a pending or solved ticket.
        """
        with self._lock:
            self._tick(at)
            ticket = self.store.get(ticket_id)
            author_id = self.user_id(author) if author is not None else ticket.requester_id
            change = self.store.update(ticket, {"comment": {"body": body, "public": public}},
                                       actor_id=author_id, at=at or self.clock.now(), channel="web")
            self._emit(change)
            assert change.comment is not None
            return change.comment.id

    def set_status(self, ticket_id: int, status: str, *, author: int | str = AGENT,
                   at: datetime | None = None) -> None:
        """An agent moves the ticket to `status`. Fires webhooks."""
        self.set_fields(ticket_id, {"status": status}, author=author, at=at)

    def set_fields(self, ticket_id: int, fields: Mapping[int | str, Any], *, author: int | str = AGENT,
                   at: datetime | None = None) -> None:
        """A human edit. Keys: status, priority, type, subject, group, assignee, requester, tags,
        additional_tags, remove_tags, or a custom field's title or id (plain values). Fires webhooks."""
        with self._lock:
            self._tick(at)
            ticket = self.store.get(ticket_id)
            data: dict[str, Any] = {}
            custom: dict[int | str, Any] = {}
            for key, value in fields.items():
                if key in ("status", "priority", "type", "subject", "tags", "additional_tags", "remove_tags"):
                    data[str(key)] = value
                elif key in ("group", "group_id"):
                    data["group_id"] = None if value is None else self._group_id(value)
                elif key in ("assignee", "assignee_id"):
                    data["assignee_id"] = None if value is None else self.user_id(value)
                elif key in ("requester", "requester_id"):
                    data["requester_id"] = self.user_id(value)
                else:
                    custom[key] = value
            if custom:
                data["custom_fields"] = self._custom_entries(custom)
            # An agent edits the tag list as a whole; the store's single-ticket update (like
            # Zendesk's) ignores additional_tags/remove_tags, so they are applied here.
            added, removed = data.pop("additional_tags", None), data.pop("remove_tags", None)
            if added is not None or removed is not None:
                tags = list(data.get("tags", ticket.tags))
                tags += [t for t in (added or []) if t not in tags]
                data["tags"] = [t for t in tags if t not in set(removed or [])]
            self._emit(self.store.update(ticket, data, actor_id=self.user_id(author), at=at or self.clock.now(),
                                         channel="web"))

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        """The ticket as GET /api/v2/tickets/{id}.json returns it (the inner "ticket")."""
        with self._lock:
            self._tick()
            return self.store.ticket_json(self.store.get(ticket_id))

    def audits(self, ticket_id: int) -> list[dict[str, Any]]:
        with self._lock:
            self._tick()
            return [self.store.audit_json(a) for a in self.store.get(ticket_id).audits]

    def set_field_required(self, title: int | str, required: bool = True) -> None:
        """An admin makes a custom field required to solve (the ticket field's `required`)."""
        with self._lock:
            definition = self.store.field_by_ref(title)
            self.store.fields[definition.id] = replace(definition, required=required)

    # ------------------------------------------------------------------ account configuration
    # (what `connector doctor` reads; tests use these to set the account up wrong)

    def set_connector_role(self, role: str, *, custom_role: str | None = None) -> None:
        """Make the API user an admin, an agent (optionally in the custom role named
        `custom_role`, e.g. "Light agent") or an end-user."""
        with self._lock:
            user = self.store.users[CONNECTOR]
            found = None
            if custom_role is not None:
                found = next(r for r in self.account.custom_roles.values() if r.name.casefold() == custom_role.casefold())
            self.store.users[CONNECTOR] = replace(user, role=role, custom_role_id=found.id if found else None,
                                                  role_type=found.role_type if found else None)

    def set_field(self, title: int | str, **changes: Any) -> None:
        """Change a ticket field's definition: active, agent_can_edit, required, type, title, options."""
        with self._lock:
            definition = self.store.field_by_ref(title)
            self.store.fields[definition.id] = replace(definition, **changes)

    def remove_field(self, title: int | str) -> None:
        with self._lock:
            del self.store.fields[self.store.field_by_ref(title).id]

    def remove_option(self, title: int | str, option: str) -> None:
        with self._lock:
            definition = self.store.field_by_ref(title)
            kept = tuple(o for o in definition.options if option.casefold() not in (o.name.casefold(), o.value.casefold()))
            self.store.fields[definition.id] = replace(definition, options=kept)

    def remove_group(self, ref: int | str) -> None:
        with self._lock:
            group = self.store.find_group(ref)
            if group is None:
                raise KeyError(f"unknown group {ref!r}")
            del self.store.groups[group.id]
            for membership in [m for m in self.account.memberships.values() if m.group_id == group.id]:
                del self.account.memberships[membership.id]

    def add_membership(self, user: int | str, group: int | str) -> None:
        with self._lock:
            self.account.add_membership(self.user_id(user), self._group_id(group))

    def remove_membership(self, user: int | str, group: int | str) -> None:
        with self._lock:
            self.account.remove_membership(self.user_id(user), self._group_id(group))

    def add_custom_status(self, category: str, agent_label: str, *, active: bool = True) -> int:
        """Custom ticket statuses (activated on the account): a status in a category."""
        with self._lock:
            status = CustomStatus(self.account.new_id(), category, agent_label, active=active)
            self.account.custom_statuses.append(status)
            return status.id

    def add_webhook(self, name: str, endpoint: str, subscriptions: Iterable[str] = (CONDITIONAL_TICKET_EVENTS,), *,
                    status: str = "active", secret: str | None = None) -> str:
        """Another webhook of the account (not delivered to: only listed); returns its id."""
        with self._lock:
            webhook_id = "01HZ" + hashlib.sha256(f"{name}{endpoint}{len(self.account.webhooks)}".encode()).hexdigest()[:22].upper()
            self.account.webhooks.append(Webhook(webhook_id, name, endpoint, list(subscriptions), status, secret))
            return webhook_id

    def remove_webhooks(self) -> None:
        """No webhook at all: deliveries stop and the list is empty."""
        with self._lock:
            self.webhooks.url = None
            self.account.webhooks.clear()

    def add_trigger(self, title: str, webhook_id: str, *, body: str = TRIGGER_BODY, active: bool = True,
                    automation: bool = False) -> int:
        """A trigger (or automation) whose action notifies `webhook_id` with the JSON `body`."""
        with self._lock:
            rules = self.account.automations if automation else self.account.triggers
            rule = BusinessRule(self.account.new_id(), title, [{"field": "notification_webhook",
                                                                 "value": [webhook_id, body]}],
                                {"all": [{"field": "update_type", "operator": "is", "value": "Change"}], "any": []},
                                active=active, position=len(rules) + 1)
            rules.append(rule)
            return rule.id

    def _all_webhooks(self) -> list[Webhook]:
        hooks = list(self.account.webhooks)
        if self.webhooks.url:
            hooks.insert(0, Webhook(self.webhook_id, self.webhook_name, self.webhooks.url, sorted(self.webhook_events),
                                    self.webhook_status, self.webhook_secret))
        return hooks

    def _within_role(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """What the API user's role lets an update do. Update Ticket is for agents (an end user's
        token gets 403). A light agent, or an agent whose custom role has `ticket_editing` off,
        may comment but not edit ticket properties, and "All comments by light agents are
        private" (Zendesk help "Understanding and setting light agent permissions"): an edit is
        refused with 403 (fail closed: the docs do not give the API's answer), a public comment
        lands private."""
        user = self.store.users[CONNECTOR]
        if not user.is_staff:
            raise ZendeskApiError(403, FORBIDDEN)
        role = self.account.custom_roles.get(user.custom_role_id) if user.custom_role_id is not None else None
        light = user.role_type == 1 or bool(role and role.configuration.get("light_agent"))
        editing = user.role == "admin" or (not light and (role is None or role.configuration.get("ticket_editing", True)))
        if editing:
            return data
        if set(data) - {"comment", "safe_update", "updated_stamp"}:
            raise ZendeskApiError(403, FORBIDDEN)
        comment = data.get("comment")
        if light and isinstance(comment, Mapping) and comment.get("public", True):
            return {**data, "comment": {**comment, "public": False}}
        return data

    def _require_staff(self) -> None:
        if not self.store.users[CONNECTOR].is_staff:
            raise ZendeskApiError(403, FORBIDDEN)

    def _search_users(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        """Search Users (`query`: an e-mail or a name, exact here); agents only."""
        self._require_staff()
        query = (request.args.get("query") or "").strip().casefold()
        if not query:
            raise ZendeskApiError(400, {"error": "InvalidValue", "description": "query is required"})
        found = [self.store.user_json(u) for u in self.store.users.values()
                 if query in (u.email.casefold(), u.name.casefold())]
        return 200, self._page(request, "users", found)

    def _list_custom_roles(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        self._require_staff()  # "Allowed For: Agents" (Enterprise)
        roles = [r.json(self.store.base_url) for r in self.account.custom_roles.values()]
        return 200, {"custom_roles": roles, "next_page": None, "previous_page": None, "count": len(roles)}

    def _list_group_memberships(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        self._require_staff()
        wanted_group, wanted_user = request.args.get("group_id"), request.args.get("user_id")
        items = [m.json(self.store.base_url) for m in self.account.memberships.values()
                 if (wanted_group is None or str(m.group_id) == wanted_group)
                 and (wanted_user is None or str(m.user_id) == wanted_user)]
        return 200, self._page(request, "group_memberships", items)

    def _list_custom_statuses(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        return 200, {"custom_statuses": [s.json() for s in self.account.custom_statuses]}

    def _list_triggers(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        self._require_staff()
        return 200, self._page(request, "triggers", [r.json(self.store.base_url, "triggers")
                                                      for r in self.account.triggers])

    def _list_automations(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        self._require_staff()
        return 200, self._page(request, "automations", [r.json(self.store.base_url, "automations")
                                                         for r in self.account.automations])

    def _list_webhooks(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        """Admins only (agents in a custom role with the webhook permission are not modelled):
        an agent's token gets 403."""
        if self.store.users[CONNECTOR].role != "admin":
            raise ZendeskApiError(403, FORBIDDEN)
        return 200, self._page(request, "webhooks", [w.json() for w in self._all_webhooks()], cursor=True)

    def _webhook_signing_secret(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        if self.store.users[CONNECTOR].role != "admin":
            raise ZendeskApiError(403, FORBIDDEN)
        hook = next((w for w in self._all_webhooks() if w.id == params["webhook_id"]), None)
        if hook is None:
            raise record_not_found()
        return 200, {"signing_secret": {"algorithm": "SHA256", "secret": hook.signing_secret or ""}}

    def _tick(self, at: datetime | None = None) -> None:
        """Run the time-based automations due by `at` (default: the sandbox clock's now).

        A back-dated human write happens at its own time: only what was due by then has run,
        so a requester's reply two days after solving still reopens the ticket. Callers hold
        the lock."""
        if self.auto_close_after is None:
            return
        moment = min(at, self.clock.now()) if at is not None else self.clock.now()
        for change in self.store.auto_close(moment, self.auto_close_after):
            self._emit(change)

    def _group_id(self, ref: int | str) -> int:
        group = self.store.find_group(ref)
        if group is None:
            raise KeyError(f"unknown group {ref!r}; known: {', '.join(g.name for g in self.store.groups.values())}")
        return group.id

    def _custom_entries(self, values: Mapping[int | str, Any]) -> list[dict[str, Any]]:
        entries = []
        for ref, value in values.items():
            definition = self.store.field_by_ref(ref)
            if isinstance(value, datetime):
                value = value.astimezone(UTC).date().isoformat()
            elif isinstance(value, date):
                value = value.isoformat()
            elif definition.type == "tagger" and isinstance(value, str):
                option = definition.option(value)
                value = option.value if option is not None else value
            entries.append({"id": definition.id, "value": value})
        return entries

    # ------------------------------------------------------------------ webhooks

    def _sign(self, body: bytes) -> dict[str, str]:
        headers = {"X-Zendesk-Account-Id": str(self.account_id), "X-Zendesk-Webhook-Id": self.webhook_id}
        if self.webhook_secret:
            timestamp = iso(self._signature_time())
            digest = hmac.new(self.webhook_secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
            headers["X-Zendesk-Webhook-Signature"] = base64.b64encode(digest).decode()
            headers["X-Zendesk-Webhook-Signature-Timestamp"] = timestamp
        return headers

    def _detail(self, ticket: StoredTicket, actor_id: int) -> dict[str, Any]:
        def upper(value: str | None) -> str | None:
            return value.upper() if value else None

        def text(value: int | None) -> str | None:
            return None if value is None else str(value)

        return {
            "actor_id": str(actor_id), "assignee_id": text(ticket.assignee_id), "brand_id": str(ACCOUNT_BRAND_ID),
            "created_at": iso(ticket.created_at), "custom_status": str(CUSTOM_STATUS_IDS[ticket.status]),
            "description": ticket.description, "external_id": None,
            "form_id": str(TICKET_FORM_ID), "group_id": text(ticket.group_id), "id": str(ticket.id),
            "is_public": any(c.public for c in ticket.comments), "organization_id": text(ticket.organization_id),
            "priority": upper(ticket.priority), "requester_id": str(ticket.requester_id),
            "status": upper(ticket.status), "subject": ticket.subject, "submitter_id": str(ticket.submitter_id),
            "tags": list(ticket.tags), "type": upper(ticket.type), "updated_at": iso(ticket.updated_at),
            # Event webhooks name the API channel "web_service" where the REST ticket says "api".
            "via": {"channel": "web_service" if ticket.channel == "api" else ticket.channel},
        }

    def _events(self, change: Change) -> list[tuple[str, dict[str, Any]]]:
        if change.created:
            return [("ticket.created", {})]
        events: list[tuple[str, dict[str, Any]]] = []
        for fc in change.changes:
            events.append(self._change_event(fc))
        if change.comment is not None:
            author = self.store.users[change.comment.author_id]
            events.append(("ticket.comment_added", {"comment": {
                "id": str(change.comment.id), "body": change.comment.body, "is_public": change.comment.public,
                "author": {"id": str(author.id), "is_staff": author.is_staff, "name": author.name},
            }}))
        return events

    def _change_event(self, fc: FieldChange) -> tuple[str, dict[str, Any]]:
        if fc.name in ("status", "priority", "type"):
            def upper(value: Any) -> Any:
                return value.upper() if isinstance(value, str) else value
            return f"ticket.{fc.name}_changed", {"current": upper(fc.current), "previous": upper(fc.previous)}
        if fc.name == "tags":
            return "ticket.tags_changed", {"tags_added": [t for t in fc.current if t not in fc.previous],
                                           "tags_removed": [t for t in fc.previous if t not in fc.current]}
        if fc.name in ("assignee_id", "group_id", "requester_id"):
            name = {"assignee_id": "agent_assignment", "group_id": "group_assignment",
                    "requester_id": "requester"}[fc.name]
            return f"ticket.{name}_changed", {"current": fc.current, "previous": fc.previous}
        if fc.name == "subject":
            return "ticket.subject_changed", {"current": fc.current, "previous": fc.previous}
        definition = self.store.fields[int(fc.name)]
        return "ticket.custom_field_changed", {
            "current": fc.current, "previous": fc.previous,
            "custom_field": {"id": definition.id, "title": definition.title, "type": definition.type},
        }

    def _emit(self, change: Change) -> None:
        if not change.changed:
            return
        ticket = change.ticket
        detail = self._detail(ticket, change.actor_id)
        stamp = change.at.astimezone(UTC)
        moment = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond:06d}000Z"
        for name, event in self._events(change):
            kind = EVENT_PREFIX + name
            if kind not in self.webhook_events:
                continue
            payload = {"account_id": self.account_id, "detail": detail, "event": event, "id": str(uuid.uuid4()),
                       "subject": f"zen:ticket:{ticket.id}", "time": moment, "type": kind,
                       "zendesk_event_version": "2022-11-06"}
            self.webhooks.send(kind, json.dumps(payload).encode())

    # ------------------------------------------------------------------ HTTP

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        response, template = self._respond(request)
        self._calls.record(request.method, template, response.status_code)
        return response(environ, start_response)

    def _respond(self, request: Request) -> tuple[Response, str]:
        method, path = request.method.upper(), request.path
        matched = None
        for route_method, template, pattern, handler in self._routes:
            m = pattern.match(path)
            if m and route_method == method:
                matched = (template, handler, m.groupdict())
                break
        template = matched[0] if matched else path
        fault = self._faults.take(method, path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status is not None:
                headers = {"Retry-After": _retry_after(fault.retry_after)} if fault.retry_after is not None else {}
                payload = fault.body_for(request)
                if isinstance(payload, str):
                    return Response(payload, status=fault.status, headers=headers, content_type="text/html"), template
                return _json(fault.status, payload if payload is not None else _fault_body(fault.status),
                             headers), template
        if not self._authenticated(request.headers.get("Authorization")):
            return _json(401, NOT_AUTHENTICATED, {"WWW-Authenticate": 'Basic realm="Web Password"'}), template
        if matched is None:
            return _json(404, {"error": "InvalidEndpoint", "description": "Not found"}), template
        _, handler, params = matched
        try:
            if method in ("POST", "PUT"):
                try:
                    json.loads(request.get_data() or b"null")
                except ValueError:
                    raise ZendeskApiError(400, {"error": "Unprocessable Entity",
                                                "description": "The request body is not valid JSON"}) from None
            with self._lock:
                self._tick()
                status, payload = handler(request, params)
        except ZendeskApiError as err:
            return _json(err.status, err.body, err.headers), template
        return _json(status, payload), template

    def _authenticated(self, header: str | None) -> bool:
        """API token auth only: Basic base64("{email}/token:{token}"), as Zendesk requires."""
        scheme, _, credentials = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, secret = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(secret, self.api_token) and user.casefold() == f"{self.email}/token".casefold()

    # ---- endpoint handlers (run under self._lock)

    def _body_ticket(self, request: Request) -> Mapping[str, Any]:
        body = request.get_json(silent=True)
        if not isinstance(body, Mapping) or not isinstance(body.get("ticket"), Mapping):
            raise ZendeskApiError(400, {"error": "InvalidJSON", "description": 'expected {"ticket": {...}}'})
        return body["ticket"]

    def _sideloads(self, request: Request, tickets: Sequence[StoredTicket]) -> dict[str, Any]:
        wanted = {part.strip() for part in request.args.get("include", "").split(",") if part.strip()}
        extra: dict[str, Any] = {}
        if "users" in wanted:
            users: dict[int, SandboxUser] = {}
            for ticket in tickets:
                users.update((u.id, u) for u in self.store.related_users(ticket))
            extra["users"] = [self.store.user_json(u) for u in users.values()]
        if "groups" in wanted:
            ids = sorted({t.group_id for t in tickets if t.group_id is not None})
            extra["groups"] = [self.store.group_json(self.store.groups[g]) for g in ids]
        if "organizations" in wanted:
            # Side-loading: "add an include parameter containing a comma-separated list of
            # resources to load", only those asked for
            # (https://developer.zendesk.com/documentation/ticketing/using-the-zendesk-api/side_loading/);
            # tickets side-load the organizations they belong to.
            ids = sorted({t.organization_id for t in tickets if t.organization_id in self.store.organizations})
            extra["organizations"] = [self.store.organization_json(self.store.organizations[o]) for o in ids]
        return extra

    def _show_ticket(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        ticket = self.store.get(params["ticket_id"])
        return 200, {"ticket": self.store.ticket_json(ticket), **self._sideloads(request, [ticket])}

    def _show_many(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        ids = [part for part in request.args.get("ids", "").split(",") if part.strip()]
        if not ids or not all(part.strip().isdigit() for part in ids) or len(ids) > 100:
            raise ZendeskApiError(400, {"error": "InvalidValue", "description": "ids must be 1 to 100 ticket ids"})
        tickets = [self.store.tickets[int(i)] for i in ids if int(i) in self.store.tickets]
        return 200, {"tickets": [self.store.ticket_json(t) for t in tickets], "next_page": None,
                     "previous_page": None, "count": len(tickets), **self._sideloads(request, tickets)}

    def _create_ticket(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        # Create Ticket is for agents; light agents may set properties at creation (their help page).
        if not self.store.users[CONNECTOR].is_staff:
            raise ZendeskApiError(403, FORBIDDEN)
        change = self.store.create(self._body_ticket(request), actor_id=CONNECTOR, at=self.clock.now(),
                                   client=request.headers.get("User-Agent", ""))
        self._emit(change)
        return 201, {"ticket": self.store.ticket_json(change.ticket), "audit": self.store.audit_json(change.audit)}

    def _update_ticket(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        ticket = self.store.get(params["ticket_id"])
        self._check_update_limit(ticket.id)
        data = self._within_role(self._body_ticket(request))
        change = self.store.update(ticket, data, actor_id=CONNECTOR, at=self.clock.now(),
                                   client=request.headers.get("User-Agent", ""))
        self._updates.setdefault((CONNECTOR, ticket.id), deque()).append(self.clock.now())
        self._emit(change)
        return 200, {"ticket": self.store.ticket_json(ticket), "audit": self.store.audit_json(change.audit)}

    def _rate_ticket(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        """POST /api/v2/tickets/{ticket_id}/satisfaction_rating as the authenticated user, the
        connector's agent: only the requester may rate, so it is refused (403) like on Zendesk;
        requesters rate through `rate()`."""
        ticket = self.store.get(params["ticket_id"])
        body = request.get_json(silent=True) or {}
        rating = body.get("satisfaction_rating") if isinstance(body, dict) else None
        rating = rating if isinstance(rating, dict) else {}
        change = self.store.rate(ticket, str(rating.get("score")), rating.get("comment"), actor_id=CONNECTOR,
                                 at=self.clock.now())
        return 200, {"satisfaction_rating": self.store.ticket_json(change.ticket)["satisfaction_rating"]}

    def _check_update_limit(self, ticket_id: int) -> None:
        """Zendesk allows 30 updates per ticket per user in 10 minutes; the 31st gets a 429."""
        if self.ticket_update_limit is None:
            return
        now = self.clock.now()
        recent = self._updates.setdefault((CONNECTOR, ticket_id), deque())
        while recent and recent[0] <= now - self.ticket_update_window:
            recent.popleft()
        if len(recent) >= self.ticket_update_limit:
            wait = (recent[0] + self.ticket_update_window - now).total_seconds()
            raise ZendeskApiError(429, {
                "error": "TooManyRequests",
                "description": "Rate limit for ticket updates exceeded, please wait before updating this ticket again",
            }, {"Retry-After": str(max(1, math.ceil(wait)))})

    def _list_audits(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        ticket = self.store.get(params["ticket_id"])
        items = [self.store.audit_json(a) for a in ticket.audits]
        body = self._page(request, "audits", items)
        return 200, {**body, **self._sideloads(request, [ticket])}

    def _list_comments(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        ticket = self.store.get(params["ticket_id"])
        comments = [self.store.comment_json(c) for c in ticket.comments]
        if request.args.get("sort_order") == "desc":
            comments.reverse()
        return 200, {**self._page(request, "comments", comments), **self._sideloads(request, [ticket])}

    def _ticket_fields(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        return 200, self._page(request, "ticket_fields", self.store.field_catalogue())

    def _me(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        return 200, {"user": self.store.user_json(self.store.users[CONNECTOR])}

    def _show_user(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        user = self.store.find_user(int(params["user_id"]))
        if user is None:
            raise record_not_found()
        return 200, {"user": self.store.user_json(user)}

    def _list_groups(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        return 200, self._page(request, "groups", [self.store.group_json(g) for g in self.store.groups.values()])

    def _parse_query(self, query_text: str | None) -> zendesk_search.Query:
        if not query_text or not query_text.strip():
            raise _invalid_search("Search query is required (the 'query' parameter)")
        connector = self.store.users[CONNECTOR]
        try:
            return zendesk_search.parse(query_text, now=self.clock.now(),
                                        me=(str(connector.id), connector.email, connector.name))
        except zendesk_search.SearchError as exc:
            raise _invalid_search(str(exc)) from None

    def _matching(self, query: zendesk_search.Query) -> list[zendesk_search.TicketFacts]:
        return [f for f in (self._facts(t) for t in self.store.tickets.values()) if query.matches(f)]

    def _search(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        args = request.args
        query_text = args.get("query") or ""
        query = self._parse_query(query_text)
        per_page = _int_arg(args, "per_page", 100, 1, 100)
        page = _int_arg(args, "page", 1, 1, None)
        if (page - 1) * per_page >= SEARCH_RESULT_LIMIT:
            # "The Search API returns up to 1,000 results per query, with a maximum of 100 results
            # per page … If you request a page past the limit (page=11 at 100 results per page), a
            # 422 Insufficient Resource Error is returned" (Search API reference, Results limit);
            # zenpy maps this 422 "invalid" to SearchResponseLimitExceeded.
            raise ZendeskApiError(422, {"error": "invalid", "description":
                                        f"Search Response Limits: at most {SEARCH_RESULT_LIMIT} results "
                                        "per query; narrow the query or use the incremental export"})
        order_by, descending = query.order_by, query.descending
        if args.get("sort_by"):
            order_by = zendesk_search.SORT_KEYS.get(args["sort_by"])
            if order_by is None:
                raise _invalid_search(f"sort_by {args['sort_by']!r} is not supported")
        if args.get("sort_order") in ("asc", "desc"):
            descending = args["sort_order"] == "desc"
        found = sorted(self._matching(query), key=zendesk_search.sort_key(order_by),
                       reverse=descending and order_by is not None)
        total = min(len(found), SEARCH_RESULT_LIMIT)
        start = (page - 1) * per_page
        results = [{**self.store.ticket_json(self.store.tickets[f.id]), "result_type": "ticket"}
                   for f in found[start:min(start + per_page, total)]]

        def link(number: int) -> str:
            query_args = {"page": number, "per_page": per_page, "query": query_text}
            query_args.update({k: args[k] for k in ("sort_by", "sort_order") if k in args})
            return f"{request.host_url.rstrip('/')}/api/v2/search.json?{urlencode(query_args)}"

        return 200, {"results": results, "facets": None,
                     "next_page": link(page + 1) if start + per_page < total else None,
                     "previous_page": link(page - 1) if page > 1 else None, "count": len(found)}

    def _search_export(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        """Search past the 1,000-result cap: cursor pages, one object type, ordered by created_at.

        Zendesk's Export Search Results: "You must specify the type in the filter[type]
        parameter. Searches with type in the query string will result in an error"; at most
        1,000 records a page (page[size]); "The result set is ordered only by the created_at
        attribute"; "rate-limited to 100 requests per minute per account". The error's exact
        status is not documented: the sandbox answers 400 Invalid search (fail closed).
        """
        self._export_limit.take()
        if request.args.get("filter[type]") != "ticket":
            raise _invalid_search("filter[type] is required; the sandbox exports tickets only (filter[type]=ticket)")
        query_text = request.args.get("query") or ""
        if _TYPE_IN_QUERY.search(query_text):
            raise _invalid_search("type is not allowed in an export query; use the filter[type] parameter")
        query = self._parse_query(query_text)
        results = [{**self.store.ticket_json(self.store.tickets[f.id]), "result_type": "ticket"}
                   for f in sorted(self._matching(query), key=lambda f: (f.created, f.id))]
        return 200, {**self._page(request, "results", results, cursor=True, max_size=1000), "facets": None}

    def _facts(self, ticket: StoredTicket) -> zendesk_search.TicketFacts:
        def refs(user_id: int | None) -> frozenset[str]:
            user = self.store.users.get(user_id) if user_id is not None else None
            if user is None:
                return frozenset()
            return frozenset({str(user.id), user.email.casefold(), user.name.casefold()})

        group = self.store.groups.get(ticket.group_id) if ticket.group_id is not None else None
        return zendesk_search.TicketFacts(
            id=ticket.id, status=ticket.status, priority=ticket.priority, type=ticket.type,
            tags=frozenset(t.casefold() for t in ticket.tags), group_id=ticket.group_id,
            group_name=group.name if group else None, assignee=refs(ticket.assignee_id),
            requester=refs(ticket.requester_id), subject=ticket.subject, description=ticket.description,
            text=self.store.search_text(ticket), created=ticket.created_at, updated=ticket.updated_at,
        )

    def _incremental_tickets(self, request: Request, params: dict[str, str]) -> tuple[int, Any]:
        """Cursor-based incremental export: tickets in update order, resumable from `after_cursor`.

        Admins only: an agent's token gets 403 (the endpoints' "Allowed For: Admins"; the body
        is the one agents report, Zendesk community post 4428358191514 "Forbidden from using
        only incremental API calls?"). 10 requests a minute.
        """
        if self.store.users[CONNECTOR].role != "admin":
            raise ZendeskApiError(403, FORBIDDEN)
        self._incremental_limit.take()
        args = request.args
        start_time, cursor = args.get("start_time"), args.get("cursor")
        if (start_time is None) == (cursor is None):
            raise ZendeskApiError(400, {"error": "InvalidPaginationParameter",
                                        "description": "Provide either start_time or cursor, not both"})
        per_page = _int_arg(args, "per_page", 1000, 1, 1000)
        if start_time is not None:
            if not start_time.isdigit():
                raise ZendeskApiError(400, {"error": "InvalidValue",
                                            "description": "start_time must be a Unix epoch time in seconds"})
            if int(start_time) > self.clock.now().timestamp():
                raise ZendeskApiError(400, {"error": "InvalidValue",
                                            "description": "start_time cannot be in the future"})
            position = (int(start_time), 0)  # exclusive: every ticket id is above 0
        else:
            position = _decode_export_cursor(cursor or "")
        ordered = sorted(self.store.tickets.values(), key=lambda t: (int(t.updated_at.timestamp()), t.id))
        remaining = [t for t in ordered if (int(t.updated_at.timestamp()), t.id) > position]
        page = remaining[:per_page]
        if page:
            position = (int(page[-1].updated_at.timestamp()), page[-1].id)
        after_cursor = _encode_export_cursor(position)
        after_args = {"cursor": after_cursor, **({"per_page": str(per_page)} if "per_page" in args else {})}
        return 200, {
            "tickets": [self.store.ticket_json(t) for t in page],
            "after_url": f"{request.host_url.rstrip('/')}/api/v2/incremental/tickets/cursor.json?"
                         f"{urlencode(after_args)}",
            "after_cursor": after_cursor, "before_url": None, "before_cursor": None,
            "end_of_stream": len(remaining) <= per_page,
        }

    def _page(self, request: Request, key: str, items: list[dict[str, Any]], *, cursor: bool = False,
              max_size: int = 100) -> dict[str, Any]:
        """A list endpoint's page: cursor pagination when page[size]/page[after]/page[before] is
        given or `cursor` is set (meta.has_more, links.next), else offset pagination (next_page, count)."""
        args = request.args
        base = f"{request.host_url.rstrip('/')}{request.path}"
        keep = {k: v for k, v in args.items() if not k.startswith("page")}
        if cursor or any(k in args for k in ("page[size]", "page[after]", "page[before]")):
            size = _int_arg(args, "page[size]", 100, 1, max_size)
            if args.get("page[before]"):
                end = _decode_list_cursor(args["page[before]"], request.path)
                start = max(0, end - size)
            else:
                start = _decode_list_cursor(args["page[after]"], request.path) if args.get("page[after]") else 0
                end = min(len(items), start + size)
            has_more = end < len(items)
            after = _encode_list_cursor(end, request.path) if end > start else None
            before = _encode_list_cursor(start, request.path) if end > start else None

            def link(cursor_key: str, cursor: str | None) -> str | None:
                if cursor is None:
                    return None
                return f"{base}?{urlencode({**keep, 'page[size]': size, cursor_key: cursor})}"

            return {key: items[start:end], "meta": {"has_more": has_more, "after_cursor": after,
                                                    "before_cursor": before},
                    "links": {"prev": link("page[before]", before) if start > 0 else None,
                              "next": link("page[after]", after) if has_more else None}}
        per_page = _int_arg(args, "per_page", 100, 1, 100)
        page = _int_arg(args, "page", 1, 1, None)
        start = (page - 1) * per_page

        def offset_link(number: int) -> str:
            return f"{base}?{urlencode({**keep, 'page': number, 'per_page': per_page})}"

        return {key: items[start:start + per_page],
                "next_page": offset_link(page + 1) if start + per_page < len(items) else None,
                "previous_page": offset_link(page - 1) if page > 1 else None, "count": len(items)}


class _MinuteLimit:
    """At most `limit` requests in any 60 s on `clock`; the next one gets Zendesk's 429."""

    def __init__(self, limit: int | None, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._clock = clock
        self._seen: deque[float] = deque()

    def take(self) -> None:
        if self._limit is None:
            return
        now = self._clock()
        while self._seen and self._seen[0] <= now - 60:
            self._seen.popleft()
        if len(self._seen) >= self._limit:
            wait = self._seen[0] + 60 - now
            raise ZendeskApiError(429, _fault_body(429), {"Retry-After": _retry_after(wait)})
        self._seen.append(now)


def _invalid_search(message: str) -> ZendeskApiError:
    return ZendeskApiError(400, {"error": {"title": "Invalid search", "message": message}})


def _int_arg(args: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ZendeskApiError(400, {"error": "InvalidValue", "description": f"{name} must be an integer"}) from None
    if value < low:
        raise ZendeskApiError(400, {"error": "InvalidValue", "description": f"{name} must be at least {low}"})
    return value if high is None else min(value, high)


def _encode_list_cursor(offset: int, path: str) -> str:
    raw = json.dumps({"o": offset, "p": hashlib.sha256(path.encode()).hexdigest()[:10]})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_list_cursor(cursor: str, path: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if data["p"] != hashlib.sha256(path.encode()).hexdigest()[:10]:
            raise ValueError("cursor of another listing")
        return max(0, int(data["o"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        message = "page[after]/page[before] is not a cursor of this listing"
        raise ZendeskApiError(400, {"error": "InvalidPaginationParameter", "description": message}) from None


def _encode_export_cursor(position: tuple[int, int]) -> str:
    return base64.urlsafe_b64encode(f"{position[0]}|{position[1]}".encode()).decode().rstrip("=")


def _decode_export_cursor(cursor: str) -> tuple[int, int]:
    try:
        stamp, _, ticket_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition("|")
        return int(stamp), int(ticket_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ZendeskApiError(400, {"error": "InvalidPaginationParameter",
                                    "description": "cursor is not an incremental export cursor"}) from None


def _fault_body(status: int) -> dict[str, Any]:
    if status == 429:
        return {"error": "APIRateLimitExceeded", "description": "Number of allowed API requests per minute exceeded"}
    if status == 503:
        return {"error": "ServiceUnavailable", "description": "Zendesk is temporarily unavailable (injected)"}
    return {"error": "InjectedFault", "description": f"HTTP {status} (injected)"}


def _retry_after(seconds: float) -> str:
    # zenpy reads Retry-After with int(); Zendesk itself always sends whole seconds.
    return str(max(0, math.ceil(seconds)))


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status=status, headers=dict(headers or {}),
                    content_type="application/json; charset=utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m connector.sandbox.zendesk", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--account-id", type=int, default=22129848)
    parser.add_argument("--webhook-url", default=None, help="where to POST webhooks (secret: ZENDESK_WEBHOOK_SECRET)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    sandbox = ZendeskSandbox(
        email=os.environ.get("ZENDESK_EMAIL") or "connector@example.com",
        api_token=os.environ.get("ZENDESK_TOKEN") or "sandbox-api-token",
        account_id=args.account_id, webhook_url=args.webhook_url,
        webhook_secret=os.environ.get("ZENDESK_WEBHOOK_SECRET"), clock=Clock(frozen=False),
        host=args.host, port=args.port,
    )
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    sandbox.store.base_url = f"http://{shown_host}:{args.port}"
    print(f"Zendesk sandbox on {sandbox.store.base_url}; user {sandbox.email}, token from ZENDESK_TOKEN "
          "(default sandbox-api-token)", flush=True)
    try:
        sandbox._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.webhooks.close()


if __name__ == "__main__":
    main()
