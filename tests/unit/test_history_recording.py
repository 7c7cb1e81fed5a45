"""What the control plane writes to a pool's history: the pure diff of a round, and the shell writing it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import (
    Activity,
    BackendKind,
    ComputeEvent,
    ComputeEventKind,
    ControlKind,
    ControlMessage,
    HistoryKind,
    HistoryRecord,
    Instance,
    InstanceStatus,
    Observed,
    ProvisioningModel,
    Route,
    RouteState,
    SetOverflow,
    SetRoute,
    StartInstance,
)
from spotgate.errors import CapacityError
from spotgate.history.recording import Written, round_records
from spotgate.services.control_plane import ControlPlane
from tests.unit.shell_fakes import NOW, FakeCompute, FixedClock, a_fleet

ZONE = "us-central1-a"
VM = Instance("chat-a-1", ZONE, InstanceStatus.RUNNING, ProvisioningModel.SPOT)
READY = Route("chat", "chat-a-1", BackendKind.VM, "http://10.0.0.2:8000", RouteState.READY, "ready", NOW, ZONE)


def seen(*vms: Instance, routes: tuple[Route, ...] = (), total: int = 0, busy: int = 0) -> Observed:
    inflight = {"chat-a-1": 1} if busy else {}
    return Observed(vms, routes, Activity("chat", requests_total=total, backend_inflight=inflight))


def kinds(records: list[HistoryRecord]) -> list[tuple[str, str, str]]:
    return [(r.kind.value, r.subject, str(r.count) if r.kind is HistoryKind.BUSY else r.state) for r in records]


def after_one_round(observed: Observed) -> Written:
    _, written = round_records("chat", NOW, Written(), event=None, observed=observed, applied=(), stockouts=())
    return written


@pytest.mark.parametrize(
    ("before", "kwargs", "expected"),
    [
        pytest.param(
            Written(),
            {"observed": seen(VM, routes=(READY,), total=3)},
            [("vm", "chat-a-1", "RUNNING"), ("route", "chat-a-1", "ready"), ("busy", "gateway", "0")],
            id="a-first-round-writes-the-pool-whole",
        ),
        pytest.param(
            after_one_round(seen(VM, routes=(READY,), total=3)),
            {"observed": seen(VM, routes=(READY,), total=3)},
            [],
            id="nothing-changed-nothing-written",
        ),
        pytest.param(
            after_one_round(seen(VM, routes=(READY,), total=3)),
            {"observed": seen(VM, routes=(READY,), total=9)},
            [],
            id="a-request-count-alone-writes-nothing-the-gateway-counts-requests",
        ),
        pytest.param(
            after_one_round(seen(VM, routes=(READY,), total=3)),
            {"observed": seen(replace(VM, status=InstanceStatus.STOPPING), routes=(READY,), total=5, busy=1)},
            [("vm", "chat-a-1", "STOPPING"), ("busy", "gateway", "1")],
            id="only-changes-are-written",
        ),
        pytest.param(
            after_one_round(seen(VM, routes=(READY,))),
            {
                "observed": seen(VM, routes=(READY,)),
                "event": ComputeEvent(ComputeEventKind.PREEMPTED, "p", ZONE, "chat-a-1", NOW - timedelta(seconds=3)),
                "applied": (
                    SetRoute(replace(READY, state=RouteState.DRAINING, reason="preempted")),
                    SetOverflow("chat-overflow", 1, "no ready VM"),
                ),
                "stockouts": (StartInstance("chat-b-1", "us-central1-b", ProvisioningModel.SPOT, "below min"),),
            },
            [
                ("preempted", "chat-a-1", ""),
                ("stockout", "chat-b-1", ""),
                ("route", "chat-a-1", "draining"),
                ("overflow", "chat-overflow", "1"),
            ],
            id="preemption-stockout-route-and-overflow-changes-are-written",
        ),
        pytest.param(
            replace(after_one_round(seen(VM)), at=NOW - timedelta(hours=1)),
            {"observed": seen(VM)},
            [("vm", "chat-a-1", "RUNNING"), ("busy", "gateway", "0")],
            id="an-hour-after-the-last-whole-write-the-pool-is-written-whole-again",
        ),
    ],
)
def test_a_round_writes_what_changed(
    before: Written, kwargs: dict[str, object], expected: list[tuple[str, str, str]]
) -> None:
    args: dict[str, object] = {"event": None, "observed": None, "applied": (), "stockouts": ()} | kwargs
    records, _ = round_records("chat", NOW, before, **args)  # type: ignore[arg-type]
    assert kinds(records) == expected


def test_a_vm_change_carries_the_cause_the_control_plane_knew() -> None:
    start = StartInstance("chat-a-1", ZONE, ProvisioningModel.SPOT, "below min_ready")
    _, written = round_records("chat", NOW, Written(), event=None, observed=seen(), applied=(start,), stockouts=())
    booting = seen(replace(VM, status=InstanceStatus.PROVISIONING))
    records, _ = round_records("chat", NOW, written, event=None, observed=booting, applied=(), stockouts=())
    assert [(r.state, r.cause) for r in records if r.kind is HistoryKind.VM] == [
        ("PROVISIONING", "start: below min_ready")
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.db")
    yield store
    store.close()


def test_the_control_plane_writes_vm_changes_and_stockouts_to_history(store: SqliteStore) -> None:
    def stockout_in_a(instance: str) -> None:
        if instance == "chat-a-1":
            compute.vms[instance] = replace(compute.vms[instance], status=InstanceStatus.TERMINATED)
            raise CapacityError("no SPOT L4 in a", zone=ZONE, code="ZONE_RESOURCE_POOL_EXHAUSTED")

    fleet = a_fleet()
    compute = FakeCompute(fleet, stockout_in_a)
    clock = FixedClock()
    control_plane = ControlPlane(fleet, store, compute, None, clock)
    control_plane.handle(ControlMessage(ControlKind.TICK, NOW, pool="chat"))
    clock.at = NOW + timedelta(seconds=30)
    control_plane.handle(ControlMessage(ControlKind.TICK, NOW, pool="chat"))

    history = store.list_history("chat", NOW)
    assert [(r.subject, r.zone) for r in history if r.kind is HistoryKind.STOCKOUT] == [("chat-a-1", ZONE)]
    later = [(r.subject, r.state, r.cause) for r in history if r.kind is HistoryKind.VM and r.at > NOW]
    assert [(s, st) for s, st, c in later if c.startswith("start: ")] == [("chat-b-1", "PROVISIONING")], later
