"""Reading Zendesk tickets: two requests per fetch (one for a settled ticket).

`GET /api/v2/tickets/{id}.json` gives the current fields, tags and `updated_at`;
`GET /api/v2/tickets/{id}/audits.json?include=users&page[size]=100` gives the status
history (Create/Change events) and every comment with its author, visibility and body,
plus the authors as a sideload – so the comments endpoint is not needed. The ticket show
cannot be dropped: audits record changes, not state, so current custom-field values, tags
and the exact `updated_at` (the safe-update stamp) would have to be replayed from every
event ever written, and no audit sideload returns the ticket. The ticket is read first: a
change landing between the two reads makes the stamp stale, so the write is refused with
409 and re-reconciled rather than based on a mixed picture. Audits are paged (cursor, 100
a page) only when a ticket has more. The ticket-field catalogue, needed to resolve the
field titles a mapping uses, is read once per adapter and only when the mapping names a
field by title. `fetch` of a closed ticket with follow-ups reads their tags (one more
request), where the connector put the markers it could not write to the closed ticket.

Parsing the ticket JSON into a `Ticket` is `ticket.py`'s job; this module only gathers it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from connector.model import Ticket
from connector.platforms.base import Unchanged
from connector.platforms.mapping import PlatformMapping
from connector.platforms.zendesk.client import ZendeskClient, ticket_ref
from connector.platforms.zendesk.ticket import parse_zendesk_ticket
from connector.timefmt import parse_instant


class TicketReader:
    """Fetches and parses tickets for one mapping."""

    def __init__(self, client: ZendeskClient, mapping: PlatformMapping) -> None:
        self._client = client
        self._mapping = mapping

    def fetch(self, ticket_id: str) -> Ticket:
        """The ticket with its status history and comments: the ticket, then its audits."""
        ref = ticket_ref(ticket_id)
        return self._with_audits(ref, *self._client.show_ticket(ref))

    def fetch_if_changed(self, ticket_id: str,
                         settled: Callable[[datetime | None], bool]) -> Ticket | Unchanged:
        """`fetch`, stopping after the ticket read when `settled(updated_at)` says nothing can
        have changed since the last reconcile (a redelivered webhook, a repeated event): one
        request instead of two. Audits record changes, and every change (comment, field, tag,
        status) moves `updated_at` – the stamp Zendesk's own safe update compares
        (`updated_stamp`, Tickets API "Protecting against ticket update collisions"). Stamps
        are whole seconds, so a ticket is only ever settled by a whole read (ticket and
        audits) taken at least a second after its stamp, never by a write's answer
        (`connector.reconcile._settlement`): a comment made in the same second as our write
        shares that stamp and would be skipped."""
        ref = ticket_ref(ticket_id)
        raw, sideloads = self._client.show_ticket(ref)
        try:
            updated = parse_instant(raw.get("updated_at"))
        except ValueError:
            updated = None
        if updated is not None and settled(updated):
            return Unchanged(ticket_id, updated)
        return self._with_audits(ref, raw, sideloads)

    def _with_audits(self, ref: str, raw: dict[str, Any], sideloads: dict[str, list]) -> Ticket:
        audits: list[dict[str, Any]] = []
        users: dict[str, dict[str, Any]] = {str(user.get("id")): user for user in sideloads["users"]}
        for page in self._client.audit_pages(ref):
            audits.extend(page.get("audits") or ())
            for user in page.get("users") or ():
                users.setdefault(str(user.get("id")), user)
        if str(raw.get("status") or "").casefold() == "closed" and raw.get("followup_ids"):
            raw = {**raw, "tags": self._with_follow_up_tags(raw)}
        return self.parse(raw, audits=audits, users=list(users.values()), organizations=sideloads["organizations"])

    def _with_follow_up_tags(self, raw: Mapping[str, Any]) -> list[str]:
        """A closed ticket's tags plus those its follow-ups added (where the connector puts the
        markers of what it could no longer write to the closed ticket). One more request, only
        for closed tickets that have follow-ups."""
        own = [str(tag) for tag in raw.get("tags") or ()]
        ids = [str(i) for i in raw.get("followup_ids") or () if str(i).isdigit()][:100]
        found = self._client.show_many(ids)
        added = {str(tag) for follow_up in found.get("tickets") or () for tag in follow_up.get("tags") or ()}
        return own + sorted(added - set(own))

    def parse(self, raw: dict[str, Any], *, audits: list[dict[str, Any]] | None = None,
              users: list[dict[str, Any]] | None = None, organizations: list[dict[str, Any]] | None = None) -> Ticket:
        """A raw ticket (from search or fetch) as the rules see it; without audits it has no
        status history or comments beyond what the ticket object itself carries."""
        catalogue = self._client.catalogue().raw if self._needs_catalogue(raw) else None
        return parse_zendesk_ticket(raw, self._mapping, audits=audits, users=users, ticket_fields=catalogue,
                                    base_url=self._client.base_url, organizations=organizations)


    def _needs_catalogue(self, raw: Mapping[str, Any]) -> bool:
        """True when the mapping names a field by title (the parser then needs the catalogue)."""
        refs = [*self._mapping.fields.values(), self._mapping.category_field, self._mapping.group_field]
        return any(not ref.isdigit() and (ref not in raw or ref in ("custom_fields", "fields")) for ref in refs)
