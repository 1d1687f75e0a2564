"""Secrets come from the environment only, and are compared in constant time everywhere.

A config directory is meant to live in git and be shown in code review, so a secret in it
is a leak waiting to happen: the loader rejects any key it does not know, which includes
every way of spelling a token. And a `==` on a secret leaks, through its timing, how many
leading characters a guess got right; this test reads the source to keep `==` away from
anything named like a secret.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from connector.config import ConfigError, load_config
from connector.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SECRET_NAME = re.compile(r"secret|password|passwd|signature|credential|api_?token|access_token|jira_token|"
                         r"zendesk_token|(^|_)pat$", re.IGNORECASE)


@pytest.mark.parametrize("text, where", [
    ("version: 1\ntoken: abc123\n", "token"),
    ("version: 1\njira_token: abc123\n", "jira_token"),
    ("version: 1\nplatforms:\n  jira:\n    token: abc123\n", "token"),
    ("version: 1\nplatforms:\n  zendesk:\n    api_token: abc123\n", "api_token"),
    ("version: 1\nwebhook_secret: abc123\n", "webhook_secret"),
])
def test_a_config_file_carrying_a_secret_is_rejected_as_an_unknown_key(tmp_path, text, where):
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    message = "\n".join(str(problem) for problem in raised.value.problems)
    assert where in message and "abc123" not in message


def test_settings_read_secrets_from_the_environment_and_nowhere_else(tmp_path):
    config = tmp_path / "rules.yaml"
    config.write_text("version: 1\njira_token: from-a-file\n", encoding="utf-8")
    (tmp_path / ".env").write_text("JIRA_TOKEN=from-a-dotenv-file\n", encoding="utf-8")

    settings = Settings.from_env({"CONNECTOR_CONFIG": str(config), "CONNECTOR_DATA_DIR": str(tmp_path),
                                  "JIRA_WEBHOOK_SECRET": "new, old"})

    assert settings.jira_token is None and settings.zendesk_token is None
    assert settings.jira_webhook_secrets == ("new", "old")
    assert "new" not in repr(settings)  # repr is what ends up in tracebacks and debug logs


def _names(node: ast.AST) -> list[str]:
    return [n.id for n in ast.walk(node) if isinstance(n, ast.Name)] + \
        [n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)]


def test_no_secret_is_compared_with_equals_anywhere():
    offenders = []
    for path in sorted([*(ROOT / "connector").rglob("*.py"), *(ROOT / "webhooks").rglob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
                operands = [node.left, *node.comparators]
                # `x == None`-style checks and comparisons with literals reveal nothing.
                if any(isinstance(o, ast.Constant) for o in operands):
                    continue
                if any(SECRET_NAME.search(name) for o in operands for name in _names(o)):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == [], "use hmac.compare_digest for secrets:\n" + "\n".join(offenders)


def test_the_secret_name_check_catches_what_it_is_for():
    # The scan above must not be blind: a naive comparison of each kind is flagged.
    for source in ("ok = provided == secret", "ok = header != self.webhook_secret", "ok = pat == given",
                   "ok = expected_signature == sig", "ok = token == settings.jira_token"):
        [node] = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Compare)]
        assert any(SECRET_NAME.search(name) for o in [node.left, *node.comparators] for name in _names(o)), source
