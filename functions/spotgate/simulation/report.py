"""The figures of a run, in the terms an operator decides by: availability, where requests were served,
GPU-hours and cost against always-on on-demand VMs, idle share, preemptions and how long recovery took.

The baseline is what the same demand costs without spotgate: as many on-demand (STANDARD) VMs as the pool
ever wanted at once (at least ``min_ready``), running for the whole period.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from spotgate.fleet import Prices
from spotgate.simulation.gateway import Served
from spotgate.simulation.ledger import Ledger

HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class GpuHours:
    spot: float
    standard: float
    overflow: float

    def cost(self, prices: Prices) -> float:
        return (
            self.spot * prices.spot_per_hour
            + self.standard * prices.standard_per_hour
            + self.overflow * prices.overflow_per_hour
        )


@dataclass(frozen=True, slots=True)
class Report:
    pool: str
    source: str
    hours: float
    min_ready: int
    availability: float  # share of time with >= min_ready VMs ready
    meets_desired: float  # share of time with as many VMs ready as the pool wanted
    served_without_wait: float | None  # share of requests answered by a ready VM or a warm overflow at once
    requests: dict[str, int]
    cut: int  # requests in flight on a VM when it went down
    gpu_hours: GpuHours
    idle_share: float  # share of billed GPU-hours with no request in flight
    cost: float
    baseline_cost: float
    cost_share: float | None  # cost / baseline
    prices: Prices
    preemptions: dict[str, int]
    stockouts: dict[str, int]
    recovery_p50: float | None  # seconds from a ready VM's preemption to as many ready again
    recovery_p99: float | None
    recoveries: int

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["prices"] = self.prices.model_dump()
        return data


def build_report(
    ledger: Ledger, served: Mapping[Served, int], *, pool: str, source: str, min_ready: int, cut: int, prices: Prices
) -> Report:
    """The report of a finished run."""
    hours = ledger.seconds / HOUR
    gpu = GpuHours(ledger.spot / HOUR, ledger.standard / HOUR, ledger.overflow / HOUR)
    billed = gpu.spot + gpu.standard + gpu.overflow
    baseline = max(ledger.peak_desired, min_ready) * hours * prices.standard_per_hour
    cost = gpu.cost(prices)
    total = sum(served.values())
    return Report(
        pool=pool,
        source=source,
        hours=hours,
        min_ready=min_ready,
        availability=_share(ledger.available, ledger.seconds),
        meets_desired=_share(ledger.meets_desired, ledger.seconds),
        served_without_wait=(served.get(Served.VM, 0) + served.get(Served.OVERFLOW, 0)) / total if total else None,
        requests={kind.value: served.get(kind, 0) for kind in Served},
        cut=cut,
        gpu_hours=gpu,
        idle_share=ledger.idle / HOUR / billed if billed else 0.0,
        cost=cost,
        baseline_cost=baseline,
        cost_share=cost / baseline if baseline else None,
        prices=prices,
        preemptions=dict(sorted(ledger.preemptions.items())),
        stockouts=dict(sorted(ledger.stockouts.items())),
        recovery_p50=percentile(ledger.recoveries, 50),
        recovery_p99=percentile(ledger.recoveries, 99),
        recoveries=len(ledger.recoveries),
    )


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def render_text(report: Report) -> str:
    """The report as aligned lines for a terminal or a README code block."""
    g, p = report.gpu_hours, report.prices
    lines = [
        f"pool {report.pool}: {report.hours:,.1f} h of {report.source}",
        f"availability        {_pct(report.availability)} of the time >= {report.min_ready} VM(s) ready "
        f"({_pct(report.meets_desired)} with as many as wanted)",
        f"served at once      {_pct(report.served_without_wait)} of {sum(report.requests.values()):,} requests",
        "requests            " + ", ".join(f"{k} {v:,}" for k, v in report.requests.items()) + f"; cut {report.cut:,}",
        f"GPU-hours           SPOT {g.spot:,.1f}, STANDARD {g.standard:,.1f}, overflow {g.overflow:,.1f} "
        f"(idle {_pct(report.idle_share)})",
        f"cost                ${report.cost:,.2f} = {_pct(report.cost_share)} of always-on on-demand "
        f"${report.baseline_cost:,.2f} (per GPU-hour: SPOT ${p.spot_per_hour}, STANDARD ${p.standard_per_hour}, "
        f"overflow ${p.overflow_per_hour})",
        f"preemptions         {_per_zone(report.preemptions)}",
        f"stockouts           {_per_zone(report.stockouts)}",
        f"preempted to ready  p50 {_seconds(report.recovery_p50)}, p99 {_seconds(report.recovery_p99)} "
        f"({report.recoveries} recoveries)",
    ]
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}s"


def _per_zone(counts: Mapping[str, int]) -> str:
    total = sum(Counter(counts).values())
    return f"{total} (" + ", ".join(f"{zone} {n}" for zone, n in counts.items()) + ")" if counts else "0"
