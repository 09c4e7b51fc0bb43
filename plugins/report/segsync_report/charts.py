"""The charts' geometry: every chart is a :class:`Chart` of plain shapes in SVG user units.

Each data point is one shape with the class ``mark`` (a bar, a heat-map cell, a point), so a
reader, a test or a screen reader can count them against the table beside the chart; axes,
labels and legends are other shapes. The template draws a ``Chart`` without computing anything
(``templates/chart.svg.j2``). Colours: the Okabe-Ito palette (distinguishable with the common
colour-vision deficiencies) for categories, one blue ramp for the heat map.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WIDTH = 640.0
LABEL_WIDTH = 170.0  # room for a segment or system name left of the bars
ROW = 22.0  # one bar's row
PAD = 8.0
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
# Text on a bar of that colour: dark on the light ones, white on the others.
DARK_INK = {"#E69F00", "#56B4E9", "#F0E442"}


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str  # the exact figure, shown on hover and read by screen readers
    css: str = "mark"


@dataclass(frozen=True)
class Circle:
    cx: float
    cy: float
    r: float
    fill: str
    title: str
    css: str = "mark"


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "start"  # SVG text-anchor
    css: str = "label"
    fill: str | None = None


@dataclass(frozen=True)
class Line:
    points: tuple[tuple[float, float], ...]
    css: str = "axis"
    stroke: str | None = None


@dataclass(frozen=True)
class Chart:
    """An SVG of ``width`` x ``height``; ``title`` names it for assistive technology."""

    id: str
    title: str
    width: float
    height: float
    rects: list[Rect] = field(default_factory=list)
    circles: list[Circle] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)

    @property
    def marks(self) -> int:
        return sum(1 for s in (*self.rects, *self.circles) if s.css.split()[0] == "mark")


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def short(name: str, limit: int = 24) -> str:
    """A label that fits the label column (the full text stays in the shape's title)."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _scale(values: Sequence[float]) -> float:
    top = max(values, default=0.0)
    return top if top > 0 else 1.0


def bars(id: str, title: str, items: Sequence[tuple[str, float]], fmt: Callable[[float], str],
         fill: str = PALETTE[0], width: float = WIDTH) -> Chart:
    """One horizontal bar per item, the value printed after it (``width``: narrower charts
    keep their text legible side by side)."""
    top = _scale([v for _, v in items])
    label_width = LABEL_WIDTH * width / WIDTH + 20
    span = width - label_width - 60
    chart = Chart(id, title, width, PAD * 2 + ROW * max(len(items), 1))
    for i, (label, value) in enumerate(items):
        y = PAD + i * ROW
        length = span * value / top
        chart.texts.append(Text(label_width - 6, y + ROW * 0.65, short(label, int(label_width / 6.5)), "end"))
        chart.rects.append(Rect(label_width, y + 3, length, ROW - 6, fill, f"{label}: {fmt(value)}"))
        chart.texts.append(Text(label_width + length + 4, y + ROW * 0.65, fmt(value), css="value"))
    chart.lines.append(Line(((label_width, PAD), (label_width, chart.height - PAD))))
    return chart


def stacked(id: str, title: str, rows: Sequence[tuple[str, Sequence[tuple[str, int]]]],
            categories: Sequence[str]) -> Chart:
    """One bar per row split into its parts (shares of the row's total), a legend of
    ``categories`` (each part's colour is its category's) under the bars. Parts of 0 draw
    nothing."""
    span = WIDTH - LABEL_WIDTH - PAD
    per_row = 3
    legend_rows = (len(categories) + per_row - 1) // per_row
    chart = Chart(id, title, WIDTH, PAD * 2 + ROW * (len(rows) + legend_rows) + 6)
    for i, (label, parts) in enumerate(rows):
        y = PAD + i * ROW
        total = sum(n for _, n in parts)
        chart.texts.append(Text(LABEL_WIDTH - 6, y + ROW * 0.65, short(label, 28), "end"))
        x = LABEL_WIDTH
        for name, n in parts:
            if not n:
                continue
            width = span * n / total
            share = n / total
            chart.rects.append(Rect(x, y + 3, width, ROW - 6, colour(categories.index(name)),
                                    f"{label}: {name} {n} ({share:.1%})"))
            if width > 34:
                fill = colour(categories.index(name))
                chart.texts.append(Text(x + width / 2, y + ROW * 0.65, f"{n:,}", "middle", "inside",
                                        "#222222" if fill in DARK_INK else "#ffffff"))
            x += width
    top = PAD + len(rows) * ROW + 6
    for k, name in enumerate(categories):
        x = LABEL_WIDTH + (k % per_row) * (span / per_row)
        y = top + (k // per_row) * ROW
        chart.rects.append(Rect(x, y + 5, 12, 12, colour(k), name, "key"))
        chart.texts.append(Text(x + 16, y + 15, short(name, 24)))
    return chart


def heat_map(id: str, title: str, names: Sequence[str],
             cell: Callable[[int, int], tuple[float | None, str, str]]) -> Chart:
    """A square of cells, row ``i`` by column ``j``; ``cell(i, j)`` gives the share that colours
    it (None: not applicable, drawn hatched), its text and its title."""
    n = len(names)
    side = min(44.0, (WIDTH - LABEL_WIDTH - PAD) / max(n, 1))
    head = 120.0  # column labels, rotated
    chart = Chart(id, title, WIDTH, head + side * n + PAD)
    for j, name in enumerate(names):
        x = LABEL_WIDTH + j * side + side / 2
        chart.texts.append(Text(x, head - 6, short(name, 18), "start", "column"))
    for i, name in enumerate(names):
        y = head + i * side
        chart.texts.append(Text(LABEL_WIDTH - 6, y + side * 0.6, short(name), "end"))
        for j in range(n):
            share, text, tip = cell(i, j)
            x = LABEL_WIDTH + j * side
            fill = "url(#hatch)" if share is None else ramp(share)
            chart.rects.append(Rect(x, y, side - 1, side - 1, fill, tip))
            ink = "#ffffff" if share is not None and share > 0.55 else "#222222"
            chart.texts.append(Text(x + side / 2 - 0.5, y + side * 0.6, text, "middle", "cell", ink))
    return chart


def ramp(share: float) -> str:
    """White (0) to dark blue (1)."""
    share = min(max(share, 0.0), 1.0)
    low, high = (247, 251, 255), (8, 48, 107)
    r, g, b = (round(a + (z - a) * share) for a, z in zip(low, high))
    return f"#{r:02x}{g:02x}{b:02x}"


def history(id: str, title: str, runs: Sequence[tuple[str, int, int, int]]) -> Chart:
    """Per run (label, size, entries, exits): the size as a line of points above, entries
    (up) and exits (down) as bars below."""
    width, left, top_h, flow_h = 440.0, 46.0, 60.0, 56.0
    chart = Chart(id, title, width, PAD + top_h + 14 + flow_h + 22)
    step = (width - left - PAD) / max(len(runs), 1)
    size_top = _scale([s for _, s, _, _ in runs])
    flow_top = _scale([max(e, x) for _, _, e, x in runs])
    base = PAD + top_h + 14 + flow_h / 2  # the entries/exits zero line
    points = []
    for k, (label, size, entries, exits) in enumerate(runs):
        cx = left + step * (k + 0.5)
        cy = PAD + top_h - top_h * size / size_top
        points.append((cx, cy))
        chart.circles.append(Circle(cx, cy, 3.5, PALETTE[0], f"{label}: {size} members", "mark size"))
        bar = min(step * 0.6, 24)
        up = flow_h / 2 * entries / flow_top
        down = flow_h / 2 * exits / flow_top
        chart.rects.append(Rect(cx - bar / 2, base - up, bar, up, PALETTE[2], f"{label}: +{entries} entered",
                                "mark entries"))
        chart.rects.append(Rect(cx - bar / 2, base, bar, down, PALETTE[5], f"{label}: -{exits} exited",
                                "mark exits"))
        if len(runs) <= 12 or k % max(len(runs) // 12, 1) == 0:
            chart.texts.append(Text(cx, chart.height - 6, label, "middle", "tick"))
    if len(points) > 1:
        chart.lines.append(Line(tuple(points), "series", PALETTE[0]))
    chart.lines.append(Line(((left, base), (width - PAD, base))))
    chart.lines.append(Line(((left, PAD + top_h), (width - PAD, PAD + top_h))))
    chart.texts.append(Text(left - 4, PAD + 8, str(int(size_top)), "end", "tick"))
    chart.texts.append(Text(left - 4, PAD + top_h, "0", "end", "tick"))
    chart.texts.append(Text(left - 4, base - flow_h / 2 + 8, f"+{int(flow_top)}", "end", "tick"))
    chart.texts.append(Text(left - 4, base + flow_h / 2, f"-{int(flow_top)}", "end", "tick"))
    return chart


def histogram(id: str, title: str, bins: Sequence[tuple[str, int]]) -> Chart:
    """Vertical bars, one per bin (label, contacts)."""
    left, height = 46.0, 120.0
    chart = Chart(id, title, WIDTH, PAD + height + 26)
    step = (WIDTH - left - PAD) / max(len(bins), 1)
    top = _scale([n for _, n in bins])
    for k, (label, n) in enumerate(bins):
        h = height * n / top
        x = left + step * k
        chart.rects.append(Rect(x + 1, PAD + height - h, step - 2, h, PALETTE[3], f"{label}: {n} contacts"))
        if len(bins) <= 12 or k % max(len(bins) // 12, 1) == 0:
            chart.texts.append(Text(x + step / 2, chart.height - 8, label, "middle", "tick"))
    chart.lines.append(Line(((left, PAD + height), (WIDTH - PAD, PAD + height))))
    chart.texts.append(Text(left - 4, PAD + 8, str(int(top)), "end", "tick"))
    chart.texts.append(Text(left - 4, PAD + height, "0", "end", "tick"))
    return chart
