"""Capacity advice ranks zones for SPOT starts; without advice the choice is the one made before (the
planner and placement tables, unchanged, pass with ``Observed.advice`` empty)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from spotgate.core.placement import choose_starts
from spotgate.core.planner import plan
from spotgate.domain import Instance, StartInstance, ZoneAdvice
from tests.unit.builders import NOW, a_pool_spec, a_state, an_instance, later, observed

A, B, C = "us-central1-a", "us-central1-b", "us-central1-c"


def spot(name: str, zone: str) -> Instance:
    return an_instance(name, zone=zone, model="SPOT", status="TERMINATED")


THREE = [spot("chat-a-1", A), spot("chat-b-1", B), spot("chat-c-1", C)]


def advice(*zones: tuple[str, float, float | None]) -> dict[str, ZoneAdvice]:
    return {z: ZoneAdvice(z, o, timedelta(hours=h) if h is not None else None) for z, o, h in zones}


def rated(*zones: tuple[str, float, float, float | None]) -> dict[str, ZoneAdvice]:
    """(zone, obtainability, uptime hours, capacityHistory preemption rate or None for unknown)."""
    return {z: ZoneAdvice(z, o, timedelta(hours=h), r) for z, o, h, r in zones}


CASES = [
    pytest.param({}, ["chat-a-1"], id="no_advice_name_breaks_ties"),
    pytest.param(advice((A, 0.2, 6), (B, 0.9, 6), (C, 0.5, 6)), ["chat-b-1"], id="most_obtainable_zone_first"),
    pytest.param(advice((A, 0.9, 1), (B, 0.9, 6), (C, 0.9, 2)), ["chat-b-1"], id="equal_obtainability_longer_uptime"),
    pytest.param(advice((A, 0.84, 6), (B, 0.91, 1), (C, 0.5, 9)), ["chat-b-1"], id="obtainability_in_tenths"),
    pytest.param(advice((A, 0.88, 6), (B, 0.91, 1), (C, 0.5, 9)), ["chat-a-1"], id="same_tenth_uptime_decides"),
    pytest.param(advice((B, 0.3, None)), ["chat-b-1"], id="zones_gce_left_out_rank_last"),
    pytest.param(rated((A, 0.9, 6, 0.3), (B, 0.9, 6, 0.05), (C, 0.9, 6, 0.1)), ["chat-b-1"], id="tie_lower_rate"),
    pytest.param(rated((A, 0.9, 6, 0.3), (B, 0.9, 6, None), (C, 0.9, 6, 0.4)), ["chat-a-1"], id="unknown_rate_last"),
    pytest.param(rated((A, 0.9, 6, None), (B, 0.9, 6, None), (C, 0.9, 6, None)), ["chat-a-1"], id="all_unknown"),
    pytest.param(rated((A, 0.9, 6, 0.5), (B, 0.5, 6, 0.0), (C, 0.9, 6, 0.6)), ["chat-a-1"], id="rate_after_obtain"),
    pytest.param(rated((A, 0.9, 6, 0.5), (B, 0.9, 2, 0.0), (C, 0.9, 6, 0.6)), ["chat-a-1"], id="rate_after_uptime"),
]


@pytest.mark.parametrize(("zone_advice", "expected"), CASES)
def test_advice_ranks_zones(zone_advice: dict[str, ZoneAdvice], expected: list[str]) -> None:
    chosen = choose_starts(THREE, 1, live=[], state=a_state(), now=NOW, advice=zone_advice)
    assert [p.instance.name for p in chosen] == expected


def test_spread_and_stockouts_still_come_before_advice() -> None:
    state = a_state(stockouts={B: later(minutes=3)})
    live = [an_instance("chat-c-9", zone=C, model="SPOT")]
    chosen = choose_starts(THREE, 1, live=live, state=state, now=NOW, advice=advice((B, 1.0, 9), (C, 1.0, 9)))
    assert [p.instance.name for p in chosen] == ["chat-a-1"]


def test_the_reason_names_the_advice() -> None:
    chosen = choose_starts(THREE, 1, live=[], state=a_state(), now=NOW, advice=advice((C, 0.95, 3)))
    assert "advice: obtainability 0.95, estimated uptime 3:00:00" in chosen[0].why


def test_advice_moves_the_planned_start() -> None:
    spec = a_pool_spec(min_ready=1)
    seen = observed(THREE)
    plain = plan(spec, seen, a_state(), NOW)
    advised = plan(spec, replace(seen, advice=advice((A, 0.1, 1), (C, 0.8, 4))), a_state(), NOW)
    assert [a.instance for a in plain.actions if isinstance(a, StartInstance)] == ["chat-a-1"]
    assert [a.instance for a in advised.actions if isinstance(a, StartInstance)] == ["chat-c-1"]


def test_a_pool_over_regions_spreads_over_regions_before_zones() -> None:
    vms = [spot("chat-a-1", A), spot("chat-b-1", B), spot("chat-e-1", "us-east1-b")]
    live = [an_instance("chat-c-9", zone=C, model="SPOT")]
    chosen = choose_starts(vms, 2, live=live, state=a_state(), now=NOW)
    assert [p.instance.name for p in chosen] == ["chat-e-1", "chat-a-1"]


def test_the_reason_names_the_preemption_rate() -> None:
    chosen = choose_starts(THREE, 1, live=[], state=a_state(), now=NOW, advice=rated((C, 0.95, 3, 0.125)))
    assert "advice: obtainability 0.95, estimated uptime 3:00:00, preemption rate 0.125" in chosen[0].why


def test_rates_change_nothing_without_advice() -> None:
    """capacity_advice off means no advice at all: the order is the plain one."""
    chosen = choose_starts(THREE, 1, live=[], state=a_state(), now=NOW, advice={})
    assert [p.instance.name for p in chosen] == ["chat-a-1"]
