"""Scrubbing: error texts and log lines carry no credentials, secrets or e-mail addresses.

Unit tests of `connector.scrub`, of the platform error taxonomy (every message passes through
it) and of the JSON log formatter (the last line of defence, incl. exception tracebacks). The
end-to-end proof with the real clients is `test_e2e_error_scrub.py`.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from connector.platforms.base import BadRequest, HostError, error_from_response
from connector.scrub import MAX_ERROR_TEXT, error_text, register_secret, scrub
from connector.serve import JsonLineFormatter
from connector.settings import Settings

TOKEN = "ATATT3xFfGF0Q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9"
BASIC = "Y29ubmVjdG9yQGV4YW1wbGUuY29tOnNhbmRib3gtYXBpLXRva2Vu"
ECHO = (f"<html><pre>GET /rest/api/2/search?jql=reporter%3D%22carl%40example.com%22 HTTP/1.1\n"
        f"Authorization: Basic {BASIC}\n"
        f"{{'Authorization': 'Bearer {TOKEN}', 'Cookie': 'x'}}\n"
        f"X-Api-Token: short-secret-1\napi_token=abc123&user=carl@example.com\n"
        f"Zendesk token a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0 for dana.o'neil+vip@customer.example</pre></html>")


@pytest.mark.parametrize("needle", [BASIC, TOKEN, "carl%40example.com", "carl@example.com", "short-secret-1",
                                    "abc123", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0", "customer.example",
                                    "Authorization", "Basic ", "Bearer "])
def test_an_echoed_request_loses_every_credential_and_address(needle):
    register_secret("short-secret-1")
    assert needle not in scrub(ECHO)


def test_ordinary_error_texts_keep_their_words():
    for text in ("Field 'customfield_10059' cannot be set. It is not on the appropriate screen, or unknown.",
                 "Basic authentication with passwords is deprecated.", "Issue does not exist: SUP-123",
                 "Status: closed prevents ticket update", "You do not have permission to edit issues",
                 "/tmp/pytest-of-root/pytest-12/test_worker_reloads0/rules.yaml:6: rules[0].comment",
                 "account 5b10a2844c20165700ede21g", "id 3f2b9c1e-8d4a-4c47-9b1e-2a7f0c9d1e55"):
        assert scrub(text) == text


def test_settings_register_their_tokens_and_secrets():
    Settings(jira_token="jira-token-value-1", zendesk_token="zd-token-value-2", jira_webhook_secrets=("hook-secret-3",))
    assert scrub("a jira-token-value-1 b zd-token-value-2 c hook-secret-3") == "a [token removed] b [token removed] c [token removed]"


def test_a_secret_from_the_environment_is_removed(monkeypatch):
    monkeypatch.setenv("ZENDESK_TOKEN", "env-only-token-value")
    assert "env-only-token-value" not in scrub("token env-only-token-value echoed")


def test_error_text_is_cut_after_scrubbing_so_no_secret_is_half_left():
    text = "x" * (MAX_ERROR_TEXT - 10) + " Authorization: Basic " + BASIC
    cleaned = error_text(text)
    assert len(cleaned) < MAX_ERROR_TEXT + 60 and "cut" in cleaned
    assert BASIC[:8] not in cleaned and "Basic" not in cleaned


def test_scrubbing_a_hostile_megabyte_is_fast():
    started = time.monotonic()
    for text in ("a" * 1_000_000, "a@" * 500_000, "1a" * 500_000, "Basic " * 200_000, "token=" * 200_000):
        error_text(text)
    assert time.monotonic() - started < 1.0


def test_every_platform_error_message_is_scrubbed_and_bounded():
    error = error_from_response(500, {}, ECHO * 100, platform="jira")
    assert isinstance(error, HostError)
    text = f"{error} {error.message} {error.args}"
    assert "carl" not in text and BASIC not in text and TOKEN not in text and len(str(error)) < 700
    assert "carl@example.com" not in str(BadRequest("refused for carl@example.com", platform="zendesk"))


def test_the_log_formatter_scrubs_event_fields_and_traceback():
    logger = logging.getLogger("test.scrub")
    record = None

    class Keep(logging.Handler):
        def emit(self, r):
            nonlocal record
            record = r

    handler = Keep()
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError(f"library said: Authorization: Bearer {TOKEN} for carl@example.com")
        except RuntimeError:
            logger.error("sync.failed %s", "carl@example.com", exc_info=True,
                         extra={"detail": ECHO, "problems": [f"user carl@example.com token {TOKEN}"]})
    finally:
        logger.removeHandler(handler)
    line = JsonLineFormatter().format(record)
    parsed = json.loads(line)
    assert parsed["event"].startswith("sync.failed") and "RuntimeError" in parsed["exception"]
    for needle in ("carl", TOKEN, BASIC, "Authorization", "Bearer "):
        assert needle not in line


def test_named_credentials_lose_their_values_whatever_the_prefix():
    text = scrub('JIRA_TOKEN=tok3n X-Api-Token: abc "access_token": "q1" password=hunter2 api_key=k1')
    assert not any(value in text for value in ("tok3n", "abc", "q1", "hunter2", "k1"))
    assert scrub("webhook secret not configured; set ZENDESK_WEBHOOK_SECRET") == \
        "webhook secret not configured; set ZENDESK_WEBHOOK_SECRET"
