"""Which platform field, status and priority name means what in the standard process.

Every organisation names things differently ("Waiting for support", "pending", a custom
field called "Root cause" or "根本原因"), so the translation is configuration. The defaults
fit a stock Jira Service Management project and a stock Zendesk Support account; admins
override any part under `platforms:` in their YAML.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connector.model import Priority, Status

LOGICAL_FIELDS = (
    "environment",
    "impact_scope",
    "symptom",
    "repro_steps",
    "error_message",
    "occurred_at",
    "root_cause",
    "solution",
    "verification_result",
    "kb_link",
    "recurrence_note",
    "satisfaction",
    "sla_first_response_due",
    "sla_resolution_due",
    "sla_periodic_update_due",
    "follow_up_due",
    "problem_number",
    "change_type",
    "reviewer",
    "preventive_measures",
)


class PlatformMapping(BaseModel):
    """Translation table between one platform's names and the logical model."""

    model_config = ConfigDict(extra="forbid")

    statuses: dict[str, Status] = Field(
        description="platform status name (case-insensitive) -> logical status"
    )
    write_statuses: dict[Status, str] = Field(
        description="logical status -> platform status name to move a ticket into"
    )
    priorities: dict[str, Priority] = Field(
        description="platform priority name (case-insensitive) -> P0..P3"
    )
    write_priorities: dict[Priority, str] = Field(
        description="P0..P3 -> platform priority name to write"
    )
    category_field: str = Field(description="platform field (id or name) holding the category")
    group_field: str = Field(description="platform field (id or name) holding the support group")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="logical field name -> platform field id (customfield_10050, 360001234) or name",
    )
    groups: dict[str, str] = Field(
        default_factory=dict,
        description="group name used in rules -> platform value (e.g. a Zendesk group id)",
    )
    organizations_field: str | None = Field(
        default=None,
        description="Jira: the field (id or name) holding the Jira Service Management organizations, "
                    "for `when.organizations` (Zendesk reads the ticket's organization_id)",
    )
    connector_account: str | None = Field(
        default=None,
        description="account id / e-mail the connector writes as; its comments are not agent responses",
    )
    transition_fields: dict[Status, dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "logical status -> {field id or name: value} to fill in on the transition screen when moving a "
            "ticket into that status (Jira: e.g. resolved: {resolution: Done}); only fields on the screen are sent"
        ),
    )

    @model_validator(mode="after")
    def _complete(self) -> "PlatformMapping":
        missing = [s.value for s in Status if s not in self.write_statuses]
        if missing:
            raise ValueError(
                f"write_statuses needs a platform status for every logical status; missing: {', '.join(missing)}"
            )
        missing_p = [p for p in ("P0", "P1", "P2", "P3") if p not in self.write_priorities]
        if missing_p:
            raise ValueError(f"write_priorities needs P0, P1, P2 and P3; missing: {', '.join(missing_p)}")
        self.statuses = {k.casefold(): v for k, v in self.statuses.items()}
        self.priorities = {k.casefold(): v for k, v in self.priorities.items()}
        for status, values in self.transition_fields.items():
            for ref, value in values.items():
                if not ref.strip():
                    raise ValueError(f"transition_fields.{status.value}: a field id or name must not be empty")
                if value is None or value == "" or value == []:
                    raise ValueError(
                        f"transition_fields.{status.value}.{ref}: give a value (a required field cannot be filled "
                        "with nothing); leave the field out to let the transition screen decide"
                    )
        return self

    def logical_status(self, raw: str | None) -> Status | None:
        return self.statuses.get(raw.casefold()) if raw else None

    def status_equivalents(self, raw: str | None) -> frozenset[Status]:
        """Logical statuses this platform writes as `raw` (see Ticket.status_equivalents)."""
        if not raw:
            return frozenset()
        return frozenset(s for s, name in self.write_statuses.items() if name.casefold() == raw.casefold())

    def logical_priority(self, raw: str | None) -> Priority | None:
        return self.priorities.get(raw.casefold()) if raw else None

    def group_value(self, group: str) -> str:
        return self.groups.get(group, group)

    def group_name(self, value: Any) -> str | None:
        if value is None or value == "":
            return None
        for name, platform_value in self.groups.items():
            if str(platform_value) == str(value):
                return name
        return str(value)


def default_jira_mapping() -> PlatformMapping:
    """Stock Jira Service Management: its service-request workflow and priority scheme."""
    return PlatformMapping(
        statuses={
            "Open": Status.NEW,
            "To Do": Status.NEW,
            "Waiting for support": Status.NEW,
            "Waiting for information": Status.WAITING_FOR_INFORMATION,
            "Waiting for customer": Status.WAITING_FOR_CUSTOMER,
            "Pending": Status.WAITING_FOR_THIRD_PARTY,
            "Waiting for third party": Status.WAITING_FOR_THIRD_PARTY,
            "In Progress": Status.IN_PROGRESS,
            "Work in progress": Status.IN_PROGRESS,
            "Escalated": Status.IN_PROGRESS,
            "Reopened": Status.IN_PROGRESS,
            "Resolved": Status.RESOLVED,
            "Done": Status.CLOSED,
            "Closed": Status.CLOSED,
            "Canceled": Status.CLOSED,
        },
        write_statuses={
            Status.NEW: "Waiting for support",
            # Stock JSM has no separate status: it asks the customer.
            Status.WAITING_FOR_INFORMATION: "Waiting for customer",
            Status.IN_PROGRESS: "In Progress",
            Status.WAITING_FOR_CUSTOMER: "Waiting for customer",
            Status.WAITING_FOR_THIRD_PARTY: "Pending",
            Status.RESOLVED: "Resolved",
            Status.CLOSED: "Closed",
        },
        priorities={"Highest": "P0", "Blocker": "P0", "High": "P1", "Critical": "P1",
                    "Medium": "P2", "Major": "P2", "Low": "P3", "Lowest": "P3", "Minor": "P3",
                    "Trivial": "P3"},
        write_priorities={"P0": "Highest", "P1": "High", "P2": "Medium", "P3": "Low"},
        category_field="components",
        group_field="Support group",
        organizations_field="Organizations",
        fields={
            "environment": "environment",
            "impact_scope": "Impact scope",
            "symptom": "description",
            "repro_steps": "Steps to reproduce",
            "error_message": "Error message",
            "occurred_at": "Occurred at",
            "root_cause": "Root cause",
            "solution": "Solution",
            "verification_result": "Verification result",
            "kb_link": "Knowledge base link",
            "recurrence_note": "Recurrence note",
            "satisfaction": "Satisfaction",
            "sla_first_response_due": "First response due",
            "sla_resolution_due": "Resolution due",
            "follow_up_due": "Follow-up due",
            "problem_number": "Problem number",
            "change_type": "Change type",
            "reviewer": "Reviewer",
            "preventive_measures": "Preventive measures",
        },
        # Stock JSM's "Resolve this issue" screen requires Resolution (without it the
        # transition answers 400 "Field Resolution is required.", mozilla/jira-bugzilla-
        # integration#1055). Values are sent only for fields that are on the chosen
        # transition's screen, so "Close" (no screen) gets nothing.
        transition_fields={
            Status.RESOLVED: {"resolution": "Done"},
            Status.CLOSED: {"resolution": "Done"},
        },
    )


def default_zendesk_mapping() -> PlatformMapping:
    """Stock Zendesk Support: its six statuses, four priorities and named custom fields."""
    return PlatformMapping(
        statuses={
            "new": Status.NEW,
            "open": Status.IN_PROGRESS,
            "pending": Status.WAITING_FOR_CUSTOMER,
            "hold": Status.WAITING_FOR_THIRD_PARTY,
            "solved": Status.RESOLVED,
            "closed": Status.CLOSED,
        },
        write_statuses={
            Status.NEW: "new",
            Status.WAITING_FOR_INFORMATION: "pending",
            Status.IN_PROGRESS: "open",
            Status.WAITING_FOR_CUSTOMER: "pending",
            Status.WAITING_FOR_THIRD_PARTY: "hold",
            Status.RESOLVED: "solved",
            Status.CLOSED: "closed",
        },
        priorities={"urgent": "P0", "high": "P1", "normal": "P2", "low": "P3"},
        write_priorities={"P0": "urgent", "P1": "high", "P2": "normal", "P3": "low"},
        category_field="Category",
        group_field="group_id",
        fields={
            "environment": "Environment",
            "impact_scope": "Impact scope",
            "symptom": "description",
            "repro_steps": "Steps to reproduce",
            "error_message": "Error message",
            "occurred_at": "Occurred at",
            "root_cause": "Root cause",
            "solution": "Solution",
            "verification_result": "Verification result",
            "kb_link": "Knowledge base link",
            "recurrence_note": "Recurrence note",
            "satisfaction": "satisfaction_rating",
            "sla_first_response_due": "First response due",
            "sla_resolution_due": "Resolution due",
            "follow_up_due": "Follow-up due",
            "problem_number": "Problem number",
            "change_type": "Change type",
            "reviewer": "Reviewer",
            "preventive_measures": "Preventive measures",
        },
    )


class PlatformMappings(BaseModel):
    """The `platforms:` section of the config; anything left out keeps the stock default."""

    model_config = ConfigDict(extra="forbid")

    jira: PlatformMapping = Field(default_factory=default_jira_mapping)
    zendesk: PlatformMapping = Field(default_factory=default_zendesk_mapping)

    def for_platform(self, platform: str) -> PlatformMapping:
        return getattr(self, platform)
