"""What a run measured, accumulated as it goes: time integrals of levels, and counts of events.

Between two events nothing changes, so every level (ready VMs, billed VMs by provisioning model, the
overflow instance, idle GPUs) is integrated over the interval before time moves on. Recoveries are timed
from a preemption of a ready VM to the moment the pool has as many ready VMs again as before it (or as many
as it then wants, if that is fewer).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Levels:
    """The pool at one instant: VMs ready (routed to), wanted, billed by model, idle, and the overflow."""

    ready: int
    desired: int
    spot: int
    standard: int
    idle_vms: int
    overflow: bool
    overflow_idle: bool


@dataclass(slots=True)
class _Recovery:
    began: float
    target: int


@dataclass(slots=True)
class Ledger:
    """Integrals in seconds; ``ready_steps`` keeps (instant, ready VMs) whenever the count changes."""

    min_ready: int
    levels: Callable[[], Levels]
    last: float = 0.0
    seconds: float = 0.0
    available: float = 0.0
    meets_desired: float = 0.0
    spot: float = 0.0
    standard: float = 0.0
    overflow: float = 0.0
    idle: float = 0.0
    peak_desired: int = 0
    preemptions: Counter[str] = field(default_factory=Counter)
    stockouts: Counter[str] = field(default_factory=Counter)
    recoveries: list[float] = field(default_factory=list)
    ready_steps: list[tuple[float, int]] = field(default_factory=list)
    _open: list[_Recovery] = field(default_factory=list)

    def advance(self, to: float) -> None:
        """Integrate the current levels over ``[last, to)``."""
        span = to - self.last
        if span <= 0:
            return
        now = self.levels()
        self._close_recoveries(now)
        self._step(now.ready)
        self.seconds += span
        self.available += span if now.ready >= self.min_ready else 0.0
        self.meets_desired += span if now.ready >= now.desired else 0.0
        self.spot += span * now.spot
        self.standard += span * now.standard
        self.overflow += span if now.overflow else 0.0
        self.idle += span * (now.idle_vms + (1 if now.overflow_idle else 0))
        self.peak_desired = max(self.peak_desired, now.desired)
        self.last = to

    def preempted(self, zone: str, *, ready_before: int | None) -> None:
        """A preemption in ``zone``; ``ready_before`` is the ready count before it when the VM was ready."""
        self.preemptions[zone] += 1
        if ready_before is not None:
            self._open.append(_Recovery(self.last, ready_before))

    def stocked_out(self, zone: str) -> None:
        self.stockouts[zone] += 1

    def _close_recoveries(self, now: Levels) -> None:
        still = []
        for recovery in self._open:
            if now.ready >= min(recovery.target, now.desired):
                self.recoveries.append(self.last - recovery.began)
            else:
                still.append(recovery)
        self._open = still

    def _step(self, ready: int) -> None:
        if not self.ready_steps or self.ready_steps[-1][1] != ready:
            self.ready_steps.append((self.last, ready))
