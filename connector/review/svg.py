"""Inline SVG bar charts for the HTML review: no script, no external file, printable.

The report must open from a mail attachment or a wiki upload on a machine without network,
and print as it looks. A chart library would pull in JavaScript or a plotting stack for
what is a handful of rectangles, so the charts are drawn here: horizontal bars, one row
per item, the current period's bar above the previous period's lighter one, the value
written after each bar. Colours are SVG attributes (not page CSS), so a chart copied out of
the page keeps them. Every text is XML-escaped: labels are category names users typed.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

CURRENT_FILL = "#2f6fb0"
PREVIOUS_FILL = "#b9cde5"
TEXT_FILL = "#222222"
GRID_STROKE = "#d0d0d0"

LABEL_WIDTH = 190
BAR_AREA = 330
VALUE_WIDTH = 80
BAR_HEIGHT = 13
ROW_GAP = 9
TOP = 8
FONT = "font-family=\"system-ui, 'Segoe UI', 'Noto Sans CJK SC', 'PingFang SC', 'Microsoft YaHei', sans-serif\""
LABEL_CELLS = 26  # label width in character cells (a CJK character takes two)


@dataclass(frozen=True)
class Bar:
    """One row of a chart: a label, the current value and (for the trend) the previous one."""

    label: str
    current: float | None
    previous: float | None = None


def _cells(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _fit(text: str, cells: int = LABEL_CELLS) -> str:
    """Shorten a label to the label column, by display width, so CJK labels do not overflow."""
    if _cells(text) <= cells:
        return text
    out, used = "", 0
    for ch in text:
        width = _cells(ch)
        if used + width > cells - 1:
            break
        out, used = out + ch, used + width
    return out + "…"


def bar_chart(title: str, bars: Sequence[Bar], *, scale_max: float | None = None,
              value_text: Callable[[float | None], str] = lambda v: "–" if v is None else f"{v:g}",
              show_previous: bool = True, chart_id: str = "") -> Markup:
    """An accessible horizontal bar chart; `scale_max` fixes the axis (100 for percentages)."""
    values = [v for bar in bars for v in (bar.current, bar.previous if show_previous else None) if v is not None]
    top = scale_max if scale_max is not None else max(values, default=0.0)
    top = top or 1.0
    per_row = BAR_HEIGHT * (2 if show_previous else 1) + ROW_GAP
    height = TOP * 2 + per_row * max(1, len(bars))
    width = LABEL_WIDTH + BAR_AREA + VALUE_WIDTH
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" id="{escape(chart_id)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" {FONT} font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{LABEL_WIDTH}" y1="{TOP // 2}" x2="{LABEL_WIDTH}" y2="{height - TOP // 2}" '
        f'stroke="{GRID_STROKE}"/>',
    ]
    if not bars:
        parts.append(f'<text x="{LABEL_WIDTH + 8}" y="{TOP + BAR_HEIGHT}" fill="{TEXT_FILL}">no tickets</text>')
    for index, bar in enumerate(bars):
        y = TOP + index * per_row
        label_y = y + (per_row - ROW_GAP) / 2 + 4
        parts.append(f'<text class="label" x="{LABEL_WIDTH - 8}" y="{label_y:g}" text-anchor="end" '
                     f'fill="{TEXT_FILL}">{escape(_fit(bar.label))}</text>')
        series = [("current", bar.current, CURRENT_FILL)]
        if show_previous:
            series.append(("previous", bar.previous, PREVIOUS_FILL))
        for offset, (name, value, fill) in enumerate(series):
            bar_y = y + offset * BAR_HEIGHT
            length = 0.0 if value is None else max(0.0, min(value, top)) / top * BAR_AREA
            text = value_text(value)
            parts.append(
                f'<rect class="bar bar-{name}" x="{LABEL_WIDTH}" y="{bar_y}" width="{length:.1f}" '
                f'height="{BAR_HEIGHT - 2}" fill="{fill}" data-label="{escape(bar.label)}" '
                f'data-value="{"" if value is None else f"{value:g}"}">'
                f"<title>{escape(bar.label)} ({name} period): {escape(text)}</title></rect>"
            )
            parts.append(f'<text class="value" x="{LABEL_WIDTH + length + 4:.1f}" y="{bar_y + BAR_HEIGHT - 3}" '
                         f'fill="{TEXT_FILL}" font-size="11">{escape(text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def legend() -> Markup:
    """The key to the two bar colours, as inline SVG swatches."""
    def swatch(fill: str) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="12" height="12" aria-hidden="true">'
                f'<rect width="12" height="12" fill="{fill}"/></svg>')

    return Markup(f'<span class="legend">{swatch(CURRENT_FILL)} this period &nbsp; '
                  f'{swatch(PREVIOUS_FILL)} previous period</span>')
