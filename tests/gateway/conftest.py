"""Fixtures: a fresh SQLite store, engine processes, the sandbox metadata server, and a gateway factory."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.fleet import FleetConfig
from spotgate.sandbox.metadata.identity import Identity
from spotgate.sandbox.metadata.server import MetadataServer
from tests.gateway.stack import (
    EngineProcess,
    IdentityTokens,
    RecordingPublisher,
    RunningGateway,
    a_fleet,
    gateway_settings,
    start_engine,
    start_gateway,
)

GATEWAY_EMAIL = "gateway@spotgate-local.iam.gserviceaccount.com"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    sqlite = SqliteStore(tmp_path / "gateway.db", poll_interval=0.05)
    try:
        yield sqlite
    finally:
        sqlite.close()


@pytest.fixture
def hosts() -> Iterator[str]:
    """Distinct loopback addresses (127.0.x.y) for this test's simulated VMs."""
    base = random.Random().randrange(20, 250)
    return iter([f"127.0.{base}.{n}" for n in range(2, 250)])


@pytest.fixture
def engines(hosts: Iterator[str]) -> Iterator[Callable[..., EngineProcess]]:
    """``engines(model, name, *extra_args)`` starts an engine on its own address; all are killed at the end."""
    started: list[EngineProcess] = []

    def start(model: str, name: str, *extra: str) -> EngineProcess:
        engine = start_engine(next(hosts), model, name, *extra)
        started.append(engine)
        return engine

    try:
        yield start
    finally:
        for engine in started:
            engine.kill()


@pytest.fixture(scope="session")
def identity() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="session")
def metadata(identity: Identity) -> Iterator[MetadataServer]:
    server = MetadataServer(identity, project="spotgate-local", service_account=GATEWAY_EMAIL)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def tokens(identity: Identity) -> IdentityTokens:
    return IdentityTokens(identity, GATEWAY_EMAIL)


@pytest.fixture
def make_gateway(
    store: SqliteStore, publisher: RecordingPublisher, tokens: IdentityTokens, metadata: MetadataServer
) -> Iterator[Callable[..., RunningGateway]]:
    """``make_gateway(fleet=None, **settings)`` starts a gateway over ``store``; stopped at the end."""
    running: list[RunningGateway] = []

    def make(fleet: FleetConfig | None = None, **settings: Any) -> RunningGateway:
        settings.setdefault("certs_url", metadata.certs_url)
        gateway = start_gateway(store, fleet or a_fleet(), publisher, tokens, gateway_settings(**settings))
        running.append(gateway)
        return gateway

    try:
        yield make
    finally:
        for gateway in running:
            gateway.stop()
