"""Bar charts as geometry for inline SVG (the dashboard draws them in its template: no chart library,
no CDN, nothing to run in the browser). Values in, rectangles, ticks and labels out, in the chart's
own coordinates (viewBox), so the page scales it to the screen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 720.0, 240.0
LEFT, RIGHT, TOP, BOTTOM = 44.0, 8.0, 10.0, 34.0  # room for the axis labels
MAX_LABELS = 12  # period labels under the bars: at most this many, evenly spread


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[int, ...]
    tone: str  # a CSS class: s1, s2, s3


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    tone: str
    title: str  # shown on hover: "2026-05-01 办件 3"


@dataclass(frozen=True)
class Tick:
    y: float
    text: str


@dataclass(frozen=True)
class Label:
    x: float
    text: str


@dataclass(frozen=True)
class BarChart:
    width: float
    height: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    labels: tuple[Label, ...]
    legend: tuple[tuple[str, str], ...]  # (tone, name)
    baseline: float
    empty: bool


def bar_chart(categories: Sequence[str], series: Sequence[Series]) -> BarChart:
    """Grouped vertical bars: one group per category, one bar per series, on a common scale."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = max((v for s in series for v in s.values), default=0)
    scale_max = _nice(top)
    group_w = plot_w / max(len(categories), 1)
    bar_w = group_w * 0.8 / max(len(series), 1)
    bars = []
    for index, category in enumerate(categories):
        for position, one in enumerate(series):
            value = one.values[index]
            h = plot_h * value / scale_max if scale_max else 0.0
            x = LEFT + index * group_w + group_w * 0.1 + position * bar_w
            bars.append(Bar(round(x, 2), round(TOP + plot_h - h, 2), round(bar_w, 2), round(h, 2), one.tone,
                            f"{category} {one.name} {value}"))
    ticks = tuple(
        Tick(round(TOP + plot_h - plot_h * step / 4, 2), f"{scale_max * step // 4:,}") for step in range(5)
    )
    every = max(1, -(-len(categories) // MAX_LABELS))
    labels = tuple(
        Label(round(LEFT + index * group_w + group_w / 2, 2), category)
        for index, category in enumerate(categories)
        if index % every == 0
    )
    return BarChart(
        WIDTH, HEIGHT, tuple(bars), ticks, labels, tuple((s.tone, s.name) for s in series), TOP + plot_h, top == 0
    )


def _nice(value: int) -> int:
    """The axis maximum: 4, 8, 20, 40, 80, 200… (4 × 1, 2 or 5 × 10ⁿ), the first at least `value`,
    so the four tick steps are whole numbers."""
    if value <= 0:
        return 0
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if 4 * step * magnitude >= value:
                return 4 * step * magnitude
        magnitude *= 10
