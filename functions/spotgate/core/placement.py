"""Which stopped VM to start next: the zone choice for SPOT capacity.

SPOT reclaims are correlated within a zone (co-interruptions cluster within minutes) and, less, within a
region, so the pool is spread over regions first (for a pool that spans several), then over zones. Zones
that just stocked out are skipped until their cooldown ends, because asking again at once only returns the
same error; for the same reason a VM whose own start just failed waits out its backoff. Among the rest,
zones GCE itself named in its last ``zonesAvailable`` hint come first, then (for a pool with
``capacity_advice``) zones GCE's ``advice.capacity`` rates more obtainable, in steps of 0.1, and with a
longer estimated uptime (zones it left out last), then a lower recent preemption rate from
``advice.capacityHistory`` (unknown after known), then zones with less history against them; the VM name
breaks ties so the answer is deterministic.

The history is the pool's own preemptions and stockouts per zone over ``PREEMPTION_MEMORY``, decayed: each
weighs ``0.5 ** (age / half_life)``, so a zone that was reclaimed an hour ago counts against itself more
than one reclaimed five hours ago (a plain count when the pool sets no half-life). One score per zone ranks
it: the preemptions' weight plus ``stockout_weight`` times the stockouts' weight. A stockout costs a wasted
start and a retry elsewhere, a preemption a lost ready VM, so the pool says what one stockout is worth
against one preemption (0 leaves stockouts out). Without advice the advice terms are equal for every zone,
so the order is the same as without the feature.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from spotgate.core.backoff import backing_off
from spotgate.domain import FailureKind, Instance, PoolState, ProvisioningModel, ZoneAdvice

# How long a preemption counts against its zone (and is kept in PoolState). Long enough to see a pattern,
# short enough that a zone recovers its standing within a working day.
PREEMPTION_MEMORY = timedelta(hours=6)
# At most this many stockouts are kept per zone (the newest). A zone may refuse a start every cooldown for
# hours; beyond a dozen, older ones weigh almost nothing with any sensible half-life, and the state must stay
# small (it is one store document per pool).
STOCKOUTS_PER_ZONE = 12


@dataclass(frozen=True, slots=True)
class Placement:
    """A VM chosen to start, and why it (and not another) was chosen."""

    instance: Instance
    why: str


def stocked_out(state: PoolState, now: datetime) -> dict[str, datetime]:
    """Zones whose stockout cooldown has not ended yet, with the end of each cooldown."""
    return {zone: until for zone, until in state.stockouts.items() if until > now}


class _ZoneEvent(Protocol):
    @property
    def zone(self) -> str: ...

    @property
    def at(self) -> datetime: ...


def decayed_counts(events: Iterable[_ZoneEvent], now: datetime, half_life: timedelta | None) -> dict[str, float]:
    """Per zone, the ``events`` within ``PREEMPTION_MEMORY`` before ``now``, each weighing
    ``0.5 ** (age / half_life)`` (1 for every one when ``half_life`` is None: a plain count)."""
    weights: dict[str, float] = {}
    for event in events:
        age = now - event.at
        if age > PREEMPTION_MEMORY:
            continue
        weight = 1.0 if half_life is None else 0.5 ** (max(age, timedelta(0)) / half_life)
        weights[event.zone] = weights.get(event.zone, 0.0) + weight
    # Rounded so float noise never decides between zones with the same history.
    return {zone: round(weight, 6) for zone, weight in weights.items()}


@dataclass(frozen=True, slots=True)
class ZoneHistory:
    """What the pool's own history holds against each zone: preemptions and stockouts, counted and decayed."""

    preempted: Mapping[str, float]
    preempted_weight: Mapping[str, float]
    stocked_out: Mapping[str, float]
    stocked_out_weight: Mapping[str, float]
    half_life: timedelta | None
    stockout_weight: float

    @classmethod
    def of(cls, state: PoolState, now: datetime, half_life: timedelta | None, stockout_weight: float) -> ZoneHistory:
        return cls(
            decayed_counts(state.preemptions, now, None),
            decayed_counts(state.preemptions, now, half_life),
            decayed_counts(state.stockout_history, now, None),
            decayed_counts(state.stockout_history, now, half_life),
            half_life,
            stockout_weight,
        )

    def score(self, zone: str) -> float:
        """The zone's rank term: decayed preemptions plus ``stockout_weight`` x decayed stockouts."""
        stocked = self.stockout_weight * self.stocked_out_weight.get(zone, 0.0)
        return round(self.preempted_weight.get(zone, 0.0) + stocked, 6)

    def explain(self, zone: str) -> str:
        parts = [self._line(zone, "preemption", self.preempted, self.preempted_weight)]
        if self.stocked_out.get(zone):
            parts.append(self._line(zone, "stockout", self.stocked_out, self.stocked_out_weight))
        return ", ".join(parts)

    def _line(self, zone: str, what: str, counted: Mapping[str, float], weighted: Mapping[str, float]) -> str:
        line = f"{counted.get(zone, 0.0):g} {what}(s) there in the last {_hours(PREEMPTION_MEMORY)}"
        if self.half_life is not None:
            line += f" (weight {weighted.get(zone, 0.0):.2f} with half-life {_hours(self.half_life)})"
        return line


def choose_starts(
    candidates: Sequence[Instance],
    count: int,
    *,
    live: Sequence[Instance],
    state: PoolState,
    now: datetime,
    advice: Mapping[str, ZoneAdvice] | None = None,
    half_life: timedelta | None = None,
    stockout_weight: float = 0.0,
) -> list[Placement]:
    """Up to ``count`` of ``candidates`` (stopped VMs) to start, best first; fewer if zones are stocked out
    or VMs back off after a failed start, none while a rate limit backs off.

    SPOT before STANDARD; then the zone with the fewest live VMs of the pool (counting earlier picks), the
    ``zonesAvailable`` hint, the advice, less history against the zone (``ZoneHistory.score``), and the VM name.
    """
    blocked = stocked_out(state, now)
    waiting = backing_off(state, now)
    if any(failure.kind is FailureKind.RATE_LIMIT for failure in waiting.values()):
        return []  # the limit is the project's, not the VM's: another VM's start now would be refused too
    pool = [
        c
        for c in candidates
        if c.name not in waiting and (c.zone not in blocked or c.provisioning_model is ProvisioningModel.STANDARD)
    ]
    per_zone = Counter(vm.zone for vm in live)
    history = ZoneHistory.of(state, now, half_life, stockout_weight)
    # The hint describes the moment of the last stockout; once every cooldown has ended it is stale.
    hint = set(state.zones_available) if blocked else set()
    chosen: list[Placement] = []
    while pool and len(chosen) < count:
        best = min(pool, key=lambda vm: _rank(vm, per_zone, hint, history, advice or {}))
        pool.remove(best)
        per_zone[best.zone] += 1
        chosen.append(Placement(best, _explain(best, per_zone, hint, history, advice or {})))
    return chosen


def _rank(
    vm: Instance,
    per_zone: Counter[str],
    hint: set[str],
    history: ZoneHistory,
    advice: Mapping[str, ZoneAdvice],
) -> tuple[int, int, int, int, int, float, float, float, str]:
    is_standard = int(vm.provisioning_model is ProvisioningModel.STANDARD)
    outside_hint = int(bool(hint) and vm.zone not in hint)
    unlikely, shorter, rate = _advice_terms(vm, advice)
    region = _region(vm.zone)
    per_region = sum(n for zone, n in per_zone.items() if _region(zone) == region)
    return (
        is_standard, per_region, per_zone[vm.zone], outside_hint, unlikely, shorter, rate, history.score(vm.zone),
        vm.name,
    )  # fmt: skip


def _region(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


def _advice_terms(vm: Instance, advice: Mapping[str, ZoneAdvice]) -> tuple[int, float, float]:
    """(less obtainable, shorter uptime, higher preemption rate) for a SPOT VM's zone: all 0 without advice
    (off, or GCE did not answer) and for STANDARD VMs (not what GCE advised on); a zone GCE left out of its
    answer ranks last. The rate only breaks ties of the first two; an unknown rate (capacityHistory said
    nothing or failed) ranks after every known one, so a measured low rate is preferred to no measure."""
    if not advice or vm.provisioning_model is not ProvisioningModel.SPOT:
        return 0, 0.0, 0.0
    zone = advice.get(vm.zone)
    if zone is None:
        return 1, 0.0, 0.0
    uptime = zone.estimated_uptime.total_seconds() if zone.estimated_uptime is not None else 0.0
    rate = zone.preemption_rate if zone.preemption_rate is not None else math.inf
    return -round(zone.obtainability * 10), -uptime, rate


def _explain(
    vm: Instance,
    per_zone: Counter[str],
    hint: set[str],
    history: ZoneHistory,
    advice: Mapping[str, ZoneAdvice],
) -> str:
    parts = [f"{per_zone[vm.zone] - 1} other live VM(s) in {vm.zone}"]
    if vm.zone in hint:
        parts.append("zone named in the last zonesAvailable hint")
    zone = advice.get(vm.zone)
    if zone is not None and vm.provisioning_model is ProvisioningModel.SPOT:
        uptime = f", estimated uptime {zone.estimated_uptime}" if zone.estimated_uptime is not None else ""
        rate = f", preemption rate {zone.preemption_rate:.3f}" if zone.preemption_rate is not None else ""
        parts.append(f"advice: obtainability {zone.obtainability:.2f}{uptime}{rate}")
    parts.append(history.explain(vm.zone))
    return ", ".join(parts)


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g}h"
