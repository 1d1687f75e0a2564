"""Config hot reload: pick up an edited rule file without restarting, and never a broken one.

Admins change rules in git and roll the files out; restarting every worker for that would
drop the SLA pump's rhythm and cost a full sweep. So a running process watches its
`CONNECTOR_CONFIG` path two ways:

- **SIGHUP** (`systemctl reload`, `kill -HUP`): check now.
- **File change**: the files' modification times and sizes are polled every few seconds
  (`CONNECTOR_CONFIG_POLL_INTERVAL`, default 5 s); polling needs no inotify, and works on
  the symlink swaps a Kubernetes ConfigMap volume does.

A new config that validates replaces the old one for the *next* reconcile (a reconcile
already running finishes with the config it started with). One that does not validate is
rejected: its problems (file:line, key path, what is allowed – the `check-config` text) go
to the log as `config.reload_rejected`, `/readyz` shows them, and the last good config
keeps running. Readiness stays 200 in that case on purpose: every receiver reads the same
files, so answering 503 would take the whole fleet out of the load balancer because of a
typo, while the running config is still good.

`/readyz` reads the verdict and never checks by itself (it used to reload under the lock,
so a hostile hot reload hung readiness and then the receiver). Checks run in the poll
thread or on SIGHUP, and are bounded by what loading allows (no YAML aliases, bounded
templates: `connector.config`, `connector.templates`); `/readyz` reads the published
snapshot, with the outcome of the last reload (`ok`/`failed`, when, the error) and a check
that has been running for longer than `SLOW_CHECK`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from connector.config import ConfigError, ConfigProblem, SupportConfig, config_files, load_config
from connector.settings import fields

log = logging.getLogger(__name__)

# CONNECTOR_CONFIG_POLL_INTERVAL's default (`connector.settings`).
DEFAULT_POLL_INTERVAL = timedelta(seconds=fields()["config_poll_interval"].default)
# A check running longer than this is shown on /readyz (loading is bounded, so it should not happen).
SLOW_CHECK = timedelta(seconds=5)

Fingerprint = tuple[tuple[str, int, int], ...]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat(timespec="seconds") if when else None


def _fingerprint(path: Path) -> Fingerprint:
    """What changes when an admin edits, adds, removes or swaps a rule file."""
    try:
        files = config_files(path)
    except ConfigError:
        return ()
    found = []
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            continue
        found.append((str(file), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


@dataclass(frozen=True)
class ReloadState:
    """What the last checks found, published as one immutable value so that `/readyz` reads
    it without waiting for a check that is running."""

    config: SupportConfig | None = None
    loaded_at: datetime | None = None
    rejected: ConfigError | None = None
    rejected_at: datetime | None = None
    checked_at: datetime | None = None
    checking_since: datetime | None = None


class ConfigWatcher:
    """The last good config of one path, and the verdict on the newest version of its files.

    `check()` reloads when the files changed (or always, with `force`); `on_change` is
    called with every newly accepted config. Checks are serialised by a lock; the verdict is
    read (`problem()`, `reload_state()`) from a snapshot without that lock, so a slow check
    never makes a reader wait – `/readyz` only reads, it never checks.
    """

    def __init__(self, path: Path | str, *, on_change: Callable[[SupportConfig], None] | None = None,
                 poll_interval: timedelta = DEFAULT_POLL_INTERVAL):
        self.path = Path(path)
        self._on_change = on_change
        self._poll_interval = poll_interval  # Settings.config_poll_every (CONNECTOR_CONFIG_POLL_INTERVAL)
        self._lock = threading.Lock()
        self._fingerprint: Fingerprint | None = None
        self._state = ReloadState()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_pid: int | None = None
        self._starting = threading.Lock()

    # The last good config and the last rejection, as attributes (read from the snapshot).
    config = property(lambda self: self._state.config)
    loaded_at = property(lambda self: self._state.loaded_at)
    rejected = property(lambda self: self._state.rejected)
    rejected_at = property(lambda self: self._state.rejected_at)

    def check(self, *, force: bool = False) -> str:
        """Reload if needed; return "unchanged", "reloaded" or "rejected"."""
        with self._lock:
            state = self._state
            fingerprint = _fingerprint(self.path)
            if not force and fingerprint == self._fingerprint and (state.config is not None or state.rejected is not None):
                return "unchanged"
            self._fingerprint = fingerprint
            self._state = replace(state, checking_since=_now())
            try:
                config = load_config(self.path)
            except Exception as exc:
                # load_config reports every problem of the files as a ConfigError; anything
                # else is a bug met while checking, and still a verdict on this version.
                error = exc if isinstance(exc, ConfigError) else ConfigError([ConfigProblem(
                    str(self.path), None, "", f"the config could not be checked ({type(exc).__name__}); "
                    "run `connector check-config` and report the output")])
                now = _now()
                self._state = replace(state, rejected=error, rejected_at=now, checked_at=now, checking_since=None)
                log.error("config.reload_rejected", extra={
                    "path": str(self.path), "problems": [str(p) for p in error.problems],
                    "running": "the last good config" if state.config is not None else "no config",
                })
                return "rejected"
            first = state.config is None
            now = _now()
            self._state = ReloadState(config=config, loaded_at=now, checked_at=now)
        if not first:
            log.info("config.reloaded", extra={"path": str(self.path), "rules": len(config.rules)})
        if self._on_change is not None:
            self._on_change(config)
        return "reloaded"

    def problem(self) -> dict[str, str] | None:
        """What `/readyz` reports about the config; `blocking` is "yes" when no config runs."""
        state = self._state
        if state.rejected is None:
            return None
        problems = "; ".join(str(p) for p in state.rejected.problems)
        at = state.rejected_at.isoformat(timespec="seconds") if state.rejected_at else None
        if state.config is None:
            return {"check": "config", "blocking": "yes", "error": f"config does not load: {problems}", "at": at,
                    "fix": f"run `connector check-config {self.path}` and fix what it lists, or set CONNECTOR_CONFIG"}
        return {
            "check": "config", "blocking": "no",
            "error": f"the new config was rejected: {problems}", "at": at,
            "running": f"the last good config, loaded {state.loaded_at.isoformat(timespec='seconds')}",
            "fix": f"run `connector check-config {self.path}`, fix what it lists; it is picked up by itself",
        }

    def reload_state(self) -> dict[str, object]:
        """The last reload for `/readyz`: `ok` or `failed` (with the error), when, and a check
        that has been running for more than a few seconds."""
        state = self._state
        if state.rejected is not None:
            body: dict[str, object] = {"reload": "failed", "at": _iso(state.rejected_at),
                                       "error": "; ".join(str(p) for p in state.rejected.problems)[:2000],
                                       "running": _iso(state.loaded_at) if state.config is not None else None}
        elif state.config is not None:
            body = {"reload": "ok", "at": _iso(state.loaded_at), "rules": len(state.config.rules)}
        else:
            body = {"reload": "pending"}
        since = state.checking_since
        if since is not None and _now() - since > SLOW_CHECK:
            body["checking_since"] = _iso(since)
        return body

    # -- watching ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Ask the poll thread to check now (safe from a signal handler: it only sets an event)."""
        self._wake.set()

    def install_sighup(self) -> None:
        """Check on SIGHUP. Main thread only (a Python rule for signal handlers)."""
        signal.signal(signal.SIGHUP, lambda signum, frame: self.wake())

    def start(self, interval: timedelta | None = None) -> "ConfigWatcher":
        """Poll the files every `interval` (default: the watcher's `poll_interval`) in a thread."""
        interval = interval or self._poll_interval
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(interval.total_seconds(),),
                                        name="connector-config-watch", daemon=True)
        self._thread_pid = os.getpid()
        self._thread.start()
        return self

    def watch_in_background(self) -> None:
        """Make sure this process polls the files (CONNECTOR_CONFIG_POLL_INTERVAL); cheap and
        idempotent. A receiver's HTTP worker is forked from gunicorn's arbiter, where the
        watcher was built: threads do not survive a fork, hence the process id."""
        if self._thread is not None and self._thread_pid == os.getpid() and self._thread.is_alive():
            return
        with self._starting:
            if self._thread is None or self._thread_pid != os.getpid() or not self._thread.is_alive():
                self.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check(force=woken)
            except Exception:
                # An unreadable directory or a bug in a validator must not end the watching.
                log.exception("config.reload_failed")
