"""Take secrets and personal data out of text before it is logged or raised.

Why this exists: platform error answers are not always the platform's own short reason. A
proxy, a load balancer or a Jira error page may echo the whole request back – the
`Authorization: Basic …` header (which carries the API token), the URL with a customer's
e-mail address in its query, the body. Such a text used to go verbatim into
`reconcile.failed` and `sync.failed` log lines. So every platform error text is scrubbed
and cut to a bounded length where it becomes an exception message
(`connector.platforms.base.PlatformError`), and the JSON log formatter scrubs every line
again (message, fields, exception text) as the last line of defence.

What is removed:
- authorization headers and credentials: `Authorization: <anything to the end of the
  line>`, `Basic …`, `Bearer …`, `token=…`-style query or form parameters;
- the secret values this process knows (API tokens and webhook secrets, registered by
  `connector.settings.Settings` and read from the environment variables that carry them);
- token-looking strings: 32 or more characters of a token alphabet mixing upper case,
  lower case and digits, and not a path (Zendesk API tokens have 40 characters, Atlassian
  API tokens about 190, Data Center personal access tokens 44);
- e-mail addresses, also URL-encoded (`carl%40example.com`).

The patterns only start at the beginning of a run of characters (look-behinds), so a
long hostile text costs linear time, and input longer than `MAX_INPUT` is cut before any
pattern runs. Over-removal is accepted: an error message that loses a word is better than
a log that keeps a token.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

# A platform reason worth reading fits in a few hundred characters; an HTML error page
# does not need to be kept whole to be recognised.
MAX_ERROR_TEXT = 500
# Cut before the patterns run: bounds the time scrubbing a hostile multi-megabyte answer takes.
MAX_INPUT = 16 * 1024
MAX_TRACEBACK = 64 * 1024
# Shorter "secrets" (a test's "s", a webhook secret of 3 characters) would turn every
# matching substring of ordinary words into a placeholder; such values are not guessed from
# a log anyway, and `_TOKEN_RUN` has nothing to do with them.
_MIN_SECRET_LENGTH = 6
_SECRET_ENVIRONMENT = ("JIRA_TOKEN", "ZENDESK_TOKEN", "JIRA_WEBHOOK_SECRET", "ZENDESK_WEBHOOK_SECRET")

REMOVED_CREDENTIALS = "[credentials removed]"
REMOVED_TOKEN = "[token removed]"
REMOVED_EMAIL = "[e-mail removed]"

_AUTH_HEADER = re.compile(r"(?i)\b(?:proxy-)?authorization\b['\"]?\s*[:=]\s*[^\r\n]*")
# 'Authorization': 'Basic …' in a printed dict ends at the quote, a header line at the line end.
# A credential (base64 or a token) has a digit, an upper-case letter or base64 punctuation;
# "Basic authentication is disabled" keeps its words.
_AUTH_SCHEME = re.compile(r"\b(?:[Bb]asic|[Bb]earer|BASIC|BEARER)\s+(?=[A-Za-z0-9._~+/=:-]*[0-9A-Z+/=])[A-Za-z0-9._~+/=:-]{8,}")
# `token=…`, `X-Api-Token: …`, `ZENDESK_TOKEN=…`, `"password": "…"` – the name may carry a prefix.
_AUTH_PARAM = re.compile(r"(?i)(?<![A-Za-z0-9_-])([A-Za-z_-]*(?:token|password|passwd|secret|signature|api[_-]?key))"
                         r"(['\"]?\s*[:=]\s*['\"]?)(?!\[)[^\s&'\",;}]+")
_TOKEN_CHARS = r"A-Za-z0-9_\-+/="
_TOKEN_RUN = re.compile(rf"(?<![{_TOKEN_CHARS}.])[{_TOKEN_CHARS}]{{32,}}")
_EMAIL_LOCAL = r"A-Za-z0-9._%+\-"
_EMAIL = re.compile(rf"(?<![{_EMAIL_LOCAL}])[{_EMAIL_LOCAL}]+(?:@|%40|&#64;|\\u0040)"
                    r"[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")

_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(*values: str | None) -> None:
    """Remember secret values (API tokens, webhook secrets) so that `scrub` removes them."""
    fresh = {v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LENGTH}
    if fresh - _registered:
        with _lock:
            _registered.update(fresh)


def _secrets() -> list[str]:
    values = set(_registered)
    for name in _SECRET_ENVIRONMENT:
        for value in (os.environ.get(name) or "").split(","):
            value = value.strip()
            if len(value) >= _MIN_SECRET_LENGTH:
                values.add(value)
    # Longest first, so a secret containing another is removed whole.
    return sorted(values, key=len, reverse=True)


def scrub(text: str, *, max_input: int = MAX_INPUT) -> str:
    """`text` without credentials, known secrets, token-looking strings and e-mail addresses.

    Text beyond `max_input` characters is dropped before the patterns run.
    """
    if not text:
        return text
    if len(text) > max_input:
        text = text[:max_input]
    for secret in _secrets():
        if secret in text:
            text = text.replace(secret, REMOVED_TOKEN)
    text = _AUTH_HEADER.sub(REMOVED_CREDENTIALS, text)
    text = _AUTH_SCHEME.sub(REMOVED_CREDENTIALS, text)
    text = _AUTH_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{REMOVED_TOKEN}", text)
    text = _EMAIL.sub(REMOVED_EMAIL, text)
    text = _TOKEN_RUN.sub(_token_or_not, text)
    return text


def _token_or_not(match: re.Match[str]) -> str:
    """A run of token characters is a token when it mixes upper case, lower case and digits
    and is not a path (API tokens, base64 credentials and JWTs do; a file path such as
    /tmp/pytest-of-root/… or an id like customfield_10059 does not)."""
    run = match.group(0)
    if (run.count("/") <= 2 and any(c.isupper() for c in run) and any(c.islower() for c in run)
            and any(c.isdigit() for c in run)):
        return REMOVED_TOKEN
    return run


def error_text(text: str | None, limit: int = MAX_ERROR_TEXT) -> str:
    """A platform's error text fit for a log line or an exception message: scrubbed, then cut.

    Scrubbed before it is cut, so a secret across the cut is never left half visible.
    """
    if not text:
        return ""
    cleaned = " ".join(scrub(str(text)).split())  # an HTML page's line breaks and indentation
    if len(cleaned) > limit:
        cleaned = cleaned[:limit].rstrip() + f" … (cut; {len(text)} characters in all)"
    return cleaned


def scrub_traceback(text: str) -> str:
    """A formatted traceback, scrubbed; a very long one keeps its end, where the error is."""
    if len(text) > MAX_TRACEBACK:
        text = "… (traceback cut)\n" + text[-MAX_TRACEBACK:]
    return scrub(text, max_input=MAX_TRACEBACK + 100)


def scrub_value(value: Any, _depth: int = 0) -> Any:
    """`scrub` applied to every string inside a log field (lists, tuples, mappings)."""
    if isinstance(value, str):
        return scrub(value)
    if _depth > 5:
        return value if isinstance(value, (int, float, bool, type(None))) else "[nested too deeply]"
    if isinstance(value, Mapping):
        return {scrub(str(k)): scrub_value(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [scrub_value(v, _depth + 1) for v in value]
    if isinstance(value, (int, float, bool, type(None))):
        return value
    return scrub(str(value))


def registered() -> Iterable[str]:
    """The registered secrets (for tests)."""
    return frozenset(_registered)
