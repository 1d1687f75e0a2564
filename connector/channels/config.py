"""The top-level `channels:` key: named chat targets whose secrets come from the environment.

A channel's webhook URL carries its token (DingTalk's `access_token`, WeCom's `key`, the
path of a Slack, Feishu or Teams webhook), so the rule file names only the environment
variable that holds it (`url_env`), and likewise for a signing secret (`secret_env`).
Neither value is ever logged or put into an error text: the values are registered with
`connector.scrub` when read, and errors name the variable, never its content.

Example::

    channels:
      ops-chat:
        preset: dingtalk          # dingtalk | wecom | feishu | slack | teams | generic
        url_env: CHAT_OPS_URL     # https://oapi.dingtalk.com/robot/send?access_token=…
        secret_env: CHAT_OPS_SECRET   # optional: the robot's 加签 secret (SEC…)
        format: markdown          # dingtalk / wecom: text (default) or markdown
      audit-hook:
        preset: generic
        url_env: AUDIT_HOOK_URL
        secret_env: AUDIT_HOOK_SECRET
        body: '{"ticket": {{ ticket.key | tojson }}, "text": {{ text | tojson }}}'
        content_type: application/json
        signature_header: X-Signature-256   # sha256=<hex HMAC-SHA256(secret, body)>

When the variables are read: `connector serve` and `connector worker` refuse to start when a
configured channel's variable is unset (`require_environment`, naming the variable and the
channel); `connector check-config` only warns (`missing_environment`), because the rule
files are checked in CI and on laptops that do not hold production secrets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connector import scrub

PRESETS = ("dingtalk", "wecom", "feishu", "slack", "teams", "generic")
ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


class ChannelConfigError(Exception):
    """A channel cannot be used (a variable unset, a channel removed); says which and what to do."""


class ChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preset: Literal["dingtalk", "wecom", "feishu", "slack", "teams", "generic"] = Field(
        description="the chat service: its body shape, signing and answers")
    url_env: str = Field(pattern=ENV_NAME, description="environment variable holding the webhook URL (with its token)")
    secret_env: str | None = Field(default=None, pattern=ENV_NAME,
                                   description="environment variable holding the signing secret (dingtalk, feishu, generic)")
    format: Literal["text", "markdown"] = Field(default="text", description="dingtalk / wecom message type")
    title: str = Field(default="Support notice", max_length=200,
                       description="title of markdown / card messages (dingtalk markdown, teams)")
    # generic only
    body: str | None = Field(default=None, description="generic: Jinja2 template of the request body")
    content_type: str = Field(default="application/json", description="generic: Content-Type of the body")
    signature_header: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9-]+$",
        description="generic: header carrying sha256=<hex HMAC-SHA256(secret, body)>; needs secret_env")

    @model_validator(mode="after")
    def _consistent(self) -> "ChannelConfig":
        if self.preset == "generic":
            if not self.body:
                raise ValueError("a generic channel needs `body`: a template of the request body, e.g. "
                                 "'{\"text\": {{ text | tojson }}}'")
            if self.signature_header and not self.secret_env:
                raise ValueError("`signature_header` needs `secret_env`: the variable holding the HMAC secret")
            from connector import templates

            problem = templates.check(self.body, {"text": "text", "title": "title", "ticket": templates.SAMPLE_TICKET})
            if problem:
                raise ValueError(f"`body`: {problem}")
        else:
            if self.body is not None or self.signature_header is not None:
                raise ValueError(f"`body` and `signature_header` are for `preset: generic`; the {self.preset} "
                                 "preset builds its own body")
            if self.secret_env and self.preset not in ("dingtalk", "feishu"):
                raise ValueError(f"`secret_env` is not used by the {self.preset} preset (its URL carries the "
                                 "credential); only dingtalk, feishu and generic sign requests")
        if self.format == "markdown" and self.preset not in ("dingtalk", "wecom"):
            raise ValueError("`format: markdown` is for the dingtalk and wecom presets")
        return self

    def variables(self) -> tuple[str, ...]:
        return (self.url_env,) + ((self.secret_env,) if self.secret_env else ())


class ChannelSecrets(BaseModel):
    """The values read from the environment; repr hides them."""

    model_config = ConfigDict(frozen=True)

    url: str = Field(repr=False)
    secret: str | None = Field(default=None, repr=False)


def missing_environment(channels: Mapping[str, ChannelConfig],
                        environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(channel, variable) for every variable a channel needs that is unset or empty."""
    environ = os.environ if environ is None else environ
    return [(name, var) for name, channel in channels.items() for var in channel.variables()
            if not environ.get(var, "").strip()]


def describe_missing(missing: list[tuple[str, str]]) -> str:
    return "; ".join(f"channels.{name}: environment variable {var} is not set" for name, var in missing)


def require_environment(channels: Mapping[str, ChannelConfig], environ: Mapping[str, str] | None = None) -> None:
    """Raise ChannelConfigError naming every unset variable (at the start of serve / worker)."""
    missing = missing_environment(channels, environ)
    if missing:
        raise ChannelConfigError(describe_missing(missing) + ". Set them (the URL and secret the chat service "
                                 "gave when the robot/webhook was created), or remove the channel.")


def secrets_of(name: str, channel: ChannelConfig, environ: Mapping[str, str] | None = None) -> ChannelSecrets:
    """The channel's URL and secret from the environment; registered with the scrubber."""
    environ = os.environ if environ is None else environ
    missing = missing_environment({name: channel}, environ)
    if missing:
        raise ChannelConfigError(describe_missing(missing))
    url = environ[channel.url_env].strip()
    secret = environ[channel.secret_env].strip() if channel.secret_env else None
    scrub.register_secret(url, secret)
    # The token part of the URL alone (a query value or the last path segment) may show up
    # in a library's error text without the rest of the URL.
    scrub.register_secret(*_url_parts(url))
    return ChannelSecrets(url=url, secret=secret)


def _url_parts(url: str) -> list[str]:
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    values = [v for _, v in parse_qsl(parts.query)]
    values += [segment for segment in parts.path.split("/") if len(segment) >= 16]
    return values
