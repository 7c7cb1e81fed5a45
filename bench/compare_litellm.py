"""spotgate vs LiteLLM's proxy vs the engine directly: added latency and worker CPU, side by side, one run.

    python -m bench.compare_litellm --litellm /path/to/venv/bin/litellm [--rates 50,200] [--seconds 10]

LiteLLM is not a dependency of this project: install ``litellm[proxy]`` into a throwaway virtualenv and
pass its ``litellm`` executable. Both gateways run one worker on this machine in front of the same engine
(the sandbox's fake OpenAI engine, answering at once); spotgate under its production gunicorn config with an
API key, LiteLLM with a config that routes ``fast-model`` to the engine's ``/v1``. For each rate the three
targets are measured in turn (open loop, same request), so machine noise hits all three alike; the table
gives p50/p99 latency, what each gateway adds over direct, the gateway process's CPU per request, and
LiteLLM's added latency and CPU as a multiple of spotgate's.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench import loadgen, processes
from bench.gateway import MS, latencies, run, target
from bench.loadgen import Target, percentile

ENGINE_HOST = "127.0.91.2"
MASTER_KEY = "sk-" + secrets.token_hex(16)


@contextmanager
def litellm_proxy(executable: str, engine: str) -> Iterator[tuple[str, int]]:
    """LiteLLM's proxy, one worker, routing ``fast-model`` to ``engine``; yields (url, process id)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(
            "model_list:\n  - model_name: fast-model\n    litellm_params:\n      model: openai/fast-model\n"
            f"      api_base: {engine}/v1\n      api_key: unused\n"
            "litellm_settings:\n  telemetry: false\n  turn_off_message_logging: true\n"
            f"general_settings:\n  master_key: {MASTER_KEY}\n"  # callers authenticate, as with spotgate
        )
        port = processes.free_port("127.0.0.1")
        env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
        argv = [executable, "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
        process = subprocess.Popen(
            processes.on_server_core(argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            processes.wait_http(f"http://127.0.0.1:{port}/health/liveliness", 180)
            yield f"http://127.0.0.1:{port}", process.pid
        finally:
            processes.stop(process)


def measure(t: Target, rate: int, seconds: float, pid: int | None) -> tuple[float, float, float, int]:
    """(p50 ms, p99 ms, CPU ms per request of ``pid``, errors)."""
    run(loadgen.open_loop(t, rate, 1.0))  # warm-up
    cpu = processes.cpu_seconds(pid) if pid else 0.0
    replies, errors = run(loadgen.open_loop(t, rate, seconds))
    cpu_ms = (processes.cpu_seconds(pid) - cpu) * MS / max(1, len(replies)) if pid else 0.0
    lat = latencies(replies)
    return percentile(lat, 50), percentile(lat, 99), cpu_ms, len(errors) + sum(r.status != 200 for r in replies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--litellm", required=True, help="the litellm executable of a throwaway virtualenv")
    parser.add_argument("--rates", default="50,200")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pin", action="store_true", help="the proxies on a core of their own, the rest elsewhere")
    args = parser.parse_args()
    if args.pin:
        print(processes.pin_server_core())
    rates = [int(r) for r in args.rates.split(",")]
    with ExitStack() as stack:
        engine = stack.enter_context(processes.engine(ENGINE_HOST, "fast-model", ttft=0.0, tokens_per_second=1e6))
        spotgate_url, key, spotgate_pid = stack.enter_context(processes.gateway({"fast": engine}))
        litellm_url, litellm_pid = stack.enter_context(litellm_proxy(args.litellm, engine))
        litellm_pids = _with_children(litellm_pid)
        targets = {
            "direct": (target(engine, "fast", stream=False, max_tokens=8), None),
            "spotgate": (target(spotgate_url, "fast", stream=False, max_tokens=8, key=key), spotgate_pid),
            "litellm": (target(litellm_url, "fast", stream=False, max_tokens=8, key=MASTER_KEY), litellm_pids[-1]),
        }
        print(f"# spotgate vs LiteLLM proxy vs direct ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.seconds:g} s per phase)\n")  # fmt: skip
        print("| rate | direct p50/p99 | spotgate p50/p99 | LiteLLM p50/p99 | added p50 spotgate / LiteLLM "
              "| CPU/req spotgate / LiteLLM | LiteLLM / spotgate (added p50, CPU) | errors d/s/l |")  # fmt: skip
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for rate in rates:
            got = {name: measure(t, rate, args.seconds, pid) for name, (t, pid) in targets.items()}
            (d50, d99, _, de), (s50, s99, scpu, se), (l50, l99, lcpu, le) = (
                got["direct"],
                got["spotgate"],
                got["litellm"],
            )
            added_s, added_l = s50 - d50, l50 - d50
            print(f"| {rate} | {d50:.2f}/{d99:.2f} ms | {s50:.2f}/{s99:.2f} ms | {l50:.2f}/{l99:.2f} ms "
                  f"| {added_s:.2f} / {added_l:.2f} ms | {scpu:.2f} / {lcpu:.2f} ms "
                  f"| {added_l / added_s:.1f}x, {lcpu / scpu:.1f}x | {de}/{se}/{le} |", flush=True)  # fmt: skip


def _with_children(pid: int) -> list[int]:
    """``pid`` and its child processes (LiteLLM's uvicorn may serve from a child)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [pid, *(int(c) for c in children.read_text().split())] if children.exists() else [pid]


if __name__ == "__main__":
    main()
