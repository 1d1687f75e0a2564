"""Each chat service's request body and what its answers mean.

`build` turns a message into the HTTP request one service expects; `interpret` turns the
service's answer into delivered / retry (with the earliest time to retry) / failed. Three of
the five answer HTTP 200 with an error code in the body, so the status alone says nothing.

Sources, per preset (the bodies are the minimal documented ones):

- dingtalk – custom robot, https://open.dingtalk.com/document/robots/custom-robot-access and
  message types https://open.dingtalk.com/document/robots/message-types-and-data-format:
  `{"msgtype": "text", "text": {"content": …}}` or `{"msgtype": "markdown", "markdown":
  {"title": …, "text": …}}`, POST JSON UTF-8. Answer: HTTP 200 `{"errcode": 0, "errmsg":
  "ok"}`; errors also 200 with errcode ≠ 0. "每个机器人每分钟最多发送20条消息，如果超过20条，会
  限流10分钟" (20 messages per minute per robot, then throttled for 10 minutes): errcode
  130101 "send too fast". 310000: security check failed (keyword, IP, or sign / timestamp),
  300001 / 400102: token invalid or robot stopped – permanent. -1: system busy – retry.
- wecom – group robot, https://developer.work.weixin.qq.com/document/path/91770: `{"msgtype":
  "text", "text": {"content": …}}` (≤ 2048 bytes) or `{"msgtype": "markdown", "markdown":
  {"content": …}}` (≤ 4096 bytes); the URL carries `key=`. "每个机器人发送的消息不能超过20条/
  分钟". Answer 200 `{"errcode": 0, "errmsg": "ok"}`; 45009 "api freq out of limit" – retry
  after a minute; 93000 invalid webhook URL – permanent; -1 busy – retry.
- feishu – custom bot, https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot:
  `{"msg_type": "text", "content": {"text": …}}` (+ `timestamp`, `sign` when signing is on).
  Answer 200 `{"code": 0, "msg": "success", …}` (older bots `{"StatusCode": 0, …}`); 19021
  sign / timestamp wrong, 19024 keyword, 19022 IP – permanent; limits "100 次/分钟，5 次/秒":
  11232 "frequency limited" – retry (openclaw retries 11232 and HTTP 429 for this reason).
- slack – incoming webhook, https://api.slack.com/messaging/webhooks: `{"text": …}`; 200 "ok";
  errors are HTTP statuses with a text body ("Handling errors": 400 invalid_payload /
  no_text, 403 action_prohibited, 404 no_service / channel_not_found, 410 channel_is_archived,
  500 rollup_error); 429 with Retry-After (https://api.slack.com/apis/rate-limits,
  "Incoming webhooks … 1 per second … short bursts").
- teams – Office 365 connectors (the old "Incoming Webhook") are being retired
  (https://devblogs.microsoft.com/microsoft365dev/retirement-of-office-365-connectors-within-
  microsoft-teams/); the replacement is a Workflows (Power Automate) flow "Post to a channel
  when a webhook request is received", which takes `{"type": "message", "attachments":
  [{"contentType": "application/vnd.microsoft.card.adaptive", "content": <AdaptiveCard>}]}`
  (MicrosoftDocs/msteams-docs#11302: a plain `{"text": …}` fails the flow, it iterates
  `attachments`) and answers 202 Accepted. The same body is what "Send Adaptive Cards using an
  Incoming Webhook" documents for the old connector (200, body "1"), so one body serves
  both. 429 / 5xx – retry.
- generic – the admin's own body template (bounded sandbox, `connector.templates`), POSTed with
  the configured content type; 2xx delivered, 408/429/5xx retried (Retry-After honoured),
  other statuses failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from connector import templates
from connector.channels.config import ChannelConfig, ChannelSecrets
from connector.channels.signing import body_signature, dingtalk_query, feishu_sign

# Message size caps: WeCom's text (2048 bytes) is the smallest documented one; a longer
# notice is cut on a character boundary rather than refused by the service.
MAX_TEXT_BYTES = {"wecom": 2048, "dingtalk": 18000, "feishu": 18000, "slack": 35000, "teams": 20000,
                  "generic": 32000}
# Retry no sooner than this after a documented rate-limit code (seconds).
DINGTALK_THROTTLE = 600  # "限流10分钟"
PER_MINUTE_WINDOW = 60


@dataclass(frozen=True)
class Message:
    """What is sent: the text, and the ticket it is about (for generic templates)."""

    text: str
    title: str = "Support notice"
    ticket: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Answer:
    outcome: Literal["delivered", "retry", "failed"]
    reason: str = ""
    retry_after: float | None = None  # seconds; at least this long before the next attempt


def _cut(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", errors="ignore") + "..."


def _json(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _append_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def build(channel: ChannelConfig, secrets: ChannelSecrets, message: Message, now: float) -> Request:
    """The request for `message`; `now` is the Unix time (seconds) used in signatures."""
    preset = channel.preset
    text = _cut(message.text, MAX_TEXT_BYTES[preset])
    json_headers = {"Content-Type": "application/json; charset=utf-8"}
    if preset == "dingtalk":
        if channel.format == "markdown":
            payload = {"msgtype": "markdown", "markdown": {"title": message.title, "text": text}}
        else:
            payload = {"msgtype": "text", "text": {"content": text}}
        url = secrets.url
        if secrets.secret:
            url = _append_query(url, dingtalk_query(secrets.secret, int(now * 1000)))
        return Request(url, _json(payload), json_headers)
    if preset == "wecom":
        kind = channel.format
        return Request(secrets.url, _json({"msgtype": kind, kind: {"content": text}}), json_headers)
    if preset == "feishu":
        payload: dict[str, Any] = {"msg_type": "text", "content": {"text": text}}
        if secrets.secret:
            timestamp = int(now)
            payload = {"timestamp": str(timestamp), "sign": feishu_sign(secrets.secret, timestamp), **payload}
        return Request(secrets.url, _json(payload), json_headers)
    if preset == "slack":
        return Request(secrets.url, _json({"text": text}), json_headers)
    if preset == "teams":
        card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                "version": "1.2", "body": [
                    {"type": "TextBlock", "text": message.title, "weight": "Bolder", "size": "Medium", "wrap": True},
                    {"type": "TextBlock", "text": text, "wrap": True}]}
        payload = {"type": "message", "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}
        return Request(secrets.url, _json(payload), json_headers)
    # generic
    body = templates.render(channel.body or "", {"text": text, "title": message.title, "ticket": message.ticket})
    raw = body.encode("utf-8")
    headers = {"Content-Type": channel.content_type}
    if channel.signature_header and secrets.secret:
        headers[channel.signature_header] = body_signature(secrets.secret, raw)
    return Request(secrets.url, raw, headers)


def _retry_after(headers: dict[str, str]) -> float | None:
    value = {k.lower(): v for k, v in headers.items()}.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the back-off applies


def _by_status(status: int, headers: dict[str, str], text: str) -> Answer:
    if 200 <= status < 300:
        return Answer("delivered")
    reason = f"HTTP {status}" + (f" {text[:80]}" if text and len(text) < 200 else "")
    if status in (408, 425, 429) or status >= 500:
        return Answer("retry", reason, _retry_after(headers))
    return Answer("failed", reason)


def _body_code(body: bytes) -> tuple[dict | None, int | None]:
    try:
        data = json.loads(body.decode("utf-8") or "null")
    except (UnicodeDecodeError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    for key in ("errcode", "code", "StatusCode"):
        if isinstance(data.get(key), int):
            return data, data[key]
    return data, None


# (preset, code) -> seconds to wait at least; codes not listed (≠ 0) are permanent failures.
RETRY_CODES = {
    ("dingtalk", 130101): DINGTALK_THROTTLE,
    ("dingtalk", -1): 5,
    ("wecom", 45009): PER_MINUTE_WINDOW,
    ("wecom", -1): 5,
    ("feishu", 11232): PER_MINUTE_WINDOW,
    ("feishu", 9499): 5,
}


def interpret(preset: str, status: int, headers: dict[str, str], body: bytes) -> Answer:
    if preset in ("slack", "teams", "generic"):
        return _by_status(status, headers, body[:200].decode("utf-8", errors="replace"))
    if status != 200:
        return _by_status(status, headers, "")
    data, code = _body_code(body)
    if code == 0:
        return Answer("delivered")
    if code is None:
        return Answer("retry", "HTTP 200 without an error code: not a known answer")
    message = str((data or {}).get("errmsg") or (data or {}).get("msg") or (data or {}).get("StatusMessage") or "")
    reason = f"{'code' if preset == 'feishu' else 'errcode'} {code}" + (f" {message[:80]}" if message else "")
    wait = RETRY_CODES.get((preset, code))
    if wait is not None:
        return Answer("retry", reason, float(wait))
    return Answer("failed", reason)
