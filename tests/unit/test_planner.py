"""The planner as a table: given a pool, what it observed and what it remembers, which actions and why.

Each case lists the start/stop/overflow actions exactly (kind, target, a reason fragment); route writes are
compared exactly only when a case lists some. ``NOW`` is Monday 2026-11-23 12:00 UTC.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from spotgate.core.fast_path import fast_path_routes
from spotgate.core.planner import plan
from spotgate.core.state_updates import apply_event, record_start_failure, record_start_issued
from spotgate.domain import (
    Action,
    ComputeEvent,
    ComputeEventKind,
    ControlKind,
    ControlMessage,
    Notice,
    NoticeKind,
    Observed,
    Override,
    OverrideKind,
    PoolState,
    Preemption,
    ProvisioningModel,
    Route,
    SetOverflow,
    SetRoute,
    StartInstance,
    Stockout,
    StopInstance,
)
from spotgate.errors import CapacityError, ConflictError, QuotaError
from spotgate.fleet import PoolSpec
from tests.unit.builders import (
    NOW,
    a_pool_spec,
    a_route,
    a_state,
    ago,
    all_vms,
    an_activity,
    an_instance,
    draining_notice,
    later,
    observed,
    ready_notice,
)

Expected = list[tuple[str, str, str]]


def summary(action: Action) -> tuple[str, str, str]:
    """(kind, target, reason) of an action, for table comparison."""
    if isinstance(action, StartInstance):
        return ("start", action.instance, action.reason)
    if isinstance(action, StopInstance):
        return ("stop", action.instance, action.reason)
    if isinstance(action, SetOverflow):
        return ("overflow", f"{action.service}={action.min_instances}", action.reason)
    return ("route", f"{action.route.backend}={action.route.state}", action.reason)


def ready_pool(*names: str, **state_fields: Any) -> tuple[tuple[Any, ...], PoolState]:
    """All default VMs, the named ones RUNNING with a ready notice; and the matching state."""
    instances = {n.replace("-", "_"): an_instance(n, "RUNNING") for n in names}
    notices = {n: ready_notice() for n in names}
    return all_vms(**instances), a_state(notices=notices, **state_fields)


def table_routes(**states: str) -> list[Route]:
    """Routes of every default VM (``chat_a_1="ready"``); VMs not named are ``down``."""
    names = ("chat-a-1", "chat-b-1", "chat-c-1", "chat-std")
    return [a_route(name, states.get(name.replace("-", "_"), "down")) for name in names]


SPEC = a_pool_spec()
MIN1 = a_pool_spec(min_ready=1)
MIN2 = a_pool_spec(min_ready=2)
FALLBACK = a_pool_spec(min_ready=1, fallback=True)
OVERFLOW = a_pool_spec(min_ready=1, overflow=True)
STANDARD_ONLY = a_pool_spec(
    min_ready=1,
    max_ready=1,
    spot=None,
    vms=[
        {"name": "chat-std", "zone": "us-central1-a", "provisioning_model": "STANDARD"},
        {"name": "chat-std-b", "zone": "us-central1-b", "provisioning_model": "STANDARD"},
    ],
)
ALL_STOCKED_OUT = {
    "us-central1-a": later(minutes=4),
    "us-central1-b": later(minutes=4),
    "us-central1-c": later(minutes=4),
}
HOURS_9_TO_11_WEEKDAYS = {
    "timezone": "UTC",
    "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "11:00"}],
}


def _case(  # noqa: PLR0917 - a table row reads best positionally
    case_id: str,
    spec: PoolSpec,
    seen: Observed,
    state: PoolState,
    expected: Expected,
    checks: dict[str, Any] | None = None,
) -> Any:
    return pytest.param(spec, seen, state, expected, checks or {}, id=case_id)


def _with_ready(*names: str, spec_obs: dict[str, Any] | None = None, **state_fields: Any) -> tuple[Observed, PoolState]:
    instances, state = ready_pool(*names, **state_fields)
    return observed(instances, **(spec_obs or {})), state


# ---- desired ready, starts and placement -------------------------------------------------------------------
CASES = [
    _case(
        "min_ready_starts_spot_by_name_tiebreak",
        MIN1,
        observed(),
        a_state(),
        [("start", "chat-a-1", "start chat-a-1 (SPOT, us-central1-a): 0 of 1 desired ready (min_ready 1)")],
        {"start_attempts": {"chat-a-1": NOW}},
    ),
    _case(
        "no_traffic_and_min_zero_stays_asleep",
        SPEC,
        observed(),
        a_state(),
        [],
        {"gap_since": None, "start_attempts": {}},
    ),
    _case(
        "request_within_idle_timeout_wakes_one",
        SPEC,
        observed(activity=an_activity(last_request=ago(minutes=1))),
        a_state(),
        [("start", "chat-a-1", "last request at 2026-11-23T11:59:00Z")],
    ),
    _case(
        "gateway_wake_within_idle_timeout_wakes_one",
        SPEC,
        observed(),
        a_state(last_wake_at=ago(seconds=5)),
        [("start", "chat-a-1", "last wake at")],
    ),
    _case(
        "spread_over_zones_when_two_are_wanted",
        MIN2,
        observed(),
        a_state(),
        [
            ("start", "chat-a-1", "0 other live VM(s) in us-central1-a"),
            ("start", "chat-b-1", "0 other live VM(s) in us-central1-b"),
        ],
    ),
    _case(
        "spread_prefers_zone_without_a_live_vm",
        MIN2,
        observed(all_vms(chat_a_1=an_instance("chat-a-1", "RUNNING"))),
        a_state(notices={"chat-a-1": ready_notice()}),
        [("start", "chat-b-1", "1 of 2 desired ready")],
    ),
    _case(
        "no_duplicate_start_while_provisioning",
        MIN1,
        observed(all_vms(chat_a_1=an_instance("chat-a-1", "PROVISIONING", last_start=ago(seconds=30)))),
        a_state(start_attempts={"chat-a-1": ago(seconds=31)}),
        [],
    ),
    _case(
        "no_duplicate_start_while_issued_start_is_pending",
        MIN1,
        observed(),
        a_state(start_attempts={"chat-a-1": ago(seconds=20)}),
        [],
        {"start_attempts": {"chat-a-1": ago(seconds=20)}},
    ),
    _case(
        "boot_timeout_passed_start_is_retried",
        MIN1,
        observed(),
        a_state(start_attempts={"chat-a-1": ago(minutes=11)}),
        [("start", "chat-a-1", "previous start at 11:49:00Z did not bring it up")],
        {"start_attempts": {"chat-a-1": NOW}},
    ),
    _case(
        "start_that_did_not_take_is_retried",
        MIN1,
        observed(),
        a_state(start_attempts={"chat-a-1": ago(minutes=3, seconds=1)}),
        [("start", "chat-a-1", "previous start at 11:56:59Z did not bring it up")],
    ),
    _case(
        "preempted_during_boot_is_not_pending",
        MIN1,
        observed(all_vms(chat_a_1=an_instance("chat-a-1", last_stop=ago(seconds=5)))),
        a_state(start_attempts={"chat-a-1": ago(minutes=1)}),
        [("start", "chat-a-1", "0 of 1 desired ready")],
    ),
    _case(
        "stuck_vm_is_stopped_and_replaced",
        MIN1,
        observed(all_vms(chat_a_1=an_instance("chat-a-1", "RUNNING", last_start=ago(minutes=12)))),
        a_state(),
        [
            ("stop", "chat-a-1", "RUNNING but not ready within boot_timeout 0:10:00 of its start at 11:48:00Z"),
            ("start", "chat-b-1", "start chat-b-1 (SPOT, us-central1-b)"),
        ],
    ),
    _case(
        "preemption_restarts_in_another_zone",
        MIN1,
        observed(all_vms(chat_a_1=an_instance("chat-a-1", "RUNNING"))),
        a_state(
            notices={"chat-a-1": draining_notice()},
            preemptions=(Preemption("chat-a-1", "us-central1-a", ago(seconds=10)),),
        ),
        [("start", "chat-b-1", "0 preemption(s) there in the last 6h")],
    ),
    _case(
        "stocked_out_zone_is_skipped",
        MIN1,
        observed(),
        a_state(stockouts={"us-central1-a": later(minutes=3)}),
        [("start", "chat-b-1", "us-central1-a stocked out until 12:03:00Z")],
    ),
    _case(
        "zones_available_hint_is_preferred",
        MIN1,
        observed(),
        a_state(stockouts={"us-central1-a": later(minutes=3)}, zones_available=("us-central1-c",)),
        [("start", "chat-c-1", "zone named in the last zonesAvailable hint")],
        {"zones_available": ("us-central1-c",)},
    ),
    _case(
        "expired_stockout_and_hint_are_forgotten",
        MIN1,
        observed(),
        a_state(stockouts={"us-central1-a": ago(seconds=1)}, zones_available=("us-central1-c",)),
        [("start", "chat-a-1", "0 of 1 desired ready")],
        {"stockouts": {}, "zones_available": ()},
    ),
    _case(
        "zone_with_fewer_recent_preemptions_is_preferred",
        MIN1,
        observed(),
        a_state(
            preemptions=(
                Preemption("chat-a-1", "us-central1-a", ago(hours=1)),
                Preemption("chat-b-1", "us-central1-b", ago(hours=2)),
            )
        ),
        [("start", "chat-c-1", "0 preemption(s) there")],
    ),
    _case(
        "preemptions_older_than_memory_are_forgotten",
        MIN1,
        observed(),
        a_state(preemptions=(Preemption("chat-a-1", "us-central1-a", ago(hours=7)),)),
        [("start", "chat-a-1", "0 preemption(s) there")],
        {"preemptions": ()},
    ),
    _case(
        "standard_vm_unused_without_fallback",
        MIN1,
        observed(),
        a_state(stockouts=ALL_STOCKED_OUT, spot_unavailable_since=ago(hours=1)),
        [],
        {"spot_unavailable_since": None},
    ),
    _case(
        "standard_only_pool_uses_its_vms_as_members",
        STANDARD_ONLY,
        observed(
            [
                an_instance("chat-std", zone="us-central1-a", model="STANDARD"),
                an_instance("chat-std-b", zone="us-central1-b", model="STANDARD"),
            ]
        ),
        a_state(),
        [("start", "chat-std", "start chat-std (STANDARD, us-central1-a): 0 of 1 desired ready (min_ready 1)")],
    ),
    # ---- load ----------------------------------------------------------------------------------------------
    _case(
        "sustained_load_adds_a_vm",
        MIN1,
        *_with_ready("chat-a-1", spec_obs={"activity": an_activity(last_request=ago(seconds=1), inflight=12)}),
        [("start", "chat-b-1", "1 of 2 desired ready (12 requests in flight, 8 per VM to add one")],
    ),
    _case(
        "load_is_capped_at_max_ready",
        MIN1,
        *_with_ready(
            "chat-a-1", "chat-b-1", spec_obs={"activity": an_activity(last_request=ago(seconds=1), inflight=100)}
        ),
        [],
    ),
    _case(
        "load_keeps_the_vms_it_needs",
        MIN1,
        *_with_ready(
            "chat-a-1",
            "chat-b-1",
            spec_obs={
                "activity": an_activity(inflight=10, backends={"chat-a-1": ago(minutes=1), "chat-b-1": ago(minutes=1)})
            },
        ),
        [],
    ),
    _case(
        "load_that_fits_one_vm_lets_the_other_go",
        MIN1,
        *_with_ready(
            "chat-a-1",
            "chat-b-1",
            spec_obs={
                "activity": an_activity(inflight=3, backends={"chat-a-1": ago(minutes=1), "chat-b-1": ago(minutes=2)})
            },
        ),
        [("stop", "chat-b-1", "2 live for 1 desired (min_ready 1); idle since 11:58:00Z")],
    ),
    _case(
        "stale_inflight_count_is_not_load",
        MIN1,
        *_with_ready("chat-a-1", spec_obs={"activity": an_activity(inflight=50, updated_at=ago(minutes=10))}),
        [],
    ),
    # ---- schedules and overrides ---------------------------------------------------------------------------
    _case(
        "outside_active_hours_stops_despite_traffic",
        a_pool_spec(min_ready=1, active_hours=HOURS_9_TO_11_WEEKDAYS),
        *_with_ready(
            "chat-a-1",
            spec_obs={"activity": an_activity(last_request=ago(minutes=1), backends={"chat-a-1": ago(minutes=1)})},
        ),
        [("stop", "chat-a-1", "scale to zero, outside active hours; idle since 11:59:00Z")],
    ),
    _case(
        "window_crossing_midnight_covers_next_morning",
        a_pool_spec(min_ready=1, active_hours={"windows": [{"days": ["sun"], "start": "22:00", "end": "13:00"}]}),
        observed(),
        a_state(),
        [("start", "chat-a-1", "min_ready 1")],
    ),
    _case(
        "crossing_window_belongs_to_its_start_day",
        a_pool_spec(min_ready=1, active_hours={"windows": [{"days": ["mon"], "start": "22:00", "end": "13:00"}]}),
        observed(),
        a_state(),
        [],
    ),
    _case(
        "weekend_only_pool_sleeps_on_monday",
        a_pool_spec(
            min_ready=1, active_hours={"windows": [{"days": ["sat", "sun"], "start": "00:00", "end": "00:00"}]}
        ),
        observed(activity=an_activity(last_request=ago(seconds=30))),
        a_state(),
        [],
    ),
    _case(
        "sleep_override_stops_a_busy_pool",
        MIN1,
        *_with_ready("chat-a-1", override=Override(OverrideKind.SLEEP, later(hours=1), ago(minutes=1))),
        [("stop", "chat-a-1", "scale to zero, sleep override until 2026-11-23T13:00:00Z")],
    ),
    _case(
        "sleep_override_respects_drain_grace",
        MIN1,
        *_with_ready(
            "chat-a-1",
            override=Override(OverrideKind.SLEEP, later(hours=1), ago(minutes=1)),
            spec_obs={
                "activity": an_activity(backends={"chat-a-1": ago(seconds=10)}),
                "routes": table_routes(chat_a_1="ready"),
            },
        ),
        [("route", "chat-a-1=draining", "once its requests finish, at the latest 12:00:20Z")],
    ),
    _case(
        "expired_sleep_override_is_dropped",
        MIN1,
        observed(),
        a_state(override=Override(OverrideKind.SLEEP, ago(minutes=1), ago(hours=1))),
        [("start", "chat-a-1", "min_ready 1")],
        {"override": None},
    ),
    _case(
        "wake_override_beats_active_hours",
        a_pool_spec(active_hours=HOURS_9_TO_11_WEEKDAYS),
        observed(),
        a_state(override=Override(OverrideKind.WAKE, later(hours=2), ago(minutes=1))),
        [("start", "chat-a-1", "wake override until 2026-11-23T14:00:00Z")],
    ),
    # ---- on-demand fallback --------------------------------------------------------------------------------
    _case(
        "all_zones_stocked_out_starts_the_fallback_timer",
        FALLBACK,
        observed(),
        a_state(stockouts=ALL_STOCKED_OUT),
        [],
        {"spot_unavailable_since": NOW},
    ),
    _case(
        "fallback_waits_for_its_delay",
        FALLBACK,
        observed(),
        a_state(stockouts=ALL_STOCKED_OUT, spot_unavailable_since=ago(minutes=1)),
        [],
        {"spot_unavailable_since": ago(minutes=1)},
    ),
    _case(
        "fallback_starts_standard_after_its_delay",
        FALLBACK,
        observed(),
        a_state(stockouts=ALL_STOCKED_OUT, spot_unavailable_since=ago(minutes=3)),
        [("start", "chat-std", "on-demand fallback, no SPOT VM could be started since 2026-11-23T11:57:00Z")],
    ),
    _case(
        "fallback_waits_while_a_spot_start_is_attempted",
        FALLBACK,
        observed(),
        a_state(spot_unavailable_since=ago(minutes=5)),
        [("start", "chat-a-1", "start chat-a-1 (SPOT, us-central1-a)")],
        {"spot_unavailable_since": ago(minutes=5)},
    ),
    _case(
        "fallback_keeps_trying_spot_while_standard_serves",
        FALLBACK,
        *_with_ready("chat-std"),
        [("start", "chat-a-1", "start chat-a-1 (SPOT, us-central1-a): 1 of 1 desired ready")],
    ),
    _case(
        "standard_kept_while_spot_replacement_boots",
        FALLBACK,
        observed(
            all_vms(
                chat_std=an_instance("chat-std", "RUNNING"),
                chat_b_1=an_instance("chat-b-1", "RUNNING", last_start=ago(minutes=1)),
            )
        ),
        a_state(notices={"chat-std": ready_notice()}),
        [],
        {"spot_unavailable_since": None},
    ),
    _case(
        "reoptimise_stops_standard_once_spot_is_ready",
        FALLBACK,
        *_with_ready("chat-std", "chat-b-1"),
        [("stop", "chat-std", "stop chat-std (STANDARD, us-central1-a): re-optimise to SPOT, 1 SPOT VM(s) ready")],
    ),
    _case(
        "fallback_standard_stops_on_scale_to_zero",
        a_pool_spec(fallback=True),
        *_with_ready("chat-std"),
        [("stop", "chat-std", "scale to zero, no requests yet")],
    ),
    # ---- stops ---------------------------------------------------------------------------------------------
    _case(
        "idle_timeout_scales_to_zero",
        SPEC,
        *_with_ready(
            "chat-a-1",
            spec_obs={"activity": an_activity(last_request=ago(minutes=16), backends={"chat-a-1": ago(minutes=16)})},
        ),
        [("stop", "chat-a-1", "scale to zero, idle for longer than 0:15:00; idle since 11:44:00Z")],
    ),
    _case(
        "standard_stopped_first_even_without_fallback",
        MIN1,
        *_with_ready("chat-a-1", "chat-std"),
        [("stop", "chat-std", "re-optimise to SPOT, 1 SPOT VM(s) ready")],
    ),
    _case(
        "standard_and_longest_idle_spot_stopped_together",
        MIN1,
        *_with_ready(
            "chat-a-1",
            "chat-b-1",
            "chat-std",
            spec_obs={"activity": an_activity(backends={"chat-a-1": ago(minutes=3), "chat-b-1": ago(minutes=9)})},
        ),
        [("stop", "chat-std", "re-optimise to SPOT"), ("stop", "chat-b-1", "2 live for 1 desired")],
    ),
    _case(
        "longest_idle_vm_stopped_first",
        MIN1,
        *_with_ready(
            "chat-a-1",
            "chat-b-1",
            spec_obs={
                "activity": an_activity(
                    last_request=ago(minutes=2), backends={"chat-a-1": ago(minutes=10), "chat-b-1": ago(minutes=2)}
                )
            },
        ),
        [("stop", "chat-a-1", "idle since 11:50:00Z")],
    ),
    _case(
        "booting_vm_stopped_before_a_ready_one",
        a_pool_spec(min_ready=1, min_uptime=0),
        observed(
            all_vms(
                chat_a_1=an_instance("chat-a-1", "RUNNING"),
                chat_b_1=an_instance("chat-b-1", "STAGING", last_start=ago(minutes=1)),
            ),
            activity=an_activity(backends={"chat-a-1": ago(minutes=5)}),
        ),
        a_state(notices={"chat-a-1": ready_notice()}),
        [("stop", "chat-b-1", "no traffic recorded")],
    ),
    _case(
        "vm_with_recent_traffic_drains_before_it_stops",
        MIN1,
        *_with_ready(
            "chat-a-1",
            "chat-b-1",
            spec_obs={
                "activity": an_activity(backends={"chat-a-1": ago(seconds=5), "chat-b-1": ago(seconds=20)}),
                "routes": table_routes(chat_a_1="ready", chat_b_1="ready"),
            },
        ),
        [("route", "chat-b-1=draining", "stops this VM once its requests finish, at the latest 12:00:10Z")],
    ),
    _case(
        "drained_vm_is_stopped_once_its_grace_is_over",
        MIN1,
        *_with_ready(
            "chat-a-1",
            "chat-b-1",
            spec_obs={
                "activity": an_activity(backends={"chat-a-1": ago(seconds=1), "chat-b-1": ago(seconds=31)}),
                "routes": table_routes(chat_a_1="ready", chat_b_1="draining"),
            },
        ),
        [("stop", "chat-b-1", "2 live for 1 desired (min_ready 1); idle since 11:59:29Z"), ("route", "-", "")],
    ),
    _case(
        "drained_vm_returns_when_demand_rises",
        MIN2,
        *_with_ready(
            "chat-a-1",
            "chat-b-1",
            spec_obs={"routes": table_routes(chat_a_1="ready", chat_b_1="draining")},
        ),
        [("route", "chat-b-1=ready", "ready: RUNNING")],
    ),
    # ---- routes --------------------------------------------------------------------------------------------
    _case(
        "route_ready_after_a_ready_notice",
        MIN1,
        observed(
            all_vms(chat_a_1=an_instance("chat-a-1", "RUNNING")),
            routes=[
                a_route("chat-a-1", "starting"),
                *[a_route(n, "down") for n in ("chat-b-1", "chat-c-1", "chat-std")],
            ],
        ),
        a_state(notices={"chat-a-1": ready_notice()}),
        [("route", "chat-a-1=ready", "ready: RUNNING, engine ready since 11:35:00Z")],
    ),
    _case(
        "route_starting_while_running_without_notice",
        MIN1,
        observed(
            all_vms(chat_a_1=an_instance("chat-a-1", "RUNNING", last_start=ago(minutes=1))),
            routes=[a_route("chat-a-1", "down"), *[a_route(n, "down") for n in ("chat-b-1", "chat-c-1", "chat-std")]],
        ),
        a_state(),
        [("route", "chat-a-1=starting", "waiting for the engine's ready notice")],
    ),
    _case(
        "stale_ready_notice_ignored_after_restart",
        MIN1,
        observed(
            all_vms(chat_a_1=an_instance("chat-a-1", "RUNNING", last_start=ago(minutes=2))),
            routes=[a_route("chat-a-1", "ready"), *[a_route(n, "down") for n in ("chat-b-1", "chat-c-1", "chat-std")]],
        ),
        a_state(notices={"chat-a-1": ready_notice(ago(minutes=40))}),
        [("route", "chat-a-1=starting", "starting: RUNNING")],
        {"notices": {}},
    ),
    _case(
        "draining_notice_drains_route_and_replaces_vm",
        MIN1,
        observed(
            all_vms(chat_a_1=an_instance("chat-a-1", "RUNNING")),
            routes=[a_route("chat-a-1", "ready"), *[a_route(n, "down") for n in ("chat-b-1", "chat-c-1", "chat-std")]],
        ),
        a_state(notices={"chat-a-1": draining_notice()}),
        [
            ("start", "chat-b-1", "0 of 1 desired ready"),
            ("route", "chat-a-1=draining", "draining: RUNNING, preemption or shutdown notice at 11:59:50Z"),
        ],
    ),
    _case(
        "stopping_vm_route_is_down",
        SPEC,
        observed(
            all_vms(chat_a_1=an_instance("chat-a-1", "STOPPING")),
            routes=[
                a_route("chat-a-1", "draining"),
                *[a_route(n, "down") for n in ("chat-b-1", "chat-c-1", "chat-std")],
            ],
        ),
        a_state(notices={"chat-a-1": ready_notice()}),
        [("route", "chat-a-1=down", "down: STOPPING")],
    ),
    _case(
        "terminated_vm_route_is_down",
        SPEC,
        observed(routes=[a_route("chat-a-1", "ready")]),
        a_state(),
        [
            ("route", "chat-a-1=down", "down: TERMINATED"),
            ("route", "chat-b-1=down", "down: TERMINATED"),
            ("route", "chat-c-1=down", "down: TERMINATED"),
            ("route", "chat-std=down", "down: TERMINATED"),
        ],
    ),
    _case(
        "unchanged_routes_are_not_rewritten",
        SPEC,
        observed(routes=[a_route(n, "down") for n in ("chat-a-1", "chat-b-1", "chat-c-1", "chat-std")]),
        a_state(),
        [("route", "-", "")],
    ),
    _case(
        "changed_address_rewrites_route",
        MIN1,
        observed(
            all_vms(chat_a_1=an_instance("chat-a-1", "RUNNING", ip="10.0.0.99")),
            routes=[
                a_route("chat-a-1", "ready", address="http://10.0.0.7:8000"),
                *[a_route(n, "down") for n in ("chat-b-1", "chat-c-1", "chat-std")],
            ],
        ),
        a_state(notices={"chat-a-1": ready_notice()}),
        [("route", "chat-a-1=ready", "ready")],
    ),
    _case(
        "route_of_a_vanished_vm_goes_down",
        SPEC,
        observed(
            routes=[
                a_route("chat-old-1", "ready", zone="us-central1-f"),
                *[a_route(n, "down") for n in ("chat-a-1", "chat-b-1", "chat-c-1", "chat-std")],
            ]
        ),
        a_state(),
        [("route", "chat-old-1=down", "down: not among the pool's VMs")],
    ),
    _case(
        "planned_stop_drains_route_at_once",
        SPEC,
        observed(
            all_vms(chat_a_1=an_instance("chat-a-1", "RUNNING")),
            routes=[a_route("chat-a-1", "ready"), *[a_route(n, "down") for n in ("chat-b-1", "chat-c-1", "chat-std")]],
        ),
        a_state(notices={"chat-a-1": ready_notice()}),
        [("stop", "chat-a-1", "scale to zero"), ("route", "chat-a-1=draining", "spotgate is stopping this VM")],
    ),
    # ---- overflow ------------------------------------------------------------------------------------------
    _case(
        "overflow_route_is_ready",
        a_pool_spec(overflow=True),
        observed(routes=[a_route(n, "down") for n in ("chat-a-1", "chat-b-1", "chat-c-1", "chat-std")]),
        a_state(),
        [("route", "chat-overflow=ready", "overflow service answers when no VM can")],
    ),
    _case(
        "overflow_warmed_in_a_gap",
        OVERFLOW,
        observed(overflow_min=0),
        a_state(),
        [
            ("start", "chat-a-1", "0 of 1 desired ready"),
            (
                "overflow",
                "chat-overflow=1",
                "warm chat-overflow (min instances 1): 0 of 1 desired VMs ready since 12:00:00Z",
            ),
        ],
        {"gap_since": NOW, "overflow_warm": True},
    ),
    _case(
        "overflow_not_rewarmed_during_the_same_gap",
        OVERFLOW,
        observed(all_vms(chat_a_1=an_instance("chat-a-1", "PROVISIONING", last_start=ago(minutes=1))), overflow_min=1),
        a_state(gap_since=ago(minutes=1), overflow_warm=True),
        [],
        {"gap_since": ago(minutes=1)},
    ),
    _case(
        "gap_closing_is_recorded_and_overflow_stays_warm",
        OVERFLOW,
        *_with_ready("chat-a-1", spec_obs={"overflow_min": 1}, gap_since=ago(minutes=3), overflow_warm=True),
        [],
        {"gap_since": None, "gap_closed_at": NOW, "overflow_warm": True},
    ),
    _case(
        "overflow_stays_warm_within_cooldown",
        OVERFLOW,
        *_with_ready("chat-a-1", spec_obs={"overflow_min": 1}, gap_closed_at=ago(minutes=4), overflow_warm=True),
        [],
    ),
    _case(
        "overflow_cooled_after_cooldown",
        OVERFLOW,
        *_with_ready("chat-a-1", spec_obs={"overflow_min": 1}, gap_closed_at=ago(minutes=6), overflow_warm=True),
        [("overflow", "chat-overflow=0", "gap closed at 11:54:00Z, 0:05:00 cooldown over")],
        {"overflow_warm": False},
    ),
    _case(
        "overflow_drift_rewarmed",
        OVERFLOW,
        observed(all_vms(chat_a_1=an_instance("chat-a-1", "STAGING", last_start=ago(minutes=1))), overflow_min=0),
        a_state(gap_since=ago(minutes=1), overflow_warm=True),
        [("overflow", "chat-overflow=1", "observed min instances 0, repairing drift")],
    ),
    _case(
        "overflow_drift_cooled",
        a_pool_spec(overflow=True),
        observed(overflow_min=1),
        a_state(),
        [("overflow", "chat-overflow=0", "no gap to cover; observed min instances 1, repairing drift")],
    ),
    _case(
        "overflow_unknown_uses_memory",
        a_pool_spec(overflow=True),
        observed(),
        a_state(overflow_warm=True),
        [("overflow", "chat-overflow=0", "cool chat-overflow (min instances 0)")],
    ),
]


@pytest.mark.parametrize(("spec", "seen", "state", "expected", "checks"), CASES)
def test_plan(spec: PoolSpec, seen: Observed, state: PoolState, expected: Expected, checks: dict[str, Any]) -> None:
    result = plan(spec, seen, state, NOW)
    actual = [summary(a) for a in result.actions]
    check_routes = any(kind == "route" for kind, _, _ in expected)
    wanted = [e for e in expected if e[1] != "-"]
    compared = [a for a in actual if check_routes or a[0] != "route"]
    assert [(k, t) for k, t, _ in compared] == [(k, t) for k, t, _ in wanted], "\n".join(r for _, _, r in actual)
    for (_, _, reason), (_, _, fragment) in zip(compared, wanted, strict=True):
        assert fragment in reason
    for field, value in checks.items():
        assert getattr(result.next_state, field) == value, field
    assert result.next_state.generation == state.generation


def test_table_has_at_least_thirty_named_cases() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize(("spec", "seen", "state", "expected", "checks"), CASES)
def test_every_action_says_why(
    spec: PoolSpec, seen: Observed, state: PoolState, expected: Expected, checks: Any
) -> None:
    assert all(summary(a)[2] for a in plan(spec, seen, state, NOW).actions)


# ---- properties across plans ---------------------------------------------------------------------------------


def test_planning_twice_on_the_same_inputs_plans_the_same() -> None:
    seen, state = observed(activity=an_activity(last_request=ago(seconds=3))), a_state()
    assert plan(MIN2, seen, state, NOW) == plan(MIN2, seen, state, NOW)


def test_replanning_with_the_committed_state_does_not_start_again() -> None:
    first = plan(MIN1, observed(), a_state(), NOW)
    again = plan(MIN1, observed(), first.next_state, NOW + timedelta(seconds=2))
    assert [summary(a)[:2] for a in first.actions if not isinstance(a, SetRoute)] == [("start", "chat-a-1")]
    assert [a for a in again.actions if isinstance(a, StartInstance)] == []


def _wake(at_seconds_ago: float) -> ControlMessage:
    return ControlMessage(ControlKind.WAKE, ago(seconds=at_seconds_ago), pool="chat")


def _ready(instance: str, at_seconds_ago: float) -> ControlMessage:
    return ControlMessage(ControlKind.READY, ago(seconds=at_seconds_ago), pool="chat", instance=instance)


def _preempted(instance: str, at_seconds_ago: float) -> ComputeEvent:
    return ComputeEvent(
        ComputeEventKind.PREEMPTED, "proj-test-1", "us-central1-a", instance, ago(seconds=at_seconds_ago)
    )


def test_duplicated_and_reordered_wakes_start_one_vm() -> None:
    state = a_state()
    starts: list[str] = []
    for event in (_wake(30), _wake(30), _wake(40), _wake(30)):
        state = apply_event(state, event, SPEC)
        result = plan(SPEC, observed(), state, NOW)
        for action in result.actions:
            if isinstance(action, StartInstance):
                starts.append(action.instance)
                result = replace(result, next_state=record_start_issued(result.next_state, action, NOW))
        state = result.next_state
    assert starts == ["chat-a-1"]
    assert state.last_wake_at == ago(seconds=30)


def test_late_duplicate_preemption_after_restart_does_not_drain_the_new_boot() -> None:
    spec = MIN1
    state = apply_event(a_state(), _preempted("chat-a-1", 300), spec)
    state = apply_event(state, _ready("chat-a-1", 60), spec)
    state = apply_event(state, _preempted("chat-a-1", 300), spec)  # redelivered late
    booted = an_instance("chat-a-1", "RUNNING", last_start=ago(seconds=120))
    result = plan(spec, observed(all_vms(chat_a_1=booted)), state, NOW)
    assert [a for a in result.actions if isinstance(a, StartInstance | StopInstance)] == []
    routes = {a.route.backend: a.route.state for a in result.actions if isinstance(a, SetRoute)}
    assert routes["chat-a-1"] == "ready"
    assert len(result.next_state.preemptions) == 1


def test_stockout_on_start_moves_the_next_choice_elsewhere() -> None:
    first = plan(MIN1, observed(), a_state(), NOW)
    start = next(a for a in first.actions if isinstance(a, StartInstance))
    error = CapacityError(
        "stockout",
        zone=start.zone,
        code="ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        zones_available=("us-central1-c",),
    )
    state = record_start_failure(first.next_state, start, error, NOW, MIN1)
    second = plan(MIN1, observed(), state, NOW + timedelta(seconds=1))
    assert [summary(a)[:2] for a in second.actions if isinstance(a, StartInstance)] == [("start", "chat-c-1")]


REQUEUE_CASES = [
    pytest.param(MIN1, observed(), a_state(), timedelta(seconds=30), id="start_pending_polls_soon"),
    pytest.param(SPEC, observed(), a_state(), None, id="nothing_pending"),
    pytest.param(
        SPEC,
        *_with_ready("chat-a-1", spec_obs={"activity": an_activity(last_request=ago(minutes=10))}),
        timedelta(minutes=5),
        id="idle_timeout_expiry",
    ),
    pytest.param(
        FALLBACK,
        observed(),
        a_state(stockouts=ALL_STOCKED_OUT, spot_unavailable_since=ago(minutes=1)),
        timedelta(minutes=1),
        id="fallback_delay_expiry",
    ),
    pytest.param(
        MIN1,
        *_with_ready(
            "chat-a-1",
            override=Override(OverrideKind.SLEEP, later(hours=1), ago(minutes=1)),
            spec_obs={"activity": an_activity(backends={"chat-a-1": ago(seconds=10)})},
        ),
        timedelta(seconds=20),
        id="drain_grace_expiry",
    ),
    pytest.param(
        OVERFLOW,
        *_with_ready("chat-a-1", spec_obs={"overflow_min": 1}, gap_closed_at=ago(minutes=4), overflow_warm=True),
        timedelta(minutes=1),
        id="overflow_cooldown_expiry",
    ),
    pytest.param(
        a_pool_spec(min_ready=1, active_hours=HOURS_9_TO_11_WEEKDAYS),
        observed(),
        a_state(),
        timedelta(hours=21),
        id="next_window_opens",
    ),
]


@pytest.mark.parametrize(("spec", "seen", "state", "expected"), REQUEUE_CASES)
def test_requeue_after(spec: PoolSpec, seen: Observed, state: PoolState, expected: timedelta | None) -> None:
    assert plan(spec, seen, state, NOW).requeue_after == expected


def test_preemption_story_from_fast_path_to_overflow_cooldown() -> None:
    """A ready SPOT VM is preempted; traffic moves to overflow, a VM elsewhere takes over, overflow cools."""
    spec = OVERFLOW
    routes = {
        r.backend: r
        for r in (
            a_route("chat-a-1", "ready"),
            a_route("chat-b-1", "down"),
            a_route("chat-c-1", "down"),
            a_route("chat-std", "down"),
        )
    }
    state = a_state(notices={"chat-a-1": ready_notice()})

    def step(instances: tuple[Any, ...], at: Any, overflow_min: int) -> list[tuple[str, str]]:
        nonlocal state
        seen = observed(instances, routes=list(routes.values()), overflow_min=overflow_min)
        result = plan(spec, seen, state, at)
        state = result.next_state
        routes.update({a.route.backend: a.route for a in result.actions if isinstance(a, SetRoute)})
        return [(summary(a)[0], summary(a)[1]) for a in result.actions if not isinstance(a, SetRoute)]

    event = _preempted("chat-a-1", 0)
    state = apply_event(state, event, spec)
    assert [r.state for r in fast_path_routes(event, list(routes.values()), NOW)] == ["draining"]

    running_a = an_instance("chat-a-1", "RUNNING")
    assert step(all_vms(chat_a_1=running_a), NOW, 0) == [("start", "chat-b-1"), ("overflow", "chat-overflow=1")]
    assert routes["chat-a-1"].state == "draining"
    assert routes["chat-overflow"].state == "ready"

    booting_b = an_instance("chat-b-1", "RUNNING", last_start=later(seconds=20))
    assert step(all_vms(chat_b_1=booting_b), later(minutes=1), 1) == []
    assert (routes["chat-a-1"].state, routes["chat-b-1"].state) == ("down", "starting")

    state = apply_event(state, _ready("chat-b-1", -90), spec)
    assert step(all_vms(chat_b_1=booting_b), later(minutes=2), 1) == []
    assert routes["chat-b-1"].state == "ready"
    assert state.gap_closed_at == later(minutes=2)

    assert step(all_vms(chat_b_1=booting_b), later(minutes=7), 1) == [("overflow", "chat-overflow=0")]


SPOT_START = StartInstance("chat-a-1", "us-central1-a", ProvisioningModel.SPOT, "test")
STANDARD_START = StartInstance("chat-std", "us-central1-a", ProvisioningModel.STANDARD, "test")
STOCKOUT = CapacityError("no capacity", zone="us-central1-a", code="ZONE_RESOURCE_POOL_EXHAUSTED", zones_available=())
STOCKOUT_WITH_HINT = CapacityError(
    "no capacity",
    zone="us-central1-a",
    code="ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    zones_available=("us-central1-b",),
)

FAILURE_CASES = [
    pytest.param(
        SPOT_START,
        STOCKOUT,
        a_state(zones_available=("us-central1-c",)),
        {
            "stockouts": {"us-central1-a": later(minutes=5)},
            "zones_available": ("us-central1-c",),
            "spot_unavailable_since": NOW,
            "stockout_history": (Stockout("chat-a-1", "us-central1-a", NOW),),
        },
        id="stockout_blocks_zone_and_keeps_last_hint",
    ),
    pytest.param(
        SPOT_START,
        STOCKOUT_WITH_HINT,
        a_state(spot_unavailable_since=ago(minutes=1)),
        {
            "stockouts": {"us-central1-a": later(minutes=5)},
            "zones_available": ("us-central1-b",),
            "spot_unavailable_since": ago(minutes=1),
        },
        id="new_hint_replaces_and_timer_keeps_running",
    ),
    pytest.param(
        SPOT_START,
        QuotaError("PREEMPTIBLE_NVIDIA_L4_GPUS exceeded"),
        a_state(),
        {
            "stockouts": dict.fromkeys(("us-central1-a", "us-central1-b", "us-central1-c"), later(minutes=5)),
            "spot_unavailable_since": NOW,
            "stockout_history": (),
        },
        id="regional_quota_blocks_every_zone",
    ),
    pytest.param(
        STANDARD_START,
        STOCKOUT,
        a_state(),
        {"stockouts": {}, "spot_unavailable_since": None, "stockout_history": ()},
        id="standard_failure_blocks_nothing",
    ),
    pytest.param(
        SPOT_START,
        ConflictError("still STOPPING"),
        a_state(),
        {"stockouts": {}, "spot_unavailable_since": None, "stockout_history": ()},
        id="other_errors_only_forget_the_attempt",
    ),
]


@pytest.mark.parametrize(("action", "error", "state", "expected"), FAILURE_CASES)
def test_record_start_failure(
    action: StartInstance, error: Exception, state: PoolState, expected: dict[str, Any]
) -> None:
    attempted = record_start_issued(replace(state, start_attempts={"chat-b-1": ago(seconds=5)}), action, NOW)
    assert attempted.start_attempts == {"chat-b-1": ago(seconds=5), action.instance: NOW}
    failed = record_start_failure(attempted, action, error, NOW, a_pool_spec(fallback=True))
    assert failed.start_attempts == {"chat-b-1": ago(seconds=5)}
    for field, value in expected.items():
        assert getattr(failed, field) == value, field


ROUTE_BY_STATUS = {
    "PROVISIONING": "starting",
    "STAGING": "starting",
    "RUNNING": "ready",
    "STOPPING": "down",
    "STOPPED": "down",
    "SUSPENDING": "down",
    "SUSPENDED": "down",
    "TERMINATED": "down",
    "REPAIRING": "down",
    "DEPROVISIONING": "down",
}


@pytest.mark.parametrize(("status", "route_state"), ROUTE_BY_STATUS.items(), ids=list(ROUTE_BY_STATUS))
def test_route_state_for_every_instance_status(status: str, route_state: str) -> None:
    """A ready notice from this boot makes only a RUNNING VM ready; anything not live is down."""
    vm = an_instance("chat-a-1", status, last_start=ago(minutes=5))
    seen = observed(all_vms(chat_a_1=vm), routes=table_routes())
    result = plan(MIN1, seen, a_state(notices={"chat-a-1": ready_notice(ago(minutes=1))}), NOW)
    wanted = {a.route.backend: a.route.state for a in result.actions if isinstance(a, SetRoute)}
    assert wanted.get("chat-a-1", "down") == route_state


def _random_world(rng: random.Random) -> tuple[PoolSpec, Observed, PoolState]:
    """A random but well-formed pool picture, for invariants that must hold in every situation."""
    spec = a_pool_spec(min_ready=rng.choice([0, 1, 2]), fallback=rng.random() < 0.5, overflow=rng.random() < 0.5)
    statuses = ["TERMINATED", "PROVISIONING", "STAGING", "RUNNING", "RUNNING", "STOPPING", "STOPPED"]
    instances = [
        an_instance(name, rng.choice(statuses), last_start=ago(minutes=rng.choice([1, 5, 30])))
        for name in ("chat-a-1", "chat-b-1", "chat-c-1", "chat-std")
    ]
    moments = [ago(seconds=s) for s in (5, 40, 300, 1200, 4000)]
    notices = {
        i.name: Notice(rng.choice([NoticeKind.READY, NoticeKind.DRAINING]), rng.choice(moments))
        for i in instances
        if rng.random() < 0.6
    }
    backends = {i.name: rng.choice(moments) for i in instances if rng.random() < 0.5}
    activity = an_activity(
        last_request=rng.choice([None, *moments]), inflight=rng.choice([0, 3, 9, 30]), backends=backends
    )
    state = a_state(
        notices=notices,
        stockouts={
            z: later(minutes=2) for z in ("us-central1-a", "us-central1-b", "us-central1-c") if rng.random() < 0.3
        },
        start_attempts={i.name: rng.choice(moments) for i in instances if rng.random() < 0.3},
        spot_unavailable_since=rng.choice([None, ago(minutes=1), ago(minutes=5)]),
        last_wake_at=rng.choice([None, *moments]),
        overflow_warm=rng.random() < 0.5,
    )
    return spec, observed(instances, activity=activity, overflow_min=rng.choice([None, 0, 1])), state


@pytest.mark.parametrize("seed", range(300))
def test_plan_invariants(seed: int) -> None:
    spec, seen, state = _random_world(random.Random(seed))
    result = plan(spec, seen, state, NOW)
    assert result == plan(spec, seen, state, NOW)
    by_name = {i.name: i for i in seen.instances}
    starts = [a for a in result.actions if isinstance(a, StartInstance)]
    stops = [a for a in result.actions if isinstance(a, StopInstance)]
    assert all(by_name[s.instance].status.is_stopped for s in starts), "only stopped VMs are started"
    assert all(by_name[s.instance].status.is_live for s in stops), "only live VMs are stopped"
    assert not {s.instance for s in starts} & {s.instance for s in stops}
    for stop in stops:
        last = seen.activity.backend_last_request.get(stop.instance)
        stuck = "not ready within boot_timeout" in stop.reason
        timed_out = "drain_timeout" in stop.reason
        assert stuck or timed_out or last is None or NOW - last >= spec.drain_grace, "never stop a VM that just served"
    assert len(starts) <= spec.max_ready, "never more starts than VMs could be wanted"
    ready_routes = {a.route.backend for a in result.actions if isinstance(a, SetRoute) and a.route.state == "ready"}
    assert all(by_name[b].status == "RUNNING" for b in ready_routes if b in by_name), "only RUNNING VMs are ready"
    assert not ready_routes & {s.instance for s in stops}, "a VM being stopped takes no new requests"
    assert all(s.instance in result.next_state.start_attempts for s in starts)
    assert result.next_state.generation == state.generation
    assert result.requeue_after is None or result.requeue_after > timedelta(0)
