"""`connector demo` runs by itself, fast, and shows every step of the standard process on both platforms."""

from __future__ import annotations

import re
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
        assert "L2 did not respond within 1h" in text      # escalation response clock breached
        assert "→ team-lead" in text                       # … and the team lead took over
        assert "was moved back to In Progress" in text     # closure criteria
        assert "needs a second person's review before it is resolved" in text  # review gate's note
        assert "spc-review-gate-returned-1" in text
        assert "Follow-up due" in text                     # follow-up after closing
        assert "spc-closing-summary-sent-1" in text        # closing summary, once
        assert re.search(r"set Problem number: – → TS20261120\d{3}", text)  # problem numbers at intake
        # Per-customer service levels: the premium customer's tier, in Berlin business hours.
        assert "tier premium (rule sla-premium), calendar europe (Europe/Berlin): P1 first response 1h" in text
        assert "next SLA timer (75% warning): Fri 2026-11-20 09:45 CET" in text
    assert "First response due: Fri 2026-11-20 10:00 CET" in jira
    # One sequence for both platforms (same prefix): twelve tickets, twelve distinct numbers.
    numbers = re.findall(r"set Problem number: – → (TS\d+)", result.output)
    assert sorted(numbers) == [f"TS20261120{n:03d}" for n in range(1, 13)]
    assert "public comment: SUP-4 has been resolved. Here is a summary:" in jira
    assert "public comment: #4 已解决，处理总结如下：" in zendesk  # the reporter's locale is zh-CN
    assert ("Satisfaction read back: Jira SUP-4 rated 4 of 5 (request feedback) → satisfied; "
            "Zendesk #4 rated good (CSAT) → satisfied") in result.output
    # `simulate --now` in the past: the clock that is met today was running an hour before.
    assert "   14:00  status in_progress: first_response met 20m of 2h; resolution running 3h of 8h" in result.output
    assert "   now    status resolved: first_response met 20m of 2h; resolution met 4h of 8h" in result.output
    assert "API calls to Jira:" in result.output and "API calls to Zendesk:" in result.output
