"""Scale-down drains first and never cuts a stream to save a minute; scaling has hysteresis and a minimum up
time (issue 9, defects 4, 5, 6).

Each case lists the start/stop actions of one plan exactly, and the route of the VMs it names.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from spotgate.core.planner import plan
from spotgate.domain import Activity, Observed, Override, OverrideKind, PoolState, SetRoute, StartInstance, StopInstance
from spotgate.fleet import PoolSpec
from tests.unit.builders import (
    NOW,
    POOL,
    a_pool_spec,
    a_route,
    a_state,
    ago,
    all_vms,
    an_instance,
    draining_notice,
    later,
    observed,
    ready_notice,
)

MIN1 = a_pool_spec(min_ready=1)
SLEEPING = Override(OverrideKind.SLEEP, later(hours=1), ago(minutes=1))


def traffic(
    inflight: dict[str, int] | None = None,
    started: dict[str, datetime] | None = None,
    finished: dict[str, datetime] | None = None,
    *,
    total: int | None = None,
    last_request: datetime | None = None,
    updated_at: datetime = NOW,
) -> Activity:
    """The gateway's activity: per-VM in flight, last request started and finished; ``total`` defaults to the sum."""
    per_vm = dict(inflight or {})
    return Activity(
        pool=POOL,
        last_request_at=last_request,
        inflight=sum(per_vm.values()) if total is None else total,
        backend_last_request=dict(started or {}),
        updated_at=updated_at,
        backend_inflight=per_vm,
        backend_last_finished=dict(finished or {}),
    )


def serving(*names: str, activity: Activity, since: datetime | None = None, **state: Any) -> tuple[Observed, PoolState]:
    """The named VMs RUNNING (since ``since``, default 30 minutes ago) with a ready notice and a ready route."""
    started = since or ago(minutes=30)
    vms = {n.replace("-", "_"): an_instance(n, "RUNNING", last_start=started) for n in names}
    routes = [a_route(n, "ready" if n in names else "down") for n in ("chat-a-1", "chat-b-1", "chat-c-1", "chat-std")]
    notices = {n: ready_notice(max(started, ago(minutes=25))) for n in names} | state.pop("notices", {})
    return observed(all_vms(**vms), routes=routes, activity=activity), a_state(notices=notices, **state)


def moves(spec: PoolSpec, seen: Observed, state: PoolState, at: datetime = NOW) -> list[tuple[str, str]]:
    result = plan(spec, seen, state, at)
    return [
        ("stop" if isinstance(a, StopInstance) else "start", a.instance)
        for a in result.actions
        if isinstance(a, StartInstance | StopInstance)
    ]


def routes_of(spec: PoolSpec, seen: Observed, state: PoolState, at: datetime = NOW) -> dict[str, str]:
    return {
        a.route.backend: a.route.state.value for a in plan(spec, seen, state, at).actions if isinstance(a, SetRoute)
    }


# ---- defect 5: drain first, prefer the idle VM --------------------------------------------------------------


def test_scale_down_stops_the_idle_vm_not_the_one_carrying_a_long_stream() -> None:
    """The stream on chat-a-1 started 90 s ago (its last *start*); chat-b-1 finished a short request 40 s ago."""
    activity = traffic(
        {"chat-a-1": 1}, {"chat-a-1": ago(seconds=90), "chat-b-1": ago(seconds=45)}, {"chat-b-1": ago(seconds=40)}
    )
    seen, state = serving("chat-a-1", "chat-b-1", activity=activity)
    assert moves(MIN1, seen, state) == [("stop", "chat-b-1")]


SLEEP_CASES = [
    pytest.param(
        {"override": SLEEPING},
        MIN1,
        id="sleep_override",
    ),
    pytest.param(
        {},
        a_pool_spec(min_ready=1, active_hours={"timezone": "UTC", "windows": [{"start": "09:00", "end": "11:00"}]}),
        id="end_of_active_hours",
    ),
]


@pytest.mark.parametrize(("state_fields", "spec"), SLEEP_CASES)
def test_scale_to_zero_drains_a_vm_with_streams_in_flight_instead_of_stopping_it(
    state_fields: dict[str, Any], spec: PoolSpec
) -> None:
    activity = traffic({"chat-a-1": 2}, {"chat-a-1": ago(minutes=3)})
    seen, state = serving("chat-a-1", activity=activity, **state_fields)
    result = plan(spec, seen, state, NOW)
    assert [a for a in result.actions if isinstance(a, StopInstance)] == []
    assert routes_of(spec, seen, state) == {"chat-a-1": "draining"}
    assert result.next_state.retiring == {"chat-a-1": NOW}
    assert result.requeue_after is not None


RETIRING_CASES = [
    pytest.param(
        traffic({}, {"chat-a-1": ago(minutes=3)}, {"chat-a-1": ago(seconds=31)}),
        ago(minutes=1),
        [("stop", "chat-a-1")],
        id="stopped_once_empty_and_quiet_for_the_drain_grace",
    ),
    pytest.param(
        traffic({}, {"chat-a-1": ago(minutes=3)}, {"chat-a-1": ago(seconds=10)}),
        ago(minutes=1),
        [],
        id="kept_within_the_drain_grace_after_its_last_request_finished",
    ),
    pytest.param(
        traffic({"chat-a-1": 1}, {"chat-a-1": ago(minutes=6)}),
        ago(minutes=4, seconds=59),
        [],
        id="kept_while_streaming_within_drain_timeout",
    ),
    pytest.param(
        traffic({"chat-a-1": 1}, {"chat-a-1": ago(minutes=6)}),
        ago(minutes=5),
        [("stop", "chat-a-1")],
        id="stopped_after_drain_timeout_whatever_is_in_flight",
    ),
    pytest.param(
        traffic({"chat-a-1": 1}, {"chat-a-1": ago(minutes=6)}, updated_at=ago(minutes=3)),
        ago(seconds=5),
        [("stop", "chat-a-1")],
        id="stale_activity_means_no_gateway_carries_a_request",
    ),
]


@pytest.mark.parametrize(("activity", "retiring_since", "expected"), RETIRING_CASES)
def test_a_retiring_vm(activity: Activity, retiring_since: datetime, expected: list[tuple[str, str]]) -> None:
    seen, state = serving("chat-a-1", activity=activity, override=SLEEPING, retiring={"chat-a-1": retiring_since})
    result = plan(MIN1, seen, state, NOW)
    assert moves(MIN1, seen, state) == expected
    assert result.next_state.retiring == {"chat-a-1": retiring_since}


def test_a_retiring_vm_returns_to_service_when_load_comes_back() -> None:
    activity = traffic({"chat-a-1": 5, "chat-b-1": 1}, {"chat-a-1": ago(seconds=2), "chat-b-1": ago(seconds=50)})
    seen, state = serving("chat-a-1", "chat-b-1", activity=activity, retiring={"chat-b-1": ago(minutes=1)})
    seen = replace(
        seen, routes=tuple(r if r.backend != "chat-b-1" else replace(r, state="draining") for r in seen.routes)
    )
    result = plan(MIN1, seen, state, NOW)
    assert moves(MIN1, seen, state) == []
    assert routes_of(MIN1, seen, state) == {"chat-b-1": "ready"}
    assert result.next_state.retiring == {}


def test_idle_timeout_counts_from_the_end_of_the_last_request() -> None:
    """A 20-minute stream finished a minute ago: the pool is not idle although the request *started* long ago."""
    activity = traffic({}, {"chat-a-1": ago(minutes=21)}, {"chat-a-1": ago(minutes=1)}, last_request=ago(minutes=21))
    seen, state = serving("chat-a-1", activity=activity)
    spec = a_pool_spec()
    assert moves(spec, seen, state) == []
    assert routes_of(spec, seen, state) == {}


def test_a_steady_long_stream_is_load_while_the_gateway_keeps_flushing() -> None:
    """A 20-minute stream: its request started before the idle timeout, but the fresh record says it runs."""
    activity = traffic({"chat-a-1": 1}, {"chat-a-1": ago(minutes=20)}, last_request=ago(minutes=20))
    seen, state = serving("chat-a-1", activity=activity)
    spec = a_pool_spec()
    assert moves(spec, seen, state) == []
    assert routes_of(spec, seen, state) == {}


# ---- defect 6: hysteresis and minimum up time ----------------------------------------------------------------

HYSTERESIS_CASES = [
    pytest.param(9, 1, [("start", "chat-b-1")], id="above_target_adds_a_vm"),
    pytest.param(8, 2, [], id="at_target_keeps_both"),
    pytest.param(5, 2, [], id="above_the_lower_mark_keeps_both"),
    pytest.param(4, 2, [("stop", "chat-b-1")], id="at_the_lower_mark_lets_one_go"),
    pytest.param(8, 1, [], id="at_target_one_is_enough"),
]


@pytest.mark.parametrize(("inflight", "live", "expected"), HYSTERESIS_CASES)
def test_load_scaling_has_hysteresis(inflight: int, live: int, expected: list[tuple[str, str]]) -> None:
    """target_inflight 8 adds a VM above 8 per VM; scale_down_ratio 0.5 lets one go at 4 per remaining VM."""
    names = ("chat-a-1", "chat-b-1")[:live]
    # Everything in flight runs on chat-a-1, so chat-b-1 is free to go when the load allows it.
    activity = traffic({"chat-a-1": inflight}, {"chat-a-1": ago(seconds=1)}, {"chat-b-1": ago(minutes=2)})
    seen, state = serving(*names, activity=activity)
    assert moves(MIN1, seen, state) == expected


def test_a_vm_is_not_stopped_within_its_minimum_up_time() -> None:
    activity = traffic({}, {"chat-a-1": ago(minutes=2), "chat-b-1": ago(minutes=3)})
    seen, state = serving("chat-a-1", "chat-b-1", activity=activity, since=ago(minutes=4))
    result = plan(MIN1, seen, state, NOW)
    assert moves(MIN1, seen, state) == []
    assert routes_of(MIN1, seen, state) == {}
    assert result.requeue_after is not None
    assert NOW + result.requeue_after <= later(minutes=6)
    assert moves(MIN1, seen, state, later(minutes=6)) == [("stop", "chat-b-1")]


# ---- defect 4: a VM that announced it is going away but stays RUNNING ----------------------------------------

GOING_AWAY_CASES = [
    pytest.param(ago(seconds=30), {}, [("start", "chat-b-1")], id="left_to_go_by_itself_first"),
    pytest.param(ago(minutes=2), {}, [("stop", "chat-a-1"), ("start", "chat-b-1")], id="stopped_once_empty"),
    pytest.param(ago(minutes=2), {"chat-a-1": 1}, [("start", "chat-b-1")], id="kept_while_it_finishes_a_stream"),
    pytest.param(
        ago(minutes=5), {"chat-a-1": 1}, [("stop", "chat-a-1"), ("start", "chat-b-1")], id="stopped_after_drain_timeout"
    ),
]


@pytest.mark.parametrize(("notice_at", "inflight", "expected"), GOING_AWAY_CASES)
def test_a_draining_vm_that_stays_running_is_stopped(
    notice_at: datetime, inflight: dict[str, int], expected: list[tuple[str, str]]
) -> None:
    activity = traffic(inflight, {"chat-a-1": ago(minutes=10)})
    seen, state = serving("chat-a-1", activity=activity, notices={"chat-a-1": draining_notice(notice_at)})
    assert moves(MIN1, seen, state) == expected


STOP_REASON_CASES = [
    pytest.param(
        traffic({}, {"chat-a-1": ago(minutes=3)}, {"chat-a-1": ago(minutes=2)}),
        ago(minutes=1),
        "stop chat-a-1 (SPOT, us-central1-a): scale to zero, sleep override until 2026-11-23T13:00:00Z; "
        "idle since 11:58:00Z",
        id="empty",
    ),
    pytest.param(
        traffic({"chat-a-1": 1}, {"chat-a-1": ago(minutes=6)}),
        ago(minutes=5),
        "stop chat-a-1 (SPOT, us-central1-a): scale to zero, sleep override until 2026-11-23T13:00:00Z; "
        "drain_timeout 0:05:00 passed with 1 request(s) in flight",
        id="drain_timeout",
    ),
]


@pytest.mark.parametrize(("activity", "retiring_since", "reason"), STOP_REASON_CASES)
def test_a_retiring_vm_stop_says_why(activity: Activity, retiring_since: datetime, reason: str) -> None:
    seen, state = serving("chat-a-1", activity=activity, override=SLEEPING, retiring={"chat-a-1": retiring_since})
    (stop,) = [a for a in plan(MIN1, seen, state, NOW).actions if isinstance(a, StopInstance)]
    assert stop.reason == reason
