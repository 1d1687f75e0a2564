"""Team-chat channels without a ticket platform: the `channels:` config and its errors, each
preset's body and signature against the vendors' documented algorithms, what each vendor's
answers mean, the chat stand-in's verification, the outbox's atomic steps on SQLite and
Redis (workers racing), and the delivery task's retries and permanent failures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta

import pytest
import requests
from click.testing import CliRunner
from pydantic import ValidationError

from connector.channels.config import ChannelConfig, ChannelConfigError, ChannelSecrets, require_environment
from connector.channels.outbox import entry_id
from connector.channels.presets import Message, build, interpret
from connector.channels.signing import dingtalk_query, dingtalk_sign, feishu_sign
from connector.cli import main
from connector.config import ConfigError, load_config
from connector.doctor.local import check_channels
from connector.metrics import REGISTRY
from connector.queue.reconcile_queue import ReconcileQueue
from connector.reconcile import Runtime
from connector.sandbox.chat import ChatSandbox
from connector.sandbox.server import Clock
from connector.settings import DEFAULT_CONFIG, Settings
from tests.chat_support import ALL_CHANNELS, chat_config_file

NOW = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)


# --- signatures: the vendors' own sample code, transcribed -----------------------------------


def dingtalk_doc_sample(timestamp: str, secret: str) -> str:
    """The Python sample of DingTalk's "加签" (customize-robot-security-settings)."""
    secret_enc = secret.encode("utf-8")
    string_to_sign = "{}\n{}".format(timestamp, secret)
    hmac_code = hmac.new(secret_enc, string_to_sign.encode("utf-8"), digestmod=hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(hmac_code))


def feishu_doc_sample(timestamp: int, secret: str) -> str:
    """The Python sample of Feishu's custom-bot "签名校验": the string is the KEY, the message empty."""
    key = f"{timestamp}\n{secret}"
    hmac_code = hmac.new(key.encode("utf-8"), "".encode("utf-8"), digestmod=hashlib.sha256).digest()
    return base64.b64encode(hmac_code).decode("utf-8")


def test_dingtalk_signature_is_the_documented_one():
    assert dingtalk_query("this is secret", 1700000000000) == \
        f"timestamp=1700000000000&sign={dingtalk_doc_sample('1700000000000', 'this is secret')}"
    # Pinned: a change of both implementations at once would still be caught.
    assert dingtalk_query("this is secret", 1700000000000).endswith("sign=sSFWELbV2YwjdDQhWZwTcWlX5BWUx5J6TPpsZmuPii0%3D")


def test_feishu_signature_is_the_documented_one():
    assert feishu_sign("demo", 1599360473) == feishu_doc_sample(1599360473, "demo")
    assert feishu_sign("demo", 1599360473) == "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8="
    # Not DingTalk's scheme (secret as key, string as message): the two are told apart.
    assert feishu_sign("demo", 1599360473) != dingtalk_sign("demo", 1599360473)


# --- bodies ----------------------------------------------------------------------------------


def channel(**values) -> ChannelConfig:
    return ChannelConfig(**{"url_env": "CHAT_URL", **values})


def body_of(ch: ChannelConfig, secret: str | None = None, text: str = "P0 breached", now: float = 1700000000.0):
    request = build(ch, ChannelSecrets(url="https://chat.example/hook?x=1", secret=secret),
                    Message(text=text, title="Notice", ticket={"key": "SUP-1"}), now)
    return request, json.loads(request.body) if request.headers["Content-Type"].startswith("application/json") else None


def test_preset_bodies():
    _, dingtalk = body_of(channel(preset="dingtalk"))
    assert dingtalk == {"msgtype": "text", "text": {"content": "P0 breached"}}
    _, dingtalk_md = body_of(channel(preset="dingtalk", format="markdown"))
    assert dingtalk_md == {"msgtype": "markdown", "markdown": {"title": "Notice", "text": "P0 breached"}}
    _, wecom = body_of(channel(preset="wecom", format="markdown"))
    assert wecom == {"msgtype": "markdown", "markdown": {"content": "P0 breached"}}
    _, feishu = body_of(channel(preset="feishu"))
    assert feishu == {"msg_type": "text", "content": {"text": "P0 breached"}}
    _, slack = body_of(channel(preset="slack"))
    assert slack == {"text": "P0 breached"}
    _, teams = body_of(channel(preset="teams"))
    assert teams["type"] == "message"
    [attachment] = teams["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["type"] == "AdaptiveCard" and attachment["content"]["body"][1]["text"] == "P0 breached"


def test_signed_presets_carry_the_signature_where_documented():
    request, _ = body_of(channel(preset="dingtalk", secret_env="CHAT_SECRET"), secret="SECabc", now=1700000000.0)
    assert request.url == "https://chat.example/hook?x=1&" + dingtalk_query("SECabc", 1700000000000)
    _, feishu = body_of(channel(preset="feishu", secret_env="CHAT_SECRET"), secret="SECabc", now=1700000000.9)
    assert feishu["timestamp"] == "1700000000" and feishu["sign"] == feishu_sign("SECabc", 1700000000)
    generic = channel(preset="generic", body='{"t": {{ text | tojson }}, "k": {{ ticket.key | tojson }}}',
                      secret_env="CHAT_SECRET", signature_header="X-Sig")
    request, body = body_of(generic, secret="s3cret")
    assert body == {"t": "P0 breached", "k": "SUP-1"}
    assert request.headers["X-Sig"] == "sha256=" + hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()


def test_wecom_text_is_cut_to_its_documented_2048_bytes():
    _, wecom = body_of(channel(preset="wecom"), text="超时" * 2000)
    assert len(wecom["text"]["content"].encode("utf-8")) <= 2048


# --- answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("preset,status,headers,body,outcome,wait", [
    ("dingtalk", 200, {}, {"errcode": 0, "errmsg": "ok"}, "delivered", None),
    ("dingtalk", 200, {}, {"errcode": 130101, "errmsg": "send too fast"}, "retry", 600.0),
    ("dingtalk", 200, {}, {"errcode": 310000, "errmsg": "sign not match"}, "failed", None),
    ("dingtalk", 200, {}, {"errcode": 300001, "errmsg": "token is not exist"}, "failed", None),
    ("wecom", 200, {}, {"errcode": 45009, "errmsg": "api freq out of limit"}, "retry", 60.0),
    ("wecom", 200, {}, {"errcode": 93000, "errmsg": "invalid webhook url"}, "failed", None),
    ("feishu", 200, {}, {"code": 0, "msg": "success", "data": {}}, "delivered", None),
    ("feishu", 200, {}, {"StatusCode": 0, "StatusMessage": "success"}, "delivered", None),
    ("feishu", 200, {}, {"code": 11232, "msg": "frequency limited psm"}, "retry", 60.0),
    ("feishu", 200, {}, {"code": 19021, "msg": "sign match fail"}, "failed", None),
    ("feishu", 502, {}, None, "retry", None),
    ("slack", 200, {}, "ok", "delivered", None),
    ("slack", 429, {"Retry-After": "30"}, "", "retry", 30.0),
    ("slack", 404, {}, "no_service", "failed", None),
    ("slack", 410, {}, "channel_is_archived", "failed", None),
    ("teams", 202, {}, "", "delivered", None),
    ("teams", 200, {}, "1", "delivered", None),
    ("teams", 503, {}, "", "retry", None),
    ("generic", 204, {}, "", "delivered", None),
    ("generic", 401, {}, "bad signature", "failed", None),
])
def test_vendor_answers(preset, status, headers, body, outcome, wait):
    raw = json.dumps(body).encode() if isinstance(body, dict) else (body or "").encode()
    answer = interpret(preset, status, headers, raw)
    assert answer.outcome == outcome and answer.retry_after == wait


# --- config ----------------------------------------------------------------------------------


def test_unknown_preset_is_a_config_error_with_the_key_path(tmp_path):
    path = chat_config_file(tmp_path, {"ops": {"preset": "hipchat", "url_env": "CHAT_URL"}})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert problem.path == "channels.ops.preset" and "'hipchat'" in problem.message and "dingtalk" in problem.message
    assert problem.line is not None


def test_unknown_channel_referenced_from_a_rule_names_the_key_path(tmp_path):
    path = chat_config_file(tmp_path, {"ops": ALL_CHANNELS["ops-slack"]})
    path.write_text(path.read_text().replace("- ops\n", "- ops-chta\n"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    # Both sla rules (the premium tier and the default) route their breach notices there.
    assert [problem.path for problem in caught.value.problems] == [
        "rules[4].notify.breach.channels.to[0] (rule 'sla-premium')",
        "rules[5].notify.breach.channels.to[0] (rule 'sla')"]
    for problem in caught.value.problems:
        assert "'ops-chta' is not defined" in problem.message and "(ops)" in problem.message


@pytest.mark.parametrize("values,message", [
    ({"preset": "generic"}, "needs `body`"),
    ({"preset": "generic", "body": "{{ nope }}"}, "`body`"),
    ({"preset": "slack", "secret_env": "S"}, "not used by the slack preset"),
    ({"preset": "teams", "format": "markdown"}, "for the dingtalk and wecom presets"),
    ({"preset": "slack", "url_env": "https://hooks.slack.com/x"}, "String should match pattern"),
])
def test_channel_consistency(values, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)").replace("`", ".")):
        ChannelConfig(**{"url_env": "CHAT_URL", **values})


def test_missing_variable_is_named_at_start_and_only_warned_by_check_config(tmp_path, monkeypatch):
    for var in ("CHAT_DINGTALK_URL", "CHAT_DINGTALK_SECRET"):
        monkeypatch.delenv(var, raising=False)
    config = load_config(chat_config_file(tmp_path, {"ops-dingtalk": ALL_CHANNELS["ops-dingtalk"]}))
    with pytest.raises(ChannelConfigError) as caught:
        require_environment(config.channels)
    assert "channels.ops-dingtalk: environment variable CHAT_DINGTALK_URL is not set" in str(caught.value)
    assert "CHAT_DINGTALK_SECRET" in str(caught.value)
    result = CliRunner().invoke(main, ["check-config", str(tmp_path / "chat-rules.yaml")])
    assert result.exit_code == 0 and "CHAT_DINGTALK_URL" in result.output and "WARNING" in result.output
    monkeypatch.setenv("CONNECTOR_CONFIG", str(tmp_path / "chat-rules.yaml"))
    monkeypatch.setenv("CONNECTOR_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code == 1 and "CHAT_DINGTALK_URL is not set" in result.output


def test_the_shipped_examples_pass_check_config_uncommented_without_the_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("CHAT_OPS_URL", raising=False)
    monkeypatch.delenv("CHAT_OPS_SECRET", raising=False)
    for name in ("standard-support.yaml", "standard-support.zh-CN.yaml"):
        text = (DEFAULT_CONFIG.parent / name).read_text(encoding="utf-8")
        lines = text.splitlines()
        start = lines.index("# channels:")
        for i in range(start, start + 6):
            lines[i] = lines[i][2:]
        uncommented = "\n".join(lines).replace("        # channels: {to: [ops-chat]", "        channels: {to: [ops-chat]")
        path = tmp_path / name
        path.write_text(uncommented, encoding="utf-8")
        config = load_config(path)
        assert config.channels["ops-chat"].preset == "dingtalk"
        sla = next(r for r in config.rules if r.id == "sla")  # the default tier carries the example
        assert sla.notify.breach.channels.to == ["ops-chat"] and sla.notify.breach.channels.priorities == ["P0", "P1"]
        result = CliRunner().invoke(main, ["check-config", str(path)])
        assert result.exit_code == 0 and "CHAT_OPS_URL" in result.output


def test_doctor_names_the_variables_never_their_values(tmp_path):
    config = load_config(chat_config_file(tmp_path, {"ops-feishu": ALL_CHANNELS["ops-feishu"]}))
    [missing] = check_channels(config, environ={})
    assert missing.status.name == "FAIL" and "CHAT_FEISHU_URL" in missing.found and "CHAT_FEISHU_SECRET" in missing.found
    secret_url = "https://open.feishu.cn/open-apis/bot/v2/hook/5f0c2e1a-token-value"
    [ok] = check_channels(config, environ={"CHAT_FEISHU_URL": secret_url, "CHAT_FEISHU_SECRET": "SECvalue"})
    assert ok.status.name == "OK" and "token-value" not in ok.found + ok.fix and "SECvalue" not in ok.found


# --- the chat stand-in verifies like the vendors ----------------------------------------------


@pytest.fixture
def chat():
    with ChatSandbox(clock=Clock(NOW)) as sandbox:
        yield sandbox


def post(chat, preset, body, *, secret=None, now=None, url=None):
    ch = channel(preset=preset, **({"secret_env": "CHAT_SECRET"} if secret else {}))
    request = build(ch, ChannelSecrets(url=url or chat.url(preset), secret=secret),
                    Message(text=body), (now or chat.clock.now()).timestamp())
    response = requests.post(request.url, data=request.body, headers=request.headers, timeout=5)
    return response, interpret(preset, response.status_code, dict(response.headers), response.content)


def test_dingtalk_stand_in_checks_the_signature_and_its_hour(chat):
    secret = chat.secrets["dingtalk"]
    _, answer = post(chat, "dingtalk", "hello", secret=secret)
    assert answer.outcome == "delivered" and chat.received("dingtalk")[0].text == "hello"
    response, answer = post(chat, "dingtalk", "wrong", secret="SECwrong")
    assert response.json()["errcode"] == 310000 and answer.outcome == "failed"
    response, _ = post(chat, "dingtalk", "stale", secret=secret, now=NOW - timedelta(hours=1, minutes=1))
    assert response.json() == {"errcode": 310000, "errmsg": "invalid timestamp, more than one hour off"}
    response, _ = post(chat, "dingtalk", "unsigned")
    assert response.json()["errcode"] == 310000
    _, answer = post(chat, "dingtalk", "late but inside the hour", secret=secret, now=NOW - timedelta(minutes=59))
    assert answer.outcome == "delivered"
    assert [m.text for m in chat.received("dingtalk")] == ["hello", "late but inside the hour"]


def test_feishu_stand_in_checks_the_signature_and_its_hour(chat):
    secret = chat.secrets["feishu"]
    assert post(chat, "feishu", "hello", secret=secret)[1].outcome == "delivered"
    response, answer = post(chat, "feishu", "wrong", secret="SECwrong")
    assert response.json()["code"] == 19021 and answer.outcome == "failed"
    response, _ = post(chat, "feishu", "stale", secret=secret, now=NOW + timedelta(hours=2))
    assert response.json()["code"] == 19021
    assert [m.text for m in chat.received("feishu")] == ["hello"]


def test_generic_stand_in_checks_the_hmac(chat):
    good = channel(preset="generic", body='{"text": {{ text | tojson }}}', secret_env="S", signature_header="X-Signature-256")
    for secret, status in ((chat.secrets["generic"], 204), ("other", 401)):
        request = build(good, ChannelSecrets(url=chat.url("generic"), secret=secret), Message(text="x"), 0)
        assert requests.post(request.url, data=request.body, headers=request.headers, timeout=5).status_code == status


def test_rate_limits_answer_with_the_vendors_codes(chat):
    secret = chat.secrets["dingtalk"]
    answers = [post(chat, "dingtalk", f"m{i}", secret=secret)[1] for i in range(21)]
    assert [a.outcome for a in answers[:20]] == ["delivered"] * 20
    assert answers[20].outcome == "retry" and answers[20].retry_after == 600.0
    chat.clock.advance(timedelta(minutes=5))  # still inside the 10 minutes of throttling
    assert post(chat, "dingtalk", "again", secret=secret)[1].outcome == "retry"
    chat.clock.advance(timedelta(minutes=6))
    assert post(chat, "dingtalk", "after", secret=secret)[1].outcome == "delivered"
    wecom = [post(chat, "wecom", f"m{i}")[1] for i in range(21)]
    assert wecom[19].outcome == "delivered" and wecom[20].outcome == "retry" and wecom[20].retry_after == 60.0


def test_teams_flow_without_an_adaptive_card_fails_its_run(chat):
    response = requests.post(chat.url("teams"), json={"text": "plain"}, timeout=5)
    assert response.status_code == 202 and chat.received("teams") == [] and len(chat.failed_runs) == 1


# --- the outbox: atomic on both backends -------------------------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
def queue(request, tmp_path):
    if request.param == "sqlite":
        return ReconcileQueue.from_settings(Settings(data_dir=tmp_path / "data"))
    server = request.getfixturevalue("redis_server")
    q = ReconcileQueue.from_settings(Settings(data_dir=tmp_path / "data", queue_url=server.url))
    q.chat.outbox.clear()
    q.huey.flush()
    return q


def test_outbox_steps_happen_once_whoever_races(queue):
    outbox = queue.chat.outbox
    payload = {"text": "t"}
    eid = entry_id("jira", "10000", "spc-sla-breach-first_response", "ops")
    results: dict[str, list] = {"stage": [], "release": [], "claim": []}

    def worker():
        results["stage"].append(outbox.stage("jira", "10000", "spc-sla-breach-first_response", "ops", payload))
        results["release"].append(outbox.release(eid, time.time()))
        results["claim"].append(outbox.claim(eid, time.time()) is not None)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results["stage"]) == 1 and sum(results["release"]) == 1 and sum(results["claim"]) <= 1
    # Whoever lost the claim race before the release tries again: still one winner in all.
    later = [outbox.claim(eid, time.time()) is not None for _ in range(3)]
    assert sum(results["claim"]) + sum(later) == 1
    outbox.finish(eid, "sent")
    assert outbox.get(eid).state == "sent" and outbox.claim(eid, time.time()) is None
    assert outbox.outstanding("jira", "10000", time.time()) == []


def test_outbox_recovers_what_a_killed_worker_left(queue):
    outbox = queue.chat.outbox
    outbox.stage("jira", "1", "m", "ops", {"text": "t"})
    assert [e.state for e in outbox.outstanding("jira", "1", time.time())] == ["staged"]
    eid = entry_id("jira", "1", "m", "ops")
    outbox.release(eid, time.time())
    assert outbox.claim(eid, time.time()) is not None
    # Killed while sending: nobody else may take it until its lease runs out; then one may.
    assert outbox.claim(eid, time.time()) is None
    later = time.time() + 1000
    assert [e.state for e in outbox.outstanding("jira", "1", later)] == ["sending"]
    assert outbox.requeue(eid, later) and not outbox.requeue(eid, later)
    assert outbox.claim(eid, later) is not None


def finished_and_waiting(outbox):
    """One sent entry, one failed, one still staged – of two tickets."""
    for ticket, marker in (("1", "a"), ("1", "b"), ("2", "c")):
        outbox.stage("jira", ticket, marker, "ops", {"text": marker})
    for marker, state in (("a", "sent"), ("b", "failed")):
        eid = entry_id("jira", "1", marker, "ops")
        outbox.release(eid, time.time())
        outbox.claim(eid, time.time())
        outbox.finish(eid, state, "why")
    return entry_id("jira", "2", "c", "ops")


def test_sqlite_outbox_removes_entries_finished_longer_ago_than_the_retention(tmp_path):
    from connector.channels.outbox import RETENTION_SECONDS

    outbox = ReconcileQueue.from_settings(Settings(data_dir=tmp_path / "data")).chat.outbox
    staged = finished_and_waiting(outbox)
    assert outbox.prune(time.time() + RETENTION_SECONDS - 60) == 0  # not yet
    assert outbox.prune(time.time() + RETENTION_SECONDS + 60) == 2
    assert [(e.id, e.state) for e in outbox.entries()] == [(staged, "staged")]  # never an unsent one


def test_sqlite_outbox_prunes_on_its_own_at_most_hourly(tmp_path, monkeypatch):
    from connector.channels import outbox as module

    outbox = ReconcileQueue.from_settings(Settings(data_dir=tmp_path / "data")).chat.outbox
    finished_and_waiting(outbox)
    clock = [time.time() + module.RETENTION_SECONDS + 60]
    monkeypatch.setattr(module.time, "time", lambda: clock[0])
    outbox.stage("jira", "3", "d", "ops", {"text": "d"})  # the first stage in an hour prunes
    assert sorted(e.state for e in outbox.entries()) == ["staged", "staged"]


def test_redis_outbox_lets_finished_entries_expire(redis_server, tmp_path):
    from connector.channels.outbox import RETENTION_SECONDS

    queue = ReconcileQueue.from_settings(Settings(data_dir=tmp_path / "data", queue_url=redis_server.url))
    outbox = queue.chat.outbox
    outbox.clear()
    staged = finished_and_waiting(outbox)
    conn = queue.huey.storage.conn
    for marker in ("a", "b"):
        ttl = conn.ttl(outbox._key(entry_id("jira", "1", marker, "ops")))
        assert RETENTION_SECONDS - 60 < ttl <= RETENTION_SECONDS
    assert conn.ttl(outbox._key(staged)) == -1  # an unsent message never expires
    # The ticket's set names only what may still need recovering.
    assert conn.smembers(outbox._ticket_key("jira", "1")) == set()
    assert sorted(e.state for e in outbox.entries()) == ["failed", "sent", "staged"]


# --- the delivery task --------------------------------------------------------------------------


def sent_count(channel: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("connector_chat_messages_total", {"channel": channel, "outcome": outcome}) or 0.0


@pytest.fixture
def delivery(tmp_path, chat, monkeypatch):
    for name, value in chat.environment().items():
        monkeypatch.setenv(name, value)
    config = load_config(chat_config_file(tmp_path))
    settings = Settings(data_dir=tmp_path / "data")
    queue = ReconcileQueue.from_settings(settings)
    runtime = Runtime(settings=settings, config=config, clock=chat.clock.now)
    queue.chat.runtime = lambda: runtime  # as the worker gives it
    yield queue.chat


def ready(delivery, channel="ops-dingtalk", marker="m1") -> str:
    delivery.outbox.stage("jira", "10000", marker, channel, {"text": "P0 breached", "ticket": {"key": "SUP-1"}})
    eid = entry_id("jira", "10000", marker, channel)
    assert delivery.outbox.release(eid, time.time())
    return eid


def test_a_500_is_retried_with_back_off_then_sent(delivery, chat):
    chat.faults.inject(500, times=1, path_prefix="/dingtalk")
    eid = ready(delivery)
    assert delivery.run(eid) == "retry"
    entry = delivery.outbox.get(eid)
    assert entry.state == "ready" and entry.attempts == 1 and entry.reason == "HTTP 500"
    # The next try is a queued task due after the back-off (5 s first), not a sleeping worker.
    [task] = delivery.huey.pending()
    assert task.name.endswith("deliver_chat") and task.args == (eid,)
    assert task.eta >= datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=4)
    assert delivery.run(eid) == "sent" and len(chat.received("dingtalk")) == 1
    assert delivery.run(eid) == "not_claimed" and len(chat.received("dingtalk")) == 1


def test_retry_after_and_rate_limit_codes_set_the_next_try(delivery, chat):
    assert delivery.delay(0, 30.0) == 30.0 and delivery.delay(0, None) == 5.0 and delivery.delay(20, None) == 900.0
    chat.faults.inject(200, times=1, path_prefix="/wecom", body={"errcode": 45009, "errmsg": "api freq out of limit"})
    eid = ready(delivery, "ops-wecom")
    before = time.time()
    assert delivery.run(eid) == "retry"
    assert delivery.outbox.get(eid).next_at >= before + 60


def test_a_permanent_error_is_reported_once_not_retried(delivery, chat, caplog):
    chat.tokens["slack"] = "rotated"  # the webhook was removed on Slack's side: 404 no_service
    eid = ready(delivery, "ops-slack")
    before = sent_count("ops-slack", "failed")
    with caplog.at_level(logging.WARNING, logger="connector.channels"):
        assert delivery.run(eid) == "failed"
    assert sent_count("ops-slack", "failed") == before + 1
    [record] = [r for r in caplog.records if r.message == "chat.failed"]
    assert record.channel == "ops-slack" and record.reason.startswith("HTTP 404")
    assert "hooks" not in record.reason and "CHAT_SLACK_URL" not in record.reason
    assert delivery.outbox.get(eid).state == "failed" and delivery.huey.pending() == []
    assert delivery.run(eid) == "not_claimed"


def test_retries_end_after_max_attempts(delivery, chat):
    delivery.max_attempts = 3
    chat.faults.inject(503, times=None, path_prefix="/feishu")
    eid = ready(delivery, "ops-feishu")
    assert [delivery.run(eid) for _ in range(3)] == ["retry", "retry", "failed"]
    entry = delivery.outbox.get(eid)
    assert entry.state == "failed" and entry.reason.startswith("gave up after 3 attempts")
    assert chat.received("feishu") == []


def test_a_channel_removed_from_the_config_fails_the_entry(delivery):
    eid = ready(delivery, "gone")
    assert delivery.run(eid) == "failed"
    assert "no longer in the configuration" in delivery.outbox.get(eid).reason


def test_a_secret_in_an_error_never_reaches_the_log(delivery, chat, caplog):
    secret_url = chat.url("slack")
    chat.faults.inject(400, times=1, path_prefix="/slack", body=f"invalid_payload for {secret_url}")
    eid = ready(delivery, "ops-slack")
    with caplog.at_level(logging.INFO):
        delivery.run(eid)
    text = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert chat.tokens["slack"] not in text


# --- the rules: which notices carry chat messages -------------------------------------------


def chat_of(plan, rule: str) -> list:
    return [(a.marker, n.channel, n.text) for a in plan.actions if a.rule == rule and a.type == "comment"
            for n in a.chat]


@pytest.fixture
def routed(tmp_path):
    return load_config(chat_config_file(tmp_path, {"ops-slack": ALL_CHANNELS["ops-slack"]}, escalation=True))


def test_breach_notice_of_a_p0_carries_the_message_under_its_marker(routed):
    from connector.rules.engine import evaluate
    from tests.factories import at, ticket

    plan = evaluate(ticket(priority="P0", created="2026-11-20 09:00"), at("2026-11-20 10:00"), routed)
    [(marker, channel, text)] = chat_of(plan, "sla")
    assert marker == "spc-sla-breach-first_response" and channel == "ops-slack"
    assert text.startswith("SLA breached on SUP-1 (P0)") and text.endswith("SUP-1 VPN drops")
    # The escalation levels that fired carry theirs, each under its own marker.
    assert {m for m, _, _ in chat_of(plan, "escalation")} == {"spc-escalation-l2-first-response"}


def test_a_p2_breach_carries_no_message_and_nothing_repeats(routed):
    from connector.rules.engine import evaluate
    from tests.factories import at, ticket

    p2 = evaluate(ticket(priority="P2", created="2026-11-19 09:00"), at("2026-11-20 10:00"), routed)
    assert any(a.rule == "sla" and a.type == "comment" for a in p2.actions) and chat_of(p2, "sla") == []
    # Once the notice's marker is on the ticket, no comment and so no message is planned again.
    done = ticket(priority="P0", created="2026-11-20 09:00",
                  labels=("spc-sla-breach-first_response", "spc-escalation-l2-first-response"))
    assert chat_of(evaluate(done, at("2026-11-20 10:00"), routed), "sla") == []


def test_a_message_template_and_the_list_shorthand(tmp_path):
    from connector.rules.engine import evaluate
    from tests.factories import at, ticket

    path = chat_config_file(tmp_path, {"ops-slack": ALL_CHANNELS["ops-slack"]})
    text = path.read_text()
    text = text.replace("channels:\n        to:\n        - ops-slack\n        priorities:\n        - P0\n        - P1\n",
                        "channels: [ops-slack]\n")
    path.write_text(text)
    config = load_config(path)
    sla = next(r for r in config.rules if r.id == "sla")  # the default tier: the ticket has no organization
    assert sla.notify.breach.channels.to == ["ops-slack"] and sla.notify.breach.channels.priorities == []
    sla.notify.breach.channels.template = "{{ ticket.priority }} {{ clock.metric }}: {{ notice[:12] }}"
    plan = evaluate(ticket(priority="P3", created="2026-11-18 09:00"), at("2026-11-20 10:00"), config)
    assert [t for _, _, t in chat_of(plan, "sla")] == ["P3 first_response: SLA breached"]


def test_an_escalation_level_naming_an_unknown_channel_is_reported(tmp_path):
    path = chat_config_file(tmp_path, {"ops": ALL_CHANNELS["ops-slack"]}, escalation=True)
    path.write_text(path.read_text().replace("- ops\n", "- nowhere\n"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    paths = [p.path for p in caught.value.problems]
    assert "rules[5].notify.breach.channels.to[0] (rule 'sla')" in paths
    assert "rules[6].levels[0].comment.channels.to[0] (rule 'escalation')" in paths
