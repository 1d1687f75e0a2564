"""The review as ONE self-contained HTML file: inline CSS, inline SVG charts, no script.

It is mailed, attached to wiki pages and printed for review meetings, often where no
network (or no access to the platform) is available, so it loads nothing: no stylesheet,
font, image or script from anywhere. The only URLs in it are links to the tickets
themselves, and only http(s) ones. Ticket text is escaped by Jinja2's autoescape; the
charts are built in `svg.py`. `@media print` lays it out for A4.

The template is `templates/report.html` next to this module (package data).
"""

from __future__ import annotations

from importlib import resources
from urllib.parse import urlsplit

from jinja2 import Environment, StrictUndefined, select_autoescape

from connector.review import present as p
from connector.review.metrics import Report
from connector.satisfaction import LEVELS
from connector.review.svg import Bar, bar_chart, legend


def _environment() -> Environment:
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env


def _template_text() -> str:
    return resources.files("connector.review").joinpath("templates/report.html").read_text(encoding="utf-8")


def _web_url(url: str | None) -> str | None:
    """Only http(s) links: a `javascript:` URL from a misconfigured base URL must not become clickable."""
    if not url:
        return None
    return url if urlsplit(url).scheme in ("http", "https") else None


def charts(report: Report) -> dict[str, object]:
    """The report's charts: volume by category and priority, SLA compliance, satisfaction."""
    def counts(rows) -> list[Bar]:
        return [Bar(r.name, r.current, r.previous) for r in rows]

    compliance = [Bar(f"{r.group} {p.metric_label(r.metric)}", r.current.percent, r.previous.percent)
                  for r in p.compliance_rows(report)]
    return {
        "category": bar_chart("Tickets by category", counts(p.category_rows(report)), value_text=p.count,
                              chart_id="chart-category"),
        "priority": bar_chart("Tickets by priority", counts(p.priority_rows(report)), value_text=p.count,
                              chart_id="chart-priority"),
        "compliance": bar_chart("SLA compliance (% met of decided)", compliance, scale_max=100.0,
                                value_text=p.percent, chart_id="chart-compliance"),
        "satisfaction": bar_chart("Satisfaction ratings", counts(p.satisfaction_rows(report)), value_text=p.count,
                                  chart_id="chart-satisfaction"),
    }


def render_html(report: Report) -> str:
    tz = p.zone(report)
    cur = report.current
    links = {t.key: _web_url(t.url) for t in cur.leftovers}
    links.update({key: url for key, url in report_links(report).items() if url})
    template = _environment().from_string(_template_text())
    return template.render(
        title=f"Support review: {report.platform.capitalize()}, {p.period_label(cur.period, tz)}",
        previous_label=p.period_label(report.previous.period, tz),
        generated=p.instant(report.generated_at, tz),
        report=report, cur=cur, prev=report.previous, tz=tz, fmt=p,
        headlines=list(p.headline_rows(report)),
        category_rows=p.category_rows(report), priority_rows=p.priority_rows(report),
        time_rows=p.time_rows(cur), compliance_rows=p.compliance_rows(report),
        tier_compliance_rows=p.tier_compliance_rows(report),
        satisfaction_rows=p.satisfaction_rows(report), satisfaction_level_rows=p.satisfaction_level_rows(report),
        levels=LEVELS,
        charts=charts(report), legend=legend(), links=links, definitions=p.DEFINITIONS,
    )


def report_links(report: Report) -> dict[str, str | None]:
    """Ticket key -> web link for the period's tickets the report names (repeat problems)."""
    return {key: _web_url(url) for key, url in report.current.ticket_urls.items()}
