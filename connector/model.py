"""Platform-neutral ticket and plan.

The rules engine never sees a Jira issue or a Zendesk ticket: adapters parse the platform's
own REST representation into a `Ticket`, the engine turns a `Ticket` into a `Plan` of
`Action`s, and adapters write the plan back. Keeping this module free of platform detail is
what lets one rule file drive both platforms.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

_set = object.__setattr__

Platform = Literal["jira", "zendesk"]
Priority = Literal["P0", "P1", "P2", "P3"]
PRIORITIES: tuple[Priority, ...] = ("P0", "P1", "P2", "P3")


class Status(StrEnum):
    """The logical statuses of the standard process; platforms map their own names onto these."""

    NEW = "new"
    WAITING_FOR_INFORMATION = "waiting_for_information"
    IN_PROGRESS = "in_progress"
    WAITING_FOR_CUSTOMER = "waiting_for_customer"
    WAITING_FOR_THIRD_PARTY = "waiting_for_third_party"
    RESOLVED = "resolved"
    CLOSED = "closed"


DONE_STATUSES = frozenset({Status.RESOLVED, Status.CLOSED})


class AuthorRole(StrEnum):
    """Who wrote a comment; only agents' public comments count as responses for the SLA."""

    AGENT = "agent"
    REQUESTER = "requester"
    # The connector's own account: its notices must never satisfy a first-response target.
    CONNECTOR = "connector"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Comment(_Frozen):
    id: str
    author: str | None = None
    author_role: AuthorRole = AuthorRole.AGENT
    public: bool = True
    body: str = ""
    created: datetime


class StatusChange(_Frozen):
    """One status transition from the platform's history (Jira changelog, Zendesk audits)."""

    at: datetime
    from_status: Status | None = None
    to_status: Status
    raw_from: str | None = None
    raw_to: str | None = None


class PriorityChange(_Frozen):
    """One priority change from the platform's history (Jira changelog, Zendesk audits);
    None is no priority, or one the mapping does not know."""

    at: datetime
    from_priority: Priority | None = None
    to_priority: Priority | None = None


class SimilarCase(_Frozen):
    """A resolved ticket that looks like another one, as `connector.knowledge` found it.

    `score` is the share (0..1) of the ticket's weighted search terms that this case
    shares (BM25 normalised by the ticket's score against itself), so a threshold means
    the same thing whatever the number of candidates the platform's search returned.
    """

    key: str
    url: str | None = None
    summary: str = ""
    root_cause: str = ""
    solution: str = ""
    score: float


class ApproverDecision(_Frozen):
    """One approver of an approval and what they answered ("approved", "declined", "pending")."""

    approver: str  # identity: accountId on Jira Cloud, username (or key) on Data Center
    decision: str = "pending"


class Approval(_Frozen):
    """A platform approval on a ticket (Jira Service Management approvals). `final_decision`
    is the platform's own verdict: "approved", "declined" or "pending"."""

    id: str
    name: str = ""
    final_decision: str = "pending"
    approvers: tuple[ApproverDecision, ...] = ()
    completed: datetime | None = None


class Ticket(BaseModel):
    """A ticket as the rules see it: logical names only, times timezone-aware."""

    model_config = ConfigDict(extra="forbid")

    platform: Platform
    id: str
    key: str
    url: str | None = None
    summary: str = ""
    description: str = ""
    category: str | None = None
    priority: Priority | None = None
    raw_priority: str | None = None
    status: Status
    raw_status: str | None = None
    # Logical statuses that the platform writes with the same raw status as this ticket's
    # (Zendesk has one "pending" for waiting on customer and waiting for information):
    # a transition to any of them is already done.
    status_equivalents: frozenset[Status] = frozenset()
    reporter: str | None = None
    # The customer behind the ticket, for per-customer service levels (`when.organizations`,
    # `when.email_domains`). None means the platform did not tell (a site without the
    # organizations field, an e-mail hidden by the user's privacy setting): such a ticket
    # matches no customer-specific condition (fail closed). Only the DOMAIN of the
    # requester's e-mail is kept, never the address.
    organizations: tuple[str, ...] | None = None
    requester_email_domain: str | None = None
    # The requester's language as the platform gives it (Zendesk user `locale`, e.g. "zh-CN";
    # Jira user `locale`, e.g. "zh_CN", when the reporter object carries one); None: unknown.
    requester_locale: str | None = None
    assignee: str | None = None
    group: str | None = None
    labels: frozenset[str] = frozenset()
    # Markers carried by the connector's own comments (Jira: a `ref: <marker>` trailer, see
    # `connector.platforms.jira.issue`). A comment and its marker label may travel in two
    # requests there; the comment alone already records that the action was done.
    comment_markers: frozenset[str] = frozenset()
    # When each marker was first recorded, from the platform's own dated records (Jira: the
    # `created` of the connector comment carrying the `ref:` trailer; Zendesk: the
    # `created_at` of the audit whose tags Change/Create event added the tag). Read by the
    # escalation response clock (`connector.rules.escalation`); empty when not read.
    marker_times: dict[str, datetime] = Field(default_factory=dict)
    fields: dict[str, Any] = Field(default_factory=dict)
    # The reporter's rating on the process's scale, from the `satisfaction` field or the
    # platform's own CSAT (`connector.satisfaction`); None: not rated (yet).
    satisfaction: Literal["satisfied", "basically satisfied", "needs improvement"] | None = None
    created: datetime
    updated: datetime | None = None
    resolved: datetime | None = None
    status_history: tuple[StatusChange, ...] = ()
    # Dated priority changes, oldest first, where the platform's record was read (a fetch
    # with changelog/audits); empty otherwise. Only `ticket_as_of` reads them.
    priority_history: tuple[PriorityChange, ...] = ()
    comments: tuple[Comment, ...] = ()
    # Resolved tickets like this one, best first, above the configured minimum score. None
    # means nobody looked (looking up costs platform searches, so `connector.knowledge.enrich`
    # does it only when a rule would use the answer); () means looked and found none.
    similar_cases: tuple[SimilarCase, ...] | None = None
    # The platform's approvals on the ticket (Jira Service Management). None means nobody
    # read them: they cost an extra request, so `connector.approvals.with_approvals` reads
    # them only when the review gate's outcome depends on them; () means read, none there
    # (or a project without approvals). Rules treat None like () – fail closed.
    approvals: tuple[Approval, ...] | None = None

    @property
    def markers(self) -> frozenset[str]:
        """Every record of a one-time action: marker labels/tags plus markers in connector comments."""
        return self.labels | self.comment_markers

    def is_in(self, status: Status) -> bool:
        """True when the ticket already shows `status` as far as its platform can tell."""
        return self.status == status or status in self.status_equivalents

    def field_present(self, name: str) -> bool:
        """A logical field counts as given when it holds something other than blanks."""
        value = self.fields.get(name)
        if value is None:
            return False
        if isinstance(value, str):
            return bool(value.strip())
        if isinstance(value, (list, tuple, set, frozenset, dict)):
            return len(value) > 0
        return True


# --- actions ---------------------------------------------------------------------------


class _Action(_Frozen):
    rule: str = Field(description="id of the rule that produced this action")
    reason: str = Field(description="why, in words an agent understands")


class SetFields(_Action):
    type: Literal["set-fields"] = "set-fields"
    fields: dict[str, Any]


class AddLabel(_Action):
    """Add a marker label (Jira) / tag (Zendesk); markers record one-time actions on the ticket."""

    type: Literal["add-label"] = "add-label"
    label: str


class RemoveLabel(_Action):
    type: Literal["remove-label"] = "remove-label"
    label: str


class ChatNotice(_Frozen):
    """A team-chat message that accompanies a one-time comment (`connector.channels`): sent
    once per comment marker and channel, through the outbox, never by the adapters."""

    channel: str
    text: str


class AddComment(_Action):
    """A comment; `marker` records it on the ticket (a label/tag, and on Jira a trailer the
    comment itself carries), so it is posted once. `chat`: messages to team-chat channels
    that go out once the comment is written (`connector.channels.delivery`)."""

    type: Literal["comment"] = "comment"
    body: str
    public: bool = False
    marker: str | None = None
    chat: tuple[ChatNotice, ...] = ()


class Transition(_Action):
    type: Literal["transition"] = "transition"
    to: Status


class Assign(_Action):
    type: Literal["assign"] = "assign"
    group: str | None = None
    assignee: str | None = None


class SetPriority(_Action):
    type: Literal["set-priority"] = "set-priority"
    priority: Priority


Action = Annotated[
    Union[SetFields, AddLabel, RemoveLabel, AddComment, Transition, Assign, SetPriority],
    Field(discriminator="type"),
]


class SlaClock(BaseModel):
    """One SLA metric of one ticket at one instant."""

    model_config = ConfigDict(extra="forbid")

    metric: Literal["first_response", "resolution", "periodic_update", "escalation_response"]
    target_minutes: int
    clock: Literal["business", "calendar"]
    calendar: str
    elapsed_minutes: float
    remaining_minutes: float
    state: Literal["running", "paused", "met", "breached"]
    started: datetime
    due: datetime | None = None
    breached_at: datetime | None = None
    stopped_at: datetime | None = None
    # Periodic updates restart after every agent update; a breach notice is once per cycle.
    cycle: int = 0
    warn_at: tuple[datetime, ...] = ()

    @property
    def elapsed_percent(self) -> float:
        return 100.0 * self.elapsed_minutes / self.target_minutes if self.target_minutes else 100.0


class Plan(BaseModel):
    """What the rules want done to one ticket at one instant, plus the clocks behind it."""

    model_config = ConfigDict(extra="forbid")

    platform: Platform
    ticket_id: str
    ticket_key: str
    evaluated_at: datetime
    actions: list[Action] = Field(default_factory=list)
    sla: dict[str, SlaClock] = Field(default_factory=dict)
    next_deadline: datetime | None = None
    # The contract tier whose clocks `sla` holds (the sla rule's `tier:` or id,
    # `connector.rules.tiers`); None when no sla rule applies.
    sla_tier: str | None = None

    @property
    def empty(self) -> bool:
        return not self.actions


def trusted(cls: type[BaseModel], **values: Any) -> Any:
    """An instance of the model `cls` built from values already of their fields' types, without
    a validation pass – for the engine's hot path, where every value comes from a validated
    ticket, a validated rule or the engine's own arithmetic (a sweep builds millions of these).

    Same result as `cls(**values)` for such values: fields in declaration order, defaults
    for the ones not given, and the given ones as the fields set. Never use it on input.
    """
    template, required, factories = _SPECS.get(cls) or _spec(cls)
    if values.keys() == template.keys():
        data = values  # every field given: nothing to fill in
    else:
        if not required <= values.keys() or not values.keys() <= template.keys():
            missing = sorted(required - values.keys())
            unknown = sorted(values.keys() - template.keys())
            raise TypeError(f"{cls.__name__}: missing {missing}, unknown {unknown}")
        data = dict(template)  # declaration order, defaults in place
        for name, factory in factories:
            if name not in values:
                data[name] = factory()
        data.update(values)
    obj = cls.__new__(cls)
    _set(obj, "__dict__", data)
    _set(obj, "__pydantic_fields_set__", set(values))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


def _spec(cls: type[BaseModel]) -> tuple[dict[str, Any], frozenset[str], tuple]:
    template: dict[str, Any] = {}
    required = set()
    factories = []
    for name, field in cls.__pydantic_fields__.items():
        template[name] = None if field.is_required() or field.default_factory else field.default
        if field.is_required():
            required.add(name)
        elif field.default_factory is not None:
            factories.append((name, field.default_factory))
        elif isinstance(field.default, (list, dict, set)):  # never share a mutable default
            factories.append((name, lambda default=field.default: default.copy()))
    spec = _SPECS[cls] = (template, frozenset(required), tuple(factories))
    return spec


def adopt(cls: type[BaseModel], data: dict[str, Any]) -> Any:
    """`trusted` for a dict that already holds every field of `cls`, in declaration order; the
    dict becomes the instance's own. For the hottest constructions (one SLA clock per metric)."""
    obj = cls.__new__(cls)
    _set(obj, "__dict__", data)
    _set(obj, "__pydantic_fields_set__", set(data))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


def replaced(model: BaseModel, **update: Any) -> Any:
    """`model.model_copy(update=update)` – a shallow copy with some fields replaced – without
    pydantic's generic copy machinery (the rules engine projects every plan onto its ticket).
    For models without private attributes or extras, whose replaced values are already valid."""
    obj = model.__class__.__new__(model.__class__)
    _set(obj, "__dict__", {**model.__dict__, **update})
    _set(obj, "__pydantic_fields_set__", model.__pydantic_fields_set__ | update.keys())
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


_SPECS: dict[type, tuple] = {}


# --- a ticket as it stood at an instant ------------------------------------------------------


def status_at(ticket: Ticket, at: datetime) -> Status:
    """The ticket's status at `at` (a change made exactly at `at` counts).

    Before its first recorded change a ticket had that change's `from_status`; with no
    `from_status` (a history that starts mid-way) it was new. With no history at all the
    current status is all the platform tells.
    """
    # A stable sort keeps the platform's order for changes made in the same instant.
    history = sorted(ticket.status_history, key=lambda c: c.at)
    past = [c for c in history if c.at <= at]
    if past:
        return past[-1].to_status
    if history and history[0].from_status:
        return history[0].from_status
    return ticket.status if not history else Status.NEW


def priority_at(ticket: Ticket, at: datetime) -> Priority | None:
    """The ticket's priority at `at` from its dated priority changes (one made at `at` counts);
    before the first, that change's previous value; with none, the current priority."""
    history = sorted(ticket.priority_history, key=lambda c: c.at)
    past = [c for c in history if c.at <= at]
    if past:
        return past[-1].to_priority
    return history[0].from_priority if history else ticket.priority


def ticket_as_of(ticket: Ticket, at: datetime) -> Ticket:
    """The ticket as it stood at `at`, as far as the platform's timestamped records tell.

    Those records are the status history (Jira: the changelog's `histories[].created`;
    Zendesk: the audits, "a read-only history of all updates to a ticket", each with its
    `created_at`, https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_audits/)
    and the comments' `created`.

    Rewound: status history and comments (later ones dropped), the status (the last
    change made by `at`, see `status_at`), `resolved` (the last entry into
    resolved/closed by `at` if the ticket was resolved then, else none), `updated` (the
    last record kept, if the current one is later), comment markers (only those of the
    comments kept; a marker label whose connector comment was posted after `at` is dropped
    too), the priority (from `priority_history`, when the platform's record of it was
    read); the raw status (with `status_equivalents`) and the raw priority are dropped when
    the value at `at` differs from the current one (they describe the current one). Not
    rewound, because the ticket carries no dated history of them: fields, other
    labels/tags, assignee, group, summary and description – they are the current values.
    The same ticket object comes back when nothing postdates `at` and the status agrees
    with the history (no copy).
    """
    history = ticket.status_history
    comments = ticket.comments
    later_change = any(c.at > at for c in history)
    later_comment = any(c.created > at for c in comments)
    # The history decides the status whenever there is one (as the SLA clocks read it);
    # with none, the current status is all the platform tells.
    status = status_at(ticket, at) if history else ticket.status
    later_stamp = (ticket.resolved is not None and ticket.resolved > at) or (
        ticket.updated is not None and ticket.updated > at)
    later_priority = any(c.at > at for c in ticket.priority_history)
    later_marks = {m for m, when in ticket.marker_times.items() if when > at}
    if not (later_change or later_comment or later_stamp or later_priority or later_marks
            or status != ticket.status):
        return ticket
    update: dict[str, Any] = {}
    if later_marks:
        # A marker recorded after `at` had not been recorded yet (nor its tag/label).
        update["marker_times"] = {m: w for m, w in ticket.marker_times.items() if m not in later_marks}
        update["labels"] = ticket.labels - later_marks
        update["comment_markers"] = ticket.comment_markers - later_marks
    if later_priority:
        priority = priority_at(ticket, at)
        update["priority_history"] = tuple(c for c in ticket.priority_history if c.at <= at)
        if priority != ticket.priority:
            update["priority"] = priority
            update["raw_priority"] = None  # names the current priority
    if later_change or status != ticket.status:
        update["status"] = status
        update["status_history"] = tuple(c for c in history if c.at <= at)
        if status != ticket.status:
            update["status_equivalents"] = frozenset()  # they describe the current raw status only
            update["raw_status"] = None
    if later_comment:
        kept = tuple(c for c in comments if c.created <= at)
        update["comments"] = kept
        from connector.platforms.comment_marker import carried_marker  # model stays import-free at load

        def carried(chosen: tuple[Comment, ...]) -> set[str | None]:
            return {carried_marker(c.body) for c in chosen if c.author_role == AuthorRole.CONNECTOR}

        # A one-time notice posted after `at` had not been posted: its marker (carried in the
        # comment on Jira, see `comment_marker`, and the label that mirrors it) goes with it.
        kept_markers = carried(kept)
        unsent = carried(tuple(c for c in comments if c.created > at)) - kept_markers - {None}
        markers_now = update.get("comment_markers", ticket.comment_markers)
        if markers_now:
            update["comment_markers"] = frozenset(m for m in markers_now if m in kept_markers)
        labels_now = update.get("labels", ticket.labels)
        if unsent & labels_now:
            update["labels"] = labels_now - unsent
    if later_change or (ticket.resolved is not None and ticket.resolved > at):
        update["resolved"] = _resolved_at(ticket, status, at)
    if ticket.updated is not None and ticket.updated > at:
        stamps = [ticket.created, *(c.at for c in history if c.at <= at), *(c.created for c in comments if c.created <= at),
                  *(c.at for c in ticket.priority_history if c.at <= at)]
        update["updated"] = max(s for s in stamps if s <= at) if any(s <= at for s in stamps) else ticket.created
    return replaced(ticket, **update)


def _resolved_at(ticket: Ticket, status: Status, at: datetime) -> datetime | None:
    """When the ticket was resolved as it stood at `at`: its last entry from an open status
    into resolved/closed made by then; None when it was open then.

    Jira's own resolution date is "the latest date that the Resolution field was set to a
    value" (http://jiradev.blogspot.com/2010/11/resolved-resolution-and-resolution-date.html),
    a field change the status history does not carry; Zendesk's ticket has no solved time
    at all (its audits say when it got there). The status history is the record both have,
    so resolved → closed keeps the time the ticket left the open statuses."""
    if status not in DONE_STATUSES:
        return None
    entered = None
    for change in sorted(ticket.status_history, key=lambda c: c.at):
        if change.at > at:
            break
        if change.to_status in DONE_STATUSES and change.from_status not in DONE_STATUSES:
            entered = change.at
    if entered is None:  # done since before its recorded history: the platform's own stamp, if it was by then
        return ticket.resolved if ticket.resolved is not None and ticket.resolved <= at else None
    return entered
