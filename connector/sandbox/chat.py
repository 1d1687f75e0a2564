"""A stand-in for the team-chat services: one small HTTP server, one path per preset.

It accepts what each vendor's webhook accepts, at a path shaped like the vendor's, verifies
what the vendor verifies, answers the way the vendor answers (HTTP 200 with an errcode body
for DingTalk, WeCom and Feishu; HTTP statuses for Slack; 202 for a Teams Workflows trigger)
and records every message it would have shown in the group. Sources are cited in
`connector.channels.presets` and `connector.channels.signing`; the behaviours here:

- DingTalk `POST /dingtalk/robot/send?access_token=…[&timestamp=…&sign=…]`: unknown token →
  errcode 300001; a robot with "加签" on needs `timestamp` (ms) within one hour of the
  server's clock and `sign` = base64(HmacSHA256(secret, timestamp + "\\n" + secret)) →
  otherwise errcode 310000 (the security-settings failure); 20 messages per robot per minute,
  then throttled for 10 minutes → errcode 130101 "send too fast".
- WeCom `POST /wecom/cgi-bin/webhook/send?key=…`: unknown key → errcode 93000; text content
  over 2048 bytes / markdown over 4096 → errcode 40058; more than 20 per minute → 45009.
- Feishu `POST /feishu/open-apis/bot/v2/hook/<id>`: unknown hook → code 19001; with signing,
  body `timestamp` (seconds) within one hour and `sign` = base64(HmacSHA256(key=timestamp +
  "\\n" + secret, message="")) → otherwise code 19021; 5 per second / 100 per minute →
  code 11232; success `{"code": 0, "msg": "success", "data": {}}`.
- Slack `POST /slack/services/<T>/<B>/<token>`: unknown → 404 `no_service`; not JSON → 400
  `invalid_payload`; no `text` → 400 `no_text`; success 200 `ok`.
- Teams `POST /teams/workflows/<id>`: a Workflows HTTP trigger answers 202 Accepted before the
  flow runs; a body without `attachments` of adaptive cards makes the flow run fail
  (MicrosoftDocs/msteams-docs#11302) – recorded in `failed_runs`, not as a message.
- generic `POST /generic/<name>`: with a secret, header `X-Signature-256` must be
  `sha256=<hex HMAC-SHA256(secret, body)>` → otherwise 401.

Faults (`faults.inject(500, path_prefix="/dingtalk")`) come before everything else, like the
platform sandboxes'. Rate windows count on the sandbox clock, so a test moves time.
"""

from __future__ import annotations

import json
import secrets as token_source
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask, Response, request

from connector.channels.signing import body_signature, dingtalk_sign, feishu_sign, same
from connector.sandbox.server import Clock, FaultInjector, ThreadedServer

SIGNATURE_WINDOW = timedelta(hours=1)
DINGTALK_PER_MINUTE, DINGTALK_THROTTLE = 20, timedelta(minutes=10)
WECOM_PER_MINUTE = 20
FEISHU_PER_MINUTE, FEISHU_PER_SECOND = 100, 5


@dataclass(frozen=True)
class ChatMessage:
    preset: str
    robot: str
    body: dict
    at: datetime

    @property
    def text(self) -> str:
        """The message's visible text, whatever the preset's body shape."""
        b = self.body
        if self.preset == "dingtalk":
            return (b.get("text") or {}).get("content") or (b.get("markdown") or {}).get("text", "")
        if self.preset == "wecom":
            return (b.get(b.get("msgtype", "text")) or {}).get("content", "")
        if self.preset == "feishu":
            return (b.get("content") or {}).get("text", "")
        if self.preset == "teams":
            blocks = b["attachments"][0]["content"]["body"]
            return "\n".join(block.get("text", "") for block in blocks[1:])
        return b.get("text", "") if isinstance(b, dict) else ""


class ChatSandbox:
    """Start with `with ChatSandbox(clock=…) as chat:`; `chat.environment()` gives the variables
    a config's `url_env` / `secret_env` name (CHAT_<PRESET>_URL, CHAT_<PRESET>_SECRET)."""

    def __init__(self, clock: Clock | None = None, *, sign: bool = True) -> None:
        self.clock = clock or Clock(frozen=False)
        self.faults = FaultInjector()
        self.tokens = {p: token_source.token_hex(16) for p in ("dingtalk", "wecom", "feishu", "slack", "teams", "generic")}
        self.secrets = {p: "SEC" + token_source.token_hex(24) for p in ("dingtalk", "feishu", "generic")} if sign else {}
        self.messages: list[ChatMessage] = []
        self.failed_runs: list[dict] = []
        self.requests = 0
        self._sent: dict[str, deque] = defaultdict(deque)
        self._throttled_until: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._server = ThreadedServer(self._app())

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "ChatSandbox":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> "ChatSandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def url(self, preset: str) -> str:
        t, base = self.tokens[preset], self.base_url
        return {
            "dingtalk": f"{base}/dingtalk/robot/send?access_token={t}",
            "wecom": f"{base}/wecom/cgi-bin/webhook/send?key={t}",
            "feishu": f"{base}/feishu/open-apis/bot/v2/hook/{t}",
            "slack": f"{base}/slack/services/T0CONNECTOR/B0CONNECTOR/{t}",
            "teams": f"{base}/teams/workflows/{t}",
            "generic": f"{base}/generic/{t}",
        }[preset]

    def environment(self) -> dict[str, str]:
        env = {f"CHAT_{p.upper()}_URL": self.url(p) for p in self.tokens}
        env.update({f"CHAT_{p.upper()}_SECRET": s for p, s in self.secrets.items()})
        return env

    def received(self, preset: str | None = None) -> list[ChatMessage]:
        with self._lock:
            return [m for m in self.messages if preset is None or m.preset == preset]

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.failed_runs.clear()
            self._sent.clear()
            self._throttled_until.clear()

    # -- helpers -----------------------------------------------------------------------------

    def _record(self, preset: str, robot: str, body: dict) -> None:
        with self._lock:
            self.messages.append(ChatMessage(preset, robot, body, self.clock.now()))

    def _rate(self, key: str, per: timedelta, limit: int) -> bool:
        """Count one request against `limit` per `per`; False when over the limit."""
        now = self.clock.now()
        with self._lock:
            sent = self._sent[f"{key}:{per.total_seconds()}"]
            while sent and sent[0] <= now - per:
                sent.popleft()
            if len(sent) >= limit:
                return False
            sent.append(now)
            return True

    def _within_window(self, moment: datetime) -> bool:
        return abs(self.clock.now() - moment) <= SIGNATURE_WINDOW

    @staticmethod
    def _json_body() -> dict | None:
        try:
            body = json.loads(request.get_data().decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    # -- the app -----------------------------------------------------------------------------

    def _app(self) -> Flask:
        app = Flask("chat-sandbox")

        @app.before_request
        def fault():
            with self._lock:
                self.requests += 1
            found = self.faults.take(request.method, request.path)
            if found is not None and found.delay:
                time.sleep(found.delay)  # a slow chat service
            if found is not None and found.status:
                headers = {"Retry-After": str(int(found.retry_after))} if found.retry_after else {}
                return Response(json.dumps(found.body_for(request)) if found.body is not None else "error",
                                status=found.status, headers=headers)
            return None

        @app.post("/dingtalk/robot/send")
        def dingtalk():
            token = request.args.get("access_token", "")
            if not same(self.tokens["dingtalk"], token):
                return {"errcode": 300001, "errmsg": "token is not exist"}
            secret = self.secrets.get("dingtalk")
            if secret:
                try:
                    stamp = int(request.args.get("timestamp", ""))
                    moment = datetime.fromtimestamp(stamp / 1000, tz=self.clock.now().tzinfo)
                except (ValueError, OverflowError, OSError):
                    return {"errcode": 310000, "errmsg": "invalid timestamp"}
                if not self._within_window(moment):
                    return {"errcode": 310000, "errmsg": "invalid timestamp, more than one hour off"}
                # request.args has decoded the URL-encoding of `sign` once, as the server does.
                if not same(dingtalk_sign(secret, stamp), request.args.get("sign")):
                    return {"errcode": 310000, "errmsg": "sign not match"}
            body = self._json_body()
            kind = (body or {}).get("msgtype")
            if kind == "text" and isinstance(body.get("text"), dict) and body["text"].get("content"):
                pass
            elif kind == "markdown" and isinstance(body.get("markdown"), dict) and body["markdown"].get("title") \
                    and body["markdown"].get("text"):
                pass
            else:
                return {"errcode": 40035, "errmsg": "缺少参数 json"}
            now = self.clock.now()
            if self._throttled_until.get("dingtalk", now) > now:
                return {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
            if not self._rate("dingtalk", timedelta(minutes=1), DINGTALK_PER_MINUTE):
                self._throttled_until["dingtalk"] = now + DINGTALK_THROTTLE
                return {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
            self._record("dingtalk", token, body)
            return {"errcode": 0, "errmsg": "ok"}

        @app.post("/wecom/cgi-bin/webhook/send")
        def wecom():
            key = request.args.get("key", "")
            if not same(self.tokens["wecom"], key):
                return {"errcode": 93000, "errmsg": "invalid webhook url, hint: key not found"}
            body = self._json_body()
            kind = (body or {}).get("msgtype")
            content = ((body or {}).get(kind) or {}).get("content") if kind in ("text", "markdown") else None
            if not isinstance(content, str) or not content:
                return {"errcode": 40008, "errmsg": "invalid message type"}
            if len(content.encode("utf-8")) > (2048 if kind == "text" else 4096):
                return {"errcode": 40058, "errmsg": "content exceed max length"}
            if not self._rate("wecom", timedelta(minutes=1), WECOM_PER_MINUTE):
                return {"errcode": 45009, "errmsg": "api freq out of limit"}
            self._record("wecom", key, body)
            return {"errcode": 0, "errmsg": "ok"}

        @app.post("/feishu/open-apis/bot/v2/hook/<hook>")
        def feishu(hook: str):
            if not same(self.tokens["feishu"], hook):
                return {"code": 19001, "msg": "param invalid: incoming webhook access token invalid", "data": {}}
            body = self._json_body()
            if body is None:
                return {"code": 9499, "msg": "Bad Request", "data": {}}
            secret = self.secrets.get("feishu")
            if secret:
                try:
                    stamp = int(body.get("timestamp", ""))
                    moment = datetime.fromtimestamp(stamp, tz=self.clock.now().tzinfo)
                except (ValueError, TypeError, OverflowError, OSError):
                    stamp, moment = 0, None
                if moment is None or not self._within_window(moment) or \
                        not same(feishu_sign(secret, stamp), body.get("sign")):
                    return {"code": 19021, "msg": "sign match fail or timestamp is not within one hour from "
                                                  "current time", "data": {}}
            if body.get("msg_type") != "text" or not (body.get("content") or {}).get("text"):
                return {"code": 9499, "msg": "Bad Request", "data": {}}
            if not self._rate("feishu-s", timedelta(seconds=1), FEISHU_PER_SECOND) or \
                    not self._rate("feishu-m", timedelta(minutes=1), FEISHU_PER_MINUTE):
                return {"code": 11232, "msg": "frequency limited psm", "data": {}}
            self._record("feishu", hook, body)
            return {"code": 0, "msg": "success", "data": {}}

        @app.post("/slack/services/<team>/<bot>/<token>")
        def slack(team: str, bot: str, token: str):
            if not same(self.tokens["slack"], token):
                return Response("no_service", status=404, mimetype="text/plain")
            body = self._json_body()
            if body is None:
                return Response("invalid_payload", status=400, mimetype="text/plain")
            if not body.get("text") and not body.get("blocks"):
                return Response("no_text", status=400, mimetype="text/plain")
            self._record("slack", token, body)
            return Response("ok", status=200, mimetype="text/plain")

        @app.post("/teams/workflows/<flow>")
        def teams(flow: str):
            if not same(self.tokens["teams"], flow):
                return Response(json.dumps({"error": {"code": "DirectApiAuthorizationRequired"}}), status=401,
                                mimetype="application/json")
            body = self._json_body()
            attachments = (body or {}).get("attachments")
            valid = isinstance(attachments, list) and attachments and all(
                isinstance(a, dict) and a.get("contentType") == "application/vnd.microsoft.card.adaptive"
                and isinstance(a.get("content"), dict) and a["content"].get("type") == "AdaptiveCard"
                for a in attachments)
            if valid:
                self._record("teams", flow, body)
            else:
                with self._lock:
                    self.failed_runs.append({"flow": flow, "body": body})
            return Response("", status=202)

        @app.post("/generic/<hook>")
        def generic(hook: str):
            if not same(self.tokens["generic"], hook):
                return Response("not found", status=404)
            secret = self.secrets.get("generic")
            raw = request.get_data()
            if secret and not same(body_signature(secret, raw), request.headers.get("X-Signature-256")):
                return Response("bad signature", status=401)
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                body = {"raw": raw.decode("utf-8", errors="replace")}
            self._record("generic", hook, body if isinstance(body, dict) else {"value": body})
            return Response("", status=204)

        return app
