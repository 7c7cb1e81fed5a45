"""The scenario file: which fleet and pool to simulate, against what capacity, demand and timing.

The fleet is the production fleet file, unchanged; the scenario adds only what a deployment does not say:
where capacity comes from (trace files and which trace zone stands for which fleet zone, or a synthetic
model), the demand, and how long things take. Paths are relative to the scenario file. Unknown fields are
errors and every error names its field, as in the fleet file.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spotgate.errors import ConfigError
from spotgate.fleet import ZONE, Duration, FleetConfig, PoolSpec, format_validation_error, load_fleet

FleetZone = Annotated[str, Field(pattern=ZONE)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TraceCapacity(_Strict):
    """Replay trace files (``<zone>_<gpu>_<count>.json``); ``zones`` maps trace zone -> fleet zone."""

    kind: Literal["traces"] = "traces"
    folder: Path
    zones: dict[str, FleetZone] = Field(min_length=1)


class SyntheticCapacity(_Strict):
    """Per zone: independent reclaims and stockout episodes (Poisson), for ``length`` of simulated time."""

    kind: Literal["synthetic"] = "synthetic"
    reclaims_per_day: float = Field(default=1.0, ge=0)
    stockouts_per_day: float = Field(default=0.5, ge=0)
    stockout_mean: Duration = timedelta(hours=1)
    per_zone: int = Field(default=1_000_000, ge=0)
    length: Duration = timedelta(days=7)


class Demand(_Strict):
    """``constant``: one request every ``interval``; ``poisson``: ``per_hour`` times the hour's multiplier in
    ``daily_profile`` (24 values, UTC hours); ``csv``: rows ``at,duration`` from ``file``."""

    kind: Literal["constant", "poisson", "csv"] = "poisson"
    interval: Duration = timedelta(minutes=1)
    per_hour: float = Field(default=60.0, ge=0)
    daily_profile: tuple[float, ...] = (1.0,) * 24
    duration: Duration = timedelta(seconds=20)
    file: Path | None = None

    @field_validator("daily_profile")
    @classmethod
    def _day_of_hours(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) != 24 or min(value) < 0:
            raise ValueError("daily_profile needs 24 multipliers >= 0, one per UTC hour")
        return value


class Timing(_Strict):
    """How long things take. ``boot``/``load``/``stop``/``preempt_notice``/``overflow_cold_start`` default to the
    fleet's ``sandbox`` section, which describes the same VMs."""

    tick: Duration = timedelta(minutes=1)  # Cloud Scheduler's tick
    event_delay: Duration = timedelta(seconds=2)  # log sink / agent -> Pub/Sub -> function
    wake_debounce: Duration = timedelta(seconds=15)  # the gateway's setting of the same name
    boot: Duration | None = None
    load: Duration | None = None
    stop: Duration | None = None
    preempt_notice: Duration | None = None
    overflow_cold_start: Duration | None = None
    # Cloud Run keeps an instance that served a request for a while before scaling it in.
    overflow_idle_keep: Duration = timedelta(minutes=15)


class Scenario(_Strict):
    fleet: Path
    pool: str
    capacity: TraceCapacity | SyntheticCapacity = Field(discriminator="kind")
    demand: Demand = Demand()
    timing: Timing = Timing()
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, 00:00 UTC
    length: Duration | None = None  # default: the whole trace (or the synthetic length)
    seed: int = 0
    # GCE names zones that still have capacity in a stockout error only sometimes; off means never.
    stockout_hints: bool = False
    # A pool with capacity_advice also gets advice.capacityHistory's preemption rate, modelled from the
    # capacity's past (simulation.capacity_history); false: as if capacityHistory never answered.
    capacity_history: bool = True

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; relative paths become relative to its folder.

    Raises ConfigError (unreadable, malformed, or invalid, naming the field).
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read scenario {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"scenario {path} is not valid YAML: {e}") from None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(str(path), e).replace("fleet config", "scenario", 1)) from None
    return anchored(scenario, path.parent)


def anchored(scenario: Scenario, base: Path) -> Scenario:
    """``scenario`` with its relative paths resolved against ``base``."""
    capacity = scenario.capacity
    if isinstance(capacity, TraceCapacity):
        capacity = capacity.model_copy(update={"folder": base / capacity.folder})
    demand = scenario.demand
    if demand.file is not None:
        demand = demand.model_copy(update={"file": base / demand.file})
    return scenario.model_copy(update={"fleet": base / scenario.fleet, "capacity": capacity, "demand": demand})


def scenario_pool(scenario: Scenario, fleet: FleetConfig | None = None) -> tuple[FleetConfig, PoolSpec]:
    """The fleet (loaded from the scenario's file unless given) and the pool the scenario simulates."""
    fleet = fleet or load_fleet(scenario.fleet)
    pool = fleet.pool(scenario.pool)
    if pool is None:
        raise ConfigError(f"scenario pool {scenario.pool!r} is not in {scenario.fleet}")
    if scenario.demand.kind == "csv" and scenario.demand.file is None:
        raise ConfigError("scenario demand.file: a csv demand needs a file")
    return fleet, pool
