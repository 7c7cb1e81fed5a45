"""Stockout history: a SPOT stockout is remembered per zone (bounded, pruned with the preemptions) and, with
``stockout_weight``, counts against its zone in placement after its cooldown has ended, decayed."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from spotgate.core.placement import PREEMPTION_MEMORY, STOCKOUTS_PER_ZONE, ZoneHistory, choose_starts
from spotgate.core.planner import plan
from spotgate.core.pruning import pruned
from spotgate.core.state_updates import record_start_failure
from spotgate.domain import PoolState, Preemption, ProvisioningModel, StartInstance, Stockout
from spotgate.errors import CapacityError
from tests.unit.builders import NOW, a_pool_spec, a_state, ago, all_vms, an_instance, later, observed

A, B = "us-central1-a", "us-central1-b"
HOUR = timedelta(hours=1)
TWO_ZONES = [an_instance("pool-a-1", zone=A, model="SPOT"), an_instance("pool-b-1", zone=B, model="SPOT")]


def stockouts(*ages: tuple[str, timedelta]) -> tuple[Stockout, ...]:
    return tuple(Stockout(f"vm-{i}", zone, NOW - age) for i, (zone, age) in enumerate(ages))


# A plain count avoids a (two refusals), a decayed history b (refused minutes ago).
TWO_OLD_IN_A_ONE_NEW_IN_B = a_state(
    stockout_history=stockouts((A, timedelta(hours=5)), (A, timedelta(hours=5)), (B, timedelta(minutes=5)))
)
PREEMPTED_IN_A_REFUSED_IN_B = a_state(
    preemptions=(Preemption("x", A, ago(hours=1)),), stockout_history=stockouts((B, HOUR))
)

RANKING = [
    pytest.param(a_state(), 1.0, HOUR, "pool-a-1", id="no_history_name_breaks_the_tie"),
    pytest.param(
        a_state(stockout_history=stockouts((A, timedelta(minutes=10)))), 1.0, HOUR, "pool-b-1", id="recent_avoided"
    ),
    pytest.param(
        a_state(stockout_history=stockouts((A, timedelta(minutes=10)))), 0.0, HOUR, "pool-a-1", id="weight_0_ignores"
    ),
    pytest.param(
        a_state(stockout_history=stockouts((A, timedelta(hours=7)))), 1.0, HOUR, "pool-a-1", id="forgotten_after_6h"
    ),
    pytest.param(TWO_OLD_IN_A_ONE_NEW_IN_B, 1.0, None, "pool-b-1", id="plain_count_avoids_the_zone_with_more"),
    pytest.param(TWO_OLD_IN_A_ONE_NEW_IN_B, 1.0, HOUR, "pool-a-1", id="decay_avoids_the_zone_refused_just_now"),
    pytest.param(PREEMPTED_IN_A_REFUSED_IN_B, 0.5, HOUR, "pool-b-1", id="light_stockout_weighs_less_than_a_preemption"),
    pytest.param(PREEMPTED_IN_A_REFUSED_IN_B, 2.0, HOUR, "pool-a-1", id="heavy_stockout_weighs_more_than_a_preemption"),
    pytest.param(
        a_state(stockouts={A: later(minutes=1)}, zones_available=(A,), stockout_history=stockouts((B, HOUR))),
        4.0,
        HOUR,
        "pool-b-1",
        id="a_running_cooldown_still_blocks",
    ),
]


@pytest.mark.parametrize(("state", "weight", "half_life", "expected"), RANKING)
def test_stockout_history_ranks_zones(
    state: PoolState, weight: float, half_life: timedelta | None, expected: str
) -> None:
    [chosen] = choose_starts(TWO_ZONES, 1, live=[], state=state, now=NOW, half_life=half_life, stockout_weight=weight)
    assert chosen.instance.name == expected


SCORES = [
    pytest.param((), (), 1.0, 0.0, id="nothing"),
    pytest.param(((A, timedelta(0)),), (), 1.0, 1.0, id="one_stockout_now"),
    pytest.param(((A, HOUR),), (), 1.0, 0.5, id="halved_after_a_half_life"),
    pytest.param(((A, HOUR), (A, 2 * HOUR)), (), 2.0, 1.5, id="weighted_sum"),
    pytest.param(((A, HOUR),), ((A, timedelta(0)),), 0.5, 1.25, id="added_to_the_preemptions"),
    pytest.param(((A, timedelta(hours=6, seconds=1)),), (), 1.0, 0.0, id="outside_the_memory"),
]


@pytest.mark.parametrize(("stocked", "preempted", "weight", "score"), SCORES)
def test_zone_score(
    stocked: tuple[tuple[str, timedelta], ...],
    preempted: tuple[tuple[str, timedelta], ...],
    weight: float,
    score: float,
) -> None:
    state = a_state(
        stockout_history=stockouts(*stocked),
        preemptions=tuple(Preemption(f"p{i}", zone, NOW - age) for i, (zone, age) in enumerate(preempted)),
    )
    assert ZoneHistory.of(state, NOW, HOUR, weight).score(A) == score


def test_the_choice_names_the_stockouts() -> None:
    state = a_state(stockout_history=stockouts((B, HOUR), (B, 2 * HOUR)))
    [choice] = choose_starts(TWO_ZONES[1:], 1, live=[], state=state, now=NOW, half_life=HOUR, stockout_weight=1.0)
    assert choice.why == (
        "0 other live VM(s) in us-central1-b, 0 preemption(s) there in the last 6h (weight 0.00 with half-life 1h), "
        "2 stockout(s) there in the last 6h (weight 0.75 with half-life 1h)"
    )


SPEC = a_pool_spec(min_ready=1, stockout_weight=1.0, preemption_half_life="15m")
STOCKOUT_IN_A = CapacityError(
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", zone=A, code="ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"
)


def _start_after(state: PoolState, now: datetime) -> list[str]:
    """The VMs the production planner starts for an idle pool with min_ready 1 (every VM stopped)."""
    decided = plan(SPEC, observed(all_vms()), state, now)
    return [a.instance for a in decided.actions if isinstance(a, StartInstance)]


def _refused_in_a(state: PoolState, now: datetime) -> PoolState:
    start = StartInstance("chat-a-1", A, ProvisioningModel.SPOT, "test")
    return record_start_failure(state, start, STOCKOUT_IN_A, now, SPEC)


def test_a_zone_that_just_stocked_out_ranks_below_an_equal_zone_until_its_history_decays() -> None:
    """Regression: before stockout history, the zone whose cooldown had just ended ranked first again (by name)."""
    refused = _refused_in_a(a_state(), NOW)
    assert refused.stockout_history == (Stockout("chat-a-1", A, NOW),)

    after_cooldown = NOW + SPEC.stockout_cooldown + timedelta(seconds=1)
    assert _start_after(refused, after_cooldown) == ["chat-b-1"]
    hours_later = NOW + PREEMPTION_MEMORY + timedelta(seconds=1)
    assert _start_after(pruned(refused, SPEC, [], hours_later), hours_later) == ["chat-a-1"]
    assert _start_after(refused, after_cooldown) != _start_after(a_state(), after_cooldown)


def test_the_history_stays_bounded_however_often_a_zone_refuses() -> None:
    state = a_state()
    for minute in range(3 * 60):  # a start refused every minute for three hours, in two zones
        now = NOW + timedelta(minutes=minute)
        state = _refused_in_a(state, now)
        b_start = StartInstance("chat-b-1", B, ProvisioningModel.SPOT, "test")
        state = record_start_failure(state, b_start, CapacityError("full", zone=B, code="x"), now, SPEC)
    newest = NOW + timedelta(minutes=3 * 60 - 1)
    assert len(state.stockout_history) == 2 * STOCKOUTS_PER_ZONE
    assert {s.at for s in state.stockout_history} == {newest - timedelta(minutes=m) for m in range(STOCKOUTS_PER_ZONE)}
    assert pruned(state, SPEC, [], newest + PREEMPTION_MEMORY + timedelta(seconds=1)).stockout_history == ()


def test_a_duplicate_stockout_is_recorded_once() -> None:
    once = _refused_in_a(a_state(), NOW)
    assert _refused_in_a(once, NOW).stockout_history == once.stockout_history


def test_only_the_zone_of_the_error_is_remembered() -> None:
    start = StartInstance("chat-a-1", A, ProvisioningModel.SPOT, "test")
    state = record_start_failure(a_state(), start, CapacityError("full", zone=B, code="x"), NOW, SPEC)
    assert state.stockout_history == (Stockout("chat-a-1", B, NOW),)
