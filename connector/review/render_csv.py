"""The review as one CSV in long format, for spreadsheets and pivot tables.

One header, one value per row, so a spreadsheet can filter or pivot any section without
knowing the layout of the others:

    section,group,metric,current,previous,unit

- `section`: headline, volume_by_category, volume_by_priority, times, sla_compliance, sla_compliance_by_tier,
  reopen, repeat_problems, satisfaction, satisfaction_levels (per priority and "all":
  rated, satisfied, basically_satisfied, needs_improvement and their `_share`), leftovers;
- `group`: what the row is about within the section – a category, a priority ("all" for
  the total), a rating, a cluster ("R1", "R2" …) or a ticket key; empty for headlines;
- `metric`: the figure's name (snake_case, stable: scripts may rely on it);
- `current` / `previous`: numbers unformatted (minutes as minutes, percentages 0–100,
  two decimals), or text for descriptive rows; `previous` is empty where the previous
  period has no counterpart (a leftover ticket, a repeat-problem cluster);
- `unit`: count, business_minutes, percent, days, datetime, text.

The first rows (section "report") name the platform, both periods and the calendar. Text
from tickets that starts with = + - @ gets a leading apostrophe, so no spreadsheet runs it
as a formula. `connector report` writes the file with a UTF-8 byte-order mark, which Excel
needs to read Chinese text correctly.
"""

from __future__ import annotations

import csv
import io

from connector.review import present as p
from connector.review.metrics import Report
from connector.satisfaction import LEVELS

HEADER = ("section", "group", "metric", "current", "previous", "unit")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_UNITS = {"count": "count", "minutes": "business_minutes", "percent": "percent"}


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _inert(text: str) -> str:
    """Keep a spreadsheet from running ticket text as a formula (CSV injection): quote a leading = + - @."""
    return f"'{text}" if text[:1] in _FORMULA_STARTS else text


def render_csv(report: Report) -> str:
    tz = p.zone(report)
    cur, prev = report.current, report.previous
    rows: list[tuple[str, str, str, str, str, str]] = []

    def add(section: str, group: str, metric: str, current: object, previous: object, unit: str) -> None:
        def text(value: object) -> str:
            if value is None:
                return ""
            return _number(value) if isinstance(value, (int, float)) else str(value)

        values = [text(current), text(previous)]
        if unit == "text":
            values = [_inert(v) for v in values]
        rows.append((section, _inert(group), metric, *values, unit))

    add("report", "", "platform", report.platform, "", "text")
    add("report", "", "period_start", cur.period.start.astimezone(tz).isoformat(),
        prev.period.start.astimezone(tz).isoformat(), "datetime")
    add("report", "", "period_end_excluded", cur.period.end.astimezone(tz).isoformat(),
        prev.period.end.astimezone(tz).isoformat(), "datetime")
    add("report", "", "calendar", f"{report.calendar} ({report.timezone})", "", "text")
    add("report", "", "generated_at", report.generated_at.astimezone(tz).isoformat(), "", "datetime")

    for h in report.headlines:
        add("headline", "", h.name, h.current, h.previous, _UNITS[h.unit])
    for r in p.category_rows(report):
        add("volume_by_category", r.name, "tickets", r.current, r.previous, "count")
    for r in p.priority_rows(report):
        add("volume_by_priority", r.name, "tickets", r.current, r.previous, "count")

    previous_times = {r.group: r for r in p.time_rows(prev)}
    for r in p.time_rows(cur):
        before = previous_times.get(r.group)
        for metric in ("first_response_count", "first_response_median", "first_response_p90",
                       "resolution_count", "resolution_median", "resolution_p90"):
            unit = "count" if metric.endswith("_count") else "business_minutes"
            add("times", r.group, metric, getattr(r, metric), getattr(before, metric) if before else None, unit)

    for r in p.compliance_rows(report):
        for name in ("met", "breached", "open"):
            add("sla_compliance", r.group, f"{r.metric}_{name}", getattr(r.current, name), getattr(r.previous, name),
                "count")
        add("sla_compliance", r.group, f"{r.metric}_compliance", r.current.percent, r.previous.percent, "percent")
    for r in p.tier_compliance_rows(report):
        for name in ("met", "breached", "open"):
            add("sla_compliance_by_tier", r.group, f"{r.metric}_{name}", getattr(r.current, name),
                getattr(r.previous, name), "count")
        add("sla_compliance_by_tier", r.group, f"{r.metric}_compliance", r.current.percent, r.previous.percent,
            "percent")

    add("reopen", "all", "reopened", cur.reopened, prev.reopened, "count")
    add("reopen", "all", "resolved_at_least_once", cur.ever_resolved, prev.ever_resolved, "count")
    add("reopen", "all", "reopen_rate", cur.reopen_rate, prev.reopen_rate, "percent")

    for number, cluster in enumerate(cur.repeats, 1):
        group = f"R{number}"
        add("repeat_problems", group, "tickets", len(cluster.keys), None, "count")
        add("repeat_problems", group, "category", cluster.category or "", None, "text")
        add("repeat_problems", group, "summary", cluster.summary, None, "text")
        add("repeat_problems", group, "common_terms", " ".join(cluster.common_terms), None, "text")
        add("repeat_problems", group, "keys", " ".join(cluster.keys), None, "text")

    for r in p.satisfaction_rows(report):
        add("satisfaction", r.name, "tickets", r.current, r.previous, "count")
    add("satisfaction", "all", "positive_share", cur.satisfaction_positive, prev.satisfaction_positive, "percent")
    for r in p.satisfaction_level_rows(report):
        add("satisfaction_levels", r.group, "rated", r.rated, r.previous_rated, "count")
        for level in LEVELS:
            name = level.replace(" ", "_")
            add("satisfaction_levels", r.group, name, r.counts[level], None, "count")
            add("satisfaction_levels", r.group, f"{name}_share", r.shares[level], r.previous_shares[level], "percent")

    for t in cur.leftovers:
        add("leftovers", t.key, "summary", t.summary, None, "text")
        add("leftovers", t.key, "priority", t.priority or "", None, "text")
        add("leftovers", t.key, "status", t.status.value, None, "text")
        add("leftovers", t.key, "owner", t.owner, None, "text")
        add("leftovers", t.key, "created", t.created.astimezone(tz).isoformat(), None, "datetime")
        add("leftovers", t.key, "age_days", round(t.age_days, 2), None, "days")
        add("leftovers", t.key, "sla_breached", " ".join(t.breached), None, "text")
        if t.url:
            add("leftovers", t.key, "url", t.url, None, "text")

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buffer.getvalue()
