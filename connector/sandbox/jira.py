"""Sandbox Jira: a stateful, in-memory Jira REST API v2 for the demo and end-to-end tests.

The connector's Jira adapter must be tested through the real `jira` library over real HTTP,
against something that answers like Jira: the same JSON shapes, the same 400/401/404/429
bodies, the same workflow refusals, the same changelog and webhooks. Mocks of library
methods would only test our assumptions about Jira. This sandbox is that something, plus the
controls real Jira lacks: a settable clock for back-dated tickets and SLA breaches, fault
injection, per-endpoint call counts, and captured webhooks.

Typical use::

    with JiraSandbox(webhook_url="http://127.0.0.1:8000/webhooks/jira", webhook_secret="s") as jira:
        key = jira.create_issue("Login fails", created=datetime(2026, 11, 20, 9, tzinfo=UTC))
        client = JIRA(server=jira.base_url, basic_auth=(jira.email, jira.api_token), max_retries=0)
        jira.clock.advance(timedelta(hours=5))
        jira.inject(status=429, retry_after=2, times=1, path_prefix="/rest/api/2/issue")

Standalone: ``python -m connector.sandbox.jira --port 8081`` (credentials from JIRA_USER and
JIRA_TOKEN, webhook secret from JIRA_WEBHOOK_SECRET, as the connector reads them).

HTTP writes run as the authenticated (connector) account; the Python methods
`create_issue`, `add_comment`, `set_status` and `set_fields` act as human agents or
customers and fire the same webhooks. `add_approval` / `decide_approval` put Jira Service
Management approvals on an issue and answer them as their approvers
(`GET /rest/servicedeskapi/request/{key}/approval` lists them; see `jira_approvals`).
`GET /rest/api/2/user` answers a user's full profile with its `locale` (every user has one,
"en_US" unless `add_user(..., locale="zh_CN")` or `set_locale` says otherwise; None hides it).

For `connector doctor` it also answers the site-configuration reads (`/mypermissions`,
`/project/{key}`, `/project/{key}/statuses`, `/priority`, `/groups/picker`,
`/user/assignable/search`, and the admin `/rest/webhooks/1.0/webhook`), and a test can set
the site up wrong the way an admin could: `remove_field`, `take_off_edit_screen`,
`remove_option`, `remove_status`, `remove_transition`, `require_transition_field`,
`remove_priority`, `remove_group`, `revoke_permission`, `remove_webhooks` /
`register_webhook`, and `connector_admin=False` (the default: a connector account is not a
Jira administrator, so the admin webhooks answer 403). Permissions are reported by
`/mypermissions` only; writes do not check them.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from connector.sandbox import jira_jql
from connector.sandbox.jira_approvals import APPROVAL_PAGE_DEFAULT, ApprovalBook
from connector.sandbox.jira_spec import JiraSpec
from connector.sandbox.jira_store import (
    Change,
    FieldDef,
    JiraApiError,
    JiraStore,
    SandboxUser,
    ScreenField,
    StatusDef,
    TransitionDef,
    DEFAULT_STATUSES,
    DEFAULT_TRANSITIONS,
    ISSUE_TYPES,
    adf_text,
    cannot_set,
    is_internal,
    jira_time,
)
from connector.sandbox.server import (
    SandboxControls,
    Call,
    CallLog,
    Clock,
    Delivery,
    Fault,
    FaultInjector,
    ThreadedServer,
    WebhookDispatcher,
)

__all__ = ["JiraSandbox", "JiraApiError", "Clock", "Call", "Delivery", "Fault", "CONNECTOR", "AGENT", "CUSTOMER"]

log = logging.getLogger(__name__)

CONNECTOR = "acc-connector"
AGENT = "acc-agent"
CUSTOMER = "acc-customer"

NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."
CLOUD_SEARCH_GONE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
ALL_WEBHOOK_EVENTS = frozenset({"jira:issue_created", "jira:issue_updated", "comment_created"})
# Project permissions `GET /mypermissions` answers for: keys from the list in the OpenAPI
# document's "Get my permissions" (`GET /rest/api/3/mypermissions`), where SERVICEDESK_AGENT
# is marked "Jira Service Desk only" (estuary/connectors#3274 checks agent access the same
# way); an unknown key is the operation's documented 400.
PROJECT_PERMISSIONS: dict[str, str] = {
    "BROWSE_PROJECTS": "Browse Projects", "CREATE_ISSUES": "Create Issues", "EDIT_ISSUES": "Edit Issues",
    "ADD_COMMENTS": "Add Comments", "TRANSITION_ISSUES": "Transition Issues", "ASSIGN_ISSUES": "Assign Issues",
    "ASSIGNABLE_USER": "Assignable User", "RESOLVE_ISSUES": "Resolve Issues",
    "DELETE_OWN_COMMENTS": "Delete Own Comments", "EDIT_OWN_COMMENTS": "Edit Own Comments",
    "SCHEDULE_ISSUES": "Schedule Issues", "CLOSE_ISSUES": "Close Issues",
}
SERVICEDESK_PERMISSION = "SERVICEDESK_AGENT"
# The global permission `GET /rest/api/2/user` needs ("Browse users and groups"), answered by
# /mypermissions like the project ones ("Global permissions are unaffected by context", the
# OpenAPI document's "Get my permissions"); granted by `browse_users`.
GLOBAL_PERMISSIONS: dict[str, str] = {"USER_PICKER": "Browse users and groups"}
NOT_ADMIN = "You do not have permission to access this resource: it needs the Jira Administrators global permission."

# How much of an issue's comments and changelog one response embeds. `total` always counts
# them all; the oldest are the ones dropped; the rest is paged from /issue/{key}/comment and
# /issue/{key}/changelog (or POST /rest/api/3/changelog/bulkfetch).
# - Cloud GET issue: the newest 100 changelog entries and at most 100 comments
#   (atlassian-mcp-server#230: "100 of 120 comments ... the oldest comments were the ones
#   dropped"; pycontribs/jira#1938: Cloud returns at most 100 comments a read). Data Center
#   embeds them all (pycontribs/jira#1938: "Jira Server appears to return all comments").
# - Search with expand=changelog: at most 40 changelog entries per issue (JRACLOUD-96459).
#   No vendor source states a comment cap for search; failing closed, search embeds at most
#   as many comments as an issue read, on Cloud and Data Center alike.
ISSUE_COMMENT_CAP = 100
ISSUE_CHANGELOG_CAP = 100
SEARCH_COMMENT_CAP = 100
SEARCH_CHANGELOG_CAP = 40
# Page sizes of the paging endpoints on Cloud (the documents' defaults; Cloud never returns
# more comments than that, pycontribs/jira#1938). Data Center returns every comment when
# maxResults is not given, and honours it when it is.
COMMENT_PAGE_MAX = 100
CHANGELOG_PAGE_MAX = 100
BULK_CHANGELOG_DEFAULT = 1000
BULK_CHANGELOG_MAX = 10000
BULK_CHANGELOG_ISSUES_MAX = 1000

Handler = Callable[[Request, dict[str, str], int], tuple[int, Any]]


def _route(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")


class JiraSandbox(SandboxControls):
    """A Jira Cloud (or Data Center) site with one service-desk project, served over HTTP."""

    def __init__(
        self,
        *,
        deployment: str = "Cloud",
        email: str = "connector@example.com",
        api_token: str = "sandbox-api-token",
        pat: str = "sandbox-personal-access-token",
        project_key: str = "SUP",
        project_name: str = "Support",
        timezone: str = "UTC",
        clock: Clock | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_events: Iterable[str] = ALL_WEBHOOK_EVENTS,
        deliver_webhooks: bool = True,
        validate: bool = True,
        validate_responses: bool = False,
        custom_fields: Sequence[FieldDef] | None = None,
        statuses: Sequence[StatusDef] = DEFAULT_STATUSES,
        transitions: Sequence[TransitionDef] = DEFAULT_TRANSITIONS,
        components: Iterable[str] | None = None,
        service_management: bool = True,
        connector_admin: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if deployment not in ("Cloud", "Server"):
            raise ValueError("deployment must be 'Cloud' or 'Server'")
        self.deployment = deployment
        self.email = email
        self.api_token = api_token
        self.pat = pat
        self.tz = ZoneInfo(timezone)
        self.clock = clock or Clock()
        self.validate = validate
        self.validate_responses = validate_responses
        # Response-vs-document mismatches; tests assert this stays empty.
        self.spec_violations: list[str] = []
        self._spec = JiraSpec()
        self._lock = threading.RLock()
        self.store = JiraStore(project_key=project_key, project_name=project_name, tz=self.tz,
                               deployment=deployment, custom_fields=custom_fields, statuses=statuses,
                               transitions=transitions, components=components)
        # False: a project without Jira Service Management, where no comment is internal
        # (`jsdPublic` is true "when the site doesn't use Jira Service Desk or the project
        # isn't a Jira Service Desk project": Atlassian's Comment schema).
        self.service_management = service_management
        # What the connector account may do in the project (`GET /mypermissions`); tests
        # take permissions away with `revoke_permission`. Only reported, not enforced on writes.
        self.connector_permissions: set[str] = set(PROJECT_PERMISSIONS) - {"ASSIGNABLE_USER"}
        if service_management:
            self.connector_permissions.add(SERVICEDESK_PERMISSION)
        # Jira Administrators global permission: needed to read the admin webhooks. A
        # connector account usually is not one, so the default is False.
        self.connector_admin = connector_admin
        # *Browse users and groups* global permission: needed by `GET /user` (its documented
        # 403). Granted by default (a stock site gives it to every licensed user); tests take it away.
        self.browse_users = True
        self.store.add_user(SandboxUser(CONNECTOR, "connector", "Support Connector", email))
        self.store.add_user(SandboxUser(AGENT, "alice", "Alice Agent", "alice@example.com"))
        self.store.add_user(SandboxUser(CUSTOMER, "carl", "Carl Customer", "carl@example.com",
                                        account_type="customer"))
        self._faults = FaultInjector()
        self._calls = CallLog()
        self.webhook_secret = webhook_secret
        self.webhook_events = frozenset(webhook_events)
        self.webhooks = WebhookDispatcher(self._sign, url=webhook_url, enabled=deliver_webhooks,
                                          identifier_header="X-Atlassian-Webhook-Identifier")
        # The site's admin webhooks (System > WebHooks), as `GET /rest/webhooks/1.0/webhook`
        # lists them: the one this sandbox delivers, when it delivers any.
        self.admin_webhooks: list[dict[str, Any]] = []
        if webhook_url:
            self.register_webhook("Support connector", webhook_url, self.webhook_events)
        self._server = ThreadedServer(self.wsgi_app, host=host, port=port)
        self.store.base_url = f"http://{host}:{port or 0}"
        self._routes: list[tuple[str, str, re.Pattern[str], Handler, bool]] = []
        for version in (2, 3):
            base = f"/rest/api/{version}"
            for method, path, handler, anonymous in (
                ("GET", "/serverInfo", self._server_info, True),
                ("GET", "/myself", self._myself, False),
                ("GET", "/field", self._fields, False),
                ("POST", "/issue", self._create, False),
                ("GET", "/issue/{issueIdOrKey}", self._get_issue, False),
                ("PUT", "/issue/{issueIdOrKey}", self._edit_issue, False),
                ("GET", "/issue/{issueIdOrKey}/editmeta", self._get_editmeta, False),
                ("GET", "/issue/{issueIdOrKey}/transitions", self._get_transitions, False),
                ("POST", "/issue/{issueIdOrKey}/transitions", self._do_transition, False),
                ("GET", "/issue/{issueIdOrKey}/comment", self._get_comments, False),
                ("POST", "/issue/{issueIdOrKey}/comment", self._add_comment, False),
                ("DELETE", "/issue/{issueIdOrKey}/comment/{id}", self._delete_comment, False),
                ("GET", "/search/jql", self._search_jql, False),
                ("POST", "/search/jql", self._search_jql, False),
                ("GET", "/search", self._search, False),
                ("POST", "/search", self._search, False),
                ("GET", "/issue/{issueIdOrKey}/changelog", self._get_changelog, False),
                ("GET", "/mypermissions", self._my_permissions, False),
                ("GET", "/project/{projectIdOrKey}", self._get_project, False),
                ("GET", "/project/{projectIdOrKey}/statuses", self._project_statuses, False),
                ("GET", "/priority", self._priorities, False),
                ("GET", "/groups/picker", self._groups_picker, False),
                ("GET", "/user/assignable/search", self._assignable_users, False),
                ("GET", "/user", self._get_user, False),
            ):
                template = base + path
                self._routes.append((method, template, _route(template), handler, anonymous))
        # Only in REST v3 of the published document.
        template = "/rest/api/3/changelog/bulkfetch"
        self._routes.append(("POST", template, _route(template), self._bulk_changelog, False))
        # The admin webhooks REST API (Atlassian, "Webhooks": "Registering a webhook via the
        # Jira REST API", https://developer.atlassian.com/server/jira/platform/webhooks/) is
        # not part of the platform document, so requests to it are not checked against it.
        template = "/rest/webhooks/1.0/webhook"
        self._routes.append(("GET", template, _route(template), self._admin_webhooks, False))
        self._unspecified = {template}
        # Jira Service Management's request feedback (CSAT), from the service-desk REST API
        # (not the platform document): the rating a customer gave a resolved request.
        # https://developer.atlassian.com/cloud/jira/service-desk/rest/api-group-request/#api-rest-servicedeskapi-request-requestidorkey-feedback-get
        template = "/rest/servicedeskapi/request/{issueIdOrKey}/feedback"
        self._routes.append(("GET", template, _route(template), self._get_feedback, False))
        self._unspecified.add(template)
        # Jira Service Management approvals (`connector.sandbox.jira_approvals`), from the
        # service-desk REST API: https://developer.atlassian.com/cloud/jira/service-desk/rest/api-group-request/
        template = "/rest/servicedeskapi/request/{issueIdOrKey}/approval"
        self._routes.append(("GET", template, _route(template), self._get_approvals, False))
        self._unspecified.add(template)
        self.approvals = ApprovalBook()
        # The largest `limit` a page of approvals honours. The documents give the default
        # (50) and no maximum; failing closed, no more than the default. Tests lower it to
        # see paging.
        self.approval_page_max = APPROVAL_PAGE_DEFAULT

    # ------------------------------------------------------------------ seeding / human actors

    def add_user(self, account_id: str, display_name: str, email: str, *, name: str | None = None,
                 account_type: str = "atlassian", time_zone: str = "UTC", email_hidden: bool = False,
                 locale: str | None = "en_US") -> None:
        """`email_hidden`: the user's Cloud privacy setting hides the e-mail (it reads as null).
        `locale`: the profile's language (`GET /user` answers it, e.g. "zh_CN"); None: hidden."""
        with self._lock:
            self.store.add_user(SandboxUser(account_id, name or email.split("@")[0], display_name, email,
                                            account_type, time_zone, email_hidden, locale))

    def set_locale(self, user: str, locale: str | None) -> None:
        """Change a user's profile language (None: hidden by the user's privacy setting)."""
        with self._lock:
            self.store.users[self._account(user)].locale = locale

    def add_organization(self, name: str) -> str:
        """A Jira Service Management customer organization; returns its id."""
        with self._lock:
            return self.store.add_organization(name)

    def create_issue(
        self,
        summary: str,
        *,
        description: str | None = None,
        priority: str = "Medium",
        issuetype: str = "Service Request",
        labels: Sequence[str] = (),
        components: Sequence[str] = (),
        environment: str | None = None,
        reporter: str = CUSTOMER,
        assignee: str | None = None,
        fields: Mapping[str, Any] | None = None,
        created: datetime | None = None,
        status: str | None = None,
        history: Sequence[tuple[datetime, str] | tuple[datetime, str, str]] = (),
    ) -> str:
        """Seed an issue as if a customer raised it at `created`; returns its key.

        `fields` maps custom field names or ids to plain Python values (str, datetime,
        float, an option's value). `history` is [(at, status[, author])...] applied in order
        after creation; `status` alone records one change at `created`. Fires webhooks.
        """
        at = created or self.clock.now()
        if status is not None and history and history[-1][1].casefold() != status.casefold():
            raise ValueError(f"history ends in {history[-1][1]!r}, not status={status!r}")
        with self._lock:
            reporter_id = self._account(reporter)
            rest: dict[str, Any] = {
                "project": {"key": self.store.project_key}, "issuetype": {"name": issuetype},
                "summary": summary, "priority": {"name": priority}, "labels": list(labels),
                "components": [{"name": c} for c in components],
                "reporter": self._user_ref(reporter_id),
            }
            if description is not None:
                rest["description"] = description
            if environment is not None:
                rest["environment"] = environment
            if assignee is not None:
                rest["assignee"] = self._user_ref(self._account(assignee))
            rest.update(self._rest_fields(fields or {}))
            change = self.store.create(rest, actor=reporter_id, at=at)
            changes = [change]
            steps = list(history)
            if status is not None and not steps:
                steps = [(at, status)]
            for step in steps:
                step_at, step_status = step[0], step[1]
                author = self._account(step[2]) if len(step) > 2 else AGENT  # type: ignore[misc]
                changes.append(self.store.force_status(change.issue, step_status, actor=author, at=step_at))
            for c in changes:
                self._emit(c)
            return change.issue.key

    def add_comment(self, key: str, body: str, *, author: str | None = None, public: bool = True,
                    at: datetime | None = None) -> str:
        """A human comment (default: the reporter); returns the comment id. Fires webhooks."""
        with self._lock:
            issue = self.store.get(key)
            actor = self._account(author) if author else issue.values.get("reporter") or CUSTOMER
            change = self.store.add_comment(issue, body, public=public, actor=actor, at=at or self.clock.now())
            self._emit(change)
            return change.comments[0].id

    def set_status(self, key: str, status_name: str, *, author: str = AGENT, at: datetime | None = None) -> None:
        """Move an issue to any status, as an admin could; bypasses the workflow. Fires webhooks."""
        with self._lock:
            issue = self.store.get(key)
            self._emit(self.store.force_status(issue, status_name, actor=self._account(author),
                                              at=at or self.clock.now()))

    def set_fields(self, key: str, fields: Mapping[str, Any], *, author: str = CUSTOMER,
                   at: datetime | None = None) -> None:
        """Edit fields (names or ids, plain values) as a human would, e.g. a reporter adding details."""
        with self._lock:
            issue = self.store.get(key)
            self._emit(self.store.edit(issue, self._rest_fields(fields), None, actor=self._account(author),
                                       at=at or self.clock.now()))

    def give_feedback(self, key: str, rating: int, *, comment: str | None = None, author: str | None = None,
                      at: datetime | None = None) -> None:
        """The customer rates a resolved request on the portal (1–5 stars), as
        POST /rest/servicedeskapi/request/{key}/feedback does for the reporter; see
        `JiraStore.give_feedback`. Default author: the reporter. Fires webhooks."""
        with self._lock:
            issue = self.store.get(key)
            actor = self._account(author) if author else issue.values.get("reporter") or CUSTOMER
            self._emit(self.store.give_feedback(issue, rating, comment, actor=actor, at=at or self.clock.now()))

    def add_approval(self, key: str, approvers: Sequence[str], *, name: str = "Change review",
                     required: int = 1, approve_to: str | None = None, decline_to: str | None = None,
                     at: datetime | None = None) -> str:
        """A Jira Service Management approval on the issue, as an approval step creates it when
        the request enters its status; returns the approval id. `approve_to` / `decline_to`:
        the step's Approve / Decline transitions' target statuses (None: the decision moves
        nothing). No webhook: nothing on the issue changes (see `jira_approvals`)."""
        with self._lock:
            issue = self.store.get(key)
            accounts = [self._account(a) for a in approvers]
            for target in (approve_to, decline_to):
                if target is not None:
                    self.store.status(target)  # unknown status: KeyError now, not at the decision
            return self.approvals.add(issue.id, name, accounts, at or self.clock.now(), required=required,
                                      approve_to=approve_to, decline_to=decline_to).id

    def decide_approval(self, key: str, approval_id: str, approver: str, decision: str, *,
                        at: datetime | None = None) -> str:
        """An approver answers ("approve" | "decline"), as "Answer approval" does for the user
        assigned to it (anyone else: JiraApiError 403; an approval already decided: 400).
        Returns the approval's final decision. A final decision moves the issue to the step's
        Approve / Decline target, which fires `jira:issue_updated`; otherwise no webhook."""
        with self._lock:
            issue = self.store.get(key)
            approval = self.approvals.find(issue.id, approval_id)
            if approval is None:
                raise JiraApiError(404, ["The approval does not exist."])
            when = at or self.clock.now()
            account = self._account(approver)
            try:
                final = approval.decide(account, decision, when)
            except PermissionError as exc:
                raise JiraApiError(403, [str(exc)]) from None
            except RuntimeError as exc:
                raise JiraApiError(400, [str(exc)]) from None
            target = (approval.approve_to if approval.final == "approved" else approval.decline_to) if final else None
            if target is not None:
                # The step's transition runs as the approver (Atlassian: the request transitions).
                self._emit(self.store.force_status(issue, target, actor=account, at=when))
            return approval.final

    def take_off_edit_screen(self, *fields: str) -> None:
        """Remove fields (names or ids) from the project's edit screen, as an admin could:
        editmeta stops listing them and an edit that sets one answers 400."""
        with self._lock:
            for ref in fields:
                self.store.edit_screen.discard(self.store.field_by_name_or_id(ref).id)

    def put_on_edit_screen(self, *fields: str) -> None:
        with self._lock:
            for ref in fields:
                self.store.edit_screen.add(self.store.field_by_name_or_id(ref).id)

    def require_transition_field(self, to_status: str, field: str, *, required: bool = True) -> None:
        """Put `field` (name or id) on the screen of every transition into `to_status`, as an
        admin editing the workflow would; `required` makes the transition refuse to run without it."""
        with self._lock:
            definition = self.store.field_by_name_or_id(field)
            changed = []
            for transition in self.store.transitions:
                if transition.to.casefold() == to_status.casefold():
                    screen = tuple(f for f in transition.screen if f.field != definition.id)
                    transition = replace(transition, screen=(*screen, ScreenField(definition.id, required)))
                changed.append(transition)
            self.store.transitions = tuple(changed)

    # ---- site configuration an admin could get wrong (for `connector doctor` tests)

    def revoke_permission(self, *keys: str) -> None:
        """Take project permissions (EDIT_ISSUES, SERVICEDESK_AGENT …) from the connector account.

        Without EDIT_ISSUES its editmeta is empty and every field of an edit "cannot be set"
        (a field the account may not change answers exactly like one off the screen:
        go-jira/jira#23, tenable/integration-jira-cloud#297); without TRANSITION_ISSUES no
        transition is offered. The other permissions are only reported by /mypermissions."""
        with self._lock:
            self.connector_permissions.difference_update(keys)
            self.store.connector_can_edit = "EDIT_ISSUES" in self.connector_permissions
            self.store.connector_can_transition = "TRANSITION_ISSUES" in self.connector_permissions

    def register_webhook(self, name: str, url: str, events: Iterable[str], *, enabled: bool = True,
                         jql: str = "") -> None:
        """Add an admin webhook, as System > WebHooks would (replacing one of the same name)."""
        with self._lock:
            self.admin_webhooks = [w for w in self.admin_webhooks if w["name"] != name]
            self.admin_webhooks.append({
                "name": name, "url": url, "excludeBody": False,
                "filters": {"issue-related-events-section": jql}, "events": sorted(events), "enabled": enabled,
                "lastUpdatedUser": AGENT, "lastUpdatedDisplayName": "Alice Agent",
                "lastUpdated": int(self.clock.now().timestamp() * 1000),
            })

    def remove_webhooks(self) -> None:
        with self._lock:
            self.admin_webhooks = []

    def remove_priority(self, name: str) -> None:
        """Take a priority out of the site's priority scheme."""
        with self._lock:
            self.store.priorities = [(pid, n) for pid, n in self.store.priorities if n.casefold() != name.casefold()]

    def remove_group(self, name: str) -> None:
        with self._lock:
            self.store.groups.discard(name)

    def remove_status(self, name: str) -> None:
        """Delete a status from the workflow, with every transition into or out of it."""
        with self._lock:
            folded = name.casefold()
            self.store.statuses.pop(folded, None)
            self.store.transitions = tuple(
                replace(t, sources=tuple(s for s in t.sources if s.casefold() != folded))
                for t in self.store.transitions if t.to.casefold() != folded)

    def remove_transition(self, to_status: str, *, from_status: str | None = None) -> None:
        """Remove the transitions into `to_status` (only from `from_status`, when given)."""
        with self._lock:
            changed = []
            for t in self.store.transitions:
                if t.to.casefold() == to_status.casefold():
                    if from_status is None:
                        continue
                    t = replace(t, sources=tuple(s for s in t.sources if s.casefold() != from_status.casefold()))
                    if not t.sources:
                        continue
                changed.append(t)
            self.store.transitions = tuple(changed)

    def remove_option(self, field: str, option: str) -> None:
        """Delete a dropdown option of a select field (name or id)."""
        with self._lock:
            definition = self.store.field_by_name_or_id(field)
            kept = tuple(o for o in definition.options if o.casefold() != option.casefold())
            self.store.fields[definition.id] = replace(definition, options=kept)

    def remove_field(self, field: str) -> None:
        """Delete a custom field from the site (name or id)."""
        with self._lock:
            definition = self.store.field_by_name_or_id(field)
            del self.store.fields[definition.id]
            self.store.edit_screen.discard(definition.id)

    def issue(self, key: str, *, expand: str = "changelog,names") -> dict[str, Any]:
        """The issue's REST v2 representation, as GET /issue/{key}?expand=... returns it."""
        with self._lock:
            return self.store.issue_json(self.store.get(key), expand=expand)

    def _account(self, ref: str) -> str:
        user = self.store.find_user(ref)
        if user is None:
            raise KeyError(f"unknown user {ref!r}; add it with add_user()")
        return user.account_id

    def _user_ref(self, account_id: str) -> dict[str, str]:
        user = self.store.users[account_id]
        return {"accountId": user.account_id} if self.store.cloud else {"name": user.name}

    def _rest_fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for ref, value in fields.items():
            definition = self.store.field_by_name_or_id(ref)
            if isinstance(value, datetime):
                value = jira_time(value, self.tz)
            elif definition.kind == "option" and isinstance(value, str):
                value = {"value": value}
            elif definition.kind == "priority" and isinstance(value, str):
                value = {"name": value}
            elif definition.kind == "user" and isinstance(value, str):
                value = self._user_ref(self._account(value))
            elif definition.kind == "components" and value and isinstance(value[0], str):
                value = [{"name": v} for v in value]
            elif definition.kind == "organizations" and value and isinstance(value[0], str):
                value = [int(self.store.add_organization(v)) for v in value]
            out[definition.id] = value
        return out

    # ------------------------------------------------------------------ webhooks

    def _sign(self, body: bytes) -> dict[str, str]:
        if not self.webhook_secret:
            return {}
        digest = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature": f"sha256={digest}"}

    def _emit(self, change: Change) -> None:
        if not change.changed:
            return
        issue = change.issue
        timestamp = int(change.at.timestamp() * 1000)
        user = self.store.user_json(change.actor)
        issue_body = self.store.issue_json(issue, comment_cap=ISSUE_COMMENT_CAP if self.store.cloud else None)
        events: list[tuple[str, dict[str, Any]]] = []
        if change.created:
            events.append(("jira:issue_created", {
                "timestamp": timestamp, "webhookEvent": "jira:issue_created",
                "issue_event_type_name": "issue_created", "user": user, "issue": issue_body,
            }))
        else:
            payload: dict[str, Any] = {
                "timestamp": timestamp, "webhookEvent": "jira:issue_updated",
                "issue_event_type_name": ("issue_generic" if change.status_changed else
                                          "issue_updated" if change.history else "issue_commented"),
                "user": user, "issue": issue_body,
            }
            if change.history is not None:
                payload["changelog"] = {"id": change.history.id, "items": [dict(i) for i in change.history.items]}
            if change.comments:
                payload["comment"] = self.store.comment_json(issue, change.comments[-1])
            events.append(("jira:issue_updated", payload))
        summary_fields = {k: issue_body["fields"][k] for k in
                          ("summary", "issuetype", "project", "assignee", "priority", "status")}
        for comment in change.comments:
            payload = {"timestamp": timestamp, "webhookEvent": "comment_created",
                       "comment": self.store.comment_json(issue, comment)}
            if self.store.cloud:
                payload["issue"] = {"id": str(issue.id), "self": issue_body["self"], "key": issue.key,
                                    "fields": summary_fields}
            # Data Center sends no `issue` (and no `user`): only the comment, whose `self` link
            # names the issue by id (Commit451/skyhook#152, captured from Jira 8.13;
            # DefectDojo/django-DefectDojo#3217).
            events.append(("comment_created", payload))
        for event, payload in events:
            if event in self.webhook_events:
                self.webhooks.send(event, json.dumps(payload).encode())

    # ------------------------------------------------------------------ HTTP

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        response, template = self._respond(request)
        self._calls.record(request.method, template, response.status_code)
        return response(environ, start_response)

    def _respond(self, request: Request) -> tuple[Response, str]:
        method, path = request.method.upper(), request.path
        matched = None
        for route_method, template, pattern, handler, anonymous in self._routes:
            m = pattern.match(path)
            if m and route_method == method:
                matched = (template, handler, anonymous, m.groupdict())
                break
        template = matched[0] if matched else path
        fault = self._faults.take(method, path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status is not None:
                headers = {"Retry-After": _retry_after(fault.retry_after)} if fault.retry_after is not None else {}
                message = "Rate limit exceeded." if fault.status == 429 else f"HTTP {fault.status} (injected)"
                payload = fault.body_for(request)
                if isinstance(payload, str):
                    return Response(payload, status=fault.status, headers=headers, content_type="text/html"), template
                payload = payload if payload is not None else {"errorMessages": [message], "errors": {}}
                return _json(fault.status, payload, headers), template
        authenticated = self._authenticate(request.headers.get("Authorization"))
        if authenticated is False or (authenticated is None and not (matched and matched[2])):
            return _json(401, {"errorMessages": [NOT_AUTHENTICATED], "errors": {}},
                         {"WWW-Authenticate": 'Basic realm="protected-area"'}), template
        if matched is None:
            return _json(404, {"errorMessages": [f"No REST resource at {method} {path}."], "errors": {}}), template
        _, handler, _, params = matched
        version = int(path.split("/")[3]) if path.startswith("/rest/api/") else 2
        body = request.get_data()
        try:
            if method in ("POST", "PUT") and body:
                try:
                    json.loads(body)
                except ValueError as exc:
                    raise JiraApiError(400, [f"Unexpected character in the JSON body: {exc}"]) from None
            if self.validate and template not in self._unspecified:
                problem = self._spec.validate_request(method, path, request.args, request.headers, body,
                                                      request.content_type or "application/json")
                if problem:
                    raise JiraApiError(400, [f"The request does not match the Jira REST API: {problem}"])
            with self._lock:
                status, payload = handler(request, params, version)
        except JiraApiError as err:
            status, payload = err.status, err.body()
        response = _json(status, payload) if payload is not None else Response(status=status)
        # A 204 has no body to check, although the document declares a JSON one.
        if self.validate_responses and status < 500 and status != 204 and template not in self._unspecified:
            problem = self._spec.validate_response(
                method, path, request.args, request.headers, body, request.content_type or "application/json",
                status, Headers(response.headers), response.get_data(), response.content_type or "application/json")
            if problem:
                self.spec_violations.append(f"{method} {template} -> {status}: {problem}")
        return response, template

    def _authenticate(self, header: str | None) -> bool | None:
        """True: valid credentials; False: credentials given but wrong; None: none given."""
        if not header:
            return None
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, secret = base64.b64decode(credentials).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            connector = self.store.users[CONNECTOR]
            return hmac.compare_digest(secret, self.api_token) and user in (connector.email, connector.name)
        if scheme.lower() == "bearer":
            return hmac.compare_digest(credentials.strip(), self.pat)
        return False

    # ---- endpoint handlers (run under self._lock)

    def _server_info(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        cloud = self.deployment == "Cloud"
        number = [1001, 0, 0] if cloud else [9, 12, 15]
        return 200, {
            "baseUrl": self.store.base_url, "displayUrl": self.store.base_url,
            "version": "1001.0.0-SNAPSHOT" if cloud else "9.12.15", "versionNumbers": number,
            "deploymentType": self.deployment, "buildNumber": 100270 if cloud else 9120015,
            "buildDate": "2026-01-01T00:00:00.000+0000", "serverTime": jira_time(self.clock.now(), self.tz),
            "scmInfo": "sandbox", "serverTitle": "Jira Sandbox", "serverTimeZone": str(self.tz),
        }

    def _myself(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        me = self.store.user_json(CONNECTOR, version) or {}
        return 200, {**me, "locale": "en_US", "groups": {"size": 1, "items": []},
                     "applicationRoles": {"size": 1, "items": []}}

    def _my_permissions(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        """`GET /mypermissions?projectKey=…&permissions=A,B`: each asked key with `havePermission`.

        Cloud requires `permissions` and answers 400 for an empty list or an unknown key (the
        operation's documented 400); SERVICEDESK_AGENT is known only with Service Management."""
        asked = [k.strip() for k in (request.args.get("permissions") or "").split(",") if k.strip()]
        if not asked and self.deployment == "Cloud":
            raise JiraApiError(400, ["The permissions query parameter is required."])
        known = {**PROJECT_PERMISSIONS, **GLOBAL_PERMISSIONS}
        if self.service_management:
            known[SERVICEDESK_PERMISSION] = "Service Desk Agent"
        unknown = [k for k in asked if k not in known]
        if unknown:
            raise JiraApiError(400, [f"No project permission found for key(s): {', '.join(unknown)}"])
        project = request.args.get("projectKey") or request.args.get("projectId")
        if project is not None and project not in (self.store.project_key, self.store.project_id):
            raise JiraApiError(404, [f"No project could be found with key '{project}'."])
        keys = asked or sorted(known)
        return 200, {"permissions": {key: {
            "id": str(10 + sorted(known).index(key)), "key": key, "name": known[key],
            "type": "GLOBAL" if key in GLOBAL_PERMISSIONS else "PROJECT",
            "description": f"Ability to {known[key].lower()}.",
            "havePermission": self.browse_users if key == "USER_PICKER" else key in self.connector_permissions,
        } for key in keys}}

    def _get_project(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        if params["projectIdOrKey"] not in (self.store.project_key, self.store.project_id):
            raise JiraApiError(404, [f"No project could be found with key '{params['projectIdOrKey']}'."])
        base = self.store.api(version)
        # A Service Management project's type key is `service_desk` (Project.projectTypeKey).
        kind = "service_desk" if self.service_management else "software"
        return 200, {
            "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
            "self": f"{base}/project/{self.store.project_id}", "id": self.store.project_id,
            "key": self.store.project_key, "name": self.store.project_name, "description": "",
            "avatarUrls": {size: f"https://avatar.example/project?s={size.split('x')[0]}"
                           for size in ("48x48", "24x24", "16x16", "32x32")},
            "projectTypeKey": kind, "simplified": False, "style": "classic", "isPrivate": False,
            "assigneeType": "UNASSIGNED", "properties": {},
            "issueTypes": [self._issue_type_json(t, version) for t in ISSUE_TYPES],
        }

    def _issue_type_json(self, issue_type: tuple[str, str, str], version: int) -> dict[str, Any]:
        tid, name, description = issue_type
        return {"self": f"{self.store.api(version)}/issuetype/{tid}", "id": tid, "description": description,
                "iconUrl": f"{self.store.base_url}/images/icons/issuetypes/generic.png", "name": name,
                "subtask": False, "hierarchyLevel": 0}

    def _project_statuses(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        """Every issue type of the project with the statuses of its workflow (one workflow here)."""
        if params["projectIdOrKey"] not in (self.store.project_key, self.store.project_id):
            raise JiraApiError(404, [f"No project could be found with key '{params['projectIdOrKey']}'."])
        statuses = [self.store.status_json(s.name, version) for s in self.store.statuses.values()]
        return 200, [{"self": f"{self.store.api(version)}/issuetype/{tid}", "id": tid, "name": name,
                      "subtask": False, "statuses": statuses} for tid, name, _ in ISSUE_TYPES]

    def _priorities(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        return 200, [{"self": f"{self.store.api(version)}/priority/{pid}", "statusColor": "#cccccc",
                      "description": f"{name} priority", "name": name, "id": pid,
                      "iconUrl": f"{self.store.base_url}/images/icons/priorities/{name.lower()}.svg"}
                     for pid, name in self.store.priorities]

    def _groups_picker(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        """Groups whose name contains `query` (case-insensitive), sorted (Find groups)."""
        query = (request.args.get("query") or "").casefold()
        limit = int(request.args.get("maxResults") or 20)
        found = sorted(g for g in self.store.groups if query in g.casefold())
        shown = found[:limit]
        return 200, {"header": f"Showing {len(shown)} of {len(found)} matching groups", "total": len(found),
                     "groups": [{"name": g, "html": g, "groupId": f"group-{g}", "labels": []} for g in shown]}

    def _assignable_users(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        """Users who may be assigned issues of the project: agents, not portal customers."""
        project = request.args.get("project")
        if not (project or request.args.get("issueKey") or request.args.get("issueId")):
            raise JiraApiError(400, ["One of 'issueKey', 'issueId' or 'project' is required."])
        if project is not None and project not in (self.store.project_key, self.store.project_id):
            raise JiraApiError(404, [f"No project could be found with key '{project}'."])
        wanted = request.args.get("accountId") if self.store.cloud else request.args.get("username")
        query = (request.args.get("query") or "").casefold()
        users = [u for u in self.store.users.values() if u.account_type != "customer"]
        if wanted:
            users = [u for u in users if wanted == (u.account_id if self.store.cloud else u.name)]
        elif query:
            users = [u for u in users if any(query in i.casefold() for i in u.identifiers())]
        return 200, [self.store.user_json(u.account_id, version) for u in users]

    def _get_user(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        """`GET /user`: the full User, with `locale` (Jira platform OpenAPI, operation getUser).

        Cloud names the user by `accountId` only: `username` and `key` are "no longer
        available" (the document), and a request without `accountId` is refused with "The
        'accountId' query parameter needs to be provided" (400: jenkinsci/jira-plugin#474).
        Data Center by `username` or `key` (Atlassian KB "How to Retrieve Application Access of
        a User in Jira": `/rest/api/2/user?username=admin` answers the User with `"locale":
        "en_US"`); an unknown one is 404 "The user named '…' does not exist"
        (solidify/jira-azuredevops-migrator#26). 403 without *Browse users and groups* and 404
        for an unknown user are the operation's documented answers."""
        if not self.browse_users:
            raise JiraApiError(403, ["You do not have the permission to browse users and groups."])
        if self.store.cloud:
            wanted = request.args.get("accountId")
            if not wanted:
                raise JiraApiError(400, ["The 'accountId' query parameter needs to be provided"])
            user = self.store.users.get(wanted)
        else:
            wanted = request.args.get("username") or request.args.get("key")
            if not wanted:
                raise JiraApiError(400, ["Either the 'username' or the 'key' query parameter must be provided"])
            # The sandbox's Data Center key is the username (`JiraStore.user_json`).
            user = next((u for u in self.store.users.values() if u.name == wanted), None)
        if user is None:
            message = (f"The user with account ID '{wanted}' does not exist" if self.store.cloud
                       else f"The user named '{wanted}' does not exist")
            raise JiraApiError(404, [message])
        return 200, self.store.full_user_json(user.account_id, version)

    def _admin_webhooks(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        """`GET /rest/webhooks/1.0/webhook`: every admin webhook; Jira administrators only
        ("Requires administrator permission": jira.js's server `getWebhooks`, after Atlassian's
        Data Center webhooks REST API). The status of the refusal is not documented; 403 is
        what Jira answers an authenticated user lacking a global permission."""
        if not self.connector_admin:
            raise JiraApiError(403, [NOT_ADMIN])
        return 200, [{"self": f"{self.store.base_url}/rest/webhooks/1.0/webhook/{number}", **w}
                     for number, w in enumerate(self.admin_webhooks, start=1)]

    def _fields(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        return 200, self.store.field_catalogue()

    def _create(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        body = request.get_json(silent=True) or {}
        if body.get("update"):
            raise JiraApiError(400, ["The sandbox does not support 'update' when creating an issue; use 'fields'."])
        change = self.store.create(self._rich_text_to_plain(body.get("fields") or {}, version),
                                   actor=CONNECTOR, at=self.clock.now())
        self._emit(change)
        issue = change.issue
        return 201, {"id": str(issue.id), "key": issue.key, "self": f"{self.store.api(version)}/issue/{issue.id}"}

    def _get_issue(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        issue = self.store.get(params["issueIdOrKey"])
        cloud = self.deployment == "Cloud"
        return 200, self.store.issue_json(issue, version=version, fields=request.args.getlist("fields") or None,
                                          expand=request.args.get("expand"),
                                          comment_cap=ISSUE_COMMENT_CAP if cloud else None,
                                          changelog_cap=ISSUE_CHANGELOG_CAP if cloud else None)

    def _edit_issue(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        issue = self.store.get(params["issueIdOrKey"])
        body = request.get_json(silent=True) or {}
        if not self.store.connector_can_edit:
            named = [*(body.get("fields") or {}), *(body.get("update") or {})]
            raise JiraApiError(400, [], {fid: cannot_set(fid) for fid in named})
        change = self.store.edit(issue, self._rich_text_to_plain(body.get("fields") or {}, version),
                                 body.get("update") or {}, actor=CONNECTOR, at=self.clock.now(), version=version)
        self._emit(change)
        return 204, None

    def _get_editmeta(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        issue = self.store.get(params["issueIdOrKey"])
        return 200, self.store.editmeta_json(issue, version)

    def _get_transitions(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        issue = self.store.get(params["issueIdOrKey"])
        wanted = request.args.get("transitionId")
        expands = {e.strip() for e in (request.args.get("expand") or "").split(",")}
        transitions = [self.store.transition_json(t, version, with_fields="transitions.fields" in expands)
                       for t in self.store.available_transitions(issue) if wanted is None or t.id == wanted]
        return 200, {"expand": "transitions", "transitions": transitions}

    def _do_transition(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        issue = self.store.get(params["issueIdOrKey"])
        body = request.get_json(silent=True) or {}
        transition = body.get("transition") or {}
        change = self.store.transition(issue, transition.get("id"),
                                       self._rich_text_to_plain(body.get("fields") or {}, version),
                                       body.get("update") or {}, actor=CONNECTOR, at=self.clock.now(),
                                       version=version)
        self._emit(change)
        return 204, None

    def _get_feedback(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        """GET /rest/servicedeskapi/request/{key}/feedback: {"type": "csat", "rating", "comment"};
        404 when the customer has not rated the request."""
        feedback = self.store.feedback_json(self.store.get(params["issueIdOrKey"]))
        if feedback is None:
            return 404, {"errorMessage": "No feedback was found for this request."}
        return 200, feedback

    def _get_approvals(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        """GET /rest/servicedeskapi/request/{key}/approval: a page of the request's approvals.

        A project that is not a service project has no requests: Cloud answers 403 there
        (sooperset/mcp-atlassian#1051, the service-desk API on a non-JSM project); Data
        Center without the Service Management app has no such resource (404)."""
        if not self.service_management:
            if self.deployment == "Cloud":
                return 403, {"errorMessage": "The request is not a Jira Service Management request.",
                             "i18nErrorMessage": {"i18nKey": "sd.request.error.not.a.request", "parameters": []}}
            raise JiraApiError(404, [f"No REST resource at {request.method} {request.path}."])
        issue = self.store.get(params["issueIdOrKey"])
        try:
            start = int(request.args.get("start") or 0)
            limit = int(request.args.get("limit") or APPROVAL_PAGE_DEFAULT)
        except ValueError:
            return 400, {"errorMessage": "start and limit must be integers."}
        if start < 0 or limit < 1:
            return 400, {"errorMessage": "start must be 0 or more and limit 1 or more."}
        limit = min(limit, self.approval_page_max)
        return 200, self.approvals.page(issue.id, start, limit, base=self.store.base_url, key=issue.key,
                                        user_json=self._sd_user_json, date_json=self._sd_date_json,
                                        viewer=CONNECTOR)

    def _sd_user_json(self, account_id: str) -> dict[str, Any]:
        """The service-desk API's UserDTO: accountId on Cloud, key and name on Data Center."""
        user = self.store.users[account_id]
        query = f"accountId={user.account_id}" if self.store.cloud else f"username={user.name}"
        link = f"{self.store.base_url}/rest/api/2/user?{query}"
        out: dict[str, Any] = {"displayName": user.display_name, "active": True, "timeZone": user.time_zone,
                               "_links": {"jiraRest": link, "self": link}}
        if self.store.cloud:
            out["accountId"] = user.account_id
        else:
            out.update({"key": user.account_id, "name": user.name})
        if not user.email_hidden:
            out["emailAddress"] = user.email
        return out

    def _sd_date_json(self, at: datetime) -> dict[str, Any]:
        """The service-desk API's DateDTO."""
        local = at.astimezone(self.tz)
        return {"iso8601": local.strftime("%Y-%m-%dT%H:%M:%S%z"), "jira": jira_time(at, self.tz),
                "friendly": local.strftime("%d/%b/%y %I:%M %p"), "epochMillis": int(at.timestamp() * 1000)}

    def _get_comments(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        """A page of comments, oldest first unless `orderBy=-created` (Get comments)."""
        issue = self.store.get(params["issueIdOrKey"])
        start = max(0, int(request.args.get("startAt") or 0))
        asked = request.args.get("maxResults")
        if self.deployment == "Cloud":
            limit = min(int(asked), COMMENT_PAGE_MAX) if asked else COMMENT_PAGE_MAX
        else:
            limit = int(asked) if asked else len(issue.comments)
        limit = max(0, limit)
        ordered = sorted(issue.comments, key=lambda c: (c.created, int(c.id)),
                         reverse=request.args.get("orderBy") == "-created")
        properties = "properties" in (request.args.get("expand") or "").split(",")
        page = [self.store.comment_json(issue, c, version, properties=properties)
                for c in ordered[start:start + limit]]
        return 200, {"startAt": start, "maxResults": limit, "total": len(issue.comments), "comments": page}

    def _get_changelog(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        """A page of the changelog, oldest first (Cloud's Get changelogs; not in Data Center)."""
        if self.deployment != "Cloud":
            raise JiraApiError(404, [f"No REST resource at {request.method} {request.path}."])
        issue = self.store.get(params["issueIdOrKey"])
        start = max(0, int(request.args.get("startAt") or 0))
        asked = request.args.get("maxResults")
        limit = max(1, min(int(asked), CHANGELOG_PAGE_MAX) if asked else CHANGELOG_PAGE_MAX)
        values = [self.store.history_json(h, version) for h in issue.histories[start:start + limit]]
        url = f"{self.store.api(version)}/issue/{issue.key}/changelog"
        last = start + len(values) >= len(issue.histories)
        body: dict[str, Any] = {"self": f"{url}?startAt={start}&maxResults={limit}", "maxResults": limit,
                                "startAt": start, "total": len(issue.histories), "isLast": last, "values": values}
        if not last:
            body["nextPage"] = f"{url}?startAt={start + limit}&maxResults={limit}"
        return 200, body

    def _bulk_changelog(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        """POST /rest/api/3/changelog/bulkfetch: the changelogs of up to 1,000 issues, oldest
        change first (then smallest issue id), paged by `nextPageToken` (Cloud only)."""
        if self.deployment != "Cloud":
            raise JiraApiError(404, [f"No REST resource at {request.method} {request.path}."])
        body = request.get_json(silent=True) or {}
        refs = body.get("issueIdsOrKeys") or []
        if not refs or len(refs) > BULK_CHANGELOG_ISSUES_MAX:
            raise JiraApiError(400, [f"issueIdsOrKeys must name 1 to {BULK_CHANGELOG_ISSUES_MAX} issues."])
        limit = max(1, min(int(body.get("maxResults") or BULK_CHANGELOG_DEFAULT), BULK_CHANGELOG_MAX))
        wanted_fields = set(body.get("fieldIds") or ())
        issues = {}
        for ref in refs:
            try:
                found = self.store.get(str(ref))
            except JiraApiError:
                continue  # an issue the caller cannot see is left out, not an error
            issues[found.id] = found
        entries = []
        for issue in issues.values():
            for history in issue.histories:
                items = [i for i in history.items if not wanted_fields or i.get("fieldId") in wanted_fields]
                if items:
                    entries.append((history.created, issue.id, int(history.id), issue, history, items))
        entries.sort(key=lambda e: e[:3])
        fingerprint = json.dumps(sorted(str(r) for r in refs)) + json.dumps(sorted(wanted_fields))
        offset = _decode_token(body.get("nextPageToken"), fingerprint)
        page = entries[offset:offset + limit]
        grouped: dict[int, list[dict[str, Any]]] = {}
        for _, issue_id, _, issue, history, items in page:
            grouped.setdefault(issue_id, []).append({**self.store.history_json(history, version), "items": items})
        answer: dict[str, Any] = {"issueChangeLogs": [{"issueId": str(issue_id), "changeHistories": histories}
                                                      for issue_id, histories in grouped.items()]}
        if offset + limit < len(entries):
            answer["nextPageToken"] = _encode_token(offset + limit, fingerprint)
        return 200, answer

    def _add_comment(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        issue = self.store.get(params["issueIdOrKey"])
        body = request.get_json(silent=True) or {}
        # The property sd.public.comment = {"internal": true} makes a Jira Service Management
        # internal note (pycontribs/jira#313, jenkinsci/jira-plugin#375); without it a comment
        # created through the platform API is public (Comment schema, `jsdPublic`).
        # Comments are allowed whatever the status's jira.issue.editable says: commenting is its
        # own permission (`comment` in Atlassian's "Use workflow properties").
        internal = self.service_management and is_internal(body.get("properties"))
        change = self.store.add_comment(issue, body.get("body"), public=not internal,
                                        actor=CONNECTOR, at=self.clock.now(), version=version)
        self._emit(change)
        properties = "properties" in (request.args.get("expand") or "").split(",")
        return 201, self.store.comment_json(issue, change.comments[0], version, properties=properties)

    def _delete_comment(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        issue = self.store.get(params["issueIdOrKey"])
        self.store.delete_comment(issue, params["id"])
        return 204, None

    def _query(self, jql: str) -> list[Any]:
        try:
            query = jira_jql.parse(jql, now=self.clock.now(), tz=self.tz)
            found = jira_jql.search(query, [self.store.facts(i) for i in self.store.issues.values()],
                                    key_exists=lambda k: _exists(self.store, k))
        except jira_jql.JqlError as exc:
            raise JiraApiError(400, [str(exc)]) from None
        return [self.store.issues[f.id] for f in found]

    def _search_params(self, request: Request) -> dict[str, Any]:
        if request.method == "POST":
            body = request.get_json(silent=True) or {}
            fields = body.get("fields")
            expand = body.get("expand")
            return {**body, "fields": fields if isinstance(fields, list) else ([fields] if fields else None),
                    "expand": ",".join(expand) if isinstance(expand, list) else expand}
        args = request.args
        return {"jql": args.get("jql", ""), "fields": args.getlist("fields") or None, "expand": args.get("expand"),
                "maxResults": args.get("maxResults"), "startAt": args.get("startAt"),
                "nextPageToken": args.get("nextPageToken")}

    def _search_jql(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        if self.deployment != "Cloud":
            raise JiraApiError(404, [f"No REST resource at {request.method} {request.path}."])
        p = self._search_params(request)
        issues = self._query(p.get("jql") or "")
        limit = max(1, min(int(p.get("maxResults") or 50), 5000))
        offset = _decode_token(p.get("nextPageToken"), p.get("jql") or "")
        page = issues[offset:offset + limit]
        expand = p.get("expand") or ""
        body: dict[str, Any] = {"issues": [self.store.issue_json(i, version=version, fields=p.get("fields"),
                                                                 default_fields="id", expand=expand,
                                                                 comment_cap=SEARCH_COMMENT_CAP,
                                                                 changelog_cap=SEARCH_CHANGELOG_CAP) for i in page]}
        if offset + limit < len(issues):
            body["nextPageToken"] = _encode_token(offset + limit, p.get("jql") or "")
        body["isLast"] = offset + limit >= len(issues)
        return 200, body

    def _search(self, request: Request, params: dict[str, str], version: int) -> tuple[int, Any]:
        if self.deployment == "Cloud":
            raise JiraApiError(410, [CLOUD_SEARCH_GONE])
        p = self._search_params(request)
        issues = self._query(p.get("jql") or "")
        start = max(0, int(p.get("startAt") or 0))
        limit = max(0, min(int(p.get("maxResults") or 50), 1000))
        page = issues[start:start + limit]
        return 200, {"expand": "schema,names", "startAt": start, "maxResults": limit, "total": len(issues),
                     "issues": [self.store.issue_json(i, version=version, fields=p.get("fields"),
                                                      default_fields="*navigable", expand=p.get("expand"),
                                                      comment_cap=SEARCH_COMMENT_CAP,
                                                      changelog_cap=SEARCH_CHANGELOG_CAP)
                                for i in page]}

    def _rich_text_to_plain(self, fields: Mapping[str, Any], version: int) -> dict[str, Any]:
        """v3 sends ADF documents for rich-text fields; the store keeps plain text."""
        if version < 3 or not isinstance(fields, Mapping):
            return dict(fields) if isinstance(fields, Mapping) else fields  # type: ignore[return-value]
        out = dict(fields)
        for fid, value in fields.items():
            definition = self.store.fields.get(fid)
            if definition is not None and definition.rich_text and isinstance(value, Mapping):
                out[fid] = adf_text(value)
        return out


def _exists(store: JiraStore, ref: str) -> bool:
    try:
        store.get(ref)
    except JiraApiError:
        return False
    return True


def _encode_token(offset: int, jql: str) -> str:
    raw = json.dumps({"o": offset, "q": hashlib.sha256(jql.encode()).hexdigest()[:12]})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_token(token: str | None, jql: str) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["q"] != hashlib.sha256(jql.encode()).hexdigest()[:12]:
            raise ValueError("token belongs to another query")
        return int(data["o"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise JiraApiError(400, ["The provided next page token is invalid or expired."]) from None


def _retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status=status, headers=dict(headers or {}),
                    content_type="application/json;charset=UTF-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m connector.sandbox.jira", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--deployment", choices=("Cloud", "Server"), default="Cloud")
    parser.add_argument("--project", default="SUP")
    parser.add_argument("--timezone", default="UTC")
    parser.add_argument("--webhook-url", default=None, help="where to POST webhooks (secret: JIRA_WEBHOOK_SECRET)")
    parser.add_argument("--no-validate", action="store_true", help="skip OpenAPI request validation")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    sandbox = JiraSandbox(
        deployment=args.deployment, project_key=args.project, timezone=args.timezone,
        email=os.environ.get("JIRA_USER") or "connector@example.com",
        api_token=os.environ.get("JIRA_TOKEN") or "sandbox-api-token",
        pat=os.environ.get("JIRA_TOKEN") or "sandbox-personal-access-token",
        webhook_url=args.webhook_url, webhook_secret=os.environ.get("JIRA_WEBHOOK_SECRET"),
        validate=not args.no_validate, clock=Clock(frozen=False), host=args.host, port=args.port,
    )
    sandbox.store.base_url = f"http://{args.host}:{args.port}"
    print(f"Jira sandbox ({args.deployment}) on {sandbox.store.base_url} - project {args.project}; "
          f"user {sandbox.email}, token from JIRA_TOKEN (default sandbox-api-token)", flush=True)
    try:
        sandbox._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.webhooks.close()


if __name__ == "__main__":
    main()
