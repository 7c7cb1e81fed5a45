"""Running the production gateway under gunicorn for tests: environment, start, health wait, and stop."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from spotgate.settings import environment
from tests.gateway.stack import wait_until

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Gunicorn:
    url: str
    process: subprocess.Popen[bytes]

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        return [int(pid) for pid in children.split()]


def gateway_env(sqlite: Path, fleet: dict[str, Any], port: int, **extra: str) -> dict[str, str]:
    """The environment of a sandbox-mode gateway over the SQLite store at ``sqlite``."""
    env = environment()
    env.update(
        PORT=str(port),
        WEB_CONCURRENCY="1",
        SPOTGATE_MODE="sandbox",
        SPOTGATE_STORE="sqlite",
        SPOTGATE_SQLITE_PATH=str(sqlite),
        SPOTGATE_FLEET=json.dumps(fleet),
        SPOTGATE_GATEWAY_URL="https://gateway.test",
        SPOTGATE_GATEWAY_HEARTBEAT="0.2s",
        SPOTGATE_GATEWAY_ACTIVITY_FLUSH="0.1s",
        PUBSUB_EMULATOR_HOST="127.0.0.1:9",  # nothing listens: wakes fail off the request path, harmlessly
    )
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_gunicorn(env: dict[str, str], *, stderr: Any = subprocess.DEVNULL) -> Iterator[Gunicorn]:
    """gunicorn with ``run_service/gunicorn.conf.py`` and ``env``, live; SIGTERM (then SIGKILL) at the end."""
    argv = [sys.executable, "-m", "gunicorn", "-c", "run_service/gunicorn.conf.py"]
    process = subprocess.Popen(
        [*argv, "gateway.wsgi:create_production_app()"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
    )
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        assert wait_until(lambda: healthy(url), timeout=20)
        yield Gunicorn(url, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).json().get("status") == "live"
    except (requests.RequestException, ValueError):
        return False


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size (``VmHWM``) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")
