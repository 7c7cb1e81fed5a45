"""What one reconcile saw of a pool's world, gathered fresh from the cloud and the store every time.

The planner decides from ``Observed`` (facts that can be read again) plus ``PoolState`` (memory that
cannot); keeping the two apart is what makes a missed or duplicated event harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from spotgate.domain.activity import Activity
from spotgate.domain.advice import ZoneAdvice
from spotgate.domain.instance import Instance
from spotgate.domain.route import Route


@dataclass(frozen=True, slots=True)
class Observed:
    """The pool's VMs (as Compute Engine lists them), its routing-table entries, the gateway's activity,
    and the overflow service's current service-level min instances (None: unknown, or no overflow).
    """

    instances: tuple[Instance, ...]
    routes: tuple[Route, ...]
    activity: Activity
    overflow_min_instances: int | None = None
    # Capacity advice per zone for pools with ``capacity_advice``; empty when off or unknown (GCE did not answer).
    advice: Mapping[str, ZoneAdvice] = field(default_factory=dict)
