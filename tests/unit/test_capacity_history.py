"""The modelled advice.capacityHistory: a zone's mean daily preemption rate from the capacity's past only."""

from __future__ import annotations

import random

import pytest

from spotgate.simulation.capacity import DAY, CapacityModel, ZoneCapacity
from spotgate.simulation.capacity_history import CapacityHistory, ZoneLosses

H = 3600.0
A = "us-central1-a"


def history(steps: tuple[tuple[float, int], ...], reclaims: tuple[float, ...] = ()) -> CapacityHistory:
    zone = ZoneCapacity(A, steps, reclaims)
    return CapacityHistory.of(CapacityModel({A: zone}, 60 * DAY, "test"))


RATES = [
    pytest.param(((0.0, 2),), (), 12 * H, 0.0, id="no_loss_is_rate_0"),
    pytest.param(((0.0, 0),), (), 12 * H, None, id="nothing_run_nothing_lost_no_rate"),
    pytest.param(((0.0, 2), (10 * H, 1)), (), 12 * H, 0.5, id="one_of_two_lost_today"),
    pytest.param(((0.0, 2), (10 * H, 1)), (), 5 * H, 0.0, id="a_drop_later_today_is_not_seen"),
    pytest.param(((0.0, 3), (10 * H, 0)), (), 12 * H, 1.0, id="everything_lost"),
    pytest.param(((0.0, 1),), (3 * H,), 12 * H, 0.5, id="a_reclaim_is_a_loss"),
    pytest.param(((0.0, 2), (10 * H, 1)), (), DAY + 12 * H, 0.25, id="mean_of_the_days"),
    pytest.param(((0.0, 2), (10 * H, 1)), (), 40 * DAY, 0.0, id="older_than_30_days_forgotten"),
    pytest.param(((0.0, 2), (10 * H, 1), (11 * H, 2), (12 * H, 0)), (), 13 * H, 1.0, id="drops_add_up"),
]


@pytest.mark.parametrize(("steps", "reclaims", "now", "rate"), RATES)
def test_preemption_rate(
    steps: tuple[tuple[float, int], ...], reclaims: tuple[float, ...], now: float, rate: float | None
) -> None:
    assert history(steps, reclaims).preemption_rate(A, now) == rate


def test_a_zone_outside_the_model_has_no_rate() -> None:
    assert history(((0.0, 2),)).preemption_rate("us-central1-b", H) is None


def test_the_rate_at_an_instant_depends_only_on_what_came_before_it() -> None:
    """The full trace and the trace cut at ``now`` give the same rate: the model never reads the future."""
    rng = random.Random(7)
    steps = [(0.0, 3)]
    for i in range(1, 400):
        steps.append((i * 900.0, rng.randint(0, 4)))
    full = ZoneLosses.of(ZoneCapacity(A, tuple(steps)))
    for now in (rng.uniform(0, 400 * 900.0) for _ in range(50)):
        cut = ZoneLosses.of(ZoneCapacity(A, tuple(s for s in steps if s[0] <= now)))
        assert list(full.daily_rates(now)) == list(cut.daily_rates(now))
