"""The simulator end to end on small traces: it runs the production planner, and its figures follow the model.

Durations here are simulated seconds computed by the model (boot 60 s + load 60 s + 2 s event delivery),
not wall-clock measurements.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from spotgate.cli import main
from spotgate.core import planner
from spotgate.simulation.replay import simulate
from spotgate.simulation.report import Report
from tests.unit.sim_builders import a_fleet, a_scenario, hours, intervals, write_traces

H = intervals(1)


def run(
    tmp_path: Path, traces: dict[str, list[int]], *, fleet: dict[str, Any] | None = None, **scenario: Any
) -> Report:
    folder = write_traces(tmp_path / "traces", **traces)
    return simulate(a_scenario(folder, **scenario), fleet=a_fleet(**(fleet or {})))


def all_zones(a: list[int], b: list[int], c: list[int]) -> dict[str, list[int]]:
    return {"us_east_1a": a, "us_east_1b": b, "us_east_1c": c}


def test_a_ready_vm_preempted_by_a_capacity_drop_is_replaced_in_another_zone(tmp_path: Path) -> None:
    report = run(tmp_path, all_zones([1] * 2 * H + [0] * 4 * H, [1] * 6 * H, [1] * 6 * H))
    assert report.preemptions == {"us-central1-a": 1}
    assert report.recoveries == 1
    assert report.recovery_p50 is not None
    assert 120 <= report.recovery_p50 <= 240  # boot + load (+ event delivery), not a tick or two later
    assert report.gpu_hours.standard == 0
    assert report.availability > 0.98


def test_a_start_in_a_zone_without_capacity_fails_with_a_stockout_and_goes_elsewhere(tmp_path: Path) -> None:
    report = run(tmp_path, all_zones([0] * 3 * H, [1] * 3 * H, [0] * 3 * H))
    assert report.stockouts.get("us-central1-a", 0) >= 1
    assert report.preemptions == {}
    assert report.availability > 0.98  # the first boot only
    assert report.gpu_hours.spot == pytest.approx(3.0, abs=0.1)


def test_on_demand_fallback_covers_a_spot_drought(tmp_path: Path) -> None:
    drought = [0] * 2 * H + [1] * 2 * H
    with_fallback = run(tmp_path, all_zones(drought, drought, drought), fleet={"fallback": {"enabled": True}})
    without = run(tmp_path, all_zones(drought, drought, drought))
    assert with_fallback.gpu_hours.standard > 1.5
    assert without.gpu_hours.standard == 0
    assert with_fallback.availability > 0.9
    assert without.availability < 0.6


def test_the_simulator_runs_the_production_planner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drought = [0] * 2 * H + [1] * 2 * H
    traces, fleet = all_zones(drought, drought, drought), {"fallback": {"enabled": True}}
    before = run(tmp_path, traces, fleet=fleet)
    monkeypatch.setattr(planner, "_fallback", lambda _p, *, spot_starting: ([], planner.Retirement()))
    after = run(tmp_path, traces, fleet=fleet)
    assert before.gpu_hours.standard > 1.5
    assert after.gpu_hours.standard == 0
    assert after.availability < before.availability


def test_the_overflow_service_answers_while_no_vm_can(tmp_path: Path) -> None:
    drought = [0] * 1 * H + [1] * 2 * H
    report = run(tmp_path, all_zones(drought, drought, drought), fleet={"overflow": True})
    assert report.requests["overflow"] + report.requests["overflow_cold_start"] >= 25  # one per 2 min for 1 h
    assert report.requests["refused_503"] == 0
    assert report.gpu_hours.overflow >= 1.0


def test_without_overflow_a_request_is_held_for_the_wake_then_refused(tmp_path: Path) -> None:
    full = [1] * 3 * H
    report = run(tmp_path, all_zones(full, full, full), fleet={"min_ready": 0})
    assert report.requests["refused_503"] == 1  # the first: boot and load take longer than wake_hold
    assert report.requests["vm"] >= 80  # the pool stays awake from then on
    assert report.availability == 1.0  # min_ready 0 is always met


def test_an_idle_pool_scales_to_zero(tmp_path: Path) -> None:
    csv = tmp_path / "demand.csv"
    csv.write_text("at,duration\n60,10\n")
    full = [1] * 6 * H
    demand = {"kind": "csv", "file": str(csv)}
    report = run(tmp_path, all_zones(full, full, full), fleet={"min_ready": 0, "overflow": True}, demand=demand)
    assert report.requests["overflow_cold_start"] == 1
    assert 0.2 < report.gpu_hours.spot < 0.6  # boot, idle timeout 15 min, stop


def test_same_seed_same_report_other_seed_other_report(tmp_path: Path) -> None:
    trace = all_zones([1, 0] * 3 * H, [0, 1] * 3 * H, [1, 1, 0] * 2 * H)
    demand = {"kind": "poisson", "per_hour": 120}
    first = run(tmp_path, trace, demand=demand, seed=7)
    again = run(tmp_path, trace, demand=demand, seed=7)
    other = run(tmp_path, trace, demand=demand, seed=8)
    assert first == again
    assert other.requests != first.requests


def test_cli_prints_the_report_and_json(tmp_path: Path) -> None:
    write_traces(tmp_path / "traces", **all_zones([1] * H, [1] * H, [1] * H))
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(a_fleet().model_dump(mode="json")))
    scenario = {
        "fleet": "fleet.yaml",
        "pool": "chat",
        "capacity": {"kind": "traces", "folder": "elsewhere", "zones": {"us-east-1a": "us-central1-a",
                     "us-east-1b": "us-central1-b", "us-east-1c": "us-central1-c"}},
    }  # fmt: skip
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario))
    args = ["simulate", str(tmp_path / "s.yaml"), "--traces", str(tmp_path / "traces")]
    text = CliRunner().invoke(main, args)
    assert text.exit_code == 0, text.output
    assert "availability" in text.output
    assert "of always-on on-demand" in text.output
    as_json = CliRunner().invoke(main, [*args, "--as-json", "--seed", "3", "--days", "0.5"])
    assert json.loads(as_json.output)["hours"] == pytest.approx(1.0)  # the trace is one hour long


def test_cli_reports_bad_input_clearly(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("fleet: nowhere.yaml\npool: chat\ncapacity: {kind: synthetic}\n")
    result = CliRunner().invoke(main, ["simulate", str(tmp_path / "s.yaml")])
    assert result.exit_code == 1
    assert "cannot read fleet config" in result.output


def test_scenario_length_bounds_the_run(tmp_path: Path) -> None:
    full = [1] * 4 * H
    report = run(tmp_path, all_zones(full, full, full), length=hours(1))
    assert report.hours == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("notice", "cut"),
    [
        pytest.param(None, 1, id="soft_off_at_once_cuts_the_stream_in_flight"),
        pytest.param("60s", 0, id="early_notice_lets_it_finish_elsewhere_drained"),
    ],
)
def test_early_preemption_notice_keeps_the_vm_serving_through_it(tmp_path: Path, notice: str | None, cut: int) -> None:
    demand = {"kind": "constant", "interval": "20s", "duration": "25s"}
    drop = [1] * 2 * H + [0] * 2 * H
    fleet = {"preemption_notice": notice} if notice else {}
    report = run(tmp_path, all_zones(drop, [1] * 4 * H, [1] * 4 * H), fleet=fleet, demand=demand)
    assert report.preemptions == {"us-central1-a": 1}
    assert report.cut == cut


def test_capacity_advice_in_the_simulator_avoids_a_zone_without_room(tmp_path: Path) -> None:
    traces = all_zones([0] * 2 * H, [1] * 2 * H, [1] * 2 * H)
    without = run(tmp_path, traces)
    advised = run(tmp_path, traces, fleet={"capacity_advice": {"machine_type": "g2-standard-8"}})
    assert without.stockouts.get("us-central1-a", 0) >= 1
    assert advised.stockouts == {}
    assert advised.gpu_hours.spot == pytest.approx(without.gpu_hours.spot, abs=0.05)


def test_modelled_capacity_history_steers_a_restart_away_from_a_zone_that_kept_losing_capacity(tmp_path: Path) -> None:
    """Zone a dies at 3 h; b lost capacity again and again before (and dies at 5 h), c never did. Obtainability
    and uptime are equal for b and c, so only capacityHistory's rate (the past only) tells them apart."""
    traces = {
        "us_east_1a": [2] * intervals(3) + [0] * intervals(3),
        "us_east_1b": [2, 1] * (intervals(3) // 2) + [1] * intervals(2) + [0] * intervals(1),
        "us_east_1c": [1] * intervals(6),
    }
    advice = {"capacity_advice": {"machine_type": "g2-standard-8"}}
    unanswered = run(tmp_path, traces, fleet=advice, capacity_history=False)
    modelled = run(tmp_path, traces, fleet=advice)
    assert unanswered.preemptions == {"us-central1-a": 1, "us-central1-b": 1}  # by name: b after a
    assert modelled.preemptions == {"us-central1-a": 1}
