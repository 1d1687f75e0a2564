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
