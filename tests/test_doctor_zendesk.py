"""`connector doctor --platform zendesk` against the strict Zendesk sandbox, set up right and wrong.

Each test builds an account, breaks one thing the way an admin could, and runs the real
command (click's CliRunner, credentials from the environment as `serve` reads them, the
adapter's zenpy session over HTTP). A misconfiguration must come out as a FAIL (or a WARN
where the doctor cannot know) under a stable check id, naming what is wrong and how to fix
it, with nothing else failing; an account set up right exits 0 – and the sandbox saw GETs only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.sandbox.zendesk import GROUPS, ZendeskSandbox
from connector.sandbox.zendesk_admin import CONDITIONAL_TICKET_EVENTS
from tests.doctor_support import assert_caught, assert_one_fail_line, assert_passes, by_id, connector_env, failed
from tests.doctor_support import run_doctor, sandbox_site, standard_rules, writes

PUBLIC_URL = "https://connector.example.com"
HOOK_URL = PUBLIC_URL + "/webhooks/zendesk"
SECRET = "doctor-zendesk-secret"
TEAM_LEAD = 360001111009


def config_text(groups: dict[str, int] | None = None, extra: str = "") -> str:
    """The standard rules (holidays whose data does not run out next year) with the account's
    group ids, as an admin maps them."""
    text = standard_rules()
    groups = {**GROUPS, "team-lead": TEAM_LEAD} if groups is None else groups
    lines = "".join(f"      {name}: '{gid}'\n" for name, gid in groups.items())
    return text + "\nplatforms:\n  zendesk:\n" + (f"    groups:\n{lines}" if lines else "") + extra


@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(config_text(), encoding="utf-8")
    return path


@pytest.fixture
def site():
    """A factory: `site(configure)` is an account set up right (an admin token, the webhook to
    the receiver, a team-lead group, an auto-close automation that waits longer than the
    rules' own auto-close), then changed by `configure`."""

    def prepare(sandbox: ZendeskSandbox, configure: Callable[[ZendeskSandbox], None] | None) -> None:
        sandbox.add_group("team-lead", group_id=TEAM_LEAD)
        if configure is not None:
            configure(sandbox)

    yield from sandbox_site(ZendeskSandbox, {"webhook_url": HOOK_URL, "webhook_secret": SECRET,
                                             "deliver_webhooks": False, "auto_close_after": timedelta(days=7)}, prepare)


def env_for(sandbox: ZendeskSandbox, config: Path, tmp_path: Path, *, secret: str | None = SECRET,
            token: str | None = None, public_url: str | None = PUBLIC_URL) -> dict[str, str | None]:
    return {"ZENDESK_URL": sandbox.base_url, "ZENDESK_EMAIL": sandbox.email, "ZENDESK_TOKEN": token or sandbox.api_token,
            "ZENDESK_WEBHOOK_SECRET": secret, **connector_env(config, tmp_path, public_url),
            "JIRA_URL": None, "JIRA_USER": None, "JIRA_TOKEN": None}


def doctor(sandbox: ZendeskSandbox, config: Path, tmp_path: Path, *args: str, **env: str | None) -> tuple[int, dict]:
    return run_doctor(env_for(sandbox, config, tmp_path, **env), *args)


# --- set up right ---------------------------------------------------------------------------


def test_an_account_set_up_right_passes_and_nothing_is_written(site, config_file, tmp_path):
    sandbox = site()
    code, report = doctor(sandbox, config_file, tmp_path)
    checks = assert_passes(code, report, ("zendesk.credentials", "zendesk.role", "zendesk.incremental_export",
                                          "zendesk.webhook", "zendesk.webhook_secret", "zendesk.webhook_signing_secret",
                                          "zendesk.field.root_cause", "zendesk.field.sla_first_response_due",
                                          "zendesk.field.category", "zendesk.options.verification_result",
                                          "zendesk.required_to_solve", "zendesk.statuses",
                                          "zendesk.move.auto-close.closed", "zendesk.priorities", "zendesk.group.L1",
                                          "zendesk.group.team-lead", "zendesk.auto_close", "queue.sqlite",
                                          "calendar.standard.holidays"))
    assert "Support Process Connector" in checks["zendesk.credentials"]["found"]
    # Closure reopens closed tickets too, which Zendesk cannot: a WARN saying where the comment goes.
    reopen = checks["zendesk.move.closure.in_progress"]
    assert reopen["status"] == "WARN" and "follow-up ticket" in reopen["found"]
    # Read-only: every request the doctor sent was a GET.
    assert sandbox.calls and writes(sandbox) == []


def test_text_output_is_one_line_per_check_with_a_summary(site, config_file, tmp_path):
    sandbox = site(lambda s: s.remove_field("Root cause"))
    env = env_for(sandbox, config_file, tmp_path)
    result = CliRunner().invoke(main, ["doctor", "--platform", "zendesk", "--public-url", PUBLIC_URL], env=env)
    assert_one_fail_line(result, "zendesk.field.root_cause", "'Root cause'", (SECRET, sandbox.api_token))
    assert writes(sandbox) == []


def test_json_output_parses_with_stable_ids(site, config_file, tmp_path):
    code, report = doctor(site(), config_file, tmp_path)
    assert set(report) == {"ok", "counts", "checks"}
    assert all(set(c) == {"id", "status", "found", "fix"} for c in report["checks"])
    assert all(c["id"].startswith(("zendesk.", "queue.", "calendar.")) for c in report["checks"])
    assert sum(report["counts"].values()) == len(report["checks"])


# --- set up wrong: each one caught, named, with its fix ---------------------------------------------

def trigger_webhook_without_ticket_id(s: ZendeskSandbox) -> None:
    s.remove_webhooks()
    hook = s.add_webhook("Support connector", HOOK_URL, [CONDITIONAL_TICKET_EVENTS], secret=SECRET)
    s.add_trigger("Notify connector", hook, body='{"id": "{{ticket.url}}"}')


# (name, how the account is broken, sandbox options, check id, status, words of the finding, words of the fix)
MISCONFIGURED = [
    ("field missing", lambda s: s.remove_field("Root cause"), {},
     "zendesk.field.root_cause", "FAIL", ["'Root cause'", "closure"], ["create the field", "platforms.zendesk.fields.root_cause"]),
    ("field inactive", lambda s: s.set_field("Solution", active=False), {},
     "zendesk.field.solution", "FAIL", ["is inactive", "similar-cases"], ["activate the field"]),
    ("field agents cannot edit", lambda s: s.set_field("First response due", agent_can_edit=False), {},
     "zendesk.field.sla_first_response_due", "FAIL", ["agent_can_edit false", "sla"], ["let agents edit the field"]),
    ("field of the wrong type", lambda s: s.set_field("Resolution due", type="checkbox"), {},
     "zendesk.field.sla_resolution_due", "FAIL", ["checkbox", "needs one of: date"], ["fitting type"]),
    ("recognised answer not an option", lambda s: s.remove_option("Verification result", "Not resolved"), {},
     "zendesk.options.verification_result", "FAIL", ["none of which rule closure recognises"], ["not_resolved_values"]),
    ("field required to solve", lambda s: s.set_field_required("Knowledge base link"), {},
     "zendesk.required_to_solve", "WARN", ["'Knowledge base link'", "auto-close"], ["fill the fields"]),
    ("group missing", lambda s: s.remove_group("team-lead"), {},
     "zendesk.group.team-lead", "FAIL", [f"group id {TEAM_LEAD}", "escalation"], ["platforms.zendesk.groups.team-lead"]),
    ("light agent", lambda s: s.set_connector_role("agent", custom_role="Light agent"), {},
     "zendesk.role", "FAIL", ["light agent", "cannot edit"], ["agent (or admin) with ticket editing"]),
    ("custom role without ticket editing", lambda s: s.set_connector_role("agent", custom_role="Viewer"), {},
     "zendesk.role", "FAIL", ["'Viewer'", "ticket_editing off"], ["allow editing ticket properties"]),
    ("webhook absent", lambda s: s.remove_webhooks(), {},
     "zendesk.webhook", "FAIL", [f"no webhook points at {HOOK_URL}"], ["Admin Center", "zen:event-type:ticket.comment_added"]),
    ("webhook inactive", lambda s: setattr(s, "webhook_status", "inactive"), {},
     "zendesk.webhook", "FAIL", ["is inactive"], ["activate the webhook"]),
    ("webhook lacks an event", None, {"webhook_events": ["zen:event-type:ticket.created"]},
     "zendesk.webhook", "FAIL", ["does not subscribe to", "ticket.comment_added"], ["subscribe it"]),
    ("trigger webhook without a ticket id", trigger_webhook_without_ticket_id, {},
     "zendesk.webhook", "FAIL", ["no active trigger or automation notifies it"], ['{"ticket_id": "{{ticket.id}}"}']),
    ("webhook points elsewhere", lambda s: (s.remove_webhooks(),
                                            s.add_webhook("old", "https://old.example.com/webhooks/zendesk",
                                                          ["zen:event-type:ticket.created"])), {},
     "zendesk.webhook", "FAIL", ["https://old.example.com/webhooks/zendesk"], [HOOK_URL]),
    ("signing secret differs", None, {"webhook_secret": "another-secret"},
     "zendesk.webhook_signing_secret", "FAIL", ["is not webhook", "signing secret"], ["ZENDESK_WEBHOOK_SECRET"]),
]


@pytest.mark.parametrize("name,configure,options,cid,status,found,fix", MISCONFIGURED, ids=[m[0] for m in MISCONFIGURED])
def test_a_misconfigured_account_is_caught_with_its_fix(site, config_file, tmp_path, name, configure, options, cid,
                                                        status, found, fix):
    sandbox = site(configure, **options)
    code, report = doctor(sandbox, config_file, tmp_path)
    assert_caught(code, report, cid, status, found, fix)
    assert writes(sandbox) == []


@pytest.mark.parametrize("name,extra,cid,found,fix", [
    ("status that is not a Zendesk status", "    write_statuses:\n      in_progress: working\n",
     "zendesk.statuses", ["write_statuses.in_progress: 'working'"], ["system statuses"]),
    ("priority that is not a Zendesk priority", "    write_priorities:\n      P0: critical\n",
     "zendesk.priorities", ["P0 -> 'critical'"], ["urgent, high, normal and low"]),
    ("move back to new", "    write_statuses:\n      in_progress: new\n",
     "zendesk.move.intake.in_progress", ["back to 'new'"], ["write_statuses.in_progress"]),
])
def test_a_mapping_zendesk_cannot_follow_fails(site, tmp_path, name, extra, cid, found, fix):
    config = tmp_path / "rules.yaml"
    config.write_text(config_text(extra=extra), encoding="utf-8")
    code, report = doctor(site(), config, tmp_path)
    check = by_id(report)[cid]
    assert check["status"] == "FAIL", check
    assert all(w in check["found"] for w in found) and all(w in check["fix"] for w in fix), check
    assert cid in failed(report) and code == 1


def test_a_group_without_an_id_in_the_mapping_names_the_id_to_use(site, tmp_path):
    config = tmp_path / "rules.yaml"
    config.write_text(config_text({**GROUPS}), encoding="utf-8")  # team-lead exists in Zendesk, but is not mapped
    code, report = doctor(site(), config, tmp_path)
    assert set(failed(report)) == {"zendesk.group.team-lead"}
    check = by_id(report)["zendesk.group.team-lead"]
    assert "no Zendesk group id" in check["found"] and f"team-lead: '{TEAM_LEAD}'" in check["fix"]
    assert code == 1


# --- roles: what only admins can read is a WARN for an agent, not a FAIL -------------------------------


def test_an_agent_token_warns_about_what_only_admins_can_read(site, config_file, tmp_path):
    sandbox = site(connector_role="agent")
    code, report = doctor(sandbox, config_file, tmp_path)
    checks = by_id(report)
    assert code == 0, failed(report)
    assert checks["zendesk.role"]["status"] == "OK"
    export = checks["zendesk.incremental_export"]
    assert export["status"] == "WARN" and "falls back to search" in export["found"]
    hook = checks["zendesk.webhook"]
    assert hook["status"] == "WARN" and "403" in hook["found"] and HOOK_URL in hook["fix"]
    assert "zendesk.webhook_signing_secret" not in checks
    assert writes(sandbox) == []


def test_an_end_user_token_fails_and_stops(site, config_file, tmp_path):
    sandbox = site(connector_role="end-user")
    code, report = doctor(sandbox, config_file, tmp_path)
    zendesk = [c for c in report["checks"] if c["id"].startswith("zendesk.")]
    assert [c["id"] for c in zendesk] == ["zendesk.credentials", "zendesk.role"]
    assert zendesk[1]["status"] == "FAIL" and "end users cannot update tickets" in zendesk[1]["found"]
    assert code == 1


def test_a_custom_role_that_may_edit_tickets_passes(site, config_file, tmp_path):
    code, report = doctor(site(lambda s: s.set_connector_role("agent", custom_role="Staff")), config_file, tmp_path)
    check = by_id(report)["zendesk.role"]
    assert check["status"] == "OK" and "'Staff'" in check["found"]
    assert code == 0, failed(report)


def test_wrong_credentials_stop_the_zendesk_checks(site, config_file, tmp_path):
    code, report = doctor(site(), config_file, tmp_path, token="not-the-token")
    zendesk = [c for c in report["checks"] if c["id"].startswith("zendesk.")]
    assert [c["id"] for c in zendesk] == ["zendesk.credentials"]
    assert zendesk[0]["status"] == "FAIL" and "401" in zendesk[0]["found"] and "ZENDESK_TOKEN" in zendesk[0]["fix"]
    assert code == 1


def test_a_missing_webhook_secret_fails(site, config_file, tmp_path):
    code, report = doctor(site(), config_file, tmp_path, secret=None)
    assert set(failed(report)) == {"zendesk.webhook_secret"}
    assert "ZENDESK_WEBHOOK_SECRET" in by_id(report)["zendesk.webhook_secret"]["fix"]
    assert code == 1


# --- webhooks connected to triggers, custom statuses, auto-close ---------------------------------------


def test_a_webhook_called_by_a_trigger_with_the_ticket_id_passes(site, config_file, tmp_path):
    def configure(s: ZendeskSandbox) -> None:
        s.remove_webhooks()
        hook = s.add_webhook("Support connector", HOOK_URL, [CONDITIONAL_TICKET_EVENTS], secret=SECRET)
        s.add_trigger("Notify connector on every update", hook)

    code, report = doctor(site(configure), config_file, tmp_path)
    check = by_id(report)["zendesk.webhook"]
    assert check["status"] == "OK" and "trigger 'Notify connector on every update'" in check["found"]
    assert code == 0, failed(report)


def test_the_default_four_day_auto_close_can_beat_the_rules_auto_close(site, config_file, tmp_path):
    code, report = doctor(site(auto_close_after=timedelta(days=4)), config_file, tmp_path)
    check = by_id(report)["zendesk.auto_close"]
    assert check["status"] == "WARN" and "96 hours" in check["found"] and "follow-up ticket" in check["found"]
    assert "raise the automation's delay" in check["fix"]
    assert code == 0, failed(report)


def test_custom_statuses_are_read_by_their_category(site, config_file, tmp_path):
    code, report = doctor(site(lambda s: s.add_custom_status("hold", "Waiting for vendor")), config_file, tmp_path)
    check = by_id(report)["zendesk.statuses"]
    assert check["status"] == "WARN" and "'Waiting for vendor' as waiting_for_third_party" in check["found"]
    assert code == 0, failed(report)


@pytest.mark.parametrize("assignee,status,words", [
    ("alice@example.com", "OK", "is an agent in the routed group"),
    ("carl@customer.example", "FAIL", "only agents can be assigned"),
    ("bob@example.com", "FAIL", "in none of the groups"),
])
def test_an_assignee_the_rules_route_to_must_be_an_agent_in_the_group(site, tmp_path, assignee, status, words):
    config = tmp_path / "rules.yaml"
    config.write_text(config_text().replace("default: {group: L1}", f"default: {{group: L1, assignee: {assignee}}}"),
                      encoding="utf-8")
    code, report = doctor(site(), config, tmp_path)
    check = by_id(report)[f"zendesk.assignee.{assignee}"]
    assert check["status"] == status and words in check["found"], check
    assert set(failed(report)) == ({check["id"]} if status == "FAIL" else set())


def test_a_resource_that_cannot_be_read_fails_alone(site, config_file, tmp_path):
    sandbox = site()
    sandbox.inject(status=500, times=None, path_prefix="/api/v2/groups.json")
    code, report = doctor(sandbox, config_file, tmp_path)
    assert set(failed(report)) == {"zendesk.groups"}
    assert "could not be checked" in by_id(report)["zendesk.groups"]["found"]
    assert by_id(report)["zendesk.priorities"]["status"] == "OK"  # the other checks still ran
    assert code == 1


# --- the sandbox answers the doctor's reads as Zendesk does ---------------------------------------------


def test_sandbox_webhooks_and_incremental_export_need_an_admin(site):
    import requests

    sandbox = site(connector_role="agent")
    auth = (f"{sandbox.email}/token", sandbox.api_token)
    assert requests.get(sandbox.base_url + "/api/v2/webhooks", auth=auth).status_code == 403
    assert requests.get(sandbox.base_url + "/api/v2/triggers.json", auth=auth).status_code == 200  # agents may
    sandbox.set_connector_role("admin")
    answer = requests.get(sandbox.base_url + "/api/v2/webhooks", auth=auth).json()
    [hook] = answer["webhooks"]
    assert hook["endpoint"] == HOOK_URL and hook["status"] == "active" and "meta" in answer
    secret = requests.get(f"{sandbox.base_url}/api/v2/webhooks/{hook['id']}/signing_secret", auth=auth).json()
    assert secret["signing_secret"]["secret"] == SECRET


def test_sandbox_users_report_role_type_as_zendesk_does(site):
    import requests

    sandbox = site(lambda s: s.set_connector_role("agent", custom_role="Light agent"))
    auth = (f"{sandbox.email}/token", sandbox.api_token)
    me = requests.get(sandbox.base_url + "/api/v2/users/me.json", auth=auth).json()["user"]
    assert me["role"] == "agent" and me["role_type"] == 1 and me["custom_role_id"] is not None
    lead = requests.get(sandbox.base_url + "/api/v2/users/9011111111103.json", auth=auth).json()["user"]
    assert lead["role"] == "admin" and lead["role_type"] == 4


def test_sandbox_refuses_an_assignee_outside_the_group_like_zendesk(site):
    # facetoe/zenpy#628: 422 "Assignee: is not a member of the group"; the doctor's assignee check
    # exists because of it. Driven through zenpy, as the adapter sends it.
    from zenpy import Zenpy
    from zenpy.lib.api_objects import Ticket
    from zenpy.lib.exception import APIException

    from connector.sandbox.zendesk import AGENT, L2_AGENT

    sandbox = site()
    host, port = sandbox.base_url.removeprefix("http://").split(":")
    client = Zenpy(subdomain=host.split(".")[0], domain=".".join(host.split(".")[1:]) + f":{port}",
                   email=sandbox.email, token=sandbox.api_token, disable_cache=True)
    client.tickets.protocol = "http"
    ticket_id = sandbox.create_ticket("VPN drops", "Every 10 minutes")
    with pytest.raises(APIException) as refused:
        client.tickets.update(Ticket(id=ticket_id, group_id=GROUPS["L1"], assignee_id=L2_AGENT))
    assert "is not a member of the group" in str(refused.value)
    assert sandbox.ticket(ticket_id)["assignee_id"] is None  # nothing of the write landed
    client.tickets.update(Ticket(id=ticket_id, group_id=GROUPS["L1"], assignee_id=AGENT))
    assert sandbox.ticket(ticket_id)["assignee_id"] == AGENT


def test_a_custom_role_that_cannot_be_read_is_a_warning(site, config_file, tmp_path):
    def configure(s: ZendeskSandbox) -> None:
        s.set_connector_role("agent", custom_role="Staff")
        s.inject(status=403, times=None, path_prefix="/api/v2/custom_roles")  # e.g. not an Enterprise account

    code, report = doctor(site(configure), config_file, tmp_path)
    check = by_id(report)["zendesk.role"]
    assert check["status"] == "WARN" and "cannot read (403)" in check["found"] and "Roles" in check["fix"]
    assert code == 0, failed(report)


def test_a_dropdown_group_field_must_offer_every_routed_group(tmp_path, site):
    from connector.sandbox.zendesk_store import DEFAULT_CUSTOM_FIELDS, FieldOption, TicketField

    options = tuple(FieldOption(360098766001 + i, name, name.replace("-", "_"))
                    for i, name in enumerate(("L1", "L2", "network-team", "team-lead")))
    fields = (*DEFAULT_CUSTOM_FIELDS, TicketField(360051234599, "tagger", "Support group", options=options))
    config = tmp_path / "rules.yaml"
    config.write_text(config_text({}, extra="    group_field: Support group\n"), encoding="utf-8")
    code, report = doctor(site(custom_fields=fields), config, tmp_path)
    check = by_id(report)["zendesk.options.group"]
    assert check["status"] == "FAIL" and "no option 'billing'" in check["found"], check
    assert "platforms.zendesk.groups" in check["fix"]
    assert set(failed(report)) == {"zendesk.options.group"} and code == 1


def test_a_connector_account_that_is_not_the_token_user_warns(site, tmp_path):
    config = tmp_path / "rules.yaml"
    config.write_text(config_text(extra="    connector_account: someone-else@example.com\n"), encoding="utf-8")
    code, report = doctor(site(), config, tmp_path)
    check = by_id(report)["zendesk.connector_account"]
    assert check["status"] == "WARN" and "'someone-else@example.com'" in check["found"]
    assert "'9019999999901'" in check["fix"] and code == 0


def test_sandbox_light_agent_may_comment_privately_but_not_edit(site):
    import requests

    sandbox = site(lambda s: s.set_connector_role("agent", custom_role="Light agent"))
    auth = (f"{sandbox.email}/token", sandbox.api_token)
    ticket_id = sandbox.create_ticket("VPN drops", "Every 10 minutes")
    url = f"{sandbox.base_url}/api/v2/tickets/{ticket_id}.json"
    refused = requests.put(url, json={"ticket": {"status": "open", "comment": {"body": "on it"}}}, auth=auth)
    assert refused.status_code == 403 and sandbox.ticket(ticket_id)["status"] == "new"
    landed = requests.put(url, json={"ticket": {"comment": {"body": "looked at it", "public": True}}}, auth=auth)
    assert landed.status_code == 200
    assert [c["public"] for c in landed.json()["audit"]["events"] if c["type"] == "Comment"] == [False]


def test_problem_numbers_need_their_field_only_when_switched_on(site, config_file, tmp_path):
    off = by_id(doctor(site(), config_file, tmp_path)[1])
    assert "zendesk.field.problem_number" not in off  # the shipped rule is off: nothing asked of the site
    config_file.write_text(config_file.read_text(encoding="utf-8").replace(
        "type: problem-number\n    enabled: false", "type: problem-number\n    enabled: true"), encoding="utf-8")
    checks = assert_passes(*doctor(site(), config_file, tmp_path), ("zendesk.field.problem_number",))
    assert checks["zendesk.field.problem_number"]["status"] == "OK"
    code, report = doctor(site(lambda s: s.remove_field("Problem number")), config_file, tmp_path)
    missing = by_id(report)["zendesk.field.problem_number"]
    assert code == 1 and missing["status"] == "FAIL" and "problem-number" in missing["found"]


def test_review_gate_needs_its_reviewer_and_change_type_fields(site, config_file, tmp_path):
    checks = assert_passes(*doctor(site(), config_file, tmp_path), ("zendesk.field.reviewer", "zendesk.field.change_type"))
    assert checks["zendesk.field.change_type"]["status"] == "OK"
    code, report = doctor(site(lambda s: s.remove_field("Change type")), config_file, tmp_path)
    missing = by_id(report)["zendesk.field.change_type"]
    assert code == 1 and missing["status"] == "FAIL" and "review-gate" in missing["found"]
