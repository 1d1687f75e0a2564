"""Real processes for the Redis, fault and hot-reload tests and the load bench.

The claims these tests check – several receivers and workers share one queue, a worker
killed with SIGKILL loses nothing, a stopped Redis makes the receiver answer 503 – are
about processes, sockets and files, so they are tested with `python -m connector.cli`
processes, a `redis-server` of the test's own, and the sandbox Jira in the test process
(so the test can seed tickets, inject faults and count calls).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
REDIS_SERVER = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
# The Redis-mode tests need a real redis-server. On a laptop without one they are skipped;
# `.ci/run` installs it and sets CONNECTOR_TESTS_REQUIRE_REDIS=1, which turns that skip into a
# failure, so CI can never pass with the Redis half of the suite silently left out.
REDIS_REQUIRED = os.environ.get("CONNECTOR_TESTS_REQUIRE_REDIS") == "1"
REDIS_MISSING = "redis-server is not installed (apt-get install redis-server; .ci/run does it)"
needs_redis = pytest.mark.skipif(REDIS_SERVER is None and not REDIS_REQUIRED, reason=REDIS_MISSING)


def skip_without_redis() -> None:
    """Skip the calling test where no redis-server exists – unless CI requires it (see above)."""
    if REDIS_SERVER is None and not REDIS_REQUIRED:
        pytest.skip(REDIS_MISSING)
WEBHOOK_SECRET = "fault-test-webhook-secret"
JIRA_USER = "connector@example.com"
JIRA_TOKEN = "sandbox-api-token"

# The smallest process that shows duplicates: one public comment and one transition per
# ticket. No calendar, so separate processes on real time give the same plan at any hour.
INTAKE_CONFIG = """\
version: 1
rules:
  - id: intake
    type: required-fields
    fields: [environment]
    comment:
      public: true
      template: "{label}: please add{{% for item in missing %}} {{{{ item }}}}{{% endfor %}}."
"""


def intake_config(path: Path, label: str = "Intake") -> Path:
    path.write_text(INTAKE_CONFIG.format(label=label), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


class RedisServer:
    """A redis-server of our own on a free port, stopped with the test: no persistence, or
    with `appendonly_dir` the append-only file (fsync every second) in that directory."""

    def __init__(self, port: int | None = None, *, appendonly_dir: Path | None = None):
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed; apt-get install redis-server")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.appendonly_dir = appendonly_dir
        self.process: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        persistence = ["--appendonly", "no"]
        if self.appendonly_dir is not None:
            persistence = ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.appendonly_dir)]
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_until(self.ping, timeout=10):
            raise RuntimeError(f"redis-server did not answer on port {self.port}")
        return self

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


def connector_env(data_dir: Path, config: Path, *, queue_url: str | None = None, jira_url: str | None = None,
                  **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "JIRA_", "ZENDESK_"))}
    env.update({
        "CONNECTOR_DATA_DIR": str(data_dir), "CONNECTOR_CONFIG": str(config),
        "JIRA_USER": JIRA_USER, "JIRA_TOKEN": JIRA_TOKEN, "JIRA_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PYTHONUNBUFFERED": "1",
    })
    if queue_url:
        env["CONNECTOR_QUEUE_URL"] = queue_url
    if jira_url:
        env["JIRA_URL"] = jira_url
    env.update(extra)
    return env


class ConnectorProcess:
    """`python -m connector.cli ARGS` with its stderr (JSON log lines) in a file."""

    def __init__(self, name: str, args: Iterable[str], env: Mapping[str, str], log_dir: Path, **popen):
        self.name = name
        self.args = list(args)
        self.env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self._popen = popen
        self.process: subprocess.Popen | None = None

    def start(self) -> "ConnectorProcess":
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "connector.cli", *self.args], env=self.env, cwd=ROOT,
                                        stdout=log, stderr=log, **self._popen)
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self) -> list[dict]:
        """The JSON log lines (gunicorn's own plain lines are skipped)."""
        found = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    pass
        return found


def receiver(name: str, env: Mapping[str, str], log_dir: Path, port: int | None = None, **popen) -> tuple[ConnectorProcess, str]:
    port = port or free_port()
    process = ConnectorProcess(name, ["serve", "--no-worker", "--port", str(port)], env, log_dir, **popen).start()
    return process, f"http://127.0.0.1:{port}"


def worker(name: str, env: Mapping[str, str], log_dir: Path, threads: int = 2) -> ConnectorProcess:
    return ConnectorProcess(name, ["worker", "--workers", str(threads)], env, log_dir).start()


def wait_ready(base_url: str, process: ConnectorProcess, timeout: float = 30) -> None:
    def up() -> bool:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited with {process.process.returncode}:\n{process.log()[-3000:]}")
        try:
            return requests.get(base_url + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    if not wait_until(up, timeout=timeout, interval=0.1):
        raise RuntimeError(f"{process.name} did not answer /healthz within {timeout} s:\n{process.log()[-3000:]}")


def jira_headers(body: bytes, delivery_id: str, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature": f"sha256={signature}",
            "X-Atlassian-Webhook-Identifier": delivery_id}


def post_event(session: requests.Session, base_url: str, body: bytes, delivery_id: str) -> int:
    return session.post(base_url + "/webhooks/jira", data=body, headers=jira_headers(body, delivery_id),
                        timeout=10).status_code


def live_jira() -> Iterator:
    """Body of a `jira` fixture (`yield from live_jira()`): the sandbox Jira the process tests
    run against – real time, webhooks captured for the test to deliver, the credentials and
    webhook secret of `connector_env` – started, and stopped at the end."""
    from connector.sandbox.jira import JiraSandbox
    from connector.sandbox.server import Clock

    sandbox = JiraSandbox(clock=Clock(frozen=False), validate=False, deliver_webhooks=False, email=JIRA_USER,
                          api_token=JIRA_TOKEN, webhook_secret=WEBHOOK_SECRET)
    sandbox.start()
    yield sandbox
    sandbox.stop()


def connector_changes(jira, key: str) -> tuple[int, int, str]:
    """(connector comments, connector status changes, status) of one sandbox Jira issue."""
    from connector.sandbox.jira import CONNECTOR

    issue = jira.issue(key)
    comments = [c for c in issue["fields"]["comment"]["comments"] if c["author"]["accountId"] == CONNECTOR]
    transitions = [h for h in issue["changelog"]["histories"] if h["author"]["accountId"] == CONNECTOR
                   and any(item["field"] == "status" for item in h["items"])]
    return len(comments), len(transitions), issue["fields"]["status"]["name"]


def deliveries_twice_shuffled(sandbox, seed_value: int) -> list[tuple[bytes, dict[str, str]]]:
    """Every webhook delivery the sandbox captured, each twice, in a shuffled order (as a
    platform retrying under load may send them); the capture is emptied."""
    deliveries = [(d.body, d.headers) for d in sandbox.webhook_log] * 2
    random.Random(seed_value).shuffle(deliveries)
    sandbox.webhooks.clear()
    return deliveries


def deliver(urls: list[str], deliveries, platform: str, connections: int = 8) -> Counter:
    """POST every delivery to `/webhooks/<platform>`, round-robin over the receivers; a 5xx is
    retried on the next receiver, as Jira and Zendesk retry; the final statuses, counted."""
    sessions = threading.local()

    def send(item) -> int:
        index, (body, headers) = item
        if not hasattr(sessions, "http"):
            sessions.http = requests.Session()
        status = 0
        for attempt in range(20):
            status = sessions.http.post(urls[(index + attempt) % len(urls)] + f"/webhooks/{platform}", data=body,
                                        headers=headers, timeout=10).status_code
            if status < 500:
                return status
            time.sleep(0.5)
        return status

    with ThreadPoolExecutor(connections) as pool:
        return Counter(pool.map(send, enumerate(deliveries)))


class Cluster:
    """Receivers and workers of one fault test against one sandbox; every process is stopped
    at the end and its log kept. `env` is the processes' environment (connector_env plus the
    platform's credentials)."""

    def __init__(self, tmp_path: Path, platform: str, sandbox, env: Mapping[str, str], queue_url: str | None):
        from connector.queue.reconcile_queue import ReconcileQueue
        from connector.settings import Settings
        from connector.sync.state import SyncState

        self.tmp_path = tmp_path
        self.platform = platform
        self.sandbox = sandbox
        self.env = dict(env)
        self.queue = ReconcileQueue.from_settings(Settings(data_dir=tmp_path / "data", queue_url=queue_url))
        # The sweeps run when a test asks (`connector sync --once`), not on the workers'
        # minute tick, so what the test measures does not depend on the wall clock's minute.
        state = SyncState(self.queue.huey)
        now = sandbox.clock.now()
        for kind in ("full", "recent"):
            state.mark_completed(platform, kind, now)
        self.processes: list[ConnectorProcess] = []
        self.receiver_urls: list[str] = []
        self._names: dict[str, int] = {}

    def _name(self, kind: str) -> str:
        self._names[kind] = self._names.get(kind, 0) + 1
        return f"{kind}-{self._names[kind]}"

    def add_receiver(self, **popen) -> str:
        process, url = receiver(self._name("receiver"), self.env, self.tmp_path, **popen)
        self.processes.append(process)
        wait_ready(url, process)
        self.receiver_urls.append(url)
        return url

    def add_worker(self, threads: int = 2) -> ConnectorProcess:
        process = worker(self._name("worker"), self.env, self.tmp_path, threads)
        self.processes.append(process)
        return process

    def workers(self) -> list[ConnectorProcess]:
        return [p for p in self.processes if p.name.startswith("worker") and p.alive()]

    def lock_key(self, ticket_id: str) -> str:
        return f"{self.queue.huey.name}.lock.reconcile:{self.platform}:{ticket_id}"

    def kill_lock_holder(self, ticket_id: str):
        """kill -9 the worker process holding the ticket's lock and start a replacement;
        returns (the lock's holder record, the replacement process)."""
        from connector.queue.locks import Holder

        _, holder = self.queue.huey.get(self.lock_key(ticket_id), peek=True)
        assert isinstance(holder, Holder)
        [victim] = [p for p in self.workers() if p.pid == holder.pid]
        victim.kill9()
        return holder, self.add_worker()

    def settled(self, quiet: float = 1.5, timeout: float = 90) -> None:
        """Wait until the queue is empty and the sandbox has seen no request for `quiet` seconds."""
        last = (-1, 0.0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            calls = sum(self.sandbox.calls.values())
            if calls != last[0] or self.queue.pending_count():
                last = (calls, time.monotonic())
            elif time.monotonic() - last[1] >= quiet:
                return
            time.sleep(0.1)
        raise AssertionError(f"the cluster did not settle within {timeout} s\n{self.logs()}")

    def sweep(self) -> str:
        process = ConnectorProcess(self._name("sync"), ["sync", "--once"], self.env, self.tmp_path).start()
        assert process.process.wait(60) == 0, process.log()
        return process.log()

    def stop(self) -> None:
        for process in self.processes:
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()[-4000:]}" for p in self.processes)
