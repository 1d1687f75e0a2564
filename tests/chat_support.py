"""Rule files with team-chat channels for the chat tests: the standard rules plus channels
for every preset (environment variables as the chat stand-in's `environment()` names them)
and the SLA breach notice routed to them for some priorities."""

from __future__ import annotations

from pathlib import Path

import yaml

from connector.settings import DEFAULT_CONFIG

ALL_CHANNELS = {
    "ops-dingtalk": {"preset": "dingtalk", "url_env": "CHAT_DINGTALK_URL", "secret_env": "CHAT_DINGTALK_SECRET",
                     "format": "markdown"},
    "ops-wecom": {"preset": "wecom", "url_env": "CHAT_WECOM_URL"},
    "ops-feishu": {"preset": "feishu", "url_env": "CHAT_FEISHU_URL", "secret_env": "CHAT_FEISHU_SECRET"},
    "ops-slack": {"preset": "slack", "url_env": "CHAT_SLACK_URL"},
    "ops-teams": {"preset": "teams", "url_env": "CHAT_TEAMS_URL"},
    "ops-hook": {"preset": "generic", "url_env": "CHAT_GENERIC_URL", "secret_env": "CHAT_GENERIC_SECRET",
                 "signature_header": "X-Signature-256",
                 "body": '{"ticket": {{ ticket.key | tojson }}, "text": {{ text | tojson }}}'},
}


def chat_config_file(tmp_path: Path, channels: dict | None = None, priorities=("P0", "P1"),
                     escalation: bool = False) -> Path:
    channels = ALL_CHANNELS if channels is None else channels
    data = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    data["channels"] = channels
    def route():  # a fresh dict each time: a shared one would be dumped as a YAML anchor
        return {"to": sorted(channels), "priorities": list(priorities)}

    for rule in data["rules"]:
        if rule["type"] == "sla":
            rule["notify"]["breach"]["channels"] = route()
        if rule["type"] == "escalation" and escalation:
            for level in rule["levels"]:
                level["comment"]["channels"] = route()
    path = tmp_path / "chat-rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
