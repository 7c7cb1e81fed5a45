"""The report as one self-contained HTML page: text figures and inline SVG charts, no external assets.

Three charts per pool, each an ``<svg>`` with an ``id`` a test (or a reader's tooling) can find: ready VMs over
time as steps with preemptions marked in red (``ready-<pool>``), cost per day against always-on on-demand
(``cost-<pool>``), and requests per day by where they were served (``served-<pool>``). Colours are fixed
so a screenshot can be checked for them.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, timedelta

from spotgate.history.replay import Series
from spotgate.simulation.report import Report, render_text

WIDTH, HEIGHT, PAD = 1000, 220, 40
READY_COLOUR = "#1f77b4"  # blue steps
PREEMPT_COLOUR = "#d62728"  # red marks
COST_COLOUR = "#2ca02c"  # green bars
BASELINE_COLOUR = "#ff7f0e"  # orange bars
SERVED_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f")  # VM, overflow, held then VM, refused
_SERVED_ORDER = (("vm",), ("overflow", "overflow_cold_start"), ("held_then_vm",), ("refused_503",))


def render_page(pools: Sequence[tuple[Report, Series]], since: datetime, until: datetime) -> str:
    """The whole page for ``[since, until)``."""
    body = "\n".join(_pool_section(report, series, since) for report, series in pools)
    title = f"spotgate report {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:20px;background:#fff;color:#222}"
        "pre{background:#f6f6f6;padding:8px}svg{display:block;margin:8px 0 24px}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def _pool_section(report: Report, series: Series, since: datetime) -> str:
    pool = html.escape(report.pool)
    return "\n".join(
        [
            f"<section><h2>pool {pool}</h2><pre>{html.escape(render_text(report))}</pre>",
            "<h3>ready VMs (red: preemptions)</h3>",
            _ready_chart(report.pool, series),
            "<h3>cost per day (green) vs always-on on-demand (orange), USD</h3>",
            _bars(
                f"cost-{report.pool}", [(d.cost, d.baseline_cost) for d in series.days], (COST_COLOUR, BASELINE_COLOUR)
            ),
            _day_labels(series, since),
            "<h3>requests per day: ready VM (purple), overflow (brown), held then VM (pink), refused (grey)</h3>",
            _bars(f"served-{report.pool}", [_served(d.requests) for d in series.days], SERVED_COLOURS),
            "</section>",
        ]
    )


def _svg(chart_id: str, inner: Sequence[str]) -> str:
    frame = f'<rect x="{PAD}" y="0" width="{WIDTH - PAD}" height="{HEIGHT - PAD}" fill="none" stroke="#999"/>'
    return (
        f'<svg id="{html.escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}">{frame}{"".join(inner)}</svg>'
    )


def _x(t: float, span: float) -> float:
    return PAD + (WIDTH - PAD) * (t / span if span > 0 else 0.0)


def _y(value: float, top: float) -> float:
    plot = HEIGHT - PAD
    return plot - plot * (value / top if top > 0 else 0.0)


def _ready_chart(pool: str, series: Series) -> str:
    top = max([n for _, n in series.ready_steps] + [1]) + 0.5
    points: list[str] = []
    for i, (t, n) in enumerate(series.ready_steps):
        end = series.ready_steps[i + 1][0] if i + 1 < len(series.ready_steps) else series.seconds
        points += [f"{_x(t, series.seconds):.1f},{_y(n, top):.1f}", f"{_x(end, series.seconds):.1f},{_y(n, top):.1f}"]
    inner = [
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{READY_COLOUR}" stroke-width="4"/>'
        if points
        else "",
        *(
            f'<line class="preemption" x1="{_x(t, series.seconds):.1f}" y1="0" x2="{_x(t, series.seconds):.1f}" '
            f'y2="{HEIGHT - PAD}" stroke="{PREEMPT_COLOUR}" stroke-width="3"/>'
            for t in series.preemptions
        ),
        f'<text x="4" y="{_y(top - 0.5, top) + 4:.1f}" font-size="12">{top - 0.5:.0f}</text>',
        f'<text x="4" y="{HEIGHT - PAD}" font-size="12">0</text>',
    ]
    return _svg(f"ready-{pool}", inner)


def _bars(chart_id: str, values: Sequence[tuple[float, ...]], colours: Sequence[str]) -> str:
    top = max([v for group in values for v in group] + [0.0]) * 1.1 or 1.0
    slot = (WIDTH - PAD) / max(len(values), 1)
    width = slot * 0.8 / len(colours)
    inner = []
    for i, group in enumerate(values):
        for j, (value, colour) in enumerate(zip(group, colours, strict=True)):
            x = PAD + i * slot + slot * 0.1 + j * width
            y = _y(value, top)
            inner.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{HEIGHT - PAD - y:.1f}" '
                f'fill="{colour}"><title>{value:,.2f}</title></rect>'
            )
    inner.append(f'<text x="4" y="14" font-size="12">{top:,.2f}</text>')
    return _svg(chart_id, inner)


def _served(requests: dict[str, int]) -> tuple[float, ...]:
    return tuple(float(sum(requests.get(k, 0) for k in kinds)) for kinds in _SERVED_ORDER)


def _day_labels(series: Series, since: datetime) -> str:
    days = ", ".join(f"{since + timedelta(seconds=d.start):%Y-%m-%d %H:%M}" for d in series.days)
    return f"<p>days from: {html.escape(days)}</p>"
