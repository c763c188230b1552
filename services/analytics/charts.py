"""Server-side SVG charts. Pure functions returning markup; no JavaScript, no external assets.

Readable without colour: every series has its own fill pattern (solid, hatched, dotted, cross-hatched ...) and
line style and marker shape, a legend that shows the pattern, and its values written next to the bars or
points. Every chart has a ``<title>`` and ``<desc>`` and the page puts a data table beside it.
All text is escaped.
"""

from __future__ import annotations

from html import escape

from markupsafe import Markup

WIDTH = 720
LABEL_W = 210
RIGHT_PAD = 70
BAR_H = 22
GAP = 8
FONT = "font-family='system-ui, sans-serif' font-size='13'"

# (background colour, ink colour, pattern kind): colour-blind-safe hues, each with a distinct texture
_STYLES = (
    ("#1f5f99", "#0b2f52", "solid"),
    ("#f2b134", "#6b4a00", "hatch"),
    ("#5aa469", "#1d4d27", "dots"),
    ("#c6495b", "#5c1420", "cross"),
    ("#8a6bbf", "#3a2466", "hlines"),
    ("#7f7f7f", "#222222", "vlines"),
)
_DASHES = ("", "8 4", "2 3", "10 3 2 3", "4 4", "1 5")
_MARKERS = ("circle", "square", "triangle", "diamond", "cross", "circle-open")


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.1f}"
    return str(int(value))


def _defs(chart_id: str) -> str:
    parts = []
    for i, (fill, ink, kind) in enumerate(_STYLES):
        pid = f"{chart_id}-p{i}"
        shapes = {
            "solid": "",
            "hatch": f"<path d='M0,8 L8,0 M-2,2 L2,-2 M6,10 L10,6' stroke='{ink}' stroke-width='2'/>",
            "dots": f"<circle cx='4' cy='4' r='1.8' fill='{ink}'/>",
            "cross": f"<path d='M0,0 L8,8 M8,0 L0,8' stroke='{ink}' stroke-width='1.4'/>",
            "hlines": f"<path d='M0,4 L8,4' stroke='{ink}' stroke-width='2'/>",
            "vlines": f"<path d='M4,0 L4,8' stroke='{ink}' stroke-width='2'/>",
        }[kind]
        parts.append(
            f"<pattern id='{pid}' patternUnits='userSpaceOnUse' width='8' height='8'>"
            f"<rect width='8' height='8' fill='{fill}'/>{shapes}</pattern>"
        )
    return "<defs>" + "".join(parts) + "</defs>"


def _fill(chart_id: str, i: int) -> str:
    return f"url(#{chart_id}-p{i % len(_STYLES)})"


def _ink(i: int) -> str:
    return _STYLES[i % len(_STYLES)][1]


def _open(chart_id: str, title: str, desc: str, height: int) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' class='chart' id='{chart_id}' viewBox='0 0 {WIDTH} {height}' "
        f"width='100%' role='img' aria-labelledby='{chart_id}-t {chart_id}-d' {FONT}>"
        f"<title id='{chart_id}-t'>{escape(title)}</title><desc id='{chart_id}-d'>{escape(desc)}</desc>"
        f"{_defs(chart_id)}"
    )


def _legend(chart_id: str, names: list[str], y: int) -> tuple[str, int]:
    """A legend row (wrapping) showing each series' pattern; returns the markup and the height used."""
    out, x, row = [], 0, 0
    for i, name in enumerate(names):
        width = 26 + 7 * len(name) + 18
        if x + width > WIDTH and x > 0:
            x, row = 0, row + 1
        yy = y + row * 22
        out.append(
            f"<g class='legend-item'><rect x='{x}' y='{yy}' width='18' height='14' fill='{_fill(chart_id, i)}' "
            f"stroke='{_ink(i)}'/><text x='{x + 24}' y='{yy + 12}'>{escape(name)}</text></g>"
        )
        x += width
    return "".join(out), (row + 1) * 22 if names else 0


def _no_data(chart_id: str, title: str, message: str) -> Markup:
    return Markup(_open(chart_id, title, message, 40) + f"<text x='0' y='24'>{escape(message)}</text></svg>")


def bar_chart(
    chart_id: str,
    title: str,
    rows: list[tuple[str, float | None]],
    *,
    desc: str = "",
    suffix: str = "",
    no_data: str = "–",
) -> Markup:
    """Horizontal bars, one series, each labelled with its value."""
    return grouped_bar_chart(
        chart_id, title, [r[0] for r in rows], [("", [r[1] for r in rows])], desc=desc, suffix=suffix, no_data=no_data
    )


def grouped_bar_chart(
    chart_id: str,
    title: str,
    categories: list[str],
    series: list[tuple[str, list[float | None]]],
    *,
    desc: str = "",
    suffix: str = "",
    no_data: str = "–",
) -> Markup:
    """Horizontal bars, one group per category and one patterned bar per series, values written at the ends."""
    values = [v for _, vs in series for v in vs if v is not None]
    if not categories or not values:
        return _no_data(chart_id, title, no_data)
    top = max(values) or 1
    plot_w = WIDTH - LABEL_W - RIGHT_PAD
    group_h = len(series) * BAR_H + GAP * 2
    named = [name for name, _ in series if name]
    legend, legend_h = _legend(chart_id, named, 0)
    height = legend_h + len(categories) * group_h + 6
    out = [_open(chart_id, title, desc or title, height), legend]
    for c, category in enumerate(categories):
        y0 = legend_h + c * group_h + GAP
        out.append(
            f"<text x='{LABEL_W - 8}' y='{y0 + len(series) * BAR_H / 2 + 4}' "
            f"text-anchor='end'>{escape(category)}</text>"
        )
        for s, (name, vals) in enumerate(series):
            value = vals[c]
            y = y0 + s * BAR_H
            width = 0 if value is None else max(plot_w * value / top, 1 if value else 0)
            label = f"{_fmt(value)}{suffix if value is not None else ''}"
            out.append(
                f"<rect class='bar' x='{LABEL_W}' y='{y + 2}' width='{width:.1f}' height='{BAR_H - 4}' "
                f"fill='{_fill(chart_id, s)}' stroke='{_ink(s)}'>"
                f"<title>{escape(f'{category} {name}: {label}'.strip())}</title></rect>"
                f"<text class='value' x='{LABEL_W + width + 6:.1f}' y='{y + BAR_H - 7}'>{escape(label)}</text>"
            )
        out.append(f"<line x1='{LABEL_W}' x2='{LABEL_W}' y1='{y0 - 4}' y2='{y0 + len(series) * BAR_H}' stroke='#333'/>")
    out.append("</svg>")
    return Markup("".join(out))


def stacked_bar_chart(
    chart_id: str,
    title: str,
    categories: list[str],
    series: list[tuple[str, list[int]]],
    *,
    desc: str = "",
    no_data: str = "–",
) -> Markup:
    """Horizontal stacked bars; each segment patterned and labelled with its count, the total at the end."""
    totals = [sum(vals[c] for _, vals in series) for c in range(len(categories))]
    if not categories or not any(totals):
        return _no_data(chart_id, title, no_data)
    top = max(totals) or 1
    plot_w = WIDTH - LABEL_W - RIGHT_PAD
    legend, legend_h = _legend(chart_id, [name for name, _ in series], 0)
    row_h = BAR_H + GAP * 2
    height = legend_h + len(categories) * row_h + 6
    out = [_open(chart_id, title, desc or title, height), legend]
    for c, category in enumerate(categories):
        y = legend_h + c * row_h + GAP
        out.append(f"<text x='{LABEL_W - 8}' y='{y + BAR_H / 2 + 4}' text-anchor='end'>{escape(category)}</text>")
        x = float(LABEL_W)
        for s, (name, vals) in enumerate(series):
            value = vals[c]
            if not value:
                continue
            width = plot_w * value / top
            out.append(
                f"<rect class='bar' x='{x:.1f}' y='{y}' width='{width:.1f}' height='{BAR_H}' "
                f"fill='{_fill(chart_id, s)}' stroke='#fff'>"
                f"<title>{escape(f'{category} {name}: {value}')}</title></rect>"
            )
            if width >= 24:  # the value on a white tag inside the segment, readable over any pattern
                cx = x + width / 2
                out.append(
                    f"<rect x='{cx - 11:.1f}' y='{y + 3}' width='22' height='{BAR_H - 6}' rx='3' fill='#fff' "
                    f"opacity='0.9'/><text class='value' x='{cx:.1f}' y='{y + BAR_H - 7}' "
                    f"text-anchor='middle'>{value}</text>"
                )
            x += width
        out.append(f"<text class='value total' x='{x + 6:.1f}' y='{y + BAR_H - 7}'>= {totals[c]}</text>")
    out.append("</svg>")
    return Markup("".join(out))


def _marker(kind: str, x: float, y: float, ink: str) -> str:
    if kind == "circle":
        return f"<circle cx='{x:.1f}' cy='{y:.1f}' r='4.5' fill='{ink}'/>"
    if kind == "circle-open":
        return f"<circle cx='{x:.1f}' cy='{y:.1f}' r='4.5' fill='#fff' stroke='{ink}' stroke-width='2'/>"
    if kind == "square":
        return f"<rect x='{x - 4:.1f}' y='{y - 4:.1f}' width='8' height='8' fill='{ink}'/>"
    if kind == "triangle":
        return f"<path d='M{x:.1f},{y - 5:.1f} L{x + 5:.1f},{y + 4:.1f} L{x - 5:.1f},{y + 4:.1f} Z' fill='{ink}'/>"
    if kind == "diamond":
        d = f"M{x:.1f},{y - 5:.1f} L{x + 5:.1f},{y:.1f} L{x:.1f},{y + 5:.1f} L{x - 5:.1f},{y:.1f} Z"
        return f"<path d='{d}' fill='{ink}'/>"
    d = f"M{x - 4:.1f},{y - 4:.1f} L{x + 4:.1f},{y + 4:.1f} M{x + 4:.1f},{y - 4:.1f} L{x - 4:.1f},{y + 4:.1f}"
    return f"<path d='{d}' stroke='{ink}' stroke-width='2'/>"


def line_chart(
    chart_id: str,
    title: str,
    x_labels: list[str],
    series: list[tuple[str, list[int]]],
    *,
    desc: str = "",
    no_data: str = "–",
) -> Markup:
    """Lines over time, one per series, each with its own dash pattern and marker shape, its values written at
    every point and its name written at its last point (no legend lookup needed)."""
    values = [v for _, vs in series for v in vs]
    if not x_labels or not values:
        return _no_data(chart_id, title, no_data)
    top = max(max(values), 1)
    left, right, top_pad, plot_h = 40, 230, 16, 220
    plot_w = WIDTH - left - right
    height = top_pad + plot_h + 40 + 16 * max(len(series) - 1, 0)
    step = plot_w / max(len(x_labels) - 1, 1)
    out = [_open(chart_id, title, desc or title, height)]
    out.append(f"<line x1='{left}' x2='{left}' y1='{top_pad}' y2='{top_pad + plot_h}' stroke='#333'/>")
    out.append(
        f"<line x1='{left}' x2='{left + plot_w}' y1='{top_pad + plot_h}' y2='{top_pad + plot_h}' stroke='#333'/>"
    )
    for tick in sorted({0, top // 2, top}):
        y = top_pad + plot_h - plot_h * tick / top
        out.append(
            f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end'>{tick}</text>"
            f"<line x1='{left}' x2='{left + plot_w}' y1='{y:.1f}' y2='{y:.1f}' stroke='#ddd'/>"
        )
    for i, label in enumerate(x_labels):
        x = left + (i * step if len(x_labels) > 1 else plot_w / 2)
        out.append(f"<text x='{x:.1f}' y='{top_pad + plot_h + 18}' text-anchor='middle'>{escape(label)}</text>")
    ends: list[tuple[float, float, int]] = []
    for s, (name, vals) in enumerate(series):
        ink, dash, marker = _ink(s), _DASHES[s % len(_DASHES)], _MARKERS[s % len(_MARKERS)]
        points = [
            (left + (i * step if len(x_labels) > 1 else plot_w / 2), top_pad + plot_h - plot_h * v / top)
            for i, v in enumerate(vals)
        ]
        path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(points))
        out.append(
            f"<g class='series'><path d='{path}' fill='none' stroke='{ink}' stroke-width='2.5' "
            f"stroke-dasharray='{dash}'><title>{escape(name)}</title></path>"
        )
        for (x, y), v in zip(points, vals, strict=True):
            out.append(_marker(marker, x, y, ink) + f"<text class='value' x='{x + 6:.1f}' y='{y - 7:.1f}'>{v}</text>")
        out.append("</g>")
        ends.append((points[-1][1], points[-1][0], s))
    # direct labels at the lines' ends, moved apart so that lines ending at the same value stay readable
    placed: list[float] = []
    for y, x, s in sorted(ends):
        label_y = max(y, placed[-1] + 16) if placed else y
        placed.append(label_y)
        ink, marker = _ink(s), _MARKERS[s % len(_MARKERS)]
        out.append(
            f"{_marker(marker, x + 22, label_y, ink)}<text class='series-label' x='{x + 30:.1f}' "
            f"y='{label_y + 4:.1f}' fill='{ink}'>{escape(series[s][0])}</text>"
        )
    out.append("</svg>")
    return Markup("".join(out))
