"""A fleet tick at scale, before and after issue 9, measured side by side in one run.

    python -m bench.fleet_tick                     # this checkout vs the code as of issue 9's start
    python -m bench.fleet_tick --before REV        # vs another git revision
    python -m bench.fleet_tick --only DIR          # one code tree (``DIR/functions``), JSON on stdout

The scenario is 07:00 on a weekday: 20 pools of 100 SPOT VMs each (4 zones x 25), all TERMINATED, each
pool wanting ``min_ready`` 3 ready VMs, and one fleet-wide tick arrives. The production ``ControlPlane``
runs against fakes timed like GCE, with every delay scaled by ``--scale`` (default 1/20, so a 60 s VM start
takes 3 s of wall time): ``aggregatedList`` 300 ms, a ``start``/``stop`` call 500 ms before GCE answers
with an operation, the operation DONE 60 s after the call; the store is SQLite on a temporary file with a
Firestore-like 20 ms per read or write added. Reported in simulated seconds (wall time / scale):

- list calls per tick (target 1),
- time from the tick to the last start call (target: every start within 10 s of the tick),
- the tick's total time (the function's timeout is 540 s),
- store reads and writes, and start calls.

"Before" runs in a temporary ``git worktree`` of the old revision with the same fakes (the fakes use only
the Compute and RouteStore methods both versions know). Machine, command and results go in
docs/control-plane.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BEFORE = "9b266bc"  # main when issue 9's control-plane shell work started
REPO = Path(__file__).resolve().parents[1]
ZONES = ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f")
GCE_DELAYS = {"list": 0.300, "call": 0.500, "operation": 60.0, "store": 0.020}


@dataclass
class Meter:
    """Counts and times what the tick did, in wall-clock seconds since the tick began."""

    scale: float
    began: float = field(default_factory=time.monotonic)
    lists: int = 0
    starts: list[float] = field(default_factory=list)
    store_reads: int = 0
    store_writes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sleep(self, simulated: float) -> None:
        time.sleep(simulated * self.scale)

    def since(self) -> float:
        return time.monotonic() - self.began


def build_fakes(meter: Meter) -> tuple[Any, Any]:
    """A GCE-timed Compute and a Firestore-timed store wrapper, importing the code under test lazily."""
    from spotgate.domain import Instance, InstanceStatus, ProvisioningModel

    class Operation:
        def __init__(self, done_at: float) -> None:
            self._done_at = done_at

        def wait(self) -> None:
            time.sleep(max(0.0, self._done_at - time.monotonic()))

    class TimedCompute:
        def __init__(self, fleet: Any) -> None:
            self.vms = {
                vm.name: Instance(
                    vm.name,
                    vm.zone,
                    InstanceStatus.TERMINATED,
                    ProvisioningModel.SPOT,
                    labels={"spotgate-pool": p.name},
                )
                for p in fleet.pools
                for vm in p.vms
            }

        def list_instances(self, pool: str) -> list[Any]:
            self._listed()
            return [vm for vm in self.vms.values() if vm.labels["spotgate-pool"] == pool]

        def list_fleet(self) -> dict[str, list[Any]]:
            self._listed()
            grouped: dict[str, list[Any]] = {}
            for vm in self.vms.values():
                grouped.setdefault(vm.labels["spotgate-pool"], []).append(vm)
            return grouped

        def _listed(self) -> None:
            with meter.lock:
                meter.lists += 1
            meter.sleep(GCE_DELAYS["list"])

        def start(self, zone: str, instance: str) -> Operation:
            meter.sleep(GCE_DELAYS["call"])
            with meter.lock:
                meter.starts.append(meter.since())
            return Operation(time.monotonic() + GCE_DELAYS["operation"] * meter.scale)

        def resume(self, zone: str, instance: str) -> Operation:
            return self.start(zone, instance)

        def stop(self, zone: str, instance: str) -> Operation:
            meter.sleep(GCE_DELAYS["call"])
            return Operation(time.monotonic())

        def set_preemption_notice(self, zone: str, instance: str, notice: timedelta) -> bool:
            meter.sleep(GCE_DELAYS["call"])
            return False

    class TimedStore:
        READS = ("get_pool_state", "list_routes", "get_activity", "recent_events", "list_keys", "snapshot")
        WRITES = ("commit_pool_state", "put_routes", "append_events", "acquire_lease", "release_lease")

        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            target = getattr(self._inner, name)
            if name not in self.READS + self.WRITES:
                return target

            def timed(*args: Any, **kwargs: Any) -> Any:
                with meter.lock:
                    if name in self.READS:
                        meter.store_reads += 1
                    else:
                        meter.store_writes += 1
                meter.sleep(GCE_DELAYS["store"])
                return target(*args, **kwargs)

            return timed

    return TimedCompute, TimedStore


def a_fleet_of(pools: int, vms_per_zone: int) -> Any:
    from spotgate.fleet import parse_fleet

    return parse_fleet(
        {
            "project": "spotgate-bench",
            "pools": [
                {
                    "name": f"p{i:02d}",
                    "model": f"model-{i:02d}",
                    "vms": [
                        {"name": f"p{i:02d}-{z[-1]}-{n}", "zone": z} for z in ZONES for n in range(1, vms_per_zone + 1)
                    ],
                    "min_ready": 3,
                    "max_ready": 3,
                }
                for i in range(pools)
            ],
        }
    )


def run_once(scale: float, pools: int, vms_per_zone: int) -> dict[str, Any]:
    """One fleet tick with the code on ``sys.path``; its measurements in simulated seconds."""
    from spotgate.adapters.sqlite_store import SqliteStore
    from spotgate.domain import ControlKind, ControlMessage
    from spotgate.services.control_plane import ControlPlane

    class Clock:
        def now(self) -> datetime:
            return datetime.now(UTC)

    fleet = a_fleet_of(pools, vms_per_zone)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteStore(Path(tmp) / "bench.db")
        meter = Meter(scale)
        compute_type, store_type = build_fakes(meter)
        plane = ControlPlane(fleet, store_type(sqlite), compute_type(fleet), None, Clock())
        meter.began = time.monotonic()
        plane.handle(ControlMessage(ControlKind.TICK, datetime.now(UTC)))
        total = meter.since()
        sqlite.close()
    return {
        "pools": pools,
        "vms": pools * vms_per_zone * len(ZONES),
        "list_calls": meter.lists,
        "start_calls": len(meter.starts),
        "first_start_s": round(min(meter.starts) / scale, 1) if meter.starts else None,
        "last_start_s": round(max(meter.starts) / scale, 1) if meter.starts else None,
        "tick_s": round(total / scale, 1),
        "store_reads": meter.store_reads,
        "store_writes": meter.store_writes,
    }


def run_tree(code: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run this script against another code tree in a child process (so imports do not mix)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--only", str(code), "--scale", str(args.scale)]
    command += ["--pools", str(args.pools), "--vms-per-zone", str(args.vms_per_zone)]
    env = {**os.environ, "PYTHONPATH": f"{code / 'functions'}{os.pathsep}{REPO}"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), args.before],
            check=True,
            capture_output=True,
        )
        try:
            before = run_tree(old, args)
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=True, capture_output=True
            )
    after = run_tree(REPO, args)
    print(f"fleet tick: {args.pools} pools x {args.vms_per_zone * len(ZONES)} VMs, min_ready 3 each, all TERMINATED")
    print(f"fakes timed like GCE {GCE_DELAYS} (seconds), wall time x {args.scale}; results in simulated seconds")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"{'':22}{'before ' + args.before:>16}{'after':>12}")
    for key in ("list_calls", "start_calls", "first_start_s", "last_start_s", "tick_s", "store_reads", "store_writes"):
        print(f"{key:22}{before[key]!s:>16}{after[key]!s:>12}")
    if before["last_start_s"] and after["last_start_s"]:
        sooner = before["last_start_s"] / after["last_start_s"]
        print(f"last start: {sooner:.1f}x sooner; tick: {before['tick_s'] / after['tick_s']:.1f}x shorter")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, help="git revision to compare against")
    parser.add_argument("--only", type=Path, help="measure one code tree (its functions/ must be on PYTHONPATH)")
    parser.add_argument("--scale", type=float, default=1 / 20, help="wall seconds per simulated second")
    parser.add_argument("--pools", type=int, default=20)
    parser.add_argument("--vms-per-zone", type=int, default=25)
    args = parser.parse_args()
    if args.only is not None:
        print(json.dumps(run_once(args.scale, args.pools, args.vms_per_zone)))
    else:
        compare(args)


if __name__ == "__main__":
    main()
