"""The whole system on one machine: the sandbox cloud, both Cloud Functions, and the gateway.

``DevStack`` is what ``spotgate dev`` runs and what the end-to-end tests drive. It wires the pieces the way
GCP does: the log sink and the VM agents publish to Pub/Sub topics, the Pub/Sub emulation pushes Eventarc
CloudEvents to the functions (separate ``functions-framework`` processes, production code unchanged), the
functions start and stop sandbox VMs through the real Compute client, and the gateway (gunicorn, the
production app) reads the routing table from the shared SQLite store and forwards to the VMs' loopback IPs.
Every process it starts dies with ``stop()`` — or with this process, through ``PR_SET_PDEATHSIG``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import requests

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.apikeys import generate_key
from spotgate.clock import SystemClock
from spotgate.domain import ApiKey
from spotgate.fleet import FleetConfig
from spotgate.sandbox.compute.agent import VmAgent
from spotgate.sandbox.devstack.cloud import SandboxCloud
from spotgate.sandbox.engine.process import die_with_parent
from spotgate.sandbox.metadata.server import MetadataServer
from spotgate.sandbox.pubsub.cloudtasks import CloudTasks
from spotgate.sandbox.pubsub.logsink import LogSink
from spotgate.sandbox.pubsub.push import Chaos, RetryPolicy
from spotgate.sandbox.pubsub.scheduler import Scheduler
from spotgate.sandbox.pubsub.service import PubSub
from spotgate.settings import environment

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[4]
CONTROL_TOPIC = "spotgate-control"
COMPUTE_TOPIC = "spotgate-compute"
WAKE_QUEUE = "spotgate-wake"  # Cloud Tasks queue of the planner's timers (infra: control_plane module)
FUNCTIONS = {"on_compute_event": COMPUTE_TOPIC, "on_control": CONTROL_TOPIC}


@dataclass(frozen=True, slots=True)
class DevOptions:
    """Knobs for a local stack. Times are wall-clock (the fleet's ``sandbox.speedup`` scales the cloud)."""

    tick_interval: timedelta = timedelta(seconds=2)
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(min_backoff=timedelta(milliseconds=200), max_backoff=timedelta(seconds=2))
    )
    chaos: Chaos = field(default_factory=Chaos)
    seed: int | None = None  # seeds the Pub/Sub chaos (duplicates, failed pushes) for reproducible runs
    gateway_workers: int = 1
    log_level: str = "INFO"
    startup_timeout: float = 60.0


class DevStack:
    """Start with ``start()`` (or ``with``), read ``gateway_url`` and ``api_key``, stop with ``stop()``."""

    def __init__(self, fleet: FleetConfig, state_dir: Path, options: DevOptions | None = None) -> None:
        self.fleet = fleet
        self.state_dir = state_dir.resolve()
        self.options = options or DevOptions()
        self.cloud = SandboxCloud(fleet, self.state_dir)
        rng = random.Random(self.options.seed)
        self.pubsub = PubSub(fleet.project, topics=(CONTROL_TOPIC, COMPUTE_TOPIC), retry=self.options.retry, rng=rng)
        self.pubsub.chaos = self.options.chaos
        self.tasks = CloudTasks(fleet.project, fleet.region, [WAKE_QUEUE], token=_sandbox_access_token)
        self.metadata = MetadataServer(
            self.cloud.identity, project=fleet.project, service_account=self.cloud.gateway_email
        )
        self.gateway_url = ""
        self.api_key = ""
        self.function_urls: dict[str, str] = {}
        self._children: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    @property
    def db_path(self) -> Path:
        return self.state_dir / "dev.db"

    def start(self) -> DevStack:
        """Bring up cloud, functions and gateway; on any failure tear down what started and re-raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the gateway and functions, then the cloud (VMs, engines, emulators). Idempotent."""
        while self._children:
            name, child, logfile = self._children.pop()
            _terminate(name, child)
            logfile.close()
        self.cloud.stop()

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.db_path.unlink()
        self.cloud.start()
        for component in self._components():
            self.cloud.add_component(component)
        env = self.child_env()
        for target, topic in FUNCTIONS.items():
            url = self._spawn_function(target, env)
            self.function_urls[target] = url
            self.pubsub.subscribe_push(topic, url)
        self.api_key = self._issue_dev_key()  # before the gateway starts, so the printed key works at once
        self.gateway_url = self._spawn_gateway(env)
        self._write_state(env)

    def _components(self) -> list[Any]:
        publish = self.pubsub
        return [
            self.metadata,
            self.pubsub,
            self.tasks,
            LogSink(self.cloud.compute.add_listener, publish, project=self.fleet.project, topic=COMPUTE_TOPIC),
            VmAgent(self.cloud.compute.add_listener, publish, topic=CONTROL_TOPIC),
            Scheduler(publish, interval=self.options.tick_interval, topic=CONTROL_TOPIC),
        ]

    def child_env(self) -> dict[str, str]:
        """The environment functions, gateway and ``spotgate`` CLI commands need to act on this stack."""
        return {
            **control_plane_env(self.cloud, self.db_path, self.options.log_level),
            "SPOTGATE_GATEWAY_CERTS_URL": self.cloud.certs_url,
            "SPOTGATE_GATEWAY_ACTIVITY_FLUSH": "1s",  # local timers are short; the planner should see demand soon
            "SPOTGATE_GATEWAY_ALLOWED_PRINCIPALS": json.dumps([f"@{self.fleet.project}.iam.gserviceaccount.com"]),
            "PUBSUB_EMULATOR_HOST": self.pubsub.emulator_host,
            "SPOTGATE_TASKS_QUEUE": self.tasks.queue_path(WAKE_QUEUE),
            "SPOTGATE_TASKS_ENDPOINT": self.tasks.url,
            "SPOTGATE_TASKS_SERVICE_ACCOUNT": f"spotgate-tasks@{self.fleet.project}.iam.gserviceaccount.com",
            "SPOTGATE_PUBSUB_ENDPOINT": self.pubsub.rest_url,
            "GCE_METADATA_HOST": self.metadata.address,
            "GCE_METADATA_IP": self.metadata.address,
            "NO_PROXY": "*",
        }

    def _spawn_function(self, target: str, env: dict[str, str]) -> str:
        port = _free_port()
        argv = [
            _bin("functions-framework"),
            "--source", str(REPO / "functions" / "main.py"),
            "--target", target,
            "--signature-type", "cloudevent",
            "--host", "127.0.0.1",
            "--port", str(port),
        ]  # fmt: skip
        self._spawn(target, argv, env)
        url = f"http://127.0.0.1:{port}/"
        self._wait_until(target, lambda: _listening(port))
        return url

    def _spawn_gateway(self, env: dict[str, str]) -> str:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        gateway_env = {**env, "PORT": str(port), "SPOTGATE_GATEWAY_URL": url}
        gateway_env["WEB_CONCURRENCY"] = str(self.options.gateway_workers)
        argv = [
            _bin("gunicorn"),
            "-c",
            str(REPO / "run_service" / "gunicorn.conf.py"),
            "gateway.wsgi:create_production_app()",
        ]
        self._spawn("gateway", argv, gateway_env)
        self._wait_until("gateway", lambda: _healthy(url + "/healthz"))
        return url

    def _issue_dev_key(self) -> str:
        """A key for every pool, stored hashed like any other; the secret only goes to dev.json."""
        new = generate_key()
        key = ApiKey(key_id=new.key_id, name="dev", secret_hash=new.secret_hash, created_at=SystemClock().now())
        SqliteStore(self.db_path).put_key(key)
        return new.secret

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        (self.state_dir / "logs").mkdir(exist_ok=True)
        logfile = (self.state_dir / "logs" / f"{name}.log").open("ab")
        child = subprocess.Popen(
            die_with_parent(argv), env={**environment(), **env}, cwd=REPO, stdout=logfile, stderr=subprocess.STDOUT
        )
        self._children.append((name, child, logfile))

    def _wait_until(self, name: str, ready: Any) -> None:
        deadline = time.monotonic() + self.options.startup_timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if any(child.poll() is not None for n, child, _ in self._children if n == name):
                raise RuntimeError(f"{name} exited during start-up; see {self.state_dir / 'logs' / (name + '.log')}")
            time.sleep(0.1)
        raise TimeoutError(f"{name} did not come up within {self.options.startup_timeout:.0f}s")

    def _write_state(self, env: dict[str, str]) -> None:
        state = {
            "gateway_url": self.gateway_url,
            "api_key": self.api_key,
            "functions": self.function_urls,
            "pubsub": self.pubsub.emulator_host,
            "metadata": self.metadata.address,
            "sandbox": self.cloud.endpoints(),
            "env": env,
        }
        path = self.state_dir / "dev.json"
        path.write_text(json.dumps(state, indent=2))
        path.chmod(0o600)  # it holds the dev API key
        self._write_env_file(env)

    def _write_env_file(self, env: dict[str, str]) -> None:
        """``.spotgate/dev.env`` for ``spotgate --env-file``: the CLI then acts on this stack."""
        fleet_file = self.state_dir / "fleet.json"
        fleet_file.write_text(env["SPOTGATE_FLEET"])
        lines = [f"{k}={v}" for k, v in env.items() if k.startswith("SPOTGATE_") and k != "SPOTGATE_FLEET"]
        lines.append(f"SPOTGATE_FLEET_FILE={fleet_file}")
        (self.state_dir / "dev.env").write_text("\n".join(lines) + "\n")


def control_plane_env(cloud: SandboxCloud, db_path: Path, log_level: str = "INFO") -> dict[str, str]:
    """``SPOTGATE_*`` settings that point production code at ``cloud`` with a SQLite store at ``db_path``."""
    return {
        "SPOTGATE_MODE": "sandbox",
        "SPOTGATE_PROJECT": cloud.fleet.project,
        "SPOTGATE_FLEET": cloud.effective_fleet().model_dump_json(),
        "SPOTGATE_STORE": "sqlite",
        "SPOTGATE_SQLITE_PATH": str(db_path),
        "SPOTGATE_COMPUTE_ENDPOINT": cloud.compute_url,
        "SPOTGATE_RUN_ENDPOINT": cloud.run_url,
        "SPOTGATE_CONTROL_TOPIC": CONTROL_TOPIC,
        "SPOTGATE_COMPUTE_TOPIC": COMPUTE_TOPIC,
        "SPOTGATE_LOG_LEVEL": log_level,
        "SPOTGATE_OPERATION_TIMEOUT": "30",
    }


def _sandbox_access_token() -> str:
    """What Cloud Tasks attaches as the task service account's OAuth token (the sandbox Pub/Sub wants a bearer)."""
    return f"ya29.sandbox-{secrets.token_urlsafe(16)}"


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _terminate(name: str, child: subprocess.Popen[bytes]) -> None:
    """Quick shutdown (gunicorn's SIGINT): a local stack need not wait out keep-alive clients."""
    if child.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop on SIGTERM; killing it", name)
        child.kill()
        child.wait(timeout=5)
