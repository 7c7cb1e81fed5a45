"""The three pass criteria of a chaos run, each a pure function of the run's ``Observations``.

1. No request failed before its first byte: under chaos a caller may see a stream cut (its VM was reclaimed
   mid-answer), never a refusal.
2. No VM ran idle longer than its pool's ``idle_timeout`` plus one tick, unless ``min_ready`` needs it: idle
   GPUs are the money spotgate exists to save. "One tick" includes that tick's handling (Pub/Sub push, the
   function's reconcile, the stop call): ``TICK_HANDLING`` seconds of wall time. The sandbox runs 30x faster
   than real time but the control plane's own processing does not, so 0.3 s of handling is 9 simulated
   seconds against a 2 s tick here, where in production it is well under 1% of a 60 s tick.
3. No pool lacked a ready backend (a ready VM, or its overflow service) for longer than a boot plus one tick
   while it had demand (``min_ready``, or a request within ``idle_timeout``) and capacity (some zone of the
   pool not stocked out). A reclaim of one of the pool's VMs restarts that clock: a VM preempted while it
   booted costs a whole new boot, which no control plane can avoid.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from spotgate.sandbox.chaos.record import Observations, Outcome, PoolRules, RequestRecord, VmRun
from spotgate.sandbox.chaos.spans import Span, Spans, clip, count_at, intersect, subtract, union

TICK_HANDLING = 0.5  # seconds (wall) a tick takes to reach the functions and act; see criterion 2

RECLAIMS = ("preempt", "maintenance")  # injections that take a VM away


@dataclass(frozen=True, slots=True)
class Criterion:
    """One criterion's result: whether it held, a one-line measurement, and each violation found."""

    name: str
    passed: bool
    summary: str
    violations: tuple[str, ...] = ()


def judge(obs: Observations) -> tuple[Criterion, ...]:
    """All three criteria, in the order of the module docstring."""
    return (no_early_failures(obs), no_idle_vms(obs), no_backend_gaps(obs))


def no_early_failures(obs: Observations) -> Criterion:
    failed = [r for r in obs.requests if r.outcome is Outcome.FAILED_BEFORE_FIRST_BYTE]
    violations = tuple(
        f"{r.pool} {'stream' if r.stream else 'request'} at +{r.start - obs.window.start:.1f}s: {r.error}"
        for r in failed
    )
    summary = f"{len(failed)} of {len(obs.requests)} requests failed before their first byte"
    return Criterion("no request failed before its first byte", not failed, summary, violations)


def no_idle_vms(obs: Observations) -> Criterion:
    violations: list[str] = []
    worst = 0.0
    for pool in obs.pools:
        limit = pool.idle_timeout + obs.tick + TICK_HANDLING
        for instance, idle in _unjustified_idle(obs, pool, limit):
            violations.append(f"{pool.name}/{instance} idle {idle.length:.1f}s (limit {limit:.1f}s)")
            worst = max(worst, idle.length)
    summary = f"longest unneeded idle stretch {worst:.1f}s" if violations else "no VM idle beyond its limit"
    return Criterion("no VM ran idle beyond idle_timeout + tick", not violations, summary, tuple(violations))


def no_backend_gaps(obs: Observations) -> Criterion:
    violations: list[str] = []
    worst = 0.0
    for pool in obs.pools:
        limit = pool.boot + obs.tick
        for gap in backend_gaps(obs, pool):
            worst = max(worst, gap.length)
            if gap.length > limit:
                at = gap.start - obs.window.start
                violations.append(
                    f"{pool.name} had no ready backend for {gap.length:.1f}s at +{at:.1f}s (limit {limit:.1f}s)"
                )
    summary = f"longest gap with demand and capacity {worst:.1f}s"
    return Criterion("no pool lacked a ready backend beyond boot + tick", not violations, summary, tuple(violations))


def backend_gaps(obs: Observations, pool: PoolRules) -> Spans:
    """When ``pool`` had demand and capacity but no ready backend."""
    wanted = intersect(demand(obs, pool), capacity(obs, pool))
    restarts = sorted(i.at for i in obs.injections if i.pool == pool.name and i.kind in RECLAIMS)
    return split(subtract(wanted, ready_backends(obs, pool)), restarts)


def split(spans: Spans, at: list[float]) -> Spans:
    """``spans`` cut at every instant of ``at`` that falls inside one."""
    out: list[Span] = []
    for span in spans:
        cuts = [t for t in at if span.start < t < span.end]
        edges = [span.start, *cuts, span.end]
        out += [Span(a, b) for a, b in itertools.pairwise(edges)]
    return tuple(out)


def demand(obs: Observations, pool: PoolRules) -> Spans:
    """When the pool should be able to serve: always with ``min_ready``, else within idle_timeout of a request."""
    if pool.min_ready >= 1:
        return (obs.window,)
    arrivals = [Span(r.start, r.start + pool.idle_timeout) for r in obs.requests if r.pool == pool.name]
    return clip(arrivals, obs.window)


def capacity(obs: Observations, pool: PoolRules) -> Spans:
    """When some zone of the pool was not stocked out."""
    everywhere: Spans = (obs.window,)
    for zone in pool.zones:
        out = [i.span for i in obs.injections if i.kind == "stockout" and i.target == zone]
        everywhere = intersect(everywhere, out)
    return subtract((obs.window,), everywhere)


def ready_backends(obs: Observations, pool: PoolRules) -> Spans:
    """When the pool had a ready VM route, or (if it has one) an overflow route that was not down."""
    spans = [
        r.span
        for r in obs.routes
        if r.pool == pool.name
        and (
            (r.kind == "vm" and r.state == "ready")
            or (pool.has_overflow and r.kind == "overflow" and r.state != "down")
        )
    ]
    return union(spans)


def _unjustified_idle(obs: Observations, pool: PoolRules, limit: float) -> list[tuple[str, Span]]:
    """Idle stretches of the pool's VMs that outlived ``limit`` while ``min_ready`` did not need them."""
    runs = [run for run in obs.vm_runs if run.pool == pool.name]
    idle: list[tuple[str, Span]] = []
    for run in runs:
        busy = [Span(r.start, r.end) for r in obs.requests if _may_have_served(r, run)]
        idle += [(run.instance, s) for s in subtract(clip((run.running,), obs.window), busy) if s.length > limit]
    overdue = [Span(s.start + limit, s.end) for _, s in idle]
    running = [run.running for run in runs]
    unneeded = _excess(running, overdue, pool.min_ready)
    return [(name, s) for (name, s), late in zip(idle, overdue, strict=True) if intersect((late,), unneeded)]


def _may_have_served(request: RequestRecord, run: VmRun) -> bool:
    """A request named its backend, or (held streams get their headers before a backend is picked) may have
    been any of its pool's VMs: counted as traffic to each, so the idle check never blames a busy VM."""
    if request.backend is not None:
        return request.backend == run.instance
    return request.pool == run.pool and request.outcome is not Outcome.FAILED_BEFORE_FIRST_BYTE


def _excess(running: list[Span], overdue: list[Span], min_ready: int) -> Spans:
    """When more VMs were overdue-idle than ``min_ready`` could justify (the busy ones count first)."""
    edges = sorted({t for s in (*running, *overdue) for t in (s.start, s.end)})
    excess = []
    for start, end in itertools.pairwise(edges):
        mid = (start + end) / 2
        late = count_at(overdue, mid)
        needed = max(0, min_ready - (count_at(running, mid) - late))
        if late > needed:
            excess.append(Span(start, end))
    return union(excess)
