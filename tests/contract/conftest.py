"""Fixtures for the RouteStore contract suite: one ``store`` fixture, one parameter per adapter.

Every test in ``test_route_store.py`` runs against each adapter, so the SQLite store used locally and the
Firestore store used in production are held to the same observable behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.ports import RouteStore

EVENTS_LIMIT = 5  # small, so the bound on the audit trail is exercised by a handful of appends
SQLITE_POLL_SECONDS = 0.05


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RouteStore]:
    """A fresh, empty store of each adapter."""
    sqlite = SqliteStore(tmp_path / "store.db", events_limit=EVENTS_LIMIT, poll_interval=SQLITE_POLL_SECONDS)
    try:
        yield sqlite
    finally:
        sqlite.close()
