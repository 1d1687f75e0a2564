"""The Jira sandbox's state: issues, their history, and the rules Jira applies to edits.

The connector's correctness hinges on details real Jira enforces and a naive fake would
not: only field *ids* can be set, a field not on the screen is a 400, a transition not
available from the current status is a 400, setting a field to its current value leaves no
history, entering a done status sets a resolution and leaving it clears it, comments do
not appear in the changelog but do bump `updated`. This module holds those rules and the
JSON shapes Jira answers with, free of HTTP, so the HTTP layer (`jira.py`) and the
Python seeding API share one implementation.

Callers serialise access (the sandbox holds one lock around every call).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from connector.sandbox.jira_jql import IssueFacts

# --------------------------------------------------------------------------- catalogue

STATUS_CATEGORIES: dict[str, dict[str, Any]] = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}


@dataclass(frozen=True)
class StatusDef:
    id: str
    name: str
    category: str  # a STATUS_CATEGORIES key
    description: str = ""
    # The workflow step's `jira.issue.editable` property. False forbids every edit of an
    # issue in this status (comments are still allowed): Atlassian, "Use workflow
    # properties", https://support.atlassian.com/jira-cloud-administration/docs/use-workflow-properties/
    editable: bool = True


@dataclass(frozen=True)
class ScreenField:
    """A field on a transition's screen; a required one must hold a value for the transition to run."""

    field: str  # field id
    required: bool = False


@dataclass(frozen=True)
class TransitionDef:
    id: str
    name: str
    to: str  # status name
    sources: tuple[str, ...]  # status names it is available from
    # The transition screen. Only these fields may be set in the transition request; a
    # required one left empty answers 400 `errors.<id>: "Field <name> is required."`
    # (mozilla/jira-bugzilla-integration#1055); one not on the screen answers 400 "cannot be
    # set. It is not on the appropriate screen" (mozilla/jira-bugzilla-integration#1258,
    # ctreminiom/go-atlassian#328).
    screen: tuple[ScreenField, ...] = ()


# A Jira Service Management service-request workflow.
DEFAULT_STATUSES: tuple[StatusDef, ...] = (
    StatusDef("10001", "Waiting for support", "new", "The request is waiting for an agent."),
    StatusDef("10002", "Waiting for customer", "indeterminate", "Waiting for the customer to respond."),
    StatusDef("3", "In Progress", "indeterminate", "An agent is working on the request."),
    StatusDef("10003", "Pending", "indeterminate", "Waiting on a third party."),
    StatusDef("5", "Resolved", "done", "A resolution has been taken."),
    # Stock workflows set jira.issue.editable=false on their final status.
    StatusDef("6", "Closed", "done", "The request is closed.", editable=False),
)
_OPEN = ("Waiting for support", "Waiting for customer", "In Progress", "Pending")
DEFAULT_TRANSITIONS: tuple[TransitionDef, ...] = (
    TransitionDef("11", "Respond to customer", "Waiting for customer", ("Waiting for support", "In Progress", "Pending")),
    TransitionDef("21", "Start progress", "In Progress", ("Waiting for support", "Waiting for customer", "Pending")),
    TransitionDef("31", "Pending", "Pending", ("Waiting for support", "Waiting for customer", "In Progress")),
    TransitionDef("41", "Back to support", "Waiting for support", ("Waiting for customer", "In Progress", "Pending")),
    # Stock JSM: "Resolve this issue" has a screen with Resolution, required.
    TransitionDef("51", "Resolve this issue", "Resolved", _OPEN, screen=(ScreenField("resolution", required=True),)),
    TransitionDef("61", "Close", "Closed", ("Resolved",)),
    TransitionDef("71", "Reopen", "In Progress", ("Resolved", "Closed")),
)
INITIAL_STATUS = "Waiting for support"
# Groups of a Jira Service Management Cloud site as created, plus the support teams of the
# standard process (config/standard-support.yaml routes to them).
DEFAULT_GROUPS: tuple[str, ...] = (
    "jira-servicemanagement-users", "jira-administrators", "L1", "L2", "team-lead", "billing", "network-team",
)

PRIORITIES: tuple[tuple[str, str], ...] = (
    ("1", "Highest"), ("2", "High"), ("3", "Medium"), ("4", "Low"), ("5", "Lowest"),
)
RESOLUTIONS: tuple[tuple[str, str, str], ...] = (
    ("10000", "Done", "Work has been completed on this issue."),
    ("10001", "Won't Do", "This issue won't be actioned."),
    ("10002", "Duplicate", "The problem is a duplicate of an existing issue."),
    ("10003", "Cannot Reproduce", "All attempts at reproducing this issue failed."),
)
ISSUE_TYPES: tuple[tuple[str, str, str], ...] = (
    ("10100", "Service Request", "Requests from customers."),
    ("10101", "Incident", "System outage or incident."),
    ("10102", "Problem", "Track underlying causes of incidents."),
    ("10103", "Task", "A small, distinct piece of work."),
)

_CF = "com.atlassian.jira.plugin.system.customfieldtypes:"


@dataclass(frozen=True)
class FieldDef:
    id: str
    name: str
    kind: str  # text, string, url, datetime, number, option, labels, components, priority, user, ...
    custom: bool = False
    editable: bool = True
    navigable: bool = True
    schema: Mapping[str, Any] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    rich_text: bool = False  # a plain string in v2, an ADF document in v3
    change_name: str = ""  # the `field` Jira writes in changelog items when it differs from the id

    @property
    def history_name(self) -> str:
        return self.change_name or (self.name if self.custom else self.id)


def _system(fid: str, name: str, kind: str, schema_type: str, *, editable: bool = True, navigable: bool = True,
            items: str | None = None, rich_text: bool = False, change_name: str = "") -> FieldDef:
    schema: dict[str, Any] = {"type": schema_type, "system": fid}
    if items:
        schema["items"] = items
    return FieldDef(fid, name, kind, editable=editable, navigable=navigable, schema=schema,
                    rich_text=rich_text, change_name=change_name)


SYSTEM_FIELDS: tuple[FieldDef, ...] = (
    _system("summary", "Summary", "string", "string"),
    _system("description", "Description", "text", "string", rich_text=True),
    _system("environment", "Environment", "text", "string", rich_text=True),
    _system("issuetype", "Issue Type", "issuetype", "issuetype", editable=False),
    _system("project", "Project", "project", "project", editable=False),
    _system("status", "Status", "status", "status", editable=False),
    _system("resolution", "Resolution", "resolution", "resolution", editable=False),
    _system("priority", "Priority", "priority", "priority"),
    _system("labels", "Labels", "labels", "array", items="string"),
    _system("components", "Components", "components", "array", items="component", change_name="Component"),
    _system("reporter", "Reporter", "user", "user"),
    _system("assignee", "Assignee", "user", "user"),
    _system("creator", "Creator", "user", "user", editable=False),
    _system("created", "Created", "datetime", "datetime", editable=False),
    _system("updated", "Updated", "datetime", "datetime", editable=False),
    _system("resolutiondate", "Resolved", "datetime", "datetime", editable=False),
    _system("comment", "Comment", "comments", "comments-page", editable=False, navigable=False),
)

_CUSTOM_SPECS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    # name, kind, schema type, custom type, options
    ("Impact scope", "text", "string", "textarea", ()),
    ("Steps to reproduce", "text", "string", "textarea", ()),
    ("Error message", "text", "string", "textarea", ()),
    ("Occurred at", "datetime", "datetime", "datetime", ()),
    ("Root cause", "text", "string", "textarea", ()),
    ("Solution", "text", "string", "textarea", ()),
    ("Verification result", "option", "option", "select", ("Resolved", "Partly resolved", "Not resolved")),
    ("Knowledge base link", "url", "string", "url", ()),
    # The reporter's rating, 1–5. Jira Service Management's own request feedback lands here
    # (`JiraStore.give_feedback`, the portal's rating); real sites list JSM's field as
    # "Satisfaction" too (custom type com.atlassian.servicedesk:sd-request-feedback, schema
    # type "sd-feedback", as GET /rest/api/2/field shows on JSM sites). Its value in an
    # issue is not documented: the sandbox shows the number, and the parser reads a number or
    # an object with `rating` (connector/satisfaction.py), nothing else.
    ("Satisfaction", "number", "number", "float", ()),
    ("Support group", "string", "string", "textfield", ()),
    ("First response due", "datetime", "datetime", "datetime", ()),
    ("Resolution due", "datetime", "datetime", "datetime", ()),
    ("Follow-up due", "datetime", "datetime", "datetime", ()),
    ("Recurrence note", "text", "string", "textarea", ()),
    ("Problem number", "string", "string", "textfield", ()),
    # Review gate (connector/rules/review_gate.py): a select list and a single user picker,
    # whose value is a user object identified like the assignee: accountId on Cloud
    # (https://developer.atlassian.com/cloud/jira/platform/api-changes-for-user-privacy-announcement-connect/),
    # {"name": ...} on Data Center (https://developer.atlassian.com/server/jira/platform/jira-rest-api-example-edit-issues-6291632).
    ("Change type", "option", "option", "select", ("Standard", "Data fix", "Configuration", "Upgrade", "Architecture")),
    ("Reviewer", "user", "user", "userpicker", ()),
    # Closing summary (connector/rules/closing_summary.py): what keeps the problem from coming back.
    ("Preventive measures", "text", "string", "textarea", ()),
)


def default_custom_fields(first_id: int = 10050) -> tuple[FieldDef, ...]:
    fields = []
    for offset, (name, kind, schema_type, custom_type, options) in enumerate(_CUSTOM_SPECS):
        number = first_id + offset
        fields.append(FieldDef(
            id=f"customfield_{number}", name=name, kind=kind, custom=True, options=options,
            schema={"type": schema_type, "custom": _CF + custom_type, "customId": number},
            rich_text=custom_type == "textarea",
        ))
    # Jira Service Management's Organizations field (per-customer service levels). Its catalogue
    # entry as sites show it: type array of "sd-customerorganization", custom type
    # com.atlassian.servicedesk:sd-customer-organizations, named "Organizations" (GET /field of
    # Cloud sites, e.g. the catalogues in go-jira and jira-python test data); the value is a
    # list of organizations, each as JSM's Organization resource shows it – id, name, _links
    # (https://developer.atlassian.com/cloud/jira/service-desk/rest/api-group-organization/) –
    # [] when none; edits name them by id (`"customfield_10002": [8]`, seen in public clients).
    number = first_id + len(_CUSTOM_SPECS)
    fields.append(FieldDef(
        id=f"customfield_{number}", name="Organizations", kind="organizations", custom=True,
        schema={"type": "array", "items": "sd-customerorganization",
                "custom": "com.atlassian.servicedesk:sd-customer-organizations", "customId": number},
    ))
    return tuple(fields)


# --------------------------------------------------------------------------- errors, time


class JiraApiError(Exception):
    """An error Jira would answer with: status plus its {"errorMessages", "errors"} body."""

    def __init__(self, status: int, messages: Sequence[str] = (), errors: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status}: {list(messages)} {dict(errors or {})}")
        self.status = status
        self.messages = list(messages)
        self.errors = dict(errors or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"errorMessages": self.messages, "errors": self.errors}


ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."


def cannot_set(field_id: str) -> str:
    # Jira's text for a field that is not on the edit screen (or not settable at all), seen
    # verbatim in pycontribs/jira#1, go-jira/jira#23 and go-jira/jira#498.
    return f"Field '{field_id}' cannot be set. It is not on the appropriate screen, or unknown."


# Jira's error for any edit of an issue whose workflow step has jira.issue.editable=false
# (IssueManager.isEditable false; the text is Jira's own, asserted in its
# TestDefaultWorklogService). The edit is refused as a whole, as an errorMessages entry.
NOT_EDITABLE = "You can not edit the issue as it is in a non-editable workflow state."


def jira_time(moment: datetime, tz: tzinfo) -> str:
    """Jira's timestamp format, e.g. 2026-11-20T09:00:00.000+0800."""
    local = moment.astimezone(tz)
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}" + local.strftime("%z")


def _display_time(moment: datetime, tz: tzinfo) -> str:
    local = moment.astimezone(tz)
    return local.strftime("%d/%b/%y %I:%M %p").replace(" 0", " ").lstrip("0")


def parse_jira_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("no offset")
    return parsed


def to_adf(text: str | None) -> dict[str, Any] | None:
    """A plain string as the Atlassian Document Format document v3 would return."""
    if text is None:
        return None
    paragraphs = [p for p in text.split("\n")]
    return {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": p}] if p else []} for p in paragraphs
    ]}


# --------------------------------------------------------------------------- state


@dataclass
class SandboxUser:
    account_id: str
    name: str  # Data Center username
    display_name: str
    email: str
    account_type: str = "atlassian"  # "customer" for JSM portal-only customers
    time_zone: str = "UTC"
    # Cloud profile visibility: "emailAddress ... Depending on the user's privacy setting, this
    # may be returned as null" (User schema, specs/jira-platform.openapi.json).
    email_hidden: bool = False
    # The profile's language as `GET /user` gives it ("zh_CN"); None: hidden by the user's
    # privacy setting ("The locale of the user. Depending on the user's privacy setting, this
    # may be returned as null": User schema) – then the key is left out, the schema's type
    # being a string.
    locale: str | None = "en_US"

    def identifiers(self) -> tuple[str, ...]:
        return (self.account_id, self.name, self.email, self.display_name)


@dataclass
class StoredComment:
    id: str
    author: str  # account id
    body: str
    public: bool
    created: datetime
    updated: datetime


@dataclass
class History:
    id: str
    author: str
    created: datetime
    items: list[dict[str, Any]]


@dataclass
class StoredIssue:
    id: int
    key: str
    issuetype: str
    creator: str
    created: datetime
    updated: datetime
    values: dict[str, Any]  # field id -> internal value
    comments: list[StoredComment] = field(default_factory=list)
    histories: list[History] = field(default_factory=list)
    resolutiondate: datetime | None = None
    feedback_comment: str | None = None  # the customer's words with a JSM feedback rating


@dataclass
class Change:
    """The outcome of one write: what the webhook for it must carry."""

    issue: StoredIssue
    actor: str
    at: datetime
    history: History | None
    comments: list[StoredComment]
    created: bool = False
    status_changed: bool = False

    @property
    def changed(self) -> bool:
        return self.created or self.history is not None or bool(self.comments)


class JiraStore:
    """Issues of one project, with Jira's edit, transition and rendering rules."""

    def __init__(self, *, project_key: str = "SUP", project_name: str = "Support", tz: tzinfo,
                 deployment: str = "Cloud", custom_fields: Sequence[FieldDef] | None = None,
                 statuses: Sequence[StatusDef] = DEFAULT_STATUSES,
                 transitions: Sequence[TransitionDef] = DEFAULT_TRANSITIONS,
                 components: Iterable[str] | None = None) -> None:
        self.project_key = project_key
        self.project_name = project_name
        self.project_id = "10000"
        self.tz = tz
        self.deployment = deployment
        self.fields: dict[str, FieldDef] = {
            f.id: f for f in (*SYSTEM_FIELDS, *(custom_fields if custom_fields is not None else default_custom_fields()))
        }
        self.statuses = {s.name.casefold(): s for s in statuses}
        self.transitions = tuple(transitions)
        # Field ids on the project's edit screen. The stock Jira Service Management screen
        # has every settable field; a site (or a test) takes fields off it, and then an edit
        # naming one answers 400 `cannot_set` and editmeta leaves it out.
        self.edit_screen: set[str] = {f.id for f in self.fields.values() if f.editable}
        # None: any component name is accepted and created on first use.
        self.fixed_components = components is not None
        self.components: dict[str, str] = {}
        for name in components or ():
            self._component_id(name)
        self.issue_transition_fields = True
        # The site's priority scheme (id, name); an admin may rename or remove one.
        self.priorities: list[tuple[str, str]] = list(PRIORITIES)
        # The connector account's Edit Issues / Transition Issues permissions (the HTTP layer
        # keeps them in step with `connector_permissions`); humans seeding issues bypass them.
        self.connector_can_edit = True
        self.connector_can_transition = True
        # Site groups (Jira's group directory), found by GET /groups/picker.
        self.groups: set[str] = set(DEFAULT_GROUPS)
        self.users: dict[str, SandboxUser] = {}
        # JSM customer organizations, id -> name (`add_organization`).
        self.organizations: dict[str, str] = {}
        self.issues: dict[int, StoredIssue] = {}
        self.by_key: dict[str, int] = {}
        self._next_issue = 10000
        self._next_number = 1
        self._next_comment = 10000
        self._next_history = 10000
        self.base_url = ""

    # ---- catalogue look-ups

    @property
    def cloud(self) -> bool:
        return self.deployment == "Cloud"

    def field_by_name_or_id(self, ref: str) -> FieldDef:
        if ref in self.fields:
            return self.fields[ref]
        for f in self.fields.values():
            if f.name.casefold() == ref.casefold():
                return f
        raise KeyError(f"unknown field {ref!r}; known: {', '.join(f.name for f in self.fields.values())}")

    def status(self, name: str) -> StatusDef:
        try:
            return self.statuses[name.casefold()]
        except KeyError:
            raise KeyError(f"unknown status {name!r}; known: {', '.join(s.name for s in self.statuses.values())}") from None

    def available_transitions(self, issue: StoredIssue) -> list[TransitionDef]:
        # "Get transitions" returns the transitions "that can be performed by the user"
        # (Atlassian's OpenAPI document): none without the Transition Issues permission.
        if not self.connector_can_transition:
            return []
        current = issue.values["status"].casefold()
        return [t for t in self.transitions if current in (s.casefold() for s in t.sources)]

    def _component_id(self, name: str) -> str:
        for cid, existing in self.components.items():
            if existing.casefold() == name.casefold():
                return cid
        cid = str(10000 + len(self.components))
        self.components[cid] = name
        return cid

    def add_user(self, user: SandboxUser) -> SandboxUser:
        self.users[user.account_id] = user
        return user

    def add_organization(self, name: str) -> str:
        """A JSM customer organization; returns its id (the existing one for a known name)."""
        for oid, existing in self.organizations.items():
            if existing.casefold() == name.casefold():
                return oid
        oid = str(len(self.organizations) + 1)
        self.organizations[oid] = name
        return oid

    def find_user(self, ref: str | None) -> SandboxUser | None:
        if ref is None:
            return None
        if ref in self.users:
            return self.users[ref]
        folded = ref.casefold()
        for user in self.users.values():
            if folded in (i.casefold() for i in user.identifiers()):
                return user
        return None

    def get(self, id_or_key: str) -> StoredIssue:
        ref = str(id_or_key)
        issue_id = int(ref) if ref.isdigit() else self.by_key.get(ref.upper())
        if issue_id is None or issue_id not in self.issues:
            raise JiraApiError(404, [ISSUE_NOT_FOUND])
        return self.issues[issue_id]

    # ---- writes

    def create(self, fields: Mapping[str, Any], *, actor: str, at: datetime) -> Change:
        errors: dict[str, str] = {}
        project = fields.get("project")
        if not isinstance(project, Mapping) or not (
            str(project.get("key", "")).upper() == self.project_key or str(project.get("id", "")) == self.project_id
        ):
            errors["project"] = "valid project is required"
        issuetype = self._issuetype(fields.get("issuetype"))
        if issuetype is None:
            errors["issuetype"] = "valid issue type is required"
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        rest = {k: v for k, v in fields.items() if k not in ("project", "issuetype")}
        values, field_errors = self._convert_fields(rest, allow=set())
        errors.update({k: v for k, v in field_errors.items() if k not in errors})
        if errors:
            raise JiraApiError(400, [], errors)
        issue_id = self._next_issue
        self._next_issue += 1
        key = f"{self.project_key}-{self._next_number}"
        self._next_number += 1
        initial = {f.id: ([] if f.kind in ("labels", "components") else None)
                   for f in self.fields.values() if f.editable}
        initial.update({"status": self.status(INITIAL_STATUS).name, "resolution": None, "priority": "Medium",
                        "reporter": actor})
        initial.update(values)
        issue = StoredIssue(id=issue_id, key=key, issuetype=issuetype or "", creator=actor, created=at,
                            updated=at, values=initial)
        self.issues[issue_id] = issue
        self.by_key[key] = issue_id
        return Change(issue=issue, actor=actor, at=at, history=None, comments=[], created=True)

    def edit(self, issue: StoredIssue, fields: Mapping[str, Any] | None, update: Mapping[str, Any] | None, *,
             actor: str, at: datetime, version: int = 2) -> Change:
        if not self.status(issue.values["status"]).editable:
            raise JiraApiError(400, [NOT_EDITABLE])
        values, comments, errors = self._plan_edit(issue, fields or {}, update or {}, allow=set(), actor=actor,
                                                   at=at, version=version, only=self.edit_screen)
        if errors:
            raise JiraApiError(400, [], errors)
        items = self._apply_values(issue, values)
        return self._record(issue, items, comments, actor=actor, at=at)

    def transition(self, issue: StoredIssue, transition_id: Any, fields: Mapping[str, Any] | None,
                   update: Mapping[str, Any] | None, *, actor: str, at: datetime, version: int = 2) -> Change:
        if transition_id is None or str(transition_id) == "":
            raise JiraApiError(400, ["Missing 'transition' identifier"])
        chosen = next((t for t in self.available_transitions(issue) if t.id == str(transition_id)), None)
        if chosen is None:
            raise JiraApiError(400, [f"Transition id '{transition_id}' is not valid for this issue."])
        on_screen = {f.field for f in chosen.screen}
        values, comments, errors = self._plan_edit(issue, fields or {}, update or {}, allow=on_screen,
                                                   actor=actor, at=at, version=version, only=on_screen)
        for screen_field in chosen.screen:
            if not screen_field.required or screen_field.field in errors:
                continue
            value = values[screen_field.field] if screen_field.field in values else issue.values.get(screen_field.field)
            if value is None or value == "" or value == []:
                errors[screen_field.field] = f"Field {self.fields[screen_field.field].name} is required."
        if errors:
            raise JiraApiError(400, [], errors)
        items = self._move(issue, chosen.to, at, resolution=values.pop("resolution", None))
        items += self._apply_values(issue, values)
        return self._record(issue, items, comments, actor=actor, at=at, status_changed=True)

    def force_status(self, issue: StoredIssue, status_name: str, *, actor: str, at: datetime) -> Change:
        # An admin's or a human's move: the stock workflow's post-function sets "Done".
        items = self._move(issue, self.status(status_name).name, at, resolution=None, default_resolution="Done")
        return self._record(issue, items, [], actor=actor, at=at, status_changed=bool(items))

    def add_comment(self, issue: StoredIssue, body: Any, *, public: bool, actor: str, at: datetime,
                    version: int = 2) -> Change:
        comment = self._comment(body, public=public, actor=actor, at=at, version=version)
        if isinstance(comment, str):
            raise JiraApiError(400, [], {"comment": comment})
        return self._record(issue, [], [comment], actor=actor, at=at)

    def give_feedback(self, issue: StoredIssue, rating: int, comment: str | None, *, actor: str,
                      at: datetime) -> Change:
        """The customer rates a resolved request (JSM request feedback, "a numeric
        representation of the rating, this must be an integer value between 1 and 5",
        POST /rest/servicedeskapi/request/{issueIdOrKey}/feedback,
        https://developer.atlassian.com/cloud/jira/service-desk/rest/api-group-request/#api-rest-servicedeskapi-request-requestidorkey-feedback-post).
        Feedback is asked of "the reporter of the provided issue" for a request with feedback
        enabled (Atlassian's RequestFeedbackDetailsService, jira-servicedesk API docs), so
        anyone else is refused; a request that is not resolved is refused too (docs silent:
        fail closed). The rating lands in the Satisfaction field, recorded in the changelog."""
        definition = self._feedback_field()
        if definition is None:
            raise JiraApiError(404, ["Request feedback is not enabled for this request."])
        if actor != issue.values.get("reporter"):
            raise JiraApiError(403, ["Only the reporter of the request can give feedback."])
        if issue.resolutiondate is None:
            raise JiraApiError(400, ["Feedback can only be given on a resolved request."])
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise JiraApiError(400, ["The rating must be an integer value between 1 and 5."])
        issue.feedback_comment = comment
        items = self._apply_values(issue, {definition.id: float(rating)})
        return self._record(issue, items, [], actor=actor, at=at)

    def _feedback_field(self) -> FieldDef | None:
        return next((f for f in self.fields.values() if f.custom and f.name == "Satisfaction"), None)

    def feedback_json(self, issue: StoredIssue) -> dict[str, Any] | None:
        """GET .../request/{key}/feedback: {"type": "csat", "rating": n, "comment": {"body": …}}."""
        definition = self._feedback_field()
        rating = issue.values.get(definition.id) if definition else None
        if rating is None:
            return None
        out: dict[str, Any] = {"type": "csat", "rating": int(rating)}
        if issue.feedback_comment:
            out["comment"] = {"body": issue.feedback_comment}
        return out

    def delete_comment(self, issue: StoredIssue, comment_id: str) -> None:
        for comment in issue.comments:
            if comment.id == str(comment_id):
                issue.comments.remove(comment)
                return
        raise JiraApiError(404, [f"Can not find a comment for the id: {comment_id}."])

    def _record(self, issue: StoredIssue, items: list[dict[str, Any]], comments: list[StoredComment], *,
                actor: str, at: datetime, status_changed: bool = False) -> Change:
        history = None
        if items:
            history = History(id=str(self._next_history), author=actor, created=at, items=items)
            self._next_history += 1
            issue.histories.append(history)
        for comment in comments:
            comment.id = str(self._next_comment)
            self._next_comment += 1
        issue.comments.extend(comments)
        if items or comments:
            issue.updated = max(issue.updated, at)
        return Change(issue=issue, actor=actor, at=at, history=history, comments=comments,
                      status_changed=status_changed and history is not None)

    def _move(self, issue: StoredIssue, to_name: str, at: datetime, resolution: str | None,
              default_resolution: str | None = None) -> list[dict[str, Any]]:
        """Change the status. Entering a done status sets the resolution given (a REST
        transition without one on its screen leaves the issue unresolved: nothing is
        defaulted for it); leaving the done category clears it."""
        old = self.status(issue.values["status"])
        new = self.status(to_name)
        if old.name == new.name:
            return []
        items = [{"field": "status", "fieldtype": "jira", "fieldId": "status", "from": old.id,
                  "fromString": old.name, "to": new.id, "toString": new.name}]
        old_resolution = issue.values.get("resolution")
        new_resolution = old_resolution
        if new.category == "done" and old.category != "done":
            new_resolution = resolution or default_resolution
            issue.resolutiondate = at
        elif new.category != "done":
            new_resolution = None
            issue.resolutiondate = None
        elif resolution is not None:
            new_resolution = resolution
        issue.values["status"] = new.name
        if new_resolution != old_resolution:
            items.append({"field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
                          "from": self._resolution_id(old_resolution), "fromString": old_resolution,
                          "to": self._resolution_id(new_resolution), "toString": new_resolution})
            issue.values["resolution"] = new_resolution
        return items

    # ---- edit planning

    def _plan_edit(self, issue: StoredIssue, fields: Mapping[str, Any], update: Mapping[str, Any], *,
                   allow: set[str], actor: str, at: datetime, version: int,
                   only: set[str] | None = None) -> tuple[dict[str, Any], list[StoredComment], dict[str, str]]:
        values, errors = self._convert_fields(fields, allow=allow, only=only)
        comments: list[StoredComment] = []
        if not isinstance(update, Mapping):
            return values, comments, {"update": "update must be an object"}
        for fid, operations in update.items():
            if fid == "comment":
                for operation in operations or []:
                    add = operation.get("add") if isinstance(operation, Mapping) else None
                    if not isinstance(add, Mapping) or set(operation) != {"add"}:
                        errors["comment"] = "Comments can only be added."
                        continue
                    # `properties` inside an edit's update.comment is not documented anywhere;
                    # Atlassian's Comment schema says comments created through the platform API
                    # are public (`jsdPublic` "Defaults to true when comments are created in the
                    # Jira Cloud Platform"). Fail closed: such a comment is PUBLIC here.
                    comment = self._comment(add.get("body"), public=True, actor=actor, at=at, version=version)
                    if isinstance(comment, str):
                        errors["comment"] = comment
                    else:
                        comments.append(comment)
                continue
            definition = self.fields.get(fid)
            if (definition is None or not (definition.editable or fid in allow) or fid in fields
                    or (only is not None and fid not in only)):
                errors[fid] = cannot_set(fid)
                continue
            current = values.get(fid, issue.values.get(fid))
            for operation in operations or []:
                if not isinstance(operation, Mapping) or len(operation) != 1:
                    errors[fid] = "Each operation must have exactly one of add, set, remove, edit, copy."
                    break
                (verb, argument), = operation.items()
                result = self._operate(definition, current, verb, argument)
                if isinstance(result, _Invalid):
                    errors[fid] = result.message
                    break
                current = result
            else:
                values[fid] = current
        return values, comments, errors

    def _operate(self, definition: FieldDef, current: Any, verb: str, argument: Any) -> Any:
        if definition.kind in ("labels", "components"):
            if verb == "set":
                return self._convert(definition, argument)
            if verb in ("add", "remove"):
                converted = self._convert(definition, [argument])
                if isinstance(converted, _Invalid):
                    return converted
                existing = list(current or [])
                for item in converted:
                    if verb == "add" and item not in existing:
                        existing.append(item)
                    if verb == "remove" and item in existing:
                        existing.remove(item)
                return existing
        elif verb == "set":
            return self._convert(definition, argument)
        return _Invalid(f"Field '{definition.id}' does not support the operation '{verb}'.")

    def _convert_fields(self, fields: Mapping[str, Any], *, allow: set[str],
                        only: set[str] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        if not isinstance(fields, Mapping):
            return values, {"fields": "fields must be an object"}
        for fid, raw in fields.items():
            definition = self.fields.get(fid)
            if definition is None or not (definition.editable or fid in allow) or (only is not None and fid not in only):
                errors[fid] = cannot_set(fid)
                continue
            converted = self._convert(definition, raw)
            if isinstance(converted, _Invalid):
                errors[fid] = converted.message
            else:
                values[fid] = converted
        return values, errors

    def _convert(self, definition: FieldDef, raw: Any) -> Any:
        """A request value as the internal value, or `_Invalid` with Jira's message."""
        kind = definition.kind
        if kind in ("text", "string", "url"):
            if raw is None or isinstance(raw, str):
                if definition.id == "summary" and not (raw or "").strip():
                    return _Invalid("You must specify a summary of the issue.")
                if definition.id == "summary" and "\n" in (raw or ""):
                    return _Invalid("The summary is invalid because it contains newline characters.")
                return raw
            return _Invalid("Operation value must be a string")
        if kind == "datetime":
            if raw is None:
                return None
            try:
                return parse_jira_time(str(raw))
            except ValueError:
                return _Invalid("Invalid date format. Please enter the date in the format \"yyyy-MM-dd'T'HH:mm:ss.SSSZ\".")
        if kind == "number":
            if raw is None or (isinstance(raw, int | float) and not isinstance(raw, bool)):
                return None if raw is None else float(raw)
            return _Invalid("Operation value must be a number")
        if kind == "option":
            if raw is None:
                return None
            if isinstance(raw, Mapping):
                for option in definition.options:
                    if raw.get("value") == option or str(raw.get("id", "")) == self.option_id(definition, option):
                        return option
                shown = raw.get("value", raw.get("id"))
                return _Invalid(f"Option value '{shown}' is not valid")
            return _Invalid("Could not find valid 'id' or 'value' in the Parent Option object.")
        if kind == "labels":
            if raw is None:
                return []
            if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
                return _Invalid("Operation value must be a string")
            for label in raw:
                if re.search(r"\s", label) or not label:
                    return _Invalid(f"The label '{label}' contains spaces which is invalid.")
            return list(dict.fromkeys(raw))
        if kind == "components":
            if raw is None:
                return []
            if not isinstance(raw, list) or not all(isinstance(x, Mapping) for x in raw):
                return _Invalid("Operation value must be an array of components")
            names = []
            for item in raw:
                if "id" in item and str(item["id"]) in self.components:
                    names.append(self.components[str(item["id"])])
                elif isinstance(item.get("name"), str) and (
                    not self.fixed_components
                    or any(n.casefold() == item["name"].casefold() for n in self.components.values())
                ):
                    names.append(self.components[self._component_id(item["name"])])
                else:
                    return _Invalid(f"Component name '{item.get('name', item.get('id'))}' is not valid")
            return list(dict.fromkeys(names))
        if kind == "priority":
            if isinstance(raw, Mapping):
                for pid, name in self.priorities:
                    if raw.get("name") == name or str(raw.get("id", "")) == pid:
                        return name
            return _Invalid("The priority selected is invalid.")
        if kind == "group":
            if raw is None:
                return None
            name = raw.get("name") if isinstance(raw, Mapping) else None
            if not isinstance(name, str) or name not in self.groups:
                return _Invalid(f"Group '{name}' does not exist.")
            return name
        if kind == "user":
            if raw is None:
                return None
            # Cloud identifies users only by accountId (GDPR); Data Center by username.
            key = "accountId" if self.cloud else "name"
            ref = raw.get(key) if isinstance(raw, Mapping) else None
            if not isinstance(ref, str):
                return _Invalid(f"Specify the user by '{key}'.")
            user = next((u for u in self.users.values()
                         if ref == (u.account_id if self.cloud else u.name)), None)
            if user is None:
                return _Invalid(f"User '{ref}' does not exist.")
            return user.account_id
        if kind == "organizations":
            if raw is None:
                return []
            if not isinstance(raw, list) or not all(isinstance(x, int | str) and str(x).isdigit() for x in raw):
                return _Invalid("Organizations must be a list of organization ids")
            unknown = [str(x) for x in raw if str(x) not in self.organizations]
            if unknown:
                return _Invalid(f"Organization with id {unknown[0]} does not exist")
            return list(dict.fromkeys(self.organizations[str(x)] for x in raw))
        if kind == "resolution":
            if isinstance(raw, Mapping):
                for rid, name, _ in RESOLUTIONS:
                    if raw.get("name") == name or str(raw.get("id", "")) == rid:
                        return name
            return _Invalid("The resolution selected is invalid.")
        return _Invalid(cannot_set(definition.id))

    def _comment(self, body: Any, *, public: bool, actor: str, at: datetime, version: int) -> StoredComment | str:
        if version >= 3 and isinstance(body, Mapping):
            body = adf_text(body)
        if not isinstance(body, str):
            return "Comment body must be a string."
        if not body.strip():
            return "Comment body can not be empty!"
        # The id is assigned when the write is recorded, so a rejected edit consumes none.
        return StoredComment(id="", author=actor, body=body, public=public, created=at, updated=at)

    def _apply_values(self, issue: StoredIssue, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for fid, new in values.items():
            old = issue.values.get(fid)
            if fid == "resolution" or old == new:
                continue
            definition = self.fields[fid]
            issue.values[fid] = new
            if definition.kind == "components":
                for name in [n for n in old or [] if n not in new]:
                    items.append(self._item(definition, self._component_id(name), name, None, None))
                for name in [n for n in new if n not in (old or [])]:
                    items.append(self._item(definition, None, None, self._component_id(name), name))
                continue
            items.append(self._item(definition, *self._history_value(definition, old), *self._history_value(definition, new)))
        return items

    def _item(self, definition: FieldDef, frm: Any, frm_string: Any, to: Any, to_string: Any) -> dict[str, Any]:
        return {"field": definition.history_name, "fieldtype": "custom" if definition.custom else "jira",
                "fieldId": definition.id, "from": frm, "fromString": frm_string, "to": to, "toString": to_string}

    def _history_value(self, definition: FieldDef, value: Any) -> tuple[str | None, str | None]:
        kind = definition.kind
        if kind == "labels":
            return None, " ".join(value or [])
        if kind == "organizations":
            return None, ", ".join(value or [])
        if value is None:
            return None, None
        if kind == "priority":
            return dict((n, i) for i, n in PRIORITIES)[value], value
        if kind == "user":
            user = self.users.get(value)
            ident = value if self.cloud else (user.name if user else value)
            return ident, user.display_name if user else value
        if kind == "option":
            return self.option_id(definition, value), value
        if kind == "datetime":
            return jira_time(value, self.tz), _display_time(value, self.tz)
        if kind == "number":
            return None, f"{value:g}"
        return None, str(value)

    # ---- reading

    def _issuetype(self, raw: Any) -> str | None:
        if not isinstance(raw, Mapping):
            return None
        for tid, name, _ in ISSUE_TYPES:
            if raw.get("name") == name or str(raw.get("id", "")) == tid:
                return name
        return None

    def option_id(self, definition: FieldDef, option: str) -> str:
        number = int(definition.schema.get("customId", 0))
        return str(number * 10 + definition.options.index(option) + 1)

    def _resolution_id(self, name: str | None) -> str | None:
        return next((rid for rid, n, _ in RESOLUTIONS if n == name), None)

    def facts(self, issue: StoredIssue) -> IssueFacts:
        status = self.status(issue.values["status"])
        category = STATUS_CATEGORIES[status.category]

        def idents(account: str | None) -> tuple[str, ...]:
            user = self.users.get(account or "")
            return user.identifiers() if user else ((account,) if account else ())

        other = [issue.values.get("environment") or ""] + [
            str(issue.values.get(f.id) or "") for f in self.fields.values() if f.custom and f.kind in ("text", "string", "url")
        ]
        return IssueFacts(
            id=issue.id, key=issue.key, project_key=self.project_key, project_name=self.project_name,
            project_id=self.project_id, created=issue.created, updated=issue.updated, status=status.name,
            status_category_key=category["key"], status_category_name=category["name"],
            status_category_id=category["id"], resolution=issue.values.get("resolution"),
            priority=issue.values.get("priority") or "Medium",
            priority_rank=dict((n, int(i)) for i, n in PRIORITIES).get(issue.values.get("priority") or "", 3),
            labels=tuple(issue.values.get("labels") or ()), assignee=idents(issue.values.get("assignee")),
            reporter=idents(issue.values.get("reporter")), summary=issue.values.get("summary") or "",
            description=issue.values.get("description") or "",
            comments=" ".join(c.body for c in issue.comments), other_text=" ".join(other),
        )

    def api(self, version: int = 2) -> str:
        return f"{self.base_url}/rest/api/{version}"

    def user_json(self, account: str | None, version: int = 2) -> dict[str, Any] | None:
        if account is None:
            return None
        user = self.users.get(account)
        if user is None:
            return None
        avatars = {size: f"https://avatar.example/{user.account_id}?s={size.split('x')[0]}"
                   for size in ("48x48", "24x24", "16x16", "32x32")}
        if self.cloud:
            return {"self": f"{self.api(version)}/user?accountId={user.account_id}", "accountId": user.account_id,
                    "emailAddress": None if user.email_hidden else user.email, "avatarUrls": avatars, "displayName": user.display_name,
                    "active": True, "timeZone": user.time_zone, "accountType": user.account_type}
        return {"self": f"{self.api(version)}/user?username={user.name}", "name": user.name, "key": user.name,
                "emailAddress": user.email, "avatarUrls": avatars, "displayName": user.display_name,
                "active": True, "timeZone": user.time_zone}

    def full_user_json(self, account: str, version: int = 2) -> dict[str, Any]:
        """The User of `GET /user`: what an issue embeds (UserDetails) plus `locale` and the
        `expand` options; groups and application roles only when expanded (not modelled)."""
        user = self.users[account]
        out = {**(self.user_json(account, version) or {}), "expand": "groups,applicationRoles"}
        if user.locale is not None:
            out["locale"] = user.locale
        return out

    def status_json(self, name: str, version: int = 2) -> dict[str, Any]:
        status = self.status(name)
        category = STATUS_CATEGORIES[status.category]
        return {"self": f"{self.api(version)}/status/{status.id}", "description": status.description,
                "iconUrl": f"{self.base_url}/images/icons/statuses/generic.png", "name": status.name,
                "id": status.id, "statusCategory": {"self": f"{self.api(version)}/statuscategory/{category['id']}",
                                                    **category}}

    def comment_json(self, issue: StoredIssue, comment: StoredComment, version: int = 2, *,
                     properties: bool = False) -> dict[str, Any]:
        author = self.user_json(comment.author, version)
        body = {"self": f"{self.api(version)}/issue/{issue.id}/comment/{comment.id}", "id": comment.id,
                "author": author, "body": to_adf(comment.body) if version >= 3 else comment.body,
                "updateAuthor": author, "created": jira_time(comment.created, self.tz),
                "updated": jira_time(comment.updated, self.tz)}
        if self.cloud:
            # Only Cloud has jsdPublic; Data Center comments do not say whether they are
            # internal (pycontribs/jira#1011) unless their properties are expanded.
            body["jsdPublic"] = comment.public
        if properties:
            body["properties"] = [{"key": "sd.public.comment", "value": {"internal": not comment.public}}]
        return body

    def editmeta_json(self, issue: StoredIssue, version: int = 2) -> dict[str, Any]:
        """`GET /issue/{key}/editmeta`: the fields on the edit screen, none when the status
        forbids edits (jira.issue.editable=false)."""
        if not self.status(issue.values["status"]).editable or not self.connector_can_edit:
            return {"fields": {}}
        out: dict[str, Any] = {}
        for fid in self.edit_screen:
            definition = self.fields.get(fid)
            if definition is None or not definition.editable:
                continue
            many = definition.kind in ("labels", "components")
            meta: dict[str, Any] = {"required": fid == "summary", "schema": dict(definition.schema),
                                    "name": definition.name, "key": fid,
                                    "operations": ["add", "set", "remove"] if many else ["set"]}
            if definition.kind == "option":
                meta["allowedValues"] = [
                    {"self": f"{self.api(version)}/customFieldOption/{self.option_id(definition, o)}", "value": o,
                     "id": self.option_id(definition, o)} for o in definition.options]
            elif definition.kind == "priority":
                meta["allowedValues"] = [{"self": f"{self.api(version)}/priority/{pid}", "name": name, "id": pid}
                                         for pid, name in self.priorities]
            out[fid] = meta
        return {"fields": dict(sorted(out.items()))}

    def transition_json(self, transition: TransitionDef, version: int = 2, *, with_fields: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": transition.id, "name": transition.name, "to": self.status_json(transition.to, version),
            "hasScreen": bool(transition.screen), "isGlobal": False, "isInitial": False, "isAvailable": True,
            "isConditional": False, "isLooped": False}
        if with_fields:
            # `expand=transitions.fields`: the screen's fields as FieldMetadata (required,
            # schema, name, key, operations, allowedValues), per the OpenAPI IssueTransition.
            body["fields"] = {f.field: self.screen_field_json(f, version) for f in transition.screen}
        return body

    def screen_field_json(self, screen_field: ScreenField, version: int = 2) -> dict[str, Any]:
        definition = self.fields[screen_field.field]
        meta: dict[str, Any] = {"required": screen_field.required, "schema": dict(definition.schema),
                                "name": definition.name, "key": definition.id, "operations": ["set"],
                                "hasDefaultValue": False}
        if definition.kind == "resolution":
            meta["allowedValues"] = [{"self": f"{self.api(version)}/resolution/{rid}", "id": rid, "name": name,
                                      "description": description} for rid, name, description in RESOLUTIONS]
        elif definition.kind == "option":
            meta["allowedValues"] = [{"self": f"{self.api(version)}/customFieldOption/{self.option_id(definition, o)}",
                                      "value": o, "id": self.option_id(definition, o)} for o in definition.options]
        elif definition.kind == "priority":
            meta["allowedValues"] = [{"self": f"{self.api(version)}/priority/{pid}", "id": pid, "name": name}
                                     for pid, name in self.priorities]
        return meta

    def field_value_json(self, issue: StoredIssue, definition: FieldDef, version: int,
                         comment_cap: int | None = None) -> Any:
        fid, kind = definition.id, definition.kind
        value = issue.values.get(fid)
        if fid == "created":
            return jira_time(issue.created, self.tz)
        if fid == "updated":
            return jira_time(issue.updated, self.tz)
        if fid == "resolutiondate":
            return jira_time(issue.resolutiondate, self.tz) if issue.resolutiondate else None
        if fid == "creator":
            return self.user_json(issue.creator, version)
        if fid == "comment":
            # Embedded comments are capped (see issue_json): the newest are kept, the oldest
            # dropped, `total` still counts them all and `startAt` says where the page begins.
            kept = issue.comments if comment_cap is None else issue.comments[max(0, len(issue.comments) - comment_cap):]
            comments = [self.comment_json(issue, c, version) for c in kept]
            return {"comments": comments, "self": f"{self.api(version)}/issue/{issue.id}/comment",
                    "maxResults": len(comments), "total": len(issue.comments),
                    "startAt": len(issue.comments) - len(kept)}
        if kind == "issuetype":
            tid, name, description = next(t for t in ISSUE_TYPES if t[1] == issue.issuetype)
            return {"self": f"{self.api(version)}/issuetype/{tid}", "id": tid, "description": description,
                    "iconUrl": f"{self.base_url}/images/icons/issuetypes/generic.png", "name": name,
                    "subtask": False, "hierarchyLevel": 0}
        if kind == "project":
            return {"self": f"{self.api(version)}/project/{self.project_id}", "id": self.project_id,
                    "key": self.project_key, "name": self.project_name, "projectTypeKey": "service_desk",
                    "simplified": False}
        if kind == "status":
            return self.status_json(value, version)
        if kind == "resolution":
            if value is None:
                return None
            rid, name, description = next(r for r in RESOLUTIONS if r[1] == value)
            return {"self": f"{self.api(version)}/resolution/{rid}", "id": rid, "description": description,
                    "name": name}
        if kind == "priority":
            pid = dict((n, i) for i, n in PRIORITIES)[value]
            return {"self": f"{self.api(version)}/priority/{pid}",
                    "iconUrl": f"{self.base_url}/images/icons/priorities/{value.lower()}.svg", "name": value, "id": pid}
        if kind == "labels":
            return list(value or [])
        if kind == "components":
            return [{"self": f"{self.api(version)}/component/{self._component_id(n)}",
                     "id": self._component_id(n), "name": n} for n in value or []]
        if kind == "user":
            return self.user_json(value, version)
        if kind == "organizations":
            return [{"id": oid, "name": name,
                     "_links": {"self": f"{self.base_url}/rest/servicedeskapi/organization/{oid}"}}
                    for name in value or () for oid in (self.add_organization(name),)]
        if kind == "group":
            return None if value is None else {"name": value, "groupId": f"group-{value}",
                                               "self": f"{self.api(version)}/group?groupId=group-{value}"}
        if value is None:
            return None
        if kind == "datetime":
            return jira_time(value, self.tz)
        if kind == "option":
            oid = self.option_id(definition, value)
            return {"self": f"{self.api(version)}/customFieldOption/{oid}", "value": value, "id": oid}
        if definition.rich_text and version >= 3:
            return to_adf(value)
        return value

    def select_fields(self, requested: Sequence[str] | None, default: str) -> list[FieldDef]:
        tokens = [t.strip() for part in (requested or [default]) for t in str(part).split(",") if t.strip()]
        chosen: dict[str, FieldDef] = {}
        excluded: set[str] = set()
        for token in tokens:
            if token == "*all":
                chosen.update(self.fields)
            elif token == "*navigable":
                chosen.update({k: f for k, f in self.fields.items() if f.navigable})
            elif token.startswith("-"):
                excluded.add(token[1:])
            elif token in self.fields:
                chosen[token] = self.fields[token]
        return [f for k, f in chosen.items() if k not in excluded]

    def issue_json(self, issue: StoredIssue, *, version: int = 2, fields: Sequence[str] | None = None,
                   default_fields: str = "*all", expand: str | None = None,
                   comment_cap: int | None = None, changelog_cap: int | None = None) -> dict[str, Any]:
        """The issue as the REST API shows it. `comment_cap` / `changelog_cap` limit the embedded
        comments and changelog to the newest N (None: all), with `total` still the full count;
        the HTTP layer sets them per endpoint and deployment (see EMBED_CAPS in jira.py)."""
        expands = {e.strip() for e in (expand or "").split(",") if e.strip()}
        selected = self.select_fields(fields, default_fields)
        body: dict[str, Any] = {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": str(issue.id), "self": f"{self.api(version)}/issue/{issue.id}", "key": issue.key,
        }
        if selected:
            body["fields"] = {f.id: self.field_value_json(issue, f, version, comment_cap) for f in selected}
        if "names" in expands:
            body["names"] = {f.id: f.name for f in selected}
        if "schema" in expands:
            body["schema"] = {f.id: dict(f.schema) for f in selected}
        if "editmeta" in expands:
            body["editmeta"] = self.editmeta_json(issue, version)
        if "transitions" in expands or "transitions.fields" in expands:
            # The GET issue document lists only `transitions`; Jira's expansion is nested
            # (`transitions.fields`, as on GET /transitions). `issue_transition_fields` False
            # models a site that ignores the nested expand on GET issue.
            with_fields = "transitions.fields" in expands and self.issue_transition_fields
            body["transitions"] = [self.transition_json(t, version, with_fields=with_fields)
                                   for t in self.available_transitions(issue)]
        if "changelog" in expands:
            kept = issue.histories if changelog_cap is None else issue.histories[max(0, len(issue.histories) - changelog_cap):]
            histories = [self.history_json(h, version) for h in kept]
            body["changelog"] = {"startAt": len(issue.histories) - len(kept), "maxResults": len(histories),
                                 "total": len(issue.histories), "histories": histories}
        return body

    def history_json(self, history: History, version: int = 2) -> dict[str, Any]:
        return {"id": history.id, "author": self.user_json(history.author, version),
                "created": jira_time(history.created, self.tz), "items": [dict(i) for i in history.items]}

    def field_catalogue(self) -> list[dict[str, Any]]:
        out = []
        for f in self.fields.values():
            number = f.schema.get("customId")
            clause_names = [f"cf[{number}]", f.name] if f.custom else [f.id]
            out.append({"id": f.id, "key": f.id, "name": f.name, "custom": f.custom, "orderable": f.editable,
                        "navigable": f.navigable, "searchable": True, "clauseNames": clause_names,
                        "schema": dict(f.schema)})
        return out


@dataclass(frozen=True)
class _Invalid:
    message: str


def is_internal(properties: Any) -> bool:
    """JSM marks an internal (agent-only) comment with the `sd.public.comment` property."""
    if not isinstance(properties, list):
        return False
    for prop in properties:
        if isinstance(prop, Mapping) and prop.get("key") == "sd.public.comment":
            value = prop.get("value")
            return isinstance(value, Mapping) and bool(value.get("internal"))
    return False


def adf_text(document: Mapping[str, Any]) -> str:
    paragraphs = []
    for block in document.get("content", []) or []:
        paragraphs.append("".join(node.get("text", "") for node in block.get("content", []) or []
                                  if isinstance(node, Mapping)))
    return "\n".join(paragraphs)

