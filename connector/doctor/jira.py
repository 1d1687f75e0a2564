"""Jira checks of `connector doctor`: the site against what the loaded rules need.

Everything here is a GET through the adapter's `read_json` (same auth, retries and error
taxonomy as the connector itself); nothing is written. What is read, and why that way:

- `GET /myself`: the credentials work, and who the connector writes as.
- Projects: the connector works site-wide (its sweeps search every project it can see),
  so the projects to check are `--project` ones, else those of issues updated in the last
  30 days (`GET /search/jql`, or `/search` on Data Center).
- `GET /mypermissions?projectKey=…&permissions=…`: the project permissions the rules need
  (Atlassian, "Get my permissions"; Cloud requires `permissions`). Setting the resolution
  on a transition screen is the Resolve Issues permission ("ability to resolve and reopen
  issues"), so it is asked for when `transition_fields` sets one. Internal notes need the
  account to be a Service Management agent of the project: the project's type
  (`GET /project/{key}`, `projectTypeKey == "service_desk"`) and the `SERVICEDESK_AGENT`
  permission, which the same operation lists as "Jira Service Desk only" (an unknown key is
  a 400, so it is asked only in a Service Management project; estuary/connectors#3274
  checks agent access the same way).
- Fields: `GET /field` through the adapter's FieldCatalogue (by id, or by a unique name),
  with the schema type each logical field needs.
- Edit screen: `GET /issue/{key}/editmeta` of the most recently updated issue in each status
  where a rule writes – the edit screen (and the status's `jira.issue.editable` property)
  decides what an edit may set (DESIGN.md "Jira edit screens"). Createmeta was not used: it
  describes the create screen, which sites often make different from the edit screen.
  Dropdown values the rules write (group options, priorities) are checked against the
  `allowedValues` editmeta lists.
- Statuses: `GET /project/{key}/statuses` (needs Browse Projects only).
- Transitions: the workflow itself (`GET /workflow/search`, or the newer `/workflows/search`)
  needs the Administer Jira global permission, which a connector account should not have;
  so the doctor reads `GET /issue/{key}/transitions?expand=transitions.fields` of the most
  recently updated issue in each status the rules move tickets from – what the connector
  itself will be offered. A status with no issue in it cannot be checked this way: WARN.
  Required fields on a transition's screen must be supplied by `transition_fields`
  (mozilla/jira-bugzilla-integration#1055: "Field Resolution is required.").
- `GET /priority`: P0–P3 map to priorities that exist.
- Groups: by the group field's type – a free-text field takes any value, a select field
  must offer the value (editmeta `allowedValues`), a group picker needs the group to exist
  (`GET /groups/picker?query=…`, exact name); assignees must be assignable in the project
  (`GET /user/assignable/search`).
- Webhook: `GET /rest/webhooks/1.0/webhook` (admin webhooks; Atlassian, "Webhooks":
  "Registering a webhook via the Jira REST API") needs Jira administrator rights: when it
  cannot be read that is a WARN with what to check by hand; when it can, a webhook must point
  at `<public url>/webhooks/jira`, be enabled and send the events the receiver reconciles on.
  JIRA_WEBHOOK_SECRET must be set (Data Center webhooks cannot sign: WARN, `--allow-unsigned`).
- Organizations: a rule with `when.organizations` (a contract tier) matches Jira tickets by
  the Jira Service Management "Organizations" field (`platforms.jira.organizations_field`,
  custom type `com.atlassian.servicedesk:sd-customer-organizations`, schema type array).
  Unmapped or missing on the site, every ticket reads as "organizations unknown" and no
  such rule ever matches (fail closed): FAIL, with the fix.

Why over 500 lines: `JiraDoctor` holds one short method per thing the loaded rules need
from a Jira site (credentials, webhook, fields, screens, permissions, statuses,
transitions, priorities), each citing the Atlassian page it relies on; they share the
doctor's adapter and field catalogue, and the report lists them in this order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from connector.config import SupportConfig
from connector.doctor.checks import Check, DoctorOptions
from connector.doctor.needs import ASSIGNEE, GROUP, LABELS, PRIORITY, Move, Needs, rule_needs
from connector.doctor.platform import PlatformDoctor
from connector.model import PRIORITIES, Status
from connector.platforms.base import NotFound, PlatformError, Unauthorized
from connector.platforms.jira import FieldCatalogue, FieldResolutionError, JiraAdapter, JiraField
from connector.platforms.jira.issue import STATUS_CATEGORY_FALLBACK
from connector.platforms.mapping import PlatformMapping
from connector.settings import Settings

PLATFORM = "jira"
# Issues updated this recently name the projects to check when --project is not given.
RECENT_DAYS = 30
RECENT_ISSUES = 50
# The events webhooks/jira.py reconciles on; without them changes are only seen by sweeps.
WEBHOOK_EVENTS = ("jira:issue_created", "jira:issue_updated", "comment_created")
WEBHOOK_PATH = "/webhooks/jira"
# A due time in a field of these types loses its time of day (date) or becomes text (string).
_DATE_DEGRADED = {"date", "string"}


def run(settings: Settings, config: SupportConfig, options: DoctorOptions) -> list[Check]:
    """Every Jira check; stops after the credentials check when that fails."""
    if not settings.jira_url or not settings.jira_token:
        return [Check.fail("jira.credentials", "JIRA_URL or JIRA_TOKEN is not set",
                           "set JIRA_URL and JIRA_TOKEN (and JIRA_USER, the account's e-mail, on Jira Cloud)")]
    from connector.reconcile import build_adapter

    adapter = build_adapter(PLATFORM, settings, config)
    assert isinstance(adapter, JiraAdapter)
    mapping = config.platforms.jira
    doctor = JiraDoctor(adapter, mapping, rule_needs(config), settings, options,
                        organization_rules=organization_rules(config))
    return doctor.run()


def organization_rules(config: SupportConfig) -> list[str]:
    """Ids of the enabled rules that can apply to Jira and match on `when.organizations`."""
    return [rule.id for rule in config.rules
            if rule.enabled and rule.when.organizations
            and (not rule.when.platforms or PLATFORM in rule.when.platforms)]


# Global (not project) permissions among those `required_permissions` asks /mypermissions about.
GLOBAL_PERMISSIONS = frozenset({"USER_PICKER"})

class JiraDoctor(PlatformDoctor):
    PLATFORM = PLATFORM
    TITLE = "Jira"
    WEBHOOK_PATH = WEBHOOK_PATH
    FIELD_REF = "<field id or name>"
    FIELDS_READ = "GET /field"
    FIELDS_FIX = "check the account can browse the site"
    RESOLUTION_ERROR = FieldResolutionError
    # Schema types a logical field may have, by what the rules do with it.
    DUE_TYPES = {"datetime"}
    FIELD_TYPES = {
        "occurred_at": {"datetime", "date", "string"},
        "verification_result": {"option", "string"},
        "satisfaction": {"number", "option", "string"},
        # The review gate compares the reviewer with the assignee by identity: a user picker.
        "reviewer": {"user", "string"},
        "change_type": {"option", "array", "string"},
    }
    TEXT_TYPES = {"string", "option", "array", "number"}
    GROUP_TYPES = {"string", "option", "group", "array"}
    CATEGORY_TYPES = {"array", "option", "string"}

    adapter: JiraAdapter

    def __init__(self, adapter: JiraAdapter, mapping: PlatformMapping, needs: Needs, settings: Settings,
                 options: DoctorOptions, *, organization_rules: Sequence[str] = ()) -> None:
        super().__init__(adapter, mapping, needs, settings, options)
        # Rules matching on `when.organizations`: they need the Organizations field.
        self.organization_rules = list(organization_rules)
        # (project, platform status) -> key of the most recently updated issue in it (or None)
        self._samples: dict[tuple[str, str], str | None] = {}
        self._editmeta: dict[str, dict[str, Any]] = {}
        # project -> permissions it lacks: checks that would only fail for that reason are skipped
        self._missing: dict[str, set[str]] = {}

    def run_checks(self, me: Mapping[str, Any]) -> None:
        guard = self.guard
        guard("jira.webhook_secret", self.check_webhook_secret)
        guard("jira.webhook", self.check_webhook)
        catalogue = guard("jira.fields", self.check_fields)
        if catalogue is not None and self.organization_rules:
            guard("jira.field.organizations", self.check_organizations_field, catalogue)
        guard("jira.priorities", self.check_priorities)
        for project in guard("jira.projects", self.projects) or ():
            guard(f"jira.permissions.{project}", self.check_permissions, project)
            if self.needs.internal_notes:
                guard(f"jira.internal_notes.{project}", self.check_service_desk, project)
            statuses = guard(f"jira.statuses.{project}", self.check_statuses, project)
            if catalogue is not None:
                guard(f"jira.edit_screen.{project}", self.check_edit_screen, project, catalogue, statuses)
                guard(f"jira.groups.{project}", self.check_groups, project, catalogue, statuses)
            guard(f"jira.transitions.{project}", self.check_transitions, project, statuses)
            guard(f"jira.assignees.{project}", self.check_assignees, project)

    # --- helpers ---------------------------------------------------------------------

    def read(self, operation: str, path: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.adapter.read_json(f"doctor.{operation}", path, params, **kwargs)

    def sample(self, project: str, status: str) -> str | None:
        """The key of the most recently updated issue of `project` in `status`, or None."""
        key = (project, status)
        if key not in self._samples:
            jql = f'project = "{_quoted(project)}" AND status = "{_quoted(status)}" ORDER BY updated DESC'
            found = next(iter(self.adapter.search(jql, fields=["status"], page_size=1)), None)
            self._samples[key] = str(found["key"]) if found else None
        return self._samples[key]

    def editmeta(self, issue_key: str) -> dict[str, Any]:
        if issue_key not in self._editmeta:
            meta = self.read("editmeta", f"issue/{issue_key}/editmeta")
            fields = meta.get("fields") if isinstance(meta, Mapping) else None
            self._editmeta[issue_key] = dict(fields) if isinstance(fields, Mapping) else {}
        return self._editmeta[issue_key]

    def platform_names(self, statuses: Iterable[Status], existing: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """The site statuses tickets in the logical `statuses` are in: those the mapping reads
        as one of them (or whose category falls back to one), and those it writes for them."""
        wanted = set(statuses)
        names = {self.mapping.write_statuses[s] for s in wanted}
        for folded, status in existing.items():
            if self._logical(status) in wanted:
                names.add(str(status.get("name")))
        return sorted(n for n in names if n.casefold() in existing)

    def _logical(self, status: Mapping[str, Any]) -> Status | None:
        mapped = self.mapping.logical_status(str(status.get("name")))
        if mapped is not None:
            return mapped
        return STATUS_CATEGORY_FALLBACK.get((status.get("statusCategory") or {}).get("key"))

    # --- credentials and account -------------------------------------------------------

    def check_credentials(self) -> Mapping[str, Any] | None:
        cid = "jira.credentials"
        try:
            me = self.read("myself", "myself")
            kind = "Jira Cloud" if self.adapter.is_cloud() else "Jira Data Center"
        except Unauthorized as exc:
            auth = ("JIRA_USER (the account's e-mail) and JIRA_TOKEN (an API token from "
                    "id.atlassian.com)" if self.settings.jira_user else
                    "JIRA_TOKEN (a Data Center personal access token; set JIRA_USER too for Jira Cloud)")
            self.add(Check.fail(cid, f"{self.settings.jira_url} refused the credentials ({exc.status})",
                                f"check {auth}"))
            return None
        except PlatformError as exc:
            self.add(Check.fail(cid, f"{self.settings.jira_url} cannot be read: {exc}",
                                "check JIRA_URL (the site's base URL, e.g. https://acme.atlassian.net) and "
                                "that this host can reach it"))
            return None
        who = me.get("displayName") or me.get("name") or "?"
        ident = me.get("accountId") or me.get("name") or "?"
        self.add(Check.ok(cid, f"{kind} at {self.settings.jira_url} answers; the connector writes as "
                               f"{who!r} ({ident}): comments and edits show this name"))
        return me

    def check_connector_account(self, me: Mapping[str, Any]) -> None:
        account = self.mapping.connector_account or self.settings.jira_user
        if not account:
            return
        ids = {str(me[k]).casefold() for k in ("accountId", "name", "key", "emailAddress") if me.get(k)}
        cid = "jira.connector_account"
        if account.casefold() in ids:
            self.add(Check.ok(cid, "the connector recognises its own comments by the account's id"))
        elif self.mapping.connector_account:
            self.add(Check.warn(cid, f"platforms.jira.connector_account {account!r} is not the account the "
                                     "token belongs to; the connector asks Jira who it is instead",
                                f"set connector_account to {me.get('accountId') or me.get('name')!r} or remove it"))

    # --- webhook -------------------------------------------------------------------------

    def check_webhook_secret(self) -> None:
        cid = "jira.webhook_secret"
        if self.settings.jira_webhook_secrets:
            self.add(Check.ok(cid, "JIRA_WEBHOOK_SECRET is set: unsigned or wrongly signed deliveries are refused"))
        elif self.adapter.is_cloud():
            self.add(Check.fail(cid, "JIRA_WEBHOOK_SECRET is not set: `connector serve` refuses to start",
                                "give the Jira webhook a secret (System > WebHooks) and set JIRA_WEBHOOK_SECRET to it"))
        else:
            self.add(Check.warn(cid, "JIRA_WEBHOOK_SECRET is not set",
                                "set a secret on the webhook if this Data Center version offers one; otherwise run "
                                "`connector serve --allow-unsigned jira` behind a network boundary"))

    def check_webhook(self) -> None:
        cid = "jira.webhook"
        expected = self.expected_webhook_url()
        by_hand = (f"in System > WebHooks check a webhook points at {expected or '<public URL>' + WEBHOOK_PATH}, "
                   f"is enabled and sends {', '.join(WEBHOOK_EVENTS)}")
        try:
            hooks = self.read("webhooks", "webhook", api="rest/webhooks/1.0")
        except (Unauthorized, NotFound) as exc:
            self.add(Check.warn(cid, f"the admin webhooks cannot be read with this account ({exc.status}: "
                                     "it needs the Jira Administrators global permission)", by_hand))
            return
        if not isinstance(hooks, list):
            self.add(Check.warn(cid, "the admin webhooks answer is not a list", by_hand))
            return
        matching = [h for h in hooks if isinstance(h, Mapping) and self.points_here(str(h.get("url") or ""))]
        if not matching:
            elsewhere = ", ".join(sorted(str(h.get("url")) for h in hooks if isinstance(h, Mapping))) or "none"
            target = expected or f"<public URL>{WEBHOOK_PATH}"
            self.add(Check.fail(cid, f"no admin webhook points at {target} (webhooks: {elsewhere})",
                                f"create one in System > WebHooks with URL {target}, the secret of "
                                f"JIRA_WEBHOOK_SECRET and the events {', '.join(WEBHOOK_EVENTS)}"
                                + ("" if expected else "; pass --public-url to check the exact URL")))
            return
        problems = []
        for hook in matching:
            name = hook.get("name") or hook.get("url")
            events = set(hook.get("events") or ())
            missing = [e for e in WEBHOOK_EVENTS if e not in events]
            if hook.get("enabled") is False:
                problems.append(f"webhook {name!r} is disabled")
            if missing:
                problems.append(f"webhook {name!r} does not send {', '.join(missing)}")
            if hook.get("excludeBody"):
                problems.append(f"webhook {name!r} excludes the body (the receiver needs the issue id)")
        if problems:
            self.add(Check.fail(cid, "; ".join(problems),
                                f"edit it in System > WebHooks: enable it, tick {', '.join(WEBHOOK_EVENTS)}, "
                                "and leave 'Exclude body' off"))
            return
        hook = matching[0]
        scope = (hook.get("filters") or {}).get("issue-related-events-section") or "all issues"
        self.add(Check.ok(cid, f"webhook {hook.get('name')!r} sends {', '.join(WEBHOOK_EVENTS)} to "
                               f"{hook.get('url')} (scope: {scope})"))

    # --- fields --------------------------------------------------------------------------

    def _resolve(self, cid: str, ref: str, where: str, users: str, catalogue: FieldCatalogue) -> JiraField | None:
        try:
            return catalogue.resolve(ref)
        except FieldResolutionError as exc:
            fix = (f"map {where} by id" if "several" in str(exc) else
                   f"create the field in Jira, or set {where} to an existing field's id or name")
            self.add(Check.fail(cid, f"{exc} (used by {users})", fix))
            return None

    def check_field(self, cid: str, name: str, ref: str, where: str, users: str, written: bool,
                    catalogue: FieldCatalogue, allowed: set[str]) -> None:
        field = self._resolve(cid, ref, where, users, catalogue)
        if field is None:
            return
        if allowed is not self.DUE_TYPES:
            self._fits(cid, name, field, allowed)
            return
        kind = field.type or "?"
        if kind in self.DUE_TYPES:
            self.add(Check.ok(cid, f"{name} -> {field.name!r} ({field.id}, {kind})"))
        elif kind in _DATE_DEGRADED:
            self.add(Check.warn(cid, f"{name} -> {field.name!r} ({field.id}) is a {kind} field: due times "
                                     "lose their time of day or become plain text",
                                "map it to a Date Time Picker field"))
        else:
            self.add(Check.fail(cid, f"{name} -> {field.name!r} ({field.id}) is a {kind} field; a due time "
                                     "cannot be written to it", "map it to a Date Time Picker field"))

    def _fits(self, cid: str, name: str, field: JiraField, allowed: set[str]) -> None:
        kind = field.type or "?"
        if kind in allowed:
            self.add(Check.ok(cid, f"{name} -> {field.name!r} ({field.id}, {kind})"))
        else:
            self.add(Check.fail(cid, f"{name} -> {field.name!r} ({field.id}) is a {kind} field; "
                                     f"{name} needs one of: {', '.join(sorted(allowed))}",
                                f"map {name} to a field of a fitting type"))

    def check_organizations_field(self, catalogue: FieldCatalogue) -> None:
        """The field `when.organizations` is read from exists (and holds organizations)."""
        cid = "jira.field.organizations"
        users = ", ".join(self.organization_rules)
        where = "platforms.jira.organizations_field"
        ref = self.mapping.organizations_field
        if not ref:
            self.add(Check.fail(cid, f"rules {users} match on when.organizations, but {where} is not set: "
                                     "no Jira ticket's organizations are known, so these rules never apply",
                                f"set {where}: Organizations (the Jira Service Management field, or its id)"))
            return
        try:
            field = catalogue.resolve(ref)
        except FieldResolutionError as exc:
            fix = (f"map {where} by id" if "several" in str(exc) else
                   f"use a Jira Service Management project (its field is named \"Organizations\"), or set "
                   f"{where} to the id of the site's organizations field")
            self.add(Check.fail(cid, f"{exc}: rules {users} match on when.organizations and never apply", fix))
            return
        custom = str(field.schema.get("custom") or "")
        if field.type == "array" and custom.endswith(":sd-customer-organizations"):
            self.add(Check.ok(cid, f"organizations -> {field.name!r} ({field.id}), read for {users}"))
        else:
            self.add(Check.fail(cid, f"{where} -> {field.name!r} ({field.id}) is a {field.type or '?'} field, not "
                                     f"Jira Service Management's Organizations ({users} match on it)",
                                f"set {where} to the field of type "
                                "com.atlassian.servicedesk:sd-customer-organizations"))

    # --- edit screen and dropdown values --------------------------------------------------

    def written_fields(self, catalogue: FieldCatalogue) -> dict[str, tuple[str, str]]:
        """written name -> (field id, what to call it) for every write the rules make."""
        out: dict[str, tuple[str, str]] = {}
        for name in self.needs.writes:
            if name == LABELS:
                out[name] = ("labels", "labels (markers)")
            elif name == PRIORITY:
                out[name] = ("priority", "priority")
            elif name == ASSIGNEE:
                out[name] = ("assignee", "assignee")
            else:
                ref = self.mapping.group_field if name == GROUP else self.mapping.fields.get(name)
                if ref is None:
                    continue
                try:
                    field = catalogue.resolve(ref)
                except FieldResolutionError:
                    continue  # reported by check_fields
                out[name] = (field.id, f"{'group' if name == GROUP else name} ({field.name!r}, {field.id})")
        return out

    def check_edit_screen(self, project: str, catalogue: FieldCatalogue,
                          statuses: Mapping[str, Mapping[str, Any]] | None) -> None:
        if statuses is None or "EDIT_ISSUES" in self._missing.get(project, ()):
            return  # without Edit Issues the edit screen is empty; the permission check said so
        for name, (field_id, label) in sorted(self.written_fields(catalogue).items()):
            cid = f"jira.edit_screen.{project}.{name.lstrip('@')}"
            writers = ", ".join(sorted(self.needs.writers[name]))
            off_screen, frozen, unsampled, seen = [], [], [], []
            where = self.platform_names(self.needs.writes[name], statuses)
            if not where:
                continue  # none of its statuses exists: check_statuses reports that
            for status in where:
                issue = self.sample(project, status)
                if issue is None:
                    unsampled.append(status)
                    continue
                fields = self.editmeta(issue)
                if not fields:
                    frozen.append(status)
                elif field_id not in fields:
                    off_screen.append(f"{status!r} ({issue})")
                else:
                    seen.append(status)
            if off_screen:
                self.add(Check.fail(cid, f"{label}, written by {writers}, is not on the edit screen of {project} "
                                         f"issues in {', '.join(off_screen)}: Jira refuses the edit",
                                    "add the field to the project's edit screen (Project settings > Issue types > "
                                    "the issue type's screen), or map the logical field to one on the screen"))
            elif frozen:
                self.add(Check.warn(cid, f"{label}, written by {writers}, cannot be edited in status "
                                         f"{', '.join(map(repr, frozen))} (the status allows no edits: workflow property "
                                         "jira.issue.editable=false, or no Edit Issues); those writes are reported as "
                                         "refused", "remove jira.issue.editable=false from that workflow step if the "
                                                    "rule should write there; otherwise nothing to do"))
            elif unsampled and not seen:
                self.add(Check.warn(cid, f"no {project} issue is in {', '.join(map(repr, unsampled))} to read the edit "
                                         f"screen from, for {label}", "check the edit screen by hand, or run the "
                                                                      "doctor again once issues exist"))
            else:
                self.add(Check.ok(cid, f"{label} is on the edit screen in {', '.join(map(repr, seen))}"))
        self.check_recognised(project, catalogue, statuses)
        if PRIORITY in self.needs.writes:
            self._check_allowed(project, statuses, "priority", "priority",
                                [self.mapping.write_priorities[p] for p in PRIORITIES],
                                "platforms.jira.write_priorities")

    def _check_allowed(self, project: str, statuses: Mapping[str, Mapping[str, Any]], field_id: str, what: str,
                       values: Sequence[str], where: str) -> Check | None:
        """Whether editmeta's allowedValues of `field_id` (on an open issue) offer every value."""
        cid = f"jira.options.{project}.{what}"
        meta = None
        for status in self.platform_names({Status.NEW, Status.IN_PROGRESS}, statuses):
            issue = self.sample(project, status)
            if issue is not None and field_id in self.editmeta(issue):
                meta = self.editmeta(issue)[field_id]
                break
        if meta is None:
            check = Check.warn(cid, f"no open {project} issue shows {what}'s options", "check them by hand")
        else:
            allowed = meta.get("allowedValues")
            if not isinstance(allowed, list):
                return None  # not a list field: any value
            names = {str(a.get(k)).casefold() for a in allowed if isinstance(a, Mapping) for k in ("value", "name")
                     if a.get(k) is not None}
            missing = sorted({v for v in values if v.casefold() not in names})
            if missing:
                shown = ", ".join(sorted({str(a.get("value") or a.get("name")) for a in allowed
                                          if isinstance(a, Mapping)}))
                check = Check.fail(cid, f"{what} has no option {', '.join(map(repr, missing))} (options: {shown})",
                                   f"add the option in the field's context, or change {where}")
            else:
                check = Check.ok(cid, f"{what} offers {', '.join(map(repr, sorted(set(values))))}")
        self.add(check)
        return check

    def check_recognised(self, project: str, catalogue: FieldCatalogue,
                         statuses: Mapping[str, Mapping[str, Any]]) -> None:
        """A dropdown the rules read for a particular answer (closure's "not resolved") must
        offer one of the values they recognise, or that answer can never be given."""
        for name, rule, values, field in self.recognised_fields(catalogue):
            if field.type != "option":
                continue
            cid = f"jira.options.{project}.{name}"
            allowed = None
            for status in self.platform_names(self.needs.writes.get(name) or {Status.RESOLVED}, statuses):
                issue = self.sample(project, status)
                meta = self.editmeta(issue).get(field.id) if issue else None
                if isinstance(meta, Mapping) and isinstance(meta.get("allowedValues"), list):
                    allowed = [str(a.get("value")) for a in meta["allowedValues"] if isinstance(a, Mapping)]
                    break
            if allowed is None:
                continue  # not readable from an editable issue; the edit screen check says why
            folded = {a.casefold() for a in allowed}
            if any(v.casefold() in folded for v in values):
                self.add(Check.ok(cid, f"{field.name!r} offers {', '.join(sorted(v for v in values if v.casefold() in folded))!r}, "
                                       f"which rule {rule} recognises"))
            else:
                self.add(Check.fail(cid, f"{field.name!r} offers {', '.join(map(repr, allowed))}, none of which rule "
                                         f"{rule} recognises ({', '.join(map(repr, sorted(values)))}): that answer "
                                         "can never be given", "add one of them to the rule's not_resolved_values, "
                                                               "or add the option to the field"))

    # --- groups and assignees --------------------------------------------------------------

    def check_groups(self, project: str, catalogue: FieldCatalogue,
                     statuses: Mapping[str, Mapping[str, Any]] | None) -> None:
        if not self.needs.groups or statuses is None:
            return
        try:
            field = catalogue.resolve(self.mapping.group_field)
        except FieldResolutionError:
            return  # reported by check_fields
        values = {group: self.mapping.group_value(group) for group in sorted(self.needs.groups)}
        kind = field.type if field.type != "array" else field.schema.get("items")
        if kind == "option":
            self._check_allowed(project, statuses, field.id, "group", list(values.values()), "platforms.jira.groups")
        elif kind == "group":
            for group, value in values.items():
                cid = f"jira.group.{group}"
                found = self.read("groups.picker", "groups/picker", {"query": value, "maxResults": 50})
                names = {str(g.get("name")) for g in (found or {}).get("groups") or () if isinstance(g, Mapping)}
                if value in names:
                    self.add(Check.ok(cid, f"group {value!r} exists"))
                else:
                    rules = ", ".join(sorted(self.needs.groups[group]))
                    self.add(Check.fail(cid, f"group {value!r} (routed to by {rules}) does not exist, or this "
                                             "account may not see it", f"create the group in Jira, or map "
                                                                       f"platforms.jira.groups.{group} to one that exists"))
        elif kind == "string":
            self.add(Check.ok(f"jira.groups.{project}", f"{field.name!r} is a text field: the group names "
                                                        f"{', '.join(sorted(values.values()))} are written as text"))

    def check_assignees(self, project: str) -> None:
        cloud = self.adapter.is_cloud()
        for user, rules in sorted(self.needs.assignees.items()):
            cid = f"jira.assignee.{project}.{user}"
            found = self.read("user.assignable", "user/assignable/search",
                              {"project": project, "accountId" if cloud else "username": user})
            if found:
                self.add(Check.ok(cid, f"{user!r} can be assigned {project} issues"))
            else:
                self.add(Check.fail(cid, f"{user!r} (assigned by {', '.join(sorted(rules))}) cannot be assigned "
                                         f"{project} issues", "give the user the Assignable User permission in the "
                                                              f"project, or route to another {'accountId' if cloud else 'username'}"))

    # --- projects, permissions -------------------------------------------------------------

    def projects(self) -> list[str]:
        cid = "jira.projects"
        if self.options.projects:
            projects = list(self.options.projects)
            self.add(Check.ok(cid, f"checking project(s) {', '.join(projects)} (--project)"))
            return projects
        found = self.adapter.search(f"updated >= -{RECENT_DAYS}d ORDER BY updated DESC", fields=["project"],
                                    page_size=RECENT_ISSUES)
        projects: list[str] = []
        for count, raw in enumerate(found):
            key = ((raw.get("fields") or {}).get("project") or {}).get("key")
            if key and key not in projects:
                projects.append(str(key))
            if count + 1 >= RECENT_ISSUES:
                break
        if projects:
            self.add(Check.ok(cid, f"issues updated in the last {RECENT_DAYS} days are in {', '.join(projects)}"))
        else:
            self.add(Check.warn(cid, f"no issue the account can see was updated in the last {RECENT_DAYS} days, "
                                     "so no project is checked", "pass --project KEY for each service-desk project"))
        return projects

    def required_permissions(self) -> dict[str, str]:
        """permission key -> why the rules need it."""
        needs = self.needs
        wanted = {"BROWSE_PROJECTS": "reading issues"}
        if needs.internal_notes or needs.public_comments:
            wanted["ADD_COMMENTS"] = "comments of " + ", ".join(sorted(needs.internal_notes | needs.public_comments))
        if any(name != ASSIGNEE for name in needs.writes):
            wanted["EDIT_ISSUES"] = "field and label writes of " + ", ".join(
                sorted({r for n, rs in needs.writers.items() if n != ASSIGNEE for r in rs}))
        if needs.moves:
            wanted["TRANSITION_ISSUES"] = "transitions of " + ", ".join(sorted({m.rule for m in needs.moves}))
        if any("resolution" in (self.mapping.transition_fields.get(m.target) or {}) for m in needs.moves):
            # Setting a resolution on a transition screen is the Resolve Issues permission.
            wanted["RESOLVE_ISSUES"] = "the resolution set on transitions (transition_fields)"
        if ASSIGNEE in needs.writes:
            wanted["ASSIGN_ISSUES"] = "assignments of " + ", ".join(sorted(needs.writers[ASSIGNEE]))
        if needs.internal_notes:
            # A note Jira stored as public is deleted at once (see platforms/jira.py).
            wanted["DELETE_OWN_COMMENTS"] = "withdrawing an internal note that landed public"
        if needs.reads_requester_locale:
            # The reporter's language is read from `GET /rest/api/2/user`, which needs the *Browse
            # users and groups* global permission (its key is USER_PICKER in Jira's permission
            # list, GET /rest/api/2/permissions; /mypermissions answers global permissions too:
            # "Global permissions are unaffected by context"). Without it the summary is in the
            # default language – not wrong, so the check is a FAIL only for that rule's reason.
            wanted["USER_PICKER"] = ("the reporter's language of " + ", ".join(sorted(needs.reads_requester_locale))
                                     + " (Browse users and groups, GET /user)")
        return wanted

    def check_permissions(self, project: str) -> None:
        cid = f"jira.permissions.{project}"
        wanted = self.required_permissions()
        try:
            answer = self.read("mypermissions", "mypermissions",
                               {"projectKey": project, "permissions": ",".join(wanted)})
        except PlatformError as exc:
            self.add(Check.fail(cid, f"the permissions in {project} cannot be read: {exc}",
                                f"check that project {project} exists and the account can browse it"))
            return
        have = (answer or {}).get("permissions") or {}
        missing = [key for key in wanted if not (have.get(key) or {}).get("havePermission")]
        self._missing[project] = set(missing)
        if missing:
            why = "; ".join(f"{key} ({wanted[key]})" for key in missing)
            fixes = []
            if any(key not in GLOBAL_PERMISSIONS for key in missing):
                fixes.append(f"grant them in {project}'s permission scheme (Project settings > Permissions) to a "
                             "role or group the connector account is in")
            if any(key in GLOBAL_PERMISSIONS for key in missing):
                fixes.append("grant " + ", ".join(k for k in missing if k in GLOBAL_PERMISSIONS) + " as a global "
                             "permission (Settings > System > Global permissions) to a group the account is in")
            self.add(Check.fail(cid, f"the account lacks in {project}: {why}", "; ".join(fixes)))
        else:
            self.add(Check.ok(cid, f"the account has {', '.join(wanted)} in {project}"))

    def check_service_desk(self, project: str) -> None:
        cid = f"jira.internal_notes.{project}"
        rules = ", ".join(sorted(self.needs.internal_notes))
        info = self.read("project", f"project/{project}")
        if (info or {}).get("projectTypeKey") != "service_desk":
            self.add(Check.warn(cid, f"{project} is a {info.get('projectTypeKey')!r} project, not Jira Service "
                                     f"Management: its comments have no internal/public distinction, so the internal "
                                     f"notes of {rules} are visible to everyone who can see the issue",
                                "keep customers out of this project, or make those comments public: true knowingly"))
            return
        answer = self.read("mypermissions", "mypermissions", {"projectKey": project, "permissions": "SERVICEDESK_AGENT"})
        agent = ((answer or {}).get("permissions") or {}).get("SERVICEDESK_AGENT") or {}
        if agent.get("havePermission"):
            self.add(Check.ok(cid, f"the account is a Service Management agent in {project}: internal notes of "
                                   f"{rules} stay internal"))
        else:
            self.add(Check.fail(cid, f"the account is not a Service Management agent in {project}: it cannot post the "
                                     f"internal notes of {rules} (they would land public and be withdrawn)",
                                "give the account a Jira Service Management agent licence and add it to the "
                                "project's Service Desk Team role"))

    # --- statuses and transitions ------------------------------------------------------------

    def check_statuses(self, project: str) -> dict[str, Mapping[str, Any]] | None:
        """The project's statuses by folded name (None when they cannot be read)."""
        cid = f"jira.statuses.{project}"
        try:
            listed = self.read("project.statuses", f"project/{project}/statuses")
        except PlatformError as exc:
            self.add(Check.fail(cid, f"the statuses of {project} cannot be read: {exc}",
                                f"check that project {project} exists and the account can browse it"))
            return None
        existing: dict[str, Mapping[str, Any]] = {}
        for issue_type in listed or ():
            for status in (issue_type or {}).get("statuses") or ():
                if isinstance(status, Mapping) and status.get("name"):
                    existing.setdefault(str(status["name"]).casefold(), status)
        used = self.needs.statuses
        missing = sorted({f"{self.mapping.write_statuses[s]!r} (write_statuses.{s.value})" for s in used
                          if self.mapping.write_statuses[s].casefold() not in existing})
        unmapped = sorted(str(s.get("name")) for s in existing.values()
                          if self.mapping.logical_status(str(s.get("name"))) is None)
        names = ", ".join(sorted(str(s.get("name")) for s in existing.values()))
        if missing:
            self.add(Check.fail(cid, f"{project} has no status {', '.join(missing)}; its statuses: {names}",
                                "set platforms.jira.write_statuses to statuses of the project's workflow"))
        elif unmapped:
            read_as = ", ".join(f"{n!r} as {self._logical(existing[n.casefold()])}" for n in unmapped)
            self.add(Check.warn(cid, f"statuses not in platforms.jira.statuses are read by their category: {read_as}",
                                "add them to platforms.jira.statuses if that is not what they mean"))
        else:
            self.add(Check.ok(cid, f"every status the rules use exists in {project} and every status is mapped"))
        return existing

    def check_transitions(self, project: str, statuses: Mapping[str, Mapping[str, Any]] | None) -> None:
        if statuses is None or "TRANSITION_ISSUES" in self._missing.get(project, ()):
            return  # no transition is offered without Transition Issues; the permission check said so
        for move in self.needs.moves:
            target = self.mapping.write_statuses[move.target]
            if target.casefold() not in statuses:
                continue  # reported by check_statuses
            for source in self.platform_names(move.sources, statuses):
                if source.casefold() == target.casefold():
                    continue
                self._check_transition(project, move, source, target)

    def _check_transition(self, project: str, move: Move, source: str, target: str) -> None:
        cid = f"jira.transition.{project}.{_slug(source)}->{_slug(target)}"
        issue = self.sample(project, source)
        if issue is None:
            self.add(Check.warn(cid, f"no {project} issue is in {source!r}, so the transition to {target!r} (rule "
                                     f"{move.rule}) cannot be read without admin rights",
                                f"check in the workflow that {source!r} has a transition to {target!r}, or run the "
                                "doctor again once an issue is in that status"))
            return
        listed = self.read("transitions", f"issue/{issue}/transitions", {"expand": "transitions.fields"})
        transitions = [t for t in (listed or {}).get("transitions") or () if isinstance(t, Mapping)]
        chosen = next((t for t in transitions if str((t.get("to") or {}).get("name") or "").casefold()
                       == target.casefold() and t.get("isAvailable", True) is not False), None)
        if chosen is None:
            offered = ", ".join(sorted({str((t.get("to") or {}).get("name")) for t in transitions})) or "none"
            self.add(Check.fail(cid, f"from {source!r} ({issue}) the workflow offers no transition to {target!r}, "
                                     f"which rule {move.rule} makes (it offers: {offered})",
                                f"add a transition {source!r} -> {target!r} to the workflow, or change "
                                f"platforms.jira.write_statuses.{move.target.value}"))
            return
        screen = chosen.get("fields") if isinstance(chosen.get("fields"), Mapping) else {}
        supplied = self.mapping.transition_fields.get(move.target, {})
        supplied_ids = {_screen_id(screen, ref) for ref in supplied}
        lacking = [str(meta.get("name") or fid) for fid, meta in screen.items()
                   if isinstance(meta, Mapping) and meta.get("required") and not meta.get("hasDefaultValue")
                   and fid not in supplied_ids]
        bad_values = []
        for ref, value in supplied.items():
            fid = _screen_id(screen, ref)
            meta = screen.get(fid) if fid else None
            allowed = meta.get("allowedValues") if isinstance(meta, Mapping) else None
            if isinstance(allowed, list) and allowed:
                names = {str(a.get(k)).casefold() for a in allowed if isinstance(a, Mapping)
                         for k in ("name", "value", "id") if a.get(k) is not None}
                if str(value).casefold() not in names:
                    bad_values.append(f"{ref}={value!r} (allowed: "
                                      f"{', '.join(str(a.get('name') or a.get('value')) for a in allowed)})")
        name = chosen.get("name")
        if lacking:
            self.add(Check.fail(cid, f"transition {name!r} {source!r} -> {target!r} requires "
                                     f"{', '.join(lacking)}, which transition_fields.{move.target.value} does not "
                                     "supply: Jira refuses the transition",
                                f"add platforms.jira.transition_fields.{move.target.value}.<field>: <value> for "
                                f"{', '.join(lacking)}, or make the field optional on the transition screen"))
        elif bad_values:
            self.add(Check.fail(cid, f"transition {name!r} {source!r} -> {target!r}: "
                                     f"{'; '.join(bad_values)} is not an allowed value",
                                f"use an allowed value in platforms.jira.transition_fields.{move.target.value}"))
        else:
            self.add(Check.ok(cid, f"transition {name!r} {source!r} -> {target!r} is offered ({issue})"
                                   + (" and its required fields are supplied" if screen else "")))

    # --- priorities --------------------------------------------------------------------------

    def check_priorities(self) -> None:
        if not self.needs.priorities:
            return
        listed = self.read("priorities", "priority")
        names = {str(p.get("name")).casefold(): str(p.get("name")) for p in listed or () if isinstance(p, Mapping)}
        missing = [f"{p} -> {self.mapping.write_priorities[p]!r}" for p in PRIORITIES
                   if p in self.needs.priorities and self.mapping.write_priorities[p].casefold() not in names]
        unmapped = sorted(n for f, n in names.items() if f not in self.mapping.priorities)
        problem = (f"no priority {', '.join(missing)} on the site (priorities: {', '.join(sorted(names.values()))})"
                   if missing else None)
        self.report_priorities(problem, "set platforms.jira.write_priorities (and priorities) to the site's "
                                        "priority names", unmapped)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _slug(text: str) -> str:
    return "-".join(text.casefold().split())


def _screen_id(screen: Mapping[str, Any], ref: str) -> str | None:
    if ref in screen:
        return ref
    for fid, meta in screen.items():
        if isinstance(meta, Mapping) and str(meta.get("name") or "").casefold() == ref.casefold():
            return str(fid)
    return None
