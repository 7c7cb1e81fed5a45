"""The fast path's ``draining`` is in the audit trail that ``spotgate status`` shows (issue 13, finding 10).

The README tells operators to watch the recent actions while a preemption happens; the route the fast path
marks ``draining`` (before the reconcile) must be one of them, with the notice that caused it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import BackendKind, ComputeEvent, ComputeEventKind, Route, RouteState
from spotgate.services.control_plane import ControlPlane
from tests.unit.shell_fakes import NOW, FakeCompute, FixedClock, a_fleet


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.db")
    yield store
    store.close()


def test_the_fast_path_draining_is_recorded_as_an_action(store: SqliteStore) -> None:
    fleet = a_fleet()
    route = Route(
        "chat", "chat-a-1", BackendKind.VM, "http://10.0.0.2:8000", RouteState.READY, "ready", NOW, "us-central1-a"
    )
    store.put_routes([route])
    preempted = ComputeEvent(ComputeEventKind.PREEMPTED, "spotgate-unit", "us-central1-a", "chat-a-1", NOW)

    ControlPlane(fleet, store, FakeCompute(fleet), None, FixedClock()).handle(preempted)

    drained = [e for e in store.recent_events("chat") if e.target == "chat-a-1=draining" and "fast path" in e.reason]
    assert len(drained) == 1, store.recent_events("chat")
    assert drained[0].action == "route"
    assert drained[0].reason.startswith("draining: preempted notice at")
