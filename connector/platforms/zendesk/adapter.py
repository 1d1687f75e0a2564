"""The Zendesk adapter: two reads per reconcile, one ticket update per plan (two at most).

API calls are the scarce resource (Zendesk allows 200–2,500 requests a minute per account
and 30 updates of one ticket per 10 minutes), so the adapter is built around counting
them. `ZendeskAdapter` is the `PlatformAdapter` the worker, the sweep and `connector
doctor` use; it speaks the support domain and hands each job to its own module:

- `client.py` – the one place that talks HTTP (zenpy's request path on our own session,
  the shared `RetryPolicy`, errors translated into the taxonomy of `platforms/base.py`,
  the per-ticket update limit);
- `read.py` – `fetch`: the ticket, then its audits (one request for a settled ticket);
- `ticket.py` – parsing Zendesk's ticket JSON into a `Ticket`;
- `write.py` – `apply`: one safe update (two at most, `update.py`), a follow-up ticket
  for a closed one (`follow_up.py`);
- `search.py` – the Search API, its export past 1,000 results, the incremental export;
- `fields.py` – the ticket-field catalogue and value shapes.

Webhooks are not here: `webhooks/` receives them and only queues a reconcile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from connector.model import Plan, Platform, Ticket
from connector.platforms.base import ApplyResult, RetryPolicy, Unchanged
from connector.platforms.mapping import PlatformMapping
from connector.platforms.zendesk.client import (
    PLATFORM,
    TICKET_UPDATE_LIMIT,
    TICKET_UPDATE_WINDOW,
    UpdateLimiter,
    ZendeskClient,
)
from connector.platforms.zendesk.fields import TicketFieldCatalogue
from connector.platforms.zendesk.read import TicketReader
from connector.platforms.zendesk.search import (
    INCREMENTAL_PAGE_SIZE,
    IncrementalPage,
    incremental_tickets,
    search_tickets,
)
from connector.platforms.zendesk.write import TicketWriter
from connector.settings import Settings


class ZendeskAdapter:
    """`PlatformAdapter` for Zendesk Support."""

    platform: Platform = PLATFORM

    def __init__(
        self,
        base_url: str,
        email: str,
        token: str,
        mapping: PlatformMapping,
        *,
        policy: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        clock: Callable[[], float] = time.monotonic,
        update_limit: int = TICKET_UPDATE_LIMIT,
        update_window: float = TICKET_UPDATE_WINDOW,
    ) -> None:
        """Build the client; no request is sent until a method needs one.

        `base_url` is the account URL, `https://acme.zendesk.com`, or any other base URL
        serving the same API (`http://127.0.0.1:8080`, a proxy path). `clock` (seconds,
        monotonic) times the per-ticket update limit.
        """
        updates = UpdateLimiter(update_limit, update_window, clock)
        self.client = ZendeskClient(base_url, email, token, policy=policy, timeout=timeout, updates=updates)
        self._reader = TicketReader(self.client, mapping)
        self._writer = TicketWriter(self.client, mapping)

    @property
    def base_url(self) -> str:
        """The account URL requests go to (no credentials in it)."""
        return self.client.base_url

    @classmethod
    def from_settings(cls, settings: Settings, mapping: PlatformMapping, **kwargs: Any) -> ZendeskAdapter:
        if not settings.zendesk_url or not settings.zendesk_email or not settings.zendesk_token:
            raise ValueError("ZENDESK_URL, ZENDESK_EMAIL and ZENDESK_TOKEN must be set to talk to Zendesk")
        return cls(settings.zendesk_url, settings.zendesk_email, settings.zendesk_token, mapping, **kwargs)

    # --- reading ---------------------------------------------------------------------

    def fetch(self, ticket_id: str) -> Ticket:
        """The ticket with its status history and comments: the ticket, then its audits."""
        return self._reader.fetch(ticket_id)

    def fetch_if_changed(self, ticket_id: str,
                         settled: Callable[[datetime | None], bool]) -> Ticket | Unchanged:
        """`fetch`, stopping after the ticket read when `settled(updated_at)` says nothing can
        have changed since the last reconcile (see `read.TicketReader.fetch_if_changed`)."""
        return self._reader.fetch_if_changed(ticket_id, settled)

    def parse(self, raw: dict[str, Any], *, audits: list[dict[str, Any]] | None = None,
              users: list[dict[str, Any]] | None = None, organizations: list[dict[str, Any]] | None = None) -> Ticket:
        """A raw ticket (from search or fetch) as the rules see it."""
        return self._reader.parse(raw, audits=audits, users=users, organizations=organizations)

    def search(self, query: str, fields: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
        """Raw tickets matching a Zendesk search `query`, one page per request, fetched as consumed."""
        return search_tickets(self.client, query, fields)

    def incremental_tickets(
        self,
        start_time: int | datetime | None = None,
        cursor: str | None = None,
        *,
        per_page: int = INCREMENTAL_PAGE_SIZE,
    ) -> Iterator[IncrementalPage]:
        """Tickets changed since `start_time` (or since `cursor`), a page per request."""
        return incremental_tickets(self.client, start_time, cursor, per_page=per_page)

    # --- writing ---------------------------------------------------------------------

    def apply(self, ticket: Ticket, plan: Plan) -> ApplyResult:
        """Write what `plan` asks and `ticket` does not already show, in one update (two at most)."""
        return self._writer.apply(ticket, plan)

    # --- configuration reads (connector doctor) --------------------------------------------

    def read_json(self, operation: str, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One GET of `{ZENDESK_URL}/api/v2/{path}` under the retry policy, as parsed JSON.

        For `connector doctor`, which reads the account's configuration (the user, fields,
        groups, webhooks, triggers …) through the same auth, retries and error taxonomy as
        the adapter, and must never write: there is deliberately no method for other verbs."""
        return self.client.get(operation, path, params)

    def read_list(self, operation: str, path: str, key: str, params: Mapping[str, Any] | None = None,
                  *, limit: int = 1000) -> list[dict[str, Any]]:
        """Every item under `key` of a paged listing (cursor or offset), at most `limit`."""
        return self.client.read_list(operation, path, key, params, limit=limit)

    def field_catalogue(self) -> TicketFieldCatalogue:
        """The account's ticket fields (`GET /api/v2/ticket_fields.json`, read once per adapter)."""
        return self.client.catalogue()
