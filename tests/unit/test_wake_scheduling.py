"""The planner's ``requeue_after`` becomes a scheduled wake-up of the pool (issue 9, defect 13)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import ControlKind, ControlMessage
from spotgate.errors import UnavailableError
from spotgate.services.control_plane import ControlPlane
from tests.unit.shell_fakes import NOW, FakeCompute, FixedClock, a_fleet

WAKE = ControlMessage(kind=ControlKind.WAKE, at=NOW, pool="chat")


class RecordingScheduler:
    def __init__(self, refuse: bool = False) -> None:
        self.scheduled: list[tuple[str, datetime]] = []
        self.refuse = refuse

    def schedule(self, pool: str, due: datetime) -> None:
        if self.refuse:
            raise UnavailableError("Cloud Tasks did not answer")
        self.scheduled.append((pool, due))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.db")
    yield store
    store.close()


def test_a_plan_that_wants_another_look_schedules_a_wake_up_at_that_time(store: SqliteStore) -> None:
    fleet = a_fleet()
    compute = FakeCompute(fleet)
    scheduler = RecordingScheduler()
    plane = ControlPlane(fleet, store, compute, None, FixedClock(), scheduler=scheduler)
    expected = plane.preview(fleet.pools[0]).requeue_after  # min_ready 1: start a VM, check its boot later
    plane.handle(WAKE)
    assert expected is not None
    assert ("chat", NOW + expected) in scheduler.scheduled


def test_an_unreachable_scheduler_never_fails_the_reconcile(store: SqliteStore) -> None:
    fleet = a_fleet()
    compute = FakeCompute(fleet)
    ControlPlane(fleet, store, compute, None, FixedClock(), scheduler=RecordingScheduler(refuse=True)).handle(WAKE)
    assert compute.started == ["chat-a-1"]
    assert store.get_pool_state("chat").last_wake_at == NOW
