"""The event loop, and the control plane's shell around the production planner.

Each reconcile does what ``services.control_plane`` does, minus the I/O: fold the event into the pool's
state (``state_updates.apply_event``), take the fast path (``fast_path_routes``), plan
(``planner.plan``), apply the actions to the modelled cloud, gateway and overflow service, and re-plan at
once after a failed start, folding the failure in with ``record_start_failure``, for up to
``MAX_PLAN_ROUNDS`` rounds. The production functions are looked up on their modules at call time, so
whatever planner is on main (or a test's patched one) is what runs. ``requeue_after`` is honoured as the
deployed system schedules it: one pending follow-up per pool, replaced by every new plan.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial

from spotgate.core import demand, fast_path, planner, state_updates
from spotgate.domain import (
    ComputeEvent,
    ComputeEventKind,
    ControlKind,
    ControlMessage,
    InboundEvent,
    Observed,
    Plan,
    PoolState,
    RouteState,
    SetOverflow,
    SetRoute,
    StartInstance,
    StopInstance,
    ZoneAdvice,
)
from spotgate.errors import CapacityError, TransientError
from spotgate.fleet import FleetConfig, PoolSpec
from spotgate.services.control_plane import MAX_PLAN_ROUNDS
from spotgate.simulation.arrivals import Arrival
from spotgate.simulation.capacity import CapacityModel
from spotgate.simulation.capacity_history import CapacityHistory
from spotgate.simulation.cloud import SimCloud, SimVm, VmTiming
from spotgate.simulation.gateway import SimGateway
from spotgate.simulation.ledger import Ledger, Levels
from spotgate.simulation.overflow import SimOverflow
from spotgate.simulation.timeline import Timeline

# The capacity-advice adapter's cache (adapters.gce_advice.GceAdvisor's default ttl), in seconds.
ADVICE_TTL = 600.0


@dataclass(frozen=True, slots=True)
class RunTiming:
    """Seconds: the VMs' timing, the Scheduler tick, event delivery, the gateway's wake debounce, overflow."""

    vm: VmTiming
    tick: float
    event_delay: float
    wake_debounce: float
    overflow_cold_start: float
    overflow_idle_keep: float


class Simulation:
    """One pool of ``fleet`` against ``capacity`` and ``arrivals`` for ``length`` seconds from ``timeline.start``."""

    def __init__(
        self,
        fleet: FleetConfig,
        pool: PoolSpec,
        capacity: CapacityModel,
        arrivals: Iterator[Arrival],
        *,
        timing: RunTiming,
        timeline: Timeline,
        rng: random.Random,
        stockout_hints: bool = False,
        capacity_history: bool = True,
    ) -> None:
        self.fleet, self.pool, self.timing, self.timeline = fleet, pool, timing, timeline
        self._capacity, self._arrivals = capacity, arrivals
        self._history = CapacityHistory.of(capacity) if capacity_history else None
        self.cloud = SimCloud.of(pool, timeline, timing.vm, rng, hints=stockout_hints)
        self.overflow = (
            SimOverflow(timeline, timing.overflow_cold_start, timing.overflow_idle_keep) if pool.overflow else None
        )
        self.gateway = SimGateway(pool, timeline, self.cloud, self.overflow, self._publish_wake, timing.wake_debounce)
        self.ledger = Ledger(pool.min_ready, self._levels)
        self.state = PoolState(pool.name)
        self.desired = 0
        self._requeue = 0
        self._advised: tuple[float, dict[str, ZoneAdvice]] | None = None
        self.reconciles = 0
        self.cloud.hooks.serving = self._agent_ready
        self.cloud.hooks.preempted = self._preempted
        self.cloud.hooks.engine_lost = self.gateway.engine_lost
        self.cloud.hooks.stockout = self.ledger.stocked_out
        timeline.on_advance(self.ledger.advance)

    def run(self, length: float) -> Ledger:
        """Run to ``length`` seconds and return what was measured."""
        self._schedule_capacity(length)
        self._next_arrival()
        self.timeline.schedule_at(0.0, self._tick)  # after the capacity at 0, which was scheduled first
        self.timeline.run(length)
        return self.ledger

    # the world ------------------------------------------------------------------------------------------
    def _schedule_capacity(self, length: float) -> None:
        for zone, capacity in self._capacity.zones.items():
            for at, count in capacity.steps:
                if at < length:
                    self.timeline.schedule_at(at, partial(self.cloud.set_capacity, zone, count))
            for at in capacity.reclaims:
                if at < length:
                    self.timeline.schedule_at(at, partial(self.cloud.reclaim, zone))

    def _next_arrival(self) -> None:
        arrival = next(self._arrivals, None)
        if arrival is not None:
            self.timeline.schedule_at(arrival.at, lambda: self._arrive(arrival))

    def _arrive(self, arrival: Arrival) -> None:
        self.gateway.arrive(arrival)
        self._next_arrival()

    def _tick(self) -> None:
        self._reconcile(None)
        self.timeline.schedule(self.timing.tick, self._tick)

    # events the control plane receives ------------------------------------------------------------------
    def _deliver(self, event: InboundEvent) -> None:
        self.timeline.schedule(self.timing.event_delay, lambda: self._reconcile(event))

    def _agent_ready(self, vm: SimVm) -> None:
        self._deliver(ControlMessage(ControlKind.READY, self.timeline.instant, self.pool.name, vm.name, vm.zone))

    def _preempted(self, vm: SimVm) -> None:
        route = self.gateway.routes.get(vm.name)
        was_ready = route is not None and route.state is RouteState.READY
        others = sum(1 for ready in self.gateway.ready_vms() if ready is not vm)  # it may serve through a notice
        ready_before = others + 1 if was_ready else None
        self.ledger.preempted(vm.zone, ready_before=ready_before)
        at = self.timeline.instant
        self._deliver(ComputeEvent(ComputeEventKind.PREEMPTED, self.fleet.project, vm.zone, vm.name, at))
        self._deliver(ControlMessage(ControlKind.DRAINING, at, self.pool.name, vm.name, vm.zone))

    def _publish_wake(self) -> None:
        self._deliver(ControlMessage(ControlKind.WAKE, self.timeline.instant, self.pool.name))

    # the shell ------------------------------------------------------------------------------------------
    def _reconcile(self, event: InboundEvent | None) -> None:
        now = self.timeline.instant
        self.reconciles += 1
        state = self.state
        if event is not None:
            state = state_updates.apply_event(state, event, self.pool)
            self.gateway.put_routes(fast_path.fast_path_routes(event, tuple(self.gateway.routes.values()), now))
        failures: list[tuple[StartInstance, TransientError]] = []
        decided: Plan | None = None
        for _ in range(MAX_PLAN_ROUNDS):
            for action, error in failures:
                state = state_updates.record_start_failure(state, action, error, now, self.pool)
            decided = planner.plan(self.pool, self._observed(), state, now)
            state, failures = decided.next_state, self._apply(decided)
            if not failures:
                break
        for action, error in failures:  # the last round's failures are remembered; the next tick retries
            state = state_updates.record_start_failure(state, action, error, now, self.pool)
        self.state = state
        self.desired = demand.desired_ready(self.pool, self.gateway.activity(), state, now).count
        self._schedule_requeue(decided)

    def _observed(self) -> Observed:
        return Observed(
            instances=self.cloud.instances(),
            routes=tuple(self.gateway.routes.values()),
            activity=self.gateway.activity(),
            overflow_min_instances=self.overflow.min_instances if self.overflow is not None else None,
            advice=self._advice(),
        )

    def _advice(self) -> dict[str, ZoneAdvice]:
        """Capacity advice for a pool with ``capacity_advice``, as fresh as the adapter's cache keeps it, with
        capacityHistory's preemption rate from the capacity's past (None, "unknown", when not modelled)."""
        if self.pool.capacity_advice is None:
            return {}
        if self._advised is None or self.timeline.now - self._advised[0] >= ADVICE_TTL:
            now, history = self.timeline.now, self._history
            advice = self.cloud.advice(sorted({vm.zone for vm in self.pool.spot_vms}))
            if history is not None:
                advice = {z: replace(a, preemption_rate=history.preemption_rate(z, now)) for z, a in advice.items()}
            self._advised = (now, advice)
        return self._advised[1]

    def _apply(self, decided: Plan) -> list[tuple[StartInstance, TransientError]]:
        """Routes first, then the rest in plan order, as the control plane applies them; failed starts."""
        self.gateway.put_routes(a.route for a in decided.actions if isinstance(a, SetRoute))
        failures: list[tuple[StartInstance, TransientError]] = []
        for action in decided.actions:
            if isinstance(action, StartInstance):
                try:
                    self.cloud.start(action.instance)
                except CapacityError as e:
                    failures.append((action, e))
            elif isinstance(action, StopInstance):
                self.cloud.stop(action.instance)
            elif isinstance(action, SetOverflow) and self.overflow is not None:
                self.overflow.set_min_instances(action.min_instances)
        return failures

    def _schedule_requeue(self, decided: Plan | None) -> None:
        self._requeue += 1
        if decided is None or decided.requeue_after is None:
            return
        token = self._requeue
        self.timeline.schedule(
            decided.requeue_after.total_seconds(), lambda: self._reconcile(None) if token == self._requeue else None
        )

    # what the ledger integrates -------------------------------------------------------------------------
    def _levels(self) -> Levels:
        vms = self.cloud.vms.values()
        overflow = self.overflow
        return Levels(
            ready=len(self.gateway.ready_vms()),
            desired=self.desired,
            spot=sum(1 for vm in vms if vm.billed and vm.is_spot),
            standard=sum(1 for vm in vms if vm.billed and not vm.is_spot),
            idle_vms=sum(1 for vm in vms if vm.billed and not self.gateway.inflight.get(vm.name)),
            overflow=overflow is not None and overflow.billed,
            overflow_idle=overflow is not None and overflow.billed and overflow.inflight == 0,
        )
