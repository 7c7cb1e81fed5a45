"""The sandbox's Compute Engine: the fleet's VMs, their lifecycles, SPOT behaviour and zone operations.

An in-memory, thread-safe model the REST app (``compute.api``) renders as GCE JSON. It behaves like GCE
where spotgate depends on it: ``start`` walks TERMINATED -> PROVISIONING -> STAGING -> RUNNING over the boot
delay and ``stop`` walks RUNNING -> STOPPING -> TERMINATED; starting a RUNNING VM or stopping a TERMINATED
one is a no-op operation that is DONE at once; starting a STOPPING VM is refused (``NotReadyError``, HTTP 400
``resourceNotReady``). A stocked-out zone fails ``start`` in the operation (``ZONE_RESOURCE_POOL_EXHAUSTED_
WITH_DETAILS``, see ``compute.gce_json`` for the wire shape), never synchronously. A preemption moves RUNNING to
STOPPING at once, keeps the engine answering for the notice window, then TERMINATED kills it; host
maintenance terminates at once. Each of these is logged as a system event and told to listeners.

Engines are started and killed by an ``EngineHost`` (``vms.VmEngines``): the model decides *when*, the host
does the process work. Every transition runs on a per-operation thread that checks the VM's ``generation``
after each wait, so a preemption or stop during a boot wins cleanly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from spotgate.clock import SystemClock
from spotgate.domain import InstanceStatus, ProvisioningModel
from spotgate.errors import NotFoundError, NotReadyError, SpotgateError
from spotgate.fleet import FleetConfig
from spotgate.ports import Clock
from spotgate.sandbox.compute.faults import OPERATION_CODES, Fault, Faults
from spotgate.sandbox.compute.records import Operation, OperationFailure, Timing, Vm, new_vm
from spotgate.sandbox.compute.vm_events import EventLog, VmEvent, VmEventKind
from spotgate.sandbox.compute.zone_operations import ZoneOperations

__all__ = ["ComputeModel", "EngineHost", "Fault", "NotReadyError", "Timing", "VmEvent", "VmEventKind"]

log = logging.getLogger(__name__)


class EngineHost(Protocol):
    """Runs the engine of a VM: ``boot`` blocks until it listens and returns its URL; ``halt`` kills it."""

    def boot(self, vm: Vm, since: float | None = None) -> str: ...

    def halt(self, instance: str) -> None: ...


class _Launch:
    """An engine start running in its own thread while the VM provisions; ``url()`` joins it."""

    def __init__(self, engines: EngineHost, vm: Vm, since: float) -> None:
        self._result: str | None = None
        self._thread = threading.Thread(target=self._start, args=(engines, vm, since), daemon=True)
        self._thread.start()

    def _start(self, engines: EngineHost, vm: Vm, since: float) -> None:
        try:
            self._result = engines.boot(vm, since)
        except SpotgateError:
            log.exception("engine did not start", extra={"instance": vm.name})

    def url(self) -> str | None:
        self._thread.join()
        return self._result


class ComputeModel:
    """The fleet's instances and zone operations. Every public method is thread-safe."""

    def __init__(
        self,
        fleet: FleetConfig,
        network_ips: dict[str, str],
        engines: EngineHost,
        clock: Clock | None = None,
    ) -> None:
        self.project = fleet.project
        self.timing = Timing.of(fleet)
        self._clock = clock or SystemClock()
        self._engines = engines
        self._lock = threading.Condition()
        self._closing = threading.Event()
        self._events = EventLog()
        self._operations = ZoneOperations(self.project, self._lock, self._clock)
        self._stockouts: dict[str, float] = {}  # zone -> monotonic end
        self._threads: list[threading.Thread] = []
        self.faults = Faults()
        self._unreachable: set[str] = set()
        now = self._clock.now()
        self._vms = {
            vm.name: new_vm(self.project, pool.name, vm, pool.engine, network_ip=network_ips[vm.name], now=now)
            for pool in fleet.pools
            for vm in pool.vms
        }
        self.zones = tuple(sorted({vm.zone for vm in self._vms.values()}))

    # -- reading -------------------------------------------------------------------------------------------

    def instances(self, zone: str | None = None) -> list[Vm]:
        """Snapshots of the VMs (of one zone), by name."""
        with self._lock:
            return [vm.copy() for vm in sorted(self._vms.values(), key=lambda v: v.name) if zone in (None, vm.zone)]

    def instance(self, zone: str, name: str) -> Vm:
        with self._lock:
            return self._find(zone, name).copy()

    def find(self, name: str) -> Vm:
        """A VM by name alone (names are unique in a fleet). Raises NotFoundError."""
        with self._lock:
            vm = self._vms.get(name)
            if vm is None:
                raise NotFoundError(f"no instance named {name!r} in project {self.project}")
            return vm.copy()

    def operation(self, zone: str, name: str) -> Operation:
        """Raises NotFoundError."""
        return self._operations.get(zone, name)

    def wait(self, zone: str, name: str, timeout: float) -> Operation:
        """The operation once DONE, or as it is after ``timeout`` seconds (GCE's wait is bounded too)."""
        return self._operations.wait(zone, name, timeout, self._closing.is_set)

    def stockouts(self) -> dict[str, float]:
        """Stocked-out zones and the seconds each stays so."""
        now = time.monotonic()
        with self._lock:
            return {z: end - now for z, end in self._stockouts.items() if end > now}

    def add_listener(self, listener: Callable[[VmEvent], None]) -> None:
        """Call ``listener`` for every later event, in order, from the model's event thread; it should not block."""
        self._events.add_listener(listener)

    def system_events(self) -> list[VmEvent]:
        """Every event so far (system events and status changes), oldest first."""
        return self._events.events()

    # -- the API's verbs -----------------------------------------------------------------------------------

    def start(self, zone: str, name: str, user: str) -> Operation:
        """Start a VM. Returns the operation; raises NotFoundError or NotReadyError."""
        with self._lock:
            vm = self._find(zone, name)
            if vm.status is InstanceStatus.STOPPING:
                raise NotReadyError(
                    f"The resource 'projects/{self.project}/zones/{zone}/instances/{name}' is not ready"
                )
            op = self._operations.create("start", vm, user)
            if vm.status is not InstanceStatus.TERMINATED:
                return self._operations.finish(op.name)
            if vm.provisioning_model is ProvisioningModel.SPOT and self._stocked_out(zone):
                self._run(self._fail_stockout, op.name, zone)
                return op
            vm.generation += 1
            self._set_status(vm, InstanceStatus.PROVISIONING)
            self._run(self._boot, vm.name, vm.generation, op.name)
            return op

    def resume(self, zone: str, name: str, user: str) -> Operation:
        """Resume a SUSPENDED VM: it boots again (PROVISIONING -> STAGING -> RUNNING) like a start. On any other
        VM the operation is a DONE no-op, and ``start`` on a SUSPENDED VM is one too: GCE resumes a suspended
        VM only through ``instances.resume``. Raises NotFoundError."""
        with self._lock:
            vm = self._find(zone, name)
            op = self._operations.create("resume", vm, user)
            if vm.status is not InstanceStatus.SUSPENDED:
                return self._operations.finish(op.name)
            vm.generation += 1
            self._set_status(vm, InstanceStatus.PROVISIONING)
            self._run(self._boot, vm.name, vm.generation, op.name)
            return op

    def suspend(self, name: str) -> Vm:
        """Suspend a RUNNING VM (a sandbox control; GCE's ``instances.suspend``): SUSPENDING, then SUSPENDED
        after the stop delay, its engine gone. Raises NotFoundError or NotReadyError."""
        with self._lock:
            vm = self._live(name, "suspend")
            if vm.status is not InstanceStatus.RUNNING:
                raise NotReadyError(f"cannot suspend {name}: it is {vm.status}")
            vm.generation += 1
            self._set_status(vm, InstanceStatus.SUSPENDING)
            self._run(self._suspend_after, vm.name, vm.generation)
            return vm.copy()

    def fail_start(self, zone: str, name: str, user: str, code: str) -> Operation:
        """Accept a start, then fail its operation with GCE's ``code`` (see ``compute.faults``); the VM stays put."""
        status, http_message, message = OPERATION_CODES[code]
        with self._lock:
            vm = self._find(zone, name)
            op = self._operations.create("start", vm, user)
            failure = OperationFailure(code=code, message=message, http_status=status, http_message=http_message)
            return self._operations.finish(op.name, failure)

    def stop(self, zone: str, name: str, user: str) -> Operation:
        """Stop a VM (any live state). Returns the operation; raises NotFoundError."""
        with self._lock:
            vm = self._find(zone, name)
            op = self._operations.create("stop", vm, user)
            if vm.status is InstanceStatus.TERMINATED:
                return self._operations.finish(op.name)
            if vm.status is InstanceStatus.STOPPING:  # completes with the stop already under way
                self._run(self._finish_when_stopped, vm.name, op.name)
                return op
            self._begin_stopping(vm)
            self._run(self._terminate_after, vm.name, vm.generation, self.timing.stop, op.name)
            return op

    # -- SPOT and system events ----------------------------------------------------------------------------

    def set_scheduling(self, zone: str, name: str, scheduling: dict[str, object], user: str) -> Operation:
        """``instances.setScheduling``: only ``preemptionNoticeDuration`` is modelled. Raises NotReadyError.

        GCE allows the call only on a stopped (TERMINATED) instance; the sandbox refuses it otherwise with
        ``resourceNotReady``, the refusal GCE gives for a VM in the wrong state.
        """
        with self._lock:
            vm = self._find(zone, name)
            if vm.status is not InstanceStatus.TERMINATED:
                raise NotReadyError(
                    f"The resource 'projects/{self.project}/zones/{zone}/instances/{name}' is not ready: "
                    f"setScheduling needs a stopped instance, it is {vm.status}"
                )
            vm.preemption_notice = notice_seconds(scheduling.get("preemptionNoticeDuration"))
            return self._operations.finish(self._operations.create("setScheduling", vm, user).name)

    def preempt(self, name: str) -> Vm:
        """Reclaim a live VM. Raises NotReadyError.

        Without an early notice: STOPPING (ACPI soft-off) now, TERMINATED after the 30 s notice. A SPOT VM
        whose scheduling carries ``preemptionNoticeDuration`` is told first (its metadata ``instance/preempted``
        turns TRUE: the PREEMPT_NOTICE event) and keeps RUNNING and serving for that duration, then soft-off
        as above; GCE's ``compute.instances.preempted`` system event is logged when the preemption begins.
        """
        with self._lock:
            vm = self._live(name, "preempt")
            if vm.under_notice:
                raise NotReadyError(f"cannot preempt {name}: its preemption notice is running")
            self._emit(VmEventKind.PREEMPT_NOTICE, vm)
            self._system_event(vm, "compute.instances.preempted", "Instance was preempted.")
            notice = vm.preemption_notice if vm.provisioning_model is ProvisioningModel.SPOT else None
            if notice and vm.status is InstanceStatus.RUNNING:
                vm.generation, vm.under_notice = vm.generation + 1, True
                self._run(self._soft_off_after, vm.name, vm.generation, notice / self.timing.speedup)
                return vm.copy()
            self._begin_stopping(vm)
            self._run(self._terminate_after, vm.name, vm.generation, self.timing.preempt_notice, None)
            return vm.copy()

    def _soft_off_after(self, name: str, generation: int, delay: float) -> None:
        """The end of an early preemption notice: the ACPI soft-off, then TERMINATED after the usual 30 s."""
        if not self._pause(delay):
            return
        with self._lock:
            vm = self._vms[name]
            if vm.generation != generation or vm.status is not InstanceStatus.RUNNING:
                return  # stopped meanwhile: that stop won
            self._begin_stopping(vm)
            self._run(self._terminate_after, vm.name, vm.generation, self.timing.preempt_notice, None)

    def maintenance(self, name: str) -> Vm:
        """Host maintenance on a TERMINATE VM: stopped at once, no notice. Raises NotReadyError."""
        with self._lock:
            vm = self._live(name, "terminate on host maintenance")
            self._system_event(
                vm, "compute.instances.terminateOnHostMaintenance", "Instance terminated during maintenance."
            )
            self._begin_stopping(vm)
            self._run(self._terminate_after, vm.name, vm.generation, 0.0, None)
            return vm.copy()

    def stock_out(self, zone: str, seconds: float) -> None:
        """Make SPOT ``start``s in ``zone`` fail with a stockout for ``seconds`` (0 ends a stockout).

        On-demand (STANDARD) capacity is a separate pool in GCE and is not affected: that is what makes
        an on-demand fallback worth having during a SPOT stockout.
        """
        if zone not in self.zones:
            raise NotFoundError(f"zone {zone!r} has no instances in project {self.project}")
        with self._lock:
            self._stockouts[zone] = time.monotonic() + seconds

    def set_unreachable(self, zone: str, unreachable: bool) -> None:
        """Make ``zone`` fail to answer listings (GCE: one zone's outage fails a whole ``aggregatedList``
        unless the caller sent ``returnPartialSuccess=true``, which lists it in ``unreachables`` instead)."""
        if zone not in self.zones:
            raise NotFoundError(f"zone {zone!r} has no instances in project {self.project}")
        with self._lock:
            (self._unreachable.add if unreachable else self._unreachable.discard)(zone)

    def unreachable_zones(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._unreachable)

    def zones_available(self, excluding: str) -> tuple[str, ...]:
        with self._lock:
            return tuple(z for z in self.zones if z != excluding and not self._stocked_out(z))

    def close(self) -> None:
        """Stop every transition thread and kill every engine. Idempotent."""
        self._closing.set()
        with self._lock:
            self._lock.notify_all()
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout=10)
        for vm in self._vms.values():
            self._engines.halt(vm.name)
        self._events.close()

    # -- transitions (run on operation threads) ------------------------------------------------------------

    def _boot(self, name: str, generation: int, op_name: str) -> None:
        """Provision the VM while its engine process starts alongside (a real guest boots in that time)."""
        self._operations.begin(op_name)
        with self._lock:
            booting = self._vms[name].copy()
        engine = _Launch(self._engines, booting, time.time())  # slow (a process start): outside the lock
        snapshot = self._provision(name, generation)
        url = engine.url()
        if snapshot is None and url is not None:  # stopped while booting
            self._engines.halt(name)
            url = None
        with self._lock:
            vm = self._vms[name]
            if url is not None and vm.generation == generation:
                vm.engine_url = url
                # GCE: a restarted VM reports its *previous* lastStartTimestamp while PROVISIONING/STAGING;
                # the field changes only once the VM is RUNNING. Planners must not read it as "this boot".
                vm.last_start = self._clock.now()
                self._set_status(vm, InstanceStatus.RUNNING)
            elif url is not None:  # stopped or preempted while the engine started
                self._engines.halt(name)
            elif vm.generation == generation:  # the engine failed: the guest never came up
                vm.last_stop = self._clock.now()
                self._set_status(vm, InstanceStatus.TERMINATED)
            self._operations.finish(op_name)

    def _provision(self, name: str, generation: int) -> Vm | None:
        """PROVISIONING -> STAGING -> (boot delay) ; the VM's snapshot, or None if it was stopped meanwhile."""
        if not self._pause(self.timing.boot * 0.3) or not self._advance(name, generation, InstanceStatus.STAGING):
            return None
        if not self._pause(self.timing.boot * 0.7):
            return None
        with self._lock:
            vm = self._vms[name]
            return vm.copy() if vm.generation == generation else None

    def _terminate_after(self, name: str, generation: int, delay: float, op_name: str | None) -> None:
        if op_name:
            self._operations.begin(op_name)
        self._pause(delay)
        with self._lock:
            vm = self._vms[name]
            if vm.generation == generation and vm.status is InstanceStatus.STOPPING:
                self._engines.halt(name)
                vm.engine_url = None
                vm.last_stop = self._clock.now()
                self._set_status(vm, InstanceStatus.TERMINATED)
            if op_name:
                self._operations.finish(op_name)

    def _suspend_after(self, name: str, generation: int) -> None:
        self._pause(self.timing.stop)
        with self._lock:
            vm = self._vms[name]
            if vm.generation == generation and vm.status is InstanceStatus.SUSPENDING:
                self._engines.halt(name)
                vm.engine_url = None
                self._set_status(vm, InstanceStatus.SUSPENDED)

    def _finish_when_stopped(self, name: str, op_name: str) -> None:
        self._operations.begin(op_name)
        limit = max(self.timing.stop, self.timing.preempt_notice) + 5.0
        with self._lock:
            self._lock.wait_for(
                lambda: self._vms[name].status is not InstanceStatus.STOPPING or self._closing.is_set(), limit
            )
            self._operations.finish(op_name)

    def _fail_stockout(self, op_name: str, zone: str) -> None:
        self._operations.begin(op_name)
        self._pause(self.timing.stockout_failure)
        with self._lock:
            failure = OperationFailure.stockout(self.project, zone, self.zones_available(zone))
            self._operations.finish(op_name, failure)

    # -- internals (callers hold the lock unless noted) ----------------------------------------------------

    def _find(self, zone: str, name: str) -> Vm:
        vm = self._vms.get(name)
        if vm is None or vm.zone != zone:
            raise NotFoundError(f"The resource 'projects/{self.project}/zones/{zone}/instances/{name}' was not found")
        return vm

    def _live(self, name: str, what: str) -> Vm:
        vm = self._vms.get(name)
        if vm is None:
            raise NotFoundError(f"no instance named {name!r} in project {self.project}")
        if not vm.status.is_live:
            raise NotReadyError(f"cannot {what} {name}: it is {vm.status}")
        return vm

    def _stocked_out(self, zone: str) -> bool:
        return self._stockouts.get(zone, 0.0) > time.monotonic()

    def _advance(self, name: str, generation: int, status: InstanceStatus) -> bool:
        with self._lock:
            vm = self._vms[name]
            if vm.generation != generation:
                return False
            self._set_status(vm, status)
            return True

    def _begin_stopping(self, vm: Vm) -> None:
        vm.generation, vm.under_notice = vm.generation + 1, False
        self._set_status(vm, InstanceStatus.STOPPING)

    def _set_status(self, vm: Vm, status: InstanceStatus) -> None:
        vm.status = status
        self._lock.notify_all()
        kind = {
            InstanceStatus.RUNNING: VmEventKind.RUNNING,
            InstanceStatus.STOPPING: VmEventKind.STOPPING,
            InstanceStatus.TERMINATED: VmEventKind.TERMINATED,
        }.get(status)
        if kind is not None:
            self._emit(kind, vm)
        log.info("instance %s is %s", vm.name, status, extra={"instance": vm.name, "status": str(status)})

    def _system_event(self, vm: Vm, method: str, message: str) -> None:
        op = self._operations.create(method, vm, "system", system=True)
        self._operations.finish(op.name, message=message)
        self._emit(VmEventKind.SYSTEM_EVENT, vm, method)

    def _emit(self, kind: VmEventKind, vm: Vm, method: str | None = None) -> None:
        self._events.record(VmEvent.of(kind, vm, self._clock.now(), method))

    def _run(self, target: Callable[..., None], *args: object) -> None:
        if self._closing.is_set():
            return
        thread = threading.Thread(target=target, args=args, name=f"vm-{target.__name__}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _pause(self, seconds: float) -> bool:
        """Sleep unless the model is closing; False if it is."""
        return not self._closing.wait(seconds) if seconds > 0 else not self._closing.is_set()


def notice_seconds(duration: object) -> int | None:
    """A GCE ``Duration`` (``{"seconds": "120"}``) as whole seconds; None when absent or zero."""
    if not isinstance(duration, dict):
        return None
    try:
        seconds = int(str(duration.get("seconds", "0")))
    except ValueError:
        return None
    return seconds or None
