"""History records to the simulator's report: the same ledger integrates the same levels.

Between two records nothing the report measures changes, so replaying a pool's records in time order through
``simulation.ledger.Ledger`` gives the figures ``spotgate simulate`` gives for a simulated run, and
``simulation.report.build_report`` turns them into the same ``Report``. Records before ``since`` only set the
levels the period starts with; preemptions and stockouts count from ``since`` on.

What the history does not hold, and how the report says so:
- where each request was served comes from the gateway's per-minute counts (``ServedCount``), so requests
  count by the minutes of the period (the first minute whole); "overflow cold start" is not told apart
  from overflow; a request the gateway held that ended on the overflow counts as overflow;
- what the pool *wanted*: ``desired`` is the VMs running or booting (the planner started them), at least
  ``min_ready``; the baseline is the most such VMs at once held on on-demand VMs for the whole period;
- idleness is sampled when the control plane looks (every round): billed VMs without a request in flight
  then; an overflow instance counts as busy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from spotgate.domain import HistoryKind, HistoryRecord, InstanceStatus, ProvisioningModel, ServedCount
from spotgate.fleet import Prices
from spotgate.simulation.gateway import Served
from spotgate.simulation.ledger import Ledger, Levels
from spotgate.simulation.report import Report, build_report

DAY = timedelta(days=1)
_KINDS = {kind.value for kind in Served}
_BILLED = {InstanceStatus.RUNNING.value, InstanceStatus.STOPPING.value, InstanceStatus.SUSPENDING.value}
_LIVE = {InstanceStatus.PROVISIONING.value, InstanceStatus.STAGING.value, InstanceStatus.RUNNING.value}


@dataclass(frozen=True, slots=True)
class Day:
    """One day (or the part of it within the period): its cost, the baseline's, and requests served."""

    start: float  # seconds from the period's start
    seconds: float
    cost: float
    baseline_cost: float
    requests: dict[str, int]  # by where served (``SERVED_KINDS``)


@dataclass(frozen=True, slots=True)
class Series:
    """What the page draws: ready VMs over time (steps), preemption instants, and days."""

    seconds: float
    ready_steps: tuple[tuple[float, int], ...]
    preemptions: tuple[float, ...]
    days: tuple[Day, ...]


class _Pool:
    """The levels the records set; read by the ledger before time moves on."""

    def __init__(self, min_ready: int) -> None:
        self.min_ready = min_ready
        self.vms: dict[str, tuple[str, str]] = {}  # instance -> (provisioning model, status)
        self.routes: dict[str, tuple[str, str]] = {}  # backend -> (kind, state)
        self.overflow = 0
        self.busy = 0

    def ready(self) -> int:
        return sum(1 for kind, state in self.routes.values() if kind == "vm" and state == "ready")

    def levels(self) -> Levels:
        billed = [model for model, status in self.vms.values() if status in _BILLED]
        spot = sum(1 for m in billed if m == ProvisioningModel.SPOT.value)
        live = sum(1 for _, status in self.vms.values() if status in _LIVE)
        return Levels(
            ready=self.ready(),
            desired=max(live, self.min_ready),
            spot=spot,
            standard=len(billed) - spot,
            idle_vms=max(0, len(billed) - self.busy),
            overflow=self.overflow > 0,
            overflow_idle=False,
        )


def replay_history(
    records: Sequence[HistoryRecord],
    served: Sequence[ServedCount] = (),
    *,
    pool: str,
    since: datetime,
    until: datetime,
    min_ready: int,
    prices: Prices,
) -> tuple[Report, Series]:
    """The report of ``pool`` over ``[since, until)`` from its records and the gateway's served counts (any
    order; those of other pools ignored)."""
    if until <= since:
        raise ValueError("the period is empty: until must be after since")
    state = _Pool(min_ready)
    ledger = Ledger(min_ready, state.levels)
    days: list[Day] = []
    counts = _served_in(served, pool, since, until)
    day = _DayMeter(ledger, prices, counts)
    preemptions: list[float] = []
    ordered = sorted((r for r in records if r.pool == pool and r.at < until), key=lambda r: r.at)
    for record in ordered:
        t = (record.at - since).total_seconds()
        day.advance(t, days)
        counted = t >= 0
        if record.kind is HistoryKind.PREEMPTED and counted:
            was_ready = state.routes.get(record.subject) == ("vm", "ready")
            ledger.preempted(record.zone, ready_before=state.ready() if was_ready else None)
            preemptions.append(t)
        elif record.kind is HistoryKind.STOCKOUT and counted:
            ledger.stocked_out(record.zone)
        _apply(state, record)
    end = (until - since).total_seconds()
    day.advance(end, days)
    day.close(end, days)
    total: Counter[Served] = Counter()
    for _, kind, n in counts:
        total[kind] += n
    report = build_report(ledger, total, pool=pool, source="history", min_ready=min_ready, cut=0, prices=prices)
    # The ledger's baseline needs the peak known at the end; re-price the days with it.
    rate = max(ledger.peak_desired, min_ready) * prices.standard_per_hour / 3600.0
    days = [replace(d, baseline_cost=d.seconds * rate) for d in days]
    return report, Series(end, tuple(ledger.ready_steps), tuple(preemptions), tuple(days))


def _served_in(
    served: Sequence[ServedCount], pool: str, since: datetime, until: datetime
) -> list[tuple[float, Served, int]]:
    """(seconds from ``since``, where, requests) of the pool's minutes within the period (the first whole)."""
    first = since.replace(second=0, microsecond=0)
    return [
        (max(0.0, (c.minute - since).total_seconds()), Served(c.kind), c.requests)
        for c in served
        if c.pool == pool and first <= c.minute < until and c.kind in _KINDS
    ]


def _apply(state: _Pool, record: HistoryRecord) -> None:
    if record.kind is HistoryKind.VM:
        state.vms[record.subject] = (record.provisioning_model, record.state)
    elif record.kind is HistoryKind.ROUTE:
        state.routes[record.subject] = (record.backend_kind, record.state)
    elif record.kind is HistoryKind.OVERFLOW:
        state.overflow = int(record.state)
    elif record.kind is HistoryKind.BUSY:
        state.busy = record.count


class _DayMeter:
    """Cuts the ledger's running totals at each day boundary into a ``Day``."""

    def __init__(self, ledger: Ledger, prices: Prices, served: Sequence[tuple[float, Served, int]]) -> None:
        self._ledger = ledger
        self._prices = prices
        self._served = served
        self._start = 0.0
        self._cost_at_start = 0.0

    def _cost(self) -> float:
        p, led = self._prices, self._ledger
        return (
            led.spot * p.spot_per_hour + led.standard * p.standard_per_hour + led.overflow * p.overflow_per_hour
        ) / 3600

    def advance(self, t: float, days: list[Day]) -> None:
        while t > self._start + DAY.total_seconds():
            self._ledger.advance(self._start + DAY.total_seconds())
            self.close(self._start + DAY.total_seconds(), days)
        if t > 0:
            self._ledger.advance(t)

    def close(self, end: float, days: list[Day]) -> None:
        if end <= self._start:
            return
        cost = self._cost()
        requests = {kind.value: 0 for kind in Served}
        for at, kind, n in self._served:
            if self._start <= at < end:
                requests[kind.value] += n
        days.append(Day(self._start, end - self._start, cost - self._cost_at_start, 0.0, requests))
        self._start, self._cost_at_start = end, cost
