"""``spotgate report``'s figures from history records: table tests of the pure replay and recording."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from spotgate.domain import HistoryKind, HistoryRecord, ServedCount
from spotgate.fleet import Prices
from spotgate.history.replay import replay_history

T0 = datetime(2026, 11, 20, tzinfo=UTC)
PRICES = Prices(spot_per_hour=1.0, standard_per_hour=3.0, overflow_per_hour=2.0)
H = 3600.0


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def vm(hours: float, name: str, status: str, model: str = "SPOT", zone: str = "z-a") -> HistoryRecord:
    return HistoryRecord("chat", at(hours), HistoryKind.VM, name, status, zone, model)


def route(hours: float, name: str, state: str) -> HistoryRecord:
    return HistoryRecord("chat", at(hours), HistoryKind.ROUTE, name, state, backend_kind="vm")


def preempted(hours: float, name: str, zone: str = "z-a") -> HistoryRecord:
    return HistoryRecord("chat", at(hours), HistoryKind.PREEMPTED, name, zone=zone)


def busy(hours: float, n: int) -> HistoryRecord:
    return HistoryRecord("chat", at(hours), HistoryKind.BUSY, "gateway", count=n)


def served(hours: float, kind: str, n: int, pool: str = "chat") -> ServedCount:
    return ServedCount(pool, at(hours), kind, n)


def overflow(hours: float, n: int) -> HistoryRecord:
    return HistoryRecord("chat", at(hours), HistoryKind.OVERFLOW, "chat-overflow", str(n))


ONE_SPOT_PREEMPTED = [
    vm(0, "a", "RUNNING"),
    route(0, "a", "ready"),
    busy(0, 1),
    preempted(4, "a"),
    route(4, "a", "draining"),
    vm(4, "a", "TERMINATED"),
    overflow(4, 1),
    vm(5, "b", "PROVISIONING", model="STANDARD", zone="z-b"),
    vm(6, "b", "RUNNING", model="STANDARD", zone="z-b"),
    route(6, "b", "ready"),
    overflow(6, 0),
    busy(7, 0),
    HistoryRecord("chat", at(5), HistoryKind.STOCKOUT, "a", zone="z-a"),
]
SERVED = [served(1, "vm", 50), served(4.5, "overflow", 8), served(5.5, "refused_503", 2), served(9, "held_then_vm", 10)]


@pytest.mark.parametrize(
    ("records", "counts", "figures"),
    [
        pytest.param(
            [vm(-1, "a", "RUNNING"), route(-1, "a", "ready")],
            [],
            {"availability": 1.0, "spot": 10.0, "standard": 0.0, "cost": 10.0, "baseline": 30.0, "served vm": 0},
            id="levels-before-the-period-hold-from-its-start",
        ),
        pytest.param(
            ONE_SPOT_PREEMPTED,
            SERVED,
            {
                "availability": 0.8,  # 2 of 10 hours without a ready VM
                "spot": 4.0,
                "standard": 4.0,
                "overflow": 2.0,
                "cost": 4.0 + 12.0 + 4.0,
                "baseline": 30.0,  # one VM at most, on-demand, for 10 h
                "served vm": 50,
                "served overflow": 8,
                "served held_then_vm": 10,
                "served refused_503": 2,
                "at_once": 58 / 70,
                "preemptions": {"z-a": 1},
                "stockouts": {"z-a": 1},
                "recovery_p50": 2 * H,
            },
            id="preempted-spot-replaced-by-standard-with-overflow-between",
        ),
        pytest.param(
            [],
            [served(0, "vm", 3), served(-1 / 60, "vm", 100), served(10, "vm", 100), served(2, "vm", 5, pool="embed")],
            {"served vm": 3, "availability": 0.0},
            id="served-counts-of-the-periods-minutes-only-and-of-this-pool",
        ),
        pytest.param(
            [vm(0, "a", "RUNNING"), preempted(-1, "a"), HistoryRecord("embed", at(1), HistoryKind.PREEMPTED, "e")],
            [],
            {"preemptions": {}, "spot": 10.0},
            id="preemptions-before-the-period-or-of-other-pools-do-not-count",
        ),
    ],
)
def test_history_replays_into_the_simulators_figures(
    records: list[HistoryRecord], counts: list[ServedCount], figures: dict[str, object]
) -> None:
    report, _ = replay_history(records, counts, pool="chat", since=T0, until=at(10), min_ready=1, prices=PRICES)
    got = {
        "availability": report.availability,
        "spot": report.gpu_hours.spot,
        "standard": report.gpu_hours.standard,
        "overflow": report.gpu_hours.overflow,
        "cost": report.cost,
        "baseline": report.baseline_cost,
        **{f"served {kind}": n for kind, n in report.requests.items()},
        "at_once": report.served_without_wait,
        "preemptions": report.preemptions,
        "stockouts": report.stockouts,
        "recovery_p50": report.recovery_p50,
    }
    counts = {"preemptions", "stockouts"}
    assert {k: got[k] for k in figures if k in counts} == {k: v for k, v in figures.items() if k in counts}
    assert {k: got[k] for k in figures if k not in counts} == pytest.approx(
        {k: v for k, v in figures.items() if k not in counts}
    )


def test_days_split_cost_and_requests_at_midnight() -> None:
    records = [vm(0, "a", "RUNNING")]
    counts = [served(1, "vm", 4), served(30, "vm", 40), served(31, "overflow", 2)]
    _, series = replay_history(records, counts, pool="chat", since=T0, until=at(36), min_ready=1, prices=PRICES)
    assert [
        (d.seconds / H, d.cost, d.baseline_cost, d.requests["vm"], d.requests["overflow"]) for d in series.days
    ] == [
        (24.0, 24.0, 72.0, 4, 0),
        (12.0, 12.0, 36.0, 40, 2),
    ]


def test_an_empty_period_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        replay_history([], pool="chat", since=T0, until=T0, min_ready=1, prices=PRICES)
