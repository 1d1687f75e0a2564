"""Checks sandbox traffic against Atlassian's published OpenAPI document.

A hand-written fake drifts towards whatever the code under test happens to send. Holding
every request (and, in tests, every response) to Atlassian's own document keeps the
sandbox honest: if the adapter sends a body real Jira would reject, the sandbox rejects it
too. The document is 2.4 MB and takes about a second to load, so it is loaded once per
process, lazily, and shared by every sandbox.

The document describes REST v3 and Jira Cloud as published; real Jira differs from it in a
few known ways, and only those are relaxed here:
- v2 paths are looked up as the same v3 path (v2 differs only in rich-text fields being
  plain strings, and the document leaves comment bodies and issue fields untyped);
- Data Center's `/rest/api/2/search` is checked against the Cloud `/search` operation;
- booleans in query strings arrive as `True`/`False` from Python clients; Jira parses them
  case-insensitively;
- a numeric transition id is read as a string, as Jira's JSON reader coerces it;
- `null` values are treated as absent: Jira's JSON reader ignores them in requests, and
  its responses carry them where the document marks nothing nullable;
- Jira writes timestamps with a basic offset (`+0800`), which the document's RFC 3339
  `date-time` format does not accept.
- an answer whose status the document does not list for the operation (e.g. 410 from the
  removed Cloud `/search`) has no schema to check against;
- a 204 answer is not checked: Jira sends no body, the document declares a JSON one;
- Authentication is checked by the sandbox itself (the Cloud document does not know Data
  Center personal access tokens), so the document's security requirements are dropped.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from werkzeug.datastructures import Headers, ImmutableMultiDict, MultiDict

SPEC_PATH = Path(__file__).with_name("specs") / "jira-platform.openapi.json"
# The document's only server; requests are presented as if sent there.
_SPEC_HOST = "https://your-domain.atlassian.net"
_JIRA_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)([+-]\d{2})(\d{2})$")

_lock = threading.Lock()
_openapi: Any = None


def load_openapi() -> Any:
    """The parsed document as an openapi-core `OpenAPI`, loaded once per process."""
    global _openapi
    with _lock:
        if _openapi is None:
            from openapi_core import Config, OpenAPI

            document = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
            document.pop("security", None)
            for operations in document["paths"].values():
                for operation in operations.values():
                    if isinstance(operation, dict):
                        operation.pop("security", None)
            document.get("components", {}).pop("securitySchemes", None)
            # The document itself fails strict OpenAPI validation (see specs/README.md).
            _openapi = OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))
        return _openapi


def spec_path_for(path: str) -> str:
    if path.startswith("/rest/api/2/"):
        return "/rest/api/3/" + path[len("/rest/api/2/"):]
    return path


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    if isinstance(value, str):
        match = _JIRA_TIME.match(value)
        if match:
            return f"{match.group(1)}{match.group(2)}:{match.group(3)}"
    return value


def _normalized_body(body: bytes | None) -> bytes:
    if not body:
        return b""
    try:
        document = json.loads(body)
    except ValueError:
        return body  # let the validator report it
    document = _without_nulls(document)
    transition = document.get("transition") if isinstance(document, dict) else None
    if isinstance(transition, dict) and isinstance(transition.get("id"), int):
        # The jira library sends the transition id as a number; Jira's reader coerces it.
        transition["id"] = str(transition["id"])
    return json.dumps(document).encode()


def _normalized_query(query: MultiDict[str, str]) -> ImmutableMultiDict[str, str]:
    items = []
    for key, value in query.items(multi=True):
        if value in ("True", "False"):
            value = value.lower()
        items.append((key, value))
    return ImmutableMultiDict(items)


class _SpecRequest:
    """The openapi-core Request protocol, presenting a sandbox request as a v3 Cloud one."""

    def __init__(self, method: str, path: str, query: MultiDict[str, str], headers: Headers,
                 body: bytes | None, content_type: str) -> None:
        from openapi_core.datatypes import RequestParameters

        self.host_url = _SPEC_HOST
        self.path = spec_path_for(path)
        self.method = method.lower()
        self.body = _normalized_body(body)
        self.content_type = (content_type or "application/json").lower()
        self.parameters = RequestParameters(
            query=_normalized_query(query), header=Headers(headers), cookie=ImmutableMultiDict(), path={}
        )


class _SpecResponse:
    def __init__(self, status: int, headers: Headers, body: bytes | None, content_type: str) -> None:
        self.status_code = status
        self.headers = Headers(headers)
        self.data = _normalized_body(body)
        self.content_type = (content_type or "application/json").lower()


def _describe(exc: Exception) -> str:
    parts = [str(exc)]
    cause = exc.__cause__
    while cause is not None:
        for error in getattr(cause, "schema_errors", ()) or ():
            parts.append(getattr(error, "message", str(error)))
        cause = cause.__cause__
    return "; ".join(dict.fromkeys(p for p in parts if p))


class JiraSpec:
    """Request and response validation against the document; errors come back as text."""

    def validate_request(self, method: str, path: str, query: MultiDict[str, str], headers: Headers,
                         body: bytes | None, content_type: str) -> str | None:
        from openapi_core.exceptions import OpenAPIError

        request = _SpecRequest(method, path, query, headers, body, content_type)
        try:
            load_openapi().validate_request(request)
        except OpenAPIError as exc:
            return _describe(exc)
        return None

    def validate_response(self, method: str, path: str, query: MultiDict[str, str], headers: Headers,
                          request_body: bytes | None, request_content_type: str, status: int,
                          response_headers: Headers, response_body: bytes | None,
                          response_content_type: str) -> str | None:
        from openapi_core.exceptions import OpenAPIError
        from openapi_core.templating.responses.exceptions import ResponseNotFound

        request = _SpecRequest(method, path, query, headers, request_body, request_content_type)
        response = _SpecResponse(status, response_headers, response_body, response_content_type)
        try:
            load_openapi().validate_response(request, response)
        except ResponseNotFound:
            return None  # a status the document does not list (e.g. 410 for the removed /search)
        except OpenAPIError as exc:
            return _describe(exc)
        return None
