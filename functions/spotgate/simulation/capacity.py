"""How many SPOT VMs each fleet zone lets run over time: replayed from trace files, or generated.

A trace file (format in ``../shared/traces/README.md``) gives, per interval of ``gap_seconds``, the number of
SPOT VMs of one shape a zone let run. Several trace zones may stand for one fleet zone (their capacities add)
and trace zones nobody maps are left out. The synthetic model is for fleets without a trace: independent
reclaims (GCE takes one VM although the zone still has capacity) and stockout episodes (capacity 0).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from spotgate.errors import ConfigError

# Capacity of a synthetic zone outside stockouts: more than any pool places in one zone.
UNBOUNDED = 1_000_000
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class ZoneCapacity:
    """One fleet zone: ``steps`` are (seconds from the start, VMs allowed from then on), sorted, the first at 0;
    ``reclaims`` are instants at which GCE reclaims one running VM there whatever the capacity."""

    zone: str
    steps: tuple[tuple[float, int], ...]
    reclaims: tuple[float, ...] = ()

    def available_share(self, length: float) -> float:
        """Share of ``[0, length)`` with capacity for at least one VM."""
        bounds = [*(t for t, _ in self.steps[1:]), length]
        up = sum(end - t for (t, n), end in zip(self.steps, bounds, strict=True) if n > 0 and t < length)
        return up / length if length > 0 else 0.0


@dataclass(frozen=True, slots=True)
class CapacityModel:
    """Capacity of every fleet zone the run may place SPOT VMs in, for ``length`` seconds."""

    zones: Mapping[str, ZoneCapacity]
    length: float
    source: str


def load_traces(folder: Path, mapping: Mapping[str, str]) -> CapacityModel:
    """Capacity per fleet zone from the trace files in ``folder``; ``mapping`` maps trace zone -> fleet zone.

    Raises ConfigError for a missing folder, a mapped trace zone without a file, or a malformed file.
    """
    files = _trace_files(folder)
    unknown = sorted(set(mapping) - set(files))
    if unknown:
        raise ConfigError(f"traces {folder}: no file for trace zone(s) {', '.join(unknown)} (have {', '.join(files)})")
    series = {trace_zone: _read_trace(files[trace_zone]) for trace_zone in mapping}
    gaps = {gap for gap, _ in series.values()}
    if len(gaps) != 1:
        raise ConfigError(f"traces {folder}: files disagree on gap_seconds ({sorted(gaps)})")
    gap = gaps.pop()
    intervals = min(len(data) for _, data in series.values())  # files of one folder may end a few intervals apart
    zones = {}
    for fleet_zone in sorted(set(mapping.values())):
        parts = [series[t][1] for t, z in mapping.items() if z == fleet_zone]
        summed = [sum(values) for values in zip(*(p[:intervals] for p in parts), strict=True)]
        zones[fleet_zone] = ZoneCapacity(fleet_zone, _steps(summed, gap))
    return CapacityModel(zones, intervals * gap, f"traces {folder}")


def _trace_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise ConfigError(f"traces: {folder} is not a folder")
    files = {path.name.split("_", 1)[0]: path for path in sorted(folder.glob("*.json"))}
    if not files:
        raise ConfigError(f"traces: no <zone>_<gpu>_<count>.json file in {folder}")
    return files


def _read_trace(path: Path) -> tuple[float, list[int]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        gap = float(raw["metadata"]["gap_seconds"])
        data = [int(v) for v in raw["data"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"trace {path}: expected {{'metadata': {{'gap_seconds': N}}, 'data': [...]}} ({e})") from None
    if gap <= 0 or not data or min(data) < 0:
        raise ConfigError(f"trace {path}: gap_seconds must be positive and data non-empty counts >= 0")
    return gap, data


def _steps(values: Sequence[int], gap: float) -> tuple[tuple[float, int], ...]:
    steps = [(0.0, values[0])]
    for i, value in enumerate(values[1:], start=1):
        if value != steps[-1][1]:
            steps.append((i * gap, value))
    return tuple(steps)


@dataclass(frozen=True, slots=True)
class SyntheticParameters:
    """Per zone: ``reclaims_per_day`` independent reclaims, ``stockouts_per_day`` episodes of capacity 0 lasting
    ``stockout_mean`` seconds on average (exponential), ``per_zone`` VMs allowed otherwise."""

    reclaims_per_day: float
    stockouts_per_day: float
    stockout_mean: float
    per_zone: int = UNBOUNDED


def synthetic(zones: Sequence[str], params: SyntheticParameters, length: float, rng: random.Random) -> CapacityModel:
    """Independent Poisson processes per zone, drawn from ``rng`` in zone order (deterministic for a seed)."""
    model = {zone: _synthetic_zone(zone, params, length, rng) for zone in sorted(zones)}
    what = f"{params.reclaims_per_day:g} reclaims/day, {params.stockouts_per_day:g} stockouts/day"
    return CapacityModel(model, length, f"synthetic ({what} per zone)")


def _synthetic_zone(zone: str, params: SyntheticParameters, length: float, rng: random.Random) -> ZoneCapacity:
    steps: list[tuple[float, int]] = [(0.0, params.per_zone)]
    for start in _poisson_instants(params.stockouts_per_day / DAY, length, rng):
        end = start + rng.expovariate(1.0 / params.stockout_mean) if params.stockout_mean > 0 else start
        if start >= steps[-1][0] and end > start:
            steps += [(start, 0), (min(end, length), params.per_zone)]
    return ZoneCapacity(zone, tuple(steps), tuple(_poisson_instants(params.reclaims_per_day / DAY, length, rng)))


def _poisson_instants(rate: float, length: float, rng: random.Random) -> list[float]:
    instants: list[float] = []
    if rate <= 0 or not math.isfinite(rate):
        return instants
    t = rng.expovariate(rate)
    while t < length:
        instants.append(t)
        t += rng.expovariate(rate)
    return instants
