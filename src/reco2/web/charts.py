"""Bar charts as plain numbers for server-rendered SVG (templates/_bars.html draws them).

No JavaScript: the page gets an ``<svg role="img">`` with a title and a description, and the
same numbers as a table for screen readers and for copying.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 640
HEIGHT = 220
LEFT = 56  # room for the axis labels
BOTTOM = 28
TOP = 12


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class Tick:
    value: float
    y: float


@dataclass(frozen=True, slots=True)
class Chart:
    chart_id: str
    title: str
    unit: str
    bars: list[Bar]
    ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: float = HEIGHT - BOTTOM

    @property
    def description(self) -> str:
        if not self.bars:
            return f"{self.title}: no data"
        parts = ", ".join(f"{b.label} {b.value:g}" for b in self.bars)
        return f"{self.title} ({self.unit}): {parts}"


def nice_top(peak: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``peak`` (1 for nothing)."""
    if peak <= 0:
        return 1.0
    scale = 1.0
    while scale * 10 <= peak:
        scale *= 10
    while scale > peak:
        scale /= 10
    for step in (1, 2, 5, 10):
        if step * scale >= peak:
            return step * scale
    return 10 * scale  # pragma: no cover (the loop always returns)


def bar_chart(chart_id: str, title: str, unit: str, points: list[tuple[str, float]]) -> Chart:
    """One bar per point, scaled so the tallest fits; four gridline ticks from zero."""
    top = nice_top(max((v for _, v in points), default=0.0))
    plot_h = HEIGHT - BOTTOM - TOP
    plot_w = WIDTH - LEFT - 8
    slot = plot_w / max(len(points), 1)
    bars = []
    for i, (label, value) in enumerate(points):
        h = plot_h * max(value, 0.0) / top
        bars.append(
            Bar(
                label,
                value,
                round(LEFT + i * slot + slot * 0.15, 2),
                round(TOP + plot_h - h, 2),
                round(slot * 0.7, 2),
                round(h, 2),
            )
        )
    ticks = [Tick(top * k / 4, round(TOP + plot_h - plot_h * k / 4, 2)) for k in range(5)]
    return Chart(chart_id, title, unit, bars, ticks)
