"""The review as Markdown, for wiki pages (Confluence, GitLab, GitHub): headings and pipe tables.

Only constructs every wiki renders are used (ATX headings, pipe tables, lists, links); no
HTML. Cell text from tickets is escaped so a `|` in a summary cannot break a table and a
`<script>` in one is shown, not run, by wikis that pass HTML through.
"""

from __future__ import annotations

from collections.abc import Sequence

from connector.review import present as p
from connector.review.metrics import Report
from connector.satisfaction import LEVELS


def _cell(text: object) -> str:
    """One line, `|` escaped, and `<` as an entity so ticket text never becomes raw HTML on the wiki."""
    return " ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> list[str]:
    """A pipe table; `align` has one letter per column, l or r (default l)."""
    marks = ["---:" if (align[i:i + 1] == "r") else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _link(key: str, url: str | None) -> str:
    return f"[{key}]({url})" if url else key


def render_markdown(report: Report) -> str:
    tz = p.zone(report)
    cur, prev = report.current, report.previous
    out = [
        f"# Support review: {report.platform.capitalize()}, {p.period_label(cur.period, tz)}",
        "",
        f"Previous period: {p.period_label(prev.period, tz)}. Times in business hours of calendar "
        f"`{report.calendar}` ({report.timezone}). Generated {p.instant(report.generated_at, tz)}.",
        "",
        "## Headline figures",
        "",
    ]
    out += _table(["Figure", "This period", "Previous", "Change"],
                  [[h.label, c, pv, d] for h, c, pv, d in p.headline_rows(report)], "lrrr")

    out += ["", "## Volume by category", ""]
    out += _table(["Category", "Tickets", "Previous"], [[r.name, r.current, r.previous] for r in p.category_rows(report)],
                  "lrr")
    out += ["", "## Volume by priority", ""]
    out += _table(["Priority", "Tickets", "Previous"], [[r.name, r.current, r.previous] for r in p.priority_rows(report)],
                  "lrr")

    out += ["", "## First-response and resolution times (business time)", ""]
    out += _table(
        ["Priority", "Responded", "First response median", "First response p90", "Resolved", "Resolution median",
         "Resolution p90"],
        [[r.group, r.first_response_count, p.minutes(r.first_response_median), p.minutes(r.first_response_p90),
          r.resolution_count, p.minutes(r.resolution_median), p.minutes(r.resolution_p90)] for r in p.time_rows(cur)],
        "lrrrrrr")

    out += ["", "## SLA compliance", ""]
    out += _table(
        ["Priority", "Metric", "Met", "Breached", "Open", "Compliance", "Previous"],
        [[r.group, p.metric_label(r.metric), r.current.met, r.current.breached, r.current.open,
          p.percent(r.current.percent), p.percent(r.previous.percent)] for r in p.compliance_rows(report)],
        "llrrrrr")
    tier_rows = p.tier_compliance_rows(report)
    if tier_rows:
        out += ["", "### SLA compliance by tier", ""]
        out += _table(
            ["Tier", "Metric", "Met", "Breached", "Open", "Compliance", "Previous"],
            [[r.group, p.metric_label(r.metric), r.current.met, r.current.breached, r.current.open,
              p.percent(r.current.percent), p.percent(r.previous.percent)] for r in tier_rows],
            "llrrrrr")

    out += ["", "## Reopened tickets", "",
            f"{cur.reopened} of {cur.ever_resolved} resolved tickets were reopened "
            f"({p.percent(cur.reopen_rate)}; previous period {p.percent(prev.reopen_rate)})."]

    out += ["", "## Repeat problems", "",
            f"Tickets of one category whose summaries overlap by at least {report.repeat_threshold:.0%}."]
    if cur.repeats:
        out.append("")
        out += _table(["Category", "Tickets", "Problem", "Common terms", "Keys"],
                      [[c.category or p.DASH, len(c.keys), c.summary, ", ".join(c.common_terms), ", ".join(c.keys)]
                       for c in cur.repeats], "lrlll")
    else:
        out += ["", "No repeat problems in this period."]

    out += ["", "## Satisfaction", ""]
    out += _table(["Rating", "Tickets", "Previous"], [[r.name, r.current, r.previous] for r in p.satisfaction_rows(report)],
                  "lrr")
    out += ["", f"Positive: {p.percent(cur.satisfaction_positive)} of {cur.rated} answered ratings "
                f"(previous period {p.percent(prev.satisfaction_positive)})."]
    out += ["", "### Satisfaction by priority", ""]
    out += _table(["Priority", "Rated", *(level.capitalize() for level in LEVELS), "Satisfied share", "Previous"],
                  [[r.group, r.rated, *(f"{r.counts[lv]} ({p.percent(r.shares[lv])})" for lv in LEVELS),
                    p.percent(r.shares["satisfied"]), p.percent(r.previous_shares["satisfied"])]
                   for r in p.satisfaction_level_rows(report)], "lrrrrrr")

    out += ["", f"## Leftovers at period end ({len(cur.leftovers)})", ""]
    if cur.leftovers:
        out += _table(["Ticket", "Summary", "Priority", "Status", "Owner", "Created", "Age (days)", "SLA breached"],
                      [[_link(t.key, t.url), t.summary, t.priority or p.DASH, t.status.value.replace("_", " "),
                        t.owner, p.instant(t.created, tz), f"{t.age_days:.1f}",
                        ", ".join(p.metric_label(m) for m in t.breached) or p.DASH] for t in cur.leftovers],
                      "llllllrl")
    else:
        out.append("Every ticket was resolved or closed.")

    out += ["", "## How the figures are computed", ""]
    out += [f"- {line}" for line in p.DEFINITIONS]
    return "\n".join(out) + "\n"
