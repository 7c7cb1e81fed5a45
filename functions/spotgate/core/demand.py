"""How many ready VMs a pool should have now (``D`` in DESIGN §2.3), and why.

Overrides beat the schedule (an operator's word is final), the schedule beats traffic (outside active hours
the overflow service answers), and traffic beats ``min_ready`` only upward: a request or wake within the idle
timeout keeps one VM, and sustained in-flight load above ``target_inflight`` per ready VM asks for more, up to
``max_ready``.
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


def desired_ready(spec: PoolSpec, activity: Activity, state: PoolState, now: datetime) -> Demand:
    """``D`` for the pool at ``now``, capped at ``max_ready``; see the module docstring for the order of rules."""
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
    loaded = _load_target(spec, activity, now)
    if loaded > base:
        return Demand(min(loaded, spec.max_ready), f"{activity.inflight} requests in flight", changes_at)
    return Demand(min(base, spec.max_ready), why, changes_at)


def _base(spec: PoolSpec, activity: Activity, state: PoolState, now: datetime) -> tuple[int, str, datetime | None]:
    """``max(min_ready, 1 if a request or wake within idle_timeout else 0)``, why, and when that lapses."""
    if spec.min_ready >= 1:
        return spec.min_ready, f"min_ready {spec.min_ready}", None
    last = max((t for t in (activity.last_request_at, state.last_wake_at) if t is not None), default=None)
    if last is None:
        return 0, "no requests yet", None
    idle_at = last + spec.idle_timeout
    if now >= idle_at:
        return 0, f"idle for longer than {spec.idle_timeout}", None
    source = "request" if last == activity.last_request_at else "wake"
    return 1, f"last {source} at {zulu(last)}, idle timeout {zulu(idle_at)}", idle_at


def _load_target(spec: PoolSpec, activity: Activity, now: datetime) -> int:
    """VMs the in-flight load needs at ``target_inflight`` each; 0 when the gateway's count is stale.

    Above ``target_inflight`` per ready VM this asks for more; it also keeps them while the load stays, so
    draining one VM does not push the rest straight back over the target (no flapping).
    """
    fresh = activity.updated_at is not None and now - activity.updated_at <= ACTIVITY_FRESHNESS
    return math.ceil(activity.inflight / spec.target_inflight) if fresh else 0


def _finite(at: datetime) -> datetime | None:
    return None if at.year == datetime.max.year else at


def _earliest(*instants: datetime | None) -> datetime | None:
    return min((t for t in instants if t is not None), default=None)
