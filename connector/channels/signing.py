"""Request signatures of the chat services that sign, and of the generic webhook.

- DingTalk custom robot, security setting "加签" (https://open.dingtalk.com/document/robots/
  customize-robot-security-settings): string_to_sign = timestamp + "\\n" + secret, where the
  timestamp is in milliseconds; sign = urlEncode(base64(HmacSHA256(key=secret,
  message=string_to_sign))); both go into the webhook URL's query as `timestamp` and
  `sign`. The server rejects a timestamp more than one hour from its own time.
- Feishu / Lark custom bot, "签名校验" (https://open.feishu.cn/document/client-docs/bot-v3/
  add-custom-bot, section "Signature verification"): string_to_sign = timestamp + "\\n" +
  secret, timestamp in SECONDS; unlike DingTalk, string_to_sign is the HMAC-SHA256 KEY and the
  message is empty; sign = base64(...), sent in the JSON body as `timestamp` and `sign`
  (the official Go sample `GenSign`; go-gitea/gitea#34788 implemented it from that doc).
  Also within one hour of the server's time.
- generic: `sha256=<hex HMAC-SHA256(key=secret, message=raw body)>`, the GitHub / Jira
  (`X-Hub-Signature`) convention the connector itself verifies on incoming webhooks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The `sign` value, base64 (not yet URL-encoded: the query builder encodes it once)."""
    string_to_sign = f"{timestamp_ms}\n{secret}"
    digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def dingtalk_query(secret: str, timestamp_ms: int) -> str:
    """`timestamp=…&sign=…` to append to the robot's URL, the sign URL-encoded as documented."""
    return f"timestamp={timestamp_ms}&sign={quote_plus(dingtalk_sign(secret, timestamp_ms))}"


def feishu_sign(secret: str, timestamp_s: int) -> str:
    string_to_sign = f"{timestamp_s}\n{secret}"
    digest = hmac.new(string_to_sign.encode("utf-8"), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def body_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def same(expected: str, given: str | None) -> bool:
    """Constant-time comparison of two signatures."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
