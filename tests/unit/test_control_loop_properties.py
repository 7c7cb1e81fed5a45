"""Acceptance properties of the control loop (issue 9): random sequences of events, load and API failures,
including rate limits and quota, through the production ``plan`` and state updates, never

1. leave a pool short of its desired VMs with no start attempt for longer than one tick plus backoff: at
   every plan that starts nothing while the pool is short, each stopped VM it could start is held back by
   a remembered, bounded backoff (its own failed start, or its zone's stockout or quota cooldown, or a
   rate limit on the pool);
2. stop a VM with requests in flight before ``drain_timeout``;
3. start and stop the same VM within ``min_uptime``, nor judge a VM that boots in time stuck (defect 1's
   livelock: a restarted VM keeps its old ``lastStartTimestamp`` while PROVISIONING).

Deterministic (one seed per case) and bounded: 40 runs of 200 steps through ``fleet_world``.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from spotgate.core.backoff import backing_off
from spotgate.core.demand import desired_ready
from spotgate.core.lifecycle import Phase, classify
from spotgate.core.placement import stocked_out
from spotgate.domain import (
    ControlKind,
    ControlMessage,
    FailureKind,
    Observed,
    Plan,
    PoolState,
    StartInstance,
)
from spotgate.errors import (
    CapacityError,
    NotReadyError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    UnavailableError,
)
from spotgate.fleet import PoolSpec
from tests.unit.builders import POOL, a_pool_spec
from tests.unit.fleet_world import World

STEPS = 200
LONGEST_BACKOFF = timedelta(minutes=30)  # the cap of any class (core/backoff.py); stockouts use 5m here


def _errors(rng: random.Random, action: StartInstance) -> Exception:
    return rng.choice(
        [
            CapacityError("ZONE_RESOURCE_POOL_EXHAUSTED", zone=action.zone, code="ZONE_RESOURCE_POOL_EXHAUSTED"),
            QuotaError("PREEMPTIBLE_NVIDIA_L4_GPUS exceeded"),
            RateLimitError("rateLimitExceeded"),
            NotReadyError("resourceNotReady"),
            PermissionDeniedError("compute.instances.start denied"),
            UnavailableError("503 from compute"),
        ]
    )


def _world(seed: int) -> World:
    rng = random.Random(seed)
    spec = a_pool_spec(min_ready=rng.choice([0, 1]), max_ready=3)
    failing = rng.choice([0.0, 0.2, 0.5])
    return World(spec, rng, fail=lambda action: _errors(rng, action) if rng.random() < failing else None)


def _next_load(rng: random.Random, load: int) -> int:
    roll = rng.random()
    if roll < 0.05:
        return 0  # traffic stops
    if roll < 0.08:
        return rng.randint(10, 30)  # a burst
    return max(0, load + rng.randint(-3, 3))


def _disturb(world: World, rng: random.Random) -> None:
    """Events between two plans: gateway wakes, operator overrides, preemptions."""
    if rng.random() < 0.1:
        world.event(ControlMessage(ControlKind.WAKE, world.now, POOL))
    if rng.random() < 0.01:
        until = world.now + timedelta(minutes=rng.randint(2, 20))
        kind = rng.choice([ControlKind.SLEEP, ControlKind.WAKE])
        world.event(ControlMessage(kind, world.now, POOL, until=until))
    if rng.random() < 0.03:
        world.preempt(rng.choice(list(world.vms)))


def _run(seed: int) -> World:
    world, rng, load = _world(seed), random.Random(seed + 10_000), 0
    for _ in range(STEPS):
        _disturb(world, rng)
        load = _next_load(rng, load)
        world.step(timedelta(seconds=rng.choice([5, 20, 60])), load)
    return world


# ---- property 1 ---------------------------------------------------------------------------------------------


def _held_back(spec: PoolSpec, state: PoolState, name: str, now: datetime) -> bool:
    """True if a remembered, bounded backoff keeps the stopped VM ``name`` from being started now."""
    waiting = backing_off(state, now)
    if any(f.kind is FailureKind.RATE_LIMIT for f in waiting.values()) or name in waiting:
        return True
    zone = spec.vm(name).zone  # type: ignore[union-attr]
    return zone in stocked_out(state, now)


def _short_without_cause(spec: PoolSpec, now: datetime, seen: Observed, before: PoolState, result: Plan) -> list[str]:
    if any(isinstance(a, StartInstance) for a in result.actions):
        return []
    vms = [classify(i, before, spec, now) for i in seen.instances]
    members = [vm for vm in vms if vm.is_spot]
    live = sum(1 for vm in members if vm.counts_as_live)
    if desired_ready(spec, seen.activity, before, now, live=live).count <= live:
        return []
    return [
        f"{now:%H:%M:%S} {vm.name} could start but did not"
        for vm in members
        if vm.phase is Phase.STOPPED and not _held_back(spec, before, vm.name, now)
    ]


@pytest.mark.parametrize("seed", range(40))
def test_a_short_pool_always_starts_a_vm_unless_a_bounded_backoff_holds_it(seed: int) -> None:
    world = _run(seed)
    violations = [
        v
        for now, seen, before, result in world.plans
        for v in _short_without_cause(world.spec, now, seen, before, result)
    ]
    assert violations == []
    for now, _, before, _ in world.plans:
        assert all(f.retry_at - f.at <= LONGEST_BACKOFF for f in before.start_failures.values())
        assert all(until <= now + world.spec.stockout_cooldown for until in before.stockouts.values())
    assert world.starts, "every run asks for at least one VM"


# ---- properties 2 and 3 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_no_stream_is_cut_before_drain_timeout_and_no_vm_stops_within_min_uptime(seed: int) -> None:
    world = _run(seed)
    spec = world.spec
    for stop in world.stops:
        if stop.inflight:
            assert stop.draining_since is not None, stop
            assert stop.at - stop.draining_since >= spec.drain_timeout, stop
        # Every boot in the world takes BOOT + LOAD (90 s), so no VM is ever stuck: each stop is a retirement.
        assert "not ready within boot_timeout" not in stop.reason, stop
        started = max((at for name, at in world.starts if name == stop.instance and at <= stop.at), default=None)
        if started is not None:
            assert stop.at - started >= spec.min_uptime, stop
    assert world.stops, "every run scales down at least once"
