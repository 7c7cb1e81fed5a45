"""The modelled gateway: where each request goes, as ``gateway.proxy`` decides it.

A request goes to the least-busy VM whose route is ``ready`` (a route that is ready while its VM no longer
serves fails before the first byte and the gateway tries the next backend); else to the overflow service
(at once when it is warm, after its cold start when not); else it is held up to ``wake_hold`` for a VM to
become ready, then refused with 503. A request that finds no ready VM publishes ``wake`` (debounced). The
gateway's activity record (``last_request_at``, in flight per VM, last request per VM) is what the planner
reads; here it is always fresh, as if flushed at every reconcile.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from spotgate.domain import Activity, BackendKind, Route, RouteState
from spotgate.fleet import PoolSpec
from spotgate.simulation.arrivals import Arrival
from spotgate.simulation.cloud import SimCloud, SimVm
from spotgate.simulation.overflow import SimOverflow
from spotgate.simulation.timeline import Timeline


class Served(enum.StrEnum):
    """Where a request was answered: ``vm`` and ``overflow`` without waiting, the rest after a wait or not."""

    VM = "vm"
    OVERFLOW = "overflow"
    OVERFLOW_COLD = "overflow_cold_start"
    HELD = "held_then_vm"
    REFUSED = "refused_503"


@dataclass(slots=True)
class _Held:
    arrival: Arrival
    deadline: float
    done: bool = False


@dataclass(slots=True)
class SimGateway:
    pool: PoolSpec
    timeline: Timeline
    cloud: SimCloud
    overflow: SimOverflow | None
    publish_wake: Callable[[], None]
    wake_debounce: float
    routes: dict[str, Route] = field(default_factory=dict)
    served: Counter[Served] = field(default_factory=Counter)
    cut: int = 0
    inflight: dict[str, int] = field(default_factory=dict)
    _held: list[_Held] = field(default_factory=list)
    _last_request: float | None = None
    _last_by_vm: dict[str, float] = field(default_factory=dict)
    _finished_by_vm: dict[str, float] = field(default_factory=dict)
    _last_wake: float | None = None
    _overflow_inflight: int = 0

    def put_routes(self, routes: Iterable[Route]) -> None:
        for route in routes:
            self.routes[route.backend] = route
        if self._held and self.ready_vms():
            self._release_held()

    def ready_vms(self) -> list[SimVm]:
        """VMs the gateway would send to now: route ready, and the engine actually answers."""
        return [
            vm
            for route in self.routes.values()
            if route.kind is BackendKind.VM
            and route.state is RouteState.READY
            and (vm := self.cloud.vms.get(route.backend)) is not None
            and vm.serving
        ]

    def arrive(self, arrival: Arrival) -> None:
        self._last_request = self.timeline.now
        ready = self.ready_vms()
        if not ready:
            self._wake()
        if ready:
            self._on_vm(min(ready, key=lambda vm: (self.inflight.get(vm.name, 0), vm.name)), arrival)
            self.served[Served.VM] += 1
        elif self.overflow is not None:
            self._on_overflow(self.overflow, arrival)
        else:
            held = _Held(arrival, self.timeline.now + self.pool.wake_hold.total_seconds())
            self._held.append(held)
            self.timeline.schedule_at(held.deadline, lambda: self._refuse(held))

    def engine_lost(self, vm: SimVm) -> None:
        """The VM stopped answering: its requests in flight are cut."""
        self.cut += self.inflight.pop(vm.name, 0)

    def activity(self) -> Activity:
        at = self.timeline.at
        return Activity(
            self.pool.name,
            last_request_at=at(self._last_request) if self._last_request is not None else None,
            inflight=self.total_inflight,
            requests_total=sum(self.served.values()),
            backend_last_request={name: at(t) for name, t in self._last_by_vm.items()},
            updated_at=self.timeline.instant,
            backend_inflight=dict(self.inflight),
            backend_last_finished={name: at(t) for name, t in self._finished_by_vm.items()},
        )

    @property
    def total_inflight(self) -> int:
        return sum(self.inflight.values()) + self._overflow_inflight + sum(1 for h in self._held if not h.done)

    def _wake(self) -> None:
        now = self.timeline.now
        if self._last_wake is None or now - self._last_wake >= self.wake_debounce:
            self._last_wake = now
            self.publish_wake()

    def _on_vm(self, vm: SimVm, arrival: Arrival) -> None:
        self.inflight[vm.name] = self.inflight.get(vm.name, 0) + 1
        self._last_by_vm[vm.name] = self.timeline.now
        life = vm.life
        self.timeline.schedule(arrival.duration, lambda: self._vm_done(vm, life))

    def _vm_done(self, vm: SimVm, life: int) -> None:
        if vm.life != life:
            return  # cut when the VM went down; counted then
        self.inflight[vm.name] -= 1
        self._finished_by_vm[vm.name] = self.timeline.now

    def _on_overflow(self, overflow: SimOverflow, arrival: Arrival) -> None:
        self._overflow_inflight += 1

        def begin() -> None:
            overflow.begin()
            self.timeline.schedule(arrival.duration, done)

        def done() -> None:
            overflow.end()
            self._overflow_inflight -= 1

        warm = overflow.serve(begin)
        self.served[Served.OVERFLOW if warm else Served.OVERFLOW_COLD] += 1

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for h in held:
            if not h.done:
                h.done = True
                ready = self.ready_vms()
                self._on_vm(min(ready, key=lambda vm: (self.inflight.get(vm.name, 0), vm.name)), h.arrival)
                self.served[Served.HELD] += 1

    def _refuse(self, held: _Held) -> None:
        if not held.done:
            held.done = True
            self._held.remove(held)
            self.served[Served.REFUSED] += 1
