"""The three renderings of a review: Markdown and CSV structure, and the HTML page as a browser
sees it (headless Chromium, Debian's `chromium` package that `.ci/run` installs)."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from datetime import date, datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from connector.config import load_config
from connector.model import Status
from connector.review import render
from connector.review.metrics import Period, build_report
from connector.review.render_csv import HEADER
from connector.settings import DEFAULT_CONFIG
from tests.factories import SHANGHAI, agent_reply, ticket

WEEK = Period.from_dates(date(2026, 11, 16), date(2026, 11, 23), SHANGHAI)
N, IP, R = Status.NEW, Status.IN_PROGRESS, Status.RESOLVED
HOSTILE = '<script>alert(1)</script> | =HYPERLINK("http://evil.example") 发票无法下载'


def numbered(n: int, **kwargs):
    return ticket(**kwargs).model_copy(update={"id": str(n), "key": f"SUP-{n}",
                                               "url": f"https://acme.atlassian.net/browse/SUP-{n}"})


@pytest.fixture(scope="module")
def report():
    """Five tickets this week (two alike, two open, one with a hostile summary), one last week."""
    tickets = [
        numbered(1, summary="VPN drops every few minutes", created="2026-11-16 09:00",
                 comments=[agent_reply("2026-11-16 09:30")], history=[("2026-11-16 09:30", N, IP), ("2026-11-16 12:00", IP, R)],
                 fields={"satisfaction": 5}),
        numbered(2, summary="VPN drops every few minutes in Beijing", created="2026-11-17 09:00",
                 comments=[agent_reply("2026-11-17 10:00")], history=[("2026-11-17 11:00", N, R)],
                 fields={"satisfaction": 2}),
        numbered(3, summary="SSO login fails", category="login", priority="P1", created="2026-11-18 09:00",
                 comments=[agent_reply("2026-11-18 12:30")], history=[("2026-11-18 17:00", N, R)]),
        numbered(4, summary="Checkout down", category="outage", priority="P0", created="2026-11-19 09:00",
                 comments=[agent_reply("2026-11-19 09:10")], group="L2"),
        numbered(5, summary=HOSTILE, category="=cmd", priority="P3", created="2026-11-20 16:00"),
        numbered(6, summary="Older VPN problem", created="2026-11-10 09:00",
                 comments=[agent_reply("2026-11-10 10:00")], history=[("2026-11-10 15:00", N, R)]),
    ]
    return build_report(tickets, load_config(DEFAULT_CONFIG), WEEK, platform="jira",
                        generated_at=datetime(2026, 12, 1, tzinfo=timezone.utc))


# --- Markdown ------------------------------------------------------------------------------------


def test_markdown_has_every_section_in_order_with_well_formed_tables(report):
    text = render(report, "md")
    headings = re.findall(r"^#+ (.+)$", text, flags=re.M)
    assert headings[0] == "Support review: Jira, 2026-11-16 – 2026-11-22"
    assert headings[1:] == [
        "Headline figures", "Volume by category", "Volume by priority",
        "First-response and resolution times (business time)", "SLA compliance", "SLA compliance by tier",
        "Reopened tickets", "Repeat problems", "Satisfaction", "Satisfaction by priority",
        "Leftovers at period end (2)", "How the figures are computed"]
    # Every table row has as many cells as its header: a "|" in a summary is escaped.
    for block in re.findall(r"(?:^\|.*\|\n)+", text, flags=re.M):
        lines = block.strip().split("\n")
        widths = {len(re.split(r"(?<!\\)\|", line)) for line in lines}
        assert len(widths) == 1, block
    assert r"\| =HYPERLINK" in text and "&lt;script>" in text  # no raw HTML reaches the wiki
    assert "| Tickets created | 5 | 1 | +4 |" in text
    assert "[SUP-4](https://acme.atlassian.net/browse/SUP-4)" in text  # leftovers link to the ticket


# --- CSV ------------------------------------------------------------------------------------------


def test_csv_is_one_long_table_with_a_section_column(report):
    rows = list(csv.reader(io.StringIO(render(report, "csv"))))
    assert tuple(rows[0]) == HEADER
    assert all(len(row) == len(HEADER) for row in rows)
    records = [dict(zip(HEADER, row)) for row in rows[1:]]
    sections = {r["section"] for r in records}
    assert sections == {"report", "headline", "volume_by_category", "volume_by_priority", "times", "sla_compliance",
                        "sla_compliance_by_tier",
                        "reopen", "repeat_problems", "satisfaction", "satisfaction_levels", "leftovers"}

    def value(section, group, metric):
        [row] = [r for r in records if (r["section"], r["group"], r["metric"]) == (section, group, metric)]
        return row["current"], row["previous"], row["unit"]

    assert value("headline", "", "tickets") == ("5", "1", "count")
    assert value("volume_by_priority", "P2", "tickets") == ("2", "1", "count")
    assert value("times", "P0", "first_response_median") == ("10", "", "business_minutes")
    assert value("sla_compliance", "all", "first_response_compliance")[2] == "percent"
    assert value("repeat_problems", "R1", "keys") == ("SUP-1 SUP-2", "", "text")
    assert value("leftovers", "SUP-4", "owner") == ("L2", "", "text")
    assert value("satisfaction", "all", "positive_share") == ("50", "", "percent")


def test_csv_keeps_spreadsheets_from_running_ticket_text(report):
    records = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    [category] = [r for r in records if r["section"] == "volume_by_category" and "cmd" in r["group"]]
    assert category["group"] == "'=cmd"
    assert not any(v.startswith(("=", "@")) for r in records for v in r.values())


# --- HTML -----------------------------------------------------------------------------------------


class _Dom(HTMLParser):
    """Just enough of the dumped DOM: tags with attributes, and the rows of each table by id."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.rows: dict[str, int] = {}
        self._table: list[str] = []
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attributes))
        if tag == "table":
            self._table.append(attributes.get("id", ""))
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table:
            self.rows[self._table[-1]] = self.rows.get(self._table[-1], 0) + 1

    def handle_endtag(self, tag):
        if tag == "table" and self._table:
            self._table.pop()
        elif tag == "tbody":
            self._in_body = False

    def find(self, tag, **attrs):
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def test_html_is_self_contained_and_escapes_ticket_text(report):
    page = render(report, "html")
    dom = _Dom()
    dom.feed(page)
    assert not dom.find("script") and not dom.find("link") and not dom.find("img") and not dom.find("iframe")
    assert "url(" not in page and "@import" not in page
    external = {a["href"] for a in dom.find("a") if not a["href"].startswith("#")}
    assert external == {"https://acme.atlassian.net/browse/SUP-1", "https://acme.atlassian.net/browse/SUP-2",
                        "https://acme.atlassian.net/browse/SUP-4", "https://acme.atlassian.net/browse/SUP-5"}
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "@media print" in page


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
        if found:
            return found
    pytest.skip("Chromium is not installed (Debian package `chromium`; .ci/run installs it)")


def _headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_chromium_renders_the_charts_and_tables(report, tmp_path):
    browser = _chromium()
    page = tmp_path / "review.html"
    page.write_text(render(report, "html"), encoding="utf-8")
    result = _headless(browser, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = _Dom()
    dom.feed(result.stdout)

    charts = {svg["id"]: svg for svg in dom.find("svg", **{"class": "chart"})}
    assert set(charts) == {"chart-category", "chart-priority", "chart-compliance", "chart-satisfaction"}
    bars = dom.find("rect", **{"class": "bar bar-current"})
    drawn = [b for b in bars if float(b["width"]) > 0]
    # Categories network, login, outage, =cmd; priorities P0-P3; compliance rows; ratings.
    assert {b["data-label"] for b in drawn} >= {"network", "outage", "=cmd", "P0", "P2", "5", "2", "not rated"}
    assert max(float(b["width"]) for b in bars if b["data-label"] == "network") > \
        max(float(b["width"]) for b in bars if b["data-label"] == "outage")  # 2 tickets vs 1

    assert dom.rows["volume-category"] == 4 and dom.rows["volume-priority"] == 4
    assert dom.rows["leftovers-table"] == 2 and dom.rows["repeats-table"] == 1
    assert dom.rows["sla-table"] >= 8 and dom.rows["times-table"] >= 4
    assert len(dom.find("div", **{"class": "card"})) == 12  # one card per headline figure

    pdf = tmp_path / "review.pdf"
    printed = _headless(browser, tmp_path / "profile", "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri())
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 10_000
