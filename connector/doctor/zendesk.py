"""Zendesk checks of `connector doctor`: the account against what the loaded rules need.

Everything here is a GET through the adapter's `read_json` / `read_list` (same auth,
retries and error taxonomy as the connector itself); nothing is written. What is read, and
why that way (Zendesk Support API v2 reference unless said otherwise):

- `GET /users/me`: the credentials work, and who the connector writes as (`id`, `name`,
  `role`). Unauthenticated, Zendesk answers an anonymous user with no id rather than a 401
  ("Show the Currently Authenticated User"), so no id is a credentials failure too.
- Role: `role` end-user cannot update tickets at all; agents and admins can. `role_type`
  1 is a light agent ("0 for a custom agent, 1 for a light agent, … 4 for an admin"), who
  can only post private comments and cannot edit ticket properties (Zendesk help
  "Understanding and setting light agent permissions"). An agent in a custom role
  (`custom_role_id`, Enterprise) needs `ticket_editing` in the role's configuration; the
  role is read from `GET /custom_roles` ("Allowed For: Agents"; showing one role needs
  `manage_roles`), and when the list cannot be read the role is a WARN to check by hand.
- Admin: the incremental export the recent sweep uses is "Allowed For: Admins"; an agent's
  sweep falls back to search (connector/sync/sources.py): WARN, not FAIL.
- Fields: `GET /ticket_fields` through the adapter's catalogue (by id, or a unique title,
  active ones preferred – exactly how the adapter resolves them). A field must be `active`
  ("Whether this field is available"); a field the rules write must have `agent_can_edit`
  ("Whether this field is editable by agents", read-only); `editable_in_portal` is about
  end users and is not looked at. Types: due dates need a `date` field (Zendesk has no
  date-time field; a text field holds them as text: WARN). Dropdown (`tagger`) values the
  rules recognise or write must be `custom_field_options` (by name or tag, as the adapter
  matches them). A field with `required: true` must be filled "to change the ticket status
  to solved" (Ticket Fields API; the 422 body of facetoe/zenpy#114): a rule that solves a
  ticket does not fill them, so the solve is refused (the adapter reports it, README
  "Zendesk: tags, closed tickets and fields required to solve").
- Statuses: the adapter writes the system `status` (new, open, pending, hold, solved,
  closed). "After a ticket's status has been changed from New, it can never be set back to
  New" and closed tickets "can't be updated" (Zendesk help "About system ticket rules"): a
  move into new is a FAIL, a move out of closed (reopening) a WARN – the adapter posts the
  comment on a follow-up ticket and reports the move as refused. Closing by an API update
  is accepted (`status: closed` from solved, facetoe/zenpy#136: "Yes it is possible …
  It works!"; actions may set "closed" too, Zendesk "Actions reference"). Custom ticket
  statuses (`GET /custom_statuses`, "Allowed For: End Users"): tickets in an extra custom
  status report its category as `status`, so they read as that category's logical status.
- `GET /groups`: the groups the rules route to exist, by the id in `platforms.zendesk.groups`
  (`group_id` takes an id); `GET /group_memberships?group_id=…`: assignees the rules route
  to are agents (`GET /users/{id}` or `/users/search?query=`) in a group the rules route to.
- Webhook: `GET /webhooks` (administrators, or agents in a role allowed to manage webhooks –
  Zendesk help "Creating webhooks"): when it cannot be read it is a WARN with what to check
  by hand. A webhook must point at `<public URL>/webhooks/zendesk`, be active, POST JSON, and
  either subscribe to the ticket events the receiver handles or be connected
  (`conditional_ticket_events`) to an active trigger or automation (`GET /triggers`,
  `/automations`, "Allowed For: Agents") whose `notification_webhook` action sends a body
  with `"ticket_id": "{{ticket.id}}"` (webhooks/zendesk.py). `GET
  /webhooks/{id}/signing_secret` is compared (never printed) with ZENDESK_WEBHOOK_SECRET.
- Auto-close: the automation that closes solved tickets (`SOLVED` hours greater than N,
  action status closed) against the rules' own auto-close delay and the follow-up window.

Why over 500 lines: `ZendeskDoctor` holds one short method per thing the loaded rules
need from a Zendesk account, each citing the Zendesk page it relies on; they share the
doctor's adapter and reads, and the report lists them in this order (the Jira doctor's
shape).
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Mapping
from typing import Any

from connector.calendar import parse_duration
from connector.config import SupportConfig
from connector.doctor.checks import Check, DoctorOptions
from connector.doctor.needs import Needs, rule_needs
from connector.doctor.platform import PlatformDoctor
from connector.model import PRIORITIES
from connector.platforms.base import NotFound, PlatformError, Unauthorized
from connector.platforms.zendesk import FieldResolutionError, TicketFieldCatalogue, ZendeskAdapter
from connector.rules.auto_close import AutoCloseRule
from connector.rules.escalation import EscalationRule
from connector.rules.follow_up import FollowUpRule
from connector.rules.routing import RoutingRule
from connector.settings import Settings

PLATFORM = "zendesk"
WEBHOOK_PATH = "/webhooks/zendesk"
SYSTEM_STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
ZENDESK_PRIORITIES = ("low", "normal", "high", "urgent")
# Event subscriptions without which the receiver misses what the rules react to (any other
# zen:event-type:ticket.* event is handled too: webhooks/zendesk.py).
WEBHOOK_EVENTS = tuple("zen:event-type:ticket." + e for e in ("created", "status_changed", "comment_added",
                                                                "custom_field_changed", "priority_changed"))
CONDITIONAL = "conditional_ticket_events"
TRIGGER_BODY = '{"ticket_id": "{{ticket.id}}"}'
LIGHT_AGENT = 1
# Ticket attributes a mapping may name (platforms/zendesk.py): readable, and which are writable.
_READABLE_ATTRIBUTES = {"subject", "description", "status", "type", "priority", "group_id", "assignee_id",
                        "satisfaction_rating", "due_at", "external_id", "tags", "created_at", "updated_at"}
_WRITABLE_ATTRIBUTES = {"subject", "type", "priority", "status", "due_at", "external_id", "group_id", "assignee_id"}


def run(settings: Settings, config: SupportConfig, options: DoctorOptions) -> list[Check]:
    """Every Zendesk check; stops after the credentials (or an end-user role) when they fail."""
    if not settings.zendesk_url or not settings.zendesk_email or not settings.zendesk_token:
        return [Check.fail("zendesk.credentials", "ZENDESK_URL, ZENDESK_EMAIL or ZENDESK_TOKEN is not set",
                           "set ZENDESK_URL (https://<subdomain>.zendesk.com), ZENDESK_EMAIL (the agent's e-mail) "
                           "and ZENDESK_TOKEN (an API token from Admin Center > Apps and integrations > Zendesk API)")]
    from connector.reconcile import build_adapter

    adapter = build_adapter(PLATFORM, settings, config)
    assert isinstance(adapter, ZendeskAdapter)
    return ZendeskDoctor(adapter, config, rule_needs(config), settings, options).run()


class ZendeskDoctor(PlatformDoctor):
    PLATFORM = PLATFORM
    TITLE = "Zendesk"
    WEBHOOK_PATH = WEBHOOK_PATH
    FIELD_REF = "<ticket field id or title>"
    FIELDS_READ = "GET /api/v2/ticket_fields"
    FIELDS_FIX = "check the account is an agent of this Zendesk"
    RESOLUTION_ERROR = FieldResolutionError
    # Field types a logical field may have, by what the rules do with it. Zendesk has no
    # date-time field: a due time goes to a date field (the day is kept).
    DUE_TYPES = {"date"}
    TEXT_TYPES = {"text", "textarea", "tagger", "multiselect", "regexp", "integer", "decimal", "date"}
    FIELD_TYPES = {
        "occurred_at": {"date", "text"},
        "verification_result": {"tagger", "text"},
        "satisfaction": {"tagger", "integer", "decimal", "text"},
        # The reviewer's agent user id, compared with assignee_id (a lookup field to users
        # is not read yet).
        "reviewer": {"text", "integer", "regexp"},
        "change_type": {"tagger", "multiselect", "text"},
    }
    CATEGORY_TYPES = {"tagger", "multiselect", "text"}
    GROUP_TYPES = {"tagger", "text"}

    adapter: ZendeskAdapter

    def __init__(self, adapter: ZendeskAdapter, config: SupportConfig, needs: Needs, settings: Settings,
                 options: DoctorOptions) -> None:
        super().__init__(adapter, config.platforms.zendesk, needs, settings, options)
        self.config = config

    def run_checks(self, me: Mapping[str, Any]) -> None:
        guard = self.guard
        if guard("zendesk.role", self.check_role, me) is False:
            return  # an end user: nothing else can work
        guard("zendesk.incremental_export", self.check_admin, me)
        guard("zendesk.webhook_secret", self.check_webhook_secret)
        guard("zendesk.webhook", self.check_webhook, me)
        catalogue = guard("zendesk.fields", self.check_fields)
        if catalogue is not None:
            guard("zendesk.required_to_solve", self.check_required_to_solve, catalogue)
        guard("zendesk.statuses", self.check_statuses)
        guard("zendesk.moves", self.check_moves)
        guard("zendesk.priorities", self.check_priorities)
        groups = guard("zendesk.groups", self.check_groups)
        guard("zendesk.assignees", self.check_assignees, groups or {})
        guard("zendesk.auto_close", self.check_auto_close)

    # --- helpers ---------------------------------------------------------------------

    def read(self, operation: str, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.adapter.read_json(f"doctor.{operation}", path, params)

    def read_list(self, operation: str, path: str, key: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.adapter.read_list(f"doctor.{operation}", path, key, params)

    # --- credentials, account and role ---------------------------------------------------

    def check_credentials(self) -> Mapping[str, Any] | None:
        cid = "zendesk.credentials"
        url = self.settings.zendesk_url
        fix = ("check ZENDESK_EMAIL (the agent's e-mail) and ZENDESK_TOKEN (an API token; token access must be "
               "on in Admin Center > Apps and integrations > Zendesk API)")
        try:
            me = self.read("users.me", "users/me.json").get("user") or {}
        except Unauthorized as exc:
            self.add(Check.fail(cid, f"{url} refused the credentials ({exc.status})", fix))
            return None
        except PlatformError as exc:
            self.add(Check.fail(cid, f"{url} cannot be read: {exc}",
                                "check ZENDESK_URL (https://<subdomain>.zendesk.com) and that this host can reach it"))
            return None
        if me.get("id") is None:
            self.add(Check.fail(cid, f"{url} answers as an anonymous user: the credentials were not accepted", fix))
            return None
        self.add(Check.ok(cid, f"Zendesk at {url} answers; the connector writes as {me.get('name')!r} "
                               f"(user {me.get('id')}, role {me.get('role')}): comments and updates show this name"))
        return me

    def check_connector_account(self, me: Mapping[str, Any]) -> None:
        account = self.mapping.connector_account
        if not account:
            return
        cid = "zendesk.connector_account"
        ids = {str(me[k]).casefold() for k in ("id", "email") if me.get(k) is not None}
        if account.casefold() in ids:
            self.add(Check.ok(cid, "the connector recognises its own comments by the account's id"))
        else:
            self.add(Check.warn(cid, f"platforms.zendesk.connector_account {account!r} is not the user the token "
                                     f"belongs to ({me.get('id')}); its own comments would count as agent responses",
                                f"set connector_account to {str(me.get('id'))!r} or remove it"))

    def check_role(self, me: Mapping[str, Any]) -> bool:
        """False when the account cannot write tickets at all (the other checks are moot)."""
        cid = "zendesk.role"
        role, role_type, custom_role_id = me.get("role"), me.get("role_type"), me.get("custom_role_id")
        fix = "make the connector's Zendesk user an agent (or admin) with ticket editing, in Admin Center > Team members"
        if role not in ("agent", "admin"):
            self.add(Check.fail(cid, f"the user is an {role!r}: end users cannot update tickets", fix))
            return False
        if role_type == LIGHT_AGENT:
            self.add(Check.fail(cid, "the user is a light agent: it can only add private comments and cannot edit "
                                     "tickets, so every field, status and group write is refused", fix))
            return True
        if custom_role_id is None or role == "admin":
            self.add(Check.ok(cid, f"the user is an {role}: it can edit tickets and post public replies and internal notes"))
            return True
        try:
            roles = self.read_list("custom_roles", "custom_roles.json", "custom_roles")
        except (Unauthorized, NotFound) as exc:
            self.add(Check.warn(cid, f"the user is an agent in custom role {custom_role_id}, which this account cannot "
                                     f"read ({exc.status})", "check in Admin Center > Team members > Roles that the role "
                                                             "allows editing ticket properties and public replies"))
            return True
        found = next((r for r in roles if str(r.get("id")) == str(custom_role_id)), None)
        if found is None:
            self.add(Check.warn(cid, f"custom role {custom_role_id} is not in the role list",
                                "check the role's ticket permissions in Admin Center > Team members > Roles"))
            return True
        conf = found.get("configuration") or {}
        name = found.get("name")
        problems = []
        if conf.get("light_agent") or found.get("role_type") == LIGHT_AGENT:
            problems.append("it is a light-agent role (private comments only, no ticket edits)")
        elif conf.get("ticket_editing") is False:
            problems.append("it may not edit ticket properties (ticket_editing off): field, status, priority and "
                            "group writes are refused")
        if self.needs.public_comments and conf.get("ticket_comment_access") not in (None, "public"):
            problems.append(f"it may not post public replies (ticket_comment_access {conf.get('ticket_comment_access')!r}), "
                            f"which {', '.join(sorted(self.needs.public_comments))} post")
        if problems:
            self.add(Check.fail(cid, f"the user's custom role {name!r}: " + "; ".join(problems),
                                f"allow editing ticket properties and public replies in role {name!r}, or give the "
                                "user a role that does"))
        else:
            self.add(Check.ok(cid, f"the user is an agent in custom role {name!r}, which may edit tickets and reply"))
        return True

    def check_admin(self, me: Mapping[str, Any]) -> None:
        cid = "zendesk.incremental_export"
        if me.get("role") == "admin":
            self.add(Check.ok(cid, "the user is an admin: the recent sweep reads the incremental ticket export"))
        else:
            self.add(Check.warn(cid, "the user is not an admin: the incremental export is for admins only, so the "
                                     "recent sweep falls back to search (updated>…), which is capped and slower",
                                "give the connector's user the admin role to use the export, or accept the search"))

    # --- webhook ---------------------------------------------------------------------------

    def check_webhook_secret(self) -> None:
        cid = "zendesk.webhook_secret"
        if self.settings.zendesk_webhook_secrets:
            self.add(Check.ok(cid, "ZENDESK_WEBHOOK_SECRET is set: unsigned or wrongly signed deliveries are refused"))
        else:
            self.add(Check.fail(cid, "ZENDESK_WEBHOOK_SECRET is not set: the receiver refuses every Zendesk delivery",
                                "copy the webhook's signing secret (Admin Center > Apps and integrations > Webhooks > "
                                "the webhook > Signing secret) into ZENDESK_WEBHOOK_SECRET"))

    def check_webhook(self, me: Mapping[str, Any]) -> None:
        cid = "zendesk.webhook"
        expected = self.expected_webhook_url()
        target = expected or f"<public URL>{WEBHOOK_PATH}"
        by_hand = (f"in Admin Center > Apps and integrations > Webhooks check a webhook points at {target}, is active "
                   f"and either subscribes to {', '.join(WEBHOOK_EVENTS)} or is called by a trigger with the body "
                   f"{TRIGGER_BODY}")
        try:
            hooks = self.read_list("webhooks", "webhooks", "webhooks")
        except (Unauthorized, NotFound) as exc:
            self.add(Check.warn(cid, f"the webhooks cannot be read with this account ({exc.status}: listing them needs "
                                     "an administrator)", by_hand))
            return
        matching = [h for h in hooks if self.points_here(str(h.get("endpoint") or ""))]
        if not matching:
            elsewhere = ", ".join(sorted(str(h.get("endpoint")) for h in hooks)) or "none"
            self.add(Check.fail(cid, f"no webhook points at {target} (webhooks: {elsewhere})",
                                f"create one in Admin Center > Apps and integrations > Webhooks with endpoint {target}, "
                                f"method POST, format JSON, subscribed to {', '.join(WEBHOOK_EVENTS)}"
                                + ("" if expected else "; pass --public-url to check the exact URL")))
            return
        problems: list[str] = []
        working = []
        for hook in matching:
            found = self._webhook_problems(hook)
            if found:
                problems.extend(found)
            else:
                working.append(hook)
        if not working:
            self.add(Check.fail(cid, "; ".join(problems),
                                f"activate the webhook, make it POST JSON, and subscribe it to {', '.join(WEBHOOK_EVENTS)} "
                                f"(or connect it to an active trigger whose webhook action sends {TRIGGER_BODY})"))
            return
        hook = working[0]
        how = ("called by " + self._callers(hook)) if CONDITIONAL in (hook.get("subscriptions") or ()) else \
            "subscribed to the ticket events"
        self.add(Check.ok(cid, f"webhook {hook.get('name')!r} sends to {hook.get('endpoint')} ({how})"))
        self.check_signing_secret(hook)

    def _webhook_problems(self, hook: Mapping[str, Any]) -> list[str]:
        name = hook.get("name") or hook.get("id")
        problems = []
        if hook.get("status") != "active":
            problems.append(f"webhook {name!r} is {hook.get('status')}")
        if str(hook.get("http_method") or "").upper() != "POST" or hook.get("request_format") != "json":
            problems.append(f"webhook {name!r} sends {hook.get('http_method')} {hook.get('request_format')}, not POST json")
        subscriptions = set(hook.get("subscriptions") or ())
        if CONDITIONAL in subscriptions:
            if not self._callers(hook):
                problems.append(f"webhook {name!r} is for triggers and automations, but no active trigger or "
                                f"automation notifies it with a body carrying {TRIGGER_BODY}")
        else:
            missing = [e for e in WEBHOOK_EVENTS if e not in subscriptions]
            if missing:
                problems.append(f"webhook {name!r} does not subscribe to {', '.join(missing)}")
        return problems

    def _callers(self, hook: Mapping[str, Any]) -> str:
        """Titles of the active triggers and automations notifying `hook` with a ticket id."""
        if not hasattr(self, "_rules"):
            self._rules = [("trigger", r) for r in self.read_list("triggers", "triggers.json", "triggers",
                                                                  {"active": "true"})]
            self._rules += [("automation", r) for r in self.read_list("automations", "automations.json",
                                                                      "automations", {"active": "true"})]
        titles = []
        for kind, rule in self._rules:
            if rule.get("active") is False:
                continue
            for action in rule.get("actions") or ():
                value = action.get("value") if isinstance(action, Mapping) else None
                if (action.get("field") == "notification_webhook" and isinstance(value, list) and value
                        and str(value[0]) == str(hook.get("id")) and len(value) > 1
                        and "ticket_id" in str(value[1]) and "{{ticket.id}}" in str(value[1])):
                    titles.append(f"{kind} {rule.get('title')!r}")
        return ", ".join(titles)

    def check_signing_secret(self, hook: Mapping[str, Any]) -> None:
        cid = "zendesk.webhook_signing_secret"
        if not self.settings.zendesk_webhook_secrets:
            return  # zendesk.webhook_secret says so
        try:
            answer = self.read("webhooks.signing_secret", f"webhooks/{hook.get('id')}/signing_secret")
        except (Unauthorized, NotFound) as exc:
            self.add(Check.warn(cid, f"the signing secret cannot be read ({exc.status})",
                                "compare the webhook's signing secret with ZENDESK_WEBHOOK_SECRET by hand"))
            return
        secret = str((answer.get("signing_secret") or {}).get("secret") or "")
        if any(hmac.compare_digest(secret.encode(), s.encode()) for s in self.settings.zendesk_webhook_secrets):
            self.add(Check.ok(cid, f"ZENDESK_WEBHOOK_SECRET matches webhook {hook.get('name')!r}'s signing secret"))
        else:
            self.add(Check.fail(cid, f"ZENDESK_WEBHOOK_SECRET is not webhook {hook.get('name')!r}'s signing secret: "
                                     "every delivery is refused as wrongly signed",
                                "copy the webhook's signing secret (Admin Center > Webhooks > the webhook > Signing "
                                "secret) into ZENDESK_WEBHOOK_SECRET"))

    # --- fields ----------------------------------------------------------------------------

    def check_fields(self) -> TicketFieldCatalogue | None:
        catalogue = super().check_fields()
        if catalogue is not None:
            self.check_recognised(catalogue)
        return catalogue

    def group_is_field(self) -> bool:
        return self.mapping.group_field != "group_id"  # else the system group: check_groups reads the groups

    def check_field(self, cid: str, name: str, ref: str, where: str, users: str, written: bool,
                     catalogue: TicketFieldCatalogue, allowed: set[str]) -> None:
        if ref in _READABLE_ATTRIBUTES:
            if written and ref not in _WRITABLE_ATTRIBUTES:
                self.add(Check.fail(cid, f"{name} -> ticket attribute {ref!r}, which rules {users} write but no update "
                                         "can set", f"map {where} to a custom ticket field"))
            else:
                self.add(Check.ok(cid, f"{name} -> the ticket's {ref!r}"))
            return
        try:
            target = catalogue.resolve(ref)
        except FieldResolutionError as exc:
            fix = (f"map {where} by id" if "several" in str(exc) else
                   f"create the field in Admin Center > Objects and rules > Tickets > Fields, or set {where} to an "
                   "existing field's id or title")
            if "cannot be written" in str(exc):
                fix = f"map {where} to a custom ticket field"
            self.add(Check.fail(cid, f"{exc} (used by {users})", fix))
            return
        if target.field is None:  # a system field: its ticket attribute
            self.add(Check.ok(cid, f"{name} -> the ticket's {target.attribute!r}"))
            return
        field = target.field
        label = f"{name} -> {field.get('title')!r} ({field.get('id')}, {field.get('type')})"
        kind = str(field.get("type"))
        if field.get("active") is False:
            self.add(Check.fail(cid, f"{label} is inactive: agents do not see it and rules {users} read it as empty",
                                f"activate the field, or map {where} to an active one"))
        elif written and field.get("agent_can_edit") is False:
            self.add(Check.fail(cid, f"{label} cannot be edited by agents (agent_can_edit false): the writes of "
                                     f"{users} are refused", "let agents edit the field (Admin Center > Fields > the "
                                                             f"field > Permissions), or map {where} to one they can edit"))
        elif allowed is self.DUE_TYPES and kind in ("text", "textarea"):
            self.add(Check.warn(cid, f"{label} is a text field: due dates are written as ISO text, which views cannot "
                                     "sort or filter as dates", "map it to a Date field"))
        elif kind not in allowed:
            self.add(Check.fail(cid, f"{label}: {name} needs one of: {', '.join(sorted(allowed))}",
                                f"map {name} to a field of a fitting type"))
        else:
            self.add(Check.ok(cid, label + (" (a date: Zendesk has no date-time field, so the day is kept)"
                                            if allowed is self.DUE_TYPES else "")))

    def check_recognised(self, catalogue: TicketFieldCatalogue) -> None:
        """A dropdown the rules read for a particular answer (closure's "not resolved") must
        offer one of the values they recognise, or that answer can never be given."""
        for name, rule, values, target in self.recognised_fields(catalogue):
            field = target.field
            if field is None or field.get("type") not in ("tagger", "multiselect"):
                continue
            cid = f"zendesk.options.{name}"
            options = [o for o in field.get("custom_field_options") or () if isinstance(o, Mapping)]
            offered = {str(o.get(k)).casefold() for o in options for k in ("name", "value") if o.get(k) is not None}
            matched = sorted(v for v in values if v.casefold() in offered)
            if matched:
                self.add(Check.ok(cid, f"{field.get('title')!r} offers {', '.join(map(repr, matched))}, which rule "
                                       f"{rule} recognises"))
            else:
                shown = ", ".join(repr(str(o.get("name"))) for o in options) or "no options"
                self.add(Check.fail(cid, f"{field.get('title')!r} offers {shown}, none of which rule {rule} recognises "
                                         f"({', '.join(map(repr, sorted(values)))}): that answer can never be given",
                                    "add one of them to the rule's not_resolved_values, or add the option to the field"))

    def check_required_to_solve(self, catalogue: TicketFieldCatalogue) -> None:
        cid = "zendesk.required_to_solve"
        solved = {s for s, name in self.mapping.write_statuses.items() if name.casefold() in ("solved", "closed")}
        solving = [m for m in self.needs.moves if m.target in solved]
        if not solving:
            return
        required = [f for f in catalogue.raw if f.get("required") and f.get("active", True)
                    and f.get("type") not in ("subject", "description", "status", "tickettype", "priority", "group",
                                              "assignee")]
        if not required:
            self.add(Check.ok(cid, "no ticket field is required to solve: the rules' moves to "
                                   f"{', '.join(sorted({self.mapping.write_statuses[m.target] for m in solving}))} "
                                   "are not refused for an empty field"))
            return
        names = ", ".join(f"{f.get('title')!r} ({f.get('id')})" for f in required)
        fresh = [m for m in solving if not all(self.mapping.write_statuses[s].casefold() in ("solved", "closed")
                                               for s in m.sources)]
        if fresh:
            rules = ", ".join(sorted({m.rule for m in fresh}))
            self.add(Check.fail(cid, f"{names} must be filled to solve a ticket, and rule(s) {rules} solve tickets "
                                     "without filling them: Zendesk refuses those moves (reported as refused)",
                                "make the fields optional to solve (Admin Center > Fields > Required to solve), or "
                                "let agents solve those tickets"))
        else:
            rules = ", ".join(sorted({m.rule for m in solving}))
            self.add(Check.warn(cid, f"{names} must be filled to solve a ticket; rule(s) {rules} close solved tickets, "
                                     "which agents could only solve with the fields filled – a ticket solved without "
                                     "them (by an API client, or before the field became required) cannot be closed "
                                     "and is reported as refused", "nothing to do unless such tickets exist; fill the "
                                                                   "fields on them"))

    # --- statuses, moves, priorities ---------------------------------------------------------

    def check_statuses(self) -> None:
        cid = "zendesk.statuses"
        used = self.needs.statuses
        bad = sorted({f"write_statuses.{s.value}: {self.mapping.write_statuses[s]!r}" for s in used
                      if self.mapping.write_statuses[s].casefold() not in SYSTEM_STATUSES})
        if bad:
            self.add(Check.fail(cid, f"{'; '.join(bad)} is not a Zendesk status; the connector writes the system "
                                     f"status ({', '.join(SYSTEM_STATUSES)})",
                                "set platforms.zendesk.write_statuses to system statuses (a custom status is set "
                                "through its category's system status)"))
            return
        unmapped = [s for s in SYSTEM_STATUSES if self.mapping.logical_status(s) is None]
        try:
            custom = self.read("custom_statuses", "custom_statuses.json").get("custom_statuses") or []
        except NotFound:
            custom = []  # an account without custom ticket statuses
        extra = [c for c in custom if c.get("active") and not c.get("default")]
        if unmapped:
            self.add(Check.fail(cid, f"Zendesk status(es) {', '.join(unmapped)} are not in platforms.zendesk.statuses: "
                                     "tickets in them have no logical status", "map them under platforms.zendesk.statuses"))
        elif extra:
            read_as = ", ".join(f"{c.get('agent_label')!r} as {self.mapping.logical_status(str(c.get('status_category')))}"
                                for c in extra)
            self.add(Check.warn(cid, f"custom ticket statuses report their category as the ticket's status, so the "
                                     f"connector reads {read_as}; a move sets the category's default status",
                                "nothing to do if that is what they mean; otherwise keep rules from relying on them"))
        else:
            self.add(Check.ok(cid, "the statuses the rules use are Zendesk statuses and every status is mapped"))

    def check_moves(self) -> None:
        for move in self.needs.moves:
            target = self.mapping.write_statuses[move.target].casefold()
            if target not in SYSTEM_STATUSES:
                continue  # check_statuses says so
            sources = sorted({self.mapping.write_statuses[s].casefold() for s in move.sources} - {target})
            cid = f"zendesk.move.{move.rule}.{move.target.value}"
            if target == "new":
                self.add(Check.fail(cid, f"rule {move.rule} moves tickets back to 'new', which Zendesk never allows once "
                                         "a ticket was opened", f"set platforms.zendesk.write_statuses.{move.target.value} "
                                                                "to open, pending or hold"))
            elif "closed" in sources:
                self.add(Check.warn(cid, f"rule {move.rule} reopens tickets (-> {target!r}) also from 'closed', which "
                                         "Zendesk never updates: there the comment goes on a follow-up ticket and the "
                                         "move is reported as refused", "nothing to do: agents continue the follow-up "
                                                                        "ticket"))
            elif target == "closed":
                self.add(Check.ok(cid, f"rule {move.rule} closes {', '.join(sources)} tickets with an update (Zendesk "
                                       "accepts status closed from the API; afterwards the ticket is immutable)"))
            else:
                self.add(Check.ok(cid, f"rule {move.rule} moves {', '.join(sources) or 'tickets'} -> {target!r}"))

    def check_priorities(self) -> None:
        if not self.needs.priorities:
            return
        bad = [f"{p} -> {self.mapping.write_priorities[p]!r}" for p in PRIORITIES
               if self.mapping.write_priorities[p].casefold() not in ZENDESK_PRIORITIES]
        unmapped = [p for p in ZENDESK_PRIORITIES if self.mapping.logical_priority(p) is None]
        problem = (f"{', '.join(bad)} is not a Zendesk priority ({', '.join(ZENDESK_PRIORITIES)})" if bad else None)
        self.report_priorities(problem, "set platforms.zendesk.write_priorities to urgent, high, normal and low",
                               unmapped)

    # --- groups and assignees --------------------------------------------------------------------

    def check_groups(self) -> dict[str, str]:
        """group name in the rules -> Zendesk group id, for those that exist."""
        if not self.needs.groups:
            return {}
        if self.mapping.group_field != "group_id":
            self._check_group_options()
            return {}
        listed = self.read_list("groups", "groups.json", "groups")
        by_id = {str(g.get("id")): g for g in listed if not g.get("deleted")}
        by_name = {str(g.get("name")).casefold(): g for g in listed if not g.get("deleted")}
        found: dict[str, str] = {}
        for group, rules in sorted(self.needs.groups.items()):
            cid = f"zendesk.group.{group}"
            value = self.mapping.group_value(group)
            users = ", ".join(sorted(rules))
            if value.strip().isdigit() and value.strip() in by_id:
                found[group] = value.strip()
                self.add(Check.ok(cid, f"group {group!r} -> {by_id[value.strip()].get('name')!r} ({value.strip()})"))
            elif value.strip().isdigit():
                self.add(Check.fail(cid, f"group id {value} (platforms.zendesk.groups.{group}, routed to by {users}) is "
                                         "not a group of this account",
                                    f"set platforms.zendesk.groups.{group} to the id of an existing group"))
            elif value.casefold() in by_name:
                gid = str(by_name[value.casefold()].get("id"))
                self.add(Check.fail(cid, f"group {group!r} (routed to by {users}) has no Zendesk group id in "
                                         "platforms.zendesk.groups: the assignment is skipped",
                                    f"set platforms.zendesk.groups.{group}: '{gid}' (the group {value!r})"))
            else:
                self.add(Check.fail(cid, f"group {group!r} (routed to by {users}) does not exist in Zendesk and has no "
                                         "id in platforms.zendesk.groups",
                                    f"create the group in Admin Center > Team members > Groups and set "
                                    f"platforms.zendesk.groups.{group} to its id"))
        return found

    def _check_group_options(self) -> None:
        """A custom group field that is a dropdown must offer every group value the rules write."""
        try:
            target = self.adapter.field_catalogue().resolve(self.mapping.group_field)
        except FieldResolutionError:
            return  # reported by the field check
        field = target.field
        if field is None or field.get("type") != "tagger":
            return  # free text takes any group name
        options = [o for o in field.get("custom_field_options") or () if isinstance(o, Mapping)]
        offered = {str(o.get(k)).casefold() for o in options for k in ("name", "value") if o.get(k) is not None}
        values = {group: self.mapping.group_value(group) for group in sorted(self.needs.groups)}
        missing = sorted(v for v in values.values() if v.casefold() not in offered)
        cid = "zendesk.options.group"
        if missing:
            shown = ", ".join(repr(str(o.get("name"))) for o in options) or "no options"
            self.add(Check.fail(cid, f"{field.get('title')!r} has no option {', '.join(map(repr, missing))} (options: "
                                     f"{shown})", "add the option to the field, or change platforms.zendesk.groups"))
        else:
            self.add(Check.ok(cid, f"{field.get('title')!r} offers {', '.join(map(repr, sorted(values.values())))}"))

    def check_assignees(self, groups: Mapping[str, str]) -> None:
        for user, rules in sorted(self.needs.assignees.items()):
            cid = f"zendesk.assignee.{user}"
            users = ", ".join(sorted(rules))
            ref = user.strip()
            if ref.isdigit():
                try:
                    found = self.read("users.show", f"users/{ref}.json").get("user")
                except NotFound:
                    found = None
            elif "@" in ref:
                hits = self.read_list("users.search", "users/search.json", "users", {"query": ref})
                found = next((u for u in hits if str(u.get("email")).casefold() == ref.casefold()), None)
            else:
                self.add(Check.fail(cid, f"assignee {user!r} (of {users}) is neither a Zendesk user id nor an e-mail",
                                    "route to the agent's user id or e-mail"))
                continue
            if found is None:
                self.add(Check.fail(cid, f"assignee {user!r} (of {users}) is not a user of this account",
                                    "route to an existing agent's id or e-mail"))
                continue
            if found.get("role") not in ("agent", "admin") or found.get("role_type") == LIGHT_AGENT:
                self.add(Check.fail(cid, f"assignee {user!r} (of {users}) is a {found.get('role')}"
                                         f"{' (light agent)' if found.get('role_type') == LIGHT_AGENT else ''}: only agents "
                                         "can be assigned tickets", "route to an agent"))
                continue
            # The groups the same destination (or escalation level) routes the ticket to.
            together = self._groups_with(user)
            wanted = {gid for name, gid in groups.items() if name in together}
            if wanted:
                member_of = {str(m.get("group_id")) for m in self.read_list(
                    "group_memberships", "group_memberships.json", "group_memberships", {"user_id": found.get("id")})}
                if not member_of & wanted:
                    names = ", ".join(sorted(n for n, g in groups.items() if g in wanted))
                    self.add(Check.fail(cid, f"assignee {found.get('name')!r} ({found.get('id')}) is in none of the "
                                             f"groups {users} route to with it ({names}): Zendesk refuses an assignee outside "
                                             "the ticket's group", "add the agent to the group in Admin Center > Team "
                                                                   "members, or route to a member"))
                    continue
            self.add(Check.ok(cid, f"assignee {found.get('name')!r} ({found.get('id')}) is an agent"
                                   + (" in the routed group" if wanted else "")))

    def _groups_with(self, assignee: str) -> set[str]:
        """Group names the rules route to together with `assignee` (same route or level)."""
        out: set[str] = set()
        for rule in self.config.rules:
            if not rule.enabled:
                continue
            if isinstance(rule, RoutingRule):
                for destination in (*rule.routes, rule.default):
                    if destination is not None and destination.assignee == assignee and destination.group:
                        out.add(destination.group)
            elif isinstance(rule, EscalationRule):
                for level in rule.levels:
                    if level.assign_user == assignee and level.assign_group:
                        out.add(level.assign_group)
        return out

    # --- auto-close and follow-ups ------------------------------------------------------------------

    def check_auto_close(self) -> None:
        cid = "zendesk.auto_close"
        automations = self.read_list("automations", "automations.json", "automations", {"active": "true"})
        hours = None
        for automation in automations:
            if automation.get("active") is False:
                continue
            closes = any(a.get("field") == "status" and str(a.get("value")) == "closed"
                         for a in automation.get("actions") or () if isinstance(a, Mapping))
            conditions = (automation.get("conditions") or {}).get("all") or []
            delay = next((c.get("value") for c in conditions if isinstance(c, Mapping) and c.get("field") == "SOLVED"
                          and c.get("operator") in ("greater_than", "is")), None)
            if closes and delay is not None and str(delay).isdigit():
                hours = int(delay) if hours is None else min(hours, int(delay))
        enabled = [r for r in self.config.rules if r.enabled]
        auto_close = next((r for r in enabled if isinstance(r, AutoCloseRule)), None)
        follow_up = next((r for r in enabled if isinstance(r, FollowUpRule)), None)
        closing = (f"Zendesk's automation closes solved tickets after {hours} hours" if hours is not None else
                   "no automation closes solved tickets, so Zendesk closes them 28 days after solving")
        notes = []
        if follow_up is not None:
            notes.append(f"follow-up reminders of rule {follow_up.id} go on follow-up tickets, since a closed ticket "
                         "cannot change")
        if auto_close is not None and hours is not None:
            days = self._business_days(auto_close)
            # N business days can span N + 2 weekend days + a holiday or so in calendar time.
            latest = math.ceil((days + 3) * 24) if days is not None else None
            if latest is None or hours < latest:
                self.add(Check.warn(cid, f"{closing}, and rule {auto_close.id} closes them after {auto_close.after} of "
                                         "business time, which over a weekend or holiday can be later: then Zendesk "
                                         "closes the ticket first and the rule's closing comment goes on a follow-up "
                                         "ticket" + ("; " + "; ".join(notes) if notes else ""),
                                    f"raise the automation's delay above {latest or '?'} hours (Admin Center > Objects "
                                    f"and rules > Automations), or disable rule {auto_close.id}"))
                return
            notes.insert(0, f"rule {auto_close.id} ({auto_close.after}) closes them first")
        self.add(Check.ok(cid, closing + ("; " + "; ".join(notes) if notes else "")))

    def _business_days(self, rule: AutoCloseRule) -> float | None:
        try:
            calendar = self.config.calendar(rule.calendar)
            return parse_duration(rule.after, calendar) / calendar.business_day_minutes
        except (KeyError, ValueError, ZeroDivisionError, AttributeError):
            return None
