"""The receiver's former HTTP stack – gunicorn, 1 process × 8 `gthread` threads – kept only
so that bench/slow_clients.py can measure it next to waitress in one run, and as a way back
during the change-over (CONNECTOR_HTTP_SERVER=gunicorn). It is NOT safe facing the internet
without a buffering proxy: its threads read the request themselves, so slow clients take
them all (issue 12; gunicorn's FAQ says the same:
https://github.com/benoitc/gunicorn/blob/21.0.1/docs/source/faq.rst).

gunicorn ≥ 25.1 opens a control socket by default, at $XDG_RUNTIME_DIR/gunicorn.ctl or
~/.gunicorn/gunicorn.ctl – one path shared by every gunicorn of that user on the host, through
which anyone with access can reload, resize or stop it (`control_socket`, "versionadded::
25.1.0" in gunicorn/config.py). The connector needs none of that, so it is switched off.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from gunicorn.app.base import BaseApplication

from connector.settings import Settings


class ReceiverApplication(BaseApplication):
    """gunicorn configured from code (not from sys.argv or a config file), serving `create_app`."""

    def __init__(self, settings: Settings, host: str, port: int, allow_unsigned: Set[str] = frozenset(), *,
                 threads: int, timeout: int, graceful_timeout: int):
        from connector.reload import ConfigWatcher

        self._settings = settings
        self._allow_unsigned = frozenset(allow_unsigned)
        # Built in the arbiter, before the HTTP worker forks: a worker replaced on SIGHUP
        # inherits the last good config instead of starting from whatever the file says.
        self._config_watcher = ConfigWatcher(settings.config_path, poll_interval=settings.config_poll_every)
        self._config_watcher.check(force=True)
        self._options: dict[str, Any] = {
            "bind": f"{host}:{port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": threads,
            "timeout": timeout,
            "graceful_timeout": graceful_timeout,
            "proc_name": "connector-receiver",
            "accesslog": None,
            "errorlog": "-",
            "control_socket_disable": True,
        }
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            if name in self.cfg.settings:  # gunicorn < 25.1 has no control socket to switch off
                self.cfg.set(name, value)

    def reload(self) -> None:
        """gunicorn's SIGHUP handling in the arbiter: re-read our config, then its own."""
        self._config_watcher.check(force=True)
        super().reload()

    def load(self):
        from webhooks.app import create_app

        return create_app(self._settings, allow_unsigned=self._allow_unsigned, config_watcher=self._config_watcher)
