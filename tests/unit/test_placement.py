"""Zone choice for starts: SPOT first, spread, stockout cooldowns, zonesAvailable hint, preemption history."""

from __future__ import annotations

from datetime import timedelta

import pytest

from spotgate.core.placement import choose_starts, decayed_counts, stocked_out
from spotgate.domain import Instance, PoolState, Preemption
from tests.unit.builders import NOW, a_state, ago, an_instance, later

A, B, C = "us-central1-a", "us-central1-b", "us-central1-c"


def spot(name: str, zone: str) -> Instance:
    return an_instance(name, zone=zone, model="SPOT")


THREE_ZONES = [spot("pool-a-1", A), spot("pool-b-1", B), spot("pool-c-1", C)]
TWO_PER_ZONE = [spot(f"pool-{z[-1]}-{n}", z) for z in (A, B) for n in (1, 2)]
STANDARD = an_instance("pool-std", zone=A, model="STANDARD")

CASES = [
    pytest.param(THREE_ZONES, 1, [], a_state(), ["pool-a-1"], id="name_breaks_ties"),
    pytest.param(THREE_ZONES, 0, [], a_state(), [], id="nothing_wanted"),
    pytest.param(THREE_ZONES, 1, [spot("pool-a-9", A)], a_state(), ["pool-b-1"], id="zone_without_live_vm_first"),
    pytest.param(TWO_PER_ZONE, 2, [], a_state(), ["pool-a-1", "pool-b-1"], id="earlier_picks_count_for_spread"),
    pytest.param(
        THREE_ZONES, 1, [], a_state(stockouts={A: later(minutes=1)}), ["pool-b-1"], id="stocked_out_zone_skipped"
    ),
    pytest.param(THREE_ZONES, 1, [], a_state(stockouts={A: NOW}), ["pool-a-1"], id="cooldown_ends_at_its_instant"),
    pytest.param(
        THREE_ZONES,
        3,
        [],
        a_state(stockouts={A: later(minutes=1), C: later(minutes=1)}),
        ["pool-b-1"],
        id="fewer_when_zones_are_stocked_out",
    ),
    pytest.param(
        THREE_ZONES,
        1,
        [],
        a_state(stockouts={A: later(minutes=1)}, zones_available=(C,)),
        ["pool-c-1"],
        id="zones_available_hint_first",
    ),
    pytest.param(THREE_ZONES, 1, [], a_state(zones_available=(C,)), ["pool-a-1"], id="hint_stale_without_stockouts"),
    pytest.param(
        THREE_ZONES,
        2,
        [],
        a_state(stockouts={A: later(minutes=1)}, zones_available=(C,)),
        ["pool-c-1", "pool-b-1"],
        id="spread_beats_the_hint",
    ),
    pytest.param(
        THREE_ZONES,
        1,
        [],
        a_state(preemptions=(Preemption("x", A, ago(hours=1)),)),
        ["pool-b-1"],
        id="recent_preemption_avoided",
    ),
    pytest.param(
        THREE_ZONES,
        1,
        [],
        a_state(
            preemptions=(
                Preemption("x", A, ago(hours=1)),
                Preemption("y", B, ago(hours=1)),
                Preemption("z", B, ago(hours=2)),
                Preemption("w", C, ago(hours=3)),
            )
        ),
        ["pool-a-1"],
        id="fewest_preemptions_wins",
    ),
    pytest.param(
        THREE_ZONES,
        1,
        [],
        a_state(preemptions=(Preemption("x", A, ago(hours=7)),)),
        ["pool-a-1"],
        id="old_preemptions_do_not_count",
    ),
    pytest.param([STANDARD, *THREE_ZONES], 1, [], a_state(), ["pool-a-1"], id="spot_before_standard"),
    pytest.param(
        [STANDARD, *THREE_ZONES], 4, [], a_state(), ["pool-a-1", "pool-b-1", "pool-c-1", "pool-std"], id="standard_last"
    ),
    pytest.param(
        [STANDARD, *THREE_ZONES],
        1,
        [],
        a_state(stockouts={A: later(minutes=1), B: later(minutes=1), C: later(minutes=1)}),
        ["pool-std"],
        id="spot_stockouts_do_not_block_standard",
    ),
]


@pytest.mark.parametrize(("candidates", "count", "live", "state", "expected"), CASES)
def test_choose_starts(
    candidates: list[Instance], count: int, live: list[Instance], state: PoolState, expected: list[str]
) -> None:
    chosen = choose_starts(candidates, count, live=live, state=state, now=NOW)
    assert [p.instance.name for p in chosen] == expected


def test_choice_explains_itself() -> None:
    state = a_state(
        stockouts={A: later(minutes=1)}, zones_available=(C,), preemptions=(Preemption("x", C, ago(hours=2)),)
    )
    [choice] = choose_starts(THREE_ZONES, 1, live=[spot("pool-c-9", C)], state=state, now=NOW)
    assert choice.instance.name == "pool-b-1"
    assert choice.why == "0 other live VM(s) in us-central1-b, 0 preemption(s) there in the last 6h"
    [hinted] = choose_starts(THREE_ZONES, 1, live=[], state=state, now=NOW)
    assert hinted.why == (
        "0 other live VM(s) in us-central1-c, zone named in the last zonesAvailable hint, "
        "1 preemption(s) there in the last 6h"
    )


def test_stocked_out_lists_only_running_cooldowns() -> None:
    state = a_state(stockouts={A: later(seconds=1), B: NOW, C: ago(minutes=1)})
    assert stocked_out(state, NOW) == {A: later(seconds=1)}


def test_plain_count_per_zone_without_half_life() -> None:
    state = a_state(
        preemptions=(
            Preemption("x", A, ago(hours=1)),
            Preemption("y", A, ago(hours=5)),
            Preemption("z", B, ago(hours=6, seconds=1)),
        )
    )
    assert decayed_counts(state.preemptions, NOW, None) == {A: 2}


HOUR = timedelta(hours=1)
TWO_ZONES = [spot("pool-a-1", A), spot("pool-b-1", B)]
# A: two reclaims five hours ago; B: one ten minutes ago. A plain count avoids A, a decayed history B.
OLD_PAIR_NEW_ONE = a_state(
    preemptions=(
        Preemption("x", A, ago(hours=5)),
        Preemption("y", A, ago(hours=5, minutes=10)),
        Preemption("z", B, ago(minutes=10)),
    )
)

DECAYED = [
    pytest.param(OLD_PAIR_NEW_ONE, None, ["pool-b-1"], id="plain_count_avoids_the_zone_with_more"),
    pytest.param(OLD_PAIR_NEW_ONE, HOUR, ["pool-a-1"], id="decay_avoids_the_zone_reclaimed_just_now"),
    pytest.param(OLD_PAIR_NEW_ONE, 24 * HOUR, ["pool-b-1"], id="long_half_life_is_close_to_the_count"),
    pytest.param(
        a_state(preemptions=(Preemption("x", A, ago(hours=7)),)), HOUR, ["pool-a-1"], id="forgotten_after_the_memory"
    ),
    pytest.param(
        a_state(preemptions=(Preemption("x", A, ago(hours=2)), Preemption("y", B, ago(hours=2)))),
        HOUR,
        ["pool-a-1"],
        id="same_history_name_breaks_the_tie",
    ),
    pytest.param(
        a_state(preemptions=(Preemption("x", A, later(minutes=1)),)),
        HOUR,
        ["pool-b-1"],
        id="clock_skew_weighs_like_now",
    ),
]


@pytest.mark.parametrize(("state", "half_life", "expected"), DECAYED)
def test_decayed_history_ranks_zones(state: PoolState, half_life: timedelta | None, expected: list[str]) -> None:
    chosen = choose_starts(TWO_ZONES, 1, live=[], state=state, now=NOW, half_life=half_life)
    assert [p.instance.name for p in chosen] == expected


def test_weights_halve_per_half_life() -> None:
    state = a_state(
        preemptions=(
            Preemption("x", A, NOW),
            Preemption("y", A, ago(hours=1)),
            Preemption("z", B, ago(hours=2)),
            Preemption("w", C, ago(hours=6, seconds=1)),
        )
    )
    assert decayed_counts(state.preemptions, NOW, HOUR) == {A: 1.5, B: 0.25}


def test_decayed_choice_explains_itself() -> None:
    [choice] = choose_starts(TWO_ZONES, 1, live=[], state=OLD_PAIR_NEW_ONE, now=NOW, half_life=HOUR)
    assert choice.why == (
        "0 other live VM(s) in us-central1-a, 2 preemption(s) there in the last 6h (weight 0.06 with half-life 1h)"
    )
