"""A failed start backs its VM off by the failure's class, and is remembered (issue 9, defect 11)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from spotgate.core.backoff import delay, failure_kind
from spotgate.core.planner import plan
from spotgate.core.state_updates import record_start_failure, record_start_issued
from spotgate.domain import FailureKind, InstanceStatus, PoolState, ProvisioningModel, StartInstance
from spotgate.errors import (
    CapacityError,
    ConflictError,
    NotFoundError,
    NotReadyError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
)
from spotgate.fleet import PoolSpec
from tests.unit.builders import NOW, a_pool_spec, a_state, all_vms, an_instance, later, observed

FALLBACK = a_pool_spec(min_ready=1, fallback=True)
MIN1 = a_pool_spec(min_ready=1)
ALL_STOCKED_OUT = dict.fromkeys(("us-central1-a", "us-central1-b", "us-central1-c"), later(minutes=4))
STANDARD_STOCKOUT = CapacityError("no capacity", zone="us-central1-a", code="ZONE_RESOURCE_POOL_EXHAUSTED")

KIND_CASES = [
    pytest.param(STANDARD_STOCKOUT, FailureKind.CAPACITY, id="capacity"),
    pytest.param(QuotaError("NVIDIA_L4_GPUS exceeded"), FailureKind.QUOTA, id="quota"),
    pytest.param(RateLimitError("rateLimitExceeded"), FailureKind.RATE_LIMIT, id="rate_limit"),
    pytest.param(NotReadyError("resourceNotReady"), FailureKind.NOT_READY, id="not_ready"),
    pytest.param(PermissionDeniedError("compute.instances.start"), FailureKind.OTHER, id="permission"),
    pytest.param(NotFoundError("no such VM"), FailureKind.OTHER, id="not_found"),
    pytest.param(ConflictError("still STOPPING"), FailureKind.OTHER, id="conflict"),
]


@pytest.mark.parametrize(("error", "kind"), KIND_CASES)
def test_failure_kind(error: Exception, kind: FailureKind) -> None:
    assert failure_kind(error) is kind


DELAY_CASES = [
    pytest.param(FailureKind.CAPACITY, 3, timedelta(minutes=5), id="capacity_uses_stockout_cooldown"),
    pytest.param(FailureKind.QUOTA, 1, timedelta(minutes=5), id="quota_uses_stockout_cooldown"),
    pytest.param(FailureKind.RATE_LIMIT, 1, timedelta(seconds=15), id="rate_limit_first"),
    pytest.param(FailureKind.RATE_LIMIT, 3, timedelta(seconds=60), id="rate_limit_doubles"),
    pytest.param(FailureKind.RATE_LIMIT, 40, timedelta(minutes=5), id="rate_limit_capped"),
    pytest.param(FailureKind.NOT_READY, 1, timedelta(seconds=15), id="not_ready_first"),
    pytest.param(FailureKind.NOT_READY, 9, timedelta(minutes=2), id="not_ready_capped"),
    pytest.param(FailureKind.OTHER, 1, timedelta(minutes=1), id="other_first"),
    pytest.param(FailureKind.OTHER, 12, timedelta(minutes=30), id="other_capped"),
]


@pytest.mark.parametrize(("kind", "count", "expected"), DELAY_CASES)
def test_delay(kind: FailureKind, count: int, expected: timedelta) -> None:
    assert delay(kind, count, MIN1) == expected


def _starts(state: PoolState, spec: PoolSpec = FALLBACK, at: datetime = NOW) -> list[StartInstance]:
    result = plan(spec, observed(), state, at)
    return [a for a in result.actions if isinstance(a, StartInstance)]


def test_a_standard_stockout_is_not_retried_back_to_back() -> None:
    """Defect 11: a STANDARD stockout made 12 start calls in 3 ticks and recorded nothing."""
    state = a_state(stockouts=ALL_STOCKED_OUT, spot_unavailable_since=NOW - timedelta(minutes=3))
    calls = 0
    for tick in range(3):
        now = NOW + timedelta(minutes=tick)
        for _ in range(4):  # the shell re-plans at once after a failed start, up to four rounds per call
            starts = _starts(state, at=now)
            calls += len(starts)
            for start in starts:
                state = record_start_failure(
                    record_start_issued(state, start, now), start, STANDARD_STOCKOUT, now, FALLBACK
                )
    assert calls == 1
    failure = state.start_failures["chat-std"]
    assert (failure.kind, failure.at, failure.retry_at) == (FailureKind.CAPACITY, NOW, later(minutes=5))


@pytest.mark.parametrize(
    "error",
    [NotReadyError("resourceNotReady"), PermissionDeniedError("denied"), QuotaError("quota")],
    ids=["not_ready", "permission", "quota"],
)
def test_a_failed_spot_start_moves_to_another_vm_and_is_named_in_its_reason(error: Exception) -> None:
    first = _starts(a_state(), MIN1)
    assert [s.instance for s in first] == ["chat-a-1"]
    state = record_start_failure(record_start_issued(a_state(), first[0], NOW), first[0], error, NOW, MIN1)
    again = _starts(state, MIN1)
    if isinstance(error, QuotaError):  # a regional quota blocks every zone of the pool, like a stockout
        assert again == []
        return
    assert [s.instance for s in again] == ["chat-b-1"]
    assert f"chat-a-1 backs off after 1 failed start(s) ({failure_kind(error)})" in again[0].reason


def test_a_rate_limit_holds_every_start_of_the_pool_until_its_backoff_ends() -> None:
    first = _starts(a_state(), MIN1)
    state = record_start_failure(a_state(), first[0], RateLimitError("rateLimitExceeded"), NOW, MIN1)
    result = plan(MIN1, observed(), state, NOW)
    assert [a for a in result.actions if isinstance(a, StartInstance)] == []
    assert result.requeue_after == timedelta(seconds=15)
    assert [s.instance for s in _starts(state, MIN1, later(seconds=15))] == ["chat-a-1"]


def test_failures_in_a_row_double_the_backoff() -> None:
    start = _starts(a_state(), MIN1)[0]
    state = a_state()
    for n in range(3):
        at = NOW + timedelta(minutes=10 * n)
        state = record_start_failure(state, start, PermissionDeniedError("denied"), at, MIN1)
    failure = state.start_failures["chat-a-1"]
    assert (failure.count, failure.retry_at - failure.at) == (3, timedelta(minutes=4))


def test_a_vm_seen_live_forgets_its_failures() -> None:
    start = _starts(a_state(), MIN1)[0]
    state = record_start_failure(a_state(), start, NotReadyError("still stopping"), NOW, MIN1)
    live = all_vms(chat_a_1=an_instance("chat-a-1", InstanceStatus.PROVISIONING))
    assert plan(MIN1, observed(live), state, later(seconds=20)).next_state.start_failures == {}
    assert plan(MIN1, observed(), state, later(seconds=20)).next_state.start_failures == state.start_failures


def test_a_spot_quota_error_blocks_only_the_zones_of_its_region() -> None:
    """GPU quotas are regional: a pool spanning two regions keeps starting in the other one."""
    zones = {"chat-a-1": "us-central1-a", "chat-b-1": "us-central1-b", "chat-east-1": "us-east1-b"}
    spec = a_pool_spec(min_ready=1, spot=None, vms=[{"name": n, "zone": z} for n, z in zones.items()])
    seen = observed([an_instance(name, zone=zone) for name, zone in zones.items()])
    start = StartInstance("chat-a-1", "us-central1-a", ProvisioningModel.SPOT, "test")
    state = record_start_failure(a_state(), start, QuotaError("PREEMPTIBLE_NVIDIA_L4_GPUS"), NOW, spec)
    assert state.stockouts == dict.fromkeys(("us-central1-a", "us-central1-b"), later(minutes=5))
    starts = [a.instance for a in plan(spec, seen, state, NOW).actions if isinstance(a, StartInstance)]
    assert starts == ["chat-east-1"]
