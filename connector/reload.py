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
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

from connector.config import ConfigError, SupportConfig, config_files, load_config

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = timedelta(seconds=5)

Fingerprint = tuple[tuple[str, int, int], ...]


def poll_interval_from_env(environ: Mapping[str, str] | None = None) -> timedelta:
    env = os.environ if environ is None else environ
    text = env.get("CONNECTOR_CONFIG_POLL_INTERVAL")
    if not text:
        return DEFAULT_POLL_INTERVAL
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"CONNECTOR_CONFIG_POLL_INTERVAL={text!r} is not a positive number of seconds; e.g. 5")
    return timedelta(seconds=seconds)


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


class ConfigWatcher:
    """The last good config of one path, and the verdict on the newest version of its files.

    `check()` reloads when the files changed (or always, with `force`); `on_change` is
    called with every newly accepted config. Thread-safe: the poll thread, a signal and a
    `/readyz` request may all check at once.
    """

    def __init__(self, path: Path | str, *, on_change: Callable[[SupportConfig], None] | None = None):
        self.path = Path(path)
        self._on_change = on_change
        self._lock = threading.Lock()
        self._fingerprint: Fingerprint | None = None
        self.config: SupportConfig | None = None
        self.loaded_at: datetime | None = None
        self.rejected: ConfigError | None = None
        self.rejected_at: datetime | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self, *, force: bool = False) -> str:
        """Reload if needed; return "unchanged", "reloaded" or "rejected"."""
        with self._lock:
            fingerprint = _fingerprint(self.path)
            if not force and fingerprint == self._fingerprint and (self.config is not None or self.rejected is not None):
                return "unchanged"
            self._fingerprint = fingerprint
            try:
                config = load_config(self.path)
            except ConfigError as exc:
                self.rejected, self.rejected_at = exc, datetime.now(timezone.utc)
                log.error("config.reload_rejected", extra={
                    "path": str(self.path), "problems": [str(p) for p in exc.problems],
                    "running": "the last good config" if self.config is not None else "no config",
                })
                return "rejected"
            first = self.config is None
            self.config, self.loaded_at = config, datetime.now(timezone.utc)
            self.rejected = self.rejected_at = None
        if not first:
            log.info("config.reloaded", extra={"path": str(self.path), "rules": len(config.rules)})
        if self._on_change is not None:
            self._on_change(config)
        return "reloaded"

    def problem(self) -> dict[str, str] | None:
        """What `/readyz` reports about the config; `blocking` is "yes" when no config runs."""
        with self._lock:
            if self.rejected is None:
                return None
            problems = "; ".join(str(p) for p in self.rejected.problems)
            if self.config is None:
                return {"check": "config", "blocking": "yes", "error": f"config does not load: {problems}",
                        "fix": f"run `connector check-config {self.path}` and fix what it lists, or set CONNECTOR_CONFIG"}
            return {
                "check": "config", "blocking": "no",
                "error": f"the new config was rejected: {problems}",
                "running": f"the last good config, loaded {self.loaded_at.isoformat(timespec='seconds')}",
                "fix": f"run `connector check-config {self.path}`, fix what it lists; it is picked up by itself",
            }

    # -- watching ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Ask the poll thread to check now (safe from a signal handler: it only sets an event)."""
        self._wake.set()

    def install_sighup(self) -> None:
        """Check on SIGHUP. Main thread only (a Python rule for signal handlers)."""
        signal.signal(signal.SIGHUP, lambda signum, frame: self.wake())

    def start(self, interval: timedelta = DEFAULT_POLL_INTERVAL) -> "ConfigWatcher":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(interval.total_seconds(),),
                                        name="connector-config-watch", daemon=True)
        self._thread.start()
        return self

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
