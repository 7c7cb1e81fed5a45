"""Pool health for the dashboard and alerts (issue 13): what each reconcile logs, and the lines metrics count."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.core.health import pool_health
from spotgate.domain import Activity, ControlKind, ControlMessage, InstanceStatus, Override, OverrideKind, RouteState
from spotgate.errors import CapacityError
from spotgate.services.control_plane import ControlPlane
from tests.unit import shell_fakes
from tests.unit.builders import NOW, POOL, a_pool_spec, a_route, a_state, ago, all_vms, an_instance, later, observed

ACTIVE_WEEKDAYS = {
    "timezone": "UTC",
    "windows": [{"days": ["mon"], "start": "08:00", "end": "18:00"}],
}  # NOW: Mon 12:00
NIGHTS = {"timezone": "UTC", "windows": [{"days": ["mon"], "start": "20:00", "end": "23:00"}]}


def running(name: str, **kw: Any) -> Any:
    return an_instance(name, InstanceStatus.RUNNING, **kw)


CASES = [
    pytest.param(
        {},
        observed(),
        a_state(),
        {"ready_backends": 0, "expects_ready": False, "overflow_warm": 0, "idle_vms": 0},
        id="idle-pool-min-0",
    ),
    pytest.param(
        {"min_ready": 1},
        observed(),
        a_state(),
        {"expects_ready": True, "ready_backends": 0},
        id="should-serve-has-nothing",
    ),
    pytest.param(
        {"min_ready": 1, "active_hours": NIGHTS},
        observed(),
        a_state(),
        {"expects_ready": False},
        id="outside-active-hours",
    ),
    pytest.param(
        {"min_ready": 1, "active_hours": ACTIVE_WEEKDAYS},
        observed(),
        a_state(),
        {"expects_ready": True},
        id="inside-active-hours",
    ),
    pytest.param(
        {"min_ready": 1},
        observed(),
        a_state(override=Override(OverrideKind.SLEEP, later(hours=8), ago(hours=1))),
        {"expects_ready": False},
        id="put-to-sleep",
    ),
    pytest.param(
        {},
        observed(routes=[a_route("chat-a-1"), a_route("chat-b-1", RouteState.DRAINING)]),
        a_state(),
        {"ready_backends": 1},
        id="draining-is-not-ready",
    ),
    pytest.param({"overflow": True}, observed(overflow_min=1), a_state(), {"overflow_warm": 1}, id="overflow-warm"),
    pytest.param(
        {},
        observed(all_vms(chat_a_1=running("chat-a-1", last_start=ago(hours=1)))),
        a_state(),
        {"idle_vms": 1},
        id="never-used-vm-past-idle",
    ),
    pytest.param(
        {},
        observed(all_vms(chat_a_1=running("chat-a-1", last_start=ago(minutes=5)))),
        a_state(),
        {"idle_vms": 0},
        id="just-started",
    ),
    pytest.param(
        {"min_ready": 1},
        observed(all_vms(chat_a_1=running("chat-a-1", last_start=ago(hours=1)))),
        a_state(),
        {"idle_vms": 0},
        id="the-min-ready-vm-may-idle",
    ),
    pytest.param(
        {},
        observed(
            all_vms(
                chat_a_1=running("chat-a-1", last_start=ago(hours=2)),
                chat_b_1=running("chat-b-1", last_start=ago(hours=2)),
            ),
            activity=Activity(
                POOL, backend_inflight={"chat-a-1": 1}, backend_last_finished={"chat-b-1": ago(minutes=3)}
            ),
        ),
        a_state(),
        {"idle_vms": 0},
        id="busy-or-recently-used",
    ),
]


@pytest.mark.parametrize(("spec", "seen", "state", "expected"), CASES)
def test_pool_health(spec: dict[str, Any], seen: Any, state: Any, expected: dict[str, Any]) -> None:
    health = pool_health(a_pool_spec(**spec), seen, state, NOW)

    assert {k: health[k] for k in expected} == expected


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.db")
    yield store
    store.close()


def _fields(caplog: pytest.LogCaptureFixture, prefix: str) -> list[dict[str, Any]]:
    return [r.__dict__ for r in caplog.records if r.getMessage().startswith(prefix)]


def test_the_plan_line_carries_health_and_every_action_its_own_line(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    fleet = shell_fakes.a_fleet()
    caplog.set_level(logging.INFO, logger="spotgate")

    ControlPlane(
        fleet, store, shell_fakes.FakeCompute(fleet), None, shell_fakes.FixedClock(), sleep=lambda _s: None
    ).handle(ControlMessage(kind=ControlKind.WAKE, at=shell_fakes.NOW, pool="chat"))

    (plan, *_) = _fields(caplog, "plan for chat")
    assert {k: plan[k] for k in ("pool", "ready_backends", "expects_ready", "overflow_warm", "idle_vms")} == {
        "pool": "chat", "ready_backends": 0, "expects_ready": True, "overflow_warm": 0, "idle_vms": 0
    }  # fmt: skip
    actions = _fields(caplog, "action issued")
    assert [(a["pool"], a["action"]) for a in actions] == [("chat", "start")]
    assert actions[0]["target"].startswith("chat-")


def test_a_failed_start_logs_its_reason(store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    fleet = shell_fakes.a_fleet()
    compute = shell_fakes.FakeCompute(fleet)
    stockout = CapacityError("no L4", zone="us-central1-a", code="ZONE_RESOURCE_POOL_EXHAUSTED")
    compute.refuse = {f"start:{vm.name}": [stockout] for pool in fleet.pools for vm in pool.vms}
    caplog.set_level(logging.INFO, logger="spotgate")

    ControlPlane(fleet, store, compute, None, shell_fakes.FixedClock(), sleep=lambda _s: None).handle(
        ControlMessage(kind=ControlKind.WAKE, at=shell_fakes.NOW, pool="chat")
    )

    failed = _fields(caplog, "action failed") + _fields(caplog, "start failed")
    assert failed
    assert {(f["pool"], f["reason"]) for f in failed} == {("chat", "ZONE_RESOURCE_POOL_EXHAUSTED")}
