"""Measure pool options with ``spotgate simulate`` on the shared traces, one markdown table row per run.

Each row is the example chat pool (``examples/fleet.yaml``) with one change, replayed on one trace with the
scenario of ``examples/simulation/aws<N>-chat.yaml``; the last rows repeat the chosen options with a slower
engine load, to show how much the result depends on it. Run from the repository root:
    .venv/bin/python -m bench.simulation_options [TRACES_ROOT (default ../shared/traces)] [AWS1 AWS2 AWS3]
        [--only=TEXT (variants whose name contains it)] [--regions-only] [--seed=N (instead of the scenario's)]
"""

from __future__ import annotations

import copy
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from spotgate.fleet import FleetConfig, parse_fleet
from spotgate.simulation.replay import simulate
from spotgate.simulation.report import Report
from spotgate.simulation.scenario import Scenario, TraceCapacity, load_scenario

NULL = object()  # an option set to null explicitly (None: the option left at its default)
ADVICE = {"machine_type": "g2-standard-8"}
CHOSEN: dict[str, Any] = {"fallback": {"enabled": True, "after": "0s"}, "overflow": None}
VARIANTS: dict[str, dict[str, Any]] = {
    "example pool (fallback after 2m, overflow, cooldown 5m)": {},
    "fallback after 30s": {"fallback": {"enabled": True, "after": "30s"}},
    "fallback after 0s": {"fallback": {"enabled": True, "after": "0s"}},
    "no fallback": {"fallback": {"enabled": False}},
    "no overflow": {"overflow": None},
    "fallback after 0s, overflow cooldown 0s": {
        "fallback": {"enabled": True, "after": "0s"},
        "overflow": {"service": "chat-overflow", "url": "https://chat-overflow-local.a.run.app", "cooldown": "0s"},
    },
    "overflow warmed only with recent demand": {
        "overflow": {
            "service": "chat-overflow",
            "url": "https://chat-overflow-local.a.run.app",
            "cooldown": "5m",
            "warm": "recent_demand",
        }
    },
    "chosen + spare 1 while busy": {**CHOSEN, "spare": 1},
    "chosen + capacity advice (modelled), capacityHistory unanswered": {**CHOSEN, "capacity_advice": ADVICE},
    "chosen + capacity advice (modelled)": {**CHOSEN, "capacity_advice": ADVICE},
    "chosen, preemption history: plain 6 h count": {**CHOSEN, "preemption_half_life": NULL},
    "chosen, preemption history: half-life 5m": {**CHOSEN, "preemption_half_life": "5m"},
    "chosen, preemption history: half-life 30m": {**CHOSEN, "preemption_half_life": "30m"},
    "chosen, preemption history: half-life 1h": {**CHOSEN, "preemption_half_life": "1h"},
    "chosen, preemption history: half-life 2h": {**CHOSEN, "preemption_half_life": "2h"},
    "chosen, stockout history: weight 0.25": {**CHOSEN, "stockout_weight": 0.25},
    "chosen, stockout history: weight 0.5": {**CHOSEN, "stockout_weight": 0.5},
    "chosen, stockout history: weight 1": {**CHOSEN, "stockout_weight": 1},
    "chosen, stockout history: weight 2": {**CHOSEN, "stockout_weight": 2},
    "chosen, stockout history: weight 4": {**CHOSEN, "stockout_weight": 4},
    "**chosen: fallback after 0s, no overflow**": CHOSEN,
}
# Variants that change the scenario rather than the pool.
SCENARIO_CHANGES: dict[str, dict[str, Any]] = {
    "chosen + capacity advice (modelled), capacityHistory unanswered": {"capacity_history": False},
}


# What spanning regions buys on the nine-zone AWS3 trace: the chosen options, one VM per zone, the pool in the
# four zones of one region (us-east-1) or in all nine zones of three regions.
ONE_REGION = {"us-east-1a": "us-central1-a", "us-east-1c": "us-central1-b", "us-east-1d": "us-central1-c",
              "us-east-1f": "us-central1-f"}  # fmt: skip
THREE_REGIONS = {**ONE_REGION, "us-east-2a": "us-east1-b", "us-east-2b": "us-east1-c", "us-west-2a": "us-west1-a",
                 "us-west-2b": "us-west1-b", "us-west-2c": "us-west1-c"}  # fmt: skip


def region_rows(base: dict[str, Any], scenario: Scenario) -> list[tuple[str, Scenario, FleetConfig]]:
    rows = []
    for name, mapping in (("4 zones of 1 region", ONE_REGION), ("9 zones of 3 regions", THREE_REGIONS)):
        data = copy.deepcopy(base)
        data["regions"] = sorted({z.rsplit("-", 1)[0] for z in mapping.values()} - {data["region"]})
        # Listed, not a spot group: a group names VMs by zone letter, which repeats across regions.
        vms = [{"name": f"chat-{z.replace('-', '')}", "zone": z} for z in sorted(set(mapping.values()))]
        vms.append({"name": "chat-standard", "zone": "us-central1-a", "provisioning_model": "STANDARD"})
        changes = {**CHOSEN, "spot": None, "vms": vms}
        capacity = scenario.capacity.model_copy(update={"zones": mapping})
        rows.append((f"chosen, {name}", scenario.model_copy(update={"capacity": capacity}), fleet_with(data, changes)))
    return rows


def fleet_with(base: dict[str, Any], changes: dict[str, Any]) -> FleetConfig:
    data = copy.deepcopy(base)
    pool = data["pools"][0]
    for key, value in changes.items():
        if value is NULL:
            pool[key] = None
        elif value is None:
            pool.pop(key, None)
        else:
            pool[key] = value
    return parse_fleet(data)


def row(trace: str, name: str, report: Report) -> str:
    g = report.gpu_hours
    cells = [
        trace,
        name,
        f"{100 * report.availability:.2f}%",
        f"{100 * (report.served_without_wait or 0):.2f}%",
        f"{100 * (report.cost_share or 0):.1f}%",
        f"{g.spot:,.0f} / {g.standard:,.0f} / {g.overflow:,.0f}",
        f"{sum(report.preemptions.values())}",
        f"{sum(report.stockouts.values())}",
        f"{report.recovery_p50 or 0:.0f} / {report.recovery_p99 or 0:.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def on_trace(scenario: Scenario, folder: Path) -> Scenario:
    if not isinstance(scenario.capacity, TraceCapacity):
        raise SystemExit("the scenario does not replay traces")
    return scenario.model_copy(update={"capacity": scenario.capacity.model_copy(update={"folder": folder})})


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/traces")
    traces = [a for a in sys.argv[2:] if not a.startswith("--")] or ["AWS1", "AWS2", "AWS3"]
    base = yaml.safe_load(Path("examples/fleet.yaml").read_text(encoding="utf-8"))
    print("| trace | pool options | >= min_ready | served at once | cost vs on-demand | GPU-h SPOT / STD / overflow "
          "| preemptions | stockouts | to ready p50 / p99 s |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for trace in traces:
        scenario = on_trace(load_scenario(Path(f"examples/simulation/{trace.lower()}-chat.yaml")), root / trace)
        seeds = [int(a.removeprefix("--seed=")) for a in sys.argv if a.startswith("--seed=")]
        scenario = scenario.model_copy(update={"seed": seeds[-1]}) if seeds else scenario
        only = [a.removeprefix("--only=") for a in sys.argv if a.startswith("--only=")]
        variants = {n: c for n, c in VARIANTS.items() if not only or any(o in n for o in only)}
        for name, changes in variants.items() if "--regions-only" not in sys.argv else ():
            variant = scenario.model_copy(update=SCENARIO_CHANGES.get(name, {}))
            print(row(trace, name, simulate(variant, fleet_with(base, changes))), flush=True)
        if only or "--regions-only" in sys.argv:
            for name, spread, fleet in (
                region_rows(base, scenario) if "--regions-only" in sys.argv and trace == "AWS3" else ()
            ):
                print(row(trace, name, simulate(spread, fleet)), flush=True)
            continue
        slow = scenario.model_copy(
            update={"timing": scenario.timing.model_copy(update={"load": timedelta(seconds=120)})}
        )
        print(row(trace, "chosen, engine load 120 s instead of 30 s", simulate(slow, fleet_with(base, CHOSEN))))
        if trace == "AWS3":
            for name, spread, fleet in region_rows(base, scenario):
                print(row(trace, name, simulate(spread, fleet)), flush=True)


if __name__ == "__main__":
    main()
