"""The shell asks for capacity advice only for pools with ``capacity_advice``; no answer means no advice."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import ControlKind, ControlMessage, ZoneAdvice
from spotgate.errors import SpotgateError, UnavailableError
from spotgate.services.control_plane import ControlPlane
from tests.unit.shell_fakes import NOW, FakeCompute, FixedClock, a_fleet

A, B, C = "us-central1-a", "us-central1-b", "us-central1-c"
WAKE = ControlMessage(kind=ControlKind.WAKE, at=NOW, pool="chat")


class FakeAdvisor:
    """Advice favouring zone c, or ``error`` raised; records every question."""

    def __init__(self, error: SpotgateError | None = None) -> None:
        self.asked: list[tuple[tuple[str, ...], str]] = []
        self.error = error

    def zone_advice(self, zones: Sequence[str], machine_type: str) -> dict[str, ZoneAdvice]:
        self.asked.append((tuple(zones), machine_type))
        if self.error is not None:
            raise self.error
        return {z: ZoneAdvice(z, 0.9 if z == C else 0.2, timedelta(hours=1)) for z in zones}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.db")
    yield store
    store.close()


def pool(advice: bool) -> dict[str, object]:
    spec: dict[str, object] = {"name": "chat", "model": "m", "spot": {"zones": [A, B, C]}, "min_ready": 1}
    if advice:
        spec["capacity_advice"] = {"machine_type": "g2-standard-8"}
    return spec


@pytest.mark.parametrize(
    ("advice_on", "error", "started", "asked"),
    [
        pytest.param(False, None, ["chat-a-1"], [], id="off_never_asks"),
        pytest.param(True, None, ["chat-c-1"], [((A, B, C), "g2-standard-8")], id="on_follows_advice"),
        pytest.param(
            True, UnavailableError("503"), ["chat-a-1"], [((A, B, C), "g2-standard-8")], id="no_answer_is_no_advice"
        ),
    ],
)
def test_capacity_advice_in_the_shell(
    store: SqliteStore, advice_on: bool, error: SpotgateError | None, started: list[str], asked: list[object]
) -> None:
    fleet = a_fleet(pool(advice_on))
    compute, advisor = FakeCompute(fleet), FakeAdvisor(error)
    ControlPlane(fleet, store, compute, None, FixedClock(), advisor=advisor).handle(WAKE)
    assert compute.started == started
    assert advisor.asked == asked
