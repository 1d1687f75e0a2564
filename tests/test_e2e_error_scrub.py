"""Error paths leak nothing: platform answers that echo the request never reach a log or an error.

A proxy in front of the platform, or a Jira error page, may answer a failed request by echoing
it: the request line (with a customer's e-mail address in the query), every header
(`Authorization: Basic …`, which carries the API token) and more. The `jira` library puts the
whole body of a non-JSON answer into `JIRAError.text`, and `JIRAError.__str__` prints the
request headers (pycontribs/jira#2411, #960). These tests make the sandboxes answer 400 and
500 with such an echo – built from the request the real `jira` / `zenpy` client actually sent –
and run real reconciles (webhook → receiver → queue → worker), direct adapter calls and a sweep
through the connector's adapters. No captured log line (message, fields, exception with
traceback) and no raised exception text may contain the token, the Authorization value or an
e-mail address. `tests.log_scrub` checks the same lines for the fixed forbidden strings.
"""

from __future__ import annotations

import base64
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from connector.platforms.base import PlatformError
from connector.sandbox.server import Clock
from connector.stack import LocalStack
from connector.sync.sweep import SweepKind

FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
CUSTOMER_EMAIL = "carl@example.com"
_FORMATTER = logging.Formatter()


class Echo:
    """A fault body echoing the request, as an HTML page (`html=True`) or inside the platform's
    JSON error; remembers every credential it echoed so the test can look for each."""

    def __init__(self, platform: str, *, html: bool) -> None:
        self.platform, self.html = platform, html
        self.echoed: set[str] = set()

    def __call__(self, request) -> object:
        authorization = request.headers.get("Authorization", "")
        self.echoed.add(authorization)
        scheme, _, credentials = authorization.partition(" ")
        if credentials:
            self.echoed.add(credentials)
            if scheme.lower() == "basic":
                user, _, token = base64.b64decode(credentials).decode().partition(":")
                self.echoed.update({token, user})
        headers = "\n".join(f"{name}: {value}" for name, value in request.headers.items())
        echo = (f"{request.method} {request.full_path}&reporter={CUSTOMER_EMAIL.replace('@', '%40')} HTTP/1.1\n"
                f"{headers}\nX-Forwarded-User: {CUSTOMER_EMAIL}\n")
        if self.html:
            return f"<html><body><h1>{request.method} failed</h1><pre>\n{echo}</pre><p>Reply to {CUSTOMER_EMAIL}</p></body></html>"
        if self.platform == "jira":
            return {"errorMessages": [f"Bad request from {CUSTOMER_EMAIL}: {echo}"], "errors": {"summary": echo}}
        return {"error": "InvalidRequest", "description": f"Bad request from {CUSTOMER_EMAIL}: {echo}"}


class Capture(logging.Handler):
    """Every log record as text, with its `extra` fields and its exception formatted."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exception = _FORMATTER.formatException(record.exc_info) if record.exc_info else ""
        self.lines.append(f"{record.getMessage()} {record.__dict__!r} {exception}")


@pytest.fixture
def capture():
    handler, root = Capture(), logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


def assert_nothing_secret(texts: list[str], echoes: list[Echo], stack: LocalStack) -> None:
    secrets = {s for echo in echoes for s in echo.echoed if s} | {stack.jira.api_token, CUSTOMER_EMAIL,
                                                                   "carl%40example.com", "Authorization"}
    if stack.zendesk:
        secrets |= {stack.zendesk.api_token, stack.zendesk.email}
    assert all(echo.echoed for echo in echoes), "a fault was never served: the test proves nothing"
    leaks = [(secret, text[:300]) for text in texts for secret in secrets if secret in text]
    assert not leaks, f"{len(leaks)} leaks, first: {leaks[:2]}"


def raised_text(call) -> str:
    with pytest.raises(PlatformError) as raised:
        call()
    error = raised.value
    text = f"{error} {error.message!r} {error!r} {getattr(error, 'field_errors', '')}"
    assert len(str(error)) < 700, "an error text is cut to a bounded length"
    return text


@pytest.mark.parametrize("status", [400, 500])
def test_jira_answers_echoing_the_request_leave_no_secret_in_logs_or_errors(tmp_path, capture, status):
    echoes = [Echo("jira", html=False), Echo("jira", html=True)]
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY)) as stack:
        key = stack.jira.create_issue("VPN drops", description="drops", components=["network"])
        stack.settle()
        issue_id = stack.jira.issue(key)["id"]
        texts = []
        for echo in echoes:
            # Real reconciles through the queue and the worker: `reconcile.failed` (400) or
            # the retry path (500) log what they met.
            stack.jira.inject(status, body=echo, times=None, path_prefix="/rest/api/")
            stack.queue.enqueue_reconcile("jira", issue_id)
            stack.settle()
            texts.append(raised_text(lambda: stack.runtime.adapter("jira").fetch(issue_id)))
            # The sweep: its periodic tick logs `sync.failed`; run directly, it raises.
            stack.sweeper().tick(["jira"])
            texts.append(raised_text(lambda: stack.sweep(SweepKind.FULL)))
            stack.jira.clear_faults()
        assert f"HTTP {status}" in texts[0], texts[0]  # the error still says what happened
        assert any("reconcile" in line for line in capture.lines)
        assert any(line.startswith("sync.failed") for line in capture.lines)
        assert_nothing_secret(texts + capture.lines, echoes, stack)


@pytest.mark.parametrize("status", [400, 500])
def test_zendesk_answers_echoing_the_request_leave_no_secret_in_logs_or_errors(tmp_path, capture, status):
    echoes = [Echo("zendesk", html=False), Echo("zendesk", html=True)]
    with LocalStack(tmp_path / "data", clock=Clock(FRIDAY), zendesk=True) as stack:
        ticket_id = str(stack.zendesk.create_ticket("VPN drops", "drops every hour"))
        stack.settle()
        texts = []
        for echo in echoes:
            stack.zendesk.inject(status, body=echo, times=None, path_prefix="/api/v2/")
            stack.queue.enqueue_reconcile("zendesk", ticket_id)
            stack.settle()
            texts.append(raised_text(lambda: stack.runtime.adapter("zendesk").fetch(ticket_id)))
            stack.sweeper().tick(["zendesk"])
            texts.append(raised_text(lambda: stack.sweep(SweepKind.FULL, platform="zendesk")))
            stack.zendesk.clear_faults()
        assert f"HTTP {status}" in texts[0], texts[0]
        assert any("reconcile" in line for line in capture.lines)
        assert any(line.startswith("sync.failed") for line in capture.lines)
        assert_nothing_secret(texts + capture.lines, echoes, stack)
