"""Check results and the two output formats (the runner is `connector.doctor.runner`).

A check is one question about the site or the host, answered OK, WARN or FAIL, with what
was found and, unless OK, what to do about it. FAIL means the connector would do something
wrong or nothing at all (a write refused, a ticket stuck); WARN means something the doctor
could not verify or that only degrades (a webhook list an account may not read, a status
that allows no edits). `connector doctor` exits 1 when any check FAILs.

The check modules (`local`, one per platform) import this module for `Check`; the runner
imports them, so this module imports none of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from connector.config import SupportConfig
from connector.settings import Settings


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One answer: `id` is stable (`jira.fields.mapped`), `found` says what the site shows,
    `fix` what the admin should do (empty for OK)."""

    id: str
    status: Status
    found: str
    fix: str = ""

    @classmethod
    def ok(cls, id: str, found: str) -> "Check":
        return cls(id, Status.OK, found)

    @classmethod
    def warn(cls, id: str, found: str, fix: str) -> "Check":
        return cls(id, Status.WARN, found, fix)

    @classmethod
    def fail(cls, id: str, found: str, fix: str) -> "Check":
        return cls(id, Status.FAIL, found, fix)


@dataclass(frozen=True)
class DoctorOptions:
    """What the command line adds to the settings."""

    public_url: str | None = None  # where the platform's webhook should point (…/webhooks/<platform>)
    now: datetime | None = None  # for the calendar's years; None: the current time
    projects: tuple[str, ...] = ()  # Jira project keys to check; empty: those recently updated


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(c.status is Status.FAIL for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        return {s.value: sum(1 for c in self.checks if c.status is s) for s in Status}


class DoctorError(Exception):
    """The doctor cannot run at all (an unknown platform)."""


PlatformRun = Callable[[Settings, SupportConfig, DoctorOptions], list[Check]]
def render_text(report: Report) -> str:
    """One line per check, status first so `grep FAIL` works; a summary line last."""
    # Ids longer than this push their line right rather than every line.
    width = min(max((len(c.id) for c in report.checks), default=0), 36)
    lines = []
    for check in report.checks:
        line = f"{check.status.value:<4}  {check.id:<{width}}  {check.found}"
        if check.fix:
            line += f" -> fix: {check.fix}"
        lines.append(line)
    counts = report.counts()
    verdict = "FAILED" if report.failed else "passed"
    lines.append(f"doctor {verdict}: {counts['OK']} OK, {counts['WARN']} WARN, {counts['FAIL']} FAIL")
    return "\n".join(lines)


def render_json(report: Report) -> str:
    body: dict[str, Any] = {
        "ok": not report.failed,
        "counts": report.counts(),
        "checks": [{**asdict(c), "status": c.status.value} for c in report.checks],
    }
    return json.dumps(body, indent=2, ensure_ascii=False)

