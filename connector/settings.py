"""Runtime settings: every environment variable the connector reads, read and validated here.

One place, so that a newcomer finds every knob in one file and the README's environment
table (checked against this model by `tests/test_settings.py`) cannot drift from the code.
Each field's alias is its variable's name; the name, default, allowed values and meaning
of each variable are declared once, on its field, and `env_table()` renders the README
table from them.

`Settings.from_env()` runs once at start (the CLI, the receiver's app factory without
settings): a wrong value stops the process with one message per variable that names it,
shows the value and says what is allowed (`CONNECTOR_PUMP_INTERVAL='abc' is not a positive
number of seconds, e.g. 10`). Code below the CLI gets the `Settings` object passed in and
never reads the environment itself.

Secrets (API tokens, webhook secrets) live in the environment and nowhere else, so a config
directory can be kept in git and shown in code review without leaking anything. The
variable names are a public interface (see DESIGN.md) and must stay stable.

Not settings, on purpose:
- `connector.scrub` also reads the four secret variables (`SECRET_VARIABLES`) on every
  scrub, as a safety net for a log line written before any `Settings` existed; it
  configures nothing.
- Variables named in the rule files by their authors (a chat channel's `url_env:`) are
  chosen by the user, so they cannot be fields here; the config loader reads them and
  names the YAML key in its errors.
- The sandboxes (`connector/sandbox/`, test and demo stand-ins of Jira and Zendesk, not
  part of the product) read `JIRA_USER`, `JIRA_TOKEN`, `JIRA_WEBHOOK_SECRET`,
  `ZENDESK_EMAIL`, `ZENDESK_TOKEN` and `ZENDESK_WEBHOOK_SECRET` in their own `main()` to
  accept the credentials the connector is started with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator
from pydantic.dataclasses import dataclass
from pydantic.fields import FieldInfo

from connector.scrub import register_secret

REPO_ROOT = Path(__file__).resolve().parent.parent
# The embedded defaults: the standard process, as shipped.
DEFAULT_CONFIG = REPO_ROOT / "config" / "standard-support.yaml"

Mode = Literal["enforce", "observe"]
MODES: tuple[Mode, ...] = ("enforce", "observe")
WorkerWait = Literal["wakeup", "poll", "huey"]
WORKER_WAIT_MODES: tuple[WorkerWait, ...] = ("wakeup", "poll", "huey")
HttpServer = Literal["waitress", "gunicorn"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

# Seconds; a positive number (fractions allowed: tests and benchmarks poll briskly).
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]

SECRET_VARIABLES = ("JIRA_TOKEN", "ZENDESK_TOKEN", "JIRA_WEBHOOK_SECRET", "ZENDESK_WEBHOOK_SECRET")


class SettingsError(ValueError):
    """An environment variable holds a value the connector cannot use; the message names it."""


def _var(alias: str, default: Any, allowed: str, meaning: str, *, secret: bool = False) -> Any:
    """A field read from the environment variable `alias`; `allowed` and `meaning` are the
    README table's columns and `allowed` ends the error message for a wrong value."""
    return Field(default=default, alias=alias, description=meaning, repr=not secret,
                 json_schema_extra={"allowed": allowed, "secret": secret})


@dataclass(frozen=True, config=ConfigDict(populate_by_name=True, extra="forbid", arbitrary_types_allowed=True))
class Settings:
    config_path: Path = _var("CONNECTOR_CONFIG", DEFAULT_CONFIG, "a path",
                             "rule file or directory (default: the embedded `config/standard-support.yaml`)")
    data_dir: Path = _var("CONNECTOR_DATA_DIR", Path("data"), "a path",
                          "where the SQLite queue and its side tables live")
    queue_url: str | None = _var("CONNECTOR_QUEUE_URL", None, "`redis://…`, `rediss://…` or unset",
                                 "unset → SQLite file in the data dir; `redis://host:6379/0` → Redis")
    jira_url: str | None = _var("JIRA_URL", None, "a URL", "Jira base URL; unset: no Jira")
    jira_user: str | None = _var("JIRA_USER", None, "an e-mail or unset",
                                 "Jira Cloud: the account's e-mail; unset with a Data Center personal access token")
    jira_token: str | None = _var("JIRA_TOKEN", None, "a token", "Jira API token (Cloud) or personal access token "
                                  "(Data Center)", secret=True)
    jira_webhook_secrets: tuple[str, ...] = _var(
        "JIRA_WEBHOOK_SECRET", (), "secrets, comma-separated",
        "secret of the Jira admin webhook; several comma-separated for rotation", secret=True)
    zendesk_url: str | None = _var("ZENDESK_URL", None, "a URL", "Zendesk base URL; unset: no Zendesk")
    zendesk_email: str | None = _var("ZENDESK_EMAIL", None, "an e-mail", "the Zendesk agent the connector acts as")
    zendesk_token: str | None = _var("ZENDESK_TOKEN", None, "a token", "Zendesk API token", secret=True)
    zendesk_webhook_secrets: tuple[str, ...] = _var(
        "ZENDESK_WEBHOOK_SECRET", (), "secrets, comma-separated",
        "signing secret of the Zendesk webhook; several comma-separated for rotation", secret=True)
    # observe: run everything but send no write to the platform; record every plan instead.
    mode: Mode = _var("CONNECTOR_MODE", "enforce", "`enforce`, `observe`",
                      "`observe`: run everything but write nothing, record every planned action (see "
                      "[Going live](#going-live-on-a-real-site))")
    pump_interval: Seconds = _var("CONNECTOR_PUMP_INTERVAL", 10.0, "a positive number of seconds, e.g. 10",
                                  "seconds between deadline-pump runs in a worker")
    sync_recent_interval: Seconds = _var("CONNECTOR_SYNC_RECENT_INTERVAL", 300.0,
                                         "a positive number of seconds, e.g. 300",
                                         "seconds between sweeps of recently updated tickets")
    sync_full_interval: Seconds = _var("CONNECTOR_SYNC_FULL_INTERVAL", 3600.0,
                                       "a positive number of seconds, e.g. 3600", "seconds between full sweeps")
    config_poll_interval: Seconds = _var("CONNECTOR_CONFIG_POLL_INTERVAL", 5.0,
                                         "a positive number of seconds, e.g. 5",
                                         "seconds between checks of the rule files for a hot reload")
    worker_wait: WorkerWait = _var(
        "CONNECTOR_WORKER_WAIT", "wakeup", "`wakeup`, `poll`, `huey`",
        "how an idle worker waits: `wakeup` (FIFO wake-up on SQLite, blocking pop on Redis), `poll` "
        "(SQLite polled every 0.05 s; costs idle CPU, for file systems without named pipes), `huey` "
        "(huey's stock consumer, the behaviour before; for benchmarks)")
    http_server: HttpServer = _var(
        "CONNECTOR_HTTP_SERVER", "waitress", "`waitress`, `gunicorn`",
        "`gunicorn` runs the former gunicorn gthread stack (control socket off) for comparison only; "
        "not protected against slow clients")
    log_level: LogLevel = _var("CONNECTOR_LOG_LEVEL", "INFO", "`DEBUG`, `INFO`, `WARNING`, `ERROR`",
                               "level of the JSON log lines of `serve` and `worker`")
    public_url: str | None = _var(
        "CONNECTOR_PUBLIC_URL", None, "a URL or unset",
        "the receiver's public base URL (e.g. `https://connector.example.com`); `connector doctor` checks "
        "the platform's webhook points at it (`--public-url` overrides it)")

    @field_validator("mode", "worker_wait", "http_server", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("jira_url", "zendesk_url", mode="before")
    @classmethod
    def _base_url(cls, value: Any) -> Any:
        return (value.rstrip("/") or None) if isinstance(value, str) else value

    @field_validator("jira_webhook_secrets", "zendesk_webhook_secrets", mode="before")
    @classmethod
    def _secrets(cls, value: Any) -> Any:
        """Several secrets may be given, comma-separated, so a secret can be rotated without downtime."""
        if isinstance(value, str):
            return tuple(s.strip() for s in value.split(",") if s.strip())
        return value

    def __post_init__(self) -> None:
        # Log lines and error messages must never show these (connector.scrub).
        register_secret(self.jira_token, self.zendesk_token, *self.jira_webhook_secrets, *self.zendesk_webhook_secrets)

    @property
    def observing(self) -> bool:
        return self.mode == "observe"

    @property
    def pump_every(self) -> timedelta:
        return timedelta(seconds=self.pump_interval)

    @property
    def sync_recent_every(self) -> timedelta:
        return timedelta(seconds=self.sync_recent_interval)

    @property
    def sync_full_every(self) -> timedelta:
        return timedelta(seconds=self.sync_full_interval)

    @property
    def config_poll_every(self) -> timedelta:
        return timedelta(seconds=self.config_poll_interval)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Settings from the environment (or `environ`); an empty variable counts as unset.

        Raise SettingsError naming every variable with a wrong value and what it allows.
        """
        env = os.environ if environ is None else environ
        values = {alias: env[alias] for alias in variables() if env.get(alias)}
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingsError(_explain(exc, values)) from None


def fields() -> dict[str, FieldInfo]:
    """The settings' fields by attribute name (each with its variable as alias)."""
    return dict(Settings.__pydantic_fields__)


def variables() -> dict[str, str]:
    """Environment variable -> attribute name, for every setting."""
    return {info.alias: name for name, info in fields().items() if info.alias}


def _explain(exc: ValidationError, values: Mapping[str, str]) -> str:
    by_variable = {info.alias: info for info in fields().values()}
    problems = []
    for error in exc.errors():
        variable = str(error["loc"][0]) if error["loc"] else "?"
        info = by_variable.get(variable)
        if info is None:  # pragma: no cover - only declared variables are passed in
            problems.append(error["msg"])
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        shown = "(hidden)" if extra.get("secret") else repr(values.get(variable))
        allowed = str(extra.get('allowed')).replace('`', '')
        problems.append(f"{variable}={shown} is not allowed; use {allowed}, "
                        f"or leave it unset for the default")
    return "; ".join(problems)


def _default_text(info: FieldInfo) -> str:
    default = info.default
    if default is None or default == ():
        return "unset"
    if isinstance(default, Path):
        try:
            return f"`{default.relative_to(REPO_ROOT)}`"
        except ValueError:
            return f"`{default}`"
    if isinstance(default, float) and default.is_integer():
        return f"`{int(default)}`"
    return f"`{default}`"


def env_table() -> str:
    """The README's environment table, rendered from the fields (`tests/test_settings.py`
    compares the README's table with it, row by row)."""
    lines = ["| variable | default | allowed | meaning |", "|---|---|---|---|"]
    for info in fields().values():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        lines.append(f"| `{info.alias}` | {_default_text(info)} | {extra.get('allowed')} | {info.description} |")
    return "\n".join(lines)
