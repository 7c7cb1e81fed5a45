"""What ``advice.capacityHistory`` would say at a simulated instant: each zone's preemption rate, from the
capacity model's own past only.

GCE modelled: capacityHistory returns, per zone and machine type, one preemption rate per day over the past
30 days (the current day included and still changing); a day's rate is the SPOT VMs GCE preempted that day
divided by the SPOT VMs that stopped running that day, the owners' own stops included. spotgate's adapter
uses the mean of the returned days (``adapters.gce_advice.mean_preemption_rate``), and so does this model.

A trace holds neither the other tenants' VMs nor their stops, only how many VMs of the shape a zone let run.
So a day's preempted VMs are the capacity it lost (every drop of the count, and each one-VM reclaim of the
synthetic model), and the stops the owners would have made, which no trace shows, are taken as one per VM the
zone still let run at the day's end (or now, for the current day): ``rate = lost / (lost + capacity)``, in
0..1 like GCE's. A day with neither loss nor capacity has no rate (GCE returns no record without stops).
Days are counted from the simulation's start (GCE's end at midnight Pacific time). Nothing after the asked
instant is read, so placement cannot learn from the future.
"""

from __future__ import annotations

import statistics
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import accumulate

from spotgate.simulation.capacity import DAY, CapacityModel, ZoneCapacity

# advice.capacityHistory's preemption window: the last 30 days.
HISTORY_DAYS = 30


@dataclass(frozen=True, slots=True)
class ZoneLosses:
    """One zone's capacity over time and its losses, indexed for lookups at any instant."""

    step_times: tuple[float, ...]
    step_counts: tuple[int, ...]
    loss_times: tuple[float, ...]
    lost_by: tuple[int, ...]  # VMs lost up to and including each instant of ``loss_times``

    @classmethod
    def of(cls, zone: ZoneCapacity) -> ZoneLosses:
        pairs = zip(zone.steps, zone.steps[1:], strict=False)  # each step with the one before it
        drops = [(t, before - after) for (_, before), (t, after) in pairs if after < before]
        losses = sorted([*drops, *((t, 1) for t in zone.reclaims)])
        return cls(
            tuple(t for t, _ in zone.steps),
            tuple(n for _, n in zone.steps),
            tuple(t for t, _ in losses),
            tuple(accumulate(n for _, n in losses)),
        )

    def capacity_at(self, t: float) -> int:
        i = bisect_right(self.step_times, t)
        return self.step_counts[i - 1] if i else 0

    def lost_until(self, t: float) -> int:
        i = bisect_right(self.loss_times, t)
        return self.lost_by[i - 1] if i else 0

    def daily_rates(self, now: float) -> Iterator[float]:
        """The rate of each of the last ``HISTORY_DAYS`` days up to ``now`` that has one, oldest first."""
        today = int(now // DAY)
        for day in range(max(today - HISTORY_DAYS + 1, 0), today + 1):
            end = min((day + 1) * DAY, now)
            lost = self.lost_until(end) - self.lost_until(day * DAY)
            seen = lost + self.capacity_at(end)
            if seen:
                yield lost / seen


@dataclass(frozen=True, slots=True)
class CapacityHistory:
    """The modelled ``advice.capacityHistory`` of every zone of a capacity model."""

    zones: Mapping[str, ZoneLosses]

    @classmethod
    def of(cls, model: CapacityModel) -> CapacityHistory:
        return cls({name: ZoneLosses.of(zone) for name, zone in model.zones.items()})

    def preemption_rate(self, zone: str, now: float) -> float | None:
        """The mean daily rate of ``zone`` over the window ending ``now`` (seconds from the start); None
        ("unknown", as when GCE returns no record) for a zone without a rate or outside the model."""
        losses = self.zones.get(zone)
        rates = list(losses.daily_rates(now)) if losses is not None else []
        return statistics.fmean(rates) if rates else None
