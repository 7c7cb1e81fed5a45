"""The compute model's lifecycle rules, with a fake engine host (no processes): races, failures, events."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from spotgate.domain import InstanceStatus
from spotgate.errors import NotFoundError, UnavailableError
from spotgate.sandbox.compute.model import ComputeModel, NotReadyError, VmEventKind
from spotgate.sandbox.compute.records import Vm
from tests.sandbox.sandbox_support import a_fleet, wait_until


class FakeEngines:
    """An EngineHost that records boots and halts; ``gate`` holds boots, ``fail`` makes them fail."""

    def __init__(self) -> None:
        self.booted: list[str] = []
        self.halted: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def boot(self, vm: Vm, since: float | None = None) -> str:
        self.gate.wait(10)
        if self.fail:
            raise UnavailableError("engine crashed while loading")
        self.booted.append(vm.name)
        return f"http://{vm.network_ip}:{vm.engine_port}"

    def halt(self, instance: str) -> None:
        self.halted.append(instance)


@pytest.fixture
def engines() -> FakeEngines:
    return FakeEngines()


@pytest.fixture
def model(engines: FakeEngines) -> Iterator[ComputeModel]:
    fleet = a_fleet(overflow=False)
    ips = {vm.name: f"127.9.9.{10 + i}" for i, vm in enumerate(v for p in fleet.pools for v in p.vms)}
    compute = ComputeModel(fleet, ips, engines)
    try:
        yield compute
    finally:
        compute.close()


def status(model: ComputeModel, name: str) -> InstanceStatus:
    return model.find(name).status


def test_start_boots_through_staging_to_running_with_the_engine_url(model: ComputeModel) -> None:
    op = model.start("us-central1-b", "chat-b-1", "tester")
    done = model.wait("us-central1-b", op.name, timeout=10)
    vm = model.find("chat-b-1")
    assert done.done
    assert done.failure is None
    assert vm.status is InstanceStatus.RUNNING
    assert vm.engine_url == "http://127.9.9.11:8000"
    assert vm.last_start is not None


def test_stop_during_boot_wins_and_the_late_engine_is_halted(model: ComputeModel, engines: FakeEngines) -> None:
    engines.gate.clear()  # the engine is "loading" when the stop arrives
    start = model.start("us-central1-b", "chat-b-1", "tester")
    assert wait_until(lambda: status(model, "chat-b-1") is InstanceStatus.STAGING)
    stop = model.stop("us-central1-b", "chat-b-1", "tester")
    engines.gate.set()
    model.wait("us-central1-b", stop.name, timeout=10)
    model.wait("us-central1-b", start.name, timeout=10)
    assert status(model, "chat-b-1") is InstanceStatus.TERMINATED
    assert wait_until(lambda: "chat-b-1" in engines.halted)


def test_an_engine_that_fails_to_start_leaves_the_vm_terminated(model: ComputeModel, engines: FakeEngines) -> None:
    engines.fail = True
    op = model.start("us-central1-b", "chat-b-1", "tester")
    model.wait("us-central1-b", op.name, timeout=10)
    assert status(model, "chat-b-1") is InstanceStatus.TERMINATED


def test_preemption_notice_then_termination_in_event_order(model: ComputeModel, engines: FakeEngines) -> None:
    heard: list[tuple[VmEventKind, str | None]] = []
    model.add_listener(lambda e: heard.append((e.kind, e.method)))
    model.wait("us-central1-c", model.start("us-central1-c", "chat-c-1", "t").name, timeout=10)
    model.preempt("chat-c-1")
    assert wait_until(lambda: status(model, "chat-c-1") is InstanceStatus.TERMINATED)
    assert wait_until(lambda: len(heard) == 5)
    assert heard == [
        (VmEventKind.RUNNING, None),
        (VmEventKind.PREEMPT_NOTICE, None),
        (VmEventKind.SYSTEM_EVENT, "compute.instances.preempted"),
        (VmEventKind.STOPPING, None),
        (VmEventKind.TERMINATED, None),
    ]
    assert "chat-c-1" in engines.halted


def test_a_failing_listener_does_not_stop_the_others(model: ComputeModel) -> None:
    heard: list[VmEventKind] = []

    def broken(_event: object) -> None:
        raise RuntimeError("listener bug")

    model.add_listener(broken)
    model.add_listener(lambda e: heard.append(e.kind))
    model.wait("us-central1-b", model.start("us-central1-b", "embed-b-1", "t").name, timeout=10)
    assert wait_until(lambda: heard == [VmEventKind.RUNNING])


@pytest.mark.parametrize(
    ("action", "error"),
    [
        pytest.param(lambda m: m.preempt("chat-a-1"), NotReadyError, id="preempt-terminated"),
        pytest.param(lambda m: m.maintenance("chat-a-1"), NotReadyError, id="maintenance-terminated"),
        pytest.param(lambda m: m.start("us-central1-b", "chat-a-1", "t"), NotFoundError, id="wrong-zone"),
        pytest.param(lambda m: m.stock_out("us-east1-b", 5), NotFoundError, id="zone-without-vms"),
        pytest.param(lambda m: m.operation("us-central1-a", "operation-1"), NotFoundError, id="unknown-operation"),
    ],
)
def test_refusals(model: ComputeModel, action: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        action(model)  # type: ignore[operator]


def test_stockout_names_the_zones_still_available(model: ComputeModel) -> None:
    model.stock_out("us-central1-a", 30)
    model.stock_out("us-central1-c", 30)
    op = model.wait("us-central1-a", model.start("us-central1-a", "chat-a-1", "t").name, timeout=10)
    assert op.failure is not None
    assert op.failure.code == "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"
    assert op.failure.details[0]["errorInfo"]["metadatas"]["zonesAvailable"] == "us-central1-b"  # type: ignore[index]
    assert set(model.stockouts()) == {"us-central1-a", "us-central1-c"}
    assert status(model, "chat-a-1") is InstanceStatus.TERMINATED


def test_a_spot_stockout_leaves_on_demand_capacity_alone(model: ComputeModel) -> None:
    model.stock_out("us-central1-a", 30)
    op = model.wait("us-central1-a", model.start("us-central1-a", "chat-standard", "t").name, timeout=10)
    assert op.failure is None
    assert status(model, "chat-standard") is InstanceStatus.RUNNING
