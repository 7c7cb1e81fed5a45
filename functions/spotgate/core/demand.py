"""How many ready VMs a pool should have now (``D`` in DESIGN §2.3), and why.

Overrides beat the schedule (an operator's word is final), the schedule beats traffic (outside active hours
the overflow service answers), and traffic beats ``min_ready`` only upward: a request or wake within the idle
timeout keeps one VM, and sustained in-flight load above ``target_inflight`` per ready VM asks for more, up to
``max_ready``. Load scaling has hysteresis: the live VMs are kept until the load would fit fewer of them at
``target_inflight x scale_down_ratio`` each, so a load hovering around a threshold never starts and stops
VMs in turn (each start pays a GPU boot).

The gateway flushes its activity every few seconds, also while counts do not change, so a fresh record
(``ACTIVITY_FRESHNESS``) is the load *now*, steady long streams included; a stale one means no gateway
instance is alive to carry requests, so nothing is in flight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from spotgate.core.instants import zulu
from spotgate.core.schedule import is_active, next_transition
from spotgate.domain import Activity, OverrideKind, PoolState
from spotgate.fleet import PoolSpec

# The gateway flushes activity every few seconds; an older in-flight count says nothing about load now.
ACTIVITY_FRESHNESS = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class Demand:
    """``count`` ready VMs wanted, a phrase saying why, and when the answer may change by itself."""

    count: int
    why: str
    changes_at: datetime | None = None


def desired_ready(spec: PoolSpec, activity: Activity, state: PoolState, now: datetime, *, live: int = 0) -> Demand:
    """``D`` for the pool at ``now``, capped at ``max_ready``; see the module docstring for the order of rules.

    ``live`` is how many of the pool's VMs are ready or on their way (the count hysteresis keeps).
    """
    override = state.override if state.override is not None and state.override.until > now else None
    if override is not None and override.kind is OverrideKind.SLEEP:
        return Demand(0, f"sleep override until {zulu(override.until)}", _finite(override.until))
    if override is None and not is_active(spec.active_hours, now):
        return Demand(0, "outside active hours", next_transition(spec.active_hours, now))
    base, why, changes_at = _base(spec, activity, state, now)
    if override is not None:
        base, why, changes_at = max(base, 1), f"wake override until {zulu(override.until)}", _finite(override.until)
    else:
        changes_at = _earliest(changes_at, next_transition(spec.active_hours, now))
    loaded = _load_target(spec, activity, now, live)
    if loaded > base:
        return Demand(min(loaded, spec.max_ready), _load_why(spec, activity), changes_at)
    return Demand(min(base, spec.max_ready), why, changes_at)


def _base(spec: PoolSpec, activity: Activity, state: PoolState, now: datetime) -> tuple[int, str, datetime | None]:
    """``max(min_ready, 1 if a request or wake within idle_timeout else 0)``, why, and when that lapses.

    Idleness counts from the later of the last request's start and the last request's end, so a long stream
    keeps the pool awake for the idle timeout after it finishes, not after it began.
    """
    if spec.min_ready >= 1:
        return spec.min_ready, f"min_ready {spec.min_ready}", None
    finished = max(activity.backend_last_finished.values(), default=None)
    sources = {"request": activity.last_request_at, "request finished": finished, "wake": state.last_wake_at}
    known = {source: at for source, at in sources.items() if at is not None}
    if not known:
        return 0, "no requests yet", None
    source, last = max(known.items(), key=lambda item: item[1])
    idle_at = last + spec.idle_timeout
    if now >= idle_at:
        return 0, f"idle for longer than {spec.idle_timeout}", None
    return 1, f"last {source} at {zulu(last)}, idle timeout {zulu(idle_at)}", idle_at


def is_fresh(activity: Activity, now: datetime) -> bool:
    """True while the gateway's activity describes the present (see the module docstring)."""
    return activity.updated_at is not None and now - activity.updated_at <= ACTIVITY_FRESHNESS


def inflight_on(activity: Activity, vm: str, now: datetime) -> int:
    """Requests in flight on one VM now, summed over gateway instances; 0 when the activity is stale."""
    return activity.backend_inflight.get(vm, 0) if is_fresh(activity, now) else 0


def _load_target(spec: PoolSpec, activity: Activity, now: datetime, live: int) -> int:
    """VMs the in-flight load needs: more above ``target_inflight`` each, fewer only below the lower mark.

    Between the two marks the ``live`` VMs are kept, so draining one never pushes the rest straight back
    over the target (no flapping). 0 when the gateway's count is stale.
    """
    if not is_fresh(activity, now):
        return 0
    up = math.ceil(activity.inflight / spec.target_inflight)
    keep = math.ceil(activity.inflight / (spec.target_inflight * spec.scale_down_ratio))
    return max(up, min(live, keep))


def _load_why(spec: PoolSpec, activity: Activity) -> str:
    low = spec.target_inflight * spec.scale_down_ratio
    return f"{activity.inflight} requests in flight, {spec.target_inflight} per VM to add one, {low:g} to let one go"


def _finite(at: datetime) -> datetime | None:
    return None if at.year == datetime.max.year else at


def _earliest(*instants: datetime | None) -> datetime | None:
    return min((t for t in instants if t is not None), default=None)
