"""Sweep sources and the platform-neutral sweep, for listings that hold only ids and stamps.

The Zendesk adapter's incremental export is stood in for by a recorded sequence of pages
in its documented shape (`IncrementalPage`); the sweep, the index and the queue are real.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from connector.config import load_config
from connector.platforms.zendesk import IncrementalPage
from connector.reconcile import Runtime
from connector.sync.sources import JiraSource, ZendeskSource
from connector.timefmt import parse_instant
from connector.sync.sweep import Sweeper

NOW = datetime(2026, 11, 20, 7, 0, tzinfo=timezone.utc)


class RecordedExport:
    """Answers `incremental_tickets` with fixed pages and records how it was asked."""

    def __init__(self, pages):
        self.pages = pages
        self.asked: list[dict] = []

    def incremental_tickets(self, start_time=None, cursor=None):
        self.asked.append({"start_time": start_time, "cursor": cursor})
        yield from self.pages


def ticket(ticket_id, updated, status="open"):
    return {"id": ticket_id, "status": status, "updated_at": updated}


@pytest.fixture
def sweeper(settings, queue):
    def build(pages):
        export = RecordedExport(pages)
        runtime = Runtime(settings=settings, config=load_config(settings.config_path), clock=lambda: NOW)
        return export, Sweeper(runtime, queue, sources={"zendesk": ZendeskSource(export)})
    return build


def test_zendesk_recent_sweep_skips_unchanged_and_resumes_from_the_cursor(sweeper, queue):
    export, sweeper = sweeper([
        IncrementalPage([ticket(1, "2026-11-20T06:58:00Z"), ticket(2, "2026-11-20T06:59:00Z")], "c1", False),
        IncrementalPage([ticket(3, "2026-11-20T06:59:30Z", status="deleted")], "c2", True),
    ])
    # Ticket 1 was settled at its stamp by its last reconcile (nothing to write, this config).
    queue.deadlines.record("zendesk", "1", None, datetime(2026, 11, 20, 6, 58, tzinfo=timezone.utc),
                           sweeper.runtime.config_fingerprint())
    report = sweeper.run("zendesk", "recent")
    assert (report.tickets, report.unchanged, report.queued, report.skipped) == (3, 1, 1, 1)
    assert report.checkpoint == "c2"
    assert export.asked == [{"start_time": NOW - timedelta(minutes=7), "cursor": None}]
    sweeper.run("zendesk", "recent")
    assert export.asked[-1] == {"start_time": None, "cursor": "c2"}


def test_already_queued_ticket_is_collapsed(sweeper, queue):
    _, sweeper = sweeper([IncrementalPage([ticket(9, "2026-11-20T06:59:00Z")], "c", True)])
    queue.enqueue_reconcile("zendesk", "9")
    report = sweeper.run("zendesk", "recent")
    assert (report.queued, report.collapsed) == (1, 1)
    assert queue.pending_count() == 1


def test_jira_result_with_truncated_changelog_is_handed_over_by_id():
    source = JiraSource(adapter=None)
    raw = {"id": "10001", "key": "SUP-2", "changelog": {"total": 250, "histories": [{}] * 100},
           "fields": {"updated": "2026-11-20T15:00:00.000+0800", "comment": {"total": 1, "comments": [{}]}}}
    found = source._found(raw)
    assert found.ticket is None and found.ticket_id == "10001"
    assert found.updated == NOW


def test_jira_and_zendesk_time_stamps_parse_to_the_same_instant():
    assert parse_instant("2026-11-20T15:00:00.000+0800") == parse_instant("2026-11-20T07:00:00Z") == NOW
