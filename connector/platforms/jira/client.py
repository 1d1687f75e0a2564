"""The one place that talks HTTP to Jira: one short method per REST operation the adapter uses.

It is built on the `jira` library for authentication (basic auth with an e-mail and API
token on Cloud, a bearer personal access token on Data Center), its JSON error parsing and
its search helpers. The library's own retries are off (`max_retries=0`: ResilientSession
then sends once and never sleeps), every request goes through the shared `RetryPolicy`,
and library exceptions become the taxonomy in `platforms/base.py`. Three requests have no
public library call that sends exactly that one request (an edit without the reload and
"autofix" of `Issue.update`, a transition with a string id, a changelog page); they go
through the library's own session, so auth, headers and error parsing stay the same.
The library's logger is set to CRITICAL because it logs response bodies on bad JSON.

The client also keeps what is read once per process: the field catalogue, whether the
site is Cloud or Data Center, and the connector account's own ids.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import requests
from jira import JIRA
from jira.exceptions import JIRAError

from connector.model import Platform
from connector.platforms.base import NotFound, PlatformError, RetryPolicy, error_from_response, refuse_redirects
from connector.platforms.jira.fields import FieldCatalogue
from connector.platforms.transport import call_platform, count_answer, failure_without_answer
from connector.scrub import error_text

T = TypeVar("T")

PLATFORM: Platform = "jira"
REST_V2 = "rest/api/2"
SERVICEDESK_API = "rest/servicedeskapi"
# A numeric issue id or a key such as SUP-42; anything else must not reach a URL path.
_ISSUE_REF = re.compile(r"^(?:\d+|[A-Za-z][A-Za-z0-9_]*-\d+)$")


def issue_ref(ticket_id: str) -> str:
    """`ticket_id` if it is an issue key or id, else NotFound (nothing reaches a URL unchecked)."""
    text = str(ticket_id).strip()
    if not _ISSUE_REF.match(text):
        raise NotFound("not a Jira issue key or id", platform=PLATFORM)
    return text


class JiraClient:
    """Jira's REST API v2 (and the one v3 bulk endpoint) under the retry policy.

    Reads return Jira's JSON; writes return the path they wrote to, which `ApplyResult.writes`
    records (`PUT /rest/api/2/issue/SUP-42`)."""

    def __init__(
        self,
        base_url: str,
        user: str | None,
        token: str,
        *,
        deployment: str | None = None,
        policy: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (5.0, 30.0),
    ) -> None:
        if not base_url or not token:
            raise ValueError("JiraAdapter needs a base URL and a token")
        self.base_url = base_url.rstrip("/")
        self._policy = policy or RetryPolicy()
        auth: dict[str, Any] = {"basic_auth": (user, token)} if user else {"token_auth": token}
        self.lib = JIRA(
            server=self.base_url,
            get_server_info=False,
            max_retries=0,
            timeout=timeout,
            logging=False,
            **auth,
        )
        self.lib._session.hooks["response"].append(_count_response)
        refuse_redirects(self.lib._session)
        self._lock = threading.RLock()
        self._deployment: str | None = None
        if deployment is not None:
            self._set_deployment(deployment)
        self._catalogue: FieldCatalogue | None = None
        # The connector account's own ids from GET /myself, asked at most once per process.
        self._own_ids: frozenset[str] | None = None

    # --- issues ------------------------------------------------------------------------

    def get_issue(self, ref: str, expand: str) -> dict[str, Any]:
        return self.call("issue.get", "GET", lambda: self.lib.issue(ref, expand=expand).raw, idempotent=True)

    def changelog_page(self, ref: str, start: int, size: int) -> dict[str, Any]:
        """`GET /issue/{key}/changelog` (Cloud only), oldest first."""
        return self.call("issue.changelog", "GET", lambda: self.lib._get_json(
            f"issue/{ref}/changelog", params={"startAt": start, "maxResults": size}), idempotent=True)

    def comment_page(self, ref: str, start: int, size: int) -> dict[str, Any]:
        """`GET /issue/{key}/comment`, oldest first."""
        return self.call("issue.comments", "GET", lambda: self.lib._get_json(
            f"issue/{ref}/comment", params={"startAt": start, "maxResults": size, "orderBy": "created"}),
            idempotent=True)

    def approval_page(self, ref: str, start: int, limit: int) -> dict[str, Any]:
        """`GET /rest/servicedeskapi/request/{key}/approval` (Jira Service Management), paged
        with `start` / `limit`; `isLastPage` says when to stop."""
        return self.call("request.approvals", "GET", lambda: self.lib._get_json(
            f"request/{ref}/approval", params={"start": start, "limit": limit},
            base="{server}/" + SERVICEDESK_API + "/{path}"), idempotent=True)

    def get_user(self, params: Mapping[str, str]) -> dict[str, Any]:
        """`GET /rest/api/2/user?accountId=…` (Cloud) or `?username=…` / `?key=…` (Data Center):
        the full User, with `locale`. Not the library's `user()`, which pastes the id into the
        URL unencoded (a username with `&` or `+` would ask for someone else)."""
        return self.call("user.get", "GET", lambda: self.lib._get_json("user", params=dict(params)),
                         idempotent=True)

    def bulk_changelog_page(self, issue_ids: Sequence[str], size: int, token: str | None) -> dict[str, Any]:
        """`POST /rest/api/3/changelog/bulkfetch` (Cloud): a read, although it is a POST."""
        url = self.lib._get_url("changelog/bulkfetch", base="{server}/rest/api/3/{path}")
        body: dict[str, Any] = {"issueIdsOrKeys": list(issue_ids), "maxResults": size}
        if token:
            body["nextPageToken"] = token
        return self.call("changelog.bulkfetch", "POST",
                         lambda: self.lib._session.post(url, data=json.dumps(body)).json(), idempotent=True)

    def add_comment(self, ref: str, body: str, *, internal: bool) -> dict[str, Any]:
        # Not idempotent: a resent POST may add the comment twice.
        return self.call("issue.comment", "POST",
                         lambda: self.lib.add_comment(ref, body, is_internal=internal).raw, idempotent=False)

    def delete_comment(self, ref: str, comment_id: str) -> str:
        path = f"issue/{ref}/comment/{comment_id}"
        self.call("issue.comment.delete", "DELETE", lambda: self.send("DELETE", path), idempotent=True)
        return path

    def edit_issue(self, ref: str, body: dict[str, Any]) -> str:
        path = f"issue/{ref}"
        # Fields and labels only: setting them twice leaves the same issue.
        self.call("issue.edit", "PUT", lambda: self.send("PUT", path, body), idempotent=True)
        return path

    def transitions(self, ref: str, transition_id: str | None = None) -> list[dict[str, Any]]:
        """The transitions the workflow offers now, with their screens' fields."""
        return self.call("issue.transitions", "GET", lambda: self.lib.transitions(
            ref, id=transition_id, expand="transitions.fields"), idempotent=True)

    def transition_issue(self, ref: str, body: dict[str, Any]) -> str:
        path = f"issue/{ref}/transitions"
        # Not idempotent: a resent transition may run its post-functions twice.
        self.call("issue.transition", "POST", lambda: self.send("POST", path, body), idempotent=False)
        return path

    # --- search --------------------------------------------------------------------------

    def search_jql_page(self, query: str, token: str | None, size: int, fields: Sequence[str],
                        expand: str | None) -> dict[str, Any]:
        """`/search/jql` with `nextPageToken` (Cloud; the old `/search` answers 410 there)."""
        return self.call("search.jql", "GET", lambda: self.lib.enhanced_search_issues(
            query, nextPageToken=token, maxResults=size, fields=list(fields), expand=expand,
            json_result=True), idempotent=True)

    def search_page(self, query: str, start: int, size: int, fields: Sequence[str],
                    expand: str | None) -> dict[str, Any]:
        """`/search` with `startAt` (Data Center)."""
        return self.call("search", "GET", lambda: self.lib.search_issues(
            query, startAt=start, maxResults=size, fields=list(fields), expand=expand,
            json_result=True), idempotent=True)

    # --- the site, read once per process -------------------------------------------------

    def catalogue(self) -> FieldCatalogue:
        with self._lock:
            if self._catalogue is None:
                raw = self.call("field.list", "GET", self.lib.fields, idempotent=True)
                self._catalogue = FieldCatalogue(raw)
                # Same table the library would build from a GET /field of its own.
                self.lib._fields_cache_value = self._catalogue.clause_ids()
            return self._catalogue

    def known_field_names(self) -> dict[str, str] | None:
        """Field id -> display name if the catalogue was read already; no request."""
        return self._catalogue.names() if self._catalogue else None

    def is_cloud(self) -> bool:
        with self._lock:
            if self._deployment is None:
                info = self.call("server.info", "GET", self.lib.server_info, idempotent=True)
                self._set_deployment(str(info.get("deploymentType") or "Server"))
            return self._deployment == "Cloud"

    def _set_deployment(self, deployment: str) -> None:
        self._deployment = deployment
        # The library's Cloud-only helpers (enhanced_search_issues) check this attribute.
        self.lib.deploymentType = deployment

    def own_ids(self) -> frozenset[str] | None:
        """The connector account's ids if `myself` was asked already; no request."""
        with self._lock:
            return self._own_ids

    def myself(self) -> frozenset[str]:
        """The connector account's ids (`GET /myself`, asked once per process)."""
        with self._lock:
            if self._own_ids is not None:
                return self._own_ids
        me = self.call("myself", "GET", self.lib.myself, idempotent=True)
        ids = frozenset(str(me[k]) for k in ("accountId", "name", "key") if isinstance(me, Mapping) and me.get(k))
        with self._lock:
            self._own_ids = ids
        return ids

    def read_json(self, operation: str, path: str, params: Mapping[str, Any] | None = None, *,
                  api: str = REST_V2) -> Any:
        """One GET of `{server}/{api}/{path}` under the retry policy, as parsed JSON (read-only
        inspection for `connector doctor`; there is deliberately no method for other verbs)."""
        url = self.lib._get_url(path, base="{server}/" + api + "/{path}")
        return self.call(operation, "GET", lambda: self.lib._session.get(url, params=dict(params or {})).json(),
                         idempotent=True)

    # --- plumbing ------------------------------------------------------------------------

    def call(self, operation: str, method: str, fn: Callable[[], T], *, idempotent: bool) -> T:
        """One HTTP request under the retry policy, with library errors translated."""
        return call_platform(self._policy, PLATFORM, operation, fn, lambda exc: _translate(exc, method), idempotent=idempotent)

    def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        url = self.lib._get_url(path)
        # ResilientSession raises JIRAError for any non-2xx answer.
        if body is None:
            self.lib._session.request(method, url)
        else:
            self.lib._session.request(method, url, data=json.dumps(body))


def _translate(exc: Exception, method: str) -> PlatformError | None:
    if isinstance(exc, JIRAError):
        return _from_jira_error(exc)
    if isinstance(exc, requests.RequestException):
        return failure_without_answer(exc, platform=PLATFORM, method=method)
    return None


def _from_jira_error(exc: JIRAError) -> PlatformError:
    # `exc.text` is Jira's reason, or the whole body of an answer that is not Jira's JSON (a
    # proxy's page may echo the request with its Authorization header); PlatformError
    # scrubs and cuts it. Never str(exc): the jira library prints the request headers.
    if exc.status_code is None:
        return PlatformError(exc.text or "the jira library reported an error", platform=PLATFORM)
    headers = exc.response.headers if exc.response is not None else None
    error = error_from_response(exc.status_code, headers, exc.text or "", platform=PLATFORM)
    # Jira names refused fields in `errors` ({"customfield_10059": "Field … cannot be set …"}).
    try:
        payload = exc.response.json() if exc.response is not None else None
    except ValueError:
        payload = None
    errors = payload.get("errors") if isinstance(payload, dict) else None
    # Scrubbed and cut like the message (connector.scrub): they end up in warnings and logs.
    error.field_errors = ({error_text(str(k), 100): error_text(str(v)) for k, v in list(errors.items())[:50]}  # type: ignore[attr-defined]
                          if isinstance(errors, dict) else {})
    return error


def _count_response(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """requests response hook: every answer from Jira, whoever sent the request."""
    count_answer(PLATFORM, response.request.method, response.status_code)
