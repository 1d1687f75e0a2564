"""The Jira adapter: one read per reconcile; per plan a comment post each, one edit, a transition.

API calls are the scarce resource (rate limits are per site and shared with every other
integration), so the adapter is built around counting them. `JiraAdapter` is the
`PlatformAdapter` the worker, the sweep and `connector doctor` use; it speaks the support
domain and hands each job to its own module:

- `client.py` – the one place that talks HTTP (the `jira` library's session, the shared
  `RetryPolicy`, errors translated into the taxonomy of `platforms/base.py`);
- `read.py` – `fetch`: ONE request per issue, completed only where Jira cut a list short;
- `issue.py` – parsing Jira's issue JSON into a `Ticket`;
- `approvals.py` – a request's Jira Service Management approvals, read only on demand;
- `users.py` – a reporter's locale (`GET /user`), read only on demand, once per reporter;
- `write.py` – `apply`: a comment post each, ONE edit, then `transition.py`'s transition;
- `search.py` – JQL search, paged as consumed;
- `fields.py`, `workflow.py` – the field catalogue and value shapes; what a fetch said
  about the workflow position, kept for the apply.

Webhooks are not here: `webhooks/` receives them and only queues a reconcile.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from connector.model import Approval, Plan, Platform, Ticket
from connector.platforms.base import ApplyResult, RetryPolicy
from connector.platforms.jira.approvals import ApprovalReader
from connector.platforms.jira.client import PLATFORM, JiraClient
from connector.platforms.jira.fields import FieldCatalogue
from connector.platforms.jira.read import IssueReader
from connector.platforms.jira.search import SEARCH_PAGE_SIZE, rule_fields, search_issues
from connector.platforms.jira.users import ReporterLocales
from connector.platforms.jira.workflow import FetchMemory
from connector.platforms.jira.write import IssueWriter
from connector.platforms.mapping import PlatformMapping
from connector.settings import Settings


class JiraAdapter:
    """`PlatformAdapter` for Jira Cloud and Data Center."""

    platform: Platform = PLATFORM

    def __init__(
        self,
        base_url: str,
        user: str | None,
        token: str,
        mapping: PlatformMapping,
        *,
        deployment: str | None = None,
        policy: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (5.0, 30.0),
    ) -> None:
        """Build the client; no request is sent until a method needs one.

        `user` set means Jira Cloud style basic auth (e-mail + API token); `user` None means a
        Data Center personal access token sent as `Authorization: Bearer`. `deployment`
        ("Cloud", "Server" or "DataCenter") saves the one `serverInfo` request that
        otherwise tells them apart when it first matters (assignee shape, search, changelog).
        """
        self.client = JiraClient(base_url, user, token, deployment=deployment, policy=policy, timeout=timeout)
        self._mapping = mapping
        fetched = FetchMemory()
        self._reader = IssueReader(self.client, mapping, fetched)
        self._writer = IssueWriter(self.client, mapping, fetched)
        self._approvals = ApprovalReader(self.client)
        self._locales = ReporterLocales(self.client)

    @classmethod
    def from_settings(cls, settings: Settings, mapping: PlatformMapping, **kwargs: Any) -> JiraAdapter:
        if not settings.jira_url or not settings.jira_token:
            raise ValueError("JIRA_URL and JIRA_TOKEN must be set to talk to Jira")
        return cls(settings.jira_url, settings.jira_user, settings.jira_token, mapping, **kwargs)

    # --- reading ---------------------------------------------------------------------

    def fetch(self, ticket_id: str) -> Ticket:
        """The issue with its status history, comments and available transitions (one request)."""
        return self._reader.fetch(ticket_id)

    def parse(self, raw: dict[str, Any]) -> Ticket:
        """A raw issue (from search or fetch) as the rules see it."""
        return self._reader.parse(raw)

    def approvals(self, ticket: Ticket) -> tuple[Approval, ...]:
        """The issue's Jira Service Management approvals (one more request per page; () for a
        project without approvals, remembered). Asked only when a rule's outcome depends on
        them (`connector.approvals`); see `approvals.ApprovalReader`."""
        return self._approvals.approvals(ticket)

    def reporter_locale(self, ticket: Ticket) -> str | None:
        """The reporter's locale ("zh_CN"), which the issue's embedded reporter lacks (one more
        request per reporter per process; None when the site does not tell or the read fails).
        Asked only when a rule's outcome depends on it (`connector.locales`); see
        `users.ReporterLocales`."""
        return self._locales.reporter_locale(ticket)

    def complete_listed(self, raws: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Search results whose embedded changelog or comments are cut short, completed
        (see `read.IssueReader.complete_listed`)."""
        return self._reader.complete_listed(raws)

    def search(
        self, query: str, fields: Sequence[str] | None = None, page_size: int = SEARCH_PAGE_SIZE,
        expand: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Raw issues matching the JQL `query`, one page per request, fetched as consumed."""
        return search_issues(self.client, query, fields, page_size, expand)

    def rule_fields(self, base: Sequence[str]) -> list[str]:
        """`base` plus the field ids of everything the mapping reads: what a search must
        return for the rules to be evaluated on its results."""
        return rule_fields(self.client, self._mapping, base)

    # --- writing ---------------------------------------------------------------------

    def apply(self, ticket: Ticket, plan: Plan) -> ApplyResult:
        """Write what `plan` asks and `ticket` does not already show (see `write.py`)."""
        return self._writer.apply(ticket, plan)

    # --- read-only inspection of the site (connector doctor) -----------------------------

    def read_json(self, operation: str, path: str, params: Mapping[str, Any] | None = None, *,
                  api: str = "rest/api/2") -> Any:
        """One GET of `{server}/{api}/{path}` under the retry policy, as parsed JSON.

        For `connector doctor`, which reads the site's configuration (permissions, statuses,
        priorities, webhooks …) through the same auth, retries and error taxonomy as the
        adapter, and must never write: there is deliberately no method for other verbs."""
        return self.client.read_json(operation, path, params, api=api)

    def field_catalogue(self) -> FieldCatalogue:
        """The site's fields (`GET /field`, read once per adapter)."""
        return self.client.catalogue()

    def is_cloud(self) -> bool:
        return self.client.is_cloud()
