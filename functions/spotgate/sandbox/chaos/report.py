"""The report of a chaos run: request outcomes, recovery times, GPU-seconds and cost, and the verdict.

Pure arithmetic over ``Observations`` (see ``chaos.record``), so every number in the report can be checked by
a table test. GPU-seconds and cost are in *simulated* time (wall seconds times the fleet's speedup), so a
one-minute run at speedup 30 reports what half an hour of the same pattern would cost. The baseline is what
an operator without spotgate would pay for the same demand: each pool's peak number of ready VMs held for
the whole run on on-demand (STANDARD) VMs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from spotgate.sandbox.chaos.record import Injection, Observations, Outcome, RouteSpan
from spotgate.sandbox.chaos.spans import clip, total
from spotgate.sandbox.chaos.verdict import RECLAIMS, Criterion, judge

HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class RequestCounts:
    ok: int = 0
    failed_before_first_byte: int = 0
    cut_mid_stream: int = 0
    streaming: int = 0
    continued: int = 0  # of ``ok``: streams whose backend died mid-answer, completed on another one

    @property
    def total(self) -> int:
        return self.ok + self.failed_before_first_byte + self.cut_mid_stream


@dataclass(frozen=True, slots=True)
class Reclaim:
    """A preemption or maintenance event and how the system followed it (seconds; None: not seen in the run)."""

    kind: str
    pool: str
    instance: str
    at: float  # seconds into the chaos window
    to_draining: float | None
    to_ready: float | None


@dataclass(frozen=True, slots=True)
class Boot:
    """One VM boot as it really took: from PROVISIONING to RUNNING, and on to its route being ready."""

    pool: str
    instance: str
    to_running: float
    to_ready: float | None
    expected: float  # the fleet's boot + load, over the speedup


@dataclass(frozen=True, slots=True)
class PoolCost:
    """Simulated GPU-seconds by provisioning model and what they cost, against the always-on baseline."""

    pool: str
    spot_seconds: float
    standard_seconds: float
    overflow_warm_seconds: float
    cost: float
    peak_ready: int
    baseline_cost: float


@dataclass(frozen=True, slots=True)
class ChaosReport:
    seconds: float
    simulated_seconds: float
    requests: dict[str, RequestCounts]
    reclaims: tuple[Reclaim, ...]
    boots: tuple[Boot, ...]
    costs: tuple[PoolCost, ...]
    injected: dict[str, int]
    push: dict[str, int]
    criteria: tuple[Criterion, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria)

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def latency(self, kind: str, field: str) -> tuple[float | None, float | None]:
        """(p50, max) of ``to_draining`` or ``to_ready`` over the reclaims of ``kind``."""
        values = [v for r in self.reclaims if r.kind == kind and (v := getattr(r, field)) is not None]
        return percentile(values, 50), (max(values) if values else None)

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (what ``chaos-report.json`` holds)."""
        latencies = {
            kind: {
                f: dict(zip(("p50", "max"), self.latency(kind, f), strict=True)) for f in ("to_draining", "to_ready")
            }
            for kind in RECLAIMS
        }
        return {
            "verdict": self.verdict,
            "seconds": round(self.seconds, 3),
            "simulated_seconds": round(self.simulated_seconds, 3),
            "requests": {pool: {**asdict(c), "total": c.total} for pool, c in self.requests.items()},
            "reclaim_latency_seconds": latencies,
            "reclaims": [asdict(r) for r in self.reclaims],
            "boots": [asdict(b) for b in self.boots],
            "costs": [asdict(c) for c in self.costs],
            "cost_total": round(sum(c.cost for c in self.costs), 6),
            "baseline_total": round(sum(c.baseline_cost for c in self.costs), 6),
            "injected": self.injected,
            "push": self.push,
            "criteria": [asdict(c) for c in self.criteria],
        }


def summarize(obs: Observations) -> ChaosReport:
    """The full report of one run."""
    injected: dict[str, int] = {}
    for injection in obs.injections:
        injected[injection.kind] = injected.get(injection.kind, 0) + 1
    return ChaosReport(
        seconds=obs.window.length,
        simulated_seconds=obs.window.length * obs.speedup,
        requests=request_counts(obs),
        reclaims=tuple(reclaim(obs, i) for i in obs.injections if i.kind in RECLAIMS and i.pool is not None),
        boots=boots(obs),
        costs=tuple(pool_cost(obs, pool.name) for pool in obs.pools),
        injected=injected,
        push=dict(obs.push),
        criteria=judge(obs),
    )


def request_counts(obs: Observations) -> dict[str, RequestCounts]:
    counts = {pool.name: RequestCounts() for pool in obs.pools}
    for r in obs.requests:
        c = counts.get(r.pool, RequestCounts())
        counts[r.pool] = RequestCounts(
            ok=c.ok + (r.outcome is Outcome.OK),
            failed_before_first_byte=c.failed_before_first_byte + (r.outcome is Outcome.FAILED_BEFORE_FIRST_BYTE),
            cut_mid_stream=c.cut_mid_stream + (r.outcome is Outcome.CUT),
            streaming=c.streaming + r.stream,
            continued=c.continued + (r.outcome is Outcome.OK and r.continued),
        )
    return counts


def reclaim(obs: Observations, injection: Injection) -> Reclaim:
    """How long until the reclaimed VM's route stopped being ready, and until the pool had a ready VM again."""
    pool = injection.pool or ""
    own = [r for r in obs.routes if r.backend == injection.target and r.kind == "vm"]
    # Another VM already ready counts at once; the reclaimed VM itself counts only once restarted.
    others = [
        r
        for r in obs.routes
        if r.pool == pool and r.kind == "vm" and (r.backend != injection.target or r.span.start > injection.at)
    ]
    return Reclaim(
        kind=injection.kind,
        pool=pool,
        instance=injection.target,
        at=round(injection.at - obs.window.start, 3),
        to_draining=_first_after(injection.at, [r for r in own if r.state != "ready"], own),
        to_ready=_first_after(injection.at, [r for r in others if r.state == "ready"], None),
    )


def _first_after(at: float, wanted: Sequence[RouteSpan], seen: Sequence[RouteSpan] | None) -> float | None:
    """Seconds from ``at`` until one of ``wanted`` holds (0 if one already does at ``at``).

    With ``seen``, a route the run never saw at ``at`` (it was gone already) counts as reached at once.
    """
    if any(r.span.start <= at < r.span.end for r in wanted):
        return 0.0
    if seen is not None and not any(r.span.start <= at < r.span.end for r in seen):
        return 0.0
    later = [r.span.start for r in wanted if r.span.start > at]
    return round(min(later) - at, 3) if later else None


def boots(obs: Observations) -> tuple[Boot, ...]:
    """Every boot the run saw begin: how long to RUNNING and to a ready route, against the fleet's promise."""
    expected = {pool.name: pool.boot for pool in obs.pools}
    found = []
    for run in obs.vm_runs:
        if run.booting_since is None:
            continue
        ready = [
            r.span.start
            for r in obs.routes
            if r.backend == run.instance and r.state == "ready" and r.span.end > run.running.start
        ]
        to_ready = round(min(ready) - run.booting_since, 3) if ready else None
        to_running = round(run.running.start - run.booting_since, 3)
        found.append(Boot(run.pool, run.instance, to_running, to_ready, expected.get(run.pool, 0.0)))
    return tuple(found)


def pool_cost(obs: Observations, pool: str) -> PoolCost:
    """GPU-seconds in simulated time within the window, their cost, and the always-on on-demand baseline."""
    runs = [run for run in obs.vm_runs if run.pool == pool]
    spot = sum(total(clip((r.billed,), obs.window)) for r in runs if r.provisioning_model == "SPOT")
    standard = sum(total(clip((r.billed,), obs.window)) for r in runs if r.provisioning_model != "SPOT")
    warm = total(clip([span for name, span in obs.overflow_warm if name == pool], obs.window))
    scale = obs.speedup / HOUR
    cost = scale * (spot * obs.rates.spot + standard * obs.rates.standard + warm * obs.rates.overflow)
    peak = peak_ready(obs, pool)
    baseline = scale * peak * obs.window.length * obs.rates.standard
    s = obs.speedup
    return PoolCost(pool, spot * s, standard * s, warm * s, round(cost, 6), peak, round(baseline, 6))


def peak_ready(obs: Observations, pool: str) -> int:
    """The most VM routes of ``pool`` ready at once within the window."""
    spans = [
        clip((r.span,), obs.window) for r in obs.routes if r.pool == pool and r.kind == "vm" and r.state == "ready"
    ]
    flat = [s for clipped in spans for s in clipped]
    edges = sorted({s.start for s in flat})
    return max((sum(1 for s in flat if s.start <= t < s.end) for t in edges), default=0)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile by linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
