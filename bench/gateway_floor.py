"""Where one gateway worker's CPU per request goes: spotgate next to bare apps on the same server, one run.

    python -m bench.gateway_floor [--rate 300] [--seconds 6] [--max-steps 300,400,500,600,800,1000,1200]

One engine (the sandbox's fake OpenAI engine, answering at once) and, each in turn under gunicorn with one
gevent worker on loopback: ``answer`` (a WSGI app that answers itself: the server alone), ``urllib3`` (a WSGI
app forwarding to the engine with urllib3: server plus HTTP client), ``flask+urllib3`` (the same in a Flask
view) and spotgate under its production gunicorn config (authentication, limits, checks, accounting, access
line). Every target gets the same request at the same open-loop rate, in two interleaved rounds; the table
gives the worker's CPU per request (the smaller round), what each layer adds, and the rate one worker could
reach on a core of its own at that CPU. Then the highest rate each sustains here (bench.gateway's rule:
>= 97 % answered, no errors, p99 < 100 ms; two tries per step), with the engine alone for reference: the
load generator, the engine and the worker share this machine's cores, so sustained rates stay below ceilings.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from bench import loadgen, processes
from bench.gateway import MS, Report, max_rate, run, target
from bench.loadgen import Target

PRODUCTION = "gateway.worker.HeaderTimeoutWorker"  # run_service/gunicorn.conf.py's worker class
BARE = {"answer": "answer", "urllib3": "urllib3_proxy", "flask+urllib3": "flask_urllib3_proxy"}


@contextmanager
def bare(app: str, engine: str) -> Iterator[tuple[str, int]]:
    """``bench.floor_apps:<app>`` under gunicorn, one gevent worker; yields (url, worker pid)."""
    port = processes.free_port("127.0.0.1")
    env = {**os.environ, "BENCH_ENGINE": engine}
    argv = [sys.executable, "-m", "gunicorn", "-w", "1", "-k", "gevent", "--worker-connections", "2000"]
    argv += ["-b", f"127.0.0.1:{port}", "--log-level", "warning", f"bench.floor_apps:{app}"]
    process = subprocess.Popen(
        processes.on_server_core(argv),
        cwd=processes.ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        processes.wait_port("127.0.0.1", port, 30)
        yield f"http://127.0.0.1:{port}", processes.only_child(process.pid)
    finally:
        processes.stop(process)


def cpu_per_request(t: Target, pid: int, rate: int, seconds: float) -> float:
    run(loadgen.open_loop(t, rate, 1.0))  # warm-up: connections and caches
    before = processes.cpu_seconds(pid)
    replies, _ = run(loadgen.open_loop(t, rate, seconds))
    return (processes.cpu_seconds(pid) - before) * MS / max(1, len(replies))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=int, default=300)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--max-steps", default="300,400,500,600,800,1000,1200")
    p.add_argument("--pin", action="store_true", help="each server on a core of its own, the rest elsewhere")
    p.add_argument("--out", default=None, help="also write the report (markdown) to this file")
    a = p.parse_args()
    report = Report.started("bench.gateway_floor")
    if a.pin:
        report.add(processes.pin_server_core())
    steps = [int(s) for s in a.max_steps.split(",")]
    with processes.engine("127.0.91.2", "fast-model", ttft=0.0, tokens_per_second=1e6) as engine:
        cpu: dict[str, list[float]] = {name: [] for name in [*BARE, "spotgate"]}
        sustained: dict[str, int] = {}
        for round_ in range(2):
            for name, app in BARE.items():
                with bare(app, engine) as (url, pid):
                    t = target(url, "fast", stream=False, max_tokens=16, key="floor")
                    cpu[name].append(cpu_per_request(t, pid, a.rate, a.seconds))
                    if round_ == 1:
                        sustained[name] = _quiet_max(t, steps)
            with processes.gateway({"fast": engine}, worker_class=PRODUCTION) as (url, key, pid):
                t = target(url, "fast", stream=False, max_tokens=16, key=key)
                cpu["spotgate"].append(cpu_per_request(t, pid, a.rate, a.seconds))
                if round_ == 1:
                    sustained["spotgate"] = _quiet_max(t, steps)
        sustained["engine alone"] = _quiet_max(target(engine, "fast", stream=False, max_tokens=16), steps)
    _table(report, a.rate, cpu, sustained)
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(report.lines) + "\n")


def _quiet_max(t: Target, steps: list[int]) -> int:
    return max_rate(Report(quiet=True), t, "target", steps, seconds=4.0, attempts=2)


def _table(report: Report, rate: int, cpu: dict[str, list[float]], sustained: dict[str, int]) -> None:
    report.add(f"\n| worker serving | CPU per request at {rate} req/s (rounds) | added by this layer | "
               "ceiling on a core of its own | sustained here |")  # fmt: skip
    report.add("|---|---:|---:|---:|---:|")
    previous = 0.0
    for name, rounds in cpu.items():
        best, each = min(rounds), " / ".join(f"{r:.3f}" for r in rounds)
        report.add(f"| {name} | **{best:.3f} ms** ({each}) | +{best - previous:.3f} ms | {1000 / best:.0f} req/s "
                   f"| {sustained.get(name, 0)} req/s |")  # fmt: skip
        previous = best
    report.add(f"| engine alone | | | | {sustained.get('engine alone', 0)} req/s |")
    spot = min(cpu["spotgate"])
    report.add(f"\nspotgate / bare urllib3 proxy CPU: {spot / min(cpu['urllib3']):.2f}x; "
               f"spotgate / flask+urllib3: {spot / min(cpu['flask+urllib3']):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
