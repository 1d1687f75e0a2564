"""Runtime settings, read from environment variables only.

Secrets (API tokens, webhook secrets) live in the environment and nowhere else, so a config
directory can be kept in git and shown in code review without leaking anything. The
variable names are a public interface (see DESIGN.md) and must stay stable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

REPO_ROOT = Path(__file__).resolve().parent.parent
# The embedded defaults: the standard process, as shipped.
DEFAULT_CONFIG = REPO_ROOT / "config" / "standard-support.yaml"


Mode = Literal["enforce", "observe"]
MODES: tuple[Mode, ...] = ("enforce", "observe")


class SettingsError(ValueError):
    """An environment variable holds a value the connector cannot use; the message names it."""


def _mode(value: str | None) -> Mode:
    """CONNECTOR_MODE: `enforce` (default) writes plans; `observe` only records them (see connector.observe)."""
    text = (value or "enforce").strip().lower()
    if text not in MODES:
        raise SettingsError(f"CONNECTOR_MODE={value!r} is not a mode; use one of: {'|'.join(MODES)} "
                            "(observe records what the connector would write and writes nothing)")
    return text  # type: ignore[return-value]


def _secrets(value: str | None) -> tuple[str, ...]:
    """Several secrets may be given, comma-separated, so a secret can be rotated without downtime."""
    if not value:
        return ()
    return tuple(s.strip() for s in value.split(",") if s.strip())


@dataclass(frozen=True)
class Settings:
    config_path: Path = DEFAULT_CONFIG
    data_dir: Path = Path("data")
    queue_url: str | None = None
    jira_url: str | None = None
    jira_user: str | None = None
    jira_token: str | None = field(default=None, repr=False)
    jira_webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    zendesk_url: str | None = None
    zendesk_email: str | None = None
    zendesk_token: str | None = field(default=None, repr=False)
    zendesk_webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    # observe: run everything but send no write to the platform; record every plan instead.
    mode: Mode = "enforce"

    def __post_init__(self) -> None:
        # Log lines and error messages must never show these (connector.scrub).
        from connector.scrub import register_secret

        register_secret(self.jira_token, self.zendesk_token, *self.jira_webhook_secrets, *self.zendesk_webhook_secrets)

    @property
    def observing(self) -> bool:
        return self.mode == "observe"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        return cls(
            config_path=Path(env.get("CONNECTOR_CONFIG") or DEFAULT_CONFIG),
            data_dir=Path(env.get("CONNECTOR_DATA_DIR") or "data"),
            queue_url=env.get("CONNECTOR_QUEUE_URL") or None,
            jira_url=(env.get("JIRA_URL") or "").rstrip("/") or None,
            jira_user=env.get("JIRA_USER") or None,
            jira_token=env.get("JIRA_TOKEN") or None,
            jira_webhook_secrets=_secrets(env.get("JIRA_WEBHOOK_SECRET")),
            zendesk_url=(env.get("ZENDESK_URL") or "").rstrip("/") or None,
            zendesk_email=env.get("ZENDESK_EMAIL") or None,
            zendesk_token=env.get("ZENDESK_TOKEN") or None,
            zendesk_webhook_secrets=_secrets(env.get("ZENDESK_WEBHOOK_SECRET")),
            mode=_mode(env.get("CONNECTOR_MODE")),
        )
