"""A small discrete-time world around one pool, driven through the *production* planner and state updates.

The world models what the planner cannot see directly, the way GCE and the gateway behave:
- a start leaves the VM PROVISIONING with its *previous* ``lastStartTimestamp`` until it is RUNNING (GCE),
  then the agent reports its ``loading`` phase and ``ready``; a stop takes the VM down a few seconds later;
- a preemption sends the audit event and takes the VM down 30 s later, cutting what ran on it;
- the gateway sends new requests only to ``ready`` routes, and a draining VM's streams finish over time;
  its activity is flushed every step, so it is always fresh.
A start may be made to fail with any error the adapters raise. The world records every start and stop with
what was in flight, so tests can state properties over whole runs.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from spotgate.core.planner import plan
from spotgate.core.state_updates import apply_event, record_start_failure
from spotgate.domain import (
    Activity,
    ComputeEvent,
    ComputeEventKind,
    ControlKind,
    ControlMessage,
    Instance,
    InstanceStatus,
    Observed,
    Plan,
    PoolState,
    Route,
    RouteState,
    SetRoute,
    StartInstance,
    StopInstance,
)
from spotgate.fleet import PoolSpec
from tests.unit.builders import NOW, POOL, an_instance

BOOT = timedelta(seconds=50)  # start -> RUNNING
LOAD = timedelta(seconds=40)  # RUNNING -> ready notice
STOP = timedelta(seconds=10)  # STOPPING -> TERMINATED
PREEMPT_NOTICE = timedelta(seconds=30)

Failure = Callable[[StartInstance], Exception | None]


@dataclass
class SimVm:
    instance: Instance
    boot_at: datetime | None = None
    ready_at: datetime | None = None
    down_at: datetime | None = None
    inflight: int = 0


@dataclass(frozen=True)
class Stop:
    instance: str
    at: datetime
    reason: str
    inflight: int  # what the gateway reported in flight on it when the planner decided
    draining_since: datetime | None  # since when its route was draining, if it was


@dataclass
class World:
    spec: PoolSpec
    rng: random.Random
    fail: Failure = lambda _: None
    now: datetime = NOW
    state: PoolState = field(default_factory=lambda: PoolState(pool=POOL, generation=1))
    vms: dict[str, SimVm] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    draining_since: dict[str, datetime] = field(default_factory=dict)
    last_request: dict[str, datetime] = field(default_factory=dict)
    last_finished: dict[str, datetime] = field(default_factory=dict)
    pool_inflight: int = 0
    last_pool_request: datetime | None = None
    starts: list[tuple[str, datetime]] = field(default_factory=list)
    failed_starts: list[tuple[str, datetime]] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)
    plans: list[tuple[datetime, Observed, PoolState, Plan]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for vm in self.spec.vms:
            old = an_instance(
                vm.name, zone=vm.zone, model=vm.provisioning_model, last_start=self.now - timedelta(days=1)
            )
            self.vms[vm.name] = SimVm(replace(old, last_stop=self.now - timedelta(hours=20)))

    # ---- one step ------------------------------------------------------------------------------------------

    def step(self, dt: timedelta, load: int) -> Plan:
        """Advance ``dt``, let GCE and the agents move, carry ``load`` requests, then plan and apply once."""
        self.now += dt
        self._advance()
        self._carry(load)
        seen = Observed(tuple(vm.instance for vm in self.vms.values()), tuple(self.routes.values()), self.activity())
        before = self.state
        result = plan(self.spec, seen, before, self.now)
        self.plans.append((self.now, seen, before, result))
        self.state = result.next_state
        for action in result.actions:
            self._apply(action, seen.activity)
        return result

    def event(self, event: ComputeEvent | ControlMessage) -> None:
        self.state = apply_event(self.state, event, self.spec)

    def preempt(self, name: str) -> None:
        vm = self.vms[name]
        if vm.instance.status is not InstanceStatus.RUNNING:
            return
        event = ComputeEvent(ComputeEventKind.PREEMPTED, "proj-test-1", vm.instance.zone, name, self.now)
        self.event(event)
        self._going_down(vm, self.now + PREEMPT_NOTICE)

    def activity(self) -> Activity:
        return Activity(
            pool=POOL,
            last_request_at=self.last_pool_request,
            inflight=self.pool_inflight,
            backend_last_request=dict(self.last_request),
            updated_at=self.now,
            backend_inflight={name: vm.inflight for name, vm in self.vms.items() if vm.inflight},
            backend_last_finished=dict(self.last_finished),
        )

    # ---- GCE and the agents ----------------------------------------------------------------------------------

    def _advance(self) -> None:
        for name, vm in self.vms.items():
            if vm.boot_at is not None and vm.boot_at <= self.now:
                vm.instance, vm.boot_at = (
                    replace(vm.instance, status=InstanceStatus.RUNNING, last_start=vm.boot_at),
                    None,
                )
            if vm.ready_at is not None and vm.ready_at <= self.now and vm.instance.status is InstanceStatus.RUNNING:
                self.event(ControlMessage(ControlKind.READY, vm.ready_at, POOL, name, vm.instance.zone))
                vm.ready_at = None
            if vm.down_at is not None and vm.down_at <= self.now:
                vm.instance = replace(vm.instance, status=InstanceStatus.TERMINATED, last_stop=vm.down_at)
                vm.down_at = None

    def _going_down(self, vm: SimVm, at: datetime) -> None:
        vm.instance = replace(vm.instance, status=InstanceStatus.STOPPING)
        vm.boot_at = vm.ready_at = None
        vm.down_at = at
        vm.inflight = 0

    # ---- the gateway -----------------------------------------------------------------------------------------

    def _carry(self, load: int) -> None:
        """New requests go to ready routes only; streams on draining VMs finish over time."""
        serving = [
            n
            for n, r in self.routes.items()
            if r.state is RouteState.READY and self.vms[n].instance.status is InstanceStatus.RUNNING
        ]
        for name, vm in self.vms.items():
            if name in serving:
                continue
            if vm.inflight:
                finished = self.rng.randint(0, vm.inflight)
                vm.inflight -= finished
                if finished:
                    self.last_finished[name] = self.now
        self.pool_inflight = load
        if load:
            self.last_pool_request = self.now
        for index, name in enumerate(sorted(serving)):
            vm = self.vms[name]
            share = load // len(serving) + (1 if index < load % len(serving) else 0)
            if share < vm.inflight:
                self.last_finished[name] = self.now
            if share:
                self.last_request[name] = self.now
            vm.inflight = share

    # ---- applying a plan (what the shell does) ------------------------------------------------------------------

    def _apply(self, action: object, seen: Activity) -> None:
        if isinstance(action, SetRoute):
            route = action.route
            if route.state is RouteState.DRAINING:
                self.draining_since.setdefault(route.backend, self.now)
            else:
                self.draining_since.pop(route.backend, None)
            self.routes[route.backend] = route
        elif isinstance(action, StartInstance):
            self._start(action)
        elif isinstance(action, StopInstance):
            inflight = seen.backend_inflight.get(action.instance, 0)
            self.stops.append(
                Stop(action.instance, self.now, action.reason, inflight, self.draining_since.get(action.instance))
            )
            vm = self.vms[action.instance]
            if vm.instance.status.is_live:
                self._going_down(vm, self.now + STOP)

    def _start(self, action: StartInstance) -> None:
        error = self.fail(action)
        if error is not None:
            self.failed_starts.append((action.instance, self.now))
            self.state = record_start_failure(self.state, action, error, self.now, self.spec)
            return
        self.starts.append((action.instance, self.now))
        vm = self.vms[action.instance]
        # GCE: PROVISIONING at once, still showing the previous boot's lastStartTimestamp until RUNNING.
        vm.instance = replace(vm.instance, status=InstanceStatus.PROVISIONING)
        vm.boot_at, vm.ready_at = self.now + BOOT, self.now + BOOT + LOAD
