"""A whole connector on local ports: sandbox Jira → signed webhook → receiver → queue → worker.

The demo and the end-to-end tests need the real path, not shortcuts: the sandbox sends
signed webhooks over HTTP to the Flask receiver, which stores a reconcile in a real SQLite
huey queue, which worker threads run against the sandbox through the real `jira` client.
One clock (the sandbox's) is the connector's "now", so back-dated tickets and moved time
give exact, repeatable SLA results: SLA timers go to the deadline index, and a test moves
the clock and calls `pump()` (what the worker's pump thread does every 10 s) and
`sweep(...)` (what the worker's periodic task does) instead of waiting.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from huey.signals import SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_EXECUTING, SIGNAL_RETRYING

from connector.config import SupportConfig, load_config
from connector.queue.reconcile_queue import ReconcileQueue
from connector.queue.worker import WorkerThreads
from connector.reconcile import Runtime, set_runtime
from connector.sandbox.chat import ChatSandbox
from connector.sandbox.jira import JiraSandbox
from connector.sandbox.server import Clock, ThreadedServer
from connector.sandbox.zendesk import GROUPS as ZENDESK_GROUPS
from connector.sandbox.zendesk import ZendeskSandbox
from connector.settings import DEFAULT_CONFIG, Settings
from connector.sync.pump import DeadlinePump
from connector.sync.sweep import SweepKind, SweepReport, Sweeper

WEBHOOK_SECRET = "local-stack-webhook-secret"


class LocalStack:
    """Start with `with LocalStack(data_dir) as stack:`; `stack.jira` and `stack.zendesk` are
    the sandboxes (Zendesk only with `zendesk=True`). `mode="observe"` runs the connector in
    observe mode: everything runs, nothing is written, `stack.queue.observations` records it."""

    def __init__(self, data_dir: Path, *, config_path: Path = DEFAULT_CONFIG, clock: Clock | None = None,
                 workers: int = 2, timezone: str = "Asia/Shanghai", validate: bool = True,
                 zendesk: bool = False, mode: str = "enforce", chat: bool = False) -> None:
        self.clock = clock or Clock(frozen=False)
        self.config: SupportConfig = load_config(config_path)
        self.jira = JiraSandbox(clock=self.clock, timezone=timezone, webhook_secret=WEBHOOK_SECRET, validate=validate)
        self.zendesk: ZendeskSandbox | None = None
        self.settings = Settings(config_path=config_path, data_dir=data_dir, jira_user=self.jira.email,
                                 jira_token=self.jira.api_token, jira_webhook_secrets=(WEBHOOK_SECRET,),
                                 mode=mode)
        if zendesk:
            self.zendesk = ZendeskSandbox(clock=self.clock, webhook_secret=WEBHOOK_SECRET)
            self.settings = replace(self.settings, zendesk_email=self.zendesk.email,
                                    zendesk_token=self.zendesk.api_token, zendesk_webhook_secrets=(WEBHOOK_SECRET,))
            # What an admin maps once: the rules' group names to the account's group ids.
            self.config.platforms.zendesk.groups = {name: str(group_id) for name, group_id in ZENDESK_GROUPS.items()}
        self.queue = ReconcileQueue.from_settings(self.settings)
        # The team-chat stand-in (`chat=True`): its webhook URLs and secrets go into the
        # environment as CHAT_<PRESET>_URL / CHAT_<PRESET>_SECRET while the stack runs.
        self.chat: ChatSandbox | None = ChatSandbox(clock=self.clock) if chat else None
        self._saved_environment: dict[str, str | None] = {}
        self._executing = 0
        self._busy = threading.Lock()
        for signal in (SIGNAL_EXECUTING, SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_RETRYING):
            self.queue.huey.signal(signal)(self._track)
        self._workers = WorkerThreads(self.queue, workers=workers, poll_interval=0.02)
        self.receiver: ThreadedServer | None = None
        self.runtime: Runtime | None = None

    def _track(self, signal: str, task, *args) -> None:
        with self._busy:
            self._executing += 1 if signal == SIGNAL_EXECUTING else -1

    def pump(self) -> int:
        """Queue a reconcile for every SLA timer due at the stack's clock; return how many."""
        return DeadlinePump(self.queue, self.clock.now).pump()

    def sweeper(self) -> Sweeper:
        if self.runtime is None:
            raise RuntimeError("start the stack before sweeping")
        return Sweeper(self.runtime, self.queue)

    def sweep(self, kind: SweepKind | str = SweepKind.RECENT, platform: str = "jira") -> SweepReport:
        """Run one sweep now (the worker's periodic task does this on its schedule)."""
        return self.sweeper().run(platform, kind)

    def start(self) -> "LocalStack":
        from webhooks.app import create_app

        self.jira.start()
        self.settings = replace(self.settings, jira_url=self.jira.base_url)
        if self.chat:
            self.chat.start()
            for name, value in self.chat.environment().items():
                self._saved_environment[name] = os.environ.get(name)
                os.environ[name] = value
        if self.zendesk:
            self.zendesk.start()
            self.settings = replace(self.settings, zendesk_url=self.zendesk.base_url)
        self.receiver = ThreadedServer(create_app(self.settings, queue=self.queue))
        receiver_url = self.receiver.start()
        self.jira.set_webhook(f"{receiver_url}/webhooks/jira", WEBHOOK_SECRET)
        if self.zendesk:
            self.zendesk.set_webhook(f"{receiver_url}/webhooks/zendesk", WEBHOOK_SECRET)
        self.runtime = Runtime(settings=self.settings, config=self.config, clock=self.clock.now,
                               schedule=self.queue.deadlines.record, lookup=self.queue.deadlines.entry,
                               observations=self.queue.observations, numbers=self.queue.problem_numbers,
                               chat=self.queue.chat)
        set_runtime(self.runtime)
        self._workers.start()
        return self

    def stop(self) -> None:
        self._workers.stop()
        if self.receiver:
            self.receiver.stop()
        self.jira.stop()
        if self.zendesk:
            self.zendesk.stop()
        if self.chat:
            self.chat.stop()
            for name, value in self._saved_environment.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        set_runtime(None)

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _due_soon(self, horizon: float = 5.0) -> bool:
        """A deferred task (lock retry, 429 backoff) comes back within `horizon` seconds; SLA
        timers days ahead do not count."""
        limit = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(seconds=horizon)
        return any(task.eta is not None and task.eta <= limit for task in self.queue.huey.scheduled())

    def settle(self, timeout: float = 20.0) -> None:
        """Wait until every webhook is delivered and every queued reconcile has run."""
        deadline = time.monotonic() + timeout
        quiet_polls = 0
        while time.monotonic() < deadline:
            self.jira.flush_webhooks(timeout=max(0.1, deadline - time.monotonic()))
            if self.zendesk:
                self.zendesk.flush_webhooks(timeout=max(0.1, deadline - time.monotonic()))
            with self._busy:
                busy = self._executing > 0
            if not busy and self.queue.pending_count() == 0 and not self._due_soon():
                quiet_polls += 1
                if quiet_polls >= 3:
                    return
            else:
                quiet_polls = 0
            time.sleep(0.03)
        raise TimeoutError(f"the connector did not settle within {timeout} s")
