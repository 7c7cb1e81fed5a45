"""When a gap warms the overflow service: ``always`` (every gap) or ``recent_demand`` (only if someone called)."""

from __future__ import annotations

from datetime import datetime

import pytest

from spotgate.core.overflow import overflow_actions
from spotgate.domain import Activity, PoolState
from spotgate.fleet import PoolSpec
from tests.unit.builders import NOW, a_pool_spec, a_state, ago


def spec_warming(policy: str) -> PoolSpec:
    spec = a_pool_spec(overflow=True)  # idle_timeout 15m, overflow cooldown 5m
    assert spec.overflow is not None
    return spec.model_copy(update={"overflow": spec.overflow.model_copy(update={"warm": policy})})


def called(at: datetime | None, inflight: int = 0) -> Activity:
    return Activity(pool="chat", last_request_at=at, inflight=inflight)


GAP = {"ready": 0, "desired": 1}
NO_GAP = {"ready": 1, "desired": 1}

CASES = [
    pytest.param("always", GAP, a_state(), None, 1, "0 of 1 desired VMs ready", id="always_warms_a_quiet_gap"),
    pytest.param("recent_demand", GAP, a_state(), None, None, "", id="quiet_gap_never_called_stays_cold"),
    pytest.param("recent_demand", GAP, a_state(), called(ago(minutes=16)), None, "", id="called_before_idle_timeout"),
    pytest.param(
        "recent_demand", GAP, a_state(), called(ago(minutes=15)), 1, "0 of 1 desired VMs ready", id="called_at_the_edge"
    ),
    pytest.param(
        "recent_demand", GAP, a_state(), called(ago(hours=2), inflight=1), 1, "0 of 1", id="request_in_flight_counts"
    ),
    pytest.param(
        "recent_demand",
        GAP,
        a_state(gap_since=ago(minutes=20), overflow_warm=True),
        called(ago(minutes=16)),
        0,
        "a gap, but no request within the 0:15:00 idle timeout",
        id="warm_service_cooled_once_demand_stops",
    ),
    pytest.param(
        "recent_demand",
        NO_GAP,
        a_state(gap_closed_at=ago(minutes=1), overflow_warm=True),
        called(ago(minutes=16)),
        0,
        "no request within",
        id="quiet_cooldown_does_not_keep_it_warm",
    ),
    pytest.param(
        "recent_demand",
        NO_GAP,
        a_state(gap_closed_at=ago(minutes=1), overflow_warm=True),
        called(ago(minutes=1)),
        None,
        "",
        id="busy_cooldown_keeps_it_warm",
    ),
]


@pytest.mark.parametrize(("policy", "readiness", "state", "activity", "expected_min", "why"), CASES)
def test_warming_policy(  # noqa: PLR0917 - a table row reads best positionally
    policy: str,
    readiness: dict[str, int],
    state: PoolState,
    activity: Activity | None,
    expected_min: int | None,
    why: str,
) -> None:
    actions, after = overflow_actions(spec_warming(policy), state, None, now=NOW, activity=activity, **readiness)
    assert [a.min_instances for a in actions] == ([] if expected_min is None else [expected_min])
    assert all(why in a.reason for a in actions)
    assert after.gap_since == (state.gap_since or NOW if readiness is GAP else None)


def test_recent_demand_is_rejected_when_misspelled() -> None:
    spec = a_pool_spec(overflow=True).model_dump()
    spec["overflow"]["warm"] = "sometimes"
    with pytest.raises(ValueError, match="recent_demand"):
        PoolSpec.model_validate(spec)
