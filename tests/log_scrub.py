"""Log scrubbing: end-to-end tests fail if any log line carries a secret or personal data.

Every end-to-end test runs with known secrets (sandbox API tokens, webhook secrets) and
known requester e-mail addresses. A handler on the root logger captures every record at
DEBUG, including the structured `extra` fields, and the test fails at teardown if any of
them contains one of those strings, an Authorization header, or a payload body marker.
Exceptions logged with `exc_info` are formatted (message and traceback) and checked too.
"""

from __future__ import annotations

import logging

import pytest

from connector.stack import WEBHOOK_SECRET

FORBIDDEN = {
    "sandbox-api-token": "API token (both sandboxes use it)",
    "sandbox-personal-access-token": "Jira personal access token",
    WEBHOOK_SECRET: "webhook secret",
    "zendesk-e2e-secret": "webhook secret",
    "carl@example.com": "requester e-mail",
    "Authorization": "Authorization header",
    "Basic ": "basic auth credentials",
    "Bearer ": "bearer token",
    '"webhookEvent"': "webhook payload body",
    '"zen:event-type': "webhook payload body",
}


_FORMATTER = logging.Formatter()


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a broken format string is itself worth seeing, not hiding
            text = str(record.msg)
        extras = {k: v for k, v in record.__dict__.items() if k not in logging.LogRecord("", 0, "", 0, "", (), None).__dict__}
        # The exception and its traceback as any handler would print them: error paths leak
        # through exception messages (`exc_info`), not through the event name.
        exception = _FORMATTER.formatException(record.exc_info) if record.exc_info else (record.exc_text or "")
        self.lines.append(f"{record.name} {text} {extras!r} {exception}")


@pytest.fixture(autouse=True)
def scrubbed_logs(request):
    module = request.node.module.__name__.rsplit(".", 1)[-1]
    if not module.startswith(("test_e2e", "test_sync_e2e", "test_demo")):
        yield
        return
    capture = _Capture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(capture)
        root.setLevel(previous)
    leaks = [(what, line[:200]) for line in capture.lines for needle, what in FORBIDDEN.items() if needle in line]
    assert not leaks, f"log lines leak {len(leaks)} secrets or personal data, first: {leaks[:3]}"
