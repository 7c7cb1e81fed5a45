"""The processes a benchmark runs: a sandbox engine and the gateway under gunicorn (one worker), on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.apikeys import generate_key
from spotgate.domain import ApiKey, BackendKind, Route, RouteState

ROOT = Path(__file__).resolve().parents[1]

# The core a measured server runs on once ``pin_server_core`` was called (empty: the scheduler decides).
_server_core: list[int] = []


def pin_server_core() -> str:
    """Give the measured server (gateway or proxy) a core of its own; this process and the engines get the rest.

    Why: one worker is one gevent loop on one core, which is what Cloud Run gives each worker; on a small
    machine the load generator and the engine otherwise share the worker's core, and the worker's rate and
    tail latency then measure the scheduler as much as the worker. Call it before starting engines (they
    inherit this process's cores). Returns a description for the report.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return f"not pinned: only {len(cpus)} core available"
    _server_core[:] = [cpus[-1]]
    os.sched_setaffinity(0, set(cpus[:-1]))
    return f"server pinned to core {cpus[-1]}; load generator and engines on cores {','.join(map(str, cpus[:-1]))}"


def on_server_core(argv: list[str]) -> list[str]:
    """``argv`` run on the server's core (with every thread and process it starts), if one was pinned."""
    return ["taskset", "--cpu-list", str(_server_core[0]), *argv] if _server_core else argv


def _fleet(pools: list[str]) -> dict[str, object]:
    """One pool per engine; pool ``x`` serves model ``x-model``."""
    return {"pools": [{"name": p, "model": f"{p}-model", "spot": {"zones": ["us-central1-a"]}} for p in pools]}


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float) -> None:
    """Wait until something accepts connections on ``host:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{host}:{port} did not accept connections in {timeout} s")


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 (loopback URL we built)
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def engine(host: str, model: str, *, ttft: float, tokens_per_second: float) -> Iterator[str]:
    """A sandbox engine on ``host`` serving ``model``; yields its base URL."""
    port = free_port(host)
    argv = [
        sys.executable,
        "-m",
        "spotgate.sandbox.engine.server",
        "--host",
        host,
        "--port",
        str(port),
        "--model",
        model,
    ]
    argv += ["--name", model, "--ttft", str(ttft), "--tokens-per-second", str(tokens_per_second)]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://{host}:{port}/health", 20)
        yield f"http://{host}:{port}"
    finally:
        stop(process)


@contextmanager
def gateway(
    engines: dict[str, str], *, worker_class: str = "gevent", threads: int = 1, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, str, int]]:
    """The gateway (gunicorn, one worker) routing pool P to ``engines[P]``; yields (url, key, worker pid)."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        store = SqliteStore(db)
        new = generate_key()
        now = datetime.now(UTC)
        store.put_key(ApiKey(new.key_id, "bench", new.secret_hash, now))
        store.put_routes(
            [Route(p, f"{p}-vm", BackendKind.VM, url, RouteState.READY, "bench", now) for p, url in engines.items()]
        )
        store.close()
        port = free_port("127.0.0.1")
        env = {
            **os.environ,
            "PORT": str(port),
            "WEB_CONCURRENCY": "1",
            "SPOTGATE_MODE": "sandbox",
            "SPOTGATE_STORE": "sqlite",
            "SPOTGATE_SQLITE_PATH": str(db),
            "SPOTGATE_FLEET": json.dumps(_fleet(list(engines))),
            "SPOTGATE_LOG_LEVEL": "INFO",  # production's: the access line written per request is part of its cost
            "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",
            **(extra_env or {}),
        }
        argv = [sys.executable, "-m", "gunicorn", "-c", "run_service/gunicorn.conf.py", "-k", worker_class]
        argv += ["--threads", str(threads), "gateway.wsgi:create_production_app()"]
        process = subprocess.Popen(
            on_server_core(argv), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", 30)
            yield f"http://127.0.0.1:{port}", new.secret, only_child(process.pid)
        finally:
            stop(process)


def only_child(pid: int, timeout: float = 10.0) -> int:
    """The pid of ``pid``'s one child (gunicorn's worker), waiting for it: gunicorn listens before it forks."""
    deadline = time.monotonic() + timeout
    while not (children := Path(f"/proc/{pid}/task/{pid}/children").read_text().split()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} started no worker within {timeout:g} s")
        time.sleep(0.05)
    return int(children[0])


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
