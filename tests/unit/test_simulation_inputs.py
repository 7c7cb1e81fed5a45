"""Simulation inputs: trace files to capacity steps, the synthetic model, arrivals, the scenario file."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from spotgate.errors import ConfigError
from spotgate.simulation import arrivals
from spotgate.simulation.capacity import SyntheticParameters, load_traces, synthetic
from spotgate.simulation.report import percentile
from spotgate.simulation.scenario import TraceCapacity, load_scenario
from tests.unit.sim_builders import write_traces

START = datetime(2026, 1, 5, tzinfo=UTC)


def test_trace_steps_keep_only_changes_and_sum_zones_mapped_together(tmp_path: Path) -> None:
    folder = write_traces(tmp_path, us_east_1a=[1, 1, 0, 0, 1], us_east_1b=[0, 1, 1, 1, 1, 9], us_east_1c=[4])
    model = load_traces(folder, {"us-east-1a": "us-central1-a", "us-east-1b": "us-central1-a"})
    assert model.length == 5 * 300  # the shortest mapped file bounds the period; us-east-1c is not mapped
    assert model.zones["us-central1-a"].steps == ((0.0, 1), (300.0, 2), (600.0, 1), (1200.0, 2))
    assert model.zones["us-central1-a"].available_share(model.length) == 1.0


@pytest.mark.parametrize(
    ("files", "mapping", "message"),
    [
        pytest.param({"us_east_1a": [1]}, {"us-east-9z": "us-central1-a"}, "no file for trace zone", id="unknown_zone"),
        pytest.param({}, {"us-east-1a": "us-central1-a"}, "no <zone>_<gpu>_<count>.json", id="empty_folder"),
        pytest.param({"us_east_1a": [-1]}, {"us-east-1a": "us-central1-a"}, "counts >= 0", id="negative_count"),
    ],
)
def test_bad_traces_are_config_errors(
    tmp_path: Path, files: dict[str, list[int]], mapping: dict[str, str], message: str
) -> None:
    folder = write_traces(tmp_path / "t", **files)
    with pytest.raises(ConfigError, match=message):
        load_traces(folder, mapping)


def test_malformed_trace_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "us-east-1a_v100_1.json").write_text('{"data": [1]}')
    with pytest.raises(ConfigError, match=r"us-east-1a_v100_1.json.*gap_seconds"):
        load_traces(tmp_path, {"us-east-1a": "us-central1-a"})


def test_synthetic_capacity_is_deterministic_for_a_seed_and_has_stockouts() -> None:
    params = SyntheticParameters(reclaims_per_day=4, stockouts_per_day=2, stockout_mean=3600)
    first = synthetic(["us-central1-a", "us-central1-b"], params, 7 * 86400, random.Random(3))
    again = synthetic(["us-central1-a", "us-central1-b"], params, 7 * 86400, random.Random(3))
    assert first == again
    zone = first.zones["us-central1-a"]
    assert any(count == 0 for _, count in zone.steps)
    assert 0 < len(zone.reclaims) < 100
    assert 0.5 < zone.available_share(first.length) < 1.0


def test_poisson_follows_the_daily_profile() -> None:
    profile = (0.0,) * 12 + (1.0,) * 12
    seen = list(arrivals.poisson(60, profile, 10, 2 * 86400, start_hour=0, rng=random.Random(1)))
    assert all((a.at % 86400) >= 12 * 3600 for a in seen)
    assert 1200 < len(seen) < 1700  # 60/h for 24 h in all
    assert seen == list(arrivals.poisson(60, profile, 10, 2 * 86400, start_hour=0, rng=random.Random(1)))


def test_constant_arrivals() -> None:
    assert [a.at for a in arrivals.constant(60, 5, 200)] == [60, 120, 180]


def test_csv_demand_reads_seconds_and_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "demand.csv"
    path.write_text("at,duration\n10,2.5\n2026-01-05T00:01:00+00:00,1\n")
    assert [(a.at, a.duration) for a in arrivals.from_csv(path, START, 3600)] == [(10.0, 2.5), (60.0, 1.0)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("at,duration\nsoon,1\n", "line 2", id="bad_instant"),
        pytest.param("at,duration\n10,1\n5,1\n", "line 3: rows must be in time order", id="unordered"),
        pytest.param("when,how_long\n10,1\n", "expected columns at,duration", id="wrong_header"),
    ],
)
def test_bad_csv_demand_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "demand.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        list(arrivals.from_csv(path, START, 3600))


def test_scenario_paths_are_relative_to_its_file(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "fleet: fleet.yaml\npool: chat\ncapacity: {kind: traces, folder: t, zones: {us-east-1a: us-central1-a}}\n"
    )
    scenario = load_scenario(tmp_path / "s.yaml")
    assert scenario.fleet == tmp_path / "fleet.yaml"
    assert isinstance(scenario.capacity, TraceCapacity)
    assert scenario.capacity.folder == tmp_path / "t"


def test_scenario_errors_name_the_field(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("fleet: f.yaml\npool: chat\ncapacity: {kind: traces, folder: t, zones: {}}\n")
    with pytest.raises(ConfigError, match=r"capacity\.traces\.zones"):
        load_scenario(tmp_path / "s.yaml")


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        pytest.param([], 50, None, id="none"),
        pytest.param([3.0], 99, 3.0, id="one"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 50, 2.0, id="median_nearest_rank"),
        pytest.param([float(i) for i in range(1, 101)], 99, 99.0, id="p99"),
    ],
)
def test_percentile(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected
