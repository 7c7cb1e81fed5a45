"""Oscillating load never flaps: with the default hysteresis and minimum up time, a load that wobbles by one
request around any level starts the VMs that level needs and then neither starts nor stops any (issue 9,
defect 6). Seeded random cases, each a run of the production planner in ``fleet_world``.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from tests.unit.builders import a_pool_spec
from tests.unit.fleet_world import World

SPEC = a_pool_spec(min_ready=1, max_ready=3)
TICK = timedelta(seconds=20)
WARM_UP = 30  # steps: enough for the VMs the level needs to boot and report ready


@pytest.mark.parametrize("seed", range(40))
def test_load_wobbling_around_a_level_never_starts_and_stops_vms_in_turn(seed: int) -> None:
    rng = random.Random(seed)
    # Half the cases sit right on a scale-up threshold (k x target_inflight + 1), where flapping used to happen.
    on_edge = SPEC.target_inflight * rng.randint(1, 2) + 1
    level = on_edge if seed % 2 == 0 else rng.randint(2, 3 * SPEC.target_inflight)
    world = World(SPEC, rng)
    for _ in range(WARM_UP):
        world.step(TICK, level)
    settled = len(world.starts)
    for step in range(150):
        world.step(TICK, level - (step % 2) if rng.random() < 0.8 else level - rng.randint(0, 1))
    assert world.stops == [], f"level {level}: {world.stops}"
    assert len(world.starts) == settled, f"level {level}: {world.starts}"


def test_the_issue_scenario_nine_and_eight_in_flight() -> None:
    """target_inflight 8 and in-flight alternating 9/8 used to start, stop, start, stop, each paying a boot."""
    world = World(SPEC, random.Random(0))
    for step in range(120):
        world.step(TICK, 9 if step % 2 == 0 else 8)
    assert [name for name, _ in world.starts] == ["chat-a-1", "chat-b-1"]
    assert world.stops == []
