"""Reading a "ticket JSON" file – a platform's own REST representation saved to disk.

`connector simulate --ticket-json FILE` lets an admin dry-run the rules against a real
ticket before the connector touches anything. The file is whatever the admin could save
from the API, so this module accepts the platform's own shapes rather than a format of
ours, and says precisely what is wrong when a file is not one of them:

- Jira: the issue from `GET /rest/api/2/issue/{key}?expand=changelog,names`, or
  `{"issue": <that>, "fields_catalogue": <GET /rest/api/2/field>}` when the issue was
  fetched without `names` and the mapping refers to fields by display name.
- Zendesk: `{"ticket": {...}, "users": [...], "ticket_fields": [...], "audits": [...],
  "comments": [...]}` – the show response with `include=users` sideloads, plus the
  lists of the audits, comments and ticket-fields endpoints (all but "ticket" optional).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.model import Ticket
from connector.platforms.field_values import MalformedTicketError
from connector.platforms.jira.issue import parse_jira_issue
from connector.platforms.mapping import PlatformMapping
from connector.platforms.zendesk.ticket import parse_zendesk_ticket

JIRA_SHAPE = (
    'the issue object of GET /rest/api/2/issue/{key}?expand=changelog,names (with "id", "key", "fields"), '
    'or {"issue": <that issue>, "fields_catalogue": <the list from GET /rest/api/2/field>}'
)
ZENDESK_SHAPE = (
    '{"ticket": <the ticket of GET /api/v2/tickets/{id}.json>, "audits": [...], "comments": [...], '
    '"users": [...], "organizations": [...], "ticket_fields": [...]} (all but "ticket" optional)'
)
ZENDESK_LISTS = ("audits", "comments", "users", "ticket_fields", "organizations")


def load_ticket_json(
    platform: str, data: dict, mapping: PlatformMapping, *, base_url: str | None = None
) -> Ticket:
    """Parse a saved ticket of `platform` ("jira" or "zendesk"); ValueError says what is wrong."""
    if not isinstance(data, Mapping):
        raise MalformedTicketError(f"a ticket JSON file must hold a JSON object, found {type(data).__name__}")
    if platform == "jira":
        return _load_jira(data, mapping, base_url)
    if platform == "zendesk":
        return _load_zendesk(data, mapping, base_url)
    raise ValueError(f"unknown platform {platform!r}; expected 'jira' or 'zendesk'")


def _load_jira(data: Mapping[str, Any], mapping: PlatformMapping, base_url: str | None) -> Ticket:
    if "issue" in data:
        issue = data["issue"]
        catalogue = data.get("fields_catalogue") or []
        if not isinstance(catalogue, list) or not all(
            isinstance(field, Mapping) and "id" in field and "name" in field for field in catalogue
        ):
            raise MalformedTicketError(
                '"fields_catalogue" must be the list GET /rest/api/2/field returns: objects with "id" and "name"'
            )
        field_names = {str(field["id"]): str(field["name"]) for field in catalogue}
    else:
        issue, field_names = data, {}
    if not isinstance(issue, Mapping) or "fields" not in issue or "key" not in issue:
        raise MalformedTicketError(f'this is not a Jira issue: "key" or "fields" is missing; expected {JIRA_SHAPE}')
    return parse_jira_issue(dict(issue), mapping, base_url=base_url, field_names=field_names)


def _load_zendesk(data: Mapping[str, Any], mapping: PlatformMapping, base_url: str | None) -> Ticket:
    ticket = data.get("ticket")
    if not isinstance(ticket, Mapping):
        hint = ' (this looks like a bare ticket object; wrap it as {"ticket": ...})' if "status" in data else ""
        raise MalformedTicketError(f'"ticket" is missing{hint}; expected {ZENDESK_SHAPE}')
    lists: dict[str, list[dict] | None] = {}
    for name in ZENDESK_LISTS:
        value = data.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(item, Mapping) for item in value)):
            raise MalformedTicketError(f'"{name}" must be a list of objects; expected {ZENDESK_SHAPE}')
        lists[name] = value
    return parse_zendesk_ticket(dict(ticket), mapping, base_url=base_url, **lists)
