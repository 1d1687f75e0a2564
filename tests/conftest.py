"""Shared fixtures: settings in a temporary data dir, a real SQLite-backed queue, the Flask app.

The queue is a real huey SqliteHuey in the test's own directory, never a mock: what the
tests assert is what a worker would find in the queue.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connector.metrics import REGISTRY
from connector.queue.reconcile_queue import ReconcileQueue
from connector.settings import Settings
from webhooks.app import create_app


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    # Not created here: the queue must create its own data directory.
    return tmp_path / "data"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """The smallest rule file that validates, so readiness depends only on what a test breaks."""
    path = tmp_path / "support.yaml"
    path.write_text("version: 1\n", encoding="utf-8")
    return path


@pytest.fixture
def settings(data_dir: Path, config_file: Path) -> Settings:
    """Two secrets per platform: the first is current, the second the one being rotated out."""
    return Settings(
        config_path=config_file,
        data_dir=data_dir,
        jira_webhook_secrets=("jira-current-secret", "jira-previous-secret"),
        zendesk_webhook_secrets=("zendesk-current-secret", "zendesk-previous-secret"),
    )


@pytest.fixture
def queue(settings: Settings) -> ReconcileQueue:
    return ReconcileQueue.from_settings(settings)


@pytest.fixture
def app(settings: Settings, queue: ReconcileQueue) -> Flask:
    return create_app(settings, queue=queue)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def metric() -> Callable[..., float]:
    """Read a sample from the connector's registry; 0.0 when the labelled series does not exist yet."""

    def read(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    return read
pytest_plugins = ["tests.log_scrub"]


@pytest.fixture
def redis_server():
    """A redis-server of the test's own (skipped where the binary is missing, except under
    .ci/run, which installs it and requires it: `tests.processes.skip_without_redis`)."""
    from tests.processes import RedisServer, skip_without_redis

    skip_without_redis()
    server = RedisServer().start()
    yield server
    server.stop()
