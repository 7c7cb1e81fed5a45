"""The reconciler's brain: from a pool's spec, what was observed and what it remembers, decide what to do.

Level-triggered (DESIGN §2.3): the plan depends only on the current picture, never on which event woke the
reconciler, so a missed event is repaired by the next tick and a duplicated one plans the same actions again
(which the shell applies idempotently). Pure: no I/O, no clock, no logging; every action says why.

In a pool with SPOT VMs the STANDARD ones are a stopgap, not members: SPOT VMs are started toward ``D``, and
a STANDARD VM runs only with ``fallback.enabled``, while SPOT could not be had for ``fallback.after``; it is
stopped once enough SPOT VMs are *ready*, so the swap back never opens a gap. A pool of STANDARD VMs only
uses them as members.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from spotgate.core.backoff import backing_off
from spotgate.core.demand import Demand, desired_ready, is_fresh
from spotgate.core.instants import clock, zulu
from spotgate.core.lifecycle import Phase, Vm, boot_started, classify, current_progress, last_progress
from spotgate.core.overflow import overflow_actions
from spotgate.core.placement import Placement, choose_starts, stocked_out
from spotgate.core.pruning import pruned
from spotgate.core.retirement import Leaving, Retirement, choose_stops, going_away_stops
from spotgate.core.routing import route_changes
from spotgate.domain import (
    Action,
    Activity,
    InstanceStatus,
    Observed,
    Plan,
    PoolState,
    ProvisioningModel,
    StartInstance,
    StopInstance,
    ZoneAdvice,
)
from spotgate.fleet import PoolSpec

# While a VM boots or stops, look again this soon even if no event arrives (the agent's notice may be late).
IN_MOTION_POLL = timedelta(seconds=30)
_IN_MOTION = (Phase.PENDING, Phase.BOOTING, Phase.STOPPING, Phase.DRAINING)


@dataclass(frozen=True, slots=True)
class _Picture:
    """Everything one planning pass reads, computed once."""

    spec: PoolSpec
    state: PoolState
    activity: Activity
    vms: tuple[Vm, ...]
    demand: Demand
    now: datetime
    advice: Mapping[str, ZoneAdvice] = field(default_factory=dict)

    def count(self, *phases: Phase, spot: bool | None = None) -> int:
        return sum(1 for vm in self.vms if vm.phase in phases and (spot is None or vm.is_spot == spot))

    @property
    def ready(self) -> int:
        return self.count(Phase.READY)


def plan(spec: PoolSpec, observed: Observed, state: PoolState, now: datetime) -> Plan:
    """Actions to reach the pool's desired state now, the state to commit, and when to plan again.

    ``next_state`` keeps the input's ``generation`` (the store increments it on commit) and already records
    the starts planned here, so a plan repeated before they show up does not start the same VMs twice.
    """
    picture = _picture(spec, observed, state, now)
    starts, since = _member_starts(picture)
    picture = replace(picture, state=replace(state, spot_unavailable_since=since))
    fallback_starts, fallback_retired = _fallback(picture, spot_starting=len(starts))
    starts += fallback_starts
    retired = Retirement.of(
        _stuck_stops(picture),
        going_away_stops(_leaving(picture), picture.vms),
        fallback_retired,
        _member_stops(picture),
    )
    routes = route_changes(spec, picture.vms, observed.routes, retired.route_reasons(), now)
    overflow, after = overflow_actions(
        spec,
        picture.state,
        observed.overflow_min_instances,
        ready=picture.ready,
        desired=picture.demand.count,
        now=now,
        activity=picture.activity,
    )
    next_state = pruned(after, spec, picture.vms, now)
    attempts = {**next_state.start_attempts, **{start.instance: now for start in starts}}
    next_state = replace(next_state, start_attempts=attempts, retiring=dict(retired.since))
    actions: tuple[Action, ...] = (*retired.stops, *starts, *routes, *overflow)
    moving = bool(starts or retired.stops)
    return Plan(actions, next_state, _requeue_after(picture, next_state, retired, moving=moving))


def _picture(spec: PoolSpec, observed: Observed, state: PoolState, now: datetime) -> _Picture:
    """Classify the pool's own VMs (a VM of the same name in another zone is not ours) and compute ``D``."""
    vms = tuple(
        classify(instance, state, spec, now)
        for instance in sorted(observed.instances, key=lambda i: i.name)
        if (vm := spec.vm(instance.name)) is not None and vm.zone == instance.zone
    )
    live = sum(1 for vm in vms if vm.counts_as_live and (vm.is_spot or not spec.spot_vms))
    demand = desired_ready(spec, observed.activity, state, now, live=live)
    return _Picture(spec, state, observed.activity, vms, demand, now, observed.advice)


def _members(p: _Picture) -> list[Vm]:
    """The VMs that make up ``D``: the SPOT ones; every VM only in a pool that has no SPOT VM at all."""
    return [vm for vm in p.vms if vm.is_spot or not p.spec.spot_vms]


def _member_target(p: _Picture) -> int:
    """``D``, plus the pool's ``spare`` SPOT VMs while requests are in flight (a busy pool)."""
    busy = p.demand.count > 0 and p.activity.inflight > 0 and is_fresh(p.activity, p.now)
    return p.demand.count + (p.spec.spare if busy else 0)


def _member_starts(p: _Picture) -> tuple[list[StartInstance], datetime | None]:
    """Starts toward ``D`` (and spares) via placement, and the updated "no SPOT VM could be started since" timer."""
    members = _members(p)
    live = [vm for vm in members if vm.counts_as_live]
    need = _member_target(p) - len(live)
    candidates = [vm.instance for vm in members if vm.phase is Phase.STOPPED]
    placements = choose_starts(
        candidates,
        max(need, 0),
        live=[vm.instance for vm in live],
        state=p.state,
        now=p.now,
        advice=p.advice,
        half_life=p.spec.preemption_half_life,
        stockout_weight=p.spec.stockout_weight,
    )
    for_demand = max(p.demand.count - len(live), 0)
    spare = f"spare {p.spec.spare} while {p.activity.inflight} request(s) are in flight"
    starts = [_start(p, placement, None if i < for_demand else spare) for i, placement in enumerate(placements)]
    return starts, _spot_unavailable_since(p, starts)


def _spot_unavailable_since(p: _Picture, starts: list[StartInstance]) -> datetime | None:
    """Set while SPOT VMs are short and none could be started; cleared once enough are observed live.

    Only pools with fallback keep this timer; elsewhere nothing would act on it.
    """
    wanted = p.demand.count
    if not p.spec.fallback.enabled or wanted == 0 or p.count(Phase.BOOTING, Phase.READY, spot=True) >= wanted:
        return None
    spot_need = wanted - p.count(Phase.PENDING, Phase.BOOTING, Phase.READY, spot=True)
    spot_started = sum(1 for start in starts if start.provisioning_model is ProvisioningModel.SPOT)
    if spot_started < spot_need:
        return p.state.spot_unavailable_since or p.now
    return p.state.spot_unavailable_since


def _start(p: _Picture, placement: Placement, why: str | None = None) -> StartInstance:
    vm = placement.instance
    resume = vm.status is InstanceStatus.SUSPENDED
    verb = "resume" if resume else "start"
    parts = [f"{verb} {vm.name} ({vm.provisioning_model}, {vm.zone}): {p.ready} of {p.demand.count} desired ready"]
    parts[0] += f" ({why or p.demand.why})"
    parts.append(placement.why)
    previous = p.state.start_attempts.get(vm.name)
    if previous is not None:
        parts.append(f"previous start at {clock(previous)} did not bring it up")
    parts += [f"{zone} stocked out until {clock(until)}" for zone, until in sorted(stocked_out(p.state, p.now).items())]
    parts += [
        f"{name} backs off after {f.count} failed start(s) ({f.kind}) until {clock(f.retry_at)}"
        for name, f in sorted(backing_off(p.state, p.now).items())
    ]
    return StartInstance(vm.name, vm.zone, vm.provisioning_model, "; ".join(parts), resume=resume)


def _fallback(p: _Picture, *, spot_starting: int) -> tuple[list[StartInstance], Retirement]:
    """Start STANDARD while SPOT has been unavailable for ``fallback.after``; stop it once SPOT is ready.

    A SPOT start in this same plan counts as coming (if it fails, the shell re-plans at once). A STANDARD VM
    found running in a pool without fallback (started by hand) is kept while it covers missing SPOT
    readiness and stopped once SPOT is ready, like a fallback one.
    """
    if not p.spec.spot_vms or not p.spec.standard_vms:
        return [], Retirement()
    wanted, since = p.demand.count, p.state.spot_unavailable_since
    due = p.spec.fallback.enabled and since is not None and p.now - since >= p.spec.fallback.after
    spot_coming = p.count(Phase.PENDING, Phase.BOOTING, Phase.READY, spot=True) + spot_starting
    start_target = max(0, wanted - spot_coming) if due else 0
    ready_spot = p.count(Phase.READY, spot=True)
    keep = max(start_target, wanted - ready_spot if wanted > 0 else 0)
    standard = [vm for vm in p.vms if not vm.is_spot]
    live = [vm for vm in standard if vm.counts_as_live]
    candidates = [vm.instance for vm in standard if vm.phase is Phase.STOPPED]
    placements = choose_starts(candidates, start_target - len(live), live=[], state=p.state, now=p.now)
    why = f"on-demand fallback, no SPOT VM could be started since {zulu(since)}" if since else ""
    starts = [_start(p, placement, why) for placement in placements]
    stop_why = f"re-optimise to SPOT, {ready_spot} SPOT VM(s) ready" if wanted > 0 else f"scale to zero, {p.demand.why}"
    return starts, choose_stops(_leaving(p), [vm for vm in live if vm.is_up], len(live) - keep, stop_why)


def _member_stops(p: _Picture) -> Retirement:
    """Stops above ``D`` and the spares of a busy pool (all live VMs when ``D`` is 0)."""
    live = [vm for vm in _members(p) if vm.counts_as_live]
    wanted = _member_target(p)
    why = f"scale to zero, {p.demand.why}" if wanted == 0 else f"{len(live)} live for {wanted} desired ({p.demand.why})"
    return choose_stops(_leaving(p), [vm for vm in live if vm.is_up], len(live) - wanted, why)


def _stuck_stops(p: _Picture) -> Retirement:
    """A VM without boot progress for ``boot_timeout`` is considered failed: stop it, start another."""
    stops = [_stuck_stop(p, vm) for vm in p.vms if vm.phase is Phase.STUCK]
    return Retirement(tuple(stops))


def _stuck_stop(p: _Picture, vm: Vm) -> StopInstance:
    progress = current_progress(vm.instance, p.state)
    started = boot_started(vm.instance, p.state)
    since = f"of its start at {clock(started)}" if started else "of its start"
    if progress is not None:
        since = f"of its last boot progress ({progress.phase} at {clock(progress.at)})"
    why = f"stop {vm.name}: {vm.instance.status} but not ready within boot_timeout {p.spec.boot_timeout} {since}"
    return StopInstance(vm.name, vm.instance.zone, why)


def _leaving(p: _Picture) -> Leaving:
    return Leaving(p.spec, p.state, p.activity, p.now)


def _requeue_after(p: _Picture, state: PoolState, retired: Retirement, *, moving: bool) -> timedelta | None:
    """How soon something will change without an event: a timer expiring, or a VM booting or stopping."""
    short = p.count(Phase.PENDING, Phase.BOOTING, Phase.READY) < p.demand.count
    retries = [f.retry_at for f in state.start_failures.values()]
    times = [
        p.demand.changes_at,
        *((*state.stockouts.values(), *retries) if short else ()),
        *retired.waits,
    ]
    if moving or retired.held or any(vm.phase in _IN_MOTION for vm in p.vms):
        times.append(p.now + IN_MOTION_POLL)
    times += [
        moved + p.spec.boot_timeout
        for vm in p.vms
        if vm.phase is Phase.BOOTING and (moved := last_progress(vm.instance, p.state))
    ]
    if p.spec.fallback.enabled and state.spot_unavailable_since is not None:
        times.append(state.spot_unavailable_since + p.spec.fallback.after)
    if p.spec.overflow is not None and state.overflow_warm and state.gap_closed_at is not None:
        times.append(state.gap_closed_at + p.spec.overflow.cooldown)
    future = [t for t in times if t is not None and t > p.now]
    return min(future) - p.now if future else None
