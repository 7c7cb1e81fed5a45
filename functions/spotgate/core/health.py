"""A pool's health in numbers, logged with every reconcile so Cloud Monitoring can chart and alert on it.

Log-based metrics (infra/modules/observability) read these fields from the control plane's plan log line:
ready backends per pool, whether the pool should have one now, whether its overflow is warm, and how many of
its VMs run without traffic past the idle timeout (beyond the pool's ``min_ready``). The control plane stops
such VMs itself; an alert on them means it stopped doing so.
"""

from __future__ import annotations

from datetime import datetime

from spotgate.core.schedule import is_active
from spotgate.domain import InstanceStatus, Observed, OverrideKind, PoolState, RouteState
from spotgate.fleet import PoolSpec


def pool_health(spec: PoolSpec, observed: Observed, state: PoolState, now: datetime) -> dict[str, int | bool]:
    """``ready_backends``, ``expects_ready``, ``overflow_warm`` (0/1) and ``idle_vms`` for one reconcile."""
    expects = expects_ready(spec, state, now)
    idle = idle_running(spec, observed, now)
    return {
        "ready_backends": sum(1 for r in observed.routes if r.state is RouteState.READY),
        "expects_ready": expects,
        "overflow_warm": 1 if (observed.overflow_min_instances or 0) > 0 else 0,
        "idle_vms": max(0, idle - (spec.min_ready if expects else 0)),
    }


def expects_ready(spec: PoolSpec, state: PoolState, now: datetime) -> bool:
    """The pool should have a ready backend now: ``min_ready`` >= 1, inside its active hours, not put to sleep."""
    override = state.override
    asleep = override is not None and override.kind is OverrideKind.SLEEP and now < override.until
    return spec.min_ready >= 1 and is_active(spec.active_hours, now) and not asleep


def idle_running(spec: PoolSpec, observed: Observed, now: datetime) -> int:
    """RUNNING VMs with nothing in flight whose last request finished (or, never used, whose start was) longer
    ago than the pool's idle timeout plus its drain grace."""
    activity = observed.activity
    count = 0
    for vm in observed.instances:
        if vm.status is not InstanceStatus.RUNNING or activity.backend_inflight.get(vm.name, 0) > 0:
            continue
        last = activity.backend_last_finished.get(vm.name) or vm.last_start
        if last is not None and now - last > spec.idle_timeout + spec.drain_grace:
            count += 1
    return count
