"""Builders for simulation tests: a small fleet, trace files written to a folder, scenarios around them."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from spotgate.fleet import FleetConfig, parse_fleet
from spotgate.simulation.scenario import Scenario

ZONES = ("us-central1-a", "us-central1-b", "us-central1-c")
GAP = 300


def a_fleet(**pool: Any) -> FleetConfig:
    """Pool ``chat``: SPOT chat-a-1, chat-b-1, chat-c-1, STANDARD chat-standard (zone a); min_ready 1.

    Overrides replace pool fields; ``overflow=True`` adds the usual overflow service.
    """
    spec: dict[str, Any] = {
        "name": "chat",
        "model": "llama",
        "spot": {"zones": list(ZONES)},
        "vms": [{"name": "chat-standard", "zone": ZONES[0], "provisioning_model": "STANDARD"}],
        "min_ready": 1,
        "max_ready": 2,
        "stockout_cooldown": "5m",
    }
    if pool.pop("overflow", False):
        spec["overflow"] = {"service": "chat-overflow", "url": "https://chat-overflow.a.run.app", "cooldown": "5m"}
    spec.update(pool)
    return parse_fleet({"project": "spotgate-test", "region": "us-central1", "pools": [spec]})


def write_traces(folder: Path, **zones: list[int]) -> Path:
    """One ``<zone>_v100_1.json`` per keyword (``us_east_1a=[1, 0, 1]`` -> us-east-1a) with a 300 s gap."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in zones.items():
        zone = name.replace("_", "-")
        (folder / f"{zone}_v100_1.json").write_text(json.dumps({"metadata": {"gap_seconds": GAP}, "data": data}))
    return folder


def a_scenario(folder: Path, mapping: dict[str, str] | None = None, **fields: Any) -> Scenario:
    """A trace scenario over ``folder`` (trace zones x, y, z -> zones a, b, c by default), constant demand."""
    data: dict[str, Any] = {
        "fleet": "unused.yaml",
        "pool": "chat",
        "capacity": {"kind": "traces", "folder": str(folder), "zones": mapping or dict(zip(TRACE, ZONES, strict=True))},
        "demand": {"kind": "constant", "interval": "2m", "duration": "20s"},
        "timing": {"boot": "60s", "load": "60s", "event_delay": "2s"},
    }
    data.update(fields)
    return Scenario.model_validate(data)


TRACE = ("us-east-1a", "us-east-1b", "us-east-1c")


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def intervals(n_hours: float) -> int:
    return int(n_hours * 3600 / GAP)
