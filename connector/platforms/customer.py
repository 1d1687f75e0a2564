"""Who the customer behind a ticket is: its organizations and the requester's e-mail domain.

Per-customer service levels (`when.organizations`, `when.email_domains`, see
`connector.rules.tiers`) need both. Only the DOMAIN of the requester's e-mail is kept – the
address itself never reaches the `Ticket`, a log line or a report. What the platform does
not tell stays None (unknown), and an unknown customer matches no customer-specific
condition (fail closed):

- Jira Service Management: organizations are the "Organizations" custom field (custom type
  `com.atlassian.servicedesk:sd-customer-organizations`, an array of
  `sd-customerorganization`), each value an organization as JSM's Organization resource
  shows it, `{"id", "name", "_links"}`
  (https://developer.atlassian.com/cloud/jira/service-desk/rest/api-group-organization/);
  a site without the field (plain Jira) gives None. The reporter's `emailAddress` "may be
  returned as null" depending on the user's privacy setting on Cloud (User schema of the
  Jira Cloud platform REST API, specs/jira-platform.openapi.json): then None.
- Zendesk: the ticket's `organization_id` names one organization, resolved to its name
  through the `organizations` side-load of the ticket show; the requester's e-mail comes
  from the `users` side-load (`GET /api/v2/tickets/{id}.json?include=users,organizations`,
  https://developer.zendesk.com/documentation/ticketing/using-the-zendesk-api/side_loading/).
  A null `organization_id` is known: no organization, (). An id whose side-load is missing
  is unknown: None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def email_domain(address: Any) -> str | None:
    """The domain of an e-mail address, folded ('Li.Wei@EU.Example.com' -> 'eu.example.com');
    None for anything that is not an address."""
    if not isinstance(address, str) or address.count("@") != 1:
        return None
    local, domain = address.strip().split("@")
    domain = domain.strip().rstrip(".").casefold()
    if not local or not domain or "." not in domain or any(c.isspace() for c in domain):
        return None
    return domain


def jira_organizations(value: Any) -> tuple[str, ...] | None:
    """Names from the value of JSM's Organizations field; None when it is not such a value."""
    if value is None:
        return ()
    if not isinstance(value, list):
        return None
    names = []
    for item in value:
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str) or not name.strip():
            return None  # an organization we cannot name: do not guess the rest
        names.append(name.strip())
    return tuple(dict.fromkeys(names))


def zendesk_organizations(ticket: Mapping[str, Any], organizations: Iterable[Mapping[str, Any]] | None
                          ) -> tuple[str, ...] | None:
    """The name of the ticket's organization from the `organizations` side-load."""
    org_id = ticket.get("organization_id")
    if org_id is None:
        return ()
    for organization in organizations or ():
        if str(organization.get("id")) == str(org_id) and isinstance(organization.get("name"), str):
            return (organization["name"],)
    return None


def zendesk_requester_domain(ticket: Mapping[str, Any], users: Iterable[Mapping[str, Any]] | None) -> str | None:
    """The requester's e-mail domain from the `users` side-load."""
    requester = ticket.get("requester_id")
    if requester is None:
        return None
    for user in users or ():
        if str(user.get("id")) == str(requester):
            return email_domain(user.get("email"))
    return None
