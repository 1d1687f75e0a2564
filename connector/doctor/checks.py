"""Check results, the runner that picks the platforms, and the two output formats.

A check is one question about the site or the host, answered OK, WARN or FAIL, with what
was found and, unless OK, what to do about it. FAIL means the connector would do something
wrong or nothing at all (a write refused, a ticket stuck); WARN means something the doctor
could not verify or that only degrades (a webhook list an account may not read, a status
that allows no edits). `connector doctor` exits 1 when any check FAILs.

Platforms plug in through `PLATFORM_CHECKS`: a module per platform with
`run(settings, config, options) -> list[Check]`. Which platforms run comes from `--platform`,
else from which platform URLs are set in the environment (as `serve` and `sync` decide).
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from connector.config import SupportConfig
from connector.settings import Settings

log = logging.getLogger(__name__)


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
# platform -> module with `run`.
PLATFORM_CHECKS: dict[str, str] = {"jira": "connector.doctor.jira", "zendesk": "connector.doctor.zendesk"}
# Wording of what to set per platform, for the runner's own messages.
_CREDENTIALS = {"jira": "JIRA_URL and JIRA_TOKEN (and JIRA_USER on Jira Cloud)",
                "zendesk": "ZENDESK_URL, ZENDESK_EMAIL and ZENDESK_TOKEN"}


def configured_platforms(settings: Settings) -> list[str]:
    """The platforms whose URL is set, as `serve` and `sync` choose them."""
    from connector.sync.scheduler import configured_platforms as chosen

    return list(chosen(settings))


def platform_runner(platform: str) -> PlatformRun:
    module = PLATFORM_CHECKS.get(platform)
    if module is None:
        raise DoctorError(f"no checks for platform {platform!r}; choose one of {', '.join(sorted(PLATFORM_CHECKS))}")
    return importlib.import_module(module).run  # type: ignore[no-any-return]


def run_doctor(settings: Settings, config: SupportConfig, platforms: Sequence[str],
               options: DoctorOptions | None = None) -> Report:
    """Every check for the host and for `platforms` (empty: those configured in the environment)."""
    from connector.doctor import local

    options = options or DoctorOptions()
    report = Report()
    chosen = list(platforms)
    if not chosen:
        chosen = configured_platforms(settings)
        if not chosen:
            report.checks.append(Check.fail(
                "platform.configured", "no platform URL is set in the environment",
                f"set {_CREDENTIALS['jira']} or {_CREDENTIALS['zendesk']}, or pass --platform"))
    runners = [(platform, platform_runner(platform)) for platform in chosen]
    report.checks.extend(local.run(settings, config, options))
    for platform, run in runners:
        report.checks.extend(run(settings, config, options))
    counts = report.counts()
    log.info("doctor.finished", extra={"platforms": chosen, "ok": counts["OK"], "warn": counts["WARN"],
                                       "fail": counts["FAIL"]})
    return report


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

