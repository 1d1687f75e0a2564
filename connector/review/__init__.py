"""The periodic review of the standard process: `connector report`.

`collect` reads the tickets a review needs through a platform adapter, `metrics` turns
them into figures (pure), and `render_md`, `render_csv`, `render_html` lay the figures out
for a wiki page, a spreadsheet, or a self-contained printable web page.
"""

from __future__ import annotations

from connector.review.metrics import Period, Report, build_report

__all__ = ["Period", "Report", "build_report", "render"]

FORMATS = ("md", "csv", "html")


def render(report: Report, output_format: str) -> str:
    """The report in one of FORMATS."""
    if output_format == "md":
        from connector.review.render_md import render_markdown

        return render_markdown(report)
    if output_format == "csv":
        from connector.review.render_csv import render_csv

        return render_csv(report)
    if output_format == "html":
        from connector.review.render_html import render_html

        return render_html(report)
    raise ValueError(f"unknown report format {output_format!r}; expected one of {', '.join(FORMATS)}")
