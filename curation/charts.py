"""Server-rendered SVG charts: no script, no CDN, no inline style (the CSP forbids all three).

Every label goes through `format_html` below (Django's escaping), so text from users
(annotator names, criteria) is escaped. Colours are SVG presentation attributes, which the CSP
allows; the class names hook into static/css/app.css. Each mark carries a <title>, so hovering
shows the exact value; the pages put the same numbers in a table beside each chart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

from labeling.charts import svg

WIDTH = 640
BAR_HEIGHT = 22
LABEL_WIDTH = 170
PALETTE = ("#3b6fd4", "#d9822b", "#7a5195", "#2f9e6e", "#c23b3b", "#6b7280")


def format_html(template: str, *args: Any) -> SafeString:
    """Django's format_html, except that numbers keep their type for format specs like :.1f."""
    safe = [a if isinstance(a, int | float) else conditional_escape(a) for a in args]
    return mark_safe(template.format(*safe))  # noqa: S308  # every argument escaped above


def format_html_join(separator: str, template: str, rows: Iterable[Sequence[Any]]) -> SafeString:
    return mark_safe(separator.join(format_html(template, *row) for row in rows))  # noqa: S308


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def bar_chart(
    bars: Sequence[tuple[str, float | None]], *, title: str, low: float = 0.0, high: float = 1.0
) -> SafeString:
    """Horizontal bars between `low` and `high` (alpha and kappa run from -1 to 1)."""
    span = (high - low) or 1.0
    plot = WIDTH - LABEL_WIDTH - 70
    zero = LABEL_WIDTH + plot * (min(max(0.0, low), high) - low) / span
    rows = []
    for index, (label, value) in enumerate(bars):
        y = 6 + index * (BAR_HEIGHT + 6)
        clipped = 0.0 if value is None else min(max(value, low), high)
        end = LABEL_WIDTH + plot * (clipped - low) / span
        rows.append(
            (
                LABEL_WIDTH - 8, y + 15, label,
                min(zero, end), y, abs(end - zero), BAR_HEIGHT, PALETTE[0], label, _number(value),
                LABEL_WIDTH + plot + 6, y + 15, _number(value),
            )
        )  # fmt: skip
    body = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="end">{}</text>'
        '<rect x="{:.1f}" y="{}" width="{:.1f}" height="{}" fill="{}"><title>{}: {}</title></rect>'
        '<text x="{}" y="{}">{}</text>',
        rows,
    )
    axis = format_html('<line x1="{:.1f}" x2="{:.1f}" y1="0" y2="{}" stroke="#98a2b3"/>', zero,
                       zero, 12 + len(bars) * (BAR_HEIGHT + 6))  # fmt: skip
    return svg(WIDTH, 12 + len(bars) * (BAR_HEIGHT + 6), title, body + axis)


def line_chart(points: Sequence[tuple[str, float]], *, title: str) -> SafeString:
    """A running total over time: one polyline, a dot per point, first and last dates below."""
    height, left, bottom = 200, 50, 30
    plot_width, plot_height = WIDTH - left - 10, height - bottom - 10
    top = max((value for _, value in points), default=0) or 1
    step = plot_width / max(len(points) - 1, 1)
    coordinates = [
        (left + index * step, 10 + plot_height * (1 - value / top), label, value)
        for index, (label, value) in enumerate(points)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in coordinates)
    dots = format_html_join(
        "", '<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"><title>{}: {}</title></circle>',
        ((x, y, PALETTE[0], label, f"{value:,.0f}") for x, y, label, value in coordinates),
    )  # fmt: skip
    ends = format_html_join(
        "", '<text x="{:.1f}" y="{}" text-anchor="{}">{}</text>',
        (
            (x, height - 8, anchor, label)
            for (x, _, label, _), anchor in zip(
                [coordinates[0], coordinates[-1]] if coordinates else [], ["start", "end"],
                strict=False,
            )
        ),
    )  # fmt: skip
    body = format_html(
        '<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>{}{}'
        '<text x="4" y="16">{}</text>',
        line, PALETTE[0], dots, ends, f"{top:,.0f}",
    )  # fmt: skip
    return svg(WIDTH, height, title, body)


def heatmap(
    labels: Sequence[str], cells: Sequence[Sequence[float | None]], *, title: str
) -> SafeString:
    """A square matrix of values in [-1, 1]: blue for agreement, orange below chance, grey n/a."""
    size = max(14, min(36, 560 // max(len(labels), 1)))
    margin = LABEL_WIDTH
    marks = []
    for row, (row_label, values) in enumerate(zip(labels, cells, strict=True)):
        for column, value in enumerate(values):
            marks.append(
                (
                    margin + column * size, margin + row * size, size - 1, size - 1, _colour(value),
                    row_label, labels[column], _number(value),
                )
            )  # fmt: skip
    body = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{} / {}: {}</title></rect>',
        marks,
    )
    names = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="end">{}</text>'
        '<text transform="translate({},{}) rotate(-60)">{}</text>',
        (
            (margin - 4, margin + i * size + size * 0.7, name,
             margin + i * size + size * 0.6, margin - 4, name)
            for i, name in enumerate(labels)
        ),
    )  # fmt: skip
    side = margin + len(labels) * size + 10
    return svg(side, side, title, body + names)


def _colour(value: float | None) -> str:
    """Blue intensity for kappa above 0, orange below; grey where there is no value."""
    if value is None:
        return "#e4e7ec"
    strength = min(abs(value), 1.0)
    base = (59, 111, 212) if value >= 0 else (217, 130, 43)
    red, green, blue = (round(255 - (255 - c) * strength) for c in base)
    return f"#{red:02x}{green:02x}{blue:02x}"


def stacked_bars(
    rows: Sequence[tuple[str, Sequence[int]]], categories: Sequence[str], *, title: str
) -> SafeString:
    """One bar per row split by category shares (e.g. each annotator's label distribution)."""
    plot = WIDTH - LABEL_WIDTH - 10
    marks = []
    for index, (label, counts) in enumerate(rows):
        y, x, total = 6 + index * (BAR_HEIGHT + 6), float(LABEL_WIDTH), sum(counts) or 1
        marks.append(format_html('<text x="{}" y="{}" text-anchor="end">{}</text>',
                                 LABEL_WIDTH - 8, y + 15, label))  # fmt: skip
        for position, (category, count) in enumerate(zip(categories, counts, strict=True)):
            width = plot * count / total
            marks.append(format_html(
                '<rect x="{:.1f}" y="{}" width="{:.1f}" height="{}" fill="{}">'
                "<title>{} {}: {}</title></rect>",
                x, y, width, BAR_HEIGHT, PALETTE[position % len(PALETTE)], label, category, count,
            ))  # fmt: skip
            x += width
    legend = format_html_join(
        "", '<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{}</text>',
        (
            (LABEL_WIDTH + i * 90, 12 + len(rows) * (BAR_HEIGHT + 6), PALETTE[i % len(PALETTE)],
             LABEL_WIDTH + i * 90 + 14, 21 + len(rows) * (BAR_HEIGHT + 6), name)
            for i, name in enumerate(categories)
        ),
    )  # fmt: skip
    height = 30 + len(rows) * (BAR_HEIGHT + 6)
    return svg(WIDTH, height, title, format_html_join("", "{}", ([m] for m in marks)) + legend)
