"""The Zendesk sandbox's state: tickets, their audits, and the rules Zendesk applies to writes.

The connector is only as correct as its reading of what Zendesk does with a write, so the
rules that decide what a write *means* live here, free of HTTP, shared by the REST layer
(`zendesk.py`) and the Python helpers that play human agents and requesters:

- every write is validated as a whole before anything changes: an unknown status or
  priority, an unknown custom field id, a date field given anything but `YYYY-MM-DD`
  (real Zendesk refuses even an ISO date-time there, zenpy issue #425), or a dropdown value
  that is not one of its options is a 422 `RecordInvalid` and leaves the ticket untouched;
- a closed ticket cannot be updated (422 RecordInvalid, details.status "Status: closed prevents
  ticket update"; the body as Zendesk sends it: Speedygeek/ZendeskApi_v2#59); its continuation
  is a follow-up ticket, created with `via_followup_source_id` (Zendesk "Creating and updating
  tickets" > "Creating a follow-up ticket": the parameter only works with closed tickets, the
  follow-up inherits the parent's tags unless the request names tags), listed in the parent's
  `followup_ids`;
- Update Ticket takes `tags` as the whole new list; `additional_tags` / `remove_tags` are
  documented for Update Many Tickets only ("If you use the Update Ticket endpoint to add one or
  more tags to a ticket, the new tags replace any existing tags", Zendesk "Adding tags to tickets
  without overwriting existing tags"), so a single-ticket update ignores them: they never land
  (fail closed), and a client relying on them sees its tags missing from the answer;
- a field whose `required` is true ("If true, agents must enter a value in the field to change
  the ticket status to solved", Zendesk Ticket Fields API) blocks a move to solved or closed
  while it is empty: 422 RecordInvalid with `details.base` naming the field ("<title>: is
  required when solving a ticket", ticket_field_id, ticket_field_type – the body of
  facetoe/zenpy#114), and nothing of that write lands;
- every write that changes something appends one audit whose events say what changed
  (`Create` on creation, `Change` with `previous_value` afterwards, `Comment` for a
  comment, listed first) and moves `updated_at`; a write that changes nothing does neither;
- a dropdown ("tagger") field and the ticket's tags stay in step: choosing an option adds
  its tag and drops the previous option's tag, removing the tag clears the field;
- assigning a `new` ticket opens it, and a requester's (end-user's) comment on a `pending`
  or `solved` ticket reopens it, unless the same write sets a status itself.

Callers serialise access (the sandbox holds one lock around every call).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

STATUSES: tuple[str, ...] = ("new", "open", "pending", "hold", "solved", "closed")
PRIORITIES: tuple[str, ...] = ("low", "normal", "high", "urgent")
TICKET_TYPES: tuple[str, ...] = ("question", "incident", "problem", "task")
# Modern accounts give every status category a default custom status; tickets report its id.
CUSTOM_STATUS_IDS: dict[str, int] = {status: 360009000001 + i for i, status in enumerate(STATUSES)}

ACCOUNT_BRAND_ID = 360002200001
TICKET_FORM_ID = 360003300001
CUSTOMER_ORGANIZATION_ID = 360020031234
FIELD_TIMESTAMP = "2024-03-04T06:12:40Z"  # when the account's ticket fields were set up
USER_TIMESTAMP = "2025-02-11T03:22:18Z"

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TAG_SPLIT = re.compile(r"[\s,]+")
_HTML_TAG = re.compile(r"<[^>]+>")


# --------------------------------------------------------------------------- errors


class ZendeskApiError(Exception):
    """An error answer in Zendesk's own JSON shape."""

    def __init__(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = dict(body)
        self.headers = dict(headers or {})


def record_not_found() -> ZendeskApiError:
    return ZendeskApiError(404, {"error": "RecordNotFound", "description": "Not found"})


def record_invalid(details: Mapping[str, list[dict[str, Any]]]) -> ZendeskApiError:
    return ZendeskApiError(422, {"error": "RecordInvalid", "description": "Record validation errors",
                                 "details": dict(details)})


def _invalid(attribute: str, description: str, **extra: Any) -> ZendeskApiError:
    return record_invalid({attribute: [{"description": description, "error": "InvalidValue", **extra}]})


def iso(moment: datetime) -> str:
    """Zendesk's timestamp format: UTC, whole seconds, trailing Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return parsed if parsed.tzinfo is not None else None


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class SandboxUser:
    id: int
    name: str
    email: str
    role: str = "end-user"  # end-user, agent, admin
    default_group_id: int | None = None
    iana_time_zone: str = "UTC"
    # An agent in a custom role (Enterprise): the role's id and role_type (1: light agent).
    custom_role_id: int | None = None
    role_type: int | None = None
    # The user's organization; None: end-users belong to the account's customer organization.
    organization_id: int | None = None
    # The user's language, e.g. "zh-CN" (the user object's `locale`,
    # https://developer.zendesk.com/api-reference/ticketing/users/users/).
    locale: str = "en-US"

    @property
    def is_staff(self) -> bool:
        return self.role in ("agent", "admin")

    @property
    def effective_organization_id(self) -> int | None:
        """A new ticket takes its requester's (default) organization (Tickets API, `organization_id`)."""
        if self.organization_id is not None:
            return self.organization_id
        return CUSTOMER_ORGANIZATION_ID if self.role == "end-user" else None


@dataclass(frozen=True)
class SandboxOrganization:
    id: int
    name: str
    domain_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class SandboxGroup:
    id: int
    name: str
    description: str = ""


@dataclass(frozen=True)
class FieldOption:
    id: int
    name: str
    value: str  # the option's tag


@dataclass(frozen=True)
class TicketField:
    """One entry of the ticket-field catalogue; system fields carry their ticket attribute."""

    id: int
    type: str  # subject, description, status, tickettype, priority, group, assignee, text, textarea, date, tagger
    title: str
    description: str = ""
    options: tuple[FieldOption, ...] = ()
    visible_in_portal: bool = True
    editable_in_portal: bool = False
    # Agents must fill it to solve a ticket (the ticket field's `required`, Ticket Fields API).
    required: bool = False
    # "Whether this field is available" / "Whether this field is editable by agents" (read-only),
    # Zendesk Ticket Fields API.
    active: bool = True
    agent_can_edit: bool = True

    @property
    def system(self) -> bool:
        return self.type in SYSTEM_FIELD_TYPES

    @property
    def error_type(self) -> str:
        """The `ticket_field_type` Zendesk names in validation errors (FieldDate, FieldTagger...)."""
        return "Field" + self.type.capitalize()

    def option(self, ref: str) -> FieldOption | None:
        wanted = ref.casefold()
        return next((o for o in self.options if wanted in (o.value.casefold(), o.name.casefold())), None)


SYSTEM_FIELD_TYPES = frozenset({"subject", "description", "status", "tickettype", "priority", "group", "assignee"})

SYSTEM_FIELDS: tuple[TicketField, ...] = (
    TicketField(360051234401, "subject", "Subject", editable_in_portal=True),
    TicketField(360051234402, "description", "Description", editable_in_portal=True),
    TicketField(360051234403, "status", "Status"),
    TicketField(360051234404, "tickettype", "Type"),
    TicketField(360051234405, "priority", "Priority"),
    TicketField(360051234406, "group", "Group"),
    TicketField(360051234407, "assignee", "Assignee"),
)


def _options(first_id: int, *names: str) -> tuple[FieldOption, ...]:
    return tuple(FieldOption(first_id + i, name, re.sub(r"\W+", "_", name.casefold()).strip("_"))
                 for i, name in enumerate(names))


def _custom(fid: int, kind: str, title: str, *, options: tuple[FieldOption, ...] = (),
            portal: bool = True, requester_edits: bool = False) -> TicketField:
    return TicketField(fid, kind, title, f"{title} as reported or recorded by support", options,
                       visible_in_portal=portal, editable_in_portal=requester_edits)


# The titles default_zendesk_mapping() looks for; the ids match tests/responses/zendesk_ticket_with_audits.json.
DEFAULT_CUSTOM_FIELDS: tuple[TicketField, ...] = (
    _custom(360051234501, "tagger", "Category", requester_edits=True,
            options=_options(360098765001, "Network", "Outage", "Performance", "Login", "Billing", "Mobile")),
    _custom(360051234502, "text", "Environment", requester_edits=True),
    _custom(360051234503, "textarea", "Impact scope", requester_edits=True),
    _custom(360051234504, "textarea", "Steps to reproduce", requester_edits=True),
    _custom(360051234505, "textarea", "Error message", requester_edits=True),
    _custom(360051234506, "date", "Occurred at", requester_edits=True),
    _custom(360051234507, "textarea", "Root cause"),
    _custom(360051234508, "textarea", "Solution"),
    _custom(360051234509, "tagger", "Verification result", portal=False,
            options=_options(360098765007, "Resolved", "Partly resolved", "Not resolved")),
    _custom(360051234510, "text", "Knowledge base link"),
    _custom(360051234511, "date", "First response due"),
    _custom(360051234512, "date", "Resolution due"),
    _custom(360051234513, "date", "Follow-up due"),
    _custom(360051234514, "textarea", "Recurrence note"),
    _custom(360051234515, "text", "Problem number"),
    # Review gate: the change type as a drop-down (tags data_fix …) and the reviewer's agent
    # user id in a text field (a ticket field holds no user object).
    _custom(360051234516, "tagger", "Change type", portal=False,
            options=_options(360098765020, "Standard", "Data fix", "Configuration", "Upgrade", "Architecture")),
    _custom(360051234517, "text", "Reviewer", portal=False),
    # Closing summary (connector/rules/closing_summary.py): what keeps the problem from coming back.
    _custom(360051234518, "textarea", "Preventive measures", portal=False),
)


# --------------------------------------------------------------------------- records


@dataclass
class StoredComment:
    id: int
    audit_id: int
    author_id: int
    body: str
    html_body: str
    public: bool
    created_at: datetime
    channel: str


@dataclass
class Audit:
    id: int
    ticket_id: int
    created_at: datetime
    author_id: int
    channel: str
    client: str
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StoredTicket:
    id: int
    subject: str
    description: str
    status: str
    priority: str | None
    type: str | None
    requester_id: int
    submitter_id: int
    assignee_id: int | None
    group_id: int | None
    organization_id: int | None
    tags: list[str]
    custom: dict[int, Any]
    created_at: datetime
    updated_at: datetime
    channel: str
    collaborator_ids: list[int] = field(default_factory=list)
    comments: list[StoredComment] = field(default_factory=list)
    audits: list[Audit] = field(default_factory=list)
    solved_at: datetime | None = None  # when it last entered solved (the auto-close clock)
    followup_ids: list[int] = field(default_factory=list)
    followup_source_id: int | None = None
    # Legacy CSAT: {"id", "score", "comment", ...} once the requester rated the ticket.
    satisfaction: dict[str, Any] | None = None


@dataclass
class FieldChange:
    name: str  # the audit event's field_name: status, priority, tags, group_id, or a custom field id
    previous: Any
    current: Any


@dataclass
class Change:
    """What one accepted write did; the sandbox turns it into webhooks."""

    ticket: StoredTicket
    audit: Audit
    actor_id: int
    at: datetime
    created: bool = False
    changes: list[FieldChange] = field(default_factory=list)
    comment: StoredComment | None = None

    @property
    def changed(self) -> bool:
        return self.created or bool(self.changes) or self.comment is not None

    def change(self, name: str) -> FieldChange | None:
        return next((c for c in self.changes if c.name == name), None)


# --------------------------------------------------------------------------- the store


def _id_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _as_tag_list(value: Any, attribute: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        items: Iterable[Any] = _TAG_SPLIT.split(value)
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise _invalid(attribute, f"{attribute} must be a list of tags or a space-separated string")
    tags = []
    for item in items:
        if not isinstance(item, (str, int)):
            raise _invalid(attribute, f"{attribute} must hold strings, found {type(item).__name__}")
        tag = str(item).strip()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def plain_text(html_body: str) -> str:
    return html.unescape(_HTML_TAG.sub("", html_body)).strip()


def html_of(body: str) -> str:
    paragraphs = "".join(f'<p dir="auto">{html.escape(p)}</p>' for p in body.split("\n\n") if p.strip())
    return f'<div class="zd-comment" dir="auto">{paragraphs}</div>'


def _role_type(user: SandboxUser) -> int | None:
    """Users API `role_type`: "0 for a custom agent, 1 for a light agent, 2 for a chat agent, 3
    for a chat agent added to the Support account as a contributor, 4 for an admin, and 5 for a
    billing admin"; end users have none."""
    if not user.is_staff:
        return None
    if user.role == "admin":
        return 4
    return user.role_type if user.role_type is not None else 0


class ZendeskStore:
    """Tickets, users, groups and the field catalogue of one Zendesk account."""

    def __init__(self, *, custom_fields: Sequence[TicketField] | None = None, base_url: str = "") -> None:
        self.base_url = base_url
        self.users: dict[int, SandboxUser] = {}
        self.groups: dict[int, SandboxGroup] = {}
        self.organizations: dict[int, SandboxOrganization] = {
            CUSTOMER_ORGANIZATION_ID: SandboxOrganization(CUSTOMER_ORGANIZATION_ID, "Customer Example Ltd",
                                                          ("customer.example",))}
        self.fields: dict[int, TicketField] = {}
        for definition in (*SYSTEM_FIELDS, *(DEFAULT_CUSTOM_FIELDS if custom_fields is None else custom_fields)):
            if definition.id in self.fields:
                raise ValueError(f"ticket field id {definition.id} is defined twice")
            self.fields[definition.id] = definition
        self.tickets: dict[int, StoredTicket] = {}
        # (user id, group id) -> member? Set by the sandbox from its group memberships.
        self.member_of: Callable[[int, int], bool] | None = None
        self._next_ticket = 1
        self._next_object = 50_000_000_001  # audits, events and comments share one id space

    # ---- catalogue

    @property
    def custom_fields(self) -> list[TicketField]:
        return [f for f in self.fields.values() if not f.system]

    def add_user(self, user: SandboxUser) -> SandboxUser:
        if user.role not in ("end-user", "agent", "admin"):
            raise ValueError(f"role must be end-user, agent or admin, not {user.role!r}")
        self.users[user.id] = user
        return user

    def add_group(self, group: SandboxGroup) -> SandboxGroup:
        self.groups[group.id] = group
        return group

    def find_user(self, ref: int | str) -> SandboxUser | None:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            return self.users.get(int(ref))
        wanted = ref.casefold()
        return next((u for u in self.users.values() if wanted in (u.email.casefold(), u.name.casefold())), None)

    def find_group(self, ref: int | str) -> SandboxGroup | None:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            return self.groups.get(int(ref))
        return next((g for g in self.groups.values() if g.name.casefold() == ref.casefold()), None)

    def field_by_ref(self, ref: int | str) -> TicketField:
        """A custom field by id or title (case-insensitive); KeyError names the known titles."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            found = self.fields.get(int(ref))
            if found is not None and not found.system:
                return found
        else:
            for definition in self.custom_fields:
                if definition.title.casefold() == ref.casefold():
                    return definition
        titles = ", ".join(f.title for f in self.custom_fields)
        raise KeyError(f"no custom ticket field {ref!r}; known: {titles}")

    def new_id(self) -> int:
        self._next_object += 1
        return self._next_object

    def get(self, ticket_id: int | str) -> StoredTicket:
        try:
            ticket = self.tickets.get(int(ticket_id))
        except (TypeError, ValueError):
            ticket = None
        if ticket is None:
            raise record_not_found()
        return ticket

    # ---- writes

    def create(self, data: Mapping[str, Any], *, actor_id: int, at: datetime, channel: str = "api",
               client: str = "") -> Change:
        """POST /api/v2/tickets.json: `data` is the inner "ticket" object."""
        if not isinstance(data, Mapping):
            raise ZendeskApiError(400, {"error": "InvalidJSON", "description": "ticket must be a JSON object"})
        comment = self._comment_input(data.get("comment"), actor_id)
        if comment is None and isinstance(data.get("description"), str) and data["description"].strip():
            comment = (data["description"].strip(), html_of(data["description"].strip()), True, actor_id)
        if comment is None:
            raise _invalid("description", "Description: cannot be blank")
        requester = self._user_ref(data.get("requester_id", actor_id), "requester")
        submitter = self._user_ref(data.get("submitter_id", actor_id), "submitter")
        edits = self._edits(data, None)
        self._check_assignee_in_group(edits, None)
        assignee_id = edits.get("assignee_id")
        status = edits.get("status") or ("open" if assignee_id else "new")
        if status == "closed":
            raise _invalid("status", "Status: a ticket cannot be created closed")
        source = self._followup_source(data.get("via_followup_source_id"))
        if source is not None and "tags" not in edits:
            edits["tags"] = list(source.tags)  # a follow-up inherits its parent's tags
        subject = str(data.get("subject") or comment[0].split("\n", 1)[0][:80])
        ticket = StoredTicket(
            id=self._next_ticket, subject=subject, description=comment[0], status=status,
            priority=edits.get("priority"), type=edits.get("type"), requester_id=requester.id,
            submitter_id=submitter.id, assignee_id=assignee_id, group_id=edits.get("group_id"),
            organization_id=requester.effective_organization_id,
            tags=[], custom={}, created_at=at, updated_at=at, channel=channel,
        )
        tags = edits.get("tags", [])
        for fid, value in edits.get("custom", {}).items():
            ticket.custom[fid] = value
            tags = self._tags_for_option(fid, None, value, tags)
        ticket.tags = sorted(set(tags))
        if status == "solved":
            ticket.solved_at = at
        if source is not None:
            ticket.followup_source_id = source.id
            source.followup_ids.append(ticket.id)
        self._next_ticket += 1
        self.tickets[ticket.id] = ticket

        audit = self._audit(ticket, actor_id, at, channel, client)
        ticket.audits.append(audit)
        stored = self._add_comment(ticket, audit, comment, at, channel)
        for name, value in (("subject", ticket.subject), ("status", ticket.status), ("priority", ticket.priority),
                            ("type", ticket.type), ("requester_id", _id_text(ticket.requester_id)),
                            ("group_id", _id_text(ticket.group_id)), ("assignee_id", _id_text(ticket.assignee_id)),
                            ("tags", list(ticket.tags) or None)):
            if value is not None:
                audit.events.append({"id": self.new_id(), "type": "Create", "value": value, "field_name": name})
        for fid, value in ticket.custom.items():
            if value is not None:
                audit.events.append({"id": self.new_id(), "type": "Create", "value": value, "field_name": str(fid)})
        return Change(ticket, audit, actor_id, at, created=True, comment=stored)

    def _followup_source(self, value: Any) -> StoredTicket | None:
        """The closed ticket a new one follows up, or None ("It has no effect with other tickets")."""
        if value is None:
            return None
        source = self.tickets.get(int(value)) if str(value).isdigit() else None
        if source is None:
            raise _invalid("via_followup_source_id", f"Via followup source: ticket {value} does not exist")
        return source if source.status == "closed" else None

    def auto_close(self, now: datetime, after: Any) -> list[Change]:
        """Close every ticket solved at least `after` (a timedelta) before `now`, as Zendesk's
        default automation does ("Close ticket 4 days after status is set to solved"), at the
        moment it became due; the audit is the automation's (author -1, channel "rule")."""
        changes = []
        for ticket in self.tickets.values():
            if ticket.status != "solved" or ticket.solved_at is None or ticket.solved_at + after > now:
                continue
            due = ticket.solved_at + after
            audit = Audit(self.new_id(), ticket.id, due, -1, "rule", "")
            audit.events.append({"id": self.new_id(), "type": "Change", "value": "closed", "field_name": "status",
                                 "previous_value": "solved"})
            ticket.audits.append(audit)
            ticket.status = "closed"
            ticket.updated_at = max(ticket.updated_at, due)
            changes.append(Change(ticket, audit, -1, due, changes=[FieldChange("status", "solved", "closed")]))
        return changes

    def update(self, ticket: StoredTicket, data: Mapping[str, Any], *, actor_id: int, at: datetime,
               channel: str = "api", client: str = "", bulk: bool = False) -> Change:
        """PUT /api/v2/tickets/{id}.json: `data` is the inner "ticket" object.

        `bulk` is Update Many Tickets (`update_many.json?ids=`), the only update that honours
        `additional_tags` / `remove_tags`; a single-ticket update ignores them.
        """
        if not isinstance(data, Mapping):
            raise ZendeskApiError(400, {"error": "InvalidJSON", "description": "ticket must be a JSON object"})
        if data.get("safe_update"):
            stamp = data.get("updated_stamp")
            stamped = parse_iso(stamp) if isinstance(stamp, str) else None
            if stamped is None:
                raise _invalid("updated_stamp", "Updated stamp: is required for a safe update, as an ISO 8601 time")
            if stamped.replace(microsecond=0) != ticket.updated_at.replace(microsecond=0):
                raise ZendeskApiError(409, {
                    "error": "UpdateConflict",
                    "description": "Safe Update prevented the update due to outdated ticket data. "
                                   "Please fetch the latest ticket data and try again.",
                })
        if ticket.status == "closed":
            raise _invalid("status", "Status: closed prevents ticket update")
        edits = self._edits(data, ticket)
        self._check_assignee_in_group(edits, ticket)
        if not bulk:
            edits.pop("additional_tags", None)
            edits.pop("remove_tags", None)
        comment = self._comment_input(data.get("comment"), actor_id)

        status = edits.get("status", ticket.status)
        if "status" not in edits:
            author = self.users.get(comment[3]) if comment else None
            if ticket.status == "new" and edits.get("assignee_id"):
                status = "open"  # Zendesk opens a new ticket as soon as someone owns it
            elif author is not None and author.role == "end-user" and ticket.status in ("pending", "solved"):
                status = "open"  # the requester answered: the ball is back with support
        if status == "new" and ticket.status != "new":
            raise _invalid("status", "Status: new is not valid once a ticket has been opened")

        tags = list(ticket.tags)
        if "tags" in edits:
            tags = edits["tags"]
        tags += [t for t in edits.get("additional_tags", []) if t not in tags]
        removed = set(edits.get("remove_tags", []))
        tags = [t for t in tags if t not in removed]
        custom = dict(ticket.custom)
        for fid, value in edits.get("custom", {}).items():
            tags = self._tags_for_option(fid, custom.get(fid), value, tags)
            custom[fid] = value
        # A dropdown's value is its tag: taking the tag away clears the field.
        for fid, value in list(custom.items()):
            if self.fields[fid].type == "tagger" and value is not None and value not in tags:
                custom[fid] = None
        new_tags = sorted(set(tags))
        if status in ("solved", "closed") and status != ticket.status:
            self._check_required_to_solve(custom)

        changes: list[FieldChange] = []
        for name, old, new in (
            ("subject", ticket.subject, edits.get("subject", ticket.subject)),
            ("status", ticket.status, status),
            ("priority", ticket.priority, edits.get("priority", ticket.priority)),
            ("type", ticket.type, edits.get("type", ticket.type)),
            ("requester_id", ticket.requester_id, edits.get("requester_id", ticket.requester_id)),
            ("group_id", ticket.group_id, edits.get("group_id", ticket.group_id)),
            ("assignee_id", ticket.assignee_id, edits.get("assignee_id", ticket.assignee_id)),
            ("tags", ticket.tags, new_tags),
        ):
            if old != new:
                changes.append(FieldChange(name, old, new))
        for fid in custom:
            if custom[fid] != ticket.custom.get(fid):
                changes.append(FieldChange(str(fid), ticket.custom.get(fid), custom[fid]))

        audit = self._audit(ticket, actor_id, at, channel, client)
        stored = self._add_comment(ticket, audit, comment, at, channel) if comment else None
        for change in changes:
            if change.name.isdigit():
                ticket.custom[int(change.name)] = change.current
            else:
                setattr(ticket, change.name, list(change.current) if change.name == "tags" else change.current)
            value, previous = change.current, change.previous
            if change.name.endswith("_id"):
                value, previous = _id_text(value), _id_text(previous)
            audit.events.append({"id": self.new_id(), "type": "Change", "value": value,
                                 "field_name": change.name, "previous_value": previous})
        if changes or stored:
            # A write that changes nothing leaves no audit and does not move updated_at.
            ticket.audits.append(audit)
            ticket.updated_at = max(ticket.updated_at, at)
            if ticket.status == "solved" and any(c.name == "status" for c in changes):
                ticket.solved_at = at
        return Change(ticket, audit, actor_id, at, changes=changes, comment=stored)

    # ---- validation helpers

    def _check_assignee_in_group(self, edits: Mapping[str, Any], ticket: StoredTicket | None) -> None:
        """An assignee set by a write must be a member of the ticket's group: 422 "Assignee: is not
        a member of the group" (the body of facetoe/zenpy#628; Zendesk "About system ticket rules":
        an agent removed from the group loses the assignment). Only a write that names the
        assignee is checked; `member_of` is the account's group memberships (None: unchecked)."""
        assignee = edits.get("assignee_id")
        if assignee is None or self.member_of is None:
            return
        group = edits.get("group_id", ticket.group_id if ticket is not None else None)
        if group is not None and not self.member_of(assignee, group):
            raise record_invalid({"assignee": [{"description": "Assignee: is not a member of the group"}]})

    def _check_required_to_solve(self, custom: Mapping[int, Any]) -> None:
        missing = [f for f in self.custom_fields if f.required and custom.get(f.id) in (None, "", [])]
        if missing:
            raise record_invalid({"base": [{
                "description": f"{f.title}: is required when solving a ticket", "error": None,
                "ticket_field_id": f.id, "ticket_field_type": f.error_type,
            } for f in missing]})

    def _user_ref(self, value: Any, attribute: str) -> SandboxUser:
        user = self.users.get(value) if isinstance(value, int) else (
            self.users.get(int(value)) if isinstance(value, str) and value.isdigit() else None)
        if user is None:
            raise _invalid(attribute, f"{attribute.capitalize()}: {value!r} is not a user of this account")
        return user

    def _edits(self, data: Mapping[str, Any], ticket: StoredTicket | None) -> dict[str, Any]:
        """The writable attributes of `data`, validated and normalised; raises on the first problem."""
        edits: dict[str, Any] = {}
        if "subject" in data:
            if not isinstance(data["subject"], str) or not data["subject"].strip():
                raise _invalid("subject", "Subject: cannot be blank")
            edits["subject"] = data["subject"].strip()
        if "status" in data:
            status = data["status"]
            if not isinstance(status, str) or status.casefold() not in STATUSES:
                raise _invalid("status", f"Status: {status} is not valid")
            edits["status"] = status.casefold()
        for attribute, allowed in (("priority", PRIORITIES), ("type", TICKET_TYPES)):
            if attribute in data:
                value = data[attribute]
                if value in (None, ""):
                    edits[attribute] = None
                elif isinstance(value, str) and value.casefold() in allowed:
                    edits[attribute] = value.casefold()
                else:
                    raise _invalid(attribute, f"{attribute.capitalize()}: {value} is not valid")
        if "requester_id" in data and ticket is not None:
            edits["requester_id"] = self._user_ref(data["requester_id"], "requester").id
        if "group_id" in data:
            value = data["group_id"]
            if value in (None, ""):
                edits["group_id"] = None
            else:
                group = self.find_group(value) if isinstance(value, (int, str)) and str(value).isdigit() else None
                if group is None:
                    raise _invalid("group", f"Group: {value} is not a group of this account")
                edits["group_id"] = group.id
        if "assignee_id" in data:
            value = data["assignee_id"]
            if value in (None, ""):
                edits["assignee_id"] = None
            else:
                user = self._user_ref(value, "assignee")
                if not user.is_staff:
                    raise _invalid("assignee", f"Assignee: {user.name} is not an agent")
                edits["assignee_id"] = user.id
        if "tags" in data:
            edits["tags"] = _as_tag_list(data["tags"], "tags")
        for attribute in ("additional_tags", "remove_tags"):
            if attribute in data:
                edits[attribute] = _as_tag_list(data[attribute], attribute)
        entries = data.get("custom_fields", data.get("fields"))
        if entries is not None:
            edits["custom"] = self._custom_values(entries)
        return edits

    def _custom_values(self, entries: Any) -> dict[int, Any]:
        if isinstance(entries, Mapping):  # Zendesk also takes {"<id>": value}
            entries = [{"id": k, "value": v} for k, v in entries.items()]
        if not isinstance(entries, list):
            raise _invalid("custom_fields", "custom_fields must be a list of {id, value} objects")
        values: dict[int, Any] = {}
        for entry in entries:
            if not isinstance(entry, Mapping) or "id" not in entry:
                raise _invalid("custom_fields", "each custom field needs an 'id' and a 'value'")
            raw_id = entry["id"]
            definition = self.fields.get(int(raw_id)) if str(raw_id).isdigit() else None
            if definition is None or definition.system:
                raise record_invalid({"base": [{
                    "description": f"Ticket field {raw_id} does not exist in this account",
                    "error": "InvalidValue", "ticket_field_id": raw_id,
                }]})
            values[definition.id] = self._field_value(definition, entry.get("value"))
        return values

    def _field_value(self, definition: TicketField, value: Any) -> Any:
        def bad() -> ZendeskApiError:
            return record_invalid({"base": [{
                "description": f"{definition.title} is not valid", "error": "InvalidValue",
                "ticket_field_id": definition.id, "ticket_field_type": definition.error_type,
            }]})

        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if definition.type in ("text", "textarea"):
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise bad()
            return str(value)
        if definition.type == "date":
            if not isinstance(value, str) or not _DATE.fullmatch(value.strip()):
                raise bad()
            try:
                date.fromisoformat(value.strip())
            except ValueError:
                raise bad() from None
            return value.strip()
        if definition.type == "tagger":
            option = definition.option(value) if isinstance(value, str) else None
            if option is None or option.value != value:
                raise bad()
            return option.value
        return value

    def _tags_for_option(self, fid: int, old: Any, new: Any, tags: list[str]) -> list[str]:
        if self.fields[fid].type != "tagger" or old == new:
            return tags
        kept = [t for t in tags if t != old]
        return kept + [new] if new is not None and new not in kept else kept

    def _comment_input(self, value: Any, actor_id: int) -> tuple[str, str, bool, int] | None:
        """(body, html_body, public, author_id) of a write's `comment`, or None."""
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise _invalid("comment", "Comment: must be an object with a body")
        html_body = value.get("html_body")
        body = value.get("body")
        if isinstance(html_body, str) and html_body.strip():
            text = plain_text(html_body)
        elif isinstance(body, str) and body.strip():
            text, html_body = body.strip(), html_of(body.strip())
        else:
            raise _invalid("comment", "Comment: cannot be blank")
        public = value.get("public", True)
        if not isinstance(public, bool):
            raise _invalid("comment", "Comment: public must be true or false")
        author_id = self._user_ref(value["author_id"], "author").id if value.get("author_id") is not None else actor_id
        return text, html_body, public, author_id

    def _audit(self, ticket: StoredTicket, actor_id: int, at: datetime, channel: str, client: str) -> Audit:
        """A new audit; `create`/`update` attach it to the ticket only when the write changed something."""
        return Audit(self.new_id(), ticket.id, at, actor_id, channel, client)

    def _add_comment(self, ticket: StoredTicket, audit: Audit, comment: tuple[str, str, bool, int],
                     at: datetime, channel: str) -> StoredComment:
        body, html_body, public, author_id = comment
        stored = StoredComment(self.new_id(), audit.id, author_id, body, html_body, public, at, channel)
        ticket.comments.append(stored)
        audit.events.insert(0, {**self._comment_fields(stored), "audit_id": audit.id})
        if author_id != ticket.requester_id and author_id not in ticket.collaborator_ids \
                and not self.users[author_id].is_staff:
            ticket.collaborator_ids.append(author_id)  # another customer joining in becomes a CC
        return stored

    # ---- JSON shapes

    def _via(self, channel: str) -> dict[str, Any]:
        return {"channel": channel, "source": {"from": {}, "to": {}, "rel": None}}

    def _ticket_via(self, ticket: StoredTicket) -> dict[str, Any]:
        via = self._via(ticket.channel)
        if ticket.followup_source_id is not None:
            source = self.tickets[ticket.followup_source_id]
            via["source"] = {"from": {"ticket_id": source.id, "subject": source.subject}, "to": {}, "rel": "follow_up"}
        return via

    def _comment_fields(self, comment: StoredComment) -> dict[str, Any]:
        return {"id": comment.id, "type": "Comment", "author_id": comment.author_id, "body": comment.body,
                "html_body": comment.html_body, "plain_body": comment.body, "public": comment.public,
                "attachments": []}

    def comment_json(self, comment: StoredComment) -> dict[str, Any]:
        return {**self._comment_fields(comment), "audit_id": comment.audit_id, "via": self._via(comment.channel),
                "created_at": iso(comment.created_at),
                "metadata": {"system": {"client": "connector-sandbox", "ip_address": "127.0.0.1"}, "custom": {}}}

    def audit_json(self, audit: Audit) -> dict[str, Any]:
        return {"id": audit.id, "ticket_id": audit.ticket_id, "created_at": iso(audit.created_at),
                "author_id": audit.author_id,
                "metadata": {"system": {"client": audit.client or "connector-sandbox", "ip_address": "127.0.0.1"},
                             "custom": {}},
                "events": [dict(e) for e in audit.events], "via": self._via(audit.channel)}

    def ticket_json(self, ticket: StoredTicket) -> dict[str, Any]:
        custom = [{"id": f.id, "value": ticket.custom.get(f.id)} for f in self.custom_fields]
        return {
            "url": f"{self.base_url}/api/v2/tickets/{ticket.id}.json", "id": ticket.id, "external_id": None,
            "via": self._ticket_via(ticket), "created_at": iso(ticket.created_at),
            "updated_at": iso(ticket.updated_at), "generated_timestamp": int(ticket.updated_at.timestamp()),
            "type": ticket.type, "subject": ticket.subject, "raw_subject": ticket.subject,
            "description": ticket.description, "priority": ticket.priority, "status": ticket.status,
            "recipient": None, "requester_id": ticket.requester_id, "submitter_id": ticket.submitter_id,
            "assignee_id": ticket.assignee_id, "organization_id": ticket.organization_id,
            "group_id": ticket.group_id, "collaborator_ids": list(ticket.collaborator_ids), "follower_ids": [],
            "email_cc_ids": list(ticket.collaborator_ids), "forum_topic_id": None, "problem_id": None,
            "has_incidents": False, "is_public": any(c.public for c in ticket.comments), "due_at": None,
            "tags": list(ticket.tags), "custom_fields": custom, "satisfaction_rating": self._satisfaction_json(ticket),
            "sharing_agreement_ids": [], "custom_status_id": CUSTOM_STATUS_IDS[ticket.status],
            "fields": [dict(entry) for entry in custom], "followup_ids": list(ticket.followup_ids), "ticket_form_id": TICKET_FORM_ID,
            "brand_id": ACCOUNT_BRAND_ID, "allow_channelback": False, "allow_attachments": True,
            "from_messaging_channel": False,
        }

    def _satisfaction_json(self, ticket: StoredTicket) -> dict[str, Any]:
        """The ticket's `satisfaction_rating`: the rating once given, else the survey state.
        The sandbox account has (legacy) CSAT on, so a ticket never rated reads "unoffered"
        ("the state of satisfaction, 'offered' or 'unoffered'", Tickets API, and
        https://developer.zendesk.com/api-reference/ticketing/ticket-management/satisfaction_ratings/)."""
        if ticket.satisfaction is None:
            return {"score": "unoffered"}
        return dict(ticket.satisfaction)

    def rate(self, ticket: StoredTicket, score: str, comment: str | None, *, actor_id: int, at: datetime) -> Change:
        """POST /api/v2/tickets/{ticket_id}/satisfaction_rating (legacy CSAT): "Creates a CSAT
        rating for a solved ticket, or for a ticket that was previously solved and then
        reopened. Only the end user listed as the ticket requester can create a satisfaction
        rating for the ticket." (Satisfaction Ratings, Zendesk API reference). Scores are
        good / bad. The rating is recorded in an audit as a Change of `satisfaction_score`."""
        if actor_id != ticket.requester_id:
            raise ZendeskApiError(403, {"error": "Forbidden",
                                        "description": "Only the requester can rate this ticket"})
        if score not in ("good", "bad"):
            raise _invalid("score", f"Score: {score!r} is not valid; use good or bad")
        if ticket.solved_at is None:
            raise _invalid("status", "Status: only a solved (or previously solved) ticket can be rated")
        previous = (ticket.satisfaction or {}).get("score", "offered")
        audit = self._audit(ticket, actor_id, at, "web", "")
        rating_id = self.new_id()
        ticket.satisfaction = {
            "url": f"{self.base_url}/api/v2/satisfaction_ratings/{rating_id}.json", "id": rating_id,
            "assignee_id": ticket.assignee_id, "group_id": ticket.group_id, "requester_id": ticket.requester_id,
            "ticket_id": ticket.id, "score": score, "comment": comment or "",
            "created_at": iso(at), "updated_at": iso(at),
        }
        audit.events.append({"id": self.new_id(), "type": "Change", "field_name": "satisfaction_score",
                             "value": score, "previous_value": previous})
        ticket.audits.append(audit)
        ticket.updated_at = max(ticket.updated_at, at)
        # No event webhook for it (no ticket event type names a rating): the sweep of recently
        # updated tickets reads it.
        return Change(ticket, audit, actor_id, at)

    def user_json(self, user: SandboxUser) -> dict[str, Any]:
        return {
            "id": user.id, "url": f"{self.base_url}/api/v2/users/{user.id}.json", "name": user.name,
            "email": user.email, "created_at": USER_TIMESTAMP, "updated_at": USER_TIMESTAMP,
            "time_zone": user.iana_time_zone, "iana_time_zone": user.iana_time_zone, "phone": None,
            "shared_phone_number": None, "photo": None, "locale_id": 1, "locale": user.locale,
            "organization_id": user.effective_organization_id, "role": user.role,
            "verified": True, "external_id": None, "tags": [], "alias": "", "active": True, "shared": False,
            "shared_agent": False, "last_login_at": None, "two_factor_auth_enabled": None, "signature": None,
            "details": "", "notes": "", "role_type": _role_type(user),
            "custom_role_id": user.custom_role_id if user.is_staff else None, "moderator": user.is_staff,
            "ticket_restriction": "requested" if user.role == "end-user" else None,
            "only_private_comments": False, "restricted_agent": user.role == "end-user", "suspended": False,
            "default_group_id": user.default_group_id, "report_csv": user.role == "admin", "user_fields": {},
        }

    def organization_json(self, organization: SandboxOrganization) -> dict[str, Any]:
        """An organization as the Organizations API shows it
        (https://developer.zendesk.com/api-reference/ticketing/organizations/organizations/)."""
        return {"url": f"{self.base_url}/api/v2/organizations/{organization.id}.json", "id": organization.id,
                "name": organization.name, "shared_tickets": False, "shared_comments": False, "external_id": None,
                "created_at": USER_TIMESTAMP, "updated_at": USER_TIMESTAMP,
                "domain_names": list(organization.domain_names), "details": "", "notes": "", "group_id": None,
                "tags": [], "organization_fields": {}}

    def group_json(self, group: SandboxGroup) -> dict[str, Any]:
        return {"url": f"{self.base_url}/api/v2/groups/{group.id}.json", "id": group.id, "is_public": True,
                "name": group.name, "description": group.description, "default": False, "deleted": False,
                "created_at": USER_TIMESTAMP, "updated_at": USER_TIMESTAMP}

    def field_json(self, definition: TicketField, position: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "url": f"{self.base_url}/api/v2/ticket_fields/{definition.id}.json", "id": definition.id,
            "type": definition.type, "title": definition.title, "raw_title": definition.title,
            "description": definition.description, "raw_description": definition.description,
            "position": position, "active": definition.active,
            "agent_can_edit": definition.agent_can_edit, "required": definition.type == "subject" or definition.required,
            "collapsed_for_agents": False, "regexp_for_validation": None,
            "title_in_portal": definition.title, "raw_title_in_portal": definition.title,
            "visible_in_portal": definition.visible_in_portal, "editable_in_portal": definition.editable_in_portal,
            "required_in_portal": definition.type in ("subject", "description"), "tag": None,
            "created_at": FIELD_TIMESTAMP, "updated_at": FIELD_TIMESTAMP, "removable": not definition.system,
            "key": None, "agent_description": None,
        }
        if definition.type == "tickettype":
            body["system_field_options"] = [{"name": t.capitalize(), "value": t} for t in TICKET_TYPES]
        if definition.type == "priority":
            body["system_field_options"] = [{"name": p.capitalize(), "value": p} for p in PRIORITIES]
        if definition.type == "status":
            body["system_field_options"] = [{"name": s.capitalize(), "value": s} for s in STATUSES]
        if definition.options:
            body["custom_field_options"] = [{"id": o.id, "name": o.name, "raw_name": o.name, "value": o.value,
                                             "default": False} for o in definition.options]
        return body

    def field_catalogue(self) -> list[dict[str, Any]]:
        return [self.field_json(f, i) for i, f in enumerate(self.fields.values())]

    def related_users(self, ticket: StoredTicket) -> list[SandboxUser]:
        """Everyone a ticket names or heard from, for the `include=users` sideload."""
        ids = [ticket.requester_id, ticket.submitter_id, ticket.assignee_id, *ticket.collaborator_ids,
               *(c.author_id for c in ticket.comments), *(a.author_id for a in ticket.audits)]
        seen: dict[int, SandboxUser] = {}
        for uid in ids:
            if uid is not None and uid not in seen and uid in self.users:
                seen[uid] = self.users[uid]
        return list(seen.values())

    def search_text(self, ticket: StoredTicket) -> str:
        return "\n".join([ticket.subject, ticket.description, *(c.body for c in ticket.comments)]).casefold()
