"""A fleet tick at scale: one listing, every start issued before any is awaited, the lease held throughout,
and the gateway's long-expired records pruned.

Regressions of issue 9: defect 9 (waves of 8 pools waiting on boots; one list per pool), defect 10 (the
lease expired during a long round), defect 13 (a SUSPENDED VM needs ``resume``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from spotgate.adapters.activity_merge import RETENTION
from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.clock import SystemClock
from spotgate.domain import ControlKind, ControlMessage, GatewayActivity, InstanceStatus
from spotgate.services.control_plane import ControlPlane
from tests.unit.shell_fakes import NOW, FakeCompute, FixedClock, a_fleet

TICK = ControlMessage(ControlKind.TICK, NOW)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.db")
    yield store
    store.close()


def twenty_pools() -> list[dict[str, object]]:
    zones = ["us-central1-a", "us-central1-b", "us-central1-c"]
    return [{"name": f"pool-{i:02d}", "model": f"m{i}", "spot": {"zones": zones}, "min_ready": 1} for i in range(20)]


def test_a_fleet_tick_lists_once_and_issues_every_start_before_awaiting_any(store: SqliteStore) -> None:
    fleet = a_fleet(*twenty_pools())
    issued_before_first_wait: list[int] = []

    def boot(_instance: str) -> None:
        if not issued_before_first_wait:
            issued_before_first_wait.append(len(compute.started))

    compute = FakeCompute(fleet, boot)
    outcome = ControlPlane(fleet, store, compute, None, FixedClock()).handle(TICK)
    assert compute.list_calls == 1
    assert len(compute.started) == 20
    assert issued_before_first_wait == [20]
    assert len(outcome.pools) == 20


def test_the_lease_is_renewed_while_a_round_outlasts_its_ttl(store: SqliteStore) -> None:
    fleet = a_fleet()
    clock = SystemClock()
    ttl = timedelta(seconds=0.6)
    taken_by_other: list[bool] = []

    def slow_start_call(_instance: str) -> None:  # the round is still issuing after three TTLs
        finished = threading.Event()
        finished.wait(3 * ttl.total_seconds())
        taken_by_other.append(store.acquire_lease("chat", "other-worker", clock.now(), ttl))

    compute = FakeCompute(fleet)
    compute.on_start_call = slow_start_call
    ControlPlane(fleet, store, compute, None, clock, lease_ttl=ttl).handle(
        ControlMessage(ControlKind.WAKE, clock.now(), pool="chat")
    )
    assert compute.started == ["chat-a-1"]
    assert taken_by_other == [False]


def test_a_suspended_vm_is_resumed_not_started(store: SqliteStore) -> None:
    fleet = a_fleet({"name": "chat", "model": "m", "spot": {"zones": ["us-central1-a"]}, "min_ready": 1})
    compute = FakeCompute(fleet)
    compute.vms["chat-a-1"] = replace(compute.vms["chat-a-1"], status=InstanceStatus.SUSPENDED)
    ControlPlane(fleet, store, compute, None, FixedClock()).handle(TICK)
    assert compute.resumed == ["chat-a-1"]


def test_a_fleet_tick_prunes_gateway_records_long_expired(store: SqliteStore) -> None:
    fleet = a_fleet()
    dead, flush = NOW - RETENTION - timedelta(minutes=1), timedelta(seconds=15)
    store.record_activity(GatewayActivity("chat", "gone", dead - flush, dead, backend_inflight={"chat-a": 1}))
    store.put_key_inflight("gone", {"k-1": 1}, dead)
    store.record_activity(GatewayActivity("chat", "live", NOW, NOW + flush, inflight=1))
    ControlPlane(fleet, store, FakeCompute(fleet), None, FixedClock()).handle(TICK)
    when_gone_was_live = dead - timedelta(seconds=1)
    assert store.get_activity("chat", when_gone_was_live).backend_inflight == {}
    assert store.key_inflight(when_gone_was_live, exclude="") == {}
    assert store.get_activity("chat", NOW).inflight == 1
