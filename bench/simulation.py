"""How fast ``spotgate simulate`` replays a trace: simulated hours per wall second, one core.

Run from the repository root (the shared traces sit beside it, in ../shared/traces):
    .venv/bin/python -m bench.simulation [SCENARIO [TRACES_FOLDER]]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from spotgate.simulation.replay import simulate
from spotgate.simulation.scenario import TraceCapacity, load_scenario


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/simulation/aws3-chat.yaml")
    scenario = load_scenario(path)
    if len(sys.argv) > 2 and isinstance(scenario.capacity, TraceCapacity):
        capacity = scenario.capacity.model_copy(update={"folder": Path(sys.argv[2])})
        scenario = scenario.model_copy(update={"capacity": capacity})
    started = time.process_time()
    report = simulate(scenario)
    cpu = time.process_time() - started
    print(f"{path}: {report.hours:,.0f} simulated hours in {cpu:.1f} s of CPU ({report.hours / cpu:,.0f} h/s)")


if __name__ == "__main__":
    main()
