"""Failures stay local in the control plane's shell (DESIGN §2.3), each case a regression of issue 9.

One failed action never prevents the other actions nor the commit of the folded event; a rate limit backs
off and retries; an unanswered optional dependency is "unknown"; one pool's error never fails the tick;
events are routed by VM name *and zone*.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import (
    BackendKind,
    ComputeEvent,
    ComputeEventKind,
    ControlKind,
    ControlMessage,
    NoticeKind,
    Route,
    RouteState,
)
from spotgate.errors import (
    NotFoundError,
    NotReadyError,
    PermanentError,
    PermissionDeniedError,
    RateLimitError,
    SpotgateError,
    UnavailableError,
)
from spotgate.services.control_plane import RATE_LIMIT_ATTEMPTS, ControlPlane
from tests.unit.shell_fakes import NOW, FakeCompute, FakeOverflow, FixedClock, a_fleet


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.db")
    yield store
    store.close()


TWO_READY = {
    "name": "chat",
    "model": "m",
    "spot": {"zones": ["us-central1-a", "us-central1-b"]},
    "min_ready": 2,
    "max_ready": 2,
}
WAKE = ControlMessage(kind=ControlKind.WAKE, at=NOW, pool="chat")


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(PermissionDeniedError("403 forbidden"), id="permanent"),
        pytest.param(NotReadyError("400 resourceNotReady"), id="not-ready"),
        pytest.param(RateLimitError("403 rateLimitExceeded"), id="rate-limit-exhausted"),
    ],
)
def test_a_failed_start_neither_skips_the_other_actions_nor_loses_the_folded_event(
    store: SqliteStore, error: SpotgateError
) -> None:
    fleet = a_fleet(TWO_READY)
    compute = FakeCompute(fleet)
    compute.refuse["start:chat-a-1"] = [error] * RATE_LIMIT_ATTEMPTS
    ControlPlane(fleet, store, compute, None, FixedClock(), sleep=lambda _s: None).handle(WAKE)
    assert compute.started == ["chat-b-1"]
    state = store.get_pool_state("chat")
    assert state.generation >= 1
    assert state.last_wake_at == NOW  # the folded event was committed
    assert "chat-a-1" not in state.start_attempts  # not believed to be booting: the next round retries it
    assert any(e.action == "error" and e.target == "chat-a-1" for e in store.recent_events("chat"))


def test_a_rate_limited_start_backs_off_and_is_retried(store: SqliteStore) -> None:
    fleet = a_fleet()
    compute = FakeCompute(fleet)
    compute.refuse["start:chat-a-1"] = [RateLimitError("403 rateLimitExceeded")] * 2
    slept: list[float] = []
    ControlPlane(fleet, store, compute, None, FixedClock(), sleep=slept.append).handle(WAKE)
    assert compute.started == ["chat-a-1"]
    assert len(slept) == 2
    assert slept[0] <= 1.0
    assert slept[1] <= 2.0


def test_a_ready_notice_is_committed_even_when_compute_cannot_be_listed(store: SqliteStore) -> None:
    fleet = a_fleet()
    compute = FakeCompute(fleet)
    compute.refuse["list:chat"] = [UnavailableError("503 listing")]
    ready = ControlMessage(kind=ControlKind.READY, at=NOW, pool="chat", instance="chat-a-1", zone="us-central1-a")
    with pytest.raises(UnavailableError):  # the delivery is retried ...
        ControlPlane(fleet, store, compute, None, FixedClock()).handle(ready)
    notice = store.get_pool_state("chat").notices["chat-a-1"]  # ... and the notice is already kept
    assert notice.kind is NoticeKind.READY


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(UnavailableError("503"), id="503"),
        pytest.param(RateLimitError("429"), id="429"),
        pytest.param(PermissionDeniedError("403"), id="403"),
        pytest.param(NotFoundError("404 renamed service"), id="404"),
    ],
)
def test_an_unreadable_overflow_service_is_unknown_and_vms_still_start(
    store: SqliteStore, error: SpotgateError
) -> None:
    pool = {
        "name": "chat",
        "model": "m",
        "spot": {"zones": ["us-central1-a"]},
        "min_ready": 1,
        "overflow": {"service": "chat-overflow", "url": "https://chat-overflow.example.run.app"},
    }
    fleet = a_fleet(pool)
    compute = FakeCompute(fleet)
    ControlPlane(fleet, store, compute, FakeOverflow(refuse_reads=error), FixedClock()).handle(WAKE)
    assert compute.started == ["chat-a-1"]


def test_one_pools_error_never_fails_the_fleet_tick(store: SqliteStore) -> None:
    fleet = a_fleet(
        {"name": "alpha", "model": "a", "spot": {"zones": ["us-central1-a"]}, "min_ready": 1},
        {"name": "beta", "model": "b", "spot": {"zones": ["us-central1-b"]}, "min_ready": 1},
    )
    compute = FakeCompute(fleet)
    store_commit = store.commit_pool_state

    def broken_for_alpha(state, expected):  # type: ignore[no-untyped-def]
        if state.pool == "alpha":
            raise PermanentError("alpha's document is corrupt")
        return store_commit(state, expected)

    store.commit_pool_state = broken_for_alpha  # type: ignore[method-assign]
    outcome = ControlPlane(fleet, store, compute, None, FixedClock()).handle(ControlMessage(ControlKind.TICK, NOW))
    assert "beta-b-1" in compute.started
    assert store.get_pool_state("beta").generation >= 1
    assert outcome.pools == ("alpha", "beta")


def _a_ready_route(backend: str, zone: str) -> Route:
    return Route("chat", backend, BackendKind.VM, "http://10.0.0.2:8000", RouteState.READY, "ready", NOW, zone)


def test_a_preemption_of_a_same_named_vm_in_another_zone_leaves_our_route_alone(store: SqliteStore) -> None:
    fleet = a_fleet()
    store.put_routes([_a_ready_route("chat-a-1", "us-central1-a")])
    foreign = ComputeEvent(ComputeEventKind.PREEMPTED, "spotgate-unit", "europe-west4-a", "chat-a-1", NOW)
    outcome = ControlPlane(fleet, store, FakeCompute(fleet), None, FixedClock()).handle(foreign)
    assert outcome.pools == ()
    (route,) = store.list_routes("chat")
    assert route.state is RouteState.READY
    assert "chat-a-1" not in store.get_pool_state("chat").notices


def test_an_event_that_is_not_a_departure_does_not_read_the_routing_table_twice(store: SqliteStore) -> None:
    fleet = a_fleet()
    reads: list[str | None] = []
    list_routes = store.list_routes

    def counting(pool: str | None = None) -> list[Route]:
        reads.append(pool)
        return list_routes(pool)

    store.list_routes = counting  # type: ignore[method-assign]
    ControlPlane(fleet, store, FakeCompute(fleet), None, FixedClock()).handle(WAKE)
    assert reads == ["chat"]  # the reconcile's gather only; no fast-path read for a wake


NOTICE = {"name": "chat", "model": "m", "spot": {"zones": ["us-central1-a"]}, "vms": [
    {"name": "chat-std", "zone": "us-central1-b", "provisioning_model": "STANDARD"}], "min_ready": 1,
    "preemption_notice": "120s", "fallback": {"enabled": True, "after": "0s"}}  # fmt: skip


def test_a_spot_vm_gets_the_pools_preemption_notice_before_it_starts(store: SqliteStore) -> None:
    fleet = a_fleet(NOTICE)
    compute = FakeCompute(fleet)
    ControlPlane(fleet, store, compute, None, FixedClock(), sleep=lambda _s: None).handle(WAKE)
    assert compute.calls[:2] == ["notice:chat-a-1", "start:chat-a-1"]
    assert compute.notices == {"chat-a-1": timedelta(seconds=120)}  # never on the STANDARD VM


def test_a_vm_that_cannot_get_the_notice_still_starts(store: SqliteStore) -> None:
    fleet = a_fleet(NOTICE)
    compute = FakeCompute(fleet)
    compute.refuse["notice:chat-a-1"] = [NotReadyError("400 resourceNotReady")]
    ControlPlane(fleet, store, compute, None, FixedClock(), sleep=lambda _s: None).handle(WAKE)
    assert "start:chat-a-1" in compute.calls
    assert compute.notices == {}
