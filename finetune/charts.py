"""Line charts of a run's step metrics as SVG geometry, drawn on the server. Pure.

The strict Content-Security-Policy allows no charting script from elsewhere, and a chart that
htmx swaps in every 2 s should cost nothing on the client: the template draws a polyline from
the points computed here, with presentation attributes and classes, no inline style.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT, PAD = 480, 180, 36


@dataclass(frozen=True)
class Chart:
    title: str
    points: str  # "x,y x,y ..." for <polyline points=...>
    y_min: str
    y_max: str
    x_max: int  # the last step
    last: str  # the last value, as shown
    width: int = WIDTH
    height: int = HEIGHT
    pad: int = PAD

    @property
    def empty(self) -> bool:
        return not self.points

    @property
    def right(self) -> int:
        return self.width - self.pad

    @property
    def bottom(self) -> int:
        return self.height - self.pad


def line_chart(title: str, series: Sequence[dict[str, Any]], key: str) -> Chart:
    """Plot `key` against `step` for the points that have it; an empty chart if none do."""
    pairs = [(float(p["step"]), float(p[key])) for p in series if key in p and "step" in p]
    if not pairs:
        return Chart(title, "", "", "", 0, "")
    xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    low, high = min(ys), max(ys)
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (high - low) or 1.0
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def place(x: float, y: float) -> str:
        left = PAD + (x - min(xs)) / span_x * inner_w
        top = PAD + (high - y) / span_y * inner_h  # SVG's y grows downwards
        return f"{left:.1f},{top:.1f}"

    points = " ".join(place(x, y) for x, y in pairs)
    return Chart(title, points, f"{low:.4g}", f"{high:.4g}", int(max(xs)), f"{ys[-1]:.4g}")


def run_charts(method: str, series: Sequence[dict[str, Any]]) -> list[Chart]:
    """The run page's charts: the loss, and for DPO the reward accuracy and margin."""
    charts = [line_chart("Training loss", series, "loss")]
    if method == "dpo":
        charts.append(line_chart("Reward accuracy", series, "rewards/accuracies"))
        charts.append(line_chart("Reward margin", series, "rewards/margins"))
    return charts
