"""A bounded chaos run: the whole local system under traffic while SPOT reality happens to it, then a verdict.

``run_chaos`` starts a ``DevStack``, waits until every pool with ``min_ready`` has a ready VM, then for the
given wall seconds drives client traffic (``chaos.traffic``) while an injector, drawing every choice from one
seeded ``random.Random``, preempts running SPOT VMs, stocks zones out for a few seconds, terminates VMs for
host maintenance, and makes Pub/Sub fail and duplicate push deliveries. A ``Watcher`` records what happened;
``chaos.report.summarize`` judges it. The first few faults cycle through every kind (in a seeded order) so
even a short run covers each; after that kinds are drawn by weight.

Chaos is bounded so that a correct system can pass: a stockout never takes the last open zone of a pool
(the verdict judges recovery "while capacity existed", and a run where callers could only be refused would
test nothing but the refusal), and a pool is not reclaimed again within ``pool_rest`` seconds of its last
reclaim (a SPOT pool preempted on every boot has no answer but refusals after ``wake_hold``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import BackendKind, InstanceStatus, ProvisioningModel, RouteState
from spotgate.errors import SpotgateError
from spotgate.fleet import FleetConfig
from spotgate.sandbox.chaos.record import Injection, Observations, PoolRules, Rates, RequestRecord
from spotgate.sandbox.chaos.report import ChaosReport, summarize
from spotgate.sandbox.chaos.spans import Span
from spotgate.sandbox.chaos.traffic import Traffic, plan_callers
from spotgate.sandbox.chaos.watch import Watcher
from spotgate.sandbox.compute.model import ComputeModel
from spotgate.sandbox.devstack.stack import DevOptions, DevStack
from spotgate.sandbox.pubsub.push import Chaos

log = logging.getLogger(__name__)
KINDS = ("preempt", "stockout", "maintenance")
WEIGHTS = (0.5, 0.3, 0.2)


@dataclass(frozen=True, slots=True)
class ChaosOptions:
    """A run's knobs, in wall seconds. Fault gaps and stockout lengths are drawn uniformly from the ranges."""

    seconds: float
    seed: int = 1
    clients: int = 4
    tick: float = 2.0
    fault_every: tuple[float, float] = (2.5, 5.0)
    stockout_for: tuple[float, float] = (3.0, 8.0)
    pool_rest: float = 10.0
    push_chaos: Chaos = field(default_factory=lambda: Chaos(duplicate=0.1, fail_rate=0.15))
    warmup_timeout: float = 90.0
    log_level: str = "WARNING"  # of the functions and the gateway (their logs are under <state-dir>/logs)


@dataclass(frozen=True, slots=True)
class ChaosResult:
    report: ChaosReport
    observations: Observations


def run_chaos(fleet: FleetConfig, state_dir: Path, options: ChaosOptions) -> ChaosResult:
    """Run the stack under chaos for ``options.seconds`` and judge it. Every process is stopped on return."""
    rng = random.Random(options.seed)
    dev = DevOptions(tick_interval=timedelta(seconds=options.tick), log_level=options.log_level, seed=options.seed)
    with DevStack(fleet, state_dir, dev) as stack:
        watcher = Watcher(stack)
        watcher.start()
        try:
            _wait_warm(stack, options.warmup_timeout)
            window, requests, injections = _drive(stack, rng, options)
            push = asdict(stack.pubsub.stats)
        finally:
            watcher.stop()
    observations = Observations(
        window=window,
        tick=options.tick,
        speedup=fleet.sandbox.speedup,
        rates=Rates(fleet.prices.spot_per_hour, fleet.prices.standard_per_hour, fleet.prices.overflow_per_hour),
        pools=pool_rules(fleet),
        requests=requests,
        vm_runs=watcher.vm_runs(),
        routes=watcher.routes(),
        injections=injections,
        overflow_warm=watcher.overflow_warm(),
        push=push,
    )
    return ChaosResult(summarize(observations), observations)


def _drive(
    stack: DevStack, rng: random.Random, options: ChaosOptions
) -> tuple[Span, tuple[RequestRecord, ...], tuple[Injection, ...]]:
    """The chaos phase: traffic and faults until the deadline, then until the last request has ended."""
    start = time.time()
    stack.pubsub.chaos = options.push_chaos
    callers = plan_callers(stack.fleet, options.clients, rng, start, options.seconds)
    traffic = Traffic(stack.gateway_url, stack.api_key, callers, rng)
    traffic.start()
    try:
        injections = Injector(stack.cloud.compute, stack.fleet, rng, options).run(start + options.seconds)
    finally:
        traffic.stop()
        stack.pubsub.chaos = Chaos()
    return Span(start, time.time()), traffic.records(), injections


def pool_rules(fleet: FleetConfig) -> tuple[PoolRules, ...]:
    """What the verdict needs of each pool, in wall seconds."""
    spec = fleet.sandbox
    boot = (spec.boot_delay + spec.load_delay).total_seconds() / spec.speedup
    return tuple(
        PoolRules(
            name=pool.name,
            min_ready=pool.min_ready,
            idle_timeout=pool.idle_timeout.total_seconds(),
            boot=boot,
            has_overflow=pool.overflow is not None,
            zones=pool.zones,
        )
        for pool in fleet.pools
    )


def _wait_warm(stack: DevStack, timeout: float) -> None:
    """Until every pool with ``min_ready`` has a ready VM route. Raises TimeoutError."""
    store = SqliteStore(stack.db_path)
    wanted = {pool.name for pool in stack.fleet.pools if pool.min_ready >= 1}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready = {r.pool for r in store.list_routes() if r.kind is BackendKind.VM and r.state is RouteState.READY}
            if wanted <= ready:
                return
            time.sleep(0.2)
    finally:
        store.close()
    raise TimeoutError(f"pools {sorted(wanted)} had no ready VM within {timeout:.0f}s of start-up")


class Injector:
    """Injects faults into the sandbox's compute model until a deadline; every choice from ``rng``."""

    def __init__(self, compute: ComputeModel, fleet: FleetConfig, rng: random.Random, options: ChaosOptions) -> None:
        self._compute = compute
        self._fleet = fleet
        self._rng = rng
        self._options = options
        self._stop = threading.Event()
        self._pending = list(KINDS)
        rng.shuffle(self._pending)  # the first faults cover every kind, in a seeded order
        self._done: list[Injection] = []
        self._reclaimed: dict[str, float] = {}  # pool -> last reclaim (epoch seconds)

    def run(self, deadline: float) -> tuple[Injection, ...]:
        """Inject until ``deadline`` (epoch seconds); returns what was injected, oldest first."""
        low, high = self._options.fault_every
        while not self._stop.wait(max(0.0, min(self._rng.uniform(low, high), deadline - time.time()))):
            if time.time() >= deadline:
                break
            kind = self._pending[0] if self._pending else self._rng.choices(KINDS, WEIGHTS)[0]
            injection = self._inject(kind)
            if injection is not None:
                self._done.append(injection)
                if kind in self._pending:
                    self._pending.remove(kind)
        return tuple(self._done)

    def _inject(self, kind: str) -> Injection | None:
        """One fault of ``kind``, or None when nothing fits now (no running VM, no zone that may go out)."""
        try:
            if kind == "stockout":
                return self._stockout()
            return self._reclaim(kind)
        except SpotgateError as e:  # the VM changed state between the pick and the call: skip this one
            log.info("chaos fault skipped", extra={"kind": kind, "error": str(e)})
            return None

    def _reclaim(self, kind: str) -> Injection | None:
        rested = time.time() - self._options.pool_rest
        running = [
            vm
            for vm in self._compute.instances()
            if vm.status is InstanceStatus.RUNNING and self._reclaimed.get(vm.pool, 0.0) <= rested
        ]
        if kind == "preempt":
            running = [vm for vm in running if vm.provisioning_model is ProvisioningModel.SPOT]
        if not running:
            return None
        vm = self._rng.choice(running)
        at = time.time()
        if kind == "preempt":
            self._compute.preempt(vm.name)
        else:
            self._compute.maintenance(vm.name)
        self._reclaimed[vm.pool] = at
        log.info("chaos: %s %s", kind, vm.name)
        return Injection(kind, at, vm.name, vm.pool)

    def _stockout(self) -> Injection | None:
        out = set(self._compute.stockouts())
        zones = [zone for zone in self._compute.zones if zone not in out and self._leaves_a_zone(zone, out)]
        if not zones:
            return None
        zone = self._rng.choice(zones)
        seconds = self._rng.uniform(*self._options.stockout_for)
        at = time.time()
        self._compute.stock_out(zone, seconds)
        log.info("chaos: stockout %s for %.1fs", zone, seconds)
        return Injection("stockout", at, zone, None, seconds)

    def _leaves_a_zone(self, zone: str, out: set[str]) -> bool:
        """True if stocking ``zone`` out leaves every pool at least one open zone."""
        return all(set(pool.zones) - out - {zone} for pool in self._fleet.pools)
