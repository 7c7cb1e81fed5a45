"""``spotgate report --html``: the page renders in a real headless Chromium with every chart drawn.

The page is built from a history with a preemption, days of cost and requests (the same pure replay the
command uses); the screenshot must hold each chart's colour, in quantity: steps of ready VMs (blue),
preemption marks (red), cost and on-demand bars (green, orange) and requests per day by where served.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spotgate.domain import HistoryKind, HistoryRecord, ServedCount
from spotgate.fleet import Prices
from spotgate.history import page
from spotgate.history.page import render_page
from spotgate.history.replay import replay_history
from tests.headless import colour_counts, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
T0 = datetime(2026, 11, 20, tzinfo=UTC)


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _history() -> list[HistoryRecord]:
    def at(hours: float) -> datetime:
        return T0 + timedelta(hours=hours)

    return [
        HistoryRecord("chat", at(0), HistoryKind.VM, "chat-a-1", "RUNNING", "us-central1-a", "SPOT"),
        HistoryRecord("chat", at(0), HistoryKind.ROUTE, "chat-a-1", "ready", backend_kind="vm"),
        HistoryRecord("chat", at(0), HistoryKind.BUSY, "gateway", count=1),
        HistoryRecord("chat", at(20), HistoryKind.BUSY, "gateway", count=0),
        HistoryRecord("chat", at(30), HistoryKind.PREEMPTED, "chat-a-1", zone="us-central1-a"),
        HistoryRecord("chat", at(30), HistoryKind.ROUTE, "chat-a-1", "draining", backend_kind="vm"),
        HistoryRecord("chat", at(30), HistoryKind.VM, "chat-a-1", "TERMINATED", "us-central1-a", "SPOT"),
        HistoryRecord("chat", at(31), HistoryKind.VM, "chat-b-1", "RUNNING", "us-central1-b", "STANDARD"),
        HistoryRecord("chat", at(31), HistoryKind.ROUTE, "chat-b-1", "ready", backend_kind="vm"),
    ]


def test_the_report_page_renders_every_chart_in_headless_chromium(tmp_path: Path) -> None:
    since, until = T0, T0 + timedelta(days=3)
    served = [
        ServedCount("chat", T0 + timedelta(hours=h), kind, n)
        for h, kind, n in ((1, "vm", 400), (2, "overflow", 90), (30, "held_then_vm", 60), (31, "refused_503", 30))
    ]
    result = replay_history(_history(), served, pool="chat", since=since, until=until, min_ready=1, prices=Prices())
    html_file = tmp_path / "report.html"
    html_file.write_text(render_page([result], since, until), encoding="utf-8")
    png = tmp_path / "report.png"

    screenshot(html_file, png)

    counts = colour_counts(png)
    charts = {
        "ready steps": page.READY_COLOUR,
        "preemption marks": page.PREEMPT_COLOUR,
        "cost bars": page.COST_COLOUR,
        "on-demand bars": page.BASELINE_COLOUR,
        **{
            f"{kind} bars": colour
            for kind, colour in zip(("vm", "overflow", "held", "refused"), page.SERVED_COLOURS, strict=True)
        },
    }
    drawn = {name: counts[_rgb(colour)] for name, colour in charts.items()}
    assert all(n >= 300 for n in drawn.values()), drawn  # a line of 3+ px by 100+ px at least, bars far more
