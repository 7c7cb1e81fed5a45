"""One call from a scenario to its report: build the capacity, the demand and the timing, then run.

Every random draw (synthetic capacity, Poisson arrivals, which VM a capacity drop takes) comes from one
``random.Random(seed)`` in a fixed order, so a scenario and a seed always give the same report.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta

from spotgate.errors import ConfigError
from spotgate.fleet import FleetConfig, PoolSpec
from spotgate.simulation import arrivals
from spotgate.simulation.arrivals import Arrival
from spotgate.simulation.capacity import CapacityModel, SyntheticParameters, load_traces, synthetic
from spotgate.simulation.cloud import VmTiming
from spotgate.simulation.engine import RunTiming, Simulation
from spotgate.simulation.report import Report, build_report
from spotgate.simulation.scenario import Scenario, SyntheticCapacity, scenario_pool
from spotgate.simulation.timeline import Timeline


def simulate(scenario: Scenario, fleet: FleetConfig | None = None) -> Report:
    """Replay ``scenario`` (with ``fleet`` instead of its fleet file, if given). Raises ConfigError."""
    fleet, pool = scenario_pool(scenario, fleet)
    rng = random.Random(scenario.seed)
    capacity = build_capacity(scenario, pool, rng)
    length = scenario.length.total_seconds() if scenario.length is not None else capacity.length
    length = min(length, capacity.length)
    timeline = Timeline(scenario.start)
    run = Simulation(
        fleet, pool, capacity, build_arrivals(scenario, length, rng),
        timing=run_timing(scenario, fleet), timeline=timeline, rng=rng, stockout_hints=scenario.stockout_hints,
        capacity_history=scenario.capacity_history,
    )  # fmt: skip
    ledger = run.run(length)
    return build_report(
        ledger, run.gateway.served, pool=pool.name, source=capacity.source, min_ready=pool.min_ready,
        cut=run.gateway.cut, prices=fleet.prices,
    )  # fmt: skip


def build_capacity(scenario: Scenario, pool: PoolSpec, rng: random.Random) -> CapacityModel:
    """The capacity model; every zone with a SPOT VM of the pool must have one. Raises ConfigError."""
    spec = scenario.capacity
    spot_zones = sorted({vm.zone for vm in pool.spot_vms})
    if isinstance(spec, SyntheticCapacity):
        params = SyntheticParameters(
            spec.reclaims_per_day, spec.stockouts_per_day, spec.stockout_mean.total_seconds(), spec.per_zone
        )
        return synthetic(spot_zones, params, spec.length.total_seconds(), rng)
    model = load_traces(spec.folder, spec.zones)
    missing = [zone for zone in spot_zones if zone not in model.zones]
    if missing:
        raise ConfigError(
            f"scenario capacity.zones: no trace zone is mapped to {', '.join(missing)} (zones of pool {pool.name})"
        )
    return model


def build_arrivals(scenario: Scenario, length: float, rng: random.Random) -> Iterator[Arrival]:
    d = scenario.demand
    duration = d.duration.total_seconds()
    if d.kind == "constant":
        return arrivals.constant(max(d.interval.total_seconds(), 1e-3), duration, length)
    if d.kind == "csv" and d.file is not None:
        return arrivals.from_csv(d.file, scenario.start, length)
    return arrivals.poisson(d.per_hour, d.daily_profile, duration, length, start_hour=scenario.start.hour, rng=rng)


def run_timing(scenario: Scenario, fleet: FleetConfig) -> RunTiming:
    """The scenario's timing, with the fleet's ``sandbox`` values where the scenario says nothing."""
    t, box = scenario.timing, fleet.sandbox
    vm = VmTiming(
        boot=_seconds(t.boot, box.boot_delay),
        load=_seconds(t.load, box.load_delay),
        stop=_seconds(t.stop, box.stop_delay),
        preempt_notice=_seconds(t.preempt_notice, box.preempt_notice),
    )
    return RunTiming(
        vm=vm,
        tick=max(t.tick.total_seconds(), 1.0),
        event_delay=t.event_delay.total_seconds(),
        wake_debounce=t.wake_debounce.total_seconds(),
        overflow_cold_start=_seconds(t.overflow_cold_start, box.overflow_cold_start),
        overflow_idle_keep=t.overflow_idle_keep.total_seconds(),
    )


def _seconds(value: timedelta | None, default: timedelta) -> float:
    return (value if value is not None else default).total_seconds()
