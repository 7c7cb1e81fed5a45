"""The control plane's shell with a fake Compute: what it holds while it waits, and how a failed start replans."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import ControlKind, ControlMessage, Instance, InstanceStatus, Stockout
from spotgate.errors import CapacityError
from spotgate.fleet import FleetConfig, parse_fleet
from spotgate.services.control_plane import ControlPlane

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW


class FakeOperation:
    def __init__(self, on_wait: Callable[[], None]) -> None:
        self._on_wait = on_wait

    def wait(self) -> None:
        self._on_wait()


class FakeCompute:
    """VMs in memory; ``on_start_wait(name)`` runs when the control plane waits on that VM's start."""

    def __init__(self, fleet: FleetConfig, on_start_wait: Callable[[str], None]) -> None:
        self.vms = {
            vm.name: Instance(
                vm.name, vm.zone, InstanceStatus.TERMINATED, vm.provisioning_model, labels={"spotgate-pool": pool.name}
            )
            for pool in fleet.pools
            for vm in pool.vms
        }
        self.started: list[str] = []
        self._on_start_wait = on_start_wait

    def list_instances(self, pool: str) -> list[Instance]:
        return sorted((vm for vm in self.vms.values() if vm.labels["spotgate-pool"] == pool), key=lambda vm: vm.name)

    def list_fleet(self) -> dict[str, list[Instance]]:
        return {pool: self.list_instances(pool) for pool in {vm.labels["spotgate-pool"] for vm in self.vms.values()}}

    def start(self, zone: str, instance: str) -> FakeOperation:
        self.started.append(instance)
        self.vms[instance] = replace(self.vms[instance], status=InstanceStatus.PROVISIONING)

        def wait() -> None:
            self._on_start_wait(instance)

        return FakeOperation(wait)

    def stop(self, zone: str, instance: str) -> FakeOperation:
        self.vms[instance] = replace(self.vms[instance], status=InstanceStatus.TERMINATED)
        return FakeOperation(lambda: None)


def a_fleet() -> FleetConfig:
    return parse_fleet(
        {
            "project": "spotgate-unit",
            "pools": [
                {"name": "chat", "model": "m", "spot": {"zones": ["us-central1-a", "us-central1-b"]}, "min_ready": 1}
            ],
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.db")
    yield store
    store.close()


TICK = ControlMessage(kind=ControlKind.TICK, at=NOW, pool="chat")


def test_the_pool_lease_is_free_while_a_start_is_awaited(store: SqliteStore) -> None:
    seen: list[bool] = []

    def probe(_instance: str) -> None:  # another worker arrives while the VM boots
        seen.append(store.acquire_lease("chat", "other-worker", NOW, timedelta(seconds=60)))
        store.release_lease("chat", "other-worker")

    compute = FakeCompute(a_fleet(), probe)
    ControlPlane(a_fleet(), store, compute, None, FixedClock()).handle(TICK)
    assert compute.started == ["chat-a-1"]
    assert seen == [True]


def test_a_start_that_fails_on_capacity_moves_to_another_zone_in_the_same_call(store: SqliteStore) -> None:
    def stockout_in_a(instance: str) -> None:
        if instance == "chat-a-1":
            compute.vms[instance] = replace(compute.vms[instance], status=InstanceStatus.TERMINATED)
            raise CapacityError("no SPOT L4 in a", zone="us-central1-a", code="ZONE_RESOURCE_POOL_EXHAUSTED")

    compute = FakeCompute(a_fleet(), stockout_in_a)
    ControlPlane(a_fleet(), store, compute, None, FixedClock()).handle(TICK)
    assert compute.started == ["chat-a-1", "chat-b-1"]
    state = store.get_pool_state("chat")
    assert state.stockouts["us-central1-a"] > NOW
    assert state.stockout_history == (Stockout("chat-a-1", "us-central1-a", NOW),)
    actions = [(e.action, e.target) for e in reversed(store.recent_events("chat"))]
    assert ("error", "chat-a-1") in actions
    assert (
        actions.index(("start", "chat-a-1"))
        < actions.index(("error", "chat-a-1"))
        < actions.index(("start", "chat-b-1"))
    )


def test_stockouts_in_every_zone_are_remembered(store: SqliteStore) -> None:
    def always_full(instance: str) -> None:
        zone = compute.vms[instance].zone
        compute.vms[instance] = replace(compute.vms[instance], status=InstanceStatus.TERMINATED)
        raise CapacityError("full", zone=zone, code="ZONE_RESOURCE_POOL_EXHAUSTED")

    compute = FakeCompute(a_fleet(), always_full)
    ControlPlane(a_fleet(), store, compute, None, FixedClock()).handle(TICK)
    assert set(compute.started) == {"chat-a-1", "chat-b-1"}
    state = store.get_pool_state("chat")
    assert set(state.stockouts) == {"us-central1-a", "us-central1-b"}  # both zones skipped until cooldown
    assert not state.start_attempts  # nothing believed to be booting


def test_a_tick_reconciles_pools_side_by_side(store: SqliteStore) -> None:
    fleet = parse_fleet(
        {
            "project": "spotgate-unit",
            "pools": [
                {"name": "alpha", "model": "a", "spot": {"zones": ["us-central1-a"]}, "min_ready": 1},
                {"name": "beta", "model": "b", "spot": {"zones": ["us-central1-b"]}, "min_ready": 1},
            ],
        }
    )
    beta_booting = threading.Event()

    def boot(instance: str) -> None:
        if instance.startswith("beta"):
            beta_booting.set()
        else:  # alpha's VM boots until beta's start was issued too: only possible if they run side by side
            assert beta_booting.wait(timeout=10), "beta waited behind alpha's VM start"

    compute = FakeCompute(fleet, boot)
    outcome = ControlPlane(fleet, store, compute, None, FixedClock()).handle(
        ControlMessage(kind=ControlKind.TICK, at=NOW)
    )
    assert sorted(compute.started) == ["alpha-a-1", "beta-b-1"]
    assert outcome.pools == ("alpha", "beta")


def test_a_failed_start_is_not_lost_when_another_worker_holds_the_lease_briefly(store: SqliteStore) -> None:
    def stockout_while_a_tick_reconciles(instance: str) -> None:
        if instance == "chat-a-1":
            assert store.acquire_lease("chat", "tick-worker", NOW, timedelta(seconds=60))
            threading.Timer(0.3, store.release_lease, args=("chat", "tick-worker")).start()
            compute.vms[instance] = replace(compute.vms[instance], status=InstanceStatus.TERMINATED)
            raise CapacityError("no SPOT L4 in a", zone="us-central1-a", code="ZONE_RESOURCE_POOL_EXHAUSTED")

    compute = FakeCompute(a_fleet(), stockout_while_a_tick_reconciles)
    ControlPlane(a_fleet(), store, compute, None, FixedClock()).handle(TICK)
    assert compute.started == ["chat-a-1", "chat-b-1"]
    state = store.get_pool_state("chat")
    assert "us-central1-a" in state.stockouts
    assert set(state.start_attempts) == {"chat-b-1"}
