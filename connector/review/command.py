"""`connector report`: read the tickets, compute the review, write it where asked.

Kept out of `cli.py` so the command stays a thin click wrapper and the steps can be called
from scripts (docs/make_example_report.py) and tests with their own adapter and clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path

from connector.config import SupportConfig
from connector.review import FORMATS, render
from connector.review.collect import Progress, ReviewAdapter, collect_tickets, no_progress
from connector.review.metrics import Period, SlaTerms, build_report
from connector.settings import Settings

_SUFFIX_FORMATS = {".md": "md", ".markdown": "md", ".csv": "csv", ".html": "html", ".htm": "html"}


class ReportError(Exception):
    """The report cannot be made as asked; the message tells the user what to change."""


def missing_credentials(platform: str, settings: Settings) -> list[str]:
    """Names of the environment variables the platform still needs (JIRA_USER is optional: Data Center PAT)."""
    if platform == "jira":
        wanted = {"JIRA_URL": settings.jira_url, "JIRA_TOKEN": settings.jira_token}
    else:
        wanted = {"ZENDESK_URL": settings.zendesk_url, "ZENDESK_EMAIL": settings.zendesk_email,
                  "ZENDESK_TOKEN": settings.zendesk_token}
    return [name for name, value in wanted.items() if not value]


def choose_format(output_format: str | None, out: Path | None) -> str:
    """An explicit --format wins; else the --out suffix; else Markdown."""
    if output_format:
        return output_format
    if out is not None and out.suffix.lower() in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[out.suffix.lower()]
    return "md"


def review_period(config: SupportConfig, first: date, end: date) -> Period:
    """[first, end) as whole days in the time zone of the SLA rule's calendar."""
    if end <= first:
        raise ReportError(f"--to ({end}) must be after --from ({first}); the period is [from, to)")
    try:
        terms = SlaTerms(config)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    return Period.from_dates(first, end, terms.calendar.tz)


def make_report(adapter: ReviewAdapter, config: SupportConfig, platform: str, period: Period, output_format: str, *,
                now: datetime | None = None, progress: Progress = no_progress) -> tuple[str, int]:
    """(the rendered report, how many tickets were read)."""
    if output_format not in FORMATS:
        raise ReportError(f"unknown format {output_format!r}; expected one of {', '.join(FORMATS)}")
    collected = collect_tickets(adapter, platform, period, progress=progress)
    report = build_report(collected.tickets, config, period, platform=platform,
                          generated_at=now or datetime.now(timezone.utc))
    return render(report, output_format), len(collected.tickets)


def write_report(text: str, output_format: str, out: Path | None, echo: Callable[[str], None]) -> None:
    """To `out` (CSV with a UTF-8 BOM so Excel reads Chinese text) or to standard output."""
    if out is None:
        echo(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8-sig" if output_format == "csv" else "utf-8", newline="")
