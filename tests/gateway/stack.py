"""Real local pieces for gateway tests: engine processes, an in-process gateway server, builders, fakes.

Engines are the sandbox's fake OpenAI engine as real processes on their own 127.0.0.x address, so killing
one is a real VM loss (connections refused or cut by the kernel). The gateway runs in this process behind
werkzeug's threaded HTTP server, so tests can inject a recording publisher and a token source, and talk to
it over real HTTP with the official OpenAI SDK.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import google.auth.transport.requests
import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from gateway.app import EXTENSION, create_app
from gateway.auth import CachingRequest
from gateway.runtime import Dependencies, Gateway
from spotgate.apikeys import generate_key
from spotgate.clock import SystemClock
from spotgate.domain import ApiKey, BackendKind, Route, RouteState
from spotgate.fleet import FleetConfig, parse_fleet
from spotgate.ports import RouteStore
from spotgate.sandbox.metadata.identity import Identity
from spotgate.settings import GatewaySettings

ENGINE_START_SECONDS = 15.0


@dataclass
class EngineProcess:
    """A running sandbox engine; ``kill`` is a SIGKILL, like a preempted VM."""

    name: str
    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_engine(host: str, model: str, name: str, *extra: str) -> EngineProcess:
    """Start ``python -m spotgate.sandbox.engine.server`` on ``host`` (a free port) and wait until it listens."""
    argv = [sys.executable, "-m", "spotgate.sandbox.engine.server", "--host", host, "--port", "0"]
    argv += ["--model", model, "--name", name, *extra]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        url = _listening_url(process)
    except BaseException:
        EngineProcess(name, "", process).kill()
        raise
    return EngineProcess(name, url, process)


def _listening_url(process: subprocess.Popen[bytes]) -> str:
    assert process.stdout is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline().decode()), daemon=True)
    reader.start()
    reader.join(ENGINE_START_SECONDS)
    if not result or not result[0].strip():
        raise RuntimeError("engine did not start")
    return str(json.loads(result[0])["url"])


def a_host() -> str:
    """A random loopback address (127.0.x.y), so parallel test runs rarely share one."""
    return f"127.0.{random.randrange(20, 250)}.{random.randrange(2, 250)}"


class RecordingPublisher:
    """A Publisher that keeps what it was given."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, message: Mapping[str, Any]) -> str:
        self.messages.append((topic, dict(message)))
        return str(len(self.messages))


@dataclass
class IdentityTokens:
    """A TokenSource that signs ID tokens with a sandbox identity (what the metadata server would do)."""

    identity: Identity
    email: str
    audiences: list[str] = field(default_factory=list)

    def id_token(self, audience: str) -> str:
        self.audiences.append(audience)
        return self.identity.sign_id_token(audience, self.email)


def a_route(
    pool: str,
    backend: str,
    address: str,
    *,
    state: RouteState = RouteState.READY,
    kind: BackendKind = BackendKind.VM,
) -> Route:
    return Route(pool, backend, kind, address, state, "test", datetime.now(UTC))


def a_key(store: RouteStore, **scopes: Any) -> tuple[str, ApiKey]:
    """Store a new key with ``scopes`` (ApiKey fields) and return (secret, key)."""
    new = generate_key()
    key = ApiKey(new.key_id, scopes.pop("name", "test"), new.secret_hash, datetime.now(UTC), **scopes)
    store.put_key(key)
    return new.secret, key


def a_fleet(*, overflow_url: str | None = None, wake_hold: str = "1s") -> FleetConfig:
    """Pools ``chat`` (alias ``gpt-test``), ``embed``, and ``burst`` (with overflow if a URL is given); the
    first two allow pass-through of GET, POST, PUT and DELETE on any path, ``burst`` none."""
    return parse_fleet(fleet_document(overflow_url=overflow_url, wake_hold=wake_hold))


def fleet_document(*, overflow_url: str | None = None, wake_hold: str = "1s") -> dict[str, Any]:
    """The fleet of ``a_fleet`` as the JSON document ``SPOTGATE_FLEET`` takes."""
    burst: dict[str, Any] = {"name": "burst", "model": "burst-model", "spot": {"zones": ["us-central1-a"]}}
    burst["wake_hold"] = wake_hold
    if overflow_url:
        burst["overflow"] = {"service": "burst-overflow", "url": overflow_url, "audience": "https://burst.run.app"}
    everything = {"methods": ["GET", "POST", "PUT", "DELETE"], "path_prefixes": ["/"]}
    chat = {"name": "chat", "model": "chat-model", "aliases": ["gpt-test"], "wake_hold": wake_hold,
            "spot": {"zones": ["us-central1-a", "us-central1-b"]}, "passthrough": everything}  # fmt: skip
    embed = {"name": "embed", "model": "embed-model", "wake_hold": wake_hold, "spot": {"zones": ["us-central1-c"]},
             "passthrough": everything}  # fmt: skip
    return {"pools": [chat, embed, burst]}


@dataclass
class RunningGateway:
    url: str
    app: Flask
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def gateway(self) -> Gateway:
        gateway: Gateway = self.app.extensions[EXTENSION]
        return gateway

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        self.gateway.close()


def start_gateway(
    store: RouteStore,
    fleet: FleetConfig,
    publisher: RecordingPublisher,
    tokens: IdentityTokens,
    settings: GatewaySettings,
) -> RunningGateway:
    deps = Dependencies(
        settings=settings,
        fleet=fleet,
        store=store,
        publisher=publisher,
        clock=SystemClock(),
        token_source=tokens,
        auth_request=CachingRequest(google.auth.transport.requests.Request(requests.Session())),
        control_topic="control",
    )
    app = create_app(deps)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return RunningGateway(f"http://127.0.0.1:{server.server_port}", app, server, thread)


def gateway_settings(**overrides: Any) -> GatewaySettings:
    base: dict[str, Any] = {
        "url": "https://gateway.test",
        "activity_flush": timedelta(milliseconds=100),
        "wake_debounce": timedelta(seconds=30),
        "heartbeat": timedelta(milliseconds=200),
        "connect_timeout": timedelta(seconds=2),
        "read_timeout": timedelta(seconds=20),
        "max_body_bytes": 64 * 1024,
    }
    return GatewaySettings(**{**base, **overrides})


def wait_until(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
