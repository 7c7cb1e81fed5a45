"""In-memory fakes of the control plane's ports, for shell tests: Compute with scripted refusals, Overflow.

They raise only ``spotgate.errors`` (as real adapters do) and count their calls, so a test can say how many
list calls a tick made or which starts were issued before any was awaited.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from spotgate.domain import Instance, InstanceStatus
from spotgate.errors import SpotgateError
from spotgate.fleet import FleetConfig, parse_fleet

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class FixedClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


class FakeOperation:
    def __init__(self, on_wait: Callable[[], None]) -> None:
        self._on_wait = on_wait

    def wait(self) -> None:
        self._on_wait()


class FakeCompute:
    """The fleet's VMs, all TERMINATED at first. ``refuse[verb:name]`` raises once per listed error.

    ``on_start_wait(name)`` runs when a start is awaited (raise there to fail the operation).
    """

    def __init__(self, fleet: FleetConfig, on_start_wait: Callable[[str], None] = lambda _name: None) -> None:
        self.vms = {
            vm.name: Instance(
                vm.name, vm.zone, InstanceStatus.TERMINATED, vm.provisioning_model, labels={"spotgate-pool": pool.name}
            )
            for pool in fleet.pools
            for vm in pool.vms
        }
        self.started: list[str] = []
        self.resumed: list[str] = []
        self.on_start_call: Callable[[str], None] | None = None
        self.awaited: list[str] = []
        self.list_calls = 0
        self.notices: dict[str, timedelta] = {}
        self.calls: list[str] = []  # notices and starts, in order
        self.refuse: dict[str, list[SpotgateError]] = {}
        self._on_start_wait = on_start_wait
        self._lock = threading.Lock()

    def _maybe_refuse(self, key: str) -> None:
        with self._lock:
            queue = self.refuse.get(key)
            error = queue.pop(0) if queue else None
        if error is not None:
            raise error

    def list_instances(self, pool: str) -> list[Instance]:
        with self._lock:
            self.list_calls += 1
        self._maybe_refuse(f"list:{pool}")
        return sorted((vm for vm in self.vms.values() if vm.labels["spotgate-pool"] == pool), key=lambda vm: vm.name)

    def set_preemption_notice(self, zone: str, instance: str, notice: timedelta) -> bool:
        self._maybe_refuse(f"notice:{instance}")
        with self._lock:
            changed = self.notices.get(instance) != notice
            self.notices[instance] = notice
            self.calls.append(f"notice:{instance}")
        return changed

    def list_fleet(self) -> dict[str, list[Instance]]:
        with self._lock:
            self.list_calls += 1
        self._maybe_refuse("list:*")
        by_pool: dict[str, list[Instance]] = {}
        for vm in sorted(self.vms.values(), key=lambda vm: vm.name):
            by_pool.setdefault(vm.labels["spotgate-pool"], []).append(vm)
        return by_pool

    def resume(self, zone: str, instance: str) -> FakeOperation:
        with self._lock:
            self.resumed.append(instance)
        return self.start(zone, instance)

    def start(self, zone: str, instance: str) -> FakeOperation:
        if self.on_start_call is not None:
            self.on_start_call(instance)
        self._maybe_refuse(f"start:{instance}")
        with self._lock:
            self.calls.append(f"start:{instance}")
        with self._lock:
            self.started.append(instance)
            self.vms[instance] = replace(self.vms[instance], status=InstanceStatus.PROVISIONING)

        def wait() -> None:
            with self._lock:
                self.awaited.append(instance)
            self._on_start_wait(instance)

        return FakeOperation(wait)

    def stop(self, zone: str, instance: str) -> FakeOperation:
        self._maybe_refuse(f"stop:{instance}")
        with self._lock:
            self.vms[instance] = replace(self.vms[instance], status=InstanceStatus.TERMINATED)
        return FakeOperation(lambda: None)


class FakeOverflow:
    """Cloud Run min instances per service; ``refuse_reads`` makes every read raise that error."""

    def __init__(self, refuse_reads: SpotgateError | None = None) -> None:
        self.min_instances: dict[str, int] = {}
        self.refuse_reads = refuse_reads

    def get_min_instances(self, service: str) -> int:
        if self.refuse_reads is not None:
            raise self.refuse_reads
        return self.min_instances.get(service, 0)

    def set_min_instances(self, service: str, count: int) -> None:
        self.min_instances[service] = count


def a_fleet(*pools: dict[str, object]) -> FleetConfig:
    """A fleet of the given pool dicts; by default one pool ``chat`` over zones a and b with min_ready 1."""
    default = {"name": "chat", "model": "m", "spot": {"zones": ["us-central1-a", "us-central1-b"]}, "min_ready": 1}
    return parse_fleet({"project": "spotgate-unit", "pools": list(pools) or [default]})
