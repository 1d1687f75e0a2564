"""The doctor's runner: the host's checks, then those of each chosen platform.

Platforms plug in through `PLATFORM_CHECKS`: a module per platform with
`run(settings, config, options) -> list[Check]`, imported by name only when chosen (a
platform's checks load its client library). Which platforms run comes from `--platform`,
else from which platform URLs are set in the environment (as `serve` and `sync` decide).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence

from connector.config import SupportConfig
from connector.doctor import local
from connector.doctor.checks import Check, DoctorError, DoctorOptions, PlatformRun, Report
from connector.settings import Settings
from connector.sync.scheduler import configured_platforms as chosen_platforms

log = logging.getLogger("connector.doctor.checks")  # the doctor's log name, kept across the split


# platform -> module with `run`.
PLATFORM_CHECKS: dict[str, str] = {"jira": "connector.doctor.jira", "zendesk": "connector.doctor.zendesk"}
# Wording of what to set per platform, for the runner's own messages.
_CREDENTIALS = {"jira": "JIRA_URL and JIRA_TOKEN (and JIRA_USER on Jira Cloud)",
                "zendesk": "ZENDESK_URL, ZENDESK_EMAIL and ZENDESK_TOKEN"}


def configured_platforms(settings: Settings) -> list[str]:
    """The platforms whose URL is set, as `serve` and `sync` choose them."""
    return list(chosen_platforms(settings))


def platform_runner(platform: str) -> PlatformRun:
    module = PLATFORM_CHECKS.get(platform)
    if module is None:
        raise DoctorError(f"no checks for platform {platform!r}; choose one of {', '.join(sorted(PLATFORM_CHECKS))}")
    return importlib.import_module(module).run  # type: ignore[no-any-return]


def run_doctor(settings: Settings, config: SupportConfig, platforms: Sequence[str],
               options: DoctorOptions | None = None) -> Report:
    """Every check for the host and for `platforms` (empty: those configured in the environment)."""
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
