"""The Zendesk recent-updates sweep against the strict sandbox, through the real zenpy-based adapter.

The incremental export is for admins only: with an agent token the sweep gets one 403,
falls back to search for the rest of the process, and says so once in the log.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from connector.config import load_config
from connector.platforms.base import Unauthorized
from connector.reconcile import Runtime
from connector.sandbox.server import Clock
from connector.sandbox.zendesk import ZendeskSandbox
from connector.settings import Settings
from connector.sync import sources
from connector.sync.sweep import Sweeper

NOW = datetime(2026, 11, 20, 7, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _fresh_process_memory(monkeypatch):
    monkeypatch.setattr(sources, "_INCREMENTAL_FORBIDDEN", set())


def sweeper_for(zendesk: ZendeskSandbox, settings: Settings, queue) -> Sweeper:
    settings = Settings(config_path=settings.config_path, data_dir=settings.data_dir, zendesk_url=zendesk.base_url,
                        zendesk_email=zendesk.email, zendesk_token=zendesk.api_token)
    runtime = Runtime(settings=settings, config=load_config(settings.config_path), clock=zendesk.clock.now)
    return Sweeper(runtime, queue)


def export_calls(zendesk: ZendeskSandbox, status: int | None = None) -> int:
    return zendesk.count(method="GET", path="/api/v2/incremental/tickets/cursor.json", status=status)


@pytest.mark.parametrize("role", ["agent", "admin"])
def test_recent_sweep_finds_changed_tickets_as_agent_or_admin(role, settings, queue, caplog):
    with ZendeskSandbox(clock=Clock(NOW), connector_role=role, deliver_webhooks=False) as zendesk:
        old = zendesk.create_ticket("Old", "b", created=NOW - timedelta(days=2))
        changed = zendesk.create_ticket("Changed", "b", created=NOW - timedelta(days=2))
        zendesk.add_comment(changed, "Still broken", at=NOW - timedelta(minutes=3))
        sweeper = sweeper_for(zendesk, settings, queue)
        caplog.set_level(logging.WARNING, logger="connector.sync.sources")

        report = sweeper.run("zendesk", "recent")
        assert report.queued == 1 and queue.pending_count() == 1
        assert old not in [int(task.args[1]) for task in queue.huey.pending()]

        zendesk.clock.advance(timedelta(minutes=5))
        zendesk.add_comment(old, "Me too", at=zendesk.clock.now())
        sweeper.run("zendesk", "recent")
        # (A search sweep also re-lists `changed`: its window reaches back over the index lag.)
        assert sorted(int(task.args[1]) for task in queue.huey.pending()) == [old, changed]

        forbidden = [r for r in caplog.records if r.msg == "sync.incremental_export_forbidden"]
        if role == "agent":
            # One 403 for the life of the process, logged once; search did the rest.
            assert export_calls(zendesk, 403) == 1 and export_calls(zendesk) == 1 and len(forbidden) == 1
            assert zendesk.count(method="GET", path="/api/v2/search.json") == 2
        else:
            assert export_calls(zendesk, 200) == 2 and forbidden == []
            assert zendesk.count(method="GET", path="/api/v2/search.json") == 0


def test_a_wrong_token_is_not_taken_for_an_agent(settings, queue):
    with ZendeskSandbox(clock=Clock(NOW), connector_role="agent", deliver_webhooks=False) as zendesk:
        sweeper = sweeper_for(zendesk, settings, queue)
        zendesk.api_token = "rotated-token"  # the connector's token is now wrong: 401, not 403
        with pytest.raises(Unauthorized):
            sweeper.run("zendesk", "recent")
        assert sources._INCREMENTAL_FORBIDDEN == set()
