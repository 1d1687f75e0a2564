"""`connector doctor` against the strict Jira sandbox, set up right and set up wrong.

Each test builds a site, breaks one thing the way an admin could, and runs the real command
(click's CliRunner, credentials from the environment as `serve` reads them, the real `jira`
client over HTTP). A misconfiguration must come out as a FAIL (or a WARN where the doctor
cannot know) under a stable check id, naming what is wrong and how to fix it; a site set up
right exits 0. The sandbox checks every answer it gives against Atlassian's OpenAPI document.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.sandbox.jira import JiraSandbox
from connector.sandbox.jira_store import FieldDef, default_custom_fields
from tests.doctor_support import assert_caught, assert_one_fail_line, assert_passes, by_id, connector_env, failed
from tests.doctor_support import run_doctor, sandbox_site, standard_rules, writes

PUBLIC_URL = "https://connector.example.com"
HOOK_URL = PUBLIC_URL + "/webhooks/jira"
SECRET = "doctor-secret"
STATUSES = ("Waiting for support", "Waiting for customer", "In Progress", "Pending", "Resolved", "Closed")


@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(standard_rules(), encoding="utf-8")
    return path


@pytest.fixture
def site():
    """A factory: `site(configure)` is a sandbox set up right, then changed by `configure`,
    with one issue in each of its statuses (the doctor reads screens and transitions from them)."""

    def prepare(sandbox: JiraSandbox, configure: Callable[[JiraSandbox], None] | None) -> None:
        if configure is not None:
            configure(sandbox)
        created = sandbox.clock.now() - timedelta(days=1)
        for status in STATUSES:
            if status.casefold() in sandbox.store.statuses:
                sandbox.create_issue(f"An issue in {status}", created=created,
                                     status=None if status == "Waiting for support" else status)

    def closed(sandbox: JiraSandbox) -> None:
        assert not sandbox.spec_violations, sandbox.spec_violations

    yield from sandbox_site(JiraSandbox, {"webhook_url": HOOK_URL, "webhook_secret": SECRET, "deliver_webhooks": False,
                                          "connector_admin": True, "validate_responses": True}, prepare, closed)


def doctor(sandbox: JiraSandbox, config: Path, tmp_path: Path, *args: str, secret: str | None = SECRET,
           token: str | None = None, public_url: str | None = PUBLIC_URL) -> tuple[int, dict]:
    env = {"JIRA_URL": sandbox.base_url, "JIRA_USER": sandbox.email, "JIRA_TOKEN": token or sandbox.api_token,
           "JIRA_WEBHOOK_SECRET": secret, **connector_env(config, tmp_path, public_url),
           "ZENDESK_URL": None, "ZENDESK_EMAIL": None, "ZENDESK_TOKEN": None}
    return run_doctor(env, *args)


# --- set up right ---------------------------------------------------------------------------


def test_a_site_set_up_right_passes_and_nothing_is_written(site, config_file, tmp_path):
    sandbox = site()
    code, report = doctor(sandbox, config_file, tmp_path)
    checks = assert_passes(code, report, ("jira.credentials", "jira.webhook", "jira.webhook_secret",
                                          "jira.permissions.SUP", "jira.internal_notes.SUP", "jira.statuses.SUP",
                                          "jira.priorities", "jira.field.root_cause",
                                          "jira.edit_screen.SUP.sla_first_response_due",
                                          "jira.transition.SUP.resolved->closed",
                                          "jira.options.SUP.verification_result", "queue.sqlite",
                                          "calendar.standard.holidays", "jira.field.organizations"))
    assert "Support Connector" in checks["jira.credentials"]["found"]
    # Stock JSM: Closed allows no edits, so the follow-up due date written there is a WARN, with why.
    closed = checks["jira.edit_screen.SUP.follow_up_due"]
    assert closed["status"] == "WARN" and "jira.issue.editable" in closed["found"]
    # Read-only: every request the doctor sent was a GET.
    assert sandbox.calls and writes(sandbox) == []


def test_text_output_is_one_line_per_check_with_a_summary(site, config_file, tmp_path):
    sandbox = site(lambda s: s.remove_priority("Highest"))
    env = {"JIRA_URL": sandbox.base_url, "JIRA_USER": sandbox.email, "JIRA_TOKEN": sandbox.api_token,
           "JIRA_WEBHOOK_SECRET": SECRET, "CONNECTOR_CONFIG": str(config_file),
           "CONNECTOR_DATA_DIR": str(tmp_path / "data"), "CONNECTOR_QUEUE_URL": None, "ZENDESK_URL": None}
    result = CliRunner().invoke(main, ["doctor", "--platform", "jira", "--public-url", PUBLIC_URL], env=env)
    assert_one_fail_line(result, "jira.priorities", "'Highest'", (SECRET, sandbox.api_token))
    assert writes(sandbox) == []


# --- set up wrong: each one caught, named, with its fix ---------------------------------------------


def select_group_field(options: tuple[str, ...]) -> list[FieldDef]:
    """The stock custom fields with "Support group" as a dropdown offering `options`."""
    fields = []
    for field in default_custom_fields():
        if field.name == "Support group":
            field = FieldDef(field.id, field.name, "option", custom=True, options=options,
                             schema={"type": "option", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:select",
                                     "customId": field.schema["customId"]})
        fields.append(field)
    return fields


def group_picker_field() -> list[FieldDef]:
    fields = []
    for field in default_custom_fields():
        if field.name == "Support group":
            field = FieldDef(field.id, field.name, "group", custom=True,
                             schema={"type": "group",
                                     "custom": "com.atlassian.jira.plugin.system.customfieldtypes:grouppicker",
                                     "customId": field.schema["customId"]})
        fields.append(field)
    return fields


# (name, how the site is broken, sandbox options, check id, status, words the finding names, words of the fix)
MISCONFIGURED = [
    ("field missing", lambda s: s.remove_field("Root cause"), {},
     "jira.field.root_cause", "FAIL", ["'Root cause'", "closure"], ["create the field", "platforms.jira.fields.root_cause"]),
    ("field off the edit screen", lambda s: s.take_off_edit_screen("First response due"), {},
     "jira.edit_screen.SUP.sla_first_response_due", "FAIL", ["not on the edit screen", "customfield_10060", "sla"],
     ["edit screen"]),
    ("dropdown option missing", None, {"custom_fields": select_group_field(("L1", "L2", "team-lead", "network-team"))},
     "jira.options.SUP.group", "FAIL", ["'billing'"], ["add the option", "platforms.jira.groups"]),
    ("recognised answer not an option", lambda s: s.remove_option("Verification result", "Not resolved"), {},
     "jira.options.SUP.verification_result", "FAIL", ["none of which rule closure recognises", "'not resolved'"],
     ["not_resolved_values"]),
    ("group missing", lambda s: s.remove_group("team-lead"), {"custom_fields": group_picker_field()},
     "jira.group.team-lead", "FAIL", ["'team-lead'", "escalation"], ["create the group"]),
    ("status missing", lambda s: s.remove_status("Closed"), {},
     "jira.statuses.SUP", "FAIL", ["'Closed'", "write_statuses.closed"], ["write_statuses"]),
    ("transition missing", lambda s: s.remove_transition("Closed", from_status="Resolved"), {},
     "jira.transition.SUP.resolved->closed", "FAIL", ["no transition to 'Closed'", "auto-close"],
     ["add a transition 'Resolved' -> 'Closed'"]),
    ("required transition field not supplied", lambda s: s.require_transition_field("Closed", "Root cause"), {},
     "jira.transition.SUP.resolved->closed", "FAIL", ["requires Root cause", "transition_fields.closed"],
     ["platforms.jira.transition_fields.closed"]),
    ("priority missing", lambda s: s.remove_priority("Highest"), {},
     "jira.priorities", "FAIL", ["P0 -> 'Highest'"], ["write_priorities"]),
    ("permission missing", lambda s: s.revoke_permission("TRANSITION_ISSUES"), {},
     "jira.permissions.SUP", "FAIL", ["TRANSITION_ISSUES", "auto-close", "intake"], ["permission scheme"]),
    ("edit permission missing", lambda s: s.revoke_permission("EDIT_ISSUES"), {},
     "jira.permissions.SUP", "FAIL", ["EDIT_ISSUES", "sla"], ["permission scheme"]),
    ("cannot browse users (the reporter's language)", lambda s: setattr(s, "browse_users", False), {},
     "jira.permissions.SUP", "FAIL", ["USER_PICKER", "closing-summary", "Browse users and groups"],
     ["Global permissions"]),
    ("not a service desk agent", lambda s: s.revoke_permission("SERVICEDESK_AGENT"), {},
     "jira.internal_notes.SUP", "FAIL", ["not a Service Management agent", "sla"], ["agent licence"]),
    ("organizations field missing", lambda s: s.remove_field("Organizations"), {},
     "jira.field.organizations", "FAIL", ["'Organizations'", "sla-premium", "never apply"],
     ["platforms.jira.organizations_field"]),
    ("webhook absent", lambda s: s.remove_webhooks(), {},
     "jira.webhook", "FAIL", [f"no admin webhook points at {HOOK_URL}"], ["System > WebHooks", "comment_created"]),
    ("webhook lacks an event", lambda s: s.register_webhook("Support connector", HOOK_URL,
                                                            ["jira:issue_created", "jira:issue_updated"]), {},
     "jira.webhook", "FAIL", ["does not send comment_created"], ["tick"]),
    ("webhook points elsewhere", lambda s: (s.remove_webhooks(),
                                            s.register_webhook("old", "https://old.example.com/webhooks/jira",
                                                               ["jira:issue_created", "jira:issue_updated",
                                                                "comment_created"])), {},
     "jira.webhook", "FAIL", ["https://old.example.com/webhooks/jira"], [HOOK_URL]),
    ("webhook disabled", lambda s: s.register_webhook("Support connector", HOOK_URL,
                                                      ["jira:issue_created", "jira:issue_updated", "comment_created"],
                                                      enabled=False), {},
     "jira.webhook", "FAIL", ["is disabled"], ["enable it"]),
]


@pytest.mark.parametrize("name,configure,options,cid,status,found,fix", MISCONFIGURED, ids=[m[0] for m in MISCONFIGURED])
def test_a_misconfigured_site_is_caught_with_its_fix(site, config_file, tmp_path, name, configure, options, cid,
                                                     status, found, fix):
    assert status == "FAIL"  # every case here fails: only that check, and the exit code says so
    sandbox = site(configure, **options)
    code, report = doctor(sandbox, config_file, tmp_path)
    assert_caught(code, report, cid, status, found, fix)
    assert writes(sandbox) == []


def test_organizations_not_mapped_fails_and_is_not_checked_without_such_rules(site, config_file, tmp_path):
    text = config_file.read_text(encoding="utf-8")
    config_file.write_text(text + "\nplatforms:\n  jira:\n    organizations_field: null\n", encoding="utf-8")
    code, report = doctor(site(), config_file, tmp_path)
    assert_caught(code, report, "jira.field.organizations", "FAIL", ["not set", "sla-premium"],
                  ["platforms.jira.organizations_field: Organizations"])
    # A field that is not JSM's Organizations (a text field) fails too.
    config_file.write_text(text + "\nplatforms:\n  jira:\n    organizations_field: Impact scope\n", encoding="utf-8")
    code, report = doctor(site(), config_file, tmp_path)
    assert_caught(code, report, "jira.field.organizations", "FAIL", ["'Impact scope'", "not Jira Service Management"],
                  ["sd-customer-organizations"])
    # No rule matches on organizations: the field is not asked for at all.
    config_file.write_text(text.replace("    when: {organizations: [Acme Europe]}\n", "    when: {priorities: [P0]}\n"),
                           encoding="utf-8")
    code, report = doctor(site(lambda s: s.remove_field("Organizations")), config_file, tmp_path)
    assert code == 0 and "jira.field.organizations" not in by_id(report)


def test_a_field_of_the_wrong_type_fails(site, config_file, tmp_path):
    text = config_file.read_text(encoding="utf-8") + (
        "\nplatforms:\n  jira:\n    fields:\n      sla_first_response_due: Satisfaction\n"
        "      sla_resolution_due: Impact scope\n")
    config_file.write_text(text, encoding="utf-8")
    code, report = doctor(site(), config_file, tmp_path)
    checks = by_id(report)
    assert checks["jira.field.sla_first_response_due"]["status"] == "FAIL"
    assert "is a number field" in checks["jira.field.sla_first_response_due"]["found"]
    assert "Date Time Picker" in checks["jira.field.sla_first_response_due"]["fix"]
    # A text field holds a due time only as text: degraded, not broken.
    assert checks["jira.field.sla_resolution_due"]["status"] == "WARN"
    assert code == 1


def test_an_account_without_admin_rights_gets_a_warning_about_the_webhook(site, config_file, tmp_path):
    sandbox = site(connector_admin=False)
    code, report = doctor(sandbox, config_file, tmp_path)
    check = by_id(report)["jira.webhook"]
    assert check["status"] == "WARN"
    assert "Jira Administrators" in check["found"] and HOOK_URL in check["fix"] and "comment_created" in check["fix"]
    assert code == 0, failed(report)


def test_a_missing_webhook_secret_fails(site, config_file, tmp_path):
    code, report = doctor(site(), config_file, tmp_path, secret=None)
    assert set(failed(report)) == {"jira.webhook_secret"}
    assert "JIRA_WEBHOOK_SECRET" in by_id(report)["jira.webhook_secret"]["fix"]
    assert code == 1


def test_wrong_credentials_stop_the_jira_checks(site, config_file, tmp_path):
    sandbox = site()
    code, report = doctor(sandbox, config_file, tmp_path, token="not-the-token")
    jira = [c for c in report["checks"] if c["id"].startswith("jira.")]
    assert [c["id"] for c in jira] == ["jira.credentials"]
    assert jira[0]["status"] == "FAIL" and "401" in jira[0]["found"] and "JIRA_TOKEN" in jira[0]["fix"]
    assert code == 1


def test_a_project_outside_service_management_warns_that_notes_are_visible(site, config_file, tmp_path):
    code, report = doctor(site(service_management=False), config_file, tmp_path)
    check = by_id(report)["jira.internal_notes.SUP"]
    assert check["status"] == "WARN" and "visible to everyone" in check["found"]
    assert code == 0, failed(report)


def test_only_the_given_project_is_checked(site, config_file, tmp_path):
    code, report = doctor(site(), config_file, tmp_path, "--project", "OPS")
    checks = by_id(report)
    assert "OPS" in checks["jira.projects"]["found"]
    assert checks["jira.permissions.OPS"]["status"] == "FAIL"
    assert "project OPS exists" in checks["jira.permissions.OPS"]["fix"]
    assert code == 1


def test_zendesk_without_credentials_fails_its_credentials_check(config_file, tmp_path):
    # The Zendesk checks live in tests/test_doctor_zendesk.py; here only: --platform zendesk runs them.
    result = CliRunner().invoke(main, ["doctor", "--platform", "zendesk"],
                                env={"CONNECTOR_CONFIG": str(config_file), "CONNECTOR_DATA_DIR": str(tmp_path),
                                     "ZENDESK_URL": None, "ZENDESK_EMAIL": None, "ZENDESK_TOKEN": None})
    assert result.exit_code == 1
    assert "FAIL  zendesk.credentials" in result.output and "ZENDESK_TOKEN" in result.output


def test_data_center_set_up_right_passes(site, config_file, tmp_path):
    # A personal access token (no JIRA_USER), /search instead of /search/jql, usernames.
    sandbox = site(deployment="Server")
    env = {"JIRA_URL": sandbox.base_url, "JIRA_USER": None, "JIRA_TOKEN": sandbox.pat, "JIRA_WEBHOOK_SECRET": SECRET,
           "CONNECTOR_CONFIG": str(config_file), "CONNECTOR_DATA_DIR": str(tmp_path / "data"),
           "CONNECTOR_QUEUE_URL": None, "ZENDESK_URL": None}
    result = CliRunner().invoke(main, ["doctor", "--format", "json", "--public-url", PUBLIC_URL], env=env)
    report = json.loads(result.output)
    assert result.exit_code == 0, failed(report)
    assert "Jira Data Center" in by_id(report)["jira.credentials"]["found"]
    assert by_id(report)["jira.transition.SUP.resolved->closed"]["status"] == "OK"
    assert writes(sandbox) == []


def test_a_resource_that_cannot_be_read_fails_alone(site, config_file, tmp_path):
    sandbox = site()
    sandbox.inject(status=403, times=1, path_prefix="/rest/api/2/project/SUP")
    code, report = doctor(sandbox, config_file, tmp_path)
    assert set(failed(report)) == {"jira.internal_notes.SUP"}
    assert "could not be checked" in by_id(report)["jira.internal_notes.SUP"]["found"]
    assert by_id(report)["jira.statuses.SUP"]["status"] == "OK"  # the other checks still ran
    assert code == 1


# --- the sandbox answers the doctor's reads as Jira does ---------------------------------------


def test_sandbox_my_permissions_requires_known_keys_on_cloud(site):
    import requests

    sandbox = site()
    auth = (sandbox.email, sandbox.api_token)
    url = sandbox.base_url + "/rest/api/2/mypermissions"
    assert requests.get(url, params={"projectKey": "SUP"}, auth=auth).status_code == 400
    assert requests.get(url, params={"projectKey": "SUP", "permissions": "NO_SUCH"}, auth=auth).status_code == 400
    answer = requests.get(url, params={"projectKey": "SUP", "permissions": "EDIT_ISSUES"}, auth=auth).json()
    assert answer["permissions"]["EDIT_ISSUES"]["havePermission"] is True
    sandbox.revoke_permission("EDIT_ISSUES")
    answer = requests.get(url, params={"projectKey": "SUP", "permissions": "EDIT_ISSUES"}, auth=auth).json()
    assert answer["permissions"]["EDIT_ISSUES"]["havePermission"] is False
    # Without Service Management the agent permission does not exist at all.
    plain = site(service_management=False)
    assert requests.get(plain.base_url + "/rest/api/2/mypermissions",
                        params={"projectKey": "SUP", "permissions": "SERVICEDESK_AGENT"},
                        auth=(plain.email, plain.api_token)).status_code == 400


def test_sandbox_admin_webhooks_need_an_administrator(site):
    import requests

    sandbox = site(connector_admin=False)
    auth = (sandbox.email, sandbox.api_token)
    assert requests.get(sandbox.base_url + "/rest/webhooks/1.0/webhook", auth=auth).status_code == 403
    sandbox.connector_admin = True
    [hook] = requests.get(sandbox.base_url + "/rest/webhooks/1.0/webhook", auth=auth).json()
    assert hook["url"] == HOOK_URL and hook["enabled"] is True
    assert set(hook["events"]) == {"jira:issue_created", "jira:issue_updated", "comment_created"}


def test_sandbox_group_picker_field_refuses_an_unknown_group(site):
    from jira import JIRA
    from jira.exceptions import JIRAError

    sandbox = site(lambda s: s.remove_group("billing"), custom_fields=group_picker_field())
    client = JIRA(server=sandbox.base_url, basic_auth=(sandbox.email, sandbox.api_token), max_retries=0,
                  get_server_info=False)
    key = sandbox.create_issue("Invoice wrong")
    field_id = sandbox.store.field_by_name_or_id("Support group").id
    with pytest.raises(JIRAError) as refused:
        client.issue(key).update(fields={field_id: {"name": "billing"}})
    assert refused.value.status_code == 400 and "billing" in refused.value.text
    client.issue(key).update(fields={field_id: {"name": "L1"}})
    assert sandbox.issue(key)["fields"][field_id]["name"] == "L1"


def test_sandbox_without_edit_or_transition_permission_refuses_like_jira(site):
    from jira import JIRA
    from jira.exceptions import JIRAError

    sandbox = site(lambda s: s.revoke_permission("EDIT_ISSUES", "TRANSITION_ISSUES"))
    client = JIRA(server=sandbox.base_url, basic_auth=(sandbox.email, sandbox.api_token), max_retries=0,
                  get_server_info=False)
    key = sandbox.create_issue("No rights")
    assert client.editmeta(key)["fields"] == {}
    assert client.transitions(key) == []
    with pytest.raises(JIRAError) as refused:
        client.issue(key).update(fields={"summary": "changed"})
    assert refused.value.status_code == 400 and "cannot be set" in refused.value.text
    sandbox.set_fields(key, {"summary": "an agent may"}, author="alice")  # humans keep their rights
    assert sandbox.issue(key)["fields"]["summary"] == "an agent may"


def test_without_a_public_url_any_webhook_to_the_receivers_path_counts(site, config_file, tmp_path):
    sandbox = site()
    code, report = doctor(sandbox, config_file, tmp_path, public_url=None)
    assert by_id(report)["jira.webhook"]["status"] == "OK" and code == 0
    sandbox.remove_webhooks()
    sandbox.register_webhook("other app", "https://other.example.com/hook", ["jira:issue_updated"])
    code, report = doctor(sandbox, config_file, tmp_path, public_url=None)
    check = by_id(report)["jira.webhook"]
    assert check["status"] == "FAIL" and "https://other.example.com/hook" in check["found"]
    assert "pass --public-url" in check["fix"]


@pytest.mark.parametrize("assignee,status", [("acc-agent", "OK"), ("acc-customer", "FAIL")])
def test_an_assignee_the_rules_route_to_must_be_assignable(site, config_file, tmp_path, assignee, status):
    text = config_file.read_text(encoding="utf-8").replace("default: {group: L1}",
                                                           f"default: {{group: L1, assignee: {assignee}}}")
    config_file.write_text(text, encoding="utf-8")
    code, report = doctor(site(), config_file, tmp_path)
    check = by_id(report)[f"jira.assignee.SUP.{assignee}"]
    assert check["status"] == status, check
    assert "ASSIGN_ISSUES" in by_id(report)["jira.permissions.SUP"]["found"]
    assert set(failed(report)) == ({check["id"]} if status == "FAIL" else set())
    if status == "FAIL":
        assert "Assignable User" in check["fix"]


def test_problem_numbers_need_their_field_only_when_switched_on(site, config_file, tmp_path):
    off = by_id(doctor(site(), config_file, tmp_path)[1])
    assert "jira.field.problem_number" not in off  # the shipped rule is off: nothing asked of the site
    config_file.write_text(config_file.read_text(encoding="utf-8").replace(
        "type: problem-number\n    enabled: false", "type: problem-number\n    enabled: true"), encoding="utf-8")
    checks = assert_passes(*doctor(site(), config_file, tmp_path),
                           ("jira.field.problem_number", "jira.edit_screen.SUP.problem_number"))
    assert checks["jira.field.problem_number"]["status"] == "OK"
    code, report = doctor(site(lambda s: s.remove_field("Problem number")), config_file, tmp_path)
    missing = by_id(report)["jira.field.problem_number"]
    assert code == 1 and missing["status"] == "FAIL" and "problem_number" in missing["fix"]


def test_review_gate_needs_a_user_picker_reviewer_and_a_change_type_offering_its_values(site, config_file, tmp_path):
    checks = assert_passes(*doctor(site(), config_file, tmp_path), ("jira.field.reviewer", "jira.field.change_type"))
    assert checks["jira.field.reviewer"]["status"] == "OK"
    # The select list offers "Data fix" etc., which the rule recognises.
    assert checks["jira.options.SUP.change_type"]["status"] == "OK"
    code, report = doctor(site(lambda s: s.remove_field("Reviewer")), config_file, tmp_path)
    missing = by_id(report)["jira.field.reviewer"]
    assert code == 1 and missing["status"] == "FAIL" and "reviewer" in missing["fix"]
