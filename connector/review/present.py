"""What the three renderings of a review share: value formatting, table rows, definitions.

Markdown, CSV and HTML must show the same rows with the same words, or a wiki page and a
spreadsheet of the same month would seem to disagree. So the rows are built once here and
the renderers only lay them out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from connector.model import PRIORITIES
from connector.review.metrics import SCORED_METRICS, Compliance, Headline, Period, PeriodFigures, Report
from connector.rules.sla import METRIC_LABELS
from connector.satisfaction import LEVELS
from connector.timefmt import format_minutes

DASH = "–"

DEFINITIONS: tuple[str, ...] = (
    "Tickets of a period are those created in it; every ticket is looked at as it stood at the end "
    "of the period, so a ticket resolved later counts as a leftover of that period.",
    "First-response and resolution times are business time in the SLA rule's calendar, without the "
    "time the ticket waited for the customer, a third party or information: the minutes the SLA judged.",
    "Median and p90 interpolate linearly between the closest ranks (as Excel's PERCENTILE.INC).",
    "SLA compliance = met ÷ (met + breached), with each priority's targets and clock type; clocks "
    "still running within target at the end of the period are counted as open and left out.",
    "SLA tiers: each ticket is measured by its contract tier – the first enabled sla rule whose `when` "
    "(organizations, e-mail domains, …) matches it; a ticket whose customer cannot be read gets the default.",
    "Reopen rate = tickets that went from resolved/closed back to an open status ÷ tickets "
    "resolved or closed at least once.",
    "Repeat problems: tickets of one category whose summaries share at least the threshold of their "
    "terms (Jaccard overlap of words; Chinese as character pairs), grouped transitively.",
    "Positive ratings: a score of 4 or more out of 5, or \"good\"; unanswered surveys are not counted.",
    "Satisfaction by priority uses the process's scale, from a satisfaction field or the platform's own "
    "survey: Jira Service Management's 1–5 rating 5–4 = satisfied, 3 = basically satisfied, 2–1 = needs "
    "improvement; Zendesk's \"good\" = satisfied, \"bad\" = needs improvement. Shares are of the rated tickets.",
    "Leftovers: every ticket created before the end of the period and not resolved or closed at its "
    "end, however old; age in calendar days.",
)


def zone(report: Report) -> tzinfo:
    return ZoneInfo(report.timezone)


def period_label(period: Period, tz: tzinfo) -> str:
    """'2026-11-09 – 2026-11-15' for whole days (the end is exclusive), else the two instants."""
    start, end = period.start.astimezone(tz), period.end.astimezone(tz)
    if start.time() == time() and end.time() == time():
        last = (end - timedelta(days=1)).date()
        return start.date().isoformat() if last == start.date() else f"{start.date()} – {last}"
    return f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} (end excluded)"


def instant(at: datetime, tz: tzinfo) -> str:
    return f"{at.astimezone(tz):%Y-%m-%d %H:%M}"


def minutes(value: float | None) -> str:
    return DASH if value is None else format_minutes(value)


def percent(value: float | None) -> str:
    return DASH if value is None else f"{value:.1f}%"


def count(value: float | None) -> str:
    return DASH if value is None else f"{value:g}"


def value_text(headline: Headline, value: float | None) -> str:
    return {"minutes": minutes, "percent": percent, "count": count}[headline.unit](value)


def delta_text(headline: Headline) -> str:
    delta = headline.delta
    if delta is None:
        return DASH
    sign = "+" if delta > 0 else ("−" if delta < 0 else "±")
    magnitude = abs(delta)
    if headline.unit == "minutes":
        return f"{sign}{format_minutes(magnitude)}"
    if headline.unit == "percent":
        return f"{sign}{magnitude:.1f} pp"
    return f"{sign}{magnitude:g}"


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


# --- table rows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeRow:
    name: str
    current: int
    previous: int


def volume_rows(current: dict[str, int], previous: dict[str, int], order: list[str] | None = None) -> list[VolumeRow]:
    """Every name seen in either period, in `order` if given, else by current volume."""
    names = list(current) + [n for n in previous if n not in current]
    if order is not None:
        names = [n for n in order if n in names] + [n for n in names if n not in order]
    return [VolumeRow(n, current.get(n, 0), previous.get(n, 0)) for n in names]


def category_rows(report: Report) -> list[VolumeRow]:
    return volume_rows(report.current.by_category, report.previous.by_category)


def priority_rows(report: Report) -> list[VolumeRow]:
    return volume_rows(report.current.by_priority, report.previous.by_priority, order=list(PRIORITIES))


@dataclass(frozen=True)
class TimeRow:
    group: str  # "all" or a priority
    first_response_count: int
    first_response_median: float | None
    first_response_p90: float | None
    resolution_count: int
    resolution_median: float | None
    resolution_p90: float | None


def time_rows(figures: PeriodFigures) -> list[TimeRow]:
    """'all' and each priority that has any measured time."""
    rows = []
    for group in ("all", *PRIORITIES):
        fr, res = figures.first_response[group], figures.resolution[group]
        if group != "all" and not fr.count and not res.count:
            continue
        rows.append(TimeRow(group, fr.count, fr.median, fr.p90, res.count, res.median, res.p90))
    return rows


@dataclass(frozen=True)
class ComplianceRow:
    group: str
    metric: str
    current: Compliance
    previous: Compliance


def compliance_rows(report: Report) -> list[ComplianceRow]:
    """Per priority, then the total ('all'), for each scored metric that has any ticket."""
    rows = []
    cur, prev = report.current.compliance, report.previous.compliance
    for group in (*PRIORITIES, "all"):
        for metric in SCORED_METRICS:
            key = (group, metric)
            if key in cur or key in prev:
                rows.append(ComplianceRow(group, metric, cur.get(key, Compliance()), prev.get(key, Compliance())))
    return rows


def tier_compliance_rows(report: Report) -> list[ComplianceRow]:
    """Per contract tier (the sla rule that measured the ticket, `connector.rules.tiers`), in
    the rule file's order, for each scored metric that has any ticket; `group` is the tier."""
    rows = []
    cur, prev = report.current.compliance_by_tier, report.previous.compliance_by_tier
    seen = [t for t in report.tiers] + sorted({t for t, _ in (*cur, *prev)} - set(report.tiers))
    for tier in seen:
        for metric in SCORED_METRICS:
            key = (tier, metric)
            if key in cur or key in prev:
                rows.append(ComplianceRow(tier, metric, cur.get(key, Compliance()), prev.get(key, Compliance())))
    return rows


def satisfaction_rows(report: Report) -> list[VolumeRow]:
    return volume_rows(report.current.satisfaction, report.previous.satisfaction,
                       order=list(report.current.satisfaction))


@dataclass(frozen=True)
class SatisfactionLevelRow:
    group: str  # "all" or a priority
    rated: int
    counts: dict[str, int]  # level -> tickets, in LEVELS order
    shares: dict[str, float | None]  # level -> percent of `rated`
    previous_rated: int
    previous_shares: dict[str, float | None]


def satisfaction_level_rows(report: Report) -> list[SatisfactionLevelRow]:
    """Each priority with a rating in either period, then the total ('all')."""
    cur, prev = report.current, report.previous
    groups = [g for g in PRIORITIES if g in cur.satisfaction_levels or g in prev.satisfaction_levels]
    groups += [g for g in (*cur.satisfaction_levels, *prev.satisfaction_levels)
               if g not in groups and g != "all" and g not in PRIORITIES]
    rows = []
    for group in (*dict.fromkeys(groups), "all"):
        counts = cur.satisfaction_levels.get(group) or dict.fromkeys(LEVELS, 0)
        before = prev.satisfaction_levels.get(group) or dict.fromkeys(LEVELS, 0)
        rows.append(SatisfactionLevelRow(
            group, sum(counts.values()), dict(counts), {lv: cur.level_share(group, lv) for lv in LEVELS},
            sum(before.values()), {lv: prev.level_share(group, lv) for lv in LEVELS}))
    return rows


def headline_rows(report: Report) -> Iterator[tuple[Headline, str, str, str]]:
    """(headline, current text, previous text, delta text)."""
    for h in report.headlines:
        yield h, value_text(h, h.current), value_text(h, h.previous), delta_text(h)
