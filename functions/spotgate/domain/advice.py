"""What Compute Engine's capacity advice (``advice.capacity``, ``advice.capacityHistory``) says about one zone
for a pool's SPOT shape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class ZoneAdvice:
    """``obtainability`` 0..1 (how likely a SPOT start there succeeds now) and ``estimated_uptime`` (how long
    a SPOT VM started there is expected to run before a preemption; None when GCE gave none);
    ``preemption_rate`` the mean of the preemption rates ``advice.capacityHistory`` reported for the zone
    (None, "unknown", when it gave none or did not answer)."""

    zone: str
    obtainability: float
    estimated_uptime: timedelta | None = None
    preemption_rate: float | None = None
