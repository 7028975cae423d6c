"""Server-rendered SVG charts for labeling's pages: no script, no inline style (strict CSP).

Small on purpose (labeling never imports curation, whose charts are richer). Every text goes
through Django's `format_html`, so user names are escaped; numbers are formatted to strings
first. Each mark carries a <title> with its exact value, and the pages put the same numbers
in a table beside each chart.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH = 640
ROW = 24
LABEL_WIDTH = 150
COLOR = "#3b6fd4"


def svg(width: int, height: int, title: str, body: SafeString) -> SafeString:
    """The chart's frame, titled for screen readers and hovering; curation's charts use it too."""
    return format_html(
        '<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" width="{}"'
        ' height="{}" role="img" aria-label="{}"><title>{}</title>{}</svg>',
        width, height, width, height, title, title, body,
    )  # fmt: skip


def bar_chart(bars: Sequence[tuple[str, float, str]], *, title: str) -> SafeString:
    """Horizontal bars from 0 to the largest value: (label, value, value as shown)."""
    top = max((value for _, value, _ in bars), default=0) or 1
    plot = WIDTH - LABEL_WIDTH - 70
    rows = [
        (
            LABEL_WIDTH - 8, index * ROW + 16, label,
            LABEL_WIDTH, index * ROW + 4, f"{plot * value / top:.1f}", ROW - 6, COLOR,
            label, shown, f"{LABEL_WIDTH + plot * value / top + 6:.0f}", index * ROW + 16, shown,
        )
        for index, (label, value, shown) in enumerate(bars)
    ]  # fmt: skip
    body = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="end">{}</text>'
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>'
        '<text x="{}" y="{}">{}</text>',
        rows,
    )
    return svg(WIDTH, max(ROW, len(bars) * ROW + 4), title, body)


def column_chart(columns: Sequence[tuple[str, int]], *, title: str) -> SafeString:
    """One column per point (e.g. per day), first and last labels below the axis."""
    height, bottom = 160, 22
    plot = height - bottom - 6
    top = max((value for _, value in columns), default=0) or 1
    step = WIDTH / max(len(columns), 1)
    marks = [
        (
            f"{index * step + 1:.1f}", f"{height - bottom - plot * value / top:.1f}",
            f"{max(step - 2, 1):.1f}", f"{plot * value / top:.1f}", COLOR, label, value,
        )
        for index, (label, value) in enumerate(columns)
    ]  # fmt: skip
    body = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>',
        marks,
    )
    ends = [(0, "start", columns[0][0]), (WIDTH, "end", columns[-1][0])] if columns else []
    axis = format_html_join(
        "", '<text x="{}" y="' + str(height - 6) + '" text-anchor="{}">{}</text>', ends
    )
    return svg(WIDTH, height, title, body + axis)
