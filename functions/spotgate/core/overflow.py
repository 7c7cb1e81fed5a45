"""When the pool's Cloud Run overflow service should be warm (service-level min instances 1) or cold (0).

A warm instance answers in seconds but costs money around the clock; a cold one costs nothing but takes a
cold start (tens of seconds for a GPU engine). So it is warm exactly while the VMs leave a gap (fewer ready
than desired) and for a cooldown after, so that a flapping SPOT pool does not pay cold starts on every gap.
The observed min instances, when known, wins over memory, which repairs drift made by hand or by a failed write.
With ``warm: recent_demand`` a gap (or its cooldown) warms the service only while someone called the pool
within its ``idle_timeout`` (or a request is in flight): a gap in a quiet pool is not worth a warm instance.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from spotgate.core.instants import clock
from spotgate.domain import Activity, PoolState, SetOverflow
from spotgate.fleet import OverflowSpec, PoolSpec


def overflow_actions(
    spec: PoolSpec,
    state: PoolState,
    observed_min: int | None,
    *,
    ready: int,
    desired: int,
    now: datetime,
    activity: Activity | None = None,
) -> tuple[list[SetOverflow], PoolState]:
    """The overflow change to make (if any) and ``state`` with the gap timers and ``overflow_warm`` updated."""
    gap = desired > 0 and ready < desired
    state = replace(
        state,
        gap_since=(state.gap_since or now) if gap else None,
        gap_closed_at=None if gap else (now if state.gap_since is not None else state.gap_closed_at),
    )
    if spec.overflow is None:
        return [], replace(state, overflow_warm=False)
    closed = state.gap_closed_at
    covering = gap or (closed is not None and now - closed < spec.overflow.cooldown)
    quiet = spec.overflow.warm == "recent_demand" and not recent_demand(spec, activity, now)
    warm = covering and not quiet
    current = state.overflow_warm if observed_min is None else observed_min >= 1
    readiness = f"{ready} of {desired}"
    idle = spec.idle_timeout if covering and quiet else None
    action = None if warm == current else _change(spec.overflow, state, warm, observed_min, readiness, idle=idle)
    return ([action] if action else []), replace(state, overflow_warm=warm)


def recent_demand(spec: PoolSpec, activity: Activity | None, now: datetime) -> bool:
    """A request in flight, or one that came within the pool's ``idle_timeout`` before ``now``."""
    if activity is None:
        return False
    last = activity.last_request_at
    return activity.inflight > 0 or (last is not None and now - last <= spec.idle_timeout)


def _change(
    overflow: OverflowSpec,
    state: PoolState,
    warm: bool,
    observed_min: int | None,
    readiness: str,
    *,
    idle: timedelta | None,
) -> SetOverflow:
    if idle is not None:  # a gap to cover, but warm: recent_demand and nobody called
        why = f"cool {overflow.service} (min instances 0): a gap, but no request within the {idle} idle timeout"
    elif warm and state.gap_since is not None:
        why = f"warm {overflow.service} (min instances 1): {readiness} desired VMs ready since {clock(state.gap_since)}"
    elif warm:
        why = f"warm {overflow.service} (min instances 1): within the {overflow.cooldown} cooldown after a gap"
    elif state.gap_closed_at is not None:
        closed = clock(state.gap_closed_at)
        why = f"cool {overflow.service} (min instances 0): gap closed at {closed}, {overflow.cooldown} cooldown over"
    else:
        why = f"cool {overflow.service} (min instances 0): no gap to cover"
    if observed_min is not None and state.overflow_warm == warm:
        why += f"; observed min instances {observed_min}, repairing drift"
    return SetOverflow(overflow.service, 1 if warm else 0, why)
