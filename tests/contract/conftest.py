"""Fixtures for the RouteStore contract suite: one ``store`` fixture, one parameter per adapter.

Every test in ``test_route_store.py`` runs against each adapter, so the SQLite store used locally and the
Firestore store used in production are held to the same observable behaviour. Firestore runs on the Node
emulator (``tests/firestore_emulator.py``), one per session, with a collection prefix per test.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from spotgate.adapters.firestore_store import FirestoreStore
from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.ports import RouteStore
from tests.firestore_emulator import (  # noqa: F401 -- fixtures used by name
    FirestoreEmulator,
    firestore_client,
    firestore_emulator,
    firestore_prefix,
)

EVENTS_LIMIT = 5  # small, so the bound on the audit trail is exercised by a handful of appends
SQLITE_POLL_SECONDS = 0.05


@pytest.fixture(params=["sqlite", pytest.param("firestore", marks=pytest.mark.firestore)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RouteStore]:
    """A fresh, empty store of each adapter."""
    if request.param == "firestore":
        client = request.getfixturevalue("firestore_client")
        yield FirestoreStore(client, prefix=request.getfixturevalue("firestore_prefix"), events_limit=EVENTS_LIMIT)
        return
    sqlite = SqliteStore(tmp_path / "store.db", events_limit=EVENTS_LIMIT, poll_interval=SQLITE_POLL_SECONDS)
    try:
        yield sqlite
    finally:
        sqlite.close()


@pytest.fixture(params=["sqlite", pytest.param("firestore", marks=pytest.mark.firestore)])
def unreachable_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RouteStore]:
    """A store of each adapter whose backing service cannot be reached."""
    if request.param == "sqlite":
        yield SqliteStore(tmp_path / "no-such-directory" / "store.db")
        return
    client = FirestoreEmulator(host=f"127.0.0.1:{_closed_port()}").client()
    try:
        yield FirestoreStore(client, prefix="unreachable", timeout=1.0)
    finally:
        client.close()  # type: ignore[no-untyped-call]


def _closed_port() -> int:
    """A loopback port nobody listens on (the OS just handed it out and it was released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
