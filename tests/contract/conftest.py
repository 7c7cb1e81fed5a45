"""Fixtures for the RouteStore contract suite: one ``store`` fixture, one parameter per adapter.

Every test in ``test_route_store.py`` runs against each adapter, so the SQLite store used locally and the
Firestore store used in production are held to the same observable behaviour. Firestore runs on the Node
emulator (``tests/firestore_emulator.py``), one per session, with a collection prefix per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spotgate.adapters.firestore_store import FirestoreStore
from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.ports import RouteStore
from tests.firestore_emulator import firestore_client, firestore_emulator, firestore_prefix  # noqa: F401

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
