"""Bad input, generated: both webhook endpoints and the config loader.

Random and mutated real payloads, wrong types, huge and deeply nested values, invalid UTF-8,
wrong content types and missing headers must never produce a 5xx or a crash, and nothing
may be queued for a request that is not a valid, signed event. The config loader must turn
any YAML into either a config or a ConfigError with positions, never a traceback.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from connector.config import ConfigError, load_config
from webhooks.signatures import jira_signature, zendesk_signature

FIXTURES = Path(__file__).parent / "fixtures"
JIRA_BODIES = [p.read_bytes() for p in sorted((FIXTURES / "jira").glob("*.json"))]
ZENDESK_BODIES = [p.read_bytes() for p in sorted((FIXTURES / "zendesk").glob("*.json"))]
FUZZ = hsettings(max_examples=120, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)


@st.composite
def mutated(draw, real: list[bytes]) -> bytes:
    """A real payload with one value replaced somewhere by something of another type."""
    document = json.loads(draw(st.sampled_from(real)))
    path_choice = draw(st.integers(min_value=0, max_value=50))
    replacement = draw(json_values)

    def walk(node, depth=0):
        nonlocal path_choice
        if isinstance(node, dict) and node:
            keys = sorted(node)
            key = keys[path_choice % len(keys)]
            path_choice //= 2
            if path_choice == 0 or depth > 6:
                node[key] = replacement
            else:
                node[key] = walk(node[key], depth + 1)
        return node

    return json.dumps(walk(document)).encode()


class Generated(bytes):
    """A body built from a small recipe; its repr stays short in hypothesis reports."""

    def __new__(cls, recipe: str, data: bytes):
        body = super().__new__(cls, data)
        body.recipe = recipe
        return body

    def __repr__(self) -> str:
        return f"<{self.recipe}, {len(self)} bytes>"


def bodies(real: list[bytes]):
    nested = st.integers(min_value=1, max_value=5000).map(
        lambda n: Generated(f"nested {n}", ("[" * n + "]" * n).encode()))
    huge = st.integers(min_value=1, max_value=3).map(
        lambda n: Generated(f"huge {n}", b'{"x": "' + b"a" * (n * 400_000) + b'"}'))
    return st.one_of(
        st.binary(max_size=2000),                                     # random bytes, invalid UTF-8
        json_values.map(lambda v: json.dumps(v).encode()),            # any JSON
        st.sampled_from(real),                                        # real payloads
        mutated(real),                                                # mutated real payloads
        nested,                                                       # deep nesting
        huge,                                                         # over 1 MiB (413) or near it
    )


def queued(queue) -> int:
    return len(queue.huey.pending())


@FUZZ
@given(body=bodies(JIRA_BODIES), sign=st.booleans(), content_type=st.sampled_from(
    ["application/json", "text/plain", "application/x-www-form-urlencoded", None]))
def test_jira_endpoint_never_fails_on_any_input(client, settings, queue, body, sign, content_type):
    before = queued(queue)
    headers = {"X-Hub-Signature": jira_signature(settings.jira_webhook_secrets[0], body)} if sign else {}
    response = client.post("/webhooks/jira", data=body, headers=headers, content_type=content_type)
    assert response.status_code < 500, response.get_data(as_text=True)
    if not sign:
        # Size and presence are checked before the signature: 400/413 may come first.
        assert response.status_code in (400, 401, 413)
        assert queued(queue) == before
    if response.status_code >= 400:
        assert queued(queue) == before


@FUZZ
@given(body=bodies(ZENDESK_BODIES), sign=st.booleans(), stamp=st.sampled_from(["now", "garbage", "", "missing"]))
def test_zendesk_endpoint_never_fails_on_any_input(client, settings, queue, body, sign, stamp):
    before = queued(queue)
    timestamp = {"now": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "garbage": "yesterday-ish",
                 "": "", "missing": None}[stamp]
    headers = {}
    if timestamp is not None:
        headers["X-Zendesk-Webhook-Signature-Timestamp"] = timestamp
    if sign:
        headers["X-Zendesk-Webhook-Signature"] = zendesk_signature(settings.zendesk_webhook_secrets[0],
                                                                   timestamp or "", body)
    response = client.post("/webhooks/zendesk", data=body, headers=headers, content_type="application/json")
    assert response.status_code < 500, response.get_data(as_text=True)
    if not (sign and stamp == "now"):
        assert response.status_code in (400, 401, 413)
    if response.status_code >= 400:
        assert queued(queue) == before


@FUZZ
@given(text=st.one_of(
    st.text(max_size=400),
    json_values.map(lambda v: json.dumps({"rules": v})),
    json_values.map(lambda v: json.dumps({"calendars": {"standard": v}})),
    json_values.map(lambda v: json.dumps({"rules": [{"id": "r", "type": "sla", "calendar": "c", "targets": v}]})),
    json_values.map(lambda v: json.dumps({"platforms": {"jira": v}})),
    st.sampled_from(["rules: [", "a: b: c", "- x\n- : y", "\t", "rules:\n  - &a [*a]", "? [a]\n: b"]),
))
def test_config_loader_gives_a_config_or_a_positioned_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as error:
        assert error.problems
        for problem in error.problems:
            assert str(problem).startswith(str(path)) and problem.message


def test_config_loader_reports_unreadable_bytes(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"rules: \xff\xfe\x00")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "UTF-8" in str(error.value)
