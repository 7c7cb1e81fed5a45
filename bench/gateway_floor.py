"""Where one gateway worker's CPU per request goes: spotgate next to bare apps on the same server, one run.

    python -m bench.gateway_floor [--rate 300] [--seconds 6] [--max-steps 300,400,500,600,800,1000,1200]
                                  [--rounds 2] [--baseline DIR]

One engine (the sandbox's fake OpenAI engine, answering at once) and, each in turn under gunicorn with one
gevent worker on loopback: ``answer`` (a WSGI app that answers itself: the server alone), ``urllib3`` (a WSGI
app forwarding to the engine with urllib3: server plus HTTP client), ``geventhttpclient`` (the same app
forwarding with the gateway's own client, ``gateway.upstream``), ``flask+urllib3`` (the urllib3 app in a Flask
view), ``flask+geventhttpclient`` (a Flask view with the gateway's client: what spotgate is built on, so
spotgate's addition to it is its own work) and spotgate under its production gunicorn config (authentication,
limits, checks, accounting, access line). ``--baseline DIR`` adds spotgate as another checkout has it (an
earlier commit: ``git worktree add DIR <commit>``), served by the same interpreter and libraries, next to this
one in every round (before it in even rounds, after it in odd ones): an A/B of a change in the same run. Every
target gets the same request at the same open-loop rate, in interleaved rounds; the table gives the worker's
CPU per request (the smallest round), what each layer adds to the one it is built on, and the rate one worker
could reach on a core of its own at that CPU. Then the highest rate each sustains here (bench.gateway's rule:
>= 97 % answered, no errors, p99 < 100 ms; two tries per step), with the engine alone for reference: unless
``--pin`` gives each server a core of its own, the load generator, the engine and the worker share this
machine's cores, so sustained rates stay below ceilings.
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
BARE = {
    "answer": "answer",
    "urllib3": "urllib3_proxy",
    "geventhttpclient": "geventhttpclient_proxy",
    "flask+urllib3": "flask_urllib3_proxy",
    "flask+geventhttpclient": "flask_geventhttpclient_proxy",
}
BUILT_ON = {  # what each row adds to
    "urllib3": "answer",
    "geventhttpclient": "answer",
    "flask+urllib3": "urllib3",
    "flask+geventhttpclient": "geventhttpclient",
    "spotgate (baseline)": "flask+geventhttpclient",  # the gateway's own work: above the same framework and client
    "spotgate": "flask+geventhttpclient",
}


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
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--baseline", default=None, help="a checkout whose spotgate is measured too (A/B)")
    p.add_argument("--out", default=None, help="also write the report (markdown) to this file")
    a = p.parse_args()
    report = Report.started("bench.gateway_floor")
    if a.pin:
        report.add(processes.pin_server_core())
    steps = [int(s) for s in a.max_steps.split(",")]
    spotgates = (
        {"spotgate": {}} if a.baseline is None else {"spotgate (baseline)": _code_of(a.baseline), "spotgate": {}}
    )
    with processes.engine("127.0.91.2", "fast-model", ttft=0.0, tokens_per_second=1e6) as engine:
        cpu: dict[str, list[float]] = {name: [] for name in [*BARE, *spotgates]}
        sustained: dict[str, int] = {}
        for round_ in range(a.rounds):
            last = round_ == a.rounds - 1
            for name, app in BARE.items():
                with bare(app, engine) as (url, pid):
                    t = target(url, "fast", stream=False, max_tokens=16, key="floor")
                    cpu[name].append(cpu_per_request(t, pid, a.rate, a.seconds))
                    if last:
                        sustained[name] = _quiet_max(t, steps)
            for name, env in list(spotgates.items())[:: -1 if round_ % 2 else 1]:  # A/B, then B/A: no order bias
                with processes.gateway({"fast": engine}, worker_class=PRODUCTION, extra_env=env) as (url, key, pid):
                    t = target(url, "fast", stream=False, max_tokens=16, key=key)
                    cpu[name].append(cpu_per_request(t, pid, a.rate, a.seconds))
                    if last:
                        sustained[name] = _quiet_max(t, steps)
        sustained["engine alone"] = _quiet_max(target(engine, "fast", stream=False, max_tokens=16), steps)
    _table(report, a.rate, cpu, sustained)
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(report.lines) + "\n")


def _code_of(checkout: str) -> dict[str, str]:
    """The environment that makes the gateway import its code from ``checkout`` (ahead of the installed one)."""
    root = os.path.abspath(checkout)
    return {"PYTHONPATH": f"{root}/run_service:{root}/functions"}


def _quiet_max(t: Target, steps: list[int]) -> int:
    return max_rate(Report(quiet=True), t, "target", steps, seconds=4.0, attempts=2)


def _table(report: Report, rate: int, cpu: dict[str, list[float]], sustained: dict[str, int]) -> None:
    report.add(f"\n| worker serving | CPU per request at {rate} req/s (rounds) | added by this layer | "
               "ceiling on a core of its own | sustained here |")  # fmt: skip
    report.add("|---|---:|---:|---:|---:|")
    for name, rounds in cpu.items():
        best, each = min(rounds), " / ".join(f"{r:.3f}" for r in rounds)
        added = best - (min(cpu[BUILT_ON[name]]) if name in BUILT_ON else 0.0)
        report.add(f"| {name} | **{best:.3f} ms** ({each}) | {added:+.3f} ms | {1000 / best:.0f} req/s "
                   f"| {sustained.get(name, 0)} req/s |")  # fmt: skip
    report.add(f"| engine alone | | | | {sustained.get('engine alone', 0)} req/s |")
    spot = min(cpu["spotgate"])
    report.add(f"\nspotgate / bare urllib3 proxy CPU: {spot / min(cpu['urllib3']):.2f}x; "
               f"spotgate / flask+geventhttpclient (the same framework and client): "
               f"{spot / min(cpu['flask+geventhttpclient']):.2f}x")  # fmt: skip
    report.add(f"geventhttpclient / urllib3 (bare proxies): {min(cpu['geventhttpclient']) / min(cpu['urllib3']):.2f}x")
    if "spotgate (baseline)" in cpu:
        paired = " / ".join(
            f"{new / old:.2f}" for old, new in zip(cpu["spotgate (baseline)"], cpu["spotgate"], strict=True)
        )
        report.add(
            f"spotgate / spotgate (baseline): {spot / min(cpu['spotgate (baseline)']):.2f}x (per round {paired})"
        )


if __name__ == "__main__":
    main()
