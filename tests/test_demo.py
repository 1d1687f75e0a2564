"""`connector demo` runs by itself, fast, and shows every step of the standard process on both platforms."""

from __future__ import annotations

import time

from click.testing import CliRunner

from connector.cli import main


def test_demo_walks_the_standard_process_on_jira_and_zendesk():
    started = time.monotonic()
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 60
    jira, zendesk = result.output.split("=== Zendesk")
    for text in (jira, zendesk):
        assert "please add:" in text                       # intake request
        assert "spc-intake-complete" in text               # reporter completed it
        assert "network-team" in text                      # routed
        assert "SLA breached" in text                      # P0 breach notice
        assert "Escalated to L2" in text                   # escalation
        assert "was moved back to In Progress" in text     # closure criteria
        assert "Follow-up due" in text                     # follow-up after closing
    assert "API calls to Jira:" in result.output and "API calls to Zendesk:" in result.output
