"""The modelled Compute Engine: a pool's VMs, their statuses, and SPOT capacity per zone.

GCE behaviours modelled: a start moves a VM to PROVISIONING and, after the pool's boot time, RUNNING; a start
of a SPOT VM in a zone that already runs as many of the pool's VMs as it has capacity for fails with
``ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS`` (raised as ``CapacityError``, as the compute adapter raises it);
when a zone's capacity drops below what runs there, GCE preempts the excess: the VM goes STOPPING for the
preemption notice, then TERMINATED (``instance_termination_action = STOP``). With the pool's early
``preemption_notice`` a RUNNING SPOT VM is told first and keeps RUNNING and serving for that long (its place
in the zone is already gone), then goes the same way. STANDARD VMs are not limited.
Only RUNNING and STOPPING VMs are billed, as GCE bills them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from spotgate.domain import Instance, InstanceStatus, ProvisioningModel, ZoneAdvice
from spotgate.errors import CapacityError
from spotgate.fleet import PoolSpec
from spotgate.simulation.timeline import Timeline

STOCKOUT_CODE = "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"
_BILLED = (InstanceStatus.RUNNING, InstanceStatus.STOPPING)


@dataclass(frozen=True, slots=True)
class VmTiming:
    """Seconds: TERMINATED -> RUNNING, RUNNING -> engine serving, STOPPING -> TERMINATED, preemption notice."""

    boot: float
    load: float
    stop: float
    preempt_notice: float


@dataclass(slots=True)
class SimVm:
    """One VM of the pool; ``life`` counts boots and stops so callbacks of an earlier life do nothing."""

    name: str
    zone: str
    model: ProvisioningModel
    network_ip: str
    status: InstanceStatus = InstanceStatus.TERMINATED
    serving: bool = False
    under_notice: bool = False  # told of its preemption, still RUNNING through the early notice
    life: int = 0
    last_start: datetime | None = None
    last_stop: datetime | None = None

    @property
    def is_spot(self) -> bool:
        return self.model is ProvisioningModel.SPOT

    @property
    def billed(self) -> bool:
        return self.status in _BILLED

    def instance(self) -> Instance:
        return Instance(
            self.name, self.zone, self.status, self.model, self.network_ip, last_start=self.last_start,
            last_stop=self.last_stop,
        )  # fmt: skip


@dataclass(slots=True)
class CloudHooks:
    """What the rest of the model hears from the cloud (the agent's notices, the log sink, lost engines)."""

    serving: Callable[[SimVm], None] = lambda _vm: None
    preempted: Callable[[SimVm], None] = lambda _vm: None
    engine_lost: Callable[[SimVm], None] = lambda _vm: None
    stockout: Callable[[str], None] = lambda _zone: None


@dataclass(slots=True)
class SimCloud:
    timeline: Timeline
    timing: VmTiming
    rng: random.Random
    vms: dict[str, SimVm]
    capacity: dict[str, int]
    hints: bool = False
    early_notice: float = 0.0  # the pool's preemption_notice, seconds
    hooks: CloudHooks = field(default_factory=CloudHooks)
    _up_since: dict[str, float] = field(default_factory=dict)  # zone -> when its capacity last became > 0
    _up_spans: dict[str, list[float]] = field(default_factory=dict)  # zone -> lengths of its ended up-periods

    @classmethod
    def of(cls, pool: PoolSpec, timeline: Timeline, timing: VmTiming, rng: random.Random, *, hints: bool) -> SimCloud:
        vms = {
            vm.name: SimVm(vm.name, vm.zone, vm.provisioning_model, f"10.{i // 250}.{i % 250}.2")
            for i, vm in enumerate(pool.vms)
        }
        notice = pool.preemption_notice.total_seconds() if pool.preemption_notice is not None else 0.0
        return cls(timeline, timing, rng, vms, {}, hints, notice)

    def instances(self) -> tuple[Instance, ...]:
        return tuple(vm.instance() for vm in self.vms.values())

    def live_spot(self, zone: str) -> list[SimVm]:
        return [
            vm
            for vm in self.vms.values()
            if vm.is_spot and vm.zone == zone and vm.status.is_live and not vm.under_notice
        ]

    def start(self, name: str) -> None:
        """Start a stopped VM. Raises CapacityError when its zone has no SPOT capacity left."""
        vm = self.vms[name]
        if not vm.status.is_stopped:
            return  # GCE: starting a live VM is a no-op
        if vm.is_spot and len(self.live_spot(vm.zone)) >= self.capacity.get(vm.zone, 0):
            self.hooks.stockout(vm.zone)
            raise CapacityError(
                f"{STOCKOUT_CODE}: no SPOT capacity in {vm.zone}", zone=vm.zone, code=STOCKOUT_CODE,
                zones_available=self._zones_with_room() if self.hints else (),
            )  # fmt: skip
        vm.life += 1
        vm.status, vm.last_start = InstanceStatus.PROVISIONING, self.timeline.instant
        life = vm.life
        self.timeline.schedule(self.timing.boot, lambda: self._running(vm, life))

    def stop(self, name: str) -> None:
        vm = self.vms[name]
        if vm.status.is_live:
            self._going_down(vm, self.timing.stop)

    def set_capacity(self, zone: str, count: int) -> None:
        """New capacity for ``zone``; the excess of live SPOT VMs there is preempted (chosen at random)."""
        now = self.timeline.now
        if count > 0 and zone not in self._up_since:
            self._up_since[zone] = now
        elif count == 0 and zone in self._up_since:
            self._up_spans.setdefault(zone, []).append(now - self._up_since.pop(zone))
        self.capacity[zone] = count
        live = self.live_spot(zone)
        for vm in self.rng.sample(live, max(0, len(live) - count)):
            self.preempt(vm)

    def reclaim(self, zone: str) -> None:
        """GCE takes one live SPOT VM of the zone (if any), whatever the capacity."""
        live = self.live_spot(zone)
        if live:
            self.preempt(self.rng.choice(live))

    def preempt(self, vm: SimVm) -> None:
        if self.early_notice > 0 and vm.is_spot and vm.status is InstanceStatus.RUNNING:
            vm.under_notice = True
            life = vm.life
            self.timeline.schedule(self.early_notice, lambda: self._soft_off(vm, life))
        else:
            self._going_down(vm, self.timing.preempt_notice)
        self.hooks.preempted(vm)

    def _soft_off(self, vm: SimVm, life: int) -> None:
        """The end of an early notice: ACPI soft-off, unless a stop came first."""
        if vm.life == life and vm.status is InstanceStatus.RUNNING:
            self._going_down(vm, self.timing.preempt_notice)

    def advice(self, zones: list[str]) -> dict[str, ZoneAdvice]:
        """What ``advice.capacity`` would say, modelled without knowledge of the future: obtainability 1 where
        the zone has room for one more of the pool's SPOT VMs now, else 0 (GCE knows its own capacity; the
        real score is graded), and as estimated uptime the mean length of the zone's past capacity periods."""
        advice = {}
        for zone in zones:
            room = self.capacity.get(zone, 0) > len(self.live_spot(zone))
            spans = self._up_spans.get(zone)
            uptime = timedelta(seconds=sum(spans) / len(spans)) if spans else None
            advice[zone] = ZoneAdvice(zone, 1.0 if room else 0.0, uptime)
        return advice

    def _zones_with_room(self) -> tuple[str, ...]:
        return tuple(sorted(z for z, n in self.capacity.items() if len(self.live_spot(z)) < n))

    def _running(self, vm: SimVm, life: int) -> None:
        if vm.life == life and vm.status is InstanceStatus.PROVISIONING:
            vm.status = InstanceStatus.RUNNING
            self.timeline.schedule(self.timing.load, lambda: self._loaded(vm, life))

    def _loaded(self, vm: SimVm, life: int) -> None:
        if vm.life == life and vm.status is InstanceStatus.RUNNING:
            vm.serving = True
            self.hooks.serving(vm)

    def _going_down(self, vm: SimVm, after: float) -> None:
        was_serving = vm.serving
        vm.life += 1
        vm.status, vm.serving, vm.under_notice = InstanceStatus.STOPPING, False, False
        if was_serving:
            self.hooks.engine_lost(vm)
        life = vm.life
        self.timeline.schedule(after, lambda: self._terminated(vm, life))

    def _terminated(self, vm: SimVm, life: int) -> None:
        if vm.life == life:
            vm.status, vm.last_stop = InstanceStatus.TERMINATED, self.timeline.instant
