"""What the control plane remembers about a pool between reconciles.

The planner reads a ``PoolState`` and returns the next one; the store keeps it with a ``generation`` that
increments on every commit. Observed facts (instances, routes, activity) are *not* here: they are gathered
fresh on every reconcile. Only memory that cannot be observed again lives here: agent notices and boot
progress, stockout cooldowns, failed starts and their backoff, recent preemptions and stockouts, overrides, and timers
(fallback, gap, overflow cooldown).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from spotgate.domain.events import BootPhase


class NoticeKind(enum.StrEnum):
    """What a VM agent (or a preemption audit log) told us about one instance."""

    READY = "ready"
    DRAINING = "draining"


@dataclass(frozen=True, slots=True)
class Notice:
    """The newest notice for an instance; ``at`` is when it was sent (used to discard stale ones)."""

    kind: NoticeKind
    at: datetime


class OverrideKind(enum.StrEnum):
    """An operator or Scheduler override of a pool's active hours."""

    SLEEP = "sleep"  # desired ready = 0 until ``until``
    WAKE = "wake"  # treat the pool as active (desired >= 1) until ``until``


@dataclass(frozen=True, slots=True)
class Override:
    kind: OverrideKind
    until: datetime
    at: datetime


@dataclass(frozen=True, slots=True)
class Preemption:
    """A recent reclaim, kept for zone preference (avoid zones that preempt a lot)."""

    instance: str
    zone: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Stockout:
    """A recent SPOT stockout (a start refused for lack of capacity), kept for zone preference after the
    zone's cooldown has ended (avoid zones that keep running out)."""

    instance: str
    zone: str
    at: datetime


class FailureKind(enum.StrEnum):
    """Why a start failed, as far as it decides when to try that VM again (``core.backoff``)."""

    CAPACITY = "capacity"  # no capacity in the zone (ZONE_RESOURCE_POOL_EXHAUSTED*)
    QUOTA = "quota"  # a regional quota is exhausted
    RATE_LIMIT = "rate_limit"  # the API refused the call rate
    NOT_READY = "not_ready"  # the VM is mid-transition (still STOPPING)
    OTHER = "other"  # anything else (permission, not found, unknown)


@dataclass(frozen=True, slots=True)
class StartFailure:
    """The last failed start of one VM: its class, failures in a row, and when it may be tried again."""

    kind: FailureKind
    at: datetime
    retry_at: datetime
    count: int = 1
    message: str = ""


@dataclass(frozen=True, slots=True)
class Progress:
    """The last boot phase a VM's agent reported, and when: proof that its boot is moving."""

    phase: BootPhase
    at: datetime


@dataclass(frozen=True, slots=True)
class PoolState:
    """Persistent memory of one pool; ``generation`` 0 means never committed."""

    pool: str
    generation: int = 0
    notices: dict[str, Notice] = field(default_factory=dict)
    stockouts: dict[str, datetime] = field(default_factory=dict)  # zone -> cooldown ends
    zones_available: tuple[str, ...] = ()  # last ``zonesAvailable`` hint from a stockout error
    preemptions: tuple[Preemption, ...] = ()
    stockout_history: tuple[Stockout, ...] = ()  # recent SPOT stockouts (``stockouts`` holds only cooldowns)
    override: Override | None = None
    last_wake_at: datetime | None = None  # last ``wake`` published by the gateway
    start_attempts: dict[str, datetime] = field(default_factory=dict)  # instance -> last start issued
    spot_unavailable_since: datetime | None = None  # first moment no SPOT VM could be started
    start_failures: dict[str, StartFailure] = field(default_factory=dict)  # instance -> last failed start
    retiring: dict[str, datetime] = field(default_factory=dict)  # instance -> when spotgate began draining it
    progress: dict[str, Progress] = field(default_factory=dict)  # instance -> last boot phase reported
    gap_since: datetime | None = None  # ready < desired since
    gap_closed_at: datetime | None = None  # when the last gap closed (overflow cooldown)
    overflow_warm: bool = False
    updated_at: datetime | None = None
