"""The sandbox Zendesk account's configuration: roles, group memberships, custom statuses,
webhooks, triggers and automations – what `connector doctor` reads, and what tests change
to set a site up wrong.

Shapes and rules, with their sources:

- Custom agent roles (`GET /api/v2/custom_roles`, "Allowed For: Agents", Enterprise plans:
  Zendesk Custom Roles API): `{id, name, description, role_type, configuration, …}`; the
  configuration flags are those of the Custom Roles API "Configuration" object (as modelled
  by aaronellington/zendesk-go `CustomRoleConfiguration`: `ticket_editing`,
  `ticket_comment_access`, `light_agent`, …). `role_type` "0 stands for a custom agent, 1
  for a light agent, 2 for a chat agent, 3 for a contributor, 4 for an admin and 5 for a
  billing admin". Showing ONE role (`/custom_roles/{id}`) is for administrators and agents
  with `manage_roles` only, so the doctor reads the list.
- Group memberships (`GET /api/v2/group_memberships?group_id=…`, "Allowed For: Agents",
  cursor or offset pagination, at most 100 a page): `{id, user_id, group_id, default, …}`.
- Custom ticket statuses (`GET /api/v2/custom_statuses`, "Allowed For: End Users", no
  pagination): every account answers with the default status of each category; "Tickets
  with a Closed status belong to the solved status category", so there is no closed one.
- Webhooks (`GET /api/v2/webhooks`, Zendesk Webhooks API; creating and listing them is for
  "an administrator or an agent in a custom role with permission" – Zendesk help "Creating
  webhooks"): `{id, name, status, endpoint, http_method, request_format, subscriptions, …}`.
  A webhook either subscribes to `zen:event-type:…` events or carries
  `["conditional_ticket_events"]` and is called by triggers and automations ("A webhook
  that's subscribed to a Zendesk event can't connect to a trigger or automation", Zendesk
  "Creating and monitoring webhooks"). Its signing secret: `GET
  /api/v2/webhooks/{id}/signing_secret` → `{"signing_secret": {"algorithm": "SHA256",
  "secret": …}}` (zenpy's `WebhookSecret` model).
- Triggers and automations (`GET /api/v2/triggers`, `/api/v2/automations`, "Allowed For:
  Agents"): `{id, title, active, position, conditions: {all, any}, actions: [{field,
  value}]}`; a webhook action is `{"field": "notification_webhook", "value": [webhook id,
  JSON body]}` (Zendesk "Actions reference"; prismatic.io's createWebhookTrigger example).
  Zendesk's default automation "Close ticket 4 days after status is set to solved" has the
  conditions status is solved and `SOLVED` (hours since solved) greater than 96, and the
  action status closed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.zendesk_store import USER_TIMESTAMP

# role_type values (Zendesk Custom Roles API).
CUSTOM_AGENT, LIGHT_AGENT, ADMIN_ROLE_TYPE = 0, 1, 4
STATUS_CATEGORIES = ("new", "open", "pending", "hold", "solved")
CONDITIONAL_TICKET_EVENTS = "conditional_ticket_events"
TRIGGER_BODY = json.dumps({"ticket_id": "{{ticket.id}}"})


def custom_role_configuration(*, ticket_editing: bool = True, light_agent: bool = False,
                              ticket_comment_access: str = "public") -> dict[str, Any]:
    """A custom role's `configuration`, the flags the doctor reads and their neighbours."""
    return {
        "assign_tickets_to_any_group": False, "chat_access": True, "end_user_list_access": "full",
        "end_user_profile_access": "edit", "explore_access": "readonly", "forum_access": "readonly",
        "group_access": True, "light_agent": light_agent, "macro_access": "full", "manage_automations": False,
        "manage_business_rules": False, "manage_group_memberships": False, "manage_groups": False,
        "manage_roles": "none", "manage_ticket_fields": False, "manage_triggers": False,
        "moderate_forums": False, "organization_editing": False, "report_access": "readonly",
        "ticket_access": "all", "ticket_comment_access": ticket_comment_access, "ticket_deletion": False,
        "ticket_editing": ticket_editing, "ticket_merge": False, "ticket_tag_editing": ticket_editing,
        "view_access": "full", "voice_access": True,
    }


@dataclass
class CustomRole:
    id: int
    name: str
    role_type: int
    configuration: dict[str, Any]
    description: str = ""

    def json(self, base_url: str) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description, "role_type": self.role_type,
                "configuration": dict(self.configuration), "team_member_count": 1,
                "created_at": USER_TIMESTAMP, "updated_at": USER_TIMESTAMP}


# Zendesk's standard roles as custom roles (Enterprise accounts list them too).
DEFAULT_CUSTOM_ROLES = (
    CustomRole(360000100001, "Staff", CUSTOM_AGENT, custom_role_configuration()),
    CustomRole(360000100002, "Light agent", LIGHT_AGENT,
               custom_role_configuration(ticket_editing=False, light_agent=True, ticket_comment_access="none")),
    CustomRole(360000100003, "Viewer", CUSTOM_AGENT, custom_role_configuration(ticket_editing=False)),
)


@dataclass
class Webhook:
    id: str
    name: str
    endpoint: str
    subscriptions: list[str]
    status: str = "active"
    signing_secret: str | None = None
    http_method: str = "POST"
    request_format: str = "json"

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "status": self.status, "endpoint": self.endpoint,
                "http_method": self.http_method, "request_format": self.request_format,
                "subscriptions": list(self.subscriptions), "created_at": USER_TIMESTAMP, "created_by": "-1",
                "updated_at": USER_TIMESTAMP, "updated_by": "-1", "description": ""}


@dataclass
class BusinessRule:
    """A trigger or an automation."""

    id: int
    title: str
    actions: list[dict[str, Any]]
    conditions: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"all": [], "any": []})
    active: bool = True
    position: int = 0

    def json(self, base_url: str, kind: str) -> dict[str, Any]:
        return {"url": f"{base_url}/api/v2/{kind}/{self.id}.json", "id": self.id, "title": self.title,
                "raw_title": self.title, "active": self.active, "position": self.position,
                "conditions": {"all": list(self.conditions.get("all", [])), "any": list(self.conditions.get("any", []))},
                "actions": [dict(a) for a in self.actions], "description": None, "default": False,
                "created_at": USER_TIMESTAMP, "updated_at": USER_TIMESTAMP}


def auto_close_automation(hours: int, automation_id: int = 360000200001) -> BusinessRule:
    return BusinessRule(automation_id, f"Close ticket {hours // 24} days after status is set to solved"
                        if hours % 24 == 0 else f"Close ticket {hours} hours after status is set to solved",
                        actions=[{"field": "status", "value": "closed"}],
                        conditions={"all": [{"field": "status", "operator": "is", "value": "solved"},
                                            {"field": "SOLVED", "operator": "greater_than", "value": str(hours)}],
                                    "any": []})


@dataclass
class CustomStatus:
    id: int
    category: str
    agent_label: str
    default: bool = False
    active: bool = True

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "status_category": self.category, "agent_label": self.agent_label,
                "raw_agent_label": self.agent_label, "end_user_label": self.agent_label,
                "raw_end_user_label": self.agent_label, "description": "", "raw_description": "",
                "end_user_description": "", "raw_end_user_description": "", "active": self.active,
                "default": self.default, "created_at": USER_TIMESTAMP, "updated_at": USER_TIMESTAMP}


@dataclass
class Membership:
    id: int
    user_id: int
    group_id: int
    default: bool

    def json(self, base_url: str) -> dict[str, Any]:
        return {"url": f"{base_url}/api/v2/group_memberships/{self.id}.json", "id": self.id,
                "user_id": self.user_id, "group_id": self.group_id, "default": self.default,
                "created_at": USER_TIMESTAMP, "updated_at": USER_TIMESTAMP}


class AccountConfig:
    """Roles, memberships, statuses, webhooks, triggers and automations of one account."""

    def __init__(self, custom_status_ids: dict[str, int]) -> None:
        self.custom_roles: dict[int, CustomRole] = {r.id: CustomRole(r.id, r.name, r.role_type,
                                                                     dict(r.configuration))
                                                    for r in DEFAULT_CUSTOM_ROLES}
        self.memberships: dict[int, Membership] = {}
        self.custom_statuses: list[CustomStatus] = [
            CustomStatus(custom_status_ids[c], c, c.capitalize() if c != "hold" else "On-hold", default=True)
            for c in STATUS_CATEGORIES]
        self.webhooks: list[Webhook] = []
        self.triggers: list[BusinessRule] = []
        self.automations: list[BusinessRule] = []
        self._next_id = 360000900001

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_membership(self, user_id: int, group_id: int, *, default: bool = False) -> Membership:
        membership = Membership(self.new_id(), user_id, group_id, default)
        self.memberships[membership.id] = membership
        return membership

    def remove_membership(self, user_id: int, group_id: int) -> None:
        for mid, membership in list(self.memberships.items()):
            if membership.user_id == user_id and membership.group_id == group_id:
                del self.memberships[mid]

    def webhook(self, webhook_id: str) -> Webhook | None:
        return next((w for w in self.webhooks if w.id == webhook_id), None)
